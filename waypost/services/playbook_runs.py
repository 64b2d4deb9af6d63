"""Writing playbook runs: the cadence checked against earlier runs, one ``playbook_runs`` row per
run, and one outbox message per webhook action, all in the caller's transaction.

The cadence reads a playbook's last run for each contact (index ``ix_playbook_runs_cadence``);
runs made earlier in the same batch count too, so two events of one batch for one contact run
a ``once`` playbook once. On PostgreSQL, where two transactions may fire one playbook for one
contact at the same time, a transaction-scoped advisory lock per playbook and contact makes the
second wait for the first and see its run.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import Connection

from waypost.domain.conditions import Condition
from waypost.domain.field_filters import FieldFilter
from waypost.domain.playbooks import (
    MESSAGE_TYPES,
    Cadence,
    ConsentRef,
    ContactData,
    Event,
    EveryTime,
    GroupRef,
    PlaybookRef,
    Subject,
    activity_data,
    cadence_allows,
    message_body,
)
from waypost.domain.triggers import ActivityStored, ConsentChanged, MembershipChanged
from waypost.ids import new_id
from waypost.records.contacts import FIELD_COLUMNS
from waypost.records.outbox import FAILED, PENDING, OutboxMessage
from waypost.store.schema import contact_groups, contacts, playbook_runs, webhook_endpoints

# Why a message for a disabled endpoint is kept as failed (docs/playbooks.md, "Runs").
ENDPOINT_DISABLED = "endpoint_disabled"

_lock = sa.text(
    "SELECT pg_advisory_xact_lock(k) "
    "FROM unnest(CAST(:keys AS bigint[])) WITH ORDINALITY AS t(k, n) ORDER BY n"
)
# Contacts per statement: a group's condition edited may move thousands at once, more than
# SQLite takes as parameters of one statement.
CHUNK = 500


def chunks(items: Sequence[uuid.UUID], size: int = CHUNK) -> Iterator[Sequence[uuid.UUID]]:
    """``items`` in slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True)
class Armed:
    """An enabled playbook, ready to fire: its trigger's filters compiled, its audience
    parsed, its endpoints in order."""

    id: uuid.UUID
    name: str
    event: Event
    filters: tuple[FieldFilter, ...]
    audience: Condition | None
    cadence: Cadence
    endpoints: tuple[uuid.UUID, ...]


@dataclass(frozen=True, slots=True)
class Firing:
    """A playbook fired for a contact by an event (its audience already checked)."""

    armed: Armed
    contact: uuid.UUID
    event: ActivityStored | MembershipChanged | ConsentChanged


def write_runs(
    conn: Connection, firings: Sequence[Firing], now: dt.datetime
) -> list[OutboxMessage]:
    """Write the runs the cadences allow, as of ``now``; the messages to enqueue."""
    allowed = _allowed(conn, firings, now)
    if not allowed:
        return []
    people = _contacts(conn, {f.contact for f in allowed})
    group_names = _group_names(
        conn, {f.event.group_id for f in allowed if isinstance(f.event, MembershipChanged)}
    )
    enabled = _endpoints(conn, {e for f in allowed for e in f.armed.endpoints})
    runs: list[dict[str, object]] = []
    messages: list[OutboxMessage] = []
    for f in allowed:
        run_id = new_id()
        subject, subject_text = _subject(f.event, group_names)
        runs.append(
            {
                "id": run_id,
                "playbook_id": f.armed.id,
                "contact_id": f.contact,
                "event": f.armed.event,
                "subject": subject_text,
                "at": now,
            }
        )
        body = message_body(
            f.armed.event,
            now,
            PlaybookRef(f.armed.id, f.armed.name),
            people.get(f.contact) or ContactData(f.contact),
            subject,
        )
        for endpoint in f.armed.endpoints:
            if endpoint not in enabled:
                continue  # deleted since the playbook was saved: nothing to send to
            messages.append(
                OutboxMessage(
                    id=new_id(),
                    endpoint_id=endpoint,
                    event_type=MESSAGE_TYPES[f.armed.event],
                    body=body,
                    created_at=now,
                    playbook_id=f.armed.id,
                    run_id=run_id,
                    contact_id=f.contact,
                    status=PENDING if enabled[endpoint] else FAILED,
                    last_error=None if enabled[endpoint] else ENDPOINT_DISABLED,
                )
            )
    conn.execute(playbook_runs.insert(), runs)
    return messages


def _subject(
    event: ActivityStored | MembershipChanged | ConsentChanged,
    group_names: dict[uuid.UUID, str],
) -> tuple[Subject, str]:
    if isinstance(event, ActivityStored):
        return Subject(activity=activity_data(event)), str(event.id)
    if isinstance(event, MembershipChanged):
        name = group_names.get(event.group_id, "")
        return Subject(group=GroupRef(event.group_id, name)), str(event.group_id)
    return Subject(consent=ConsentRef(event.consent_code, event.version)), event.consent_code


def _allowed(conn: Connection, firings: Sequence[Firing], now: dt.datetime) -> list[Firing]:
    limited: dict[uuid.UUID, set[uuid.UUID]] = {}
    for f in firings:
        if not isinstance(f.armed.cadence, EveryTime):
            limited.setdefault(f.armed.id, set()).add(f.contact)
    last: dict[tuple[uuid.UUID, uuid.UUID], dt.datetime] = {}
    if limited:
        if conn.dialect.name == "postgresql":
            # In one order in every transaction, so that two never each hold one the other needs.
            locks = sorted({_key(p, c) for p, people in limited.items() for c in people})
            conn.execute(_lock, {"keys": locks})
        r = playbook_runs
        for playbook_id, people in limited.items():
            for some in chunks(sorted(people)):
                rows = conn.execute(
                    sa.select(r.c.contact_id, sa.func.max(r.c.at))
                    .where(r.c.playbook_id == playbook_id, r.c.contact_id.in_(some))
                    .group_by(r.c.contact_id)
                ).all()
                for contact_id, at in rows:
                    last[(playbook_id, contact_id)] = at
    allowed: list[Firing] = []
    for f in firings:
        if isinstance(f.armed.cadence, EveryTime):
            allowed.append(f)
            continue
        key = (f.armed.id, f.contact)
        if cadence_allows(f.armed.cadence, last.get(key), now):
            allowed.append(f)
            last[key] = now
    return allowed


def _key(playbook_id: uuid.UUID, contact_id: uuid.UUID) -> int:
    """A signed 64-bit advisory lock key for one playbook and contact."""
    value = (playbook_id.int ^ (contact_id.int >> 64) ^ contact_id.int) & (2**64 - 1)
    return value - 2**64 if value >= 2**63 else value


def _contacts(conn: Connection, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, ContactData]:
    columns = [contacts.c[name] for name in FIELD_COLUMNS]
    found: dict[uuid.UUID, ContactData] = {}
    for some in chunks(sorted(ids)):
        for row in conn.execute(sa.select(contacts.c.id, *columns).where(contacts.c.id.in_(some))):
            found[row.id] = ContactData(row.id, **{n: row._mapping[n] for n in FIELD_COLUMNS})
    return found


def _group_names(conn: Connection, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not ids:
        return {}
    g = contact_groups
    return {
        row.id: row.name
        for row in conn.execute(sa.select(g.c.id, g.c.name).where(g.c.id.in_(sorted(ids))))
    }


def _endpoints(conn: Connection, ids: set[uuid.UUID]) -> dict[uuid.UUID, bool]:
    """Whether each endpoint that still exists is enabled."""
    e = webhook_endpoints
    return {
        row.id: bool(row.enabled)
        for row in conn.execute(sa.select(e.c.id, e.c.enabled).where(e.c.id.in_(sorted(ids))))
    }

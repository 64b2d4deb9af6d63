"""Erasing a contact's data at the person's request (docs/data-lifecycle.md#a-contacts-data).

An erasure deletes the contact and the contacts merged into it, and everything about them:
activities, rejected activities naming them, consent agreements, external ids, group
memberships and their history, playbook runs, webhook messages (with their delivery
attempts), merge records, the browser consent requests that made them, the claims other
contacts made of their emails, and their rows of the daily rollups, whose counts leave the
daily counts of reports too. It then suppresses their identities (keyed hashes of each email,
external id and contact id: :mod:`waypost.domain.suppressions`), so that nothing naming them
is stored again, and records who erased how much, without naming anyone.

Activities go first, in batches of ``WAYPOST_PURGE_BATCH_SIZE``, each a short write
transaction (a contact may have millions); everything else, with the activities that arrived
meanwhile, goes in one last transaction, which on PostgreSQL first locks the contacts, as an
incremental group update does (:mod:`waypost.services.group_locks`). An erasure that fails
midway is finished by asking again: the contact is only gone at the end.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Literal

import msgspec
import sqlalchemy as sa
from sqlalchemy import Connection

from waypost.domain.contact_fields import normalise_email
from waypost.domain.value_counts import counted_fields, counted_values
from waypost.ids import new_id, utcnow
from waypost.records.contacts import CLAIM_PREFIX
from waypost.records.suppressions import suppress
from waypost.services.contact_data import Family, family, like_escaped, rejected_naming
from waypost.services.group_locks import lock_for_erasure
from waypost.store import Store
from waypost.store.schema import (
    activities,
    activity_daily_counts,
    activity_rollups,
    activity_value_counts,
    browser_consent_requests,
    consent_agreements,
    contact_external_ids,
    contact_groups,
    contact_merges,
    contacts,
    erasures,
    group_members,
    group_membership_events,
    playbook_runs,
    rejected_activities,
    webhook_attempts,
    webhook_messages,
)
from waypost.store.type_fields import load_type_fields

ActorKind = Literal["key", "user"]

# The kinds an erasure reports, in this order.
KINDS = (
    "contacts",
    "activities",
    "rejected_activities",
    "consent_agreements",
    "external_ids",
    "group_memberships",
    "group_history",
    "playbook_runs",
    "webhook_messages",
    "webhook_attempts",
    "merges",
    "browser_consent_requests",
    "rollups",
    "claims",
)


class Actor(msgspec.Struct, frozen=True):
    """Who asked for an erasure: an admin key or a user of the admin UI, by id."""

    kind: ActorKind
    id: uuid.UUID | None


class ErasureReport(msgspec.Struct):
    """What an erasure deleted, by kind (every kind, zero included), and how many identities
    it suppressed. ``erasure`` is the id of its record in ``GET /api/erasures``."""

    erasure: uuid.UUID
    contacts: int
    deleted: dict[str, int]
    suppressions: int
    erased_at: dt.datetime


class ErasureService:
    """Erases contacts; ``batch`` activities are deleted per transaction."""

    def __init__(self, store: Store, batch: int) -> None:
        self.store = store
        self.batch = batch

    def erase(self, contact_id: uuid.UUID, actor: Actor) -> ErasureReport:
        """Erase the contact and the contacts merged into it: 404 ``contact_not_found`` if
        there is none, 409 ``conflict`` if it was merged into another."""
        started = time.perf_counter()
        with self.store.read() as conn:
            ids = family(conn, contact_id).ids
        deleted: Counter[str] = Counter(dict.fromkeys(KINDS, 0))
        deleted["activities"] += self._delete_activities(ids)
        with self.store.write() as conn:
            lock_for_erasure(conn, contact_id)
            # Read again under the lock: a merge may have joined another contact meanwhile.
            found = family(conn, contact_id)
            deleted.update(_delete_everything(conn, found))
            erasure_id = new_id()
            suppressed = suppress(conn, found.identities(), erasure_id)
            now = utcnow()
            conn.execute(
                erasures.insert().values(
                    id=erasure_id,
                    actor_kind=actor.kind,
                    actor_id=actor.id,
                    erased_at=now,
                    contacts=len(found.ids),
                    deleted=dict(deleted),
                    suppressions=suppressed,
                    duration_ms=round((time.perf_counter() - started) * 1000),
                )
            )
        return ErasureReport(erasure_id, len(found.ids), dict(deleted), suppressed, now)

    def _delete_activities(self, ids: Sequence[uuid.UUID]) -> int:
        total = 0
        page = sa.select(activities.c.id).where(activities.c.contact_id.in_(ids)).limit(self.batch)
        while True:
            with self.store.write() as conn:
                chosen = activities.c.id.in_(list(conn.execute(page).scalars()))
                values = _counted_values(conn, chosen)
                n = conn.execute(activities.delete().where(chosen)).rowcount
                _subtract_values(conn, values)
            total += n
            if n < self.batch:
                return total


ValueKey = tuple[uuid.UUID, str, dt.date, str]


def _count_delete(conn: Connection, table: sa.Table, condition: sa.ColumnElement[bool]) -> int:
    return int(conn.execute(table.delete().where(condition)).rowcount)


def _delete_everything(conn: Connection, f: Family) -> Counter[str]:
    ids = list(f.ids)
    n: Counter[str] = Counter()
    values = _counted_values(conn, activities.c.contact_id.in_(ids))
    n["activities"] = _count_delete(conn, activities, activities.c.contact_id.in_(ids))
    n["rollups"] = _delete_rollups(conn, ids)
    _subtract_values(conn, values)
    n["rejected_activities"] = _count_delete(conn, rejected_activities, rejected_naming(f))
    n["consent_agreements"] = _count_delete(
        conn, consent_agreements, consent_agreements.c.contact_id.in_(ids)
    )
    n["external_ids"] = _count_delete(
        conn, contact_external_ids, contact_external_ids.c.contact_id.in_(ids)
    )
    n["group_memberships"] = _delete_memberships(conn, ids)
    n["group_history"] = _count_delete(
        conn, group_membership_events, group_membership_events.c.contact_id.in_(ids)
    )
    runs = sa.select(playbook_runs.c.id).where(playbook_runs.c.contact_id.in_(ids))
    messages = webhook_messages.c.contact_id.in_(ids) | webhook_messages.c.run_id.in_(runs)
    n["webhook_attempts"] = _count_delete(
        conn,
        webhook_attempts,
        webhook_attempts.c.message_id.in_(sa.select(webhook_messages.c.id).where(messages)),
    )
    n["webhook_messages"] = _count_delete(conn, webhook_messages, messages)
    n["playbook_runs"] = _count_delete(conn, playbook_runs, playbook_runs.c.contact_id.in_(ids))
    n["merges"] = _count_delete(
        conn,
        contact_merges,
        contact_merges.c.source_id.in_(ids) | contact_merges.c.target_id.in_(ids),
    )
    n["browser_consent_requests"] = _count_delete(
        conn, browser_consent_requests, browser_consent_requests.c.contact_id.in_(ids)
    )
    n["claims"] = _drop_claims(conn, f)
    n["contacts"] = _count_delete(conn, contacts, contacts.c.id.in_(ids))
    return n


def _delete_rollups(conn: Connection, ids: list[uuid.UUID]) -> int:
    """The contacts' daily rollups, and their counts from the daily counts (reports)."""
    r = activity_rollups
    sums = conn.execute(
        sa.select(
            r.c.type_id,
            r.c.day,
            sa.func.sum(r.c.count).label("total"),
            sa.func.count().label("contacts"),
        )
        .where(r.c.contact_id.in_(ids))
        .group_by(r.c.type_id, r.c.day)
    ).all()
    deleted = _count_delete(conn, r, r.c.contact_id.in_(ids))
    d = activity_daily_counts
    # In key order, as the writer updates them, so that the two never wait for each other.
    for row in sorted(sums, key=lambda s: (s.type_id.int, s.day)):
        key = (d.c.type_id == row.type_id) & (d.c.day == row.day)
        conn.execute(
            d.update()
            .where(key)
            .values(count=d.c.count - int(row.total), contacts=d.c.contacts - int(row.contacts))
        )
        conn.execute(d.delete().where(key, d.c.count <= 0))
    return deleted


def _counted_values(conn: Connection, chosen: sa.ColumnElement[bool]) -> Counter[ValueKey]:
    """What the ``chosen`` activities add to the counts per field value: those counts name no
    contact, so an erasure lowers them by what the activities held, read before they go.
    (Activities purged earlier are no longer there to say; their values stay counted.)"""
    counted = {
        type_id: names
        for type_id, specs in load_type_fields(conn).items()
        if (names := counted_fields(specs))
    }
    found: Counter[ValueKey] = Counter()
    if not counted:
        return found
    a = activities.c
    rows = conn.execute(
        sa.select(a.type_id, a.occurred_at, a.fields).where(chosen, a.type_id.in_(list(counted)))
    )
    for type_id, occurred_at, fields in rows:
        day = occurred_at.astimezone(dt.UTC).date()
        for name, value in counted_values(counted[type_id], fields):
            found[(type_id, name, day, value)] += 1
    return found


def _subtract_values(conn: Connection, found: Counter[ValueKey]) -> None:
    v = activity_value_counts
    # In key order, as the writer updates them.
    for (type_id, name, day, value), n in sorted(
        found.items(), key=lambda item: (item[0][0].int, *item[0][1:])
    ):
        key = (v.c.type_id == type_id) & (v.c.field == name) & (v.c.day == day)
        key &= v.c.value == value
        conn.execute(v.update().where(key).values(count=v.c.count - n))
        conn.execute(v.delete().where(key, v.c.count <= 0))


def _delete_memberships(conn: Connection, ids: list[uuid.UUID]) -> int:
    """The contacts' current memberships, and the member counts of their groups."""
    m = group_members
    per_group = conn.execute(
        sa.select(m.c.group_id, sa.func.count().label("n"))
        .where(m.c.contact_id.in_(ids))
        .group_by(m.c.group_id)
    ).all()
    deleted = _count_delete(conn, m, m.c.contact_id.in_(ids))
    g = contact_groups
    # Never below zero, should a count be off; SQLite's two-argument max() is GREATEST.
    floor = sa.func.max if conn.dialect.name == "sqlite" else sa.func.greatest
    # In the order of the groups' ids, as incremental updates write them.
    for row in sorted(per_group, key=lambda p: p.group_id.int):
        count = floor(g.c.member_count - int(row.n), 0)
        conn.execute(g.update().where(g.c.id == row.group_id).values(member_count=count))
    return deleted


def _drop_claims(conn: Connection, f: Family) -> int:
    """Other contacts' unproven claims of the family's emails (a browser's identify without
    the identity hash, a Segment identify of an email another contact holds): the claimed
    email and the names claimed with it. Returns how many contacts held one."""
    if not f.emails:
        return 0
    emails = set(f.emails)
    text = sa.func.lower(sa.cast(contacts.c.attributes, sa.Text))
    found = conn.execute(
        sa.select(contacts.c.id, contacts.c.attributes).where(
            contacts.c.id.not_in(f.ids),
            sa.or_(*(text.like(f"%{like_escaped(email)}%", escape="\\") for email in emails)),
        )
    ).all()
    changed = 0
    for row in found:
        attributes = dict(row.attributes or {})
        claimed = attributes.get(f"{CLAIM_PREFIX}email")
        if not isinstance(claimed, str) or normalise_email(claimed) not in emails:
            continue
        kept = {k: v for k, v in attributes.items() if not k.startswith(CLAIM_PREFIX)}
        conn.execute(
            contacts.update()
            .where(contacts.c.id == row.id)
            .values(attributes=kept, updated_at=utcnow())
        )
        changed += 1
    return changed

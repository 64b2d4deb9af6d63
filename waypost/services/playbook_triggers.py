"""Playbooks firing: the events of a write transaction turned into runs and outbox messages in
that same transaction, so a run and its webhooks commit or roll back with what fired them.

The Store calls :meth:`PlaybookTriggers.handle` with the events a transaction emitted (the
writer's stored activities, the group updater's entries and exits, consent agreements) just
before it commits. The enabled playbooks are kept in memory by what they listen to (activity
type, group, consent), so an event nobody listens to costs one dict lookup. For each event a
playbook listens to: the audience is evaluated for the contact in the transaction, the cadence
checked against the playbook's earlier runs (and the runs of the same batch), then the run is
written with one message per webhook action (docs/playbooks.md, "Runs").
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from waypost.clock import Clock
from waypost.domain.field_filters import FieldFilter
from waypost.domain.playbooks import (
    ActivityTrigger,
    Cadence,
    ConsentAgreedTrigger,
    ConsentRevokedTrigger,
    ConsentTrigger,
    GroupEnteredTrigger,
    PlaybookError,
    Trigger,
    activity_matches,
    compile_filters,
    event_of,
    parse_audience,
)
from waypost.domain.triggers import ActivityStored, ConsentChanged, MembershipChanged
from waypost.error_words import quoted
from waypost.records.outbox import enqueue
from waypost.services.group_sql import (
    CompileError,
    ConditionCatalog,
    load_condition_catalog,
    members_select,
)
from waypost.services.playbook_runs import Armed, Firing, chunks, write_runs
from waypost.store import Change, Store
from waypost.store.schema import playbooks

log = logging.getLogger("waypost.playbooks")

# What the cache is built from: a playbook, and the types and consents it names by code.
CACHED_KINDS = frozenset({"playbook", "activity_type", "consent"})


@dataclass(frozen=True)
class Index:
    """The enabled playbooks by what they listen to."""

    loaded_at: float
    catalog: ConditionCatalog
    activity: dict[uuid.UUID, tuple[Armed, ...]] = field(default_factory=dict)
    entered: dict[uuid.UUID, tuple[Armed, ...]] = field(default_factory=dict)
    exited: dict[uuid.UUID, tuple[Armed, ...]] = field(default_factory=dict)
    agreed: dict[uuid.UUID, tuple[Armed, ...]] = field(default_factory=dict)
    revoked: dict[uuid.UUID, tuple[Armed, ...]] = field(default_factory=dict)

    # The keys of ``activity``, made once: the writer asks for them in every batch.
    activity_types: frozenset[uuid.UUID] = frozenset()

    @property
    def empty(self) -> bool:
        return not (self.activity or self.entered or self.exited or self.agreed or self.revoked)


def load_index(conn: Connection, loaded_at: float) -> Index:
    """Every enabled playbook, armed; one that cannot be armed any more (its type renamed,
    a filtered field removed) is left out, with a warning, until it is changed."""
    catalog = load_condition_catalog(conn)
    consent_ids = catalog.consents
    rows = conn.execute(
        sa.select(playbooks).where(playbooks.c.enabled.is_(True)).order_by(playbooks.c.id)
    ).all()
    lists: dict[str, dict[uuid.UUID, list[Armed]]] = {
        key: {} for key in ("activity", "entered", "exited", "agreed", "revoked")
    }
    for row in rows:
        try:
            trigger: Trigger = msgspec.convert(row.trigger, Trigger)
            cadence: Cadence = msgspec.convert(row.cadence, Cadence)
            endpoints = tuple(uuid.UUID(str(a["endpoint"])) for a in row.actions)
            audience = parse_audience(row.audience)
            filters: tuple[FieldFilter, ...] = ()
            if isinstance(trigger, ActivityTrigger):
                ref = catalog.types.get(trigger.type)
                if ref is None or ref.id is None:
                    raise PlaybookError(f"no activity type {quoted(trigger.type)}", "trigger.type")
                filters = compile_filters(ref.fields, trigger.fields)
                key, subject = "activity", ref.id
            elif isinstance(trigger, ConsentAgreedTrigger | ConsentRevokedTrigger):
                key = "agreed" if isinstance(trigger, ConsentAgreedTrigger) else "revoked"
                subject = _consent_id(consent_ids, trigger)
            else:
                key = "entered" if isinstance(trigger, GroupEnteredTrigger) else "exited"
                subject = trigger.group
        except (PlaybookError, msgspec.ValidationError, KeyError, ValueError) as exc:
            log.warning("playbook %s cannot run until it is changed: %s", row.id, exc)
            continue
        armed = Armed(row.id, row.name, event_of(trigger), filters, audience, cadence, endpoints)
        lists[key].setdefault(subject, []).append(armed)
    frozen = {key: {k: tuple(v) for k, v in found.items()} for key, found in lists.items()}
    return Index(loaded_at, catalog, **frozen, activity_types=frozenset(frozen["activity"]))


def _consent_id(consent_ids: dict[str, uuid.UUID], trigger: ConsentTrigger) -> uuid.UUID:
    found = consent_ids.get(trigger.consent)
    if found is None:
        raise PlaybookError(f"no consent {quoted(trigger.consent)}", "trigger.consent")
    return found


class PlaybookTriggers:
    """The Store's ``in_transaction`` handler that runs playbooks, with the cache of one
    process. ``wake`` is called once a transaction that wrote messages has committed.
    ``ttl`` bounds how long a change made by another process goes unseen."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        wake: Callable[[], None],
        ttl: float = 2.0,
    ) -> None:
        self.store = store
        self.clock = clock
        self.wake = wake
        self.ttl = ttl
        self._index: Index | None = None
        self._lock = threading.Lock()
        # Counts the changes seen: a load that read before a change must not be kept after it.
        self._generation = 0

    # -- the cache -------------------------------------------------------------------------

    def changed(self, change: Change) -> None:
        """A change feed's subscriber: drop the cache when a playbook (or what one names by
        code: a type, a consent) changed."""
        if change.kind in CACHED_KINDS:
            with self._lock:
                self._index = None
                self._generation += 1

    def index(self, conn: Connection) -> Index:
        """The cached playbooks, loaded on ``conn`` when missing or older than ``ttl``."""
        now = time.monotonic()
        with self._lock:
            index, generation = self._index, self._generation
        if index is None or now - index.loaded_at > self.ttl:
            index = load_index(conn, now)
            with self._lock:
                if self._generation == generation:
                    self._index = index
        return index

    def activity_types(self, conn: Connection) -> frozenset[uuid.UUID]:
        """The activity types some enabled playbook listens to: the writer emits an event
        for the activities of these types only."""
        return self.index(conn).activity_types

    def listens_to_group(self, conn: Connection, group_id: uuid.UUID) -> bool:
        """Whether some enabled playbook fires on entries to or exits from the group: a full
        computation of the group reads back who entered and left only then."""
        index = self.index(conn)
        return group_id in index.entered or group_id in index.exited

    # -- firing ----------------------------------------------------------------------------

    def handle(self, conn: Connection, events: Sequence[Any]) -> None:
        """Run the playbooks the events fire, in ``conn``'s transaction."""
        index = self.index(conn)
        if index.empty:
            return
        firings: list[Firing] = []
        for event in events:
            if isinstance(event, ActivityStored):
                for armed in index.activity.get(event.type_id, ()):
                    if not armed.filters or activity_matches(armed.filters, event):
                        firings.append(Firing(armed, event.contact_id, event))
            elif isinstance(event, MembershipChanged):
                moved = index.entered if event.entered else index.exited
                for armed in moved.get(event.group_id, ()):
                    firings += [Firing(armed, c, event) for c in sorted(event.contact_ids)]
            elif isinstance(event, ConsentChanged):
                changed = index.agreed if event.agreed else index.revoked
                for armed in changed.get(event.consent_id, ()):
                    firings.append(Firing(armed, event.contact_id, event))
        if not firings:
            return
        firings = self._in_audience(conn, index, firings)
        if firings:
            messages = write_runs(conn, firings, self.clock.now())
            enqueue(conn, messages, self.wake)

    def _in_audience(self, conn: Connection, index: Index, firings: list[Firing]) -> list[Firing]:
        """The firings whose contact is in the playbook's audience, now."""
        wanted: dict[uuid.UUID, tuple[Armed, set[uuid.UUID]]] = {}
        for f in firings:
            if f.armed.audience is not None:
                wanted.setdefault(f.armed.id, (f.armed, set()))[1].add(f.contact)
        if not wanted:
            return firings
        today = self.clock.now().date()
        members = {
            playbook_id: _audience(conn, index.catalog, armed, contacts, today)
            for playbook_id, (armed, contacts) in wanted.items()
        }
        return [f for f in firings if f.armed.audience is None or f.contact in members[f.armed.id]]


def _audience(
    conn: Connection,
    catalog: ConditionCatalog,
    armed: Armed,
    contacts: Iterable[uuid.UUID],
    today: Any,
) -> set[uuid.UUID]:
    assert armed.audience is not None
    found: set[uuid.UUID] = set()
    for some in chunks(sorted(contacts)):
        ctx = catalog.context(today, conn.dialect.name, some)
        try:
            stmt = members_select(armed.audience, ctx)
        except CompileError as exc:
            log.warning("the audience of playbook %s cannot be evaluated: %s", armed.id, exc)
            return set()
        found |= _members(conn, armed, stmt)
    return found


def _members(conn: Connection, armed: Armed, stmt: sa.Select[Any]) -> set[uuid.UUID]:
    if conn.dialect.name != "postgresql":
        return set(conn.execute(stmt).scalars())
    # A statement PostgreSQL refuses (one too complex to plan) would abort the transaction
    # of what fired the playbook: it is tried in a savepoint, and the playbook does not run.
    try:
        with conn.begin_nested():
            return set(conn.execute(stmt).scalars())
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise
        log.warning("the audience of playbook %s failed: %s", armed.id, exc.orig)
        return set()


__all__ = ["Armed", "Index", "PlaybookTriggers"]

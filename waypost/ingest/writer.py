"""The group-commit writer: one thread per process commits many requests' activities at once.

Requests hand their validated activities to :meth:`Writer.submit` and wait. The writer thread
takes every job queued so far, stores them in one transaction (activities, rejected
activities, daily rollups, data-input contact changes) and, only after the commit returned,
wakes each request with its results. 202 therefore always means "committed": on SQLite in WAL
mode with ``synchronous=FULL`` that is durable across a power cut, on PostgreSQL with
``synchronous_commit`` on likewise. One fsync serves every request of the batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import queue
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from waypost.domain.conditions import Changes
from waypost.errors import ErrorDetail
from waypost.ids import new_id
from waypost.ingest.activities import Accepted, Rejected
from waypost.ingest.catalog import ChannelInfo
from waypost.services.consents import ConsentState, consent_required, current_states
from waypost.services.contacts import apply_data_input, contact_not_found
from waypost.store import StorageUnavailable, Store, touch
from waypost.store.codec import Codec
from waypost.store.schema import activities

log = logging.getLogger("waypost.writer")


class ActivityResult:
    """What happened to one activity: 202 stored, 208 already stored, or an error."""

    __slots__ = ("error", "id", "status")

    def __init__(
        self, status: int, id: uuid.UUID | None = None, error: ErrorDetail | None = None
    ) -> None:
        self.status = status
        self.id = id
        self.error = error


@dataclass
class Job:
    """One request's activities, for one channel and contact."""

    channel: ChannelInfo
    contact_id: uuid.UUID
    items: Sequence[Accepted | Rejected]
    received_at: dt.datetime
    source: str
    done: Callable[[list[ActivityResult] | BaseException], None]
    # The rejected activity this job replays (its one item keeps that id when stored).
    replay_of: uuid.UUID | None = None
    # Refuse activities of contacts without a current agreement to the channel's tracking
    # consent; None: as the channel's enforce_consent says.
    require_consent: bool | None = None
    # The event loop ``done`` must run in (None: any thread). The writer wakes each loop once
    # per commit for all of its jobs, instead of once per job.
    loop: asyncio.AbstractEventLoop | None = None
    # Filled by the writer.
    results: list[ActivityResult] = field(default_factory=list)
    missing_contact: bool = False


Outcome = list[ActivityResult] | BaseException


class _DryRun(Exception):
    """Raised inside a transaction to roll it back after a dry run."""


_STOP = object()

ACTIVITY_COLUMNS = (
    "id",
    "type_id",
    "contact_id",
    "channel_id",
    "client_id",
    "title",
    "value",
    "url",
    "referrer",
    "fields",
    "primary_value",
    "flags",
    "occurred_at",
    "received_at",
    "consent_agreed",
    "consent_version",
)
REJECTED_COLUMNS = (
    "id",
    "channel_id",
    "contact_id",
    "type_code",
    "reason",
    "status",
    "message",
    "field",
    "source",
    "payload",
    "received_at",
)


class Writer:
    """The single writer of one process."""

    def __init__(self, store: Store, max_batch: int, max_delay: float = 0.0) -> None:
        self.store = store
        self.max_batch = max_batch
        self.max_delay = max_delay
        self.codec = Codec(store.dialect)
        mark = self.codec.placeholders
        # Built once from constant column names, never from input.
        self.insert_activity = (
            f"INSERT INTO activities ({', '.join(ACTIVITY_COLUMNS)}) "  # noqa: S608
            f"VALUES ({mark(len(ACTIVITY_COLUMNS))})"
        )
        self.insert_rejected = (
            f"INSERT INTO rejected_activities ({', '.join(REJECTED_COLUMNS)}) "  # noqa: S608
            f"VALUES ({mark(len(REJECTED_COLUMNS))})"
        )
        self.upsert_violation = (
            "INSERT INTO field_violations (type_id, field, code, count, last_seen_at) "  # noqa: S608
            f"VALUES ({mark(5)}) ON CONFLICT (type_id, field, code) "
            "DO UPDATE SET count = field_violations.count + excluded.count, "
            "last_seen_at = excluded.last_seen_at"
        )
        m = self.codec.mark
        self.mark_replayed = (
            f"UPDATE rejected_activities SET replayed_at = {m}, replay_outcome = {m}, "  # noqa: S608
            f"replayed_activity_id = {m} WHERE id = {m}"
        )
        self.upsert_rollup = (
            "INSERT INTO activity_rollups (contact_id, type_id, day, count) "  # noqa: S608
            f"VALUES ({mark(4)}) ON CONFLICT (contact_id, type_id, day) "
            "DO UPDATE SET count = activity_rollups.count + excluded.count"
        )
        self.upsert_daily = (
            "INSERT INTO activity_daily_counts (type_id, day, count) "  # noqa: S608
            f"VALUES ({mark(3)}) ON CONFLICT (type_id, day) "
            "DO UPDATE SET count = activity_daily_counts.count + excluded.count"
        )
        self._queue: queue.SimpleQueue[Job | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.batches = 0

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="waypost-writer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Finish every job queued so far, then stop."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None

    # -- submitting ------------------------------------------------------------------------

    async def submit(
        self,
        channel: ChannelInfo,
        contact_id: uuid.UUID,
        items: Sequence[Accepted | Rejected],
        received_at: dt.datetime,
        source: str = "tracking",
        require_consent: bool | None = None,
    ) -> list[ActivityResult]:
        """Store ``items`` and return one result per item, once the transaction committed.

        Raises StorageUnavailable when the database failed (nothing was acknowledged), and
        ApiError 404 ``contact_not_found`` when the contact does not exist.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[ActivityResult]] = loop.create_future()

        def done(outcome: list[ActivityResult] | BaseException) -> None:
            _resolve(future, outcome)

        self.start()
        job = Job(channel, contact_id, items, received_at, source, done, loop=loop)
        job.require_consent = require_consent
        self._queue.put(job)
        return await future

    def submit_sync(
        self,
        channel: ChannelInfo,
        contact_id: uuid.UUID,
        items: Sequence[Accepted | Rejected],
        received_at: dt.datetime,
        source: str = "tracking",
    ) -> list[ActivityResult]:
        """The blocking form of :meth:`submit`, for code outside the event loop."""
        box: list[list[ActivityResult] | BaseException] = []
        event = threading.Event()

        def done(outcome: list[ActivityResult] | BaseException) -> None:
            box.append(outcome)
            event.set()

        self.start()
        self._queue.put(Job(channel, contact_id, items, received_at, source, done))
        event.wait()
        outcome = box[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def store_now(self, jobs: list[Job], dry_run: bool = False) -> None:
        """Store ``jobs`` in the calling thread, in one transaction; each job's ``results``
        say what happened. A dry run does everything, then rolls it back."""
        try:
            with self.store.write() as conn:
                self._store(conn, jobs)
                if dry_run:
                    raise _DryRun
        except _DryRun:
            return

    # -- the writer thread -----------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                return
            assert isinstance(first, Job)
            batch = [first]
            size = len(first.items)
            while size < self.max_batch:
                try:
                    job = (
                        self._queue.get(timeout=self.max_delay)
                        if self.max_delay > 0
                        else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
                if job is _STOP:
                    stopping = True
                    break
                assert isinstance(job, Job)
                batch.append(job)
                size += len(job.items)
            self._commit(batch)

    def _commit(self, batch: list[Job]) -> None:
        outcomes: list[Outcome]
        try:
            self._store_with_retry(batch)
        except StorageUnavailable as exc:
            outcomes = [exc] * len(batch)
        except Exception as exc:
            log.exception("the writer failed a batch of %d requests", len(batch))
            outcomes = [StorageUnavailable(str(exc))] * len(batch)
        else:
            self.batches += 1
            outcomes = [
                contact_not_found(job.contact_id) if job.missing_contact else job.results
                for job in batch
            ]
        _deliver(batch, outcomes)

    def _store_with_retry(self, batch: list[Job]) -> None:
        try:
            with self.store.write() as conn:
                self._store(conn, batch)
        except IntegrityError:
            # Another node stored an activity with the same client id between our check and
            # our insert, or a type or channel vanished. Store job by job, each checking again,
            # so one job's conflict cannot fail the others.
            if len(batch) == 1:
                with self.store.write() as conn:
                    self._store(conn, batch)
                return
            for job in batch:
                with self.store.write() as conn:
                    self._store(conn, [job])

    def _store(self, conn: Connection, batch: list[Job]) -> None:
        c = self.codec
        # The contacts whose activities or fields changed, for the contact groups.
        touched: set[uuid.UUID] = set()
        touched_types: set[uuid.UUID] = set()
        fields_changed = False
        contact_ids = self._resolve_contacts(conn, batch)
        consent = self._consent_states(conn, batch, contact_ids)
        activity_rows: list[tuple[object, ...]] = []
        rejected_rows: list[tuple[object, ...]] = []
        rollups: Counter[tuple[uuid.UUID, uuid.UUID, dt.date]] = Counter()
        violations: Counter[tuple[uuid.UUID, str, str]] = Counter()
        latest = batch[-1].received_at
        # Client ids: (channel, client id) -> stored activity id, for 208 answers.
        seen = self._stored_client_ids(conn, batch)
        replays: list[tuple[object, ...]] = []
        # Replays store under the rejected activity's id: one stored meanwhile (by a replay
        # racing this one) is a duplicate, not a second row.
        replayed = self._stored_replays(conn, batch)

        for job in batch:
            job.results = []
            channel = job.channel
            contact = contact_ids.get(job.contact_id)
            state = consent.get((channel.tracking_consent_id, contact)) if contact else None
            missing = job.missing_contact = contact is None
            for item in job.items:
                if missing:
                    error = contact_not_found(job.contact_id)
                    item = Rejected(404, error.detail, item.payload, _type_code(item))
                elif (
                    isinstance(item, Accepted)
                    and (
                        channel.enforce_consent
                        if job.require_consent is None
                        else job.require_consent
                    )
                    and not (state is not None and state.agreed)
                    # A retry of an activity stored before a revocation is still a 208.
                    and (channel.id, item.client_id) not in seen
                ):
                    item = Rejected(
                        403,
                        consent_required(channel.tracking_consent).detail,
                        item.payload,
                        item.type.code_name,
                    )
                if isinstance(item, Rejected) and job.replay_of is not None:
                    replays.append(_replayed(c, job, item.error.code, None))
                    job.results.append(ActivityResult(item.status, error=item.error))
                    continue
                if isinstance(item, Rejected):
                    rejected_rows.append(
                        (
                            c.ident(new_id()),
                            c.ident(channel.id),
                            c.ident(contact or job.contact_id),
                            item.type_code,
                            item.error.code,
                            item.status,
                            item.error.message,
                            item.error.field,
                            job.source,
                            c.json_bytes(item.payload),
                            c.timestamp(job.received_at),
                        )
                    )
                    job.results.append(ActivityResult(item.status, error=item.error))
                    continue
                assert contact is not None
                if job.replay_of is not None and item.id in replayed:
                    job.results.append(ActivityResult(208, item.id))
                    replays.append(_replayed(c, job, "duplicate", item.id))
                    continue
                if item.client_id is not None:
                    key = (channel.id, item.client_id)
                    earlier = seen.get(key)
                    if earlier is not None:
                        job.results.append(ActivityResult(208, earlier))
                        if job.replay_of is not None:
                            replays.append(_replayed(c, job, "duplicate", earlier))
                        continue
                    seen[key] = item.id
                owner = contact
                if item.contact_fields:
                    owner = apply_data_input(conn, contact, item.contact_fields)
                    fields_changed = True
                agreed = (
                    state.agreed
                    if state is not None
                    else (False if channel.tracking_consent_id is not None else None)
                )
                activity_rows.append(
                    (
                        c.ident(item.id),
                        c.ident(item.type.id),
                        c.ident(owner),
                        c.ident(channel.id),
                        item.client_id,
                        item.title,
                        item.value,
                        item.url,
                        item.referrer,
                        c.json(item.fields),
                        item.primary_value,
                        c.json(item.flags),
                        c.timestamp(item.occurred_at),
                        c.timestamp(job.received_at),
                        c.boolean(agreed),
                        state.version if state is not None else None,
                    )
                )
                rollups[(owner, item.type.id, item.occurred_at.astimezone(dt.UTC).date())] += 1
                for violation in item.flags or ():
                    violations[(item.type.id, str(violation["field"]), str(violation["code"]))] += 1
                job.results.append(ActivityResult(202, item.id))
                touched.add(owner)
                touched_types.add(item.type.id)
                if job.replay_of is not None:
                    replays.append(_replayed(c, job, "stored", item.id))

        if activity_rows:
            conn.exec_driver_sql(self.insert_activity, activity_rows)
            touch(conn, touched, Changes(frozenset(touched_types), contact_fields=fields_changed))
        if rejected_rows:
            conn.exec_driver_sql(self.insert_rejected, rejected_rows)
        if replays:
            conn.exec_driver_sql(self.mark_replayed, replays)
        # The counters below are rows that other nodes' writers add to as well (every writer
        # adds to today's count of a type): each batch takes them in key order, so that two
        # batches never each hold a row the other waits for.
        if violations:
            conn.exec_driver_sql(
                self.upsert_violation,
                [
                    (c.ident(type_id), name, code, count, c.timestamp(latest))
                    for (type_id, name, code), count in sorted(violations.items())
                ],
            )
        if rollups:
            conn.exec_driver_sql(
                self.upsert_rollup,
                [
                    (c.ident(contact), c.ident(type_id), c.date(day), count)
                    for (contact, type_id, day), count in sorted(rollups.items(), key=_rollup_key)
                ],
            )
            daily: Counter[tuple[uuid.UUID, dt.date]] = Counter()
            for (_, type_id, day), count in rollups.items():
                daily[(type_id, day)] += count
            conn.exec_driver_sql(
                self.upsert_daily,
                [
                    (c.ident(type_id), c.date(day), count)
                    for (type_id, day), count in sorted(daily.items())
                ],
            )

    def _resolve_contacts(self, conn: Connection, batch: list[Job]) -> dict[uuid.UUID, uuid.UUID]:
        """Each job's contact id -> the contact to store under (following merges)."""
        c = self.codec
        resolved: dict[uuid.UUID, uuid.UUID] = {}
        pending = {job.contact_id: job.contact_id for job in batch}  # asked -> look up now
        for _ in range(8):
            if not pending:
                break
            look_up = list(set(pending.values()))
            marks = c.placeholders(len(look_up))
            rows = conn.exec_driver_sql(
                f"SELECT id, merged_into FROM contacts WHERE id IN ({marks})",  # noqa: S608
                tuple(c.ident(i) for i in look_up),
            ).all()
            found = {c.read_uuid(r[0]): c.read_uuid(r[1]) for r in rows}
            following: dict[uuid.UUID, uuid.UUID] = {}
            for asked, current in pending.items():
                if current not in found:
                    continue
                merged_into = found[current]
                if merged_into is None:
                    resolved[asked] = current
                else:
                    following[asked] = merged_into
            pending = following
        return resolved

    def _consent_states(
        self, conn: Connection, batch: list[Job], contact_ids: dict[uuid.UUID, uuid.UUID]
    ) -> dict[tuple[uuid.UUID | None, uuid.UUID | None], ConsentState]:
        by_consent: dict[uuid.UUID, set[uuid.UUID]] = {}
        for job in batch:
            consent_id = job.channel.tracking_consent_id
            contact = contact_ids.get(job.contact_id)
            if consent_id is not None and contact is not None:
                by_consent.setdefault(consent_id, set()).add(contact)
        states: dict[tuple[uuid.UUID | None, uuid.UUID | None], ConsentState] = {}
        for consent_id, ids in by_consent.items():
            for contact, state in current_states(conn, list(ids), consent_id).items():
                states[(consent_id, contact)] = state
        return states

    def _stored_replays(self, conn: Connection, batch: list[Job]) -> set[uuid.UUID]:
        wanted = [
            item.id
            for job in batch
            if job.replay_of is not None
            for item in job.items
            if isinstance(item, Accepted)
        ]
        if not wanted:
            return set()
        return set(
            conn.execute(sa.select(activities.c.id).where(activities.c.id.in_(wanted))).scalars()
        )

    def _stored_client_ids(
        self, conn: Connection, batch: list[Job]
    ) -> dict[tuple[uuid.UUID, str], uuid.UUID]:
        wanted: dict[uuid.UUID, set[str]] = {}
        for job in batch:
            for item in job.items:
                if isinstance(item, Accepted) and item.client_id is not None:
                    wanted.setdefault(job.channel.id, set()).add(item.client_id)
        found: dict[tuple[uuid.UUID, str], uuid.UUID] = {}
        for channel_id, client_ids in wanted.items():
            rows = conn.execute(
                sa.select(activities.c.client_id, activities.c.id).where(
                    activities.c.channel_id == channel_id,
                    activities.c.client_id.in_(client_ids),
                )
            ).all()
            for row in rows:
                found[(channel_id, row.client_id)] = row.id
        return found


def _replayed(
    c: Codec, job: Job, outcome: str, activity_id: uuid.UUID | None
) -> tuple[object, ...]:
    return (c.timestamp(job.received_at), outcome, c.ident(activity_id), c.ident(job.replay_of))


def _type_code(item: Accepted | Rejected) -> str | None:
    return item.type.code_name if isinstance(item, Accepted) else item.type_code


def _deliver(batch: list[Job], outcomes: list[Outcome]) -> None:
    """Hand each job its outcome: in its event loop, woken once for all of its jobs."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Job, Outcome]]] = {}
    for job, outcome in zip(batch, outcomes, strict=True):
        if job.loop is None:
            job.done(outcome)
        else:
            by_loop.setdefault(job.loop, []).append((job, outcome))
    for loop, pairs in by_loop.items():
        # A closed loop raises RuntimeError: nobody waits for those answers any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_done_all, pairs)


def _done_all(pairs: list[tuple[Job, Outcome]]) -> None:
    for job, outcome in pairs:
        job.done(outcome)


def _resolve(
    future: asyncio.Future[list[ActivityResult]], outcome: list[ActivityResult] | BaseException
) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _rollup_key(item: tuple[tuple[uuid.UUID, uuid.UUID, dt.date], int]) -> tuple[int, int, dt.date]:
    # UUIDs compare through a Python method: their integers sort the same, and faster.
    (contact, type_id, day), _ = item
    return contact.int, type_id.int, day

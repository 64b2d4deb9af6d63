"""The group-commit writer: one thread per process commits many requests' activities at once.

Requests hand their validated activities to :meth:`WriterFront.submit` and wait; replays and other
code off the event loop use :meth:`WriterFront.submit_and_wait`. Nothing else stores activities or
rejected activities. The writer thread takes every job queued so far, reads what the rules
need, decides each item (:mod:`waypost.pipeline.writer_decision`), writes the rows in one
transaction (:mod:`waypost.pipeline.writer_rows`: activities, rejected activities, daily
rollups, data-input contact changes) and, only after the commit returned, wakes each request
with its results. 202 therefore always means "committed": on SQLite in WAL mode with
``synchronous=FULL`` that is durable across a power cut, on PostgreSQL with
``synchronous_commit`` on likewise. One fsync serves every request of the batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import queue
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet

import msgspec
import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from waypost.errors import ApiError
from waypost.metrics import Metrics
from waypost.pipeline.catalog import ChannelInfo, Snapshot
from waypost.pipeline.prepare import Accepted, Rejected, prepare, reject
from waypost.pipeline.writer_decision import (
    ActivityResult,
    ClientIds,
    Decision,
    Job,
    Outcome,
    Reads,
    decide,
)
from waypost.pipeline.writer_rows import BatchRows, Statements, write_rows
from waypost.records.consents import ConsentState, current_states
from waypost.records.contacts import contact_not_found
from waypost.records.suppressions import erased_contacts
from waypost.store import StorageUnavailable, Store
from waypost.store.codec import Codec
from waypost.store.driver import fetch_all
from waypost.store.schema import activities

log = logging.getLogger("waypost.writer")
# The answer to each activity of a request the database refused a value of (text past its
# column, a number past its type): one a check before it should have refused, kept as rejected.
REFUSED_VALUE = ApiError(
    400,
    "invalid_field",
    "A value of this activity does not fit where it is stored (text too long or a number too "
    "large); nothing of it was stored.",
)


class _RowsFailed(Exception):
    """A batch's transaction failed before its commit, in deciding or building its rows (the
    cause is the fault): the jobs may be stored one by one."""


_STOP = object()


class WriterFront(ABC):
    """What the rest of the process sees of its writer: the jobs handed to it (:meth:`submit`,
    :meth:`submit_raw`, :meth:`submit_and_wait`) and its life cycle. Behind it, a thread of
    this process (:class:`Writer`) or a process of its own
    (:class:`~waypost.services.writer_process.WriterProcess`) stores them."""

    def __init__(self, store: Store, max_batch: int, metrics: Metrics | None = None) -> None:
        self.store = store
        self.metrics = metrics if metrics is not None else Metrics()
        self.max_batch = max_batch
        # Transactions committed (for the writer's process: answers of committed batches).
        self.batches = 0

    # -- life cycle ------------------------------------------------------------------------

    @abstractmethod
    def start(self) -> None:
        """Start taking jobs (the server does; else the first job)."""

    @property
    @abstractmethod
    def running(self) -> bool:
        """Whether there is a writer to take jobs now."""

    @abstractmethod
    def stop(self) -> None:
        """Finish every job handed over so far, then stop."""

    @abstractmethod
    def answer_on(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Deliver answers on ``loop``'s thread from now on, or (None) as they come (the
        server calls it at its start and end)."""

    # -- submitting ------------------------------------------------------------------------

    async def submit(
        self,
        channel: ChannelInfo,
        contact_id: uuid.UUID | None,
        items: Sequence[Accepted | Rejected],
        received_at: dt.datetime,
        source: str = "tracking",
        require_consent: bool | None = None,
    ) -> list[ActivityResult]:
        """Store ``items`` and return one result per item, once the transaction committed.

        ``contact_id`` None stores rejected items that belong to no contact. Raises
        StorageUnavailable when the database failed (nothing was acknowledged), and ApiError
        404 ``contact_not_found`` when the contact does not exist.
        """
        job = Job(channel, contact_id, items, received_at, source, require_consent=require_consent)
        return await self.submit_job(job)

    async def submit_raw(
        self,
        channel: ChannelInfo,
        contact_id: uuid.UUID,
        raw: Sequence[bytes],
        snapshot: Snapshot,
        received_at: dt.datetime,
        max_bytes: int,
    ) -> list[ActivityResult]:
        """Validate each activity of ``raw`` (:func:`~waypost.pipeline.prepare.prepare`,
        against ``snapshot``) and store them as :meth:`submit` does. Here they are validated
        at once, on the caller's thread; the writer's process may validate them itself."""
        items = [prepare(one, snapshot, received_at, max_bytes) for one in raw]
        return await self.submit(channel, contact_id, items, received_at)

    async def submit_job(self, job: Job) -> list[ActivityResult]:
        """Store ``job`` as :meth:`submit` stores its items. Once it returns (or raises
        ``contact_not_found``, whose rejected activities are kept), the job's ``rejected_kept``
        and ``rejected_refused`` say what became of its rejected activities."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[ActivityResult]] = loop.create_future()

        def done(outcome: Outcome) -> None:
            _resolve(future, outcome)

        job.done, job.loop = done, loop
        self._enqueue([job])
        results = await future
        if job.missing_contact:
            raise contact_not_found(job.contact_id)
        return results

    def submit_and_wait(self, jobs: Sequence[Job]) -> list[list[ActivityResult]]:
        """Store ``jobs`` and return each one's results once committed, blocking the calling
        thread (for code outside the event loop, e.g. a replay on a worker thread).

        The jobs go through the writer like any request's, committed with other requests'
        jobs; a ``dry_run`` job is decided and answered but writes nothing. A job whose contact
        does not exist gets a 404 ``contact_not_found`` result per item. Raises
        StorageUnavailable when the database failed for any of the jobs.
        """
        if not jobs:
            return []
        all_done = threading.Event()
        remaining = len(jobs)
        failures: list[BaseException] = []

        # Called on the writer's thread only (the jobs have no loop), one job after another.
        def done(outcome: Outcome) -> None:
            nonlocal remaining
            if isinstance(outcome, BaseException):
                failures.append(outcome)
            remaining -= 1
            if remaining == 0:
                all_done.set()

        for job in jobs:
            job.done, job.loop = done, None
        self._enqueue(jobs)
        all_done.wait()
        if failures:
            raise failures[0]
        return [job.results for job in jobs]

    @abstractmethod
    def _enqueue(self, jobs: Sequence[Job]) -> None:
        """Hand ``jobs`` (their ``done`` set) to whoever stores them."""


class Writer(WriterFront):
    """The single writer of one process: every activity and rejected activity is stored here,
    by a thread of its own (or, in the writer's process, by that process's main thread)."""

    def __init__(
        self, store: Store, max_batch: int, max_delay: float = 0.0, metrics: Metrics | None = None
    ) -> None:
        super().__init__(store, max_batch, metrics)
        self.max_delay = max_delay
        # Used on the writer's thread only (a codec is one per thread).
        self.codec = Codec(store.dialect)
        self.statements = Statements(self.codec)
        self._queue: queue.SimpleQueue[Job | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        # On SQLite, the connection the writer's transactions run on, kept between them (taking
        # one from the pool and giving it back cost a tenth of a small transaction's CPU). On
        # PostgreSQL each transaction takes one from the pool, which pings it first: after a
        # restart of the database the first transaction then finds a live connection.
        self._held: Connection | None = None
        # The activity types some playbook listens to, read in each batch's transaction (the
        # hub wires it to the playbook triggers): only their activities are emitted as events.
        self.listened_types: Callable[[Connection], AbstractSet[uuid.UUID]] | None = None

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="waypost-writer", daemon=True)
            self._thread.start()

    @property
    def running(self) -> bool:
        """Whether the writer thread is there to take jobs (it is started by the server, or
        by the first job)."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Finish every job queued so far, then stop."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None
        self.release_connection()

    def answer_on(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Nothing to change: the writer's thread always delivers through the jobs' own
        loops."""

    def release_connection(self) -> None:
        """Give back the connection the transactions ran on (by the thread that ran them, or
        once it has stopped)."""
        held, self._held = self._held, None
        if held is not None:
            with contextlib.suppress(Exception):
                held.close()

    def _enqueue(self, jobs: Sequence[Job]) -> None:
        """Hand ``jobs`` (their ``done`` set) to the writer thread."""
        self.start()
        for job in jobs:
            self._queue.put(job)

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
            # More jobs join until max_delay after the first: a steady stream of jobs, each
            # within max_delay of the last, does not hold the first one back any longer.
            deadline = time.monotonic() + self.max_delay
            while size < self.max_batch:
                wait = deadline - time.monotonic()
                try:
                    job = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is _STOP:
                    stopping = True
                    break
                assert isinstance(job, Job)
                batch.append(job)
                size += len(job.items)
            self.metrics.queue_depth.set(self._queue.qsize())
            self._commit(batch)

    def _commit(self, batch: list[Job]) -> None:
        deliver(batch, self._outcomes(batch))

    def _outcomes(self, batch: list[Job]) -> list[Outcome]:
        """Store ``batch``; each job's outcome (its results, or the storage's failure).

        A batch that fails before its commit on one job's account (a unique conflict, a value
        the database refuses, or a fault in a job's rows) is stored job by job, each deciding
        again, so that it fails that job alone. Nothing of a failed transaction was committed,
        so nothing is stored twice; a failure after the commit, or of the storage, fails the
        whole batch."""
        try:
            self._transaction(batch)
        except StorageUnavailable as exc:
            return [exc] * len(batch)
        except IntegrityError:
            # Another node stored an activity with the same client id between our check and
            # our insert, a replay racing this one stored its activity, or a type or channel
            # vanished. Each job alone decides again, and sees the row it conflicted with.
            return [self._alone(job) for job in batch]
        except DataError:
            # A value of one job the database refuses (text past its column: a value a client
            # sent that should have been cut or refused before). Each job alone, so that only
            # that one's activities are refused, not every request that shared its transaction.
            if len(batch) == 1:
                return [self._refused(batch[0])]
            log.exception(
                "the writer failed a batch of %d requests; storing them one by one", len(batch)
            )
            return [self._alone(job) for job in batch]
        except _RowsFailed as failed:
            if len(batch) == 1:
                log.error("the writer failed a request", exc_info=failed.__cause__)
                return [StorageUnavailable(str(failed.__cause__))]
            log.error(
                "the writer failed a batch of %d requests; storing them one by one",
                len(batch),
                exc_info=failed.__cause__,
            )
            return [self._alone(job) for job in batch]
        except Exception as exc:
            log.exception("the writer failed a batch of %d requests", len(batch))
            return [StorageUnavailable(str(exc))] * len(batch)
        self.batches += 1
        return [job.results for job in batch]

    def _alone(self, job: Job) -> Outcome:
        """``job`` in a transaction of its own, after its batch failed before its commit."""
        try:
            self._transaction([job])
        except StorageUnavailable as exc:
            return exc
        except DataError:
            return self._refused(job)
        except _RowsFailed as failed:
            log.error("the writer failed a request", exc_info=failed.__cause__)
            return StorageUnavailable(str(failed.__cause__))
        except Exception as exc:
            log.exception("the writer failed a request")
            return StorageUnavailable(str(exc))
        self.batches += 1
        return job.results

    def _refused(self, job: Job) -> Outcome:
        """``job`` stored again with each activity it would store kept as rejected, as the
        database refused a value of it: a 400 for each, not a 503 its client would retry
        without end. A failure of that too fails the job."""
        log.exception("the database refused a value of a request; its activities are rejected")
        items = [
            reject(REFUSED_VALUE, item.payload, item.type.code_name)
            if isinstance(item, Accepted)
            else item
            for item in job.items
        ]
        refused = dataclasses.replace(job, items=items, raw=None, results=[])
        try:
            self._transaction([refused])
        except StorageUnavailable as exc:
            return exc
        except Exception as exc:
            log.exception("the writer failed a request")
            return StorageUnavailable(str(exc))
        self.batches += 1
        job.rejected_kept, job.rejected_refused = refused.rejected_kept, refused.rejected_refused
        return refused.results

    def _transaction(self, batch: list[Job]) -> None:
        started = time.perf_counter()
        try:
            with self.store.write(on=self._connection()) as conn:
                try:
                    rows = self._store(conn, batch)
                except (StorageUnavailable, SQLAlchemyError):
                    raise
                except Exception as exc:
                    # A fault in deciding or building a job's rows, not the database's: rolled
                    # back, and told apart from a failure after the commit.
                    raise _RowsFailed from exc
        except BaseException:
            # Whatever failed (a duplicate, a lost database), the next transaction starts on
            # a connection from the pool, never on one an error may have left unusable.
            self.release_connection()
            raise
        # Once per committed transaction, never per activity: the counts come with the rows.
        self._observe(Committed.of(time.perf_counter() - started, rows))

    def _connection(self) -> Connection | None:
        if self._held is None and self.store.dialect == "sqlite":
            self._held = self.store.writing_connection()
        return self._held

    def _observe(self, committed: Committed) -> None:
        committed.record(self.metrics)

    def _store(self, conn: Connection, batch: list[Job]) -> BatchRows | None:
        """Read what the rules need, decide, write; dry-run jobs are decided apart, on the
        same reads, and write nothing. The rows written, None when nothing was."""
        reads = self._read(conn, batch)
        live = batch
        if any(job.dry_run for job in batch):
            live = [job for job in batch if not job.dry_run]
            dry = [job for job in batch if job.dry_run]
            _fill(dry, decide(dry, reads, self.codec))
        if live:
            listened = self.listened_types(conn) if self.listened_types is not None else frozenset()
            decision = decide(live, reads, self.codec, listened)
            write_rows(conn, self.statements, self.codec, decision.rows)
            _fill(live, decision)
            return decision.rows
        return None

    # -- reading what the rules need -------------------------------------------------------

    def _read(self, conn: Connection, batch: list[Job]) -> Reads:
        contacts = self._resolve_contacts(conn, batch)
        # Only contacts that were not found can have been erased: the usual batch asks nothing.
        missing = {
            job.contact_id
            for job in batch
            if job.contact_id is not None and job.contact_id not in contacts
        }
        return Reads(
            contacts,
            self._consent_states(conn, batch, contacts),
            self._stored_client_ids(conn, batch),
            self._stored_ids(conn, batch),
            erased_contacts(conn, missing),
        )

    def _resolve_contacts(self, conn: Connection, batch: list[Job]) -> dict[uuid.UUID, uuid.UUID]:
        """Each job's contact id -> the contact to store under (following merges)."""
        c = self.codec
        resolved: dict[uuid.UUID, uuid.UUID] = {}
        # asked -> look up now
        pending = {job.contact_id: job.contact_id for job in batch if job.contact_id is not None}
        for _ in range(8):
            if not pending:
                break
            look_up = list(set(pending.values()))
            marks = c.placeholders(len(look_up))
            rows = fetch_all(
                conn,
                f"SELECT id, merged_into FROM contacts WHERE id IN ({marks})",  # noqa: S608
                tuple(c.ident(i) for i in look_up),
            )
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
    ) -> dict[tuple[uuid.UUID, uuid.UUID], ConsentState]:
        by_consent: dict[uuid.UUID, set[uuid.UUID]] = {}
        for job in batch:
            consent_id = job.channel.tracking_consent_id
            if consent_id is None or job.contact_id is None:
                continue
            contact = contact_ids.get(job.contact_id)
            if contact is not None:
                by_consent.setdefault(consent_id, set()).add(contact)
        states: dict[tuple[uuid.UUID, uuid.UUID], ConsentState] = {}
        for consent_id, ids in by_consent.items():
            for contact, state in current_states(conn, list(ids), consent_id).items():
                states[(consent_id, contact)] = state
        return states

    def _stored_ids(self, conn: Connection, batch: list[Job]) -> set[uuid.UUID]:
        """Those ids of the items of replays and imports that keep their ids that are stored
        already."""
        wanted = [
            item.id
            for job in batch
            if job.replay_of is not None or job.keep_ids
            for item in job.items
            if isinstance(item, Accepted)
        ]
        if not wanted:
            return set()
        return set(
            conn.execute(sa.select(activities.c.id).where(activities.c.id.in_(wanted))).scalars()
        )

    def _stored_client_ids(self, conn: Connection, batch: list[Job]) -> ClientIds:
        wanted: dict[uuid.UUID, set[str]] = {}
        for job in batch:
            for item in job.items:
                if isinstance(item, Accepted) and item.client_id is not None:
                    wanted.setdefault(job.channel.id, set()).add(item.client_id)
        found: ClientIds = {}
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


class Committed(msgspec.Struct, array_like=True, frozen=True):
    """What one committed transaction stored, for the metrics (counted once per commit)."""

    seconds: float
    # Whether the transaction wrote (a dry run's writes nothing).
    wrote: bool = False
    size: int = 0
    acknowledged: int = 0
    duplicates: int = 0
    rejections: dict[str, int] = {}

    @classmethod
    def of(cls, seconds: float, rows: BatchRows | None) -> Committed:
        if rows is None:
            return cls(seconds)
        return cls(
            seconds,
            True,
            len(rows.activities) + len(rows.rejected),
            len(rows.activities),
            rows.duplicates,
            dict(rows.rejections),
        )

    def record(self, m: Metrics) -> None:
        m.commit_seconds.observe(self.seconds)
        if self.wrote:
            m.batch_size.observe(self.size)
            m.acknowledged.inc(self.acknowledged)
            if self.duplicates:
                m.deduplicated.inc(self.duplicates)
            if self.rejections:
                m.count_rejections(self.rejections)


def deliver(
    batch: list[Job], outcomes: list[Outcome], here: asyncio.AbstractEventLoop | None = None
) -> None:
    """Hand each job its outcome: in its event loop, woken once for all of its jobs; at once
    for the jobs of ``here``, the loop whose thread this is."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Job, Outcome]]] = {}
    for job, outcome in zip(batch, outcomes, strict=True):
        if job.loop is None or job.loop is here:
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


def _fill(jobs: list[Job], decision: Decision) -> None:
    for job, results, missing, (kept, refused) in zip(
        jobs, decision.results, decision.missing, decision.kept, strict=True
    ):
        job.results = results
        job.missing_contact = missing
        job.rejected_kept, job.rejected_refused = kept, refused

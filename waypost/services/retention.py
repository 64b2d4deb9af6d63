"""The purge: deleting expired activities, rejected activities, rollups and daily counts.

This module holds every DELETE of retention (docs/data-lifecycle.md). What expires is decided
in :mod:`waypost.domain.retention`; here it is deleted in batches of
at most ``WAYPOST_PURGE_BATCH_SIZE`` rows (fewer while batches take longer than a target:
:func:`~waypost.domain.retention.next_batch_size`), each its own short write transaction
found through an index (an activity type's ``(type_id, occurred_at)``, the rejected activities'
``(received_at, id)``, the rollups' ``(type_id, contact_id, day)`` walked contact by contact),
with a pause after each batch so that the writer is never kept waiting long. One node at a
time purges: the ``purge`` lease (:mod:`waypost.services.leases`). Each purge is recorded in
``purge_runs``.

Purging activities leaves their rollups, daily counts and counts per field value alone:
contact groups and reports count them until the rollups expire in turn, with their day.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy import Connection

from waypost.clock import Clock
from waypost.domain.retention import (
    PurgePlan,
    TypeRetention,
    first_batch_size,
    next_batch_size,
    pause_after,
    plan_purge,
    target_batch_seconds,
)
from waypost.ids import new_id
from waypost.metrics import Metrics
from waypost.services.leases import Lease, node_name
from waypost.settings import Settings
from waypost.store import StorageUnavailable, Store
from waypost.store.schema import (
    activities,
    activity_daily_counts,
    activity_rollups,
    activity_types,
    activity_value_counts,
    purge_runs,
    rejected_activities,
)

log = logging.getLogger("waypost.retention")

LEASE = "purge"
LEASE_SECONDS = 300.0
ERROR_LENGTH: int = purge_runs.c.error.type.length  # type: ignore[attr-defined]

# Told, after each batch, what was deleted: ("activities", code name, rows), ("rejected", "",
# rows), ("rollups", "", rows) or ("daily_counts", "", rows).
Progress = Callable[[str, str, int], None]


class PurgeRun(msgspec.Struct):
    """One purge: where and when it ran, how it ended, and what it deleted."""

    id: uuid.UUID
    node: str
    trigger: str
    status: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    activities: dict[str, int]
    activities_deleted: int
    rejected_deleted: int
    rollups_deleted: int
    daily_counts_deleted: int
    duration_ms: int | None
    error: str | None


class PurgeEstimate(msgspec.Struct):
    """What a purge would delete now (a dry run): activities per type code name, and the
    other rows, with the moments and day before which they count as expired."""

    activities: dict[str, int]
    rejected: int
    rollups: int
    daily_counts: int
    rejected_before: dt.datetime
    rollups_before: dt.date

    @property
    def total(self) -> int:
        return sum(self.activities.values()) + self.rejected + self.rollups + self.daily_counts


class PurgeStopped(Exception):
    """The purge was asked to stop (the server is shutting down) or lost its lease."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


class RetentionService:
    """Purges on the store, with the clock's time and the settings' retentions."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        clock: Clock,
        node: str | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics if metrics is not None else Metrics()
        self.settings = settings
        self.clock = clock
        self.node = node or node_name()
        self.batch_size = settings.purge_batch_size
        self.lease = Lease(store, LEASE, self.node, clock, LEASE_SECONDS)
        # How long each write transaction of the latest purge took, in seconds: how long it
        # held SQLite's write lock (the benchmark reports them).
        self.batch_seconds: list[float] = []

    # -- what expires ----------------------------------------------------------------------

    def plan(self) -> PurgePlan:
        """What a purge now deletes, from the types' retentions and the settings."""
        with self.store.read() as conn:
            rows = conn.execute(
                sa.select(
                    activity_types.c.id, activity_types.c.code_name, activity_types.c.retention_days
                )
            ).all()
        return plan_purge(
            self.clock.now(),
            [(r.id, r.code_name, r.retention_days) for r in rows],
            self.settings.rejected_retention_days,
            self.settings.rollup_retention_days,
        )

    def estimate(self, plan: PurgePlan | None = None) -> PurgeEstimate:
        """Count what a purge would delete, deleting nothing."""
        plan = plan or self.plan()
        a, r, d = activities, activity_rollups, activity_daily_counts
        count = sa.func.count()
        with self.store.read() as conn:
            by_type = {
                t.code_name: conn.execute(
                    sa.select(count).where(a.c.type_id == t.type_id, a.c.occurred_at < t.cutoff)
                ).scalar_one()
                for t in plan.types
            }
            rejected = conn.execute(
                sa.select(count).where(rejected_activities.c.received_at < plan.rejected_cutoff)
            ).scalar_one()
            rollups = conn.execute(
                sa.select(count).where(r.c.day < plan.rollup_cutoff)
            ).scalar_one()
            daily = conn.execute(sa.select(count).where(d.c.day < plan.rollup_cutoff)).scalar_one()
        return PurgeEstimate(
            activities={code: int(n) for code, n in by_type.items()},
            rejected=int(rejected),
            rollups=int(rollups),
            daily_counts=int(daily),
            rejected_before=plan.rejected_cutoff,
            rollups_before=plan.rollup_cutoff,
        )

    # -- purging ---------------------------------------------------------------------------

    def purge(
        self,
        trigger: str = "command",
        progress: Progress | None = None,
        stop: threading.Event | None = None,
    ) -> PurgeRun | None:
        """Delete what has expired, batch by batch, and record it. None, deleting nothing,
        when another node is purging (it holds the lease)."""
        if not self.lease.acquire():
            return None
        try:
            return self._purge_holding_lease(trigger, progress, stop)
        finally:
            try:
                self.lease.release()
            except StorageUnavailable:
                log.warning("the purge lease could not be released; it expires by itself")

    def _purge_holding_lease(
        self, trigger: str, progress: Progress | None, stop: threading.Event | None
    ) -> PurgeRun:
        started = time.perf_counter()
        run = PurgeRun(
            id=new_id(),
            node=self.node,
            trigger=trigger,
            status="running",
            started_at=self.clock.now(),
            finished_at=None,
            activities={},
            activities_deleted=0,
            rejected_deleted=0,
            rollups_deleted=0,
            daily_counts_deleted=0,
            duration_ms=None,
            error=None,
        )
        with self.store.write() as conn:
            # Holding the lease, no other purge runs: one still "running" died on its node.
            conn.execute(
                purge_runs.update()
                .where(purge_runs.c.status == "running")
                .values(status="interrupted")
            )
            conn.execute(purge_runs.insert().values(**msgspec.structs.asdict(run)))
        self.batch_seconds = []
        batches = _Batches(self, run, progress, stop)
        try:
            batches.run(self.plan())
            run.status = "finished"
        except PurgeStopped as exc:
            run.status = exc.status
        except Exception as exc:
            run.status = "failed"
            run.error = f"{type(exc).__name__}: {exc}"[:ERROR_LENGTH]
            log.exception("the purge failed")
        run.finished_at = self.clock.now()
        run.duration_ms = round((time.perf_counter() - started) * 1000)
        values = msgspec.structs.asdict(run)
        del values["id"]
        with self.store.write() as conn:
            conn.execute(purge_runs.update().where(purge_runs.c.id == run.id).values(**values))
        self._count(run)
        return run

    def _count(self, run: PurgeRun) -> None:
        m = self.metrics
        m.purge_runs.labels(run.status).inc()
        m.purged.labels("activities").inc(run.activities_deleted)
        m.purged.labels("rejected").inc(run.rejected_deleted)
        m.purged.labels("rollups").inc(run.rollups_deleted)
        m.purged.labels("daily_counts").inc(run.daily_counts_deleted)

    # -- what was purged -------------------------------------------------------------------

    def runs(self, limit: int = 20) -> list[PurgeRun]:
        """The latest purges, newest first."""
        stmt = sa.select(purge_runs).order_by(purge_runs.c.started_at.desc()).limit(limit)
        with self.store.read() as conn:
            return [_run(row) for row in conn.execute(stmt)]

    def last_run(self) -> PurgeRun | None:
        """The latest purge, on any node."""
        found = self.runs(1)
        return found[0] if found else None

    def due(self, interval_seconds: float) -> bool:
        """Whether the latest purge, on any node, started at least ``interval_seconds`` ago."""
        last = self.last_run()
        if last is None:
            return True
        return bool((self.clock.now() - last.started_at).total_seconds() >= interval_seconds)


class _Batches:
    """The batches of one purge, holding its lease."""

    def __init__(
        self,
        service: RetentionService,
        run: PurgeRun,
        progress: Progress | None,
        stop: threading.Event | None,
    ) -> None:
        self.service = service
        self.run_record = run
        self.progress = progress
        self.stop = stop
        self.size = first_batch_size(service.batch_size)
        self.target = target_batch_seconds(service.store.dialect)
        self.renewed = time.monotonic()

    def run(self, plan: PurgePlan) -> None:
        a, r, record = activities, rejected_activities, self.run_record
        for t in plan.types:

            def expired(size: int, t: TypeRetention = t) -> Any:
                ids = (
                    sa.select(a.c.id)
                    .where(a.c.type_id == t.type_id, a.c.occurred_at < t.cutoff)
                    .order_by(a.c.occurred_at)
                    .limit(size)
                )
                return a.delete().where(a.c.id.in_(ids.scalar_subquery()))

            for n in self._drain(expired):
                record.activities[t.code_name] = record.activities.get(t.code_name, 0) + n
                record.activities_deleted += n
                self._after("activities", t.code_name, n)

        def rejected(size: int) -> Any:
            ids = (
                sa.select(r.c.id)
                .where(r.c.received_at < plan.rejected_cutoff)
                .order_by(r.c.received_at)
                .limit(size)
            )
            return r.delete().where(r.c.id.in_(ids.scalar_subquery()))

        for n in self._drain(rejected):
            record.rejected_deleted += n
            self._after("rejected", "", n)
        for t_id in self._type_ids():
            self._rollups(t_id, plan)
            d = activity_daily_counts
            days = d.delete().where(d.c.type_id == t_id, d.c.day < plan.rollup_cutoff)
            n = self._batch(_deleting(days))
            if n:
                record.daily_counts_deleted += n
                self._after("daily_counts", "", n)
            # The counts per field value go with their day, as the daily counts do.
            v = activity_value_counts
            values = v.delete().where(v.c.type_id == t_id, v.c.day < plan.rollup_cutoff)
            self._batch(_deleting(values))

    def _rollups(self, type_id: uuid.UUID, plan: PurgePlan) -> None:
        # Rollups have no index by day: walk the type's (type_id, contact_id, day) index
        # contact by contact, so that the purge reads it once in all.
        r = activity_rollups
        after: uuid.UUID | None = None
        while True:
            page = (
                sa.select(r.c.contact_id, r.c.day)
                .where(r.c.type_id == type_id, r.c.day < plan.rollup_cutoff)
                .order_by(r.c.contact_id, r.c.day)
                .limit(self.size)
            )
            if after is not None:
                page = page.where(r.c.contact_id >= after)

            def delete(conn: Connection, page: sa.Select[Any] = page) -> tuple[int, Any]:
                keys = [tuple(row) for row in conn.execute(page)]
                if not keys:
                    return 0, None
                gone = conn.execute(
                    r.delete().where(
                        r.c.type_id == type_id, sa.tuple_(r.c.contact_id, r.c.day).in_(keys)
                    )
                )
                return gone.rowcount, keys[-1][0]

            size = self.size
            n, after = self._batch(delete)
            if n:
                self.run_record.rollups_deleted += n
                self._after("rollups", "", n)
            if n < size:
                return

    def _type_ids(self) -> list[uuid.UUID]:
        with self.service.store.read() as conn:
            return list(
                conn.execute(sa.select(activity_types.c.id).order_by(activity_types.c.id)).scalars()
            )

    def _batch(self, work: Callable[[Connection], Any]) -> Any:
        if self.stop is not None and self.stop.is_set():
            raise PurgeStopped("stopped")
        with self.service.store.write() as conn:
            # Timed once the write lock is held (SQLite's BEGIN IMMEDIATE), to the commit: a
            # wait for the writer to let go of it says nothing of how long a batch holds it.
            started = time.perf_counter()
            result = work(conn)
        took = time.perf_counter() - started
        self.service.batch_seconds.append(took)
        self.size = next_batch_size(self.size, took, self.service.batch_size, self.target)
        paused = time.perf_counter()
        self._checkpoint()
        time.sleep(max(0.0, pause_after(took) - (time.perf_counter() - paused)))
        return result

    def _checkpoint(self) -> None:
        """On SQLite, copy what the batch wrote to the write-ahead log into the database file
        now, without taking the write lock (a passive checkpoint). Otherwise the commit that
        fills the log past SQLite's threshold does it, and that is mostly the writer's: an
        activity would wait for the purge's scattered pages to be written out and synced."""
        if self.service.store.dialect != "sqlite":
            return
        with self.service.store.read() as conn:
            # On the driver's connection: outside any transaction, which a checkpoint needs.
            conn.connection.dbapi_connection.execute(  # type: ignore[union-attr]
                "PRAGMA wal_checkpoint(PASSIVE)"
            ).fetchall()

    def _drain(self, statement: Callable[[int], Any]) -> Iterator[int]:
        """Run ``statement(size)`` (a DELETE of at most ``size`` rows) batch after batch, the
        rows each deleted, until one deletes fewer than it could."""
        while True:
            size = self.size
            n = self._batch(_deleting(statement(size)))
            if n:
                yield n
            if n < size:
                return

    def _after(self, what: str, code: str, n: int) -> None:
        if self.progress is not None:
            self.progress(what, code, n)
        # Renewed well before it expires, so that no other node takes it meanwhile.
        if time.monotonic() - self.renewed > LEASE_SECONDS / 3:
            if not self.service.lease.renew():
                raise PurgeStopped("interrupted")
            self.renewed = time.monotonic()


def _deleting(statement: Any) -> Callable[[Connection], int]:
    def delete(conn: Connection) -> int:
        return int(conn.execute(statement).rowcount)

    return delete


def _run(row: sa.Row[Any]) -> PurgeRun:
    m = row._mapping
    return PurgeRun(**{name: m[name] for name in PurgeRun.__struct_fields__})

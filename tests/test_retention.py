"""The purge (waypost/services/retention.py) on SQLite and PostgreSQL: exactly the expired rows
go, rollups and group memberships stay, one purger at a time, every purge recorded."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from starlette.testclient import TestClient

from waypost.clock import FakeClock
from waypost.hub import Hub
from waypost.services.activity_types import ActivityType
from waypost.services.retention import PurgeRun, RetentionService
from waypost.settings import Settings
from waypost.store.schema import (
    activities,
    activity_daily_counts,
    activity_rollups,
    purge_runs,
    rejected_activities,
)

if TYPE_CHECKING:
    from tests.conftest import Tracker
    from tests.group_support import Groups, ago
else:
    from conftest import Tracker
    from group_support import Groups, ago


def stored_ids(hub: Hub) -> set[uuid.UUID]:
    with hub.store.read() as conn:
        return set(conn.execute(sa.select(activities.c.id)).scalars())


def count(hub: Hub, table: sa.Table) -> int:
    with hub.store.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def rollup_rows(hub: Hub) -> list[tuple[Any, ...]]:
    with hub.store.read() as conn:
        return sorted(tuple(r) for r in conn.execute(sa.select(activity_rollups)))


def log_at(
    tracker: Tracker, type_code: str, days: Sequence[float], contact: str | None = None
) -> list[uuid.UUID]:
    """One activity of ``type_code`` per age in days, for one contact; their ids."""
    results = tracker.log(
        [{"type": type_code, "value": "v", "occurredAt": ago(d)} for d in days], contact
    )
    assert {r["status"] for r in results} == {202}, results
    return [uuid.UUID(r["id"]) for r in results]


def purger(hub: Hub, settings: Settings, **kwargs: Any) -> RetentionService:
    return RetentionService(hub.store, settings, kwargs.pop("clock", hub.clock), **kwargs)


def test_a_purge_removes_exactly_the_expired_activities_of_each_type(
    hub: Hub,
    tracker: Tracker,
    make_type: Callable[..., ActivityType],
) -> None:
    short = make_type(name="Short", retention_days=10)
    month = make_type(name="Month", retention_days=30)
    forever = make_type(name="Forever")
    ages = [5, 15, 40]
    contact = tracker.new_contact()
    ids = {
        t.code_name: log_at(tracker, t.code_name, ages, contact) for t in (short, month, forever)
    }
    visits = tracker.log(
        [{"type": "pagevisit", "url": "https://a.example/", "occurredAt": ago(400)}]
    )
    rollups_before = rollup_rows(hub)
    daily_before = count(hub, activity_daily_counts)

    estimate = hub.retention.estimate()
    assert estimate.activities == {short.code_name: 2, month.code_name: 1}
    run = hub.retention.purge()

    assert run is not None
    assert run.status == "finished"
    assert run.activities == {short.code_name: 2, month.code_name: 1}
    assert run.activities_deleted == 3
    kept = {
        *ids[short.code_name][:1],
        *ids[month.code_name][:2],
        *ids[forever.code_name],
        uuid.UUID(visits[0]["id"]),
    }
    assert stored_ids(hub) == kept
    # The rollups and daily counts of the purged activities stay.
    assert rollup_rows(hub) == rollups_before
    assert count(hub, activity_daily_counts) == daily_before
    assert hub.retention.last_run() == run
    # Nothing more has expired: a second purge deletes nothing.
    again = hub.retention.purge()
    assert again is not None
    assert (again.activities, again.activities_deleted) == ({}, 0)


def test_a_group_keeps_its_members_after_their_activities_are_purged(
    hub: Hub,
    client: TestClient,
    tracker: Tracker,
    admin_headers: dict[str, str],
    make_type: Callable[..., ActivityType],
) -> None:
    kind = make_type(name="Loan calculator usage", retention_days=10)
    regular, occasional, recent = (tracker.new_contact() for _ in range(3))
    log_at(tracker, kind.code_name, [12, 15, 20], regular)
    log_at(tracker, kind.code_name, [12, 15], occasional)
    log_at(tracker, kind.code_name, [1, 2, 3], recent)
    groups = Groups(client, admin_headers)
    group = groups.create({"activity": {"type": kind.code_name, "at_least": 3, "within_days": 30}})

    def members() -> set[str]:
        page = client.get(f"/api/groups/{group['id']}/members", headers=admin_headers).json()
        return {m["contact"] for m in page["data"]}

    before = members()
    assert before == {regular, recent}
    run = hub.retention.purge()
    assert run is not None
    assert run.activities_deleted == 5
    hub.groups.recompute(uuid.UUID(group["id"]))
    assert members() == before
    check = client.get(f"/api/groups/{group['id']}/check/{regular}", headers=admin_headers)
    assert check.json()["member"] is True, check.text


def test_rejected_activities_expire_after_their_own_retention(
    hub: Hub, tracker: Tracker, make_settings: Callable[..., Settings]
) -> None:
    results = tracker.log([{"type": "no_such_type", "value": "x"}] * 3)
    assert {r["status"] for r in results} == {404}
    clock = FakeClock(dt.datetime.now(dt.UTC) + dt.timedelta(days=29))
    settings = make_settings(rejected_retention_days=30)
    early = purger(hub, settings, clock=clock).purge()
    assert early is not None
    assert early.rejected_deleted == 0
    clock.advance(2 * 86400)
    late = purger(hub, settings, clock=clock)
    assert late.estimate().rejected == 3
    run = late.purge()
    assert run is not None
    assert run.rejected_deleted == 3
    assert count(hub, rejected_activities) == 0


def test_rollups_and_daily_counts_expire_after_the_rollup_retention(
    hub: Hub,
    tracker: Tracker,
    make_type: Callable[..., ActivityType],
    make_settings: Callable[..., Settings],
) -> None:
    kind = make_type(name="Kept")  # no retention: the activities stay
    contacts = [tracker.new_contact() for _ in range(3)]
    for contact in contacts:
        log_at(tracker, kind.code_name, [5, 25, 26], contact)
    assert len(rollup_rows(hub)) == 9
    service = purger(hub, make_settings(rollup_retention_days=20, purge_batch_size=2))
    estimate = service.estimate()
    assert (estimate.rollups, estimate.daily_counts) == (6, 2)
    run = service.purge()
    assert run is not None
    assert (run.rollups_deleted, run.daily_counts_deleted, run.activities_deleted) == (6, 2, 0)
    today = dt.datetime.now(dt.UTC).date()
    assert {row[2] for row in rollup_rows(hub)} == {today - dt.timedelta(days=5)}
    assert count(hub, activity_daily_counts) == 1
    assert count(hub, activities) == 9


def test_batches_delete_everything_that_expired(
    hub: Hub,
    tracker: Tracker,
    make_type: Callable[..., ActivityType],
    make_settings: Callable[..., Settings],
) -> None:
    kind = make_type(name="Brief", retention_days=1)
    kept = log_at(tracker, kind.code_name, [0])
    log_at(tracker, kind.code_name, [2 + i / 10 for i in range(7)])
    seen: list[tuple[str, str, int]] = []
    service = purger(hub, make_settings(purge_batch_size=3))
    run = service.purge(progress=lambda *step: seen.append(step))
    assert run is not None
    assert seen == [("activities", kind.code_name, n) for n in (3, 3, 1)]
    assert stored_ids(hub) == set(kept)


def test_a_dry_run_deletes_nothing(
    hub: Hub, tracker: Tracker, make_type: Callable[..., ActivityType]
) -> None:
    kind = make_type(name="Dry", retention_days=3)
    log_at(tracker, kind.code_name, [1, 4, 5])
    before = stored_ids(hub)
    estimate = hub.retention.estimate()
    assert estimate.activities == {kind.code_name: 2}
    assert estimate.total == 2
    assert stored_ids(hub) == before
    assert hub.retention.last_run() is None


def test_two_purgers_do_not_both_run(
    hub: Hub,
    tracker: Tracker,
    settings: Settings,
    make_type: Callable[..., ActivityType],
) -> None:
    kind = make_type(name="Contended", retention_days=1)
    log_at(tracker, kind.code_name, [3, 4])
    first, second = purger(hub, settings, node="node-a"), purger(hub, settings, node="node-b")
    inside, release = threading.Event(), threading.Event()

    def hold(*_: object) -> None:
        inside.set()
        assert release.wait(10)

    runs: list[PurgeRun | None] = []
    thread = threading.Thread(target=lambda: runs.append(first.purge(progress=hold)))
    thread.start()
    try:
        assert inside.wait(10)
        assert first.lease.holder() == "node-a"
        assert second.purge() is None
    finally:
        release.set()
        thread.join()
    assert runs[0] is not None
    assert runs[0].activities_deleted == 2
    with hub.store.read() as conn:
        nodes = conn.execute(sa.select(purge_runs.c.node)).scalars().all()
    assert nodes == ["node-a"]
    # Released: the other node may purge now.
    assert second.purge() is not None


def test_a_purge_that_died_is_marked_interrupted(hub: Hub, settings: Settings) -> None:
    dead = uuid.uuid4()
    with hub.store.write() as conn:
        conn.execute(
            purge_runs.insert().values(
                id=dead,
                node="gone:1",
                trigger="schedule",
                status="running",
                started_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2),
                activities={},
            )
        )
    run = hub.retention.purge()
    assert run is not None
    statuses = {r.id: r.status for r in hub.retention.runs()}
    assert statuses == {dead: "interrupted", run.id: "finished"}


def test_a_purge_asked_to_stop_stops_between_batches(
    hub: Hub, tracker: Tracker, make_type: Callable[..., ActivityType]
) -> None:
    kind = make_type(name="Stopped", retention_days=1)
    log_at(tracker, kind.code_name, [3])
    stop = threading.Event()
    stop.set()
    run = hub.retention.purge("schedule", stop=stop)
    assert run is not None
    assert (run.status, run.activities_deleted, run.trigger) == ("stopped", 0, "schedule")
    assert count(hub, activities) == 1

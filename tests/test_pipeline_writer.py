"""The group-commit writer: 202 only after the commit, rollups in the same transaction, consent
state on every activity, and 503 (never 202) when the database cannot be written."""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import QueuePool
from starlette.testclient import TestClient

import waypost.pipeline.writer as writer_module
import waypost.pipeline.writer_rows as writer_rows
from waypost.app import create_app
from waypost.hub import Hub
from waypost.ids import utcnow
from waypost.pipeline.catalog import ChannelInfo
from waypost.pipeline.prepare import Accepted, Rejected, prepare
from waypost.pipeline.writer import Writer, WriterFront
from waypost.pipeline.writer_decision import ActivityResult, Job
from waypost.services.activity_types import ActivityType
from waypost.settings import Settings
from waypost.store import StorageUnavailable, Store, make_engine
from waypost.store.schema import (
    activities,
    activity_daily_counts,
    activity_rollups,
    contacts,
    rejected_activities,
)

if TYPE_CHECKING:
    from tests.conftest import ErrorCheck, Tracker
    from tests.writer_support import check_a_stream_waits_at_most_the_delay
else:
    from writer_support import check_a_stream_waits_at_most_the_delay


def count(hub: Hub, table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
    with hub.store.read() as conn:
        query = sa.select(sa.func.count()).select_from(table).where(*where)
        return int(conn.execute(query).scalar_one())


def stored(hub: Hub, activity_id: str) -> sa.Row[Any]:
    with hub.store.read() as conn:
        return conn.execute(
            sa.select(activities).where(activities.c.id == uuid.UUID(activity_id))
        ).one()


def libpq_url(settings: Settings) -> str:
    return settings.database_url.replace("postgresql+psycopg://", "postgresql://", 1)


@contextlib.contextmanager
def write_lock(settings: Settings) -> Iterator[None]:
    """Hold the database's write lock from another connection, as a stuck writer would."""
    if settings.is_sqlite:
        path = settings.database_url.removeprefix("sqlite:///")
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    with psycopg.connect(libpq_url(settings)) as pg:
        pg.execute(
            "LOCK TABLE activities, rejected_activities, activity_rollups, contacts, "
            "consent_agreements IN EXCLUSIVE MODE"
        )
        yield
        pg.rollback()


def impatient_hub(settings: Settings, *, read_only: bool = False) -> Hub:
    """A hub whose connections give up on a lock after 0.2 s, or cannot write at all."""
    if not settings.is_sqlite:
        # Session settings through the connection options: a SET would be rolled back.
        options = "-c lock_timeout=200"
        if read_only:
            options += " -c default_transaction_read_only=on"
        return Hub(settings, Store(make_engine(settings, connect_args={"options": options})))
    engine = make_engine(settings)

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=200")
        if read_only:
            dbapi_connection.execute("PRAGMA query_only=ON")

    return Hub(settings, Store(engine))


@pytest.fixture
def outage_client(settings: Settings) -> Iterator[Callable[..., TestClient]]:
    """``outage_client(read_only=...)``: a client on an impatient or read-only hub."""
    made: list[tuple[Hub, TestClient]] = []

    def make(read_only: bool = False) -> TestClient:
        hub = impatient_hub(settings, read_only=read_only)
        client = TestClient(create_app(settings, hub=hub))
        client.__enter__()
        made.append((hub, client))
        return client

    yield make
    for hub, client in made:
        client.__exit__(None, None, None)
        hub.close()


def submit(
    writer: WriterFront,
    channel: ChannelInfo,
    contact: uuid.UUID,
    items: list[Accepted | Rejected],
    now: dt.datetime,
) -> list[ActivityResult]:
    [results] = writer.submit_and_wait([Job(channel, contact, items, now)])
    return results


def post(client: TestClient, tracker: Tracker, contact: str, sent: list[Any]) -> Any:
    body = {"channel": str(tracker.channel.id), "contact": contact, "activities": sent}
    return client.post("/tracking/activities", json=body, headers=tracker.headers)


# -- group commit ------------------------------------------------------------------------


def test_many_requests_share_one_commit_and_are_answered_after_it(
    tracker: Tracker, hub: Hub, settings: Settings
) -> None:
    """While the database is locked nothing is answered; then the queued requests commit
    together, in fewer transactions than requests."""
    contact = uuid.UUID(tracker.new_contact())
    snapshot = hub.catalog.get()
    channel = snapshot.channels[tracker.channel.id]
    requests = 12
    outcomes: dict[int, list[ActivityResult]] = {}

    def request(n: int) -> None:
        now = utcnow()
        raw = f'{{"type": "click", "value": "r{n}", "id": "req-{n}"}}'.encode()
        items = [prepare(raw, snapshot, now, 16_384)]
        outcomes[n] = submit(hub.writer, channel, contact, items, now)

    hub.writer.start()
    before = hub.writer.batches
    with write_lock(settings):
        threads = [threading.Thread(target=request, args=(n,)) for n in range(requests)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        assert outcomes == {}, "answered before the commit"
        assert count(hub, activities) == 0
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == list(range(requests))
    assert {r.status for results in outcomes.values() for r in results} == {202}
    assert count(hub, activities) == requests
    assert hub.writer.batches - before < requests
    for n, [result] in outcomes.items():
        assert stored(hub, str(result.id)).value == f"r{n}"


def test_on_sqlite_the_writer_keeps_its_connection_until_a_transaction_fails(
    tracker: Tracker, hub: Hub, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer's transactions run on one connection kept between them on SQLite (on
    PostgreSQL each takes one from the pool); a failed transaction gives it back, so the next
    starts on one from the pool, and stopping gives it back too."""
    contact = uuid.UUID(tracker.new_contact())
    snapshot = hub.catalog.get()
    channel = snapshot.channels[tracker.channel.id]
    pool = hub.store.engine.pool
    assert isinstance(pool, QueuePool)
    drivers: list[int] = []
    # The writer's own connections: other threads of the hub (its catalog, its group updater)
    # take connections from the same pool at any moment, so the pool's count is not the writer's.
    held: set[int] = set()

    @event.listens_for(hub.store.engine, "begin")
    def begun(conn: sa.Connection) -> None:
        if threading.current_thread().name == "waypost-writer":
            drivers.append(id(conn.connection.driver_connection))

    @event.listens_for(pool, "checkout")
    def taken(_dbapi: object, record: object, _proxy: object) -> None:
        if threading.current_thread().name == "waypost-writer":
            held.add(id(record))

    @event.listens_for(pool, "checkin")
    def given_back(_dbapi: object, record: object) -> None:
        held.discard(id(record))

    def writer_holds() -> int:
        return len(held)

    def one(value: str) -> list[ActivityResult]:
        now = utcnow()
        raw = f'{{"type": "click", "value": "{value}"}}'.encode()
        return submit(hub.writer, channel, contact, [prepare(raw, snapshot, now, 16_384)], now)

    hub.writer.start()
    assert [r.status for r in one("a") + one("b")] == [202, 202]
    assert len(drivers) == 2
    if settings.is_sqlite:
        assert drivers[0] == drivers[1]
        assert writer_holds() == 1, "kept between transactions"
    else:
        assert writer_holds() == 0

    def failing(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("deciding failed")

    with monkeypatch.context() as patched:
        patched.setattr(writer_module, "decide", failing)
        with pytest.raises(StorageUnavailable):
            one("never")
    assert writer_holds() == 0, "given back after the failure"
    assert [r.status for r in one("c")] == [202]
    assert writer_holds() == (1 if settings.is_sqlite else 0)
    hub.writer.stop()
    assert writer_holds() == 0, "given back when the writer stops"
    assert count(hub, activities) == 3


def test_submit_and_wait_stores_prepared_activities(tracker: Tracker, hub: Hub) -> None:
    contact = uuid.UUID(tracker.new_contact())
    snapshot = hub.catalog.get()
    now = utcnow()
    items = [
        prepare(b'{"type": "click", "value": "a"}', snapshot, now, 16_384),
        prepare(b'{"type": "click"}', snapshot, now, 16_384),
    ]
    assert isinstance(items[0], Accepted)
    results = submit(hub.writer, snapshot.channels[tracker.channel.id], contact, items, now)
    assert [r.status for r in results] == [202, 400]
    assert results[0].id == items[0].id
    assert results[1].error is not None
    assert results[1].error.code == "missing_field"
    assert count(hub, activities) == 1
    assert count(hub, rejected_activities) == 1


def test_a_dry_run_job_writes_nothing_while_its_batch_commits_the_others(
    tracker: Tracker, hub: Hub
) -> None:
    contact = uuid.UUID(tracker.new_contact())
    snapshot = hub.catalog.get()
    channel = snapshot.channels[tracker.channel.id]
    now = utcnow()

    def items(value: str) -> list[Accepted | Rejected]:
        raw = f'{{"type": "click", "value": "{value}", "id": "{value}"}}'.encode()
        return [prepare(raw, snapshot, now, 16_384), prepare(b"{}", snapshot, now, 16_384)]

    # A delay keeps the writer waiting for the second job, so both share one transaction.
    writer = Writer(hub.store, max_batch=100, max_delay=0.5)
    try:
        live, dry = (
            Job(channel, contact, items("live"), now),
            Job(channel, contact, items("dry"), now),
        )
        dry.dry_run = True
        results = writer.submit_and_wait([live, dry])
    finally:
        writer.stop()
    assert writer.batches == 1
    assert [[r.status for r in job_results] for job_results in results] == [[202, 400]] * 2
    assert count(hub, activities) == 1
    assert stored(hub, str(results[0][0].id)).value == "live"
    assert count(hub, rejected_activities) == 1


def test_a_payload_that_is_not_utf8_fails_no_request_of_its_transaction(
    tracker: Tracker, hub: Hub
) -> None:
    """The transports refuse such bodies (400); should one reach the writer all the same, its
    activity is kept with the bytes replaced, and the requests sharing its commit stand."""
    contact = uuid.UUID(tracker.new_contact())
    snapshot = hub.catalog.get()
    channel = snapshot.channels[tracker.channel.id]
    now = utcnow()
    bad = prepare(b'{"type": "click", "value": "\xff"}', snapshot, now, 16_384)
    assert isinstance(bad, Rejected)
    good = prepare(b'{"type": "click", "value": "fine"}', snapshot, now, 16_384)
    writer = Writer(hub.store, max_batch=100, max_delay=0.5)
    try:
        results = writer.submit_and_wait(
            [Job(channel, contact, [bad], now), Job(channel, contact, [good], now)]
        )
    finally:
        writer.stop()
    assert writer.batches == 1
    assert [[r.status for r in job_results] for job_results in results] == [[400], [202]]
    assert count(hub, activities) == 1
    [kept] = rejected_rows_of(hub)
    assert kept.payload == {"type": "click", "value": "\ufffd"}


def test_a_request_the_writer_fails_on_fails_alone(
    tracker: Tracker, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error in one request's rows (a fault, not the storage's) fails that request (503,
    nothing stored), and the others of its transaction are stored one by one."""
    contact = uuid.UUID(tracker.new_contact())
    snapshot = hub.catalog.get()
    channel = snapshot.channels[tracker.channel.id]
    now = utcnow()
    real_row = writer_rows.activity_row

    def failing_row(c: Any, item: Accepted, *args: Any) -> Any:
        if item.value == "poison":
            raise ValueError("a fault in this request's rows")
        return real_row(c, item, *args)

    monkeypatch.setattr("waypost.pipeline.writer_decision.activity_row", failing_row)

    def job(value: str) -> Job:
        raw = f'{{"type": "click", "value": "{value}"}}'.encode()
        return Job(channel, contact, [prepare(raw, snapshot, now, 16_384)], now)

    # A delay keeps the writer waiting for the later jobs, so all three share one transaction.
    writer = Writer(hub.store, max_batch=100, max_delay=0.5)
    try:
        with pytest.raises(StorageUnavailable):
            writer.submit_and_wait([job("before"), job("poison"), job("after")])
    finally:
        writer.stop()
    # The two others, each in a transaction of its own.
    assert writer.batches == 2
    assert count(hub, activities) == 2
    assert {r.value for r in stored_rows(hub)} == {"before", "after"}


@pytest.mark.parametrize(
    ("fault", "alone", "committed", "failed"),
    [
        # A unique conflict: each job alone, once; one that conflicts again fails alone.
        ("conflict", "b", ["a", "c"], ["b"]),
        # A value the database refuses (text past its column): the job that holds it fails
        # alone, not the others of its transaction.
        ("refused value", "b", ["a", "c"], ["b"]),
        # A fault after the commit (an on-commit listener): nothing is stored again.
        ("after commit", None, [], ["a", "b", "c"]),
    ],
)
def test_a_batch_stored_job_by_job_stores_no_job_twice(
    tracker: Tracker,
    hub: Hub,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
    alone: str | None,
    committed: list[str],
    failed: list[str],
) -> None:
    writer = Writer(hub.store, max_batch=100, max_delay=0)
    commits: list[str] = []

    def transaction(batch: list[Job]) -> None:
        names = [job.source for job in batch]
        if fault == "after commit":
            commits.extend(names)
            raise RuntimeError("an on-commit listener failed")
        if (len(batch) > 1 or names == [alone]) and fault == "refused value":
            raise sa.exc.DataError("INSERT", None, Exception("value too long"))
        if len(batch) > 1 or names == [alone]:
            raise sa.exc.IntegrityError("INSERT", None, Exception("duplicate"))
        commits.extend(names)
        batch[0].results = []

    monkeypatch.setattr(writer, "_transaction", transaction)
    channel = hub.catalog.get().channels[tracker.channel.id]
    jobs = [Job(channel, None, [], utcnow(), source=name) for name in "abc"]
    try:
        outcomes = writer._outcomes(jobs)
    finally:
        writer.stop()
    if fault == "after commit":
        assert commits == ["a", "b", "c"]  # the one transaction, not run again
    else:
        assert commits == committed
    assert [
        job.source
        for job, outcome in zip(jobs, outcomes, strict=True)
        if isinstance(outcome, StorageUnavailable)
    ] == failed


def test_a_value_the_database_refuses_is_a_400_kept_as_rejected(
    tracker: Tracker, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request whose value the database refuses (a check before it should have refused it)
    is answered 400 for each activity, kept as rejected, not 503: its client would send it
    again without end. The others of its transaction are stored."""
    writer = Writer(hub.store, max_batch=100, max_delay=0)
    real = writer._transaction

    def transaction(batch: list[Job]) -> None:
        if any(
            isinstance(item, Accepted) and item.value == "too long"
            for job in batch
            for item in job.items
        ):
            raise sa.exc.DataError("INSERT", None, Exception("value too long"))
        real(batch)

    monkeypatch.setattr(writer, "_transaction", transaction)
    snapshot = hub.catalog.get()
    channel = snapshot.channels[tracker.channel.id]
    now = utcnow()

    def job(value: str) -> Job:
        contact = uuid.UUID(tracker.new_contact())
        raw = f'{{"type": "click", "value": "{value}"}}'.encode()
        return Job(channel, contact, [prepare(raw, snapshot, now, 16_384)], now)

    try:
        for batch in ([job("too long")], [job("fine"), job("too long"), job("fine")]):
            outcomes = writer._outcomes(batch)
            statuses = [[r.status for r in outcome] for outcome in outcomes]  # type: ignore[union-attr]
            expected = [[400] if len(batch) == 1 or n == 1 else [202] for n in range(len(batch))]
            assert statuses == expected
    finally:
        writer.stop()
    assert count(hub, activities) == 2
    kept = rejected_rows_of(hub)
    assert [(r.reason, r.status) for r in kept] == [("invalid_field", 400)] * 2
    assert [r.payload["value"] for r in kept] == ["too long"] * 2


def test_a_refused_value_keeps_a_pages_activities_within_its_room(
    tracker: Tracker, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kept as rejected after the database refused a value, a page's activities still keep
    within the room its job has for rejected activities, and the job says what was kept."""
    writer = Writer(hub.store, max_batch=100, max_delay=0)
    real = writer._transaction

    def transaction(batch: list[Job]) -> None:
        if any(isinstance(item, Accepted) for job in batch for item in job.items):
            raise sa.exc.DataError("INSERT", None, Exception("value too long"))
        real(batch)

    monkeypatch.setattr(writer, "_transaction", transaction)
    snapshot = hub.catalog.get()
    now = utcnow()
    raws = [b'{"type": "click", "value": "a"}', b'{"type": "click", "value": "b"}']
    items = [prepare(raw, snapshot, now, 16_384) for raw in raws]
    contact = uuid.UUID(tracker.new_contact())
    job = Job(snapshot.channels[tracker.channel.id], contact, items, now, rejected_room=1)
    try:
        [outcome] = writer._outcomes([job])
    finally:
        writer.stop()
    assert isinstance(outcome, list)
    assert [(r.status, r.error and r.error.code) for r in outcome] == [
        (400, "invalid_field"),
        (429, "rate_limited"),
    ]
    assert (job.rejected_kept, job.rejected_refused) == (1, 1)
    assert [r.payload["value"] for r in rejected_rows_of(hub)] == ["a"]


def stored_rows(hub: Hub) -> list[sa.Row[Any]]:
    with hub.store.engine.connect() as conn:
        return list(conn.execute(sa.select(activities)))


def rejected_rows_of(hub: Hub) -> list[sa.Row[Any]]:
    with hub.store.engine.connect() as conn:
        return list(conn.execute(sa.select(rejected_activities)))


def test_a_steady_stream_waits_at_most_the_delay_after_its_first_job(
    tracker: Tracker, hub: Hub
) -> None:
    """``max_delay`` bounds how long a transaction waits for more after its first job: jobs
    that keep coming, each within the delay of the last, do not hold the first back."""
    contact = uuid.UUID(tracker.new_contact())
    snapshot = hub.catalog.get()
    channel = snapshot.channels[tracker.channel.id]
    writer = Writer(hub.store, max_batch=10_000, max_delay=0.3)
    try:
        sent = check_a_stream_waits_at_most_the_delay(writer, snapshot, channel, contact)
    finally:
        writer.stop()
    assert count(hub, activities) == sent


def test_submit_and_wait_answers_a_missing_contact_per_item(tracker: Tracker, hub: Hub) -> None:
    snapshot = hub.catalog.get()
    now = utcnow()
    item = prepare(b'{"type": "click", "value": "a"}', snapshot, now, 16_384)
    [results] = hub.writer.submit_and_wait(
        [Job(snapshot.channels[tracker.channel.id], uuid.uuid4(), [item], now)]
    )
    assert [(r.status, r.error and r.error.code) for r in results] == [(404, "contact_not_found")]
    assert count(hub, rejected_activities) == 1


# -- rollups -----------------------------------------------------------------------------


def test_rollups_equal_the_stored_activities_grouped(
    tracker: Tracker, hub: Hub, make_type: Callable[..., ActivityType]
) -> None:
    make_type(name="Loan calculator usage", code_name="custom_loan_calculator")
    ann, bob = tracker.new_contact(), tracker.new_contact()
    tracker.log(
        [
            {"type": "click", "value": "a", "occurredAt": "2026-01-30T23:59:59+00:00"},
            {"type": "click", "value": "b", "occurredAt": "2026-01-31T00:30:00+02:00"},
            {"type": "click", "value": "c", "occurredAt": "2026-01-31T00:00:00Z"},
            {"type": "custom_loan_calculator", "value": "5000", "id": "loan-1"},
            {"type": "custom_loan_calculator", "value": "5000", "id": "loan-1"},
            {"type": "click"},
            {"type": "datainput", "value": "f", "contactFields": {"ContactEmail": "a@x.example"}},
        ],
        ann,
    )
    tracker.log([{"type": "custom_loan_calculator", "value": "5000", "id": "loan-1"}], bob)
    tracker.log([{"type": "pagevisit", "url": "https://e.example/"}] * 3, bob)
    # A data input that moves to another contact is counted for that contact.
    tracker.log(
        [{"type": "datainput", "value": "f", "contactFields": {"ContactEmail": "a@x.example"}}],
        bob,
    )
    tracker.log(
        [{"type": "datainput", "value": "f", "contactFields": {"ContactEmail": "new@x.example"}}],
        ann,
    )
    with hub.store.read() as conn:
        rows = conn.execute(
            sa.select(activities.c.contact_id, activities.c.type_id, activities.c.occurred_at)
        ).all()
        r = activity_rollups.c
        rollups = conn.execute(sa.select(r.contact_id, r.type_id, r.day, r.count.label("n"))).all()
        d = activity_daily_counts.c
        daily = conn.execute(sa.select(d.type_id, d.day, d.count.label("n"))).all()
    expected = Counter((r.contact_id, r.type_id, r.occurred_at.date()) for r in rows)
    assert sum(expected.values()) == 10
    assert {(r.contact_id, r.type_id, r.day): r.n for r in rollups} == dict(expected)
    # And per type and day, for reports.
    assert {(r.type_id, r.day): r.n for r in daily} == dict(
        Counter((r.type_id, r.occurred_at.date()) for r in rows)
    )
    # Days are UTC days: 2026-01-31T00:30:00+02:00 is the 30th.
    days = Counter(r.day for r in rollups for _ in range(r.n))
    assert days[dt.date(2026, 1, 30)] == 2


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_nodes_counting_the_same_days_never_deadlock(
    tracker: Tracker, hub: Hub, settings: Settings, make_type: Callable[..., ActivityType]
) -> None:
    """Every node's writer adds to the same rows per type and day: each batch must take them
    in one order, or two batches that name two types in opposite orders wait for each other."""
    make_type(name="Loan calculator usage", code_name="custom_loan_calculator")
    ann, bob = uuid.UUID(tracker.new_contact()), uuid.UUID(tracker.new_contact())
    other = Hub(settings, Store(make_engine(settings)))
    try:
        nodes = [(hub, ann, ["click", "custom_loan_calculator"])]
        nodes.append((other, bob, ["custom_loan_calculator", "click"]))
        today = utcnow()
        for node, contact, types in nodes:
            snapshot = node.catalog.get()
            items = [
                prepare(f'{{"type": "{t}", "value": "x"}}'.encode(), snapshot, today, 16_384)
                for t in types
            ]
            submit(node.writer, snapshot.channels[tracker.channel.id], contact, items, today)
        outcomes: list[object] = []

        def store(node: Hub, contact: uuid.UUID, types: list[str]) -> None:
            snapshot = node.catalog.get()
            now = utcnow()
            items = [
                prepare(f'{{"type": "{t}", "value": "x"}}'.encode(), snapshot, now, 16_384)
                for t in types
            ]
            channel = snapshot.channels[tracker.channel.id]
            try:
                outcomes.append(submit(node.writer, channel, contact, items, now))
            except Exception as exc:
                outcomes.append(exc)

        # Another transaction holds the first node's first row: the first node waits for it,
        # the second takes its own first row, then waits for the first node's.
        with psycopg.connect(libpq_url(settings)) as pg:
            pg.execute(
                "SELECT 1 FROM activity_daily_counts d JOIN activity_types t ON t.id = d.type_id "
                "WHERE t.code_name = 'click' FOR UPDATE OF d"
            )
            threads = [threading.Thread(target=store, args=node) for node in nodes]
            for thread in threads:
                thread.start()
                time.sleep(0.3)
            pg.rollback()
        for thread in threads:
            thread.join(30)
        assert [[r.status for r in o] for o in outcomes if isinstance(o, list)] == [[202] * 2] * 2
        d = activity_daily_counts.c
        with hub.store.read() as conn:
            counts = conn.execute(sa.select(sa.func.sum(d.count))).scalar_one()
        assert counts == 8
    finally:
        other.close()


def test_a_failing_rollup_write_stores_no_activity(
    tracker: Tracker, hub: Hub, settings: Settings, expect_error: ErrorCheck
) -> None:
    """Rollups are written in the activities' transaction: when they fail, nothing is kept."""
    contact = tracker.new_contact()
    tracker.log([{"type": "click", "value": "warm"}], contact)
    if settings.is_sqlite:
        create = [
            "CREATE TRIGGER fail_rollups BEFORE INSERT ON activity_rollups "
            "BEGIN SELECT RAISE(ABORT, 'rollups are down'); END",
            "CREATE TRIGGER fail_rollup_updates BEFORE UPDATE ON activity_rollups "
            "BEGIN SELECT RAISE(ABORT, 'rollups are down'); END",
        ]
        drop = ["DROP TRIGGER fail_rollups", "DROP TRIGGER fail_rollup_updates"]
    else:
        create = [
            "CREATE FUNCTION fail_rollups() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'rollups are down'; END $$",
            "CREATE TRIGGER fail_rollups BEFORE INSERT OR UPDATE ON activity_rollups "
            "FOR EACH ROW EXECUTE FUNCTION fail_rollups()",
        ]
        drop = ["DROP TRIGGER fail_rollups ON activity_rollups", "DROP FUNCTION fail_rollups()"]
    with hub.store.write() as conn:
        for statement in create:
            conn.exec_driver_sql(statement)
    try:
        answer = tracker.post(
            [{"type": "click", "value": "x", "id": "never"}, {"type": "click"}], contact
        )
        error = expect_error(answer, 503, "storage_unavailable")
        assert "rollups are down" not in error["message"]
        assert answer.headers["retry-after"]
    finally:
        with hub.store.write() as conn:
            for statement in drop:
                conn.exec_driver_sql(statement)
    assert count(hub, activities) == 1
    assert count(hub, rejected_activities) == 0
    [result, bad] = tracker.log(
        [{"type": "click", "value": "x", "id": "never"}, {"type": "click"}], contact
    )
    assert (result["status"], bad["status"]) == (202, 400)


# -- consent -----------------------------------------------------------------------------


def make_consent(client: TestClient, headers: dict[str, str], code: str = "TrackingConsent") -> Any:
    created = client.post(
        "/api/consents",
        json={
            "code_name": code,
            "display_name": "Tracking",
            "texts": {"en": {"short_text": "<p>May we?</p>", "full_text": "<p>Details</p>"}},
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    return created.json()


def agree(tracker: Tracker, contact: str, agreed: bool, code: str = "TrackingConsent") -> None:
    answer = tracker.client.post(
        f"/tracking/contacts/{contact}/consents/{code}",
        json={"agree": agreed},
        headers=tracker.headers,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"isAgreed": agreed}


def test_an_enforced_consent_is_required_per_activity(
    client: TestClient,
    hub: Hub,
    admin_headers: dict[str, str],
    make_tracker: Callable[..., Tracker],
) -> None:
    consent = make_consent(client, admin_headers)
    tracker = make_tracker(tracking_consent="TrackingConsent", enforce_consent=True)
    contact = tracker.new_contact()
    sent = [{"type": "click", "value": "a"}, {"type": "click"}]
    results = tracker.log(sent, contact)
    assert [r["status"] for r in results] == [403, 400]
    assert results[0]["error"]["code"] == "consent_required"
    assert count(hub, activities) == 0
    with hub.store.read() as conn:
        kept = conn.execute(
            sa.select(rejected_activities).where(rejected_activities.c.reason == "consent_required")
        ).one()
    assert kept.status == 403
    assert kept.payload == {"type": "click", "value": "a"}
    assert kept.contact_id == uuid.UUID(contact)

    agree(tracker, contact, True)
    [ok] = tracker.log([{"type": "click", "value": "a", "id": "after-agreeing"}], contact)
    assert ok["status"] == 202
    row = stored(hub, ok["id"])
    assert (row.consent_agreed, row.consent_version) == (True, consent["version"])

    # A new text version does not undo the agreement; the activity records the agreed version.
    changed = client.patch(
        f"/api/consents/{consent['id']}",
        json={"texts": {"en": {"short_text": "<p>May we, please?</p>", "full_text": "<p>D</p>"}}},
        headers=admin_headers,
    )
    assert changed.json()["version"] == consent["version"] + 1
    [still] = tracker.log([{"type": "click", "value": "b"}], contact)
    assert still["status"] == 202
    assert stored(hub, still["id"]).consent_version == consent["version"]

    agree(tracker, contact, False)
    [revoked] = tracker.log([{"type": "click", "value": "c"}], contact)
    assert revoked["status"] == 403
    assert revoked["error"]["code"] == "consent_required"
    # A retry of an activity stored before the revocation is still the stored activity.
    [retry] = tracker.log([{"type": "click", "value": "a", "id": "after-agreeing"}], contact)
    assert retry == {"status": 208, "id": ok["id"]}
    assert count(hub, activities) == 2
    assert count(hub, rejected_activities, rejected_activities.c.reason == "consent_required") == 2

    # Another contact's agreement does not count for this one.
    other = tracker.new_contact()
    agree(tracker, other, True)
    assert tracker.log([{"type": "click", "value": "d"}], contact)[0]["status"] == 403
    assert tracker.log([{"type": "click", "value": "d"}], other)[0]["status"] == 202


def test_every_activity_records_the_consent_state(
    client: TestClient,
    hub: Hub,
    admin_headers: dict[str, str],
    make_tracker: Callable[..., Tracker],
) -> None:
    consent = make_consent(client, admin_headers)
    plain = make_tracker()
    recorded = make_tracker(tracking_consent="TrackingConsent")
    contact = recorded.new_contact()

    def state(tracker: Tracker) -> tuple[object, object]:
        [result] = tracker.log([{"type": "click", "value": "x"}], contact)
        assert result["status"] == 202
        row = stored(hub, result["id"])
        return row.consent_agreed, row.consent_version

    assert state(plain) == (None, None)
    assert state(recorded) == (False, None)
    agree(recorded, contact, True)
    assert state(recorded) == (True, consent["version"])
    assert state(plain) == (None, None)
    agree(recorded, contact, False)
    assert state(recorded) == (False, consent["version"])
    listed = client.get(f"/api/contacts/{contact}/activities", headers=admin_headers).json()
    assert [(a["consent_agreed"], a["consent_version"]) for a in listed["data"]] == [
        (False, 1),
        (None, None),
        (True, 1),
        (False, None),
        (None, None),
    ]


# -- storage failures --------------------------------------------------------------------


def test_a_locked_database_answers_503_and_never_202(
    tracker: Tracker,
    hub: Hub,
    settings: Settings,
    outage_client: Callable[..., TestClient],
    expect_error: ErrorCheck,
) -> None:
    contact = tracker.new_contact()
    impatient = outage_client()
    sent = [{"type": "click", "value": "x", "id": "locked-1"}, {"type": "click"}]
    assert (
        post(impatient, tracker, contact, [{"type": "click", "value": "warm"}]).status_code == 207
    )
    with write_lock(settings):
        answers = [post(impatient, tracker, contact, sent) for _ in range(2)]
        created = impatient.post("/tracking/contacts", headers=tracker.headers)
    for answer in [*answers, created]:
        expect_error(answer, 503, "storage_unavailable")
        assert int(answer.headers["retry-after"]) >= 1
    assert count(hub, activities) == 1
    assert count(hub, rejected_activities) == 0
    assert count(hub, activity_rollups) == 1
    # Once the lock is gone the same request is stored, once.
    answer = post(impatient, tracker, contact, sent)
    assert answer.status_code == 207, answer.text
    assert [r["status"] for r in answer.json()["results"]] == [202, 400]
    assert count(hub, activities) == 2


def test_a_read_only_database_answers_503_and_never_202(
    tracker: Tracker,
    hub: Hub,
    admin_headers: dict[str, str],
    outage_client: Callable[..., TestClient],
    expect_error: ErrorCheck,
) -> None:
    make_consent(tracker.client, admin_headers)
    contact = tracker.new_contact()
    read_only = outage_client(read_only=True)
    answer = post(read_only, tracker, contact, [{"type": "click", "value": "x"}])
    expect_error(answer, 503, "storage_unavailable")
    assert answer.headers["retry-after"]
    expect_error(
        read_only.post("/tracking/contacts", headers=tracker.headers), 503, "storage_unavailable"
    )
    agreement = read_only.post(
        f"/tracking/contacts/{contact}/consents/TrackingConsent",
        json={"agree": True},
        headers=tracker.headers,
    )
    expect_error(agreement, 503, "storage_unavailable")
    admin = read_only.post(
        "/api/consents", json={"code_name": "Other", "display_name": "Other"}, headers=admin_headers
    )
    expect_error(admin, 503, "storage_unavailable")
    # Reading still works.
    check = read_only.get(
        f"/tracking/contacts/{contact}/consents/TrackingConsent", headers=tracker.headers
    )
    assert check.json() == {"isAgreed": False}
    assert count(hub, activities) == 0
    assert count(hub, contacts) == 1


def test_concurrent_clients_during_an_outage_never_get_202(
    tracker: Tracker,
    hub: Hub,
    settings: Settings,
    outage_client: Callable[..., TestClient],
) -> None:
    contact = tracker.new_contact()
    impatient = outage_client()
    statuses: list[int] = []
    lock = threading.Lock()

    def client_thread(n: int) -> None:
        for i in range(3):
            sent = [{"type": "click", "value": "x", "id": f"outage-{n}-{i}"}]
            answer = post(impatient, tracker, contact, sent)
            with lock:
                statuses.append(answer.status_code)
                if answer.status_code == 207:
                    statuses.extend(r["status"] for r in answer.json()["results"])

    with write_lock(settings):
        threads = [threading.Thread(target=client_thread, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert statuses == [503] * 12
    assert count(hub, activities) == 0

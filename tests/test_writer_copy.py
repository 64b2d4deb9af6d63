"""The writer's COPY path on PostgreSQL: the same rows, rollups and answers as executemany.

Random batches of jobs, with client ids and (for imports that keep their ids) activity ids
repeated inside a batch and across batches, invalid activities among them, and activities on
several days, go through two writers on the same database, one after the other on emptied
activity tables: one that writes every batch with ``COPY``, one that writes every batch with
``executemany``. What each stored and answered must be the same.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

import hypothesis
import msgspec
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck
from hypothesis import strategies as st
from sqlalchemy.exc import IntegrityError

from waypost.hub import Hub
from waypost.ids import new_id
from waypost.pipeline import writer_rows
from waypost.pipeline.catalog import Snapshot
from waypost.pipeline.prepare import Accepted, Rejected, prepare
from waypost.pipeline.writer import Writer
from waypost.pipeline.writer_decision import Job
from waypost.pipeline.writer_rows import ACTIVITY_COLUMNS
from waypost.store.schema import (
    activities,
    activity_daily_counts,
    activity_rollups,
    field_violations,
    rejected_activities,
)

if TYPE_CHECKING:
    from tests.conftest import Tracker

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

RECEIVED = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
DAYS = ("2026-02-27T23:30:00Z", "2026-02-28T08:00:00Z", "2026-03-01T00:00:01+01:00")
CONTACTS = 3
# Small pools, so that random draws repeat inside and across batches.
CLIENT_IDS = 4
KEPT_IDS = [uuid.UUID(int=n + 1) for n in range(4)]
WRITTEN = (activities, rejected_activities, activity_rollups, activity_daily_counts)

# One activity: ("click", day, client id or None) | ("bad", day) | ("kept", day, kept id).
activity = st.one_of(
    st.tuples(
        st.just("click"),
        st.integers(0, len(DAYS) - 1),
        st.none() | st.integers(0, CLIENT_IDS - 1),
    ),
    st.tuples(st.just("bad"), st.integers(0, len(DAYS) - 1), st.none()),
    st.tuples(st.just("kept"), st.integers(0, len(DAYS) - 1), st.integers(0, len(KEPT_IDS) - 1)),
)
job = st.tuples(st.integers(0, CONTACTS - 1), st.lists(activity, min_size=1, max_size=40))
batches = st.lists(st.lists(job, min_size=1, max_size=6), min_size=1, max_size=5)


def items_of(
    spec: list[tuple[str, int, int | None]], snapshot: Snapshot, serial: list[int]
) -> tuple[list[Accepted | Rejected], bool]:
    """The prepared items of one job, and whether it keeps its ids (an import)."""
    made: list[Accepted | Rejected] = []
    keep_ids = False
    for kind, day, extra in spec:
        serial[0] += 1
        when = DAYS[day]
        if kind == "bad":
            raw = f'{{"type": "click", "occurredAt": "{when}"}}'.encode()
        elif kind == "click" and extra is not None:
            raw = (
                f'{{"type": "click", "value": "v{serial[0]}", "id": "c{extra}", '
                f'"occurredAt": "{when}"}}'
            ).encode()
        else:
            raw = f'{{"type": "click", "value": "v{serial[0]}", "occurredAt": "{when}"}}'.encode()
        item = prepare(raw, snapshot, RECEIVED, 16_384)
        if kind == "kept":
            assert isinstance(item, Accepted)
            assert extra is not None
            item = dataclasses.replace(item, id=KEPT_IDS[extra])
            keep_ids = True
        made.append(item)
    return made, keep_ids


def empty(hub: Hub) -> None:
    with hub.store.write() as conn:
        for table in (*WRITTEN, field_violations):
            conn.execute(table.delete())


def snapshot_rows(hub: Hub) -> dict[str, Any]:
    """Everything the writer wrote, comparably (a rejected row's own id is new every time)."""
    with hub.store.read() as conn:
        found: dict[str, Any] = {}
        for table in WRITTEN:
            columns = [c for c in table.c if not (table is rejected_activities and c.name == "id")]
            rows = conn.execute(sa.select(*columns)).all()
            found[table.name] = sorted(tuple(map(repr, row)) for row in rows)
    return found


Prepared = list[list[tuple[uuid.UUID, list[Accepted | Rejected], bool]]]


def prepared(
    hub: Hub, plan: list[list[tuple[int, list[Any]]]], contacts: list[uuid.UUID]
) -> Prepared:
    """The plan's jobs as (contact, items, keep ids), prepared once for both writers."""
    snapshot = hub.catalog.get()
    serial = [0]
    return [
        [(contacts[contact], *items_of(spec, snapshot, serial)) for contact, spec in batch]
        for batch in plan
    ]


def run(hub: Hub, copy_min_rows: int, plan: Prepared, channel_id: uuid.UUID) -> tuple[Any, Any]:
    """Empty the written tables, write ``plan`` with a writer that copies from
    ``copy_min_rows`` rows on, and return its answers and what the tables then hold."""
    empty(hub)
    channel = hub.catalog.get().channels[channel_id]
    writer = Writer(hub.store, max_batch=10_000)
    writer.statements.copy_min_rows = copy_min_rows
    answers = []
    try:
        for batch in plan:
            jobs = [
                Job(channel, contact, items, RECEIVED, keep_ids=keep_ids)
                for contact, items, keep_ids in batch
            ]
            for results in writer.submit_and_wait(jobs):
                answers.append(
                    [
                        (
                            r.status,
                            r.id if r.status in (202, 208) else None,
                            r.error.code if r.error else None,
                        )
                        for r in results
                    ]
                )
    finally:
        writer.stop()
    return answers, snapshot_rows(hub)


@hypothesis.settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@hypothesis.given(plan=batches)
def test_copy_and_executemany_store_and_answer_the_same(
    plan: list[list[tuple[int, list[Any]]]], tracker: Tracker, hub: Hub
) -> None:
    contacts = [uuid.UUID(tracker.new_contact()) for _ in range(CONTACTS)]
    jobs = prepared(hub, plan, contacts)
    by_copy = run(hub, 1, jobs, tracker.channel.id)
    by_executemany = run(hub, 10**9, jobs, tracker.channel.id)
    assert by_copy[0] == by_executemany[0]
    assert by_copy[1] == by_executemany[1]
    stored = by_copy[1]["activities"]
    assert len(stored) == sum(1 for answers in by_copy[0] for a in answers if a[0] == 202)
    # The rollups count exactly the stored activities.
    assert sum(int(row[3]) for row in by_copy[1]["activity_rollups"]) == len(stored)


def test_a_copy_that_meets_a_stored_id_raises_integrity_error(tracker: Tracker, hub: Hub) -> None:
    """The writer retries job by job on IntegrityError (another node stored the same activity
    between its read and its write); a COPY must fail the same way as executemany."""
    contact = uuid.UUID(tracker.new_contact())
    snapshot = hub.catalog.get()
    item = prepare(b'{"type": "click", "value": "a"}', snapshot, RECEIVED, 16_384)
    assert isinstance(item, Accepted)
    assert isinstance(hub.writer, Writer)
    codec, statements = hub.writer.codec, hub.writer.statements
    row = writer_rows.activity_row(codec, item, contact, tracker.channel.id, RECEIVED, None, None)
    with hub.store.write() as conn:
        conn.exec_driver_sql(statements.insert_activity, [row])
    fresh = (new_id(), *row[1:])
    assert statements.copy_activity is not None
    with pytest.raises(IntegrityError) as raised, hub.store.write() as conn:
        writer_rows._insert(
            conn, statements.insert_activity, statements.copy_activity, 1, [fresh, row]
        )
    assert raised.value.statement == statements.copy_activity
    with hub.store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(activities)).scalar_one() == 1
    assert len(ACTIVITY_COLUMNS) == len(row)


HOSTILE = ["a\tb", "line\nbreak", "back\\slash", "\\.", "x\n\\.\ny", "\\N", "cr\rlf", "\\t\\n"]


@pytest.mark.parametrize("text", HOSTILE)
def test_copy_keeps_tabs_newlines_and_backslashes_in_one_row(
    text: str, tracker: Tracker, hub: Hub
) -> None:
    """COPY's text format gives tabs, newlines and backslashes meanings (a column's end, a
    row's end, an escape, ``\\.`` the end of the data): a value holding them stays one value
    of one row, in an activity and in a rejected activity's payload."""
    contact = uuid.UUID(tracker.new_contact())
    snapshot = hub.catalog.get()
    good = msgspec.json.encode({"type": "click", "value": text})
    bad = msgspec.json.encode({"type": "click", "value": text, "title": text})
    assert isinstance(hub.writer, Writer)
    codec, statements = hub.writer.codec, hub.writer.statements
    stored, refused = [], []
    for _ in range(2):
        item = prepare(good, snapshot, RECEIVED, 16_384)
        assert isinstance(item, Accepted), item
        stored.append(
            writer_rows.activity_row(codec, item, contact, tracker.channel.id, RECEIVED, None, None)
        )
        rejected = prepare(bad, snapshot, RECEIVED, 16_384)
        assert isinstance(rejected, Rejected), rejected
        refused.append(
            writer_rows.rejected_row(codec, rejected, tracker.channel.id, contact, "api", RECEIVED)
        )
    assert statements.copy_activity is not None
    assert statements.copy_rejected is not None
    with hub.store.write() as conn:
        writer_rows._insert(conn, statements.insert_activity, statements.copy_activity, 1, stored)
        writer_rows._insert(conn, statements.insert_rejected, statements.copy_rejected, 1, refused)
    with hub.store.read() as conn:
        values = conn.execute(sa.select(activities.c.value)).scalars().all()
        payloads = conn.execute(sa.select(rejected_activities.c.payload)).scalars().all()
    assert values == [text, text]
    assert [p["title"] for p in payloads] == [text, text]

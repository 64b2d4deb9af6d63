"""Funnels read in two parts at once (waypost/services/report_funnels.py): on SQLite, the
contacts below a contact id in a second process and the others here, the answer is the one a
single reader gives, with step filters, channels, groups and time zones; no process is left
behind. (What a funnel answers is checked in test_report_queries.py and, against a Python
model, in test_report_properties.py.)"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hypothesis
import msgspec
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck
from hypothesis import strategies as st

from waypost.domain.report_definitions import ReportDefinition, ReportResult
from waypost.hub import Hub
from waypost.services.activity_types import ActivityType
from waypost.services.channels import Channel
from waypost.services.report_funnels import (
    SPLIT_FROM,
    Step,
    _gap,
    _read_in_two,
    _split_point,
    _sqlite_statement,
    funnel,
)
from waypost.services.report_queries import resolve, type_ids
from waypost.store.schema import activities, activity_daily_counts, activity_rollups
from waypost.store.sqlite_reader import sqlite_file

if TYPE_CHECKING:
    from tests.report_support import Act, add_contacts, make_group, store_activities
else:
    from report_support import Act, add_contacts, make_group, store_activities

UTC = dt.UTC
START = dt.datetime(2026, 3, 5, tzinfo=UTC)
CONTACTS = 8


def _children() -> set[int]:
    """This process's child processes (Linux)."""
    found: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        text = (task / "children").read_text()
        found |= {int(pid) for pid in text.split()}
    return found


class World:
    def __init__(self, hub: Hub, contacts: list[uuid.UUID], channels: list[uuid.UUID]) -> None:
        self.hub = hub
        self.contacts = contacts
        self.channels = channels

    def both(self, **definition: Any) -> tuple[ReportResult, ReportResult]:
        """The funnel read by one reader, and read in two parts (SQLite)."""
        d = msgspec.convert(definition, ReportDefinition)
        with self.hub.store.read() as conn:
            scope = resolve(conn, d)
            one = funnel(conn, scope, split_from=10**12)
            two = funnel(conn, scope, split_from=1)
        return one, two


@pytest.fixture
def world(
    hub: Hub,
    make_type: Callable[..., ActivityType],
    make_channel: Callable[..., Channel],
) -> World:
    make_type(
        name="Calc",
        code_name="calc",
        fields=[{"name": "amount", "type": "decimal"}, {"name": "term", "type": "integer"}],
    )
    make_type(name="Apply", code_name="apply")
    return World(hub, add_contacts(hub, CONTACTS), [make_channel().id, make_channel().id])


DRAWN = st.lists(
    st.tuples(
        st.sampled_from(["calc", "apply"]),
        st.integers(0, CONTACTS - 1),
        st.integers(0, 12 * 24 * 60),
        st.integers(0, 1),
        st.sampled_from([12, 24]),
    ),
    min_size=1,
    max_size=40,
)


@hypothesis.settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@hypothesis.given(
    drawn=DRAWN,
    steps=st.lists(st.sampled_from(["calc", "apply"]), min_size=2, max_size=4),
    until=st.sampled_from(["2026-03-08", "2026-03-16"]),
    zone=st.sampled_from(["UTC", "America/New_York"]),
    window=st.integers(1, 5),
    channel=st.booleans(),
    term=st.booleans(),
)
def test_two_readers_answer_as_one(
    world: World,
    drawn: list[tuple[str, int, int, int, int]],
    steps: list[str],
    until: str,
    zone: str,
    window: int,
    channel: bool,
    term: bool,
) -> None:
    with world.hub.store.write() as conn:
        for table in (activities, activity_rollups, activity_daily_counts):
            conn.execute(table.delete())
    made = [
        Act(
            kind,
            world.contacts[c],
            START + dt.timedelta(minutes=minute),
            world.channels[ch],
            {"term": t} if kind == "calc" else {},
        )
        for kind, c, minute, ch, t in drawn
    ]
    store_activities(world.hub, made)
    definition: dict[str, Any] = {
        "kind": "funnel",
        "since": "2026-03-05",
        "until": until,
        "time_zone": zone,
        "window_days": window,
        "steps": [{"type": s} for s in steps],
    }
    if channel:
        definition["channels"] = [str(world.channels[0])]
    if term and "calc" in steps:
        definition["steps"][steps.index("calc")]["filters"] = {"term": "12"}
    before = _children()
    one, two = world.both(**definition)
    assert two.rows == one.rows
    assert _children() == before  # the second reader has ended


def test_the_split_reads_both_parts(world: World) -> None:
    # Every contact calculates, then applies 30, 31, ... minutes later.
    made = []
    for i, contact in enumerate(world.contacts):
        at = START + dt.timedelta(hours=i)
        made.append(Act("calc", contact, at, world.channels[0]))
        made.append(Act("apply", contact, at + dt.timedelta(minutes=30 + i), world.channels[0]))
    store_activities(world.hub, made)
    steps = [{"type": "calc"}, {"type": "apply"}]
    one, two = world.both(kind="funnel", since="2026-03-05", until="2026-03-06", steps=steps)
    assert [row[1] for row in one.rows] == [CONTACTS, CONTACTS]
    assert two.rows == one.rows
    # The median of 30, 31, ... 37 minutes: 33.5 minutes.
    assert one.rows[1][3] == 2010
    with world.hub.store.read() as conn:
        if conn.dialect.name != "sqlite":
            return
        path = sqlite_file(conn.engine.url)
        assert path is not None
        scope = resolve(
            conn,
            msgspec.convert(
                {"kind": "funnel", "since": "2026-03-05", "until": "2026-03-06", "steps": steps},
                ReportDefinition,
            ),
        )
        codes = type_ids(conn)
        ids: list[Step] = [(codes["calc"], []), (codes["apply"], [])]
        # With one step-1 activity enough, the funnel is split (as the readers above were).
        assert _split_point(conn, scope, ids[0], 1) is not None
        assert _split_point(conn, scope, ids[0], SPLIT_FROM) is None
        middle = sorted(world.contacts)[CONTACTS // 2]
        below = _sqlite_statement(scope, ids, high=middle)
        above = _sqlite_statement(scope, ids, low=middle)
        rows = _read_in_two(conn, path, below, above)
        # Each part is one row: its own contacts' count, and the gaps of those that reached
        # step 2 (here all of them, each its one gap).
        assert sorted(row[0] for row in rows) == [4, 4]
        gaps = [msgspec.json.decode(row[1]) for row in rows]
        assert [len(part) for part in gaps] == [4, 4]
        assert all(gap > 0 for part in gaps for gap in part)
        # Step 1 read in contact order (the contacts' index): the same parts.
        in_order = _read_in_two(
            conn,
            path,
            _sqlite_statement(scope, ids, high=middle, by_contact=True),
            _sqlite_statement(scope, ids, low=middle, by_contact=True),
        )
        assert [(row[0], sorted(msgspec.json.decode(row[1]))) for row in in_order] == [
            (row[0], sorted(part)) for row, part in zip(rows, gaps, strict=True)
        ]
        # A second reader that cannot read: its part is read here, the answer is the same.
        failed = _read_in_two(conn, "/nonexistent/waypost.db", below, above)
        assert sorted(failed, key=repr) == sorted(rows, key=repr)


def test_a_group_funnel_split_in_two(world: World) -> None:
    made = [Act("calc", c, START + dt.timedelta(hours=i), world.channels[1]) for i, c in
            enumerate(world.contacts)]  # fmt: skip
    # Contacts 0, 2, 4 and 6 apply an hour after their calculation; 0 and 2 are in the group.
    made += [Act("apply", c, START + dt.timedelta(hours=i + 1), world.channels[1]) for i, c in
             enumerate(world.contacts) if i % 2 == 0]  # fmt: skip
    store_activities(world.hub, made)
    make_group(world.hub, "Half", world.contacts[:4])
    one, two = world.both(
        kind="funnel",
        since="2026-03-05",
        until="2026-03-05",
        group="Half",
        steps=[{"type": "calc"}, {"type": "apply"}],
    )
    assert [row[1] for row in one.rows] == [4, 2]
    assert two.rows == one.rows
    assert one.rows[1][3] == 3600


TIMES = st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(9997, 12, 31))


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(pairs=st.lists(st.tuples(TIMES, TIMES), min_size=1, max_size=20))
def test_the_gaps_are_exact_microseconds_on_sqlite(
    pairs: list[tuple[dt.datetime, dt.datetime]],
) -> None:
    # Times as SQLite stores them (fixed-width UTC text); the gap as Python counts it.
    engine = sa.create_engine("sqlite://")
    text = "%Y-%m-%d %H:%M:%S.%f"
    with engine.connect() as conn:
        for later, earlier in pairs:
            got = conn.execute(
                sa.select(
                    _gap(
                        sa.literal(later.strftime(text)),
                        sa.literal(earlier.strftime(text)),
                        "sqlite",
                    )
                )
            ).scalar_one()
            assert got == (later - earlier) // dt.timedelta(microseconds=1)

"""Reports, property-based, on both databases: for random activities (times around DST
changes, several contacts, types and channels) and random definitions, each report kind equals
a straightforward Python computation over the same activities."""

from __future__ import annotations

import datetime as dt
import decimal
import fractions
import uuid
import zoneinfo
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from unittest import mock

import hypothesis
import msgspec
import pytest
from hypothesis import HealthCheck
from hypothesis import strategies as st

from waypost.domain.report_definitions import ReportDefinition, ReportResult
from waypost.hub import Hub
from waypost.services import report_funnels
from waypost.services.activity_types import ActivityType
from waypost.services.channels import Channel
from waypost.store.schema import (
    activities,
    activity_daily_counts,
    activity_rollups,
    activity_value_counts,
    contact_groups,
    group_members,
    group_membership_events,
)

if TYPE_CHECKING:
    from tests.report_support import Act, add_contacts, make_group, store_activities
else:
    from report_support import Act, add_contacts, make_group, store_activities

UTC = dt.UTC
TYPES = ["calc", "apply", "click"]
ZONES = ["UTC", "Europe/Prague", "America/New_York", "Asia/Kathmandu"]
START = dt.datetime(2026, 3, 5, tzinfo=UTC)  # New York's DST starts 8 March, Prague's 29 March
SPAN_MINUTES = 40 * 24 * 60
FIRST_DAY = dt.date(2026, 3, 5)
SETTINGS = hypothesis.settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass
class World:
    hub: Hub
    contacts: list[uuid.UUID]
    channels: list[uuid.UUID]

    def reset(self) -> None:
        with self.hub.store.write() as conn:
            for table in (
                activities,
                activity_rollups,
                activity_daily_counts,
                activity_value_counts,
                group_membership_events,
                group_members,
                contact_groups,
            ):
                conn.execute(table.delete())

    def run(self, **definition: Any) -> ReportResult:
        return self.hub.reports.run(msgspec.convert(definition, ReportDefinition))


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
    return World(hub, add_contacts(hub, 3), [make_channel().id, make_channel().id])


# -- random activities ------------------------------------------------------------------------

AMOUNTS = st.decimals(
    min_value=decimal.Decimal("-1000"),
    max_value=decimal.Decimal("100000"),
    places=2,
    allow_nan=False,
    allow_infinity=False,
)


@st.composite
def acts(draw: st.DrawFn) -> list[tuple[str, int, int, int, dict[str, Any]]]:
    """(type, contact index, minute from START, channel index, fields)."""
    made = []
    for _ in range(draw(st.integers(0, 25))):
        kind = draw(st.sampled_from(TYPES))
        fields: dict[str, Any] = {}
        if kind == "calc":
            if draw(st.booleans()):
                fields["amount"] = str(draw(AMOUNTS))
            fields["term"] = draw(st.sampled_from([12, 24, 36, 48]))
        minute = draw(st.integers(0, SPAN_MINUTES))
        made.append((kind, draw(st.integers(0, 2)), minute, draw(st.integers(0, 1)), fields))
    return made


RANGES = st.tuples(st.integers(0, 39), st.integers(0, 39)).map(sorted)


def store(world: World, drawn: list[tuple[str, int, int, int, dict[str, Any]]]) -> list[Act]:
    world.reset()
    made = [
        Act(t, world.contacts[c], START + dt.timedelta(minutes=m), world.channels[ch], f)
        for t, c, m, ch, f in drawn
    ]
    store_activities(world.hub, made)
    return made


# -- the straightforward computation ----------------------------------------------------------


def label(day: dt.date, granularity: str) -> str:
    if granularity == "week":
        return (day - dt.timedelta(days=day.weekday())).isoformat()
    if granularity == "month":
        return f"{day.year:04d}-{day.month:02d}"
    return day.isoformat()


def labels(since: dt.date, until: dt.date, granularity: str) -> list[str]:
    out: list[str] = []
    day = since
    while day <= until:
        if label(day, granularity) not in out:
            out.append(label(day, granularity))
        day += dt.timedelta(days=1)
    return out


def in_range(
    made: list[Act], since: dt.date, until: dt.date, zone: str, granularity: str
) -> Iterator[tuple[str, Act]]:
    tz = zoneinfo.ZoneInfo(zone)
    for act in made:
        local = act.at.astimezone(tz).date()
        if since <= local <= until:
            yield label(local, granularity), act


def text(value: decimal.Decimal) -> str:
    normal = f"{value:f}"
    if "." in normal:
        normal = normal.rstrip("0").rstrip(".")
    return "0" if normal in ("-0", "") else normal


def days(pair: list[int]) -> tuple[dt.date, dt.date]:
    return FIRST_DAY + dt.timedelta(days=pair[0]), FIRST_DAY + dt.timedelta(days=pair[1])


# -- the properties ---------------------------------------------------------------------------


@SETTINGS
@hypothesis.given(
    drawn=acts(),
    span=RANGES,
    granularity=st.sampled_from(["day", "week", "month"]),
    zone=st.sampled_from(ZONES),
    one_channel=st.booleans(),
)
def test_counts_equal_counting_in_python(
    world: World, drawn: Any, span: list[int], granularity: str, zone: str, one_channel: bool
) -> None:
    made = store(world, drawn)
    since, until = days(span)
    channel = [world.channels[0]] if one_channel else []
    got = world.run(
        kind="counts",
        since=since,
        until=until,
        granularity=granularity,
        time_zone=zone,
        types=TYPES,
        channels=[str(c) for c in channel],
    )
    assert got.source == ("rollups" if zone == "UTC" and not one_channel else "activities")
    n: Counter[tuple[str, str]] = Counter()
    who: dict[tuple[str, str], set[uuid.UUID]] = {}
    for period, act in in_range(made, since, until, zone, granularity):
        if channel and act.channel not in channel:
            continue
        n[(period, act.type)] += 1
        who.setdefault((period, act.type), set()).add(act.contact)
    expected = []
    for period in labels(since, until, granularity):
        row: list[Any] = [period, sum(n[(period, t)] for t in TYPES)]
        for t in TYPES:
            row += [n[(period, t)], len(who.get((period, t), set()))]
        expected.append(row)
    assert got.rows == expected


@SETTINGS
@hypothesis.given(
    drawn=acts(),
    span=RANGES,
    granularity=st.sampled_from(["day", "week", "month"]),
    zone=st.sampled_from(ZONES),
    term=st.sampled_from([None, 12, 24]),
)
def test_numeric_summaries_equal_decimal_arithmetic(
    world: World, drawn: Any, span: list[int], granularity: str, zone: str, term: int | None
) -> None:
    made = store(world, drawn)
    since, until = days(span)
    filters = {} if term is None else {"term": str(term)}
    got = world.run(
        kind="numeric",
        since=since,
        until=until,
        granularity=granularity,
        time_zone=zone,
        types=["calc"],
        field="amount",
        filters=filters,
    )
    assert got.source == ("rollups" if zone == "UTC" and term is None else "activities")
    values: dict[str, list[decimal.Decimal]] = {}
    for period, act in in_range(made, since, until, zone, granularity):
        wanted = term is None or act.fields.get("term") == term
        if act.type == "calc" and "amount" in act.fields and wanted:
            values.setdefault(period, []).append(decimal.Decimal(act.fields["amount"]))
    expected: list[list[Any]] = []
    for period in labels(since, until, granularity):
        found = values.get(period)
        if not found:
            expected.append([period, 0, None, None, None, None])
            continue
        total = sum(found, decimal.Decimal(0))
        mean = (total / len(found)).quantize(decimal.Decimal("0.000001"), decimal.ROUND_HALF_EVEN)
        expected.append(
            [period, len(found), text(total), text(mean), text(min(found)), text(max(found))]
        )
    assert got.rows == expected


@SETTINGS
@hypothesis.given(drawn=acts(), span=RANGES, top=st.integers(1, 4), zone=st.sampled_from(ZONES))
def test_breakdowns_equal_counting_values(
    world: World, drawn: Any, span: list[int], top: int, zone: str
) -> None:
    made = store(world, drawn)
    since, until = days(span)
    chosen = [a for _, a in in_range(made, since, until, zone, "day") if a.type == "calc"]
    n = Counter(str(a.fields["term"]) for a in chosen)
    ordered = sorted(n, key=lambda v: (-n[v], v))
    expected: list[list[Any]] = [
        [v, n[v], len({a.contact for a in chosen if str(a.fields["term"]) == v})]
        for v in ordered[:top]
    ]
    if ordered[top:]:
        rest = [a for a in chosen if str(a.fields["term"]) in ordered[top:]]
        expected.append(["other", len(rest), len({a.contact for a in rest})])
    edges = ["0", "100.5", "5000"]
    bounds = [decimal.Decimal(e) for e in edges]
    per: dict[int, list[Act]] = {}
    for a in chosen:
        if "amount" in a.fields:
            value = decimal.Decimal(a.fields["amount"])
            per.setdefault(sum(value >= b for b in bounds), []).append(a)
    expected_buckets = [
        [len(per.get(i, [])), len({a.contact for a in per.get(i, [])})] for i in range(4)
    ]
    # With contacts from the activities; without, in UTC from the counts per value.
    for contacts, width in ((True, 3), (False, 2)):
        got = world.run(
            kind="breakdown", since=since, until=until, time_zone=zone, types=["calc"],
            field="term", top=top, contacts=contacts,
        )  # fmt: skip
        assert got.rows == [row[:width] for row in expected]
        buckets = world.run(
            kind="breakdown", since=since, until=until, time_zone=zone, types=["calc"],
            field="amount", buckets=edges, contacts=contacts,
        )  # fmt: skip
        assert [row[1:] for row in buckets.rows] == [row[: width - 1] for row in expected_buckets]


def funnel_model(
    made: list[Act], steps: list[str], start: dt.datetime, end: dt.datetime, window: int
) -> tuple[list[int], list[list[float]]]:
    counts = [0] * len(steps)
    gaps: list[list[float]] = [[] for _ in steps]
    for contact in {a.contact for a in made}:
        mine = sorted((a for a in made if a.contact == contact), key=lambda a: a.at)
        firsts = [a.at for a in mine if a.type == steps[0] and start <= a.at < end]
        if not firsts:
            continue
        times = [firsts[0]]
        counts[0] += 1
        for k, step in enumerate(steps[1:], start=1):
            later = [
                a.at
                for a in mine
                if a.type == step
                and a.at > times[-1]
                and a.at <= times[0] + dt.timedelta(days=window)
            ]
            if not later:
                break
            counts[k] += 1
            gaps[k].append((later[0] - times[-1]).total_seconds())
            times.append(later[0])
    return counts, gaps


def median(values: list[float]) -> int | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return round(ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2)


@SETTINGS
@hypothesis.given(
    drawn=acts(),
    span=RANGES,
    steps=st.lists(st.sampled_from(TYPES), min_size=2, max_size=5),
    window=st.integers(1, 10),
    zone=st.sampled_from(ZONES),
    contact_order=st.booleans(),
)
def test_funnels_equal_following_each_contact(
    world: World,
    drawn: Any,
    span: list[int],
    steps: list[str],
    window: int,
    zone: str,
    contact_order: bool,
) -> None:
    made = store(world, drawn)
    since, until = days(span)
    tz = zoneinfo.ZoneInfo(zone)
    start = dt.datetime.combine(since, dt.time(), tz).astimezone(UTC)
    end = dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), tz).astimezone(UTC)
    # On SQLite, step 1 read in contact order (any share of the activities is enough) or
    # from the type's index (no share is).
    share = fractions.Fraction(0 if contact_order else 2)
    with mock.patch.object(report_funnels, "CONTACT_ORDER_SHARE", share):
        got = world.run(
            kind="funnel", since=since, until=until, time_zone=zone,
            steps=[{"type": s} for s in steps], window_days=window,
        )  # fmt: skip
    counts, gaps = funnel_model(made, steps, start, end, window)
    assert [row[1] for row in got.rows] == counts
    assert [row[3] for row in got.rows] == [None] + [median(g) for g in gaps[1:]]


@SETTINGS
@hypothesis.given(
    moves=st.lists(st.tuples(st.integers(0, 2), st.integers(0, SPAN_MINUTES)), max_size=12),
    span=RANGES,
    granularity=st.sampled_from(["day", "week", "month"]),
    zone=st.sampled_from(ZONES),
)
def test_group_sizes_equal_replaying_the_entries_and_exits(
    world: World, moves: list[tuple[int, int]], span: list[int], granularity: str, zone: str
) -> None:
    world.reset()
    # Each move of a contact flips its membership: in, out, in...
    inside: set[uuid.UUID] = set()
    events = []
    for index, minute in sorted(moves, key=lambda m: m[1]):
        contact = world.contacts[index]
        events.append((contact, contact not in inside, START + dt.timedelta(minutes=minute)))
        inside ^= {contact}
    make_group(world.hub, "G", sorted(inside), events)
    since, until = days(span)
    tz = zoneinfo.ZoneInfo(zone)
    got = world.run(
        kind="group", group="G", since=since, until=until, granularity=granularity, time_zone=zone
    )
    expected = []
    for period in labels(since, until, granularity):
        local_days = [
            since + dt.timedelta(days=i)
            for i in range((until - since).days + 1)
            if label(since + dt.timedelta(days=i), granularity) == period
        ]
        end = dt.datetime.combine(local_days[-1] + dt.timedelta(days=1), dt.time(), tz)
        members = {c for c, _, _ in events}
        size = sum(
            1 for c in members if [e for cc, e, at in events if cc == c and at < end][-1:] == [True]
        )
        mine = [e for _, e, at in events if at.astimezone(tz).date() in local_days]
        expected.append([period, size, mine.count(True), mine.count(False)])
    assert got.rows == expected

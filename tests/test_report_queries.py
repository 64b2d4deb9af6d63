"""POST /api/reports/run on a small fixture, on both databases: every report kind against
answers worked out by hand, the boundaries (a time zone, a DST change, empty ranges, a funnel
step repeated) and bad input (docs/reports.md)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from waypost.hub import Hub
from waypost.services.activity_types import ActivityType
from waypost.services.channels import Channel

if TYPE_CHECKING:
    from tests.conftest import ErrorCheck
    from tests.report_support import Act, add_contacts, make_group, store_activities
else:
    from report_support import Act, add_contacts, make_group, store_activities

UTC = dt.UTC


def at(day: int, hour: int = 0, minute: int = 0, month: int = 3) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=UTC)


@dataclass
class World:
    client: TestClient
    headers: dict[str, str]
    a: uuid.UUID
    b: uuid.UUID
    c: uuid.UUID
    d: uuid.UUID
    group: uuid.UUID
    web: uuid.UUID

    def run(self, **definition: Any) -> Any:
        answer = self.client.post("/api/reports/run", json=definition, headers=self.headers)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def post(self, **definition: Any) -> Any:
        return self.client.post("/api/reports/run", json=definition, headers=self.headers)


@pytest.fixture
def world(
    client: TestClient,
    hub: Hub,
    admin_headers: dict[str, str],
    make_type: Callable[..., ActivityType],
    make_channel: Callable[..., Channel],
) -> World:
    make_type(
        name="Calculator",
        code_name="calc",
        fields=[
            {"name": "amount", "type": "decimal"},
            {"name": "term", "type": "integer"},
            {"name": "product", "type": "text"},
            {"name": "approved", "type": "boolean"},
        ],
    )
    make_type(name="Application", code_name="apply", fields=[{"name": "amount", "type": "decimal"}])
    web = make_channel(name="Web").id
    app = make_channel(name="App").id
    a, b, c, d = add_contacts(hub, 4)
    store_activities(
        hub,
        [
            Act("calc", a, at(2, 10), web, {"amount": "1000.10", "term": 12, "product": "car"}),
            Act("calc", a, at(2, 15), web, {"amount": "2000", "term": 24, "product": "car"}),
            Act("calc", b, at(3, 9), app, {"amount": "500.5", "term": 12, "product": "home"}),
            Act("calc", c, at(9, 23, 30), web, {"amount": "0.4", "term": 36, "product": "boat"}),
            Act("calc", d, at(28, 10, month=2), web, {"amount": "9", "term": 12}),
            Act("apply", a, at(4, 8), web, {"amount": "1500"}),
            Act("apply", b, at(20, 9), web, {"amount": "400"}),
            Act("apply", c, at(12), web, {"amount": "10"}),
            Act("click", a, at(5, 12), web),
            Act("click", c, at(10, 1), web),
        ],
    )
    group = make_group(
        hub,
        "Loan shoppers",
        [a, b],
        [
            (a, True, at(2, 12)),
            (b, True, at(5, 12)),
            (c, True, at(5, 13)),
            (c, False, at(7)),
            (d, True, at(20)),
            (d, False, at(21)),
        ],
    )
    return World(client, admin_headers, a, b, c, d, group, web)


MARCH = {"since": "2026-03-01", "until": "2026-03-31"}
APRIL = {"since": "2026-04-01", "until": "2026-04-30"}


def test_counts_per_day_and_type_from_the_rollups(world: World) -> None:
    got = world.run(kind="counts", since="2026-03-01", until="2026-03-10", types=["calc", "apply"])
    assert got["source"] == "rollups"
    assert got["columns"] == [
        "period",
        "activities",
        "calc activities",
        "calc contacts",
        "apply activities",
        "apply contacts",
    ]
    rows = {row[0]: row[1:] for row in got["rows"]}
    assert len(rows) == 10
    assert rows["2026-03-02"] == [2, 2, 1, 0, 0]
    assert rows["2026-03-03"] == [1, 1, 1, 0, 0]
    assert rows["2026-03-04"] == [1, 0, 0, 1, 1]
    assert rows["2026-03-09"] == [1, 1, 1, 0, 0]
    assert rows["2026-03-01"] == rows["2026-03-10"] == [0, 0, 0, 0, 0]
    chart = got["chart"]
    assert chart["style"] == "stacked_bars"
    assert chart["categories"][1] == "2026-03-02"
    assert [s["name"] for s in chart["series"]] == ["calc", "apply"]
    assert chart["series"][0]["values"][1] == 2


def test_unique_contacts_per_week_are_counted_not_summed(world: World) -> None:
    got = world.run(
        kind="counts", since="2026-03-01", until="2026-03-10", granularity="week", types=["calc"]
    )
    assert got["source"] == "rollups"
    # The first week is cut to Sunday 1 March; A twice and B in the second.
    assert got["rows"] == [
        ["2026-02-23", 0, 0, 0],
        ["2026-03-02", 3, 3, 2],
        ["2026-03-09", 1, 1, 1],
    ]
    month = world.run(kind="counts", granularity="month", types=["calc"], **MARCH)
    assert month["rows"] == [["2026-03", 4, 4, 3]]


def test_counts_of_every_type_from_the_most_used(world: World) -> None:
    got = world.run(kind="counts", granularity="month", **MARCH)
    assert got["columns"][2::2] == ["calc activities", "apply activities", "click activities"]
    assert got["rows"] == [["2026-03", 9, 4, 3, 3, 3, 2, 2]]


def test_counts_in_a_time_zone_read_the_activities(world: World) -> None:
    # C's calculation at 23:30 UTC on 9 March is 00:30 on 10 March in Prague.
    got = world.run(
        kind="counts",
        since="2026-03-09",
        until="2026-03-10",
        types=["calc"],
        time_zone="Europe/Prague",
    )
    assert got["source"] == "activities"
    assert got["rows"] == [["2026-03-09", 0, 0, 0], ["2026-03-10", 1, 1, 1]]


def test_counts_of_a_channel_and_of_a_groups_members(world: World) -> None:
    app = world.run(kind="counts", types=["calc"], channels=["App"], **MARCH)
    assert app["source"] == "activities"
    assert sum(row[1] for row in app["rows"]) == 1
    assert app["rows"][2] == ["2026-03-03", 1, 1, 1]
    members = world.run(
        kind="counts", granularity="month", types=["calc"], group="Loan shoppers", **MARCH
    )
    assert members["source"] == "rollups"
    assert members["rows"] == [["2026-03", 3, 3, 2]]  # A twice and B; C is not a member
    by_id = world.run(
        kind="counts", granularity="month", types=["calc"], group=str(world.group), **MARCH
    )
    assert by_id["rows"] == members["rows"]


def test_counts_with_a_field_filter(world: World) -> None:
    got = world.run(
        kind="counts", granularity="month", types=["calc"], filters={"term": "12"}, **MARCH
    )
    assert got["source"] == "activities"
    assert got["rows"] == [["2026-03", 2, 2, 2]]


def test_an_empty_range_has_every_period_with_zeros(world: World) -> None:
    got = world.run(kind="counts", since="2026-04-01", until="2026-04-03", types=["calc"])
    assert got["rows"] == [[f"2026-04-0{i}", 0, 0, 0] for i in (1, 2, 3)]
    numbers = world.run(
        kind="numeric", since="2026-04-01", until="2026-04-01", types=["calc"], field="amount"
    )
    assert numbers["rows"] == [["2026-04-01", 0, None, None, None, None]]
    assert numbers["chart"]["series"][0]["values"] == [None]
    funnel = world.run(
        kind="funnel",
        since="2026-04-01",
        until="2026-04-01",
        steps=[{"type": "calc"}, {"type": "apply"}],
    )
    assert [row[1:] for row in funnel["rows"]] == [[0, None, None], [0, None, None]]


def test_a_breakdown_by_values_with_the_rest_as_other(world: World) -> None:
    got = world.run(
        kind="breakdown", types=["calc"], field="product", top=1, contacts=True, **MARCH
    )
    assert got["source"] == "activities"
    assert got["columns"] == ["value", "activities", "contacts"]
    assert got["rows"] == [["car", 2, 1], ["other", 2, 2]]
    terms = world.run(kind="breakdown", types=["calc"], field="term", contacts=True, **MARCH)
    assert terms["rows"] == [["12", 2, 2], ["24", 1, 1], ["36", 1, 1]]
    assert terms["chart"] == {
        "style": "bars",
        "categories": ["12", "24", "36"],
        "series": [{"name": "activities", "values": [2.0, 1.0, 1.0]}],
    }


def test_a_breakdown_without_contacts_counts_numeric_values_from_the_rollups(
    world: World,
) -> None:
    terms = world.run(kind="breakdown", types=["calc"], field="term", top=2, **MARCH)
    assert terms["source"] == "rollups"
    assert terms["columns"] == ["value", "activities"]
    assert terms["rows"] == [["12", 2], ["24", 1], ["other", 1]]
    buckets = world.run(
        kind="breakdown", types=["calc"], field="amount", buckets=["500.5", "2000"], **MARCH
    )
    assert buckets["source"] == "rollups"
    assert buckets["rows"] == [["under 500.5", 1], ["500.5 to under 2000", 2], ["2000 or more", 1]]
    # A text field, or a filter on the channel, needs the activities.
    products = world.run(kind="breakdown", types=["calc"], field="product", top=1, **MARCH)
    assert (products["source"], products["rows"]) == ("activities", [["car", 2], ["other", 2]])
    web = world.run(
        kind="breakdown", types=["calc"], field="term", channels=["Web"], top=5, **MARCH
    )
    assert web["source"] == "activities"


def test_a_breakdown_by_buckets(world: World) -> None:
    got = world.run(
        kind="breakdown", types=["calc"], field="amount", buckets=["500.5", "2000"],
        contacts=True, **MARCH,
    )  # fmt: skip
    assert got["rows"] == [
        ["under 500.5", 1, 1],
        ["500.5 to under 2000", 2, 2],
        ["2000 or more", 1, 1],
    ]


def test_sum_average_min_and_max_stay_exact(world: World) -> None:
    got = world.run(
        kind="numeric", since="2026-03-01", until="2026-03-03", types=["calc"], field="amount"
    )
    assert got["source"] == "rollups"
    assert got["columns"] == ["period", "activities", "sum", "average", "min", "max"]
    assert got["rows"] == [
        ["2026-03-01", 0, None, None, None, None],
        ["2026-03-02", 2, "3000.1", "1500.05", "1000.1", "2000"],
        ["2026-03-03", 1, "500.5", "500.5", "500.5", "500.5"],
    ]
    assert got["chart"]["style"] == "line"
    # Naming every channel reads the activities instead, for the same answer.
    every = world.run(
        kind="numeric",
        since="2026-03-01",
        until="2026-03-03",
        types=["calc"],
        field="amount",
        channels=["Web", "App"],
    )
    assert every["source"] == "activities"
    assert every["rows"] == got["rows"]
    month = world.run(kind="numeric", granularity="month", types=["calc"], field="amount", **MARCH)
    assert month["source"] == "rollups"
    # 1000.10 + 2000 + 500.5 + 0.4 = 3501; the average 875.25.
    assert month["rows"] == [["2026-03", 4, "3501", "875.25", "0.4", "2000"]]
    terms = world.run(kind="numeric", granularity="month", types=["calc"], field="term", **MARCH)
    assert terms["rows"] == [["2026-03", 4, "84", "21", "12", "36"]]
    filtered = world.run(
        kind="numeric",
        granularity="month",
        types=["calc"],
        field="amount",
        filters={"term": "12"},
        **MARCH,
    )
    assert filtered["rows"] == [["2026-03", 2, "1500.6", "750.3", "500.5", "1000.1"]]


def test_a_funnel_counts_contacts_in_order_within_the_window(world: World) -> None:
    got = world.run(kind="funnel", steps=[{"type": "calc"}, {"type": "apply"}], **MARCH)
    assert got["source"] == "activities"
    assert got["columns"] == [
        "step",
        "contacts",
        "% of step 1",
        "median seconds from the step before",
    ]
    # A applies 46 h after, C 48.5 h after; B's application is 17 days later, past the window
    # (D's calculation is before the range).
    assert got["rows"] == [
        ["1. calc", 3, "100.0", None],
        ["2. apply", 2, "66.7", (165600 + 174600) // 2],
    ]
    assert got["chart"] == {
        "style": "funnel",
        "categories": ["1. calc", "2. apply"],
        "series": [{"name": "contacts", "values": [3.0, 2.0]}],
    }
    wide = world.run(
        kind="funnel", steps=[{"type": "calc"}, {"type": "apply"}], window_days=17, **MARCH
    )
    assert wide["rows"][1][1] == 3


def test_a_three_step_funnel_keeps_the_order(world: World) -> None:
    got = world.run(
        kind="funnel",
        steps=[{"type": "calc"}, {"type": "click"}, {"type": "apply"}],
        **MARCH,
    )
    # A clicks after calculating but applied before the click; C does all three in order.
    assert got["rows"] == [
        ["1. calc", 3, "100.0", None],
        ["2. click", 2, "66.7", (266400 + 5400) // 2],
        ["3. apply", 1, "33.3", 169200],
    ]


def test_a_repeated_step_is_a_second_later_activity(world: World) -> None:
    got = world.run(kind="funnel", steps=[{"type": "calc"}, {"type": "calc"}], **MARCH)
    assert [row[1:] for row in got["rows"]] == [[3, "100.0", None], [1, "33.3", 18000]]


def test_a_funnel_step_with_a_field_filter(world: World) -> None:
    got = world.run(
        kind="funnel",
        steps=[{"type": "calc", "filters": {"amount.gte": "1000"}}, {"type": "apply"}],
        **MARCH,
    )
    assert got["rows"] == [
        ["1. calc (amount.gte=1000)", 1, "100.0", None],
        ["2. apply", 1, "100.0", 165600],
    ]
    members = world.run(
        kind="funnel", steps=[{"type": "calc"}, {"type": "apply"}], group="Loan shoppers", **MARCH
    )
    assert [row[1] for row in members["rows"]] == [2, 1]


def test_a_groups_members_entries_and_exits(world: World) -> None:
    got = world.run(kind="group", group="Loan shoppers", since="2026-03-01", until="2026-03-08")
    assert got["source"] == "memberships"
    assert got["columns"] == ["period", "members", "entered", "left"]
    assert got["rows"] == [
        ["2026-03-01", 0, 0, 0],
        ["2026-03-02", 1, 1, 0],
        ["2026-03-03", 1, 0, 0],
        ["2026-03-04", 1, 0, 0],
        ["2026-03-05", 3, 2, 0],
        ["2026-03-06", 3, 0, 0],
        ["2026-03-07", 2, 0, 1],
        ["2026-03-08", 2, 0, 0],
    ]
    weeks = world.run(
        kind="group",
        group="Loan shoppers",
        granularity="week",
        since="2026-03-01",
        until="2026-03-31",
    )
    assert weeks["rows"] == [
        ["2026-02-23", 0, 0, 0],
        ["2026-03-02", 2, 3, 1],
        ["2026-03-09", 2, 0, 0],
        ["2026-03-16", 2, 1, 1],
        ["2026-03-23", 2, 0, 0],
        ["2026-03-30", 2, 0, 0],
    ]


def test_periods_across_a_dst_change(world: World, hub: Hub) -> None:
    # Prague moves to summer time at 01:00 UTC on 29 March: that day has 23 hours, and 22:30
    # UTC on 29 March is already 30 March there.
    (e,) = add_contacts(hub, 1)
    store_activities(
        hub,
        [
            Act("click", e, at(28, 22, 59), world.web),  # 28 March, 23:59 in Prague
            Act("click", e, at(28, 23, 0), world.web),  # 29 March, 00:00
            Act("click", e, at(29, 21, 59), world.web),  # 29 March, 23:59 (summer time)
            Act("click", e, at(29, 22, 0), world.web),  # 30 March, 00:00
        ],
    )
    got = world.run(
        kind="counts",
        since="2026-03-28",
        until="2026-03-30",
        types=["click"],
        time_zone="Europe/Prague",
    )
    assert got["rows"] == [
        ["2026-03-28", 1, 1, 1],
        ["2026-03-29", 2, 2, 1],
        ["2026-03-30", 1, 1, 1],
    ]
    utc = world.run(kind="counts", since="2026-03-28", until="2026-03-30", types=["click"])
    assert [row[1] for row in utc["rows"]] == [2, 2, 0]


@pytest.mark.parametrize(
    ("definition", "code", "field"),
    [
        ({"kind": "counts", "types": ["nope"]}, "invalid_field", "types[0]"),
        ({"kind": "counts", "channels": ["Nowhere"]}, "invalid_field", "channels[0]"),
        ({"kind": "counts", "group": "Nobody"}, "invalid_field", "group"),
        (
            {"kind": "counts", "types": ["calc"], "filters": {"nope": "1"}},
            "invalid_field",
            "filters.nope",
        ),
        (
            {"kind": "counts", "types": ["calc"], "filters": {"term.gte": "x"}},
            "invalid_field",
            "filters.term.gte",
        ),
        ({"kind": "counts", "filters": {"term": "1"}}, "invalid_field", "filters"),
        ({"kind": "breakdown", "types": ["calc"], "field": "nope"}, "invalid_field", "field"),
        ({"kind": "breakdown", "types": ["calc"], "field": "amount"}, "invalid_field", "buckets"),
        (
            {"kind": "breakdown", "types": ["calc"], "field": "product", "buckets": ["1"]},
            "invalid_field",
            "buckets",
        ),
        ({"kind": "numeric", "types": ["calc"], "field": "product"}, "invalid_field", "field"),
        ({"kind": "numeric", "types": ["calc"], "field": "approved"}, "invalid_field", "field"),
        (
            {"kind": "numeric", "types": ["calc", "apply"], "field": "amount"},
            "invalid_field",
            "types",
        ),
        ({"kind": "funnel", "steps": [{"type": "calc"}] * 6}, "invalid_field", "steps"),
        (
            {"kind": "funnel", "steps": [{"type": "calc"}, {"type": "nope"}]},
            "invalid_field",
            "steps[1].type",
        ),
        (
            {
                "kind": "funnel",
                "steps": [{"type": "calc"}, {"type": "apply", "filters": {"x": "1"}}],
            },
            "invalid_field",
            "steps[1].filters.x",
        ),
        ({"kind": "group"}, "invalid_field", "group"),
        ({"kind": "counts", "time_zone": "Mars/Olympus"}, "invalid_field", "time_zone"),
        ({"kind": "counts", "until": "2027-03-02"}, "invalid_field", "until"),
        ({"kind": "counts", "granularity": "hour"}, "invalid_field", "granularity"),
        ({"kind": "counts", "top": 5}, "invalid_field", "top"),
        ({"kind": "counts", "colour": "red"}, "unknown_field", "colour"),
        ({"kind": "report"}, "invalid_field", "kind"),
    ],
)
def test_bad_definitions_are_a_400_in_the_error_shape(
    world: World,
    expect_error: ErrorCheck,
    definition: dict[str, Any],
    code: str,
    field: str,
) -> None:
    body = {"since": "2026-03-01", "until": "2026-03-31", **definition}
    expect_error(world.post(**body), 400, code, field)


def test_a_missing_range_and_no_key(world: World, expect_error: ErrorCheck) -> None:
    expect_error(world.post(kind="counts", since="2026-03-01"), 400, "missing_field", "until")
    answer = world.client.post("/api/reports/run", json={"kind": "counts", **MARCH})
    expect_error(answer, 401, "unauthorized")


def test_the_run_operation_is_in_the_openapi_document(client: TestClient) -> None:
    document = client.get("/api/openapi.json").json()
    operation = document["paths"]["/api/reports/run"]["post"]
    assert "400" in operation["responses"]
    assert "ReportDefinition" in str(operation["requestBody"])


@pytest.mark.parametrize(
    ("definition", "field"),
    [
        ({"since": "9999-12-31", "until": "9999-12-31"}, "until"),
        ({"since": "9999-12-01", "until": "9999-12-31", "granularity": "month"}, "until"),
        ({"since": "9998-12-30", "until": "9998-12-31", "kind": "funnel"}, "until"),
        ({"since": "0001-01-01", "until": "0001-01-02", "time_zone": "Asia/Tokyo"}, "since"),
        ({"since": "0001-01-03", "until": "0001-01-04", "granularity": "week"}, "since"),
    ],
)
def test_days_at_the_ends_of_the_calendar_are_a_400(
    world: World, expect_error: ErrorCheck, definition: dict[str, Any], field: str
) -> None:
    body: dict[str, Any] = {"kind": "counts", **definition}
    if body["kind"] == "funnel":
        body["steps"] = [{"type": "calc"}, {"type": "apply"}]
        body["window_days"] = 366
    expect_error(world.post(**body), 400, "invalid_field", field)


def test_a_breakdown_reads_only_its_top_values_ties_in_code_point_order(
    world: World, hub: Hub
) -> None:
    """Ties are ordered by their text in code point order on both databases (upper case
    before lower, ``10`` before ``9``), and the database sends only the top values, however
    many distinct values there are (a LIMIT on the grouped query)."""
    words = ["b", "Zeta", "alpha", "\u00c4rger", "Alpha", "z"]
    many = [f"v{i:04d}" for i in range(300)]
    e, f = add_contacts(hub, 2)
    store_activities(
        hub,
        [Act("calc", e, at(2 + i % 20, 9, month=4), world.web, {"product": w}) for i, w in
         enumerate(words * 2 + many)]
        + [Act("calc", f, at(5, 9, month=4), world.web, {"term": t})
         for t in (9, 10, 12, 9, 10, 12)],
    )  # fmt: skip
    grouped: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if "GROUP BY" in statement:
            grouped.append(statement)

    sa.event.listen(hub.store.engine, "before_cursor_execute", note)
    try:
        got = world.run(
            kind="breakdown", types=["calc"], field="product", top=4, contacts=True, **APRIL
        )
    finally:
        sa.event.remove(hub.store.engine, "before_cursor_execute", note)
    assert [row[0] for row in got["rows"]] == ["Alpha", "Zeta", "alpha", "b", "other"]
    # The rest: z 2, \u00c4rger 2 and the 300 values seen once.
    assert [row[1] for row in got["rows"]] == [2, 2, 2, 2, 304]
    assert grouped
    assert all("LIMIT" in statement for statement in grouped), grouped
    terms = world.run(kind="breakdown", types=["calc"], field="term", top=2, contacts=True, **APRIL)
    assert terms["rows"] == [["10", 2, 1], ["12", 2, 1], ["other", 2, 1]]


HOSTILE_DEFINITIONS: list[dict[str, Any]] = [
    {"kind": "counts", "types": ["calc"], "filters": {"product": "a\x00b"}},
    {"kind": "counts", "types": ["calc"], "filters": {"term.gte": "9" * 900}},
    {"kind": "counts", "types": ["calc"], "filters": {"amount.gte": "1e999999"}},
    {"kind": "counts", "types": ["calc"], "filters": {"amount": "NaN"}},
    {"kind": "counts", "types": ["calc"], "filters": {"product": "x" * 1001}},
    {"kind": "counts", "types": ["calc\x00"]},
    {"kind": "counts", "channels": ["a\x00"]},
    {"kind": "counts", "group": "a\x00"},
    {"kind": "counts", "time_zone": "../../../etc/passwd"},
    {"kind": "counts", "time_zone": "/etc/localtime"},
    {"kind": "counts", "time_zone": "America"},
    {"kind": "counts", "time_zone": "Europe/Prague\n"},
    {"kind": "counts", "time_zone": "A" * 65},
    {"kind": "breakdown", "types": ["calc"], "field": "amount", "buckets": ["NaN"]},
    {"kind": "breakdown", "types": ["calc"], "field": "amount", "buckets": ["-Infinity", "1"]},
    {"kind": "breakdown", "types": ["calc"], "field": "amount", "buckets": ["9" * 32]},
    {"kind": "breakdown", "types": ["calc"], "field": "amount", "buckets": ["1"] * 51},
    {"kind": "breakdown", "types": ["calc"], "field": "product", "top": 101},
    {"kind": "funnel", "steps": [{"type": "calc", "filters": {"amount.gte": "x"}}] * 2},
    {"kind": "funnel", "steps": [{"type": "calc"}] * 2, "window_days": 367},
    {"kind": "group", "group": "00000000-0000-0000-0000-00000000000g"},
]


@pytest.mark.parametrize("definition", HOSTILE_DEFINITIONS)
def test_hostile_definitions_are_a_400_in_the_error_shape(
    world: World, definition: dict[str, Any]
) -> None:
    body = json.dumps({**MARCH, **definition})
    answer = world.client.post(
        "/api/reports/run",
        content=body,
        headers={**world.headers, "content-type": "application/json"},
    )
    assert answer.status_code == 400, answer.text
    assert set(answer.json()) == {"error"}, answer.text

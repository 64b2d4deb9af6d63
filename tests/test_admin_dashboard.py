"""The dashboard at /admin: its charts from the reports, periods, roles and bad input."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from starlette.testclient import TestClient

from waypost.admin.charts import OTHER_COLOUR, PALETTE
from waypost.admin.pages.dashboard import activity_chart, rejected_chart, top_types_chart
from waypost.hub import Hub
from waypost.ids import new_id, utcnow
from waypost.services.activity_types import ActivityType
from waypost.services.reports import (
    ActivityReport,
    DayTypes,
    ReasonCount,
    RejectedReport,
    TypeTotal,
)
from waypost.store.schema import (
    activity_daily_counts,
    activity_rollups,
    contacts,
    rejected_activities,
)

if TYPE_CHECKING:
    from tests.admin_support import UI
    from tests.conftest import Tracker
else:
    from admin_support import UI
    from conftest import Tracker

DAY = dt.date(2026, 3, 15)


def seed(hub: Hub, make_type: Callable[..., ActivityType]) -> None:
    """Two contacts today, 7 activities of two types, one of them days ago; 2 rejected."""
    loans = make_type(name="Loan calculator")
    click = hub.types.get_by_code("click")
    today = utcnow().date()
    now = utcnow()
    with hub.store.write() as conn:
        people = [new_id(), new_id()]
        for person in people:
            conn.execute(
                contacts.insert().values(id=person, attributes={}, created_at=now, updated_at=now)
            )
        conn.execute(
            activity_rollups.insert(),
            [
                {"contact_id": people[0], "type_id": loans.id, "day": today, "count": 4},
                {"contact_id": people[1], "type_id": click.id, "day": today, "count": 2},
                {
                    "contact_id": people[1],
                    "type_id": click.id,
                    "day": today - dt.timedelta(days=10),
                    "count": 1,
                },
            ],
        )
        conn.execute(
            activity_daily_counts.insert(),
            [
                {"type_id": loans.id, "day": today, "count": 4},
                {"type_id": click.id, "day": today, "count": 2},
                {"type_id": click.id, "day": today - dt.timedelta(days=10), "count": 1},
            ],
        )
        for reason in ("rate_limited", "rate_limited"):
            conn.execute(
                rejected_activities.insert().values(
                    id=new_id(),
                    reason=reason,
                    status=429,
                    message="slow down",
                    source="tracking",
                    payload={},
                    received_at=now,
                )
            )


def tile(page: str, name: str) -> str:
    match = re.search(rf'<span class="tile-value" id="total-{name}">([^<]*)</span>', page)
    assert match is not None
    return match.group(1)


@pytest.mark.parametrize("role", ["admin", "marketer"])
def test_the_dashboard_is_the_first_page(
    make_ui: Callable[..., UI], hub: Hub, make_type: Callable[..., ActivityType], role: str
) -> None:
    seed(hub, make_type)
    ui = make_ui(role)
    page = ui.get("/admin")
    assert page.status_code == 200
    text = page.text
    assert '<a href="/admin" aria-current="page">Dashboard</a>' in text
    assert (tile(text, "activities"), tile(text, "contacts"), tile(text, "rejected")) == (
        "7",
        "2",
        "2",
    )
    assert text.count('role="img"') == 4
    for chart in ("activities-chart", "top-types-chart", "contacts-chart", "rejected-chart"):
        assert f'<figure class="chart" id="{chart}">' in text
    assert "7 activities in the last 30 days." in text
    assert "Loan calculator: 4, Click: 3" in text  # top types, in words
    assert "Over a rate limit (rate_limited): 2" in text
    assert ui.get("/admin/").status_code == 200
    week = ui.get("/admin?days=7")
    assert tile(week.text, "activities") == "6"  # the click of ten days ago is out
    assert 'href="/admin?days=7" aria-current="true"' in week.text


def test_rejected_activities_stored_by_a_replay_are_shown_apart(
    admin_ui: UI, hub: Hub, make_type: Callable[..., ActivityType]
) -> None:
    seed(hub, make_type)
    now = utcnow()
    with hub.store.write() as conn:
        conn.execute(
            rejected_activities.insert().values(
                id=new_id(),
                reason="activity_type_not_found",
                status=404,
                message="no such type",
                source="tracking",
                payload={},
                received_at=now,
                replayed_at=now,
                replay_outcome="stored",
                replayed_activity_id=new_id(),
            )
        )
    page = admin_ui.get("/admin")
    assert tile(page.text, "rejected") == "3"
    split = re.search(r'<span class="tile-note" id="rejected-split">([^<]*)</span>', page.text)
    assert split is not None
    assert split[1] == "2 not replayed, 1 replayed"
    # The reasons in words, with their codes.
    assert "Over a rate limit (rate_limited): 2" in page.text
    assert "Unknown activity type (activity_type_not_found): 1 (1 replayed)" in page.text
    assert ">Over a rate limit</text>" in page.text


def test_an_empty_database_shows_empty_charts(admin_ui: UI) -> None:
    page = admin_ui.get("/admin?days=90")
    assert page.status_code == 200
    assert tile(page.text, "activities") == "0"
    assert "Nothing in these days" in page.text
    assert "Nothing was rejected." in page.text


@pytest.mark.parametrize("days", ["1", "31", "x", "-7", ""])
def test_another_period_is_a_400_page(marketer_ui: UI, days: str) -> None:
    answer = marketer_ui.get(f"/admin?days={days}")
    assert answer.status_code == 400
    assert "The dashboard covers 7, 30, 90 days" in answer.text


def test_logged_out_visitors_go_to_the_login_page(client: TestClient) -> None:
    answer = client.get("/admin", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/admin/login?next=%2Fadmin"


# -- the charts, from reports made up here ---------------------------------------------------


def report(types: dict[str, int]) -> ActivityReport:
    """A one-day report with these totals per type code (named after the code, upper-case)."""
    totals = [TypeTotal(code, code.upper(), n) for code, n in types.items()]
    totals.sort(key=lambda t: -t.total)
    day = DayTypes(DAY, sum(types.values()), dict(types))
    return ActivityReport(DAY, DAY, day.total, totals, [day])


def legend(markup: Any) -> list[str]:
    return re.findall(r'<rect width="10" height="10" fill="[^"]+"/></svg>([^<]+)</li>', str(markup))


def test_types_beyond_the_seventh_are_drawn_together() -> None:
    types = {f"t{i}": 100 - i for i in range(9)}
    chart = str(activity_chart(report(types), 1))
    assert legend(chart) == [*(f"T{i}" for i in range(7)), "Other types"]
    assert (
        f'fill="{OTHER_COLOUR}" stroke="#ffffff" stroke-width="0.5"><title>Mar 15: Other types 185'
        in chart
    )
    assert f'fill="{PALETTE[0]}"' in chart
    assert "The busiest day was Mar 15 with 864. T0 has the most, 100." in chart


def test_few_types_have_no_other_and_no_types_still_draw_a_chart() -> None:
    assert legend(activity_chart(report({"a": 1, "b": 2}), 1)) == ["B", "A"]
    empty = str(activity_chart(report({}), 1))
    assert "0 activities in the last 1 days." in empty
    assert "Nothing in these days" in empty


def test_top_types_and_reasons_keep_their_order() -> None:
    chart = str(top_types_chart(report({f"t{i}": 20 - i for i in range(12)}), 30))
    assert chart.count("<rect ") == 10  # the ten busiest
    assert chart.index("T0: 20") < chart.index("T9: 11")
    reasons = RejectedReport(DAY, DAY, 3, [ReasonCount("a", 2), ReasonCount("b", 1)])
    assert "a: 2, b: 1" in str(rejected_chart(reasons, 30))


def test_data_retention_shows_the_last_purge(
    marketer_ui: UI, hub: Hub, tracker: Tracker, make_type: Callable[..., ActivityType]
) -> None:
    section = marketer_ui.get("/admin").text.split('id="data-retention"')[1]
    assert "No purge has run yet" in section
    kind = make_type(name="Quote", retention_days=2)
    tracker.log(
        [
            {
                "type": kind.code_name,
                "occurredAt": f"{dt.date.today() - dt.timedelta(days=5)}T00:00:00Z",
            }
        ]
    )
    run = hub.retention.purge()
    assert run is not None
    section = marketer_ui.get("/admin").text.split('id="data-retention"')[1].split("</section>")[0]
    assert run.node in section
    # The time is said once, with its zone once.
    started = run.started_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    assert f"{started} UTC</time> on <code>{run.node}</code>" in section
    assert "UTC UTC" not in section
    assert "finished" in section
    assert f"1 activities deleted: <code>{kind.code_name}</code> 1" in section
    assert "rejected activities older than 30 days" in section
    assert "older than 3 years" in section

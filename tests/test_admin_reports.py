"""The admin UI's Reports section on both databases: the builder (a GET form, so it works
without scripts), its chart and numbers, the CSV download, saving, opening, changing, pinning
and deleting a saved report, the pinned reports on the dashboard, and errors at their control."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from collections.abc import Callable
from html import unescape
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import pytest

from waypost.hub import Hub
from waypost.pagination import ListQuery
from waypost.services.activity_types import ActivityType
from waypost.services.groups import GroupCreate

if TYPE_CHECKING:
    from tests.admin_support import UI, error_of, flash_of
    from tests.conftest import Tracker
else:
    from admin_support import UI, error_of, flash_of

CALC = "loan_calculator"
APPLY = "loan_application"
MARCH = {"since": "2026-03-01", "until": "2026-03-07"}
ROW = re.compile(r"^[a-z]+_[0-9]+_[a-z]+$")


@pytest.fixture
def calculator(make_type: Callable[..., ActivityType]) -> ActivityType:
    return make_type(
        name="Loan calculator",
        code_name=CALC,
        fields=[
            {"name": "term", "type": "integer"},
            {"name": "amount", "type": "decimal"},
            {"name": "note", "type": "text"},
        ],
    )


@pytest.fixture
def application(make_type: Callable[..., ActivityType]) -> ActivityType:
    return make_type(name="Loan application", code_name=APPLY)


@pytest.fixture
def contacts(tracker: Tracker, calculator: ActivityType, application: ActivityType) -> list[str]:
    """Three contacts: two used the calculator (terms 12 and 24, 24 again), one of them
    applied two days later; the third only applied."""
    first, second, third = (tracker.new_contact() for _ in range(3))
    tracker.log(
        [
            calc("2026-03-02T09:00:00Z", 12, "1000.50", '=HYPERLINK("http://x")'),
            calc("2026-03-03T09:00:00Z", 24, "2000.25", "ok"),
            {"type": APPLY, "occurredAt": "2026-03-04T09:00:00Z"},
        ],
        first,
    )
    tracker.log([calc("2026-03-03T10:00:00Z", 24, "500", "ok")], second)
    tracker.log([{"type": APPLY, "occurredAt": "2026-03-05T09:00:00Z"}], third)
    return [first, second, third]


def calc(at: str, term: int, amount: str, note: str) -> dict[str, Any]:
    return {
        "type": CALC,
        "occurredAt": at,
        "fields": {"term": term, "amount": amount, "note": note},
    }


def build(ui: UI, **params: Any) -> Any:
    """The builder's page for ``params``; ``filter_0_field`` is the row ``filter-0-field``."""
    pairs: list[tuple[str, str]] = []
    for name, value in {**MARCH, **params}.items():
        control = name.replace("_", "-") if ROW.match(name) else name
        values = value if isinstance(value, list) else [value]
        pairs += [(control, str(v)) for v in values]
    return ui.get("/admin/reports/new?" + urlencode(pairs))


def table_rows(html: str, table_index: int = 0) -> list[list[str]]:
    tables = re.findall(r"<table>.*?</table>", html, re.S)
    rows = re.findall(r"<tr>(.*?)</tr>", tables[table_index], re.S)
    cell = re.compile(r"<t[hd][^>]*>(.*?)</t[hd]>", re.S)
    return [[unescape(re.sub(r"<[^>]+>", "", c)) for c in cell.findall(row)] for row in rows]


def definition_of(html: str) -> str:
    match = re.search(r'name="definition" value="([^"]*)"', html)
    assert match is not None
    return unescape(match.group(1))


def test_the_builder_is_a_page_of_its_own_in_the_navigation(marketer_ui: UI) -> None:
    page = marketer_ui.get("/admin/reports/new")
    assert page.status_code == 200
    assert '<a href="/admin/reports"' in page.text
    assert '<form method="get" action="/admin/reports/new"' in page.text
    # Without scripts every control is there; only the chosen kind's are read.
    controls = ["kind", "field", "top", "buckets", "step-0-type", "sf-0-field", "window_days",
                "group", "filter-0-field", "time_zone", "since", "until"]  # fmt: skip
    for control in controls:
        assert f'name="{control}"' in page.text, control
    form = page.text.split('action="/admin/reports/new"')[1].split("</form>")[0]
    assert " hidden" not in form
    assert 'value="UTC"' in page.text
    lists = marketer_ui.get("/admin/reports")
    assert "No saved reports yet." in lists.text


def test_counts_per_day_with_chart_numbers_and_csv(admin_ui: UI, contacts: list[str]) -> None:
    page = build(admin_ui, kind="counts", type=[CALC, APPLY])
    assert page.status_code == 200, error_of(page)
    assert "Activities per day: Loan calculator, Loan application" in page.text
    assert '<svg class="chart-svg"' in page.text
    assert 'role="img"' in page.text
    rows = table_rows(page.text)
    header, *days = rows
    assert header[:2] == ["period", "activities"]
    assert [d[0] for d in days] == [f"2026-03-0{i}" for i in range(1, 8)]
    csv_link = re.search(r'href="(/admin/reports/new\.csv\?[^"]+)"', page.text)
    assert csv_link is not None
    download = admin_ui.get(unescape(csv_link.group(1)))
    assert download.status_code == 200
    assert download.headers["content-type"] == "text/csv; charset=utf-8"
    assert download.headers["content-disposition"].startswith("attachment; filename=")
    assert download.headers["x-content-type-options"] == "nosniff"
    lines = list(csv.reader(io.StringIO(download.text.lstrip("\ufeff"))))
    assert lines == rows


def test_a_breakdown_csv_makes_formulas_text(admin_ui: UI, contacts: list[str]) -> None:
    page = build(admin_ui, kind="breakdown", type=CALC, field="note")
    assert page.status_code == 200, error_of(page)
    assert [row[:2] for row in table_rows(page.text)[1:]] == [
        ["ok", "2"],
        ['=HYPERLINK("http://x")', "1"],
    ]
    download = admin_ui.get(
        "/admin/reports/new.csv?" + urlencode({**MARCH, "kind": "breakdown", "type": CALC,
                                               "field": "note"})
    )  # fmt: skip
    lines = list(csv.reader(io.StringIO(download.text.lstrip("\ufeff"))))
    assert lines[2][0] == '\'=HYPERLINK("http://x")'
    assert download.headers["content-disposition"] == (
        'attachment; filename="loan-calculator-by-note.csv"'
    )


def test_terms_by_bucket_and_sums_from_field_filters(admin_ui: UI, contacts: list[str]) -> None:
    page = build(admin_ui, kind="breakdown", type=CALC, field="term", buckets="18, 30")
    assert page.status_code == 200, error_of(page)
    counted = {row[0]: row[1] for row in table_rows(page.text)[1:]}
    assert counted["under 18"] == "1"
    assert counted["18 to under 30"] == "2"
    sums = build(
        admin_ui, kind="numeric", type=CALC, field="amount",
        filter_0_field="term", filter_0_op="gte", filter_0_value="24",
    )  # fmt: skip
    assert sums.status_code == 200, error_of(sums)
    third = next(row for row in table_rows(sums.text) if row[0] == "2026-03-03")
    assert "2500.25" in third


def test_a_funnel_built_from_steps(admin_ui: UI, contacts: list[str]) -> None:
    page = build(
        admin_ui, kind="funnel", step_0_type=CALC, step_1_type=APPLY, window_days=7,
        sf_0_step=0, sf_0_field="term", sf_0_op="gte", sf_0_value="1",
    )  # fmt: skip
    assert page.status_code == 200, error_of(page)
    assert "Funnel: Loan calculator → Loan application, within 7 days" in page.text
    counts = [row[1] for row in table_rows(page.text)[1:]]
    assert counts[:2] == ["2", "1"]
    # The step's filter is kept in the form.
    assert 'name="sf-0-field" value="term"' in page.text


def test_a_group_report_takes_its_group_from_the_form(
    admin_ui: UI, contacts: list[str], hub: Hub
) -> None:
    group = hub.groups.create(
        GroupCreate(name="Calculator users", condition={"activity": {"type": CALC}})
    )
    page = build(admin_ui, kind="group", group=str(group.id))
    assert page.status_code == 200, error_of(page)
    assert "Counted from the group memberships" in page.text
    assert '<h2 id="result-heading">Calculator users: members per day</h2>' in page.text
    of_group = build(admin_ui, kind="counts", type=CALC, group=str(group.id))
    assert "Activities per day: Loan calculator, contacts in Calculator users" in of_group.text


@pytest.mark.parametrize(
    ("params", "control", "words"),
    [
        ({"kind": "numeric", "type": CALC, "field": "note"}, "field", "integer or decimal"),
        ({"kind": "breakdown", "type": CALC, "field": "colour"}, "field", "no field"),
        ({"kind": "counts", "since": "2025-01-01"}, "until", "366"),
        ({"kind": "counts", "since": "March"}, "since", ""),
        ({"kind": "counts", "time_zone": "Mars/Base"}, "time_zone", "IANA"),
        ({"kind": "breakdown", "type": [CALC, APPLY], "field": "term"}, "type", "exactly one"),
        ({"kind": "funnel", "step_0_type": CALC}, "steps", "2"),
        ({"kind": "funnel", "step_0_type": CALC, "step_1_type": "gone"}, "step-1-type", "gone"),
        ({"kind": "breakdown", "type": CALC, "field": "term", "top": "many"}, "top", "whole"),
        ({"kind": "breakdown", "type": CALC, "field": "term", "top": "0"}, "top", ""),
        ({"kind": "pie"}, "kind", "kind"),
    ],
)
def test_a_report_that_cannot_run_shows_the_error_at_its_control(
    admin_ui: UI, contacts: list[str], params: dict[str, Any], control: str, words: str
) -> None:
    page = build(admin_ui, **params)
    assert page.status_code == 400, page.text
    assert "Cannot show this report" in error_of(page)
    assert words in error_of(page)
    if control:
        assert f'id="{control}-error"' in page.text
    assert '<svg class="chart-svg"' not in page.text
    # What was typed is kept.
    if "since" in params:
        assert f'value="{params["since"]}"' in page.text


def test_save_open_change_pin_and_delete(
    admin_ui: UI, marketer_ui: UI, contacts: list[str], hub: Hub
) -> None:
    page = build(admin_ui, kind="breakdown", type=CALC, field="term")
    definition = definition_of(page.text)
    assert json.loads(definition)["field"] == "term"
    saved = marketer_ui.post(
        "/admin/reports/save", {"definition": definition, "name": "Terms", "rolling": ""}
    )
    assert saved.status_code == 303, saved.text
    report_id = saved.headers["location"].rsplit("/", 1)[1]
    shown = marketer_ui.get(saved.headers["location"])
    assert flash_of(shown) == "Saved Terms."
    assert "<h1>Terms</h1>" in shown.text
    assert table_rows(shown.text)[1:] == table_rows(page.text)[1:]
    assert f"/admin/reports/{report_id}/report.csv" in shown.text
    report = hub.saved_reports.get(uuid.UUID(report_id))
    assert report.created_by.id == marketer_ui.user.id
    assert report.rolling is False

    listed = admin_ui.get("/admin/reports")
    assert f'href="/admin/reports/{report_id}"' in listed.text
    assert marketer_ui.user.email in listed.text  # admins see who saved it
    assert (
        marketer_ui.user.email not in marketer_ui.get("/admin/reports").text.split("</header>")[1]
    )

    download = admin_ui.get(f"/admin/reports/{report_id}/report.csv")
    assert download.headers["content-disposition"] == 'attachment; filename="terms.csv"'

    # Opened in the builder, changed and saved again.
    change = re.search(r'href="(/admin/reports/new\?saved=[^"]+)"', shown.text)
    assert change is not None
    again = admin_ui.get(unescape(change.group(1)))
    assert again.status_code == 200, error_of(again)
    assert "Change Terms" in again.text
    assert 'name="field" value="term"' in again.text
    monthly = build(admin_ui, kind="breakdown", type=CALC, field="term", top=1, saved=report_id)
    changed = admin_ui.post(
        "/admin/reports/save",
        {"definition": definition_of(monthly.text), "name": "Top term", "saved": report_id,
         "rolling": "1"},
    )  # fmt: skip
    assert changed.status_code == 303, changed.text
    report = hub.saved_reports.get(uuid.UUID(report_id))
    assert (report.name, report.definition.top, report.rolling) == ("Top term", 1, True)
    assert len(hub.saved_reports.list_page(ListQuery()).data) == 1

    pinned = admin_ui.post(f"/admin/reports/{report_id}/pin")
    assert pinned.status_code == 303
    dashboard = marketer_ui.get("/admin")
    assert f'id="pinned-{report_id}"' in dashboard.text
    assert "Top term" in dashboard.text
    admin_ui.post(f"/admin/reports/{report_id}/unpin")
    assert f'id="pinned-{report_id}"' not in marketer_ui.get("/admin").text

    deleted = admin_ui.post(f"/admin/reports/{report_id}/delete", follow=True)
    assert flash_of(deleted) == "Deleted the report Top term."
    assert admin_ui.get(f"/admin/reports/{report_id}").status_code == 404


def test_saving_needs_the_csrf_token_and_a_free_name(admin_ui: UI, contacts: list[str]) -> None:
    page = build(admin_ui, kind="counts")
    definition = definition_of(page.text)
    refused = admin_ui.post("/admin/reports/save", {"definition": definition, "name": "A"}, csrf="")
    assert refused.status_code == 403
    assert (
        admin_ui.post(
            "/admin/reports/save", {"definition": definition, "name": "A", "on_dashboard": "1"}
        ).status_code
        == 303
    )
    twice = admin_ui.post("/admin/reports/save", {"definition": definition, "name": "A"})
    assert twice.status_code == 409
    assert "exists already" in twice.text
    assert 'id="name-error"' in twice.text
    assert '<svg class="chart-svg"' in twice.text  # the report is still shown
    broken = admin_ui.post("/admin/reports/save", {"definition": "{", "name": "B"})
    assert broken.status_code == 400
    dashboard = admin_ui.get("/admin")
    assert "pinned-reports" in dashboard.text


def test_a_pinned_report_that_cannot_run_says_why(
    admin_ui: UI, contacts: list[str], hub: Hub
) -> None:
    group = hub.groups.create(
        GroupCreate(name="Calculator users", condition={"activity": {"type": CALC}})
    )
    page = build(admin_ui, kind="group", group=str(group.id))
    saved = admin_ui.post(
        "/admin/reports/save",
        {"definition": definition_of(page.text), "name": "Members", "on_dashboard": "1"},
    )
    assert saved.status_code == 303
    hub.groups.delete(group.id)
    dashboard = admin_ui.get("/admin")
    assert dashboard.status_code == 200
    assert "This report cannot run now" in dashboard.text
    shown = admin_ui.get(saved.headers["location"])
    assert shown.status_code == 200
    assert "This report cannot run now" in error_of(shown)


def test_nul_characters_are_refused_before_the_database(admin_ui: UI, contacts: list[str]) -> None:
    for params in ({"kind": "counts", "group": "a\x00b"}, {"kind": "counts", "channel": "\x00"}):
        page = build(admin_ui, **params)
        assert page.status_code == 400, page.text
        assert "NUL" in page.text
    page = build(admin_ui, kind="counts")
    definition = definition_of(page.text).replace('"UTC"', '"UTC\\u0000"')
    saved = admin_ui.post("/admin/reports/save", {"definition": definition, "name": "N"})
    assert saved.status_code == 400
    assert "NUL" in saved.text

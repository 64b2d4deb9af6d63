"""/api/reports/saved on both databases: create, list, read, change, delete, run, the
dashboard's pins, every bad input a 4xx in the error shape, and who may."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from starlette.testclient import TestClient

from waypost.clock import FakeClock
from waypost.domain.report_definitions import ReportDefinition
from waypost.hub import Hub
from waypost.services.activity_types import ActivityType
from waypost.services.groups import GroupCreate
from waypost.services.saved_reports import MAX_PINNED, rolled

if TYPE_CHECKING:
    from tests.admin_support import UI
    from tests.conftest import ErrorCheck, Tracker
else:
    from admin_support import UI

SHAPE = {
    "id",
    "name",
    "definition",
    "rolling",
    "on_dashboard",
    "created_by",
    "created_at",
    "updated_at",
}
LOANS = "loan_calculator"


@pytest.fixture
def loans(make_type: Callable[..., ActivityType]) -> ActivityType:
    return make_type(
        name="Loan calculator usage",
        code_name=LOANS,
        fields=[{"name": "amount", "type": "decimal"}, {"name": "term", "type": "integer"}],
    )


def counts(**changes: Any) -> dict[str, Any]:
    definition: dict[str, Any] = {
        "kind": "counts",
        "since": "2026-03-01",
        "until": "2026-03-30",
        "types": [LOANS],
    }
    definition.update(changes)
    return definition


def create(
    client: TestClient, headers: dict[str, str], name: str = "Loans", **body: Any
) -> dict[str, Any]:
    body.setdefault("definition", counts())
    answer = client.post("/api/reports/saved", json={"name": name, **body}, headers=headers)
    assert answer.status_code == 201, answer.text
    found: dict[str, Any] = answer.json()
    return found


def test_create_read_list_change_delete(
    client: TestClient, admin_headers: dict[str, str], loans: ActivityType, make_key: Any
) -> None:
    made = create(client, admin_headers)
    assert set(made) == SHAPE
    assert made["name"] == "Loans"
    assert made["definition"]["kind"] == "counts"
    assert made["definition"]["types"] == [LOANS]
    assert made["definition"]["granularity"] == "day"
    assert made["rolling"] is False
    assert made["on_dashboard"] is False
    assert made["created_by"]["kind"] == "key"
    assert made["created_at"] == made["updated_at"]

    one = client.get(f"/api/reports/saved/{made['id']}", headers=admin_headers)
    assert one.status_code == 200
    assert one.json() == made

    second = create(client, admin_headers, "Terms", definition=counts(granularity="week"))
    listed = client.get("/api/reports/saved?limit=1", headers=admin_headers).json()
    assert [r["id"] for r in listed["data"]] == [made["id"]]
    rest = client.get(f"/api/reports/saved?cursor={listed['next']}", headers=admin_headers)
    assert [r["id"] for r in rest.json()["data"]] == [second["id"]]
    assert rest.json()["next"] is None

    changed = client.patch(
        f"/api/reports/saved/{made['id']}",
        json={"name": "Loan calculator", "definition": counts(granularity="month")},
        headers=admin_headers,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["name"] == "Loan calculator"
    assert changed.json()["definition"]["granularity"] == "month"
    assert changed.json()["created_by"] == made["created_by"]

    gone = client.delete(f"/api/reports/saved/{made['id']}", headers=admin_headers)
    assert gone.status_code == 204
    again = client.get(f"/api/reports/saved/{made['id']}", headers=admin_headers)
    assert again.status_code == 404


def test_the_definition_is_kept_as_sent_with_its_defaults(
    client: TestClient, admin_headers: dict[str, str], loans: ActivityType, hub: Hub
) -> None:
    funnel = {
        "kind": "funnel",
        "since": "2026-03-01",
        "until": "2026-03-30",
        "time_zone": "Europe/Prague",
        "steps": [{"type": LOANS, "filters": {"amount.gte": "1000"}}, {"type": LOANS}],
        "window_days": 3,
    }
    made = create(client, admin_headers, definition=funnel)
    saved = hub.saved_reports.get(uuid.UUID(made["id"]))
    assert saved.definition.steps[0].filters == {"amount.gte": "1000"}
    assert saved.definition.steps[1].filters == {}
    assert saved.definition.window_days == 3
    assert saved.definition.time_zone == "Europe/Prague"
    assert saved.definition.since == dt.date(2026, 3, 1)


def test_the_dashboard_shows_pinned_reports_in_the_order_they_were_pinned(
    client: TestClient, admin_headers: dict[str, str], loans: ActivityType, hub: Hub
) -> None:
    first = create(client, admin_headers, "First", on_dashboard=True)
    second = create(client, admin_headers, "Second")
    third = create(client, admin_headers, "Third", on_dashboard=True)
    assert first["on_dashboard"] is True
    assert [r.name for r in hub.saved_reports.pinned()] == ["First", "Third"]
    pin = client.patch(
        f"/api/reports/saved/{second['id']}", json={"on_dashboard": True}, headers=admin_headers
    )
    assert pin.json()["on_dashboard"] is True
    unpin = client.patch(
        f"/api/reports/saved/{first['id']}", json={"on_dashboard": False}, headers=admin_headers
    )
    assert unpin.json()["on_dashboard"] is False
    assert [r.name for r in hub.saved_reports.pinned()] == ["Third", "Second"]
    # Pinning one that is pinned keeps its place.
    client.patch(
        f"/api/reports/saved/{third['id']}", json={"on_dashboard": True}, headers=admin_headers
    )
    assert [r.name for r in hub.saved_reports.pinned()] == ["Third", "Second"]


def test_the_dashboard_takes_a_bounded_number(
    client: TestClient,
    admin_headers: dict[str, str],
    loans: ActivityType,
    expect_error: ErrorCheck,
) -> None:
    for i in range(MAX_PINNED):
        create(client, admin_headers, f"Pinned {i}", on_dashboard=True)
    answer = client.post(
        "/api/reports/saved",
        json={"name": "One more", "definition": counts(), "on_dashboard": True},
        headers=admin_headers,
    )
    expect_error(answer, 409, "conflict", "on_dashboard")
    unpinned = create(client, admin_headers, "Not pinned")
    answer = client.patch(
        f"/api/reports/saved/{unpinned['id']}", json={"on_dashboard": True}, headers=admin_headers
    )
    expect_error(answer, 409, "conflict", "on_dashboard")


def test_a_rolling_report_ends_today_in_its_time_zone(hub: Hub, loans: ActivityType) -> None:
    definition = ReportDefinition(
        kind="counts",
        since=dt.date(2026, 1, 1),
        until=dt.date(2026, 1, 30),
        time_zone="Pacific/Auckland",
    )
    hub.saved_reports.clock = FakeClock(dt.datetime(2026, 3, 10, 13, 0, tzinfo=dt.UTC))
    from waypost.services.saved_reports import Creator, SavedReportCreate

    fixed = hub.saved_reports.create(
        SavedReportCreate(name="Fixed", definition=definition), Creator("key", None)
    )
    assert hub.saved_reports.definition_to_run(fixed) == definition
    moving = hub.saved_reports.create(
        SavedReportCreate(name="Rolling", definition=definition, rolling=True),
        Creator("key", None),
    )
    ran = hub.saved_reports.definition_to_run(moving)
    # 13:00 UTC on March 10 is already March 11 in Auckland; 30 days, as saved.
    assert (ran.since, ran.until) == (dt.date(2026, 2, 10), dt.date(2026, 3, 11))
    assert rolled(definition, dt.date(2026, 1, 30)) == definition


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"definition": counts()}, 400, "missing_field", "name"),
        ({"name": "", "definition": counts()}, 400, "invalid_field", "name"),
        ({"name": "x" * 201, "definition": counts()}, 400, "invalid_field", "name"),
        ({"name": "A"}, 400, "missing_field", "definition"),
        ({"name": "A", "definition": counts(kind="pie")}, 400, "invalid_field", "definition.kind"),
        (
            {"name": "A", "definition": counts(until="2026-02-01")},
            400,
            "invalid_field",
            "definition.until",
        ),
        (
            {"name": "A", "definition": counts(since="2025-01-01")},
            400,
            "invalid_field",
            "definition.until",
        ),
        (
            {"name": "A", "definition": counts(time_zone="Mars/Olympus")},
            400,
            "invalid_field",
            "definition.time_zone",
        ),
        (
            {"name": "A", "definition": counts(colour="red")},
            400,
            "unknown_field",
            "definition.colour",
        ),
        ({"name": "A", "definition": counts(), "pinned": True}, 400, "unknown_field", "pinned"),
        (
            {"name": "A", "definition": counts(kind="funnel", types=[], steps=[{"type": LOANS}])},
            400,
            "invalid_field",
            "definition.steps",
        ),
        (
            {"name": "A", "definition": counts(types=["nope"])},
            400,
            "invalid_field",
            "definition.types[0]",
        ),
        (
            {"name": "A", "definition": counts(kind="numeric", field="colour")},
            400,
            "invalid_field",
            "definition.field",
        ),
        (
            {"name": "A", "definition": counts(group="No such group")},
            400,
            "invalid_field",
            "definition.group",
        ),
        (
            {"name": "A", "definition": counts(filters={"amount.gte": "lots"})},
            400,
            "invalid_field",
            "definition.filters.amount.gte",
        ),
    ],
)
def test_bad_definitions_are_400(
    client: TestClient,
    admin_headers: dict[str, str],
    loans: ActivityType,
    expect_error: ErrorCheck,
    body: dict[str, Any],
    status: int,
    code: str,
    field: str,
) -> None:
    answer = client.post("/api/reports/saved", json=body, headers=admin_headers)
    expect_error(answer, status, code, field)
    assert client.get("/api/reports/saved", headers=admin_headers).json()["data"] == []


def test_a_duplicate_name_is_409_and_an_unknown_id_404(
    client: TestClient,
    admin_headers: dict[str, str],
    loans: ActivityType,
    expect_error: ErrorCheck,
) -> None:
    made = create(client, admin_headers, "Loans")
    other = create(client, admin_headers, "Terms")
    again = client.post(
        "/api/reports/saved", json={"name": "Loans", "definition": counts()}, headers=admin_headers
    )
    expect_error(again, 409, "conflict", "name")
    renamed = client.patch(
        f"/api/reports/saved/{other['id']}", json={"name": "Loans"}, headers=admin_headers
    )
    expect_error(renamed, 409, "conflict", "name")
    missing = f"/api/reports/saved/{uuid.uuid4()}"
    for method in ("GET", "DELETE"):
        expect_error(client.request(method, missing, headers=admin_headers), 404, "not_found")
    expect_error(client.get(missing + "/run", headers=admin_headers), 404, "not_found")
    expect_error(client.patch(missing, json={"name": "X"}, headers=admin_headers), 404, "not_found")
    expect_error(client.get("/api/reports/saved/nope", headers=admin_headers), 404, "not_found")
    assert client.get(f"/api/reports/saved/{made['id']}", headers=admin_headers).status_code == 200


def test_marketers_save_and_share_reports_and_need_the_csrf_header(
    marketer_ui: UI, admin_ui: UI, loans: ActivityType, client: TestClient
) -> None:
    body = {"name": "Marketing", "definition": counts()}
    refused = marketer_ui.client.post("/api/reports/saved", json=body)
    assert refused.status_code == 403, refused.text
    made = marketer_ui.api("POST", "/api/reports/saved", json=body)
    assert made.status_code == 201, made.text
    assert made.json()["created_by"] == {"kind": "user", "id": str(marketer_ui.user.id)}
    seen = admin_ui.api("GET", "/api/reports/saved").json()["data"]
    assert [r["name"] for r in seen] == ["Marketing"]
    assert client.get("/api/reports/saved").status_code == 401


def test_the_operations_are_in_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/api/openapi.json").json()["paths"]
    assert set(paths["/api/reports/saved"]) == {"get", "post"}
    assert set(paths["/api/reports/saved/{report_id}"]) == {"get", "patch", "delete"}
    assert set(paths["/api/reports/saved/{report_id}/run"]) == {"get"}


def test_running_a_saved_report_answers_as_the_report_api(
    client: TestClient,
    admin_headers: dict[str, str],
    loans: ActivityType,
    tracker: Tracker,
    expect_error: ErrorCheck,
    hub: Hub,
) -> None:
    for day, term in (("2026-03-02", 12), ("2026-03-02", 24), ("2026-03-04", 24)):
        tracker.log(
            [{"type": LOANS, "fields": {"amount": "1000.50", "term": term},
              "occurredAt": f"{day}T10:00:00Z"}]
        )  # fmt: skip
    definition = counts(kind="breakdown", field="term", since="2026-03-01", until="2026-03-07")
    made = create(client, admin_headers, "Terms", definition=definition)
    ran = client.get(f"/api/reports/saved/{made['id']}/run", headers=admin_headers)
    assert ran.status_code == 200, ran.text
    direct = client.post("/api/reports/run", json=definition, headers=admin_headers)
    assert ran.json() == direct.json()
    assert ran.json()["definition"]["field"] == "term"
    values = {row[0]: row[1] for row in ran.json()["rows"]}
    assert values == {"24": 2, "12": 1}

    # A rolling report runs over the same number of days, ending today.
    rolling = create(client, admin_headers, "Rolling", definition=counts(), rolling=True)
    answer = client.get(f"/api/reports/saved/{rolling['id']}/run", headers=admin_headers).json()
    today = hub.clock.now().date()
    assert answer["definition"]["until"] == today.isoformat()
    assert answer["definition"]["since"] == (today - dt.timedelta(days=29)).isoformat()

    # What a saved report names may be deleted later: running it is then a 400.
    group = hub.groups.create(
        GroupCreate(name="Calculator users", condition={"activity": {"type": LOANS}})
    )
    of_group = create(client, admin_headers, "Of a group", definition=counts(group=group.name))
    assert client.get(f"/api/reports/saved/{of_group['id']}/run", headers=admin_headers).is_success
    hub.groups.delete(group.id)
    expect_error(
        client.get(f"/api/reports/saved/{of_group['id']}/run", headers=admin_headers),
        400,
        "invalid_field",
        "group",
    )

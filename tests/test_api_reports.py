"""/api/reports and /api/groups/{id}/history: the dashboard's numbers for scripts."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pytest
from starlette.testclient import TestClient

from waypost.hub import Hub
from waypost.ids import new_id, utcnow
from waypost.services.groups import GroupCreate
from waypost.store.schema import activity_daily_counts, activity_rollups, contacts

if TYPE_CHECKING:
    from tests.admin_support import UI
    from tests.conftest import ErrorCheck
else:
    from admin_support import UI


def test_reports_answer_every_day(
    client: TestClient, hub: Hub, admin_headers: dict[str, str]
) -> None:
    today = utcnow().date()
    person = new_id()
    click = hub.types.get_by_code("click").id
    with hub.store.write() as conn:
        conn.execute(
            contacts.insert().values(
                id=person, attributes={}, created_at=utcnow(), updated_at=utcnow()
            )
        )
        conn.execute(
            activity_rollups.insert().values(contact_id=person, type_id=click, day=today, count=3)
        )
        conn.execute(activity_daily_counts.insert().values(type_id=click, day=today, count=3))
    answer = client.get("/api/reports/activities?days=7", headers=admin_headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["since"] == (today - dt.timedelta(days=6)).isoformat()
    assert body["until"] == today.isoformat()
    assert body["total"] == 3
    assert body["types"] == [{"type": "click", "name": "Click", "total": 3}]
    assert len(body["days"]) == 7
    assert body["days"][-1] == {"day": today.isoformat(), "total": 3, "by_type": {"click": 3}}
    new = client.get("/api/reports/new-contacts", headers=admin_headers).json()
    assert (new["total"], len(new["days"]), new["days"][-1]["count"]) == (1, 30, 1)
    rejected = client.get("/api/reports/rejected?days=1", headers=admin_headers).json()
    assert rejected == {
        "since": today.isoformat(),
        "until": today.isoformat(),
        "total": 0,
        "reasons": [],
        "replayed": 0,
    }


@pytest.mark.parametrize("days", ["0", "367", "x", "-1"])
def test_days_out_of_range_are_refused(
    client: TestClient, admin_headers: dict[str, str], expect_error: ErrorCheck, days: str
) -> None:
    for path in ("/api/reports/activities", "/api/reports/rejected"):
        answer = client.get(f"{path}?days={days}", headers=admin_headers)
        expect_error(answer, 400, "invalid_field", "days")


def test_reports_need_a_key_or_a_session(
    client: TestClient, marketer_ui: UI, expect_error: ErrorCheck
) -> None:
    expect_error(client.get("/api/reports/new-contacts"), 401, "unauthorized")
    assert marketer_ui.api("GET", "/api/reports/new-contacts").status_code == 200


def test_a_groups_history(
    client: TestClient,
    hub: Hub,
    admin_headers: dict[str, str],
    expect_error: ErrorCheck,
) -> None:
    group = hub.groups.create(
        GroupCreate(name="Clickers", condition={"activity": {"type": "click"}})
    )
    answer = client.get(f"/api/groups/{group.id}/history?days=2", headers=admin_headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["group"] == str(group.id)
    assert [d["members"] for d in body["days"]] == [0, 0]
    assert set(body["days"][0]) == {"day", "members", "entered", "left"}
    missing = client.get(f"/api/groups/{new_id()}/history", headers=admin_headers)
    expect_error(missing, 404, "not_found")
    bad = client.get(f"/api/groups/{group.id}/history?days=400", headers=admin_headers)
    expect_error(bad, 400, "invalid_field", "days")

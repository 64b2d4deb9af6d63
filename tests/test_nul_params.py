"""A NUL character in a query parameter or a path segment is a 400, never a database error.

PostgreSQL text cannot hold NUL (SQLite can), so every text that reaches a query is checked
first; the tests run on both databases.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from starlette.testclient import TestClient

from waypost.services.activity_types import ActivityType

if TYPE_CHECKING:
    from tests.admin_support import UI
    from tests.conftest import ErrorCheck, Tracker


@pytest.fixture
def noted(make_type: Callable[..., ActivityType]) -> ActivityType:
    return make_type(
        name="Noted",
        code_name="custom_noted",
        fields=[{"name": "note", "type": "text"}, {"name": "site", "type": "url"}],
    )


API_QUERIES = [
    ("/api/activities?type=custom_noted&field.note=%00", "field.note"),
    ("/api/activities?type=custom_noted&field.note.contains=a%00b", "field.note.contains"),
    ("/api/activities?type=custom_noted&field.site=https://a.example/%00", "field.site"),
    ("/api/activities?type=custom_noted&field.no%00te=x", None),
    ("/api/activities?type=custom%00noted", "type"),
    ("/api/rejected-activities?reason=a%00b", "reason"),
    ("/api/rejected-activities?type=a%00b", "type"),
    ("/api/contacts?q=a%00b", "q"),
]


@pytest.mark.parametrize(("url", "field"), API_QUERIES)
def test_admin_api_queries(
    client: TestClient,
    admin_headers: dict[str, str],
    noted: ActivityType,
    expect_error: ErrorCheck,
    url: str,
    field: str | None,
) -> None:
    error = expect_error(client.get(url, headers=admin_headers), 400, "invalid_field", field)
    assert "NUL" in error["message"]


def test_a_field_filter_without_nul_still_works(
    client: TestClient, admin_headers: dict[str, str], noted: ActivityType, tracker: Tracker
) -> None:
    [result] = tracker.log([{"type": "custom_noted", "fields": {"note": "a\\u0000b"}}])
    assert result["status"] == 202, result
    answer = client.get(
        "/api/activities",
        params={"type": "custom_noted", "field.note": "a\\u0000b"},
        headers=admin_headers,
    )
    assert answer.status_code == 200, answer.text
    assert [a["id"] for a in answer.json()["data"]] == [result["id"]]


UI_QUERIES = [
    "/admin/activities?type=custom_noted&field.note=%00",
    "/admin/activities?type=custom_noted&field.note.contains=a%00b",
    "/admin/rejected?reason=a%00b",
    "/admin/contacts?q=a%00b",
]


@pytest.mark.parametrize("url", UI_QUERIES)
def test_admin_ui_queries(admin_ui: UI, noted: ActivityType, url: str) -> None:
    answer = admin_ui.get(url)
    assert answer.status_code == 400, answer.text
    assert "NUL" in answer.text


@pytest.mark.parametrize("prefix", ["/tracking", "/Kentico.Tracking"])
def test_tracking_paths_and_queries(
    tracker: Tracker, expect_error: ErrorCheck, prefix: str
) -> None:
    contact = tracker.new_contact(prefix)
    client, headers = tracker.client, tracker.headers
    for answer in (
        client.get(f"{prefix}/consents/a%00b", headers=headers),
        client.get(f"{prefix}/consents/Any?languageName=e%00n", headers=headers),
        client.get(f"{prefix}/contacts/{contact}/consents/a%00b", headers=headers),
        client.post(
            f"{prefix}/contacts/{contact}/consents/a%00b", json={"agree": True}, headers=headers
        ),
    ):
        error = expect_error(answer, 400, "invalid_field")
        assert "NUL" in error["message"]

"""Marketo's custom activities API through the in-process client, on both databases:
docs/collectors.md. The bodies are Marketo's documented request examples."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx2
import pytest
from starlette.testclient import TestClient

from waypost.app import create_app
from waypost.hub import Hub
from waypost.services.activity_types import ActivityType
from waypost.services.channels import Channel
from waypost.services.erasure import Actor
from waypost.services.keys import CreatedKey
from waypost.settings import Settings
from waypost.store.schema import activities, contacts, rejected_activities

if TYPE_CHECKING:
    from tests.collector_support import Collector
else:
    from collector_support import Collector

PATH = "/rest/v1/activities/external.json"
# Marketo's documented example of adding a custom activity (its type is 100001 there too).
EXAMPLE: dict[str, Any] = {
    "input": [
        {
            "leadId": 1001,
            "activityDate": "2013-09-26T06:56:35+07:00",
            "activityTypeId": 100001,
            "primaryAttributeValue": "Game Giveaway",
            "attributes": [{"name": "URL", "value": "http://www.nvidia.com/game-giveaway"}],
        },
        {
            "leadId": 1002,
            "activityDate": "2013-09-26T06:56:35+07:00",
            "activityTypeId": 100001,
            "primaryAttributeValue": "Game Giveaway",
            "attributes": [{"name": "URL", "value": "http://www.nvidia.com/game-giveaway"}],
        },
    ]
}
REQUEST_ID = re.compile(r"[0-9a-f]{4}#[0-9a-f]+\Z")


class Marketo(Collector):
    """Calls made the way Marketo's clients make them."""

    def post(self, body: object, *, token: str | None = None, **headers: str) -> httpx2.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {"Content-Type": "application/json; charset=utf-8", **headers}
        if token is None:
            sent.setdefault("Authorization", f"Bearer {self.tracking}")
        return self.client.post(
            PATH if token is None else f"{PATH}?access_token={token}", content=raw, headers=sent
        )

    def results(self, body: object) -> list[dict[str, Any]]:
        answer = self.post(body)
        assert answer.status_code == 200, answer.text
        got = answer.json()
        assert set(got) == {"requestId", "success", "result"}
        assert got["success"] is True
        assert REQUEST_ID.match(got["requestId"])
        results: list[dict[str, Any]] = got["result"]
        return results


@pytest.fixture
def marketo(
    client: TestClient,
    hub: Hub,
    make_channel: Callable[..., Channel],
    make_key: Callable[..., CreatedKey],
) -> Marketo:
    channel = make_channel()
    tracking = make_key("tracking", channel.id).key
    return Marketo(client, hub, channel, tracking, "")


@pytest.fixture
def giveaway(make_type: Callable[..., ActivityType]) -> ActivityType:
    made = make_type(
        name="Game giveaway entry",
        code_name="giveaway",
        fields=[
            {"name": "campaign", "type": "text", "primary": True},
            {"name": "url", "type": "url"},
        ],
    )
    assert made.number == 100001
    return made


def marketo_error(answer: httpx2.Response, status: int, code: str, marketo: str) -> None:
    """Marketo's error shape, with Waypost's error beside it."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"requestId", "success", "errors", "error"}, body
    assert body["success"] is False
    assert body["errors"][0]["code"] == marketo
    assert body["error"]["code"] == code
    assert body["errors"][0]["message"] == body["error"]["message"]


def test_marketos_example_is_added(marketo: Marketo, giveaway: ActivityType) -> None:
    results = marketo.results(EXAMPLE)
    stored = marketo.activities()
    assert [r["status"] for r in results] == ["added", "added"]
    assert sorted(r["id"] for r in results) == sorted(str(a.id) for a in stored)
    for activity in stored:
        assert activity.type == "giveaway"
        assert activity.fields == {
            "campaign": "Game Giveaway",
            "url": "http://www.nvidia.com/game-giveaway",
        }
        assert activity.value == "Game Giveaway"
        assert activity.title == "Game giveaway entry 'Game Giveaway'"
        assert activity.occurred_at.isoformat() == "2013-09-25T23:56:35+00:00"
    lead = marketo.contact_of("marketo_lead", "1001")
    assert {a.contact_id for a in stored} == {lead, marketo.contact_of("marketo_lead", "1002")}


def test_the_token_may_be_the_access_token_parameter(
    marketo: Marketo, giveaway: ActivityType
) -> None:
    answer = marketo.post(EXAMPLE, token=marketo.tracking)
    assert answer.status_code == 200, answer.text
    assert len(marketo.activities()) == 2


def test_a_resend_is_stored_once(marketo: Marketo, giveaway: ActivityType) -> None:
    first = marketo.results(EXAMPLE)
    again = marketo.results(EXAMPLE)
    assert len(marketo.activities()) == 2
    assert [r["status"] for r in again] == ["skipped", "skipped"]
    assert [r["id"] for r in again] == [r["id"] for r in first]
    assert {r["reasons"][0]["code"] for r in again} == {"1017"}
    # Another moment of the same lead is another activity.
    later = copy.deepcopy(EXAMPLE)
    later["input"][0]["activityDate"] = "2013-09-26T07:00:00+07:00"
    assert [r["status"] for r in marketo.results(later)] == ["added", "skipped"]


def test_a_lead_is_one_contact(marketo: Marketo, giveaway: ActivityType) -> None:
    record = EXAMPLE["input"][0]
    marketo.results({"input": [record, {**record, "activityDate": "2024-01-01T00:00:00Z"}]})
    assert marketo.count(contacts) == 1


def test_attributes_by_name_or_api_name_and_values_as_marketo_sends_them(
    marketo: Marketo, make_type: Callable[..., ActivityType]
) -> None:
    made = make_type(
        name="Webinar attended",
        fields=[
            {"name": "webinar", "type": "text", "primary": True},
            {"name": "minutes", "type": "integer"},
            {"name": "asked-question", "type": "boolean"},
            {"name": "score", "type": "decimal"},
        ],
    )
    record = {
        "leadId": "42",
        "activityDate": "2026-01-31T10:00:00Z",
        "activityTypeId": made.number,
        "primaryAttributeValue": 7,
        "attributes": [
            {"name": "Minutes", "value": "45"},
            {"apiName": "asked_question", "value": "true"},
            {"name": "score", "value": 8.5},
        ],
    }
    [result] = marketo.results({"input": [record]})
    assert result["status"] == "added"
    [stored] = marketo.activities()
    assert stored.fields == {
        "webinar": "7",
        "minutes": 45,
        "asked-question": True,
        "score": "8.5",
    }


def test_without_a_primary_field_the_primary_value_is_the_value(
    marketo: Marketo, make_type: Callable[..., ActivityType]
) -> None:
    made = make_type(name="Deposited a check")
    record = {
        "leadId": 7,
        "activityDate": "2026-01-31T10:00:00Z",
        "activityTypeId": made.number,
        "primaryAttributeValue": "Branch 12",
    }
    marketo.results({"input": [record]})
    [stored] = marketo.activities()
    assert (stored.value, stored.title) == ("Branch 12", "Deposited a check 'Branch 12'")


def test_records_that_cannot_be_stored_are_skipped_and_kept(
    marketo: Marketo, giveaway: ActivityType
) -> None:
    good = EXAMPLE["input"][0]
    records = [
        {**good, "activityTypeId": 999999},
        {**good, "attributes": [{"name": "colour", "value": "red"}]},
        {**good, "attributes": [{"name": "url", "value": "not a url"}]},
        {key: value for key, value in good.items() if key != "activityDate"},
        {key: value for key, value in good.items() if key != "leadId"},
        {**good, "activityDate": "yesterday"},
        {**good, "activityTypeId": "100001"},
        good,
    ]
    results = marketo.results({"input": records})
    assert [r["status"] for r in results] == ["skipped"] * 7 + ["added"]
    codes = [r["reasons"][0]["code"] for r in results[:7]]
    assert codes == ["1013", "1006", "1001", "1003", "1003", "1001", "1001"]
    assert "number" in results[0]["reasons"][0]["message"]
    kept = marketo.rejected()
    assert len(kept) == 7
    assert {r.source for r in kept} == {"marketo"}
    reasons = sorted((r.reason, r.type_code or "") for r in kept)
    assert reasons == [
        ("activity_type_not_found", "marketo:999999"),
        ("invalid_field", ""),  # activityTypeId as a string: no type to name
        ("invalid_field", "giveaway"),  # the url
        ("invalid_field", "giveaway"),  # the date
        ("missing_field", "giveaway"),  # activityDate
        ("missing_field", "giveaway"),  # leadId
        ("unknown_field", "giveaway"),
    ]


def test_an_unknown_number_replays_once_a_type_has_it(
    marketo: Marketo,
    make_type: Callable[..., ActivityType],
    client: TestClient,
    admin_headers: dict[str, str],
) -> None:
    record = {**EXAMPLE["input"][0], "activityTypeId": 100500, "attributes": []}
    marketo.results({"input": [record]})
    [kept] = marketo.rejected()
    make_type(
        name="Giveaway", number=100500, fields=[{"name": "c", "type": "text", "primary": True}]
    )
    answer = client.post(f"/api/rejected-activities/{kept.id}/replay", headers=admin_headers)
    assert answer.json()["stored"] == 1, answer.text
    [stored] = marketo.activities()
    # Without the type, the primary value could only be kept as the activity's value.
    assert (stored.type, stored.value) == ("giveaway", "Game Giveaway")


@pytest.mark.parametrize(
    ("body", "status", "code", "marketo_code"),
    [
        (b"{not json", 400, "invalid_json", "609"),
        (b"[]", 400, "invalid_field", "1003"),
        (b'{"input": {}}', 400, "invalid_field", "1003"),
        (b'{"input": []}', 400, "missing_field", "1003"),
        (b'{"input": [{}, "not an object"]}', 400, "invalid_field", "1003"),
        (json.dumps({"input": [{}] * 301}).encode(), 413, "payload_too_large", "1003"),
        (b"[" * 100 + b"]" * 100, 400, "invalid_json", "609"),
    ],
)
def test_malformed_bodies_are_4xx_in_marketos_shape(
    marketo: Marketo, body: bytes, status: int, code: str, marketo_code: str
) -> None:
    marketo_error(marketo.post(body), status, code, marketo_code)
    assert marketo.count(rejected_activities) == 0


def test_keys_and_media_types_that_cannot_send(
    marketo: Marketo, make_key: Callable[..., CreatedKey]
) -> None:
    marketo_error(marketo.post(EXAMPLE, Authorization=""), 401, "unauthorized", "601")
    marketo_error(marketo.post(EXAMPLE, token="wpt_unknown"), 401, "unauthorized", "601")
    admin = make_key("admin").key
    marketo_error(marketo.post(EXAMPLE, token=admin), 403, "forbidden", "603")
    form = marketo.post(EXAMPLE, **{"Content-Type": "application/x-www-form-urlencoded"})
    marketo_error(form, 415, "unsupported_media_type", "612")
    missing = marketo.client.post("/rest/v1/leads.json", headers={"Authorization": "Bearer x"})
    marketo_error(missing, 404, "not_found", "610")
    assert marketo.count(activities) == 0


def test_a_storage_outage_is_a_503_marketos_clients_retry() -> None:
    settings = Settings(database_url="sqlite:////nonexistent/dir/waypost.db")
    with TestClient(create_app(settings)) as client:
        answer = client.post(PATH, json=EXAMPLE, headers={"Authorization": "Bearer wpt_x"})
    marketo_error(answer, 503, "storage_unavailable", "608")
    assert int(answer.headers["retry-after"]) >= 1


def test_the_client_credentials_flow_answers_the_key_as_the_token(marketo: Marketo) -> None:
    query = {"grant_type": "client_credentials", "client_id": "any", "client_secret": ""}
    answer = marketo.client.get(
        "/identity/oauth/token", params={**query, "client_secret": marketo.tracking}
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["access_token"] == marketo.tracking
    assert (body["token_type"], body["expires_in"]) == ("bearer", 3599)
    assert body["scope"] == str(marketo.channel.id)
    refused = marketo.client.get("/identity/oauth/token", params=query)
    marketo_error(refused, 401, "unauthorized", "601")
    wrong = marketo.client.get(
        "/identity/oauth/token",
        params={**query, "grant_type": "password", "client_secret": marketo.tracking},
    )
    marketo_error(wrong, 400, "invalid_field", "1003")


def test_records_that_cannot_be_mapped_naming_an_erased_lead_are_stored_nowhere(
    marketo: Marketo, giveaway: ActivityType, hub: Hub
) -> None:
    """A record skipped for another reason (no activityDate, an activityTypeId that is not
    a number) was kept as rejected with the erased lead's id in its payload. It names the
    lead all the same, and is dropped."""
    good = EXAMPLE["input"][0]
    assert [r["status"] for r in marketo.results({"input": [good]})] == ["added"]
    hub.erasure.erase(marketo.contact_of("marketo_lead", "1001"), Actor("key", None))
    hub.catalog.invalidate()
    undated = {key: value for key, value in good.items() if key != "activityDate"}
    for record in (undated, {**good, "activityTypeId": "100001"}, {**good, "attributes": 1}):
        answer = marketo.post({"input": [record]})
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"]["code"] == "contact_erased"
    assert marketo.rejected() == []
    # Beside a record of another lead, it is skipped and the other kept as rejected.
    results = marketo.results({"input": [undated, {**undated, "leadId": 1002}]})
    assert [r["status"] for r in results] == ["skipped", "skipped"]
    [kept] = marketo.rejected()
    assert (kept.reason, kept.payload["leadId"]) == ("missing_field", 1002)

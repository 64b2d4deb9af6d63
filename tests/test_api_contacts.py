"""Contacts: anonymous creation through the tracking API, and /api/contacts, on both databases."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from starlette.testclient import TestClient

from waypost.hub import Hub

if TYPE_CHECKING:
    from tests.conftest import ErrorCheck, Tracker

FIELDS = (
    "email",
    "first_name",
    "middle_name",
    "last_name",
    "birthday",
    "mobile_phone",
    "business_phone",
    "company_name",
    "job_title",
    "address1",
    "city",
    "zip",
    "country",
    "state",
    "notes",
)


def test_post_contacts_creates_an_anonymous_contact(
    client: TestClient, tracker: Tracker, admin_headers: dict[str, str], hub: Hub
) -> None:
    answer = client.post("/tracking/contacts", headers=tracker.headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert set(body) == {"contact"}
    contact = uuid.UUID(body["contact"])
    other = uuid.UUID(
        client.post("/Kentico.Tracking/contacts", headers=tracker.headers).json()["contact"]
    )
    assert other != contact
    read = client.get(f"/api/contacts/{contact}", headers=admin_headers)
    assert read.status_code == 200, read.text
    person = read.json()
    assert person["id"] == str(contact)
    assert all(person[name] is None for name in FIELDS)
    assert person["attributes"] == {}
    assert person["external_ids"] == {}
    created = dt.datetime.fromisoformat(person["created_at"])
    assert abs(created - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)


def test_post_contacts_needs_a_tracking_key(
    client: TestClient, admin_headers: dict[str, str], expect_error: ErrorCheck
) -> None:
    expect_error(client.post("/tracking/contacts"), 401, "unauthorized")
    expect_error(client.post("/tracking/contacts", headers=admin_headers), 403, "forbidden")
    expect_error(client.get("/tracking/contacts", headers=admin_headers), 405, "method_not_allowed")


def test_a_contact_shows_what_data_inputs_set(
    client: TestClient, tracker: Tracker, admin_headers: dict[str, str]
) -> None:
    contact = tracker.new_contact()
    fields = {
        "ContactEmail": "lsmith@domain.com",
        "ContactFirstName": "Luke",
        "ContactMiddleName": "J.",
        "ContactLastName": "Smith",
        "ContactBirthday": "1990-12-31",
        "ContactMobilePhone": "+420 601 123 456",
        "ContactBusinessPhone": "+1 650 253 0000",
        "ContactCompanyName": "Bank",
        "ContactJobTitle": "Analyst",
        "ContactAddress1": "1 Main St",
        "ContactCity": "Springfield",
        "ContactZIP": "62701",
        "ContactCountry": "usa",
        "ContactState": "il",
        "ContactNotes": "<p>Met at a fair</p>",
    }
    [result] = tracker.log(
        [{"type": "datainput", "value": "Registration form", "contactFields": fields}], contact
    )
    assert result["status"] == 202
    person = client.get(f"/api/contacts/{contact}", headers=admin_headers).json()
    assert {name: person[name] for name in FIELDS} == {
        "email": "lsmith@domain.com",
        "first_name": "Luke",
        "middle_name": "J.",
        "last_name": "Smith",
        "birthday": "1990-12-31",
        "mobile_phone": "+420601123456",
        "business_phone": "+16502530000",
        "company_name": "Bank",
        "job_title": "Analyst",
        "address1": "1 Main St",
        "city": "Springfield",
        "zip": "62701",
        "country": "USA",
        "state": "IL",
        "notes": "<p>Met at a fair</p>",
    }
    # An empty string clears a field; fields not sent are kept.
    tracker.log(
        [{"type": "datainput", "value": "f", "contactFields": {"ContactNotes": ""}}], contact
    )
    person = client.get(f"/api/contacts/{contact}", headers=admin_headers).json()
    assert person["notes"] is None
    assert person["city"] == "Springfield"
    assert person["updated_at"] >= person["created_at"]


def test_unknown_contacts_are_404(
    client: TestClient, admin_headers: dict[str, str], expect_error: ErrorCheck
) -> None:
    nobody = uuid.uuid4()
    for suffix in ("", "/activities", "/consents"):
        expect_error(
            client.get(f"/api/contacts/{nobody}{suffix}", headers=admin_headers),
            404,
            "contact_not_found",
        )
        expect_error(
            client.get(f"/api/contacts/someone{suffix}", headers=admin_headers), 404, "not_found"
        )
    expect_error(client.get(f"/api/contacts/{nobody}"), 401, "unauthorized")


def test_a_contacts_activity_log(
    client: TestClient, tracker: Tracker, admin_headers: dict[str, str]
) -> None:
    ann, bob = tracker.new_contact(), tracker.new_contact()
    tracker.log(
        [
            {"type": "click", "value": "second", "occurredAt": "2026-01-02T00:00:00Z"},
            {"type": "click", "value": "first", "occurredAt": "2026-01-01T00:00:00Z"},
            {"type": "pagevisit", "url": "https://e.example/", "value": "third"},
        ],
        ann,
    )
    tracker.log([{"type": "click", "value": "bob's"}], bob)
    answer = client.get(f"/api/contacts/{ann}/activities", headers=admin_headers)
    assert answer.status_code == 200, answer.text
    page = answer.json()
    assert page["next"] is None
    assert [a["value"] for a in page["data"]] == ["third", "second", "first"]
    assert {a["contact"] for a in page["data"]} == {ann}
    first = page["data"][2]
    assert {
        "id",
        "type",
        "contact",
        "channel",
        "title",
        "value",
        "url",
        "fields",
        "occurred_at",
        "received_at",
    } <= set(first)
    assert first["type"] == "click"
    assert first["title"] == "Clicked 'first'"
    assert first["channel"] == str(tracker.channel.id)
    assert first["occurred_at"] == "2026-01-01T00:00:00Z"
    only_clicks = client.get(
        f"/api/contacts/{ann}/activities", params={"type": "click"}, headers=admin_headers
    ).json()
    assert [a["value"] for a in only_clicks["data"]] == ["second", "first"]
    paged = client.get(
        f"/api/contacts/{ann}/activities", params={"limit": 2}, headers=admin_headers
    ).json()
    assert len(paged["data"]) == 2
    rest = client.get(
        f"/api/contacts/{ann}/activities",
        params={"limit": 2, "cursor": paged["next"]},
        headers=admin_headers,
    ).json()
    assert [a["value"] for a in paged["data"] + rest["data"]] == ["third", "second", "first"]
    assert rest["next"] is None


def test_a_new_contact_has_an_empty_log(
    client: TestClient, tracker: Tracker, admin_headers: dict[str, str]
) -> None:
    contact = tracker.new_contact()
    answer: Any = client.get(f"/api/contacts/{contact}/activities", headers=admin_headers)
    assert answer.json() == {"data": [], "next": None}

"""The headless tracking API over HTTP, on both databases: docs/tracking-api.md."""

from __future__ import annotations

import datetime as dt
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import httpx2
import msgspec
import pytest
import sqlalchemy as sa
import uvicorn
from starlette.testclient import TestClient

from waypost.app import create_app
from waypost.hub import Hub
from waypost.services.activity_types import ActivityType
from waypost.services.channels import ChannelCreate
from waypost.services.consents import ConsentCreate
from waypost.services.erasure import Actor
from waypost.services.keys import CreatedKey
from waypost.settings import Settings
from waypost.store import Store, make_engine
from waypost.store.schema import activities, channels, contacts, rejected_activities

if TYPE_CHECKING:
    from tests.conftest import ErrorCheck, Tracker

PREFIXES = ["/tracking", "/Kentico.Tracking"]

# The request bodies of the Kentico reference, character for character.
REFERENCE_BODY = """{
    "channel": "a3f4bc8b-6d84-454f-8215-cbec70bfaadd",
    "contact": "06b035b8-6658-4a1b-b1de-5994e4975fb1",
    "activities": [
        {
            "type": "pagevisit",
            "url": "https://example.com/mypage"
        },
        {
            "type": "click",
            "value": "MyClickableElement"
        },
        {
            "type": "datainput",
            "value": "Registration form",
            "contactFields":
            {
                "ContactFirstName": "Luke",
                "ContactLastName" : "Smith",
                "ContactEmail" : "lsmith@domain.com"
            }
        },
        {
            "type": "custom_loan_calculator",
            "value": "5000"
        }
    ]
}"""

CUSTOM_REFERENCE_BODY = """{
    "Channel": "df6721ee-2562-4ef3-ae0f-9d733458550a",
    "Contact": "052fff6b-cedb-4757-b939-b5cbee2a7aff",
    "Activities": [
        {
            "Type": "custom_loan_calculator",
            "Value": "5000"
        }
    ]
}"""


def count(hub: Hub, table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
    with hub.store.read() as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()
        )


def stored(hub: Hub, activity_id: str) -> sa.Row[Any]:
    with hub.store.read() as conn:
        return conn.execute(
            sa.select(activities).where(activities.c.id == uuid.UUID(activity_id))
        ).one()


def post_raw(tracker: Tracker, body: bytes) -> httpx2.Response:
    """``POST /tracking/activities`` with ``body`` as it is (JSON a client may write, or not)."""
    return tracker.client.post(
        "/tracking/activities",
        content=body,
        headers={**tracker.headers, "Content-Type": "application/json"},
    )


def rejected_rows(hub: Hub) -> list[sa.Row[Any]]:
    with hub.store.read() as conn:
        return list(
            conn.execute(sa.select(rejected_activities).order_by(rejected_activities.c.id)).all()
        )


def setup_reference(
    hub: Hub, make_key: Callable[..., CreatedKey], channel_id: str, contact_id: str
) -> str:
    """The reference's channel and contact with their own ids; a tracking key of the channel."""
    channel = hub.channels.create(ChannelCreate(name=f"App {channel_id[:4]}", kind="headless"))
    now = dt.datetime.now(dt.UTC)
    with hub.store.write() as conn:
        conn.execute(
            channels.update().where(channels.c.id == channel.id).values(id=uuid.UUID(channel_id))
        )
        conn.execute(
            contacts.insert().values(
                id=uuid.UUID(contact_id), attributes={}, created_at=now, updated_at=now
            )
        )
    return make_key("tracking", uuid.UUID(channel_id)).key


@pytest.fixture
def loan_type(make_type: Callable[..., ActivityType]) -> ActivityType:
    return make_type(name="Loan calculator usage", code_name="custom_loan_calculator")


# -- the reference's examples ------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
def test_the_reference_example_body(
    prefix: str,
    client: TestClient,
    hub: Hub,
    make_key: Callable[..., CreatedKey],
    loan_type: ActivityType,
) -> None:
    key = setup_reference(
        hub,
        make_key,
        "a3f4bc8b-6d84-454f-8215-cbec70bfaadd",
        "06b035b8-6658-4a1b-b1de-5994e4975fb1",
    )
    answer = client.post(
        f"{prefix}/activities",
        content=REFERENCE_BODY.encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    assert answer.status_code == 207, answer.text
    assert answer.headers["content-type"] == "application/json"
    results = answer.json()["results"]
    assert [r["status"] for r in results] == [202, 202, 202, 202]
    assert all(set(r) == {"status", "id"} for r in results)
    rows = [stored(hub, r["id"]) for r in results]
    assert [row.title for row in rows] == [
        "Page visit 'https://example.com/mypage'",
        "Clicked 'MyClickableElement'",
        "Data input 'Registration form'",
        "Loan calculator usage '5000'",
    ]
    assert [row.value for row in rows] == [None, "MyClickableElement", "Registration form", "5000"]
    assert rows[0].url == "https://example.com/mypage"
    contact = uuid.UUID("06b035b8-6658-4a1b-b1de-5994e4975fb1")
    assert {row.contact_id for row in rows} == {contact}
    assert {row.channel_id for row in rows} == {uuid.UUID("a3f4bc8b-6d84-454f-8215-cbec70bfaadd")}
    assert rows[3].type_id == loan_type.id
    person = hub.contacts.get(contact)
    assert (person.first_name, person.last_name, person.email) == (
        "Luke",
        "Smith",
        "lsmith@domain.com",
    )
    assert count(hub, activities) == 4
    assert count(hub, rejected_activities) == 0


@pytest.mark.parametrize("prefix", PREFIXES)
def test_the_capitalised_custom_activity_example(
    prefix: str,
    client: TestClient,
    hub: Hub,
    make_key: Callable[..., CreatedKey],
    loan_type: ActivityType,
) -> None:
    key = setup_reference(
        hub,
        make_key,
        "df6721ee-2562-4ef3-ae0f-9d733458550a",
        "052fff6b-cedb-4757-b939-b5cbee2a7aff",
    )
    answer = client.post(
        f"{prefix}/activities",
        content=CUSTOM_REFERENCE_BODY.encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    assert answer.status_code == 207, answer.text
    [result] = answer.json()["results"]
    assert result["status"] == 202
    row = stored(hub, result["id"])
    assert row.title == "Loan calculator usage '5000'"
    assert row.value == "5000"
    assert row.type_id == loan_type.id
    assert row.contact_id == uuid.UUID("052fff6b-cedb-4757-b939-b5cbee2a7aff")


@pytest.mark.parametrize("prefix", PREFIXES)
def test_every_route_answers_under_both_prefixes(
    prefix: str, tracker: Tracker, hub: Hub, admin_headers: dict[str, str]
) -> None:
    client = tracker.client
    created = client.post(
        "/api/consents",
        json={
            "code_name": "TrackingConsent",
            "display_name": "Tracking",
            "texts": {"en": {"short_text": "<p>Short</p>", "full_text": "<p>Full</p>"}},
        },
        headers=admin_headers,
    )
    assert created.status_code == 201, created.text
    contact = tracker.new_contact(prefix)
    text = client.get(f"{prefix}/consents/TrackingConsent?languageName=en", headers=tracker.headers)
    assert text.status_code == 200, text.text
    assert text.json() == {"shortText": "<p>Short</p>", "fullText": "<p>Full</p>"}
    agreement = f"{prefix}/contacts/{contact}/consents/TrackingConsent"
    agreed = client.post(agreement, json={"agree": True}, headers=tracker.headers)
    assert agreed.status_code == 200, agreed.text
    assert agreed.json() == {"isAgreed": True}
    assert client.get(agreement, headers=tracker.headers).json() == {"isAgreed": True}
    [result] = tracker.log([{"type": "click", "value": "b"}], contact, prefix=prefix)
    assert result["status"] == 202


def test_kentico_tracking_without_a_trailing_route_is_404(tracker: Tracker) -> None:
    answer = tracker.client.post("/Kentico.Tracking/nothing", headers=tracker.headers)
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"


# -- one result per activity, in order ---------------------------------------------------


def test_results_are_in_order_and_bad_activities_do_not_stop_good_ones(
    tracker: Tracker, hub: Hub
) -> None:
    sent: list[Any] = [
        {"type": "click", "value": "first"},
        {"type": "pagevisit"},
        {"type": "nosuchtype", "value": "x"},
        {"type": "click", "value": "second", "colour": "red"},
        {"type": "click", "value": "third"},
        42,
    ]
    results = tracker.log(sent)
    assert [r["status"] for r in results] == [202, 400, 404, 400, 202, 400]
    assert [r.get("error", {}).get("code") for r in results] == [
        None,
        "missing_field",
        "activity_type_not_found",
        "unknown_field",
        None,
        "invalid_field",
    ]
    assert results[1]["error"]["field"] == "url"
    assert results[3]["error"]["field"] == "colour"
    for result in results:
        if result["status"] == 202:
            assert set(result) == {"status", "id"}
        else:
            assert set(result) == {"status", "error"}
    assert stored(hub, results[0]["id"]).title == "Clicked 'first'"
    assert stored(hub, results[4]["id"]).title == "Clicked 'third'"
    assert count(hub, activities) == 2
    kept = rejected_rows(hub)
    assert sorted(r.reason for r in kept) == [
        "activity_type_not_found",
        "invalid_field",
        "missing_field",
        "unknown_field",
    ]
    assert sorted(msgspec.json.encode(r.payload) for r in kept) == sorted(
        msgspec.json.encode(a) for a in [*sent[1:4], 42]
    )


def test_titles_of_custom_types(
    tracker: Tracker, hub: Hub, make_type: Callable[..., ActivityType]
) -> None:
    make_type(name="Custom CTA", code_name="custom_cta")
    results = tracker.log(
        [
            {"type": "custom_cta", "value": "btnCTA"},
            {"type": "custom_cta"},
            {"type": "custom_cta", "value": "btnCTA", "title": "Custom CTA click"},
            {"type": "click", "value": "btnCTA", "title": "Not allowed"},
        ]
    )
    assert [r["status"] for r in results] == [202, 202, 202, 400]
    assert [stored(hub, r["id"]).title for r in results[:3]] == [
        "Custom CTA 'btnCTA'",
        "Custom CTA",
        "Custom CTA click",
    ]
    assert results[3]["error"]["field"] == "title"


def test_long_values_that_pass_validation_are_stored_on_both_databases(
    tracker: Tracker, hub: Hub, make_type: Callable[..., ActivityType]
) -> None:
    make_type(
        name="Note taken",
        code_name="note",
        fields=[{"name": "text", "type": "text", "primary": True}],
    )
    long_text = "n" * 2000
    results = tracker.log(
        [
            {"type": "note", "fields": {"text": long_text}},
            {"type": "note", "title": "t" * 600, "value": "v" * 2000},
            {"type": "click", "value": "v" * 2000, "url": "https://e.example/" + "p" * 2000},
        ]
    )
    assert [r["status"] for r in results] == [202, 202, 202], results
    row = stored(hub, results[0]["id"])
    assert row.fields == {"text": long_text}
    assert row.value == long_text


def test_overlong_names_are_rejected_not_a_server_error(tracker: Tracker, hub: Hub) -> None:
    results = tracker.log(
        [
            {"type": "t" * 1000, "value": "x"},
            {"type": "click", "value": "x", "p" * 1000: 1},
            {"type": "datainput", "value": "x", "contactFields": {"C" * 1000: "x"}},
            {"type": "click", "value": "x"},
        ]
    )
    assert [r["status"] for r in results] == [404, 400, 400, 202], results
    assert count(hub, rejected_activities) == 3


# -- property names in any case ----------------------------------------------------------


def test_property_names_are_matched_case_insensitively(tracker: Tracker, hub: Hub) -> None:
    contact = tracker.new_contact()
    body = {
        "CHANNEL": str(tracker.channel.id),
        "contact": contact,
        "aCtIvItIeS": [
            {"TYPE": "click", "VALUE": "b", "ID": "case-1"},
            {
                "type": "DataInput".lower(),
                "value": "form",
                "CONTACTFIELDS": {"contactfirstname": "Ann"},
            },
            {
                "Type": "pagevisit",
                "URL": "https://example.com/",
                "OccurredAt": "2026-01-31T10:00:00Z",
            },
        ],
    }
    answer = tracker.client.post("/tracking/activities", json=body, headers=tracker.headers)
    assert answer.status_code == 207, answer.text
    results = answer.json()["results"]
    assert [r["status"] for r in results] == [202, 202, 202]
    assert stored(hub, results[0]["id"]).client_id == "case-1"
    assert hub.contacts.get(uuid.UUID(contact)).first_name == "Ann"
    assert stored(hub, results[2]["id"]).occurred_at == dt.datetime(2026, 1, 31, 10, tzinfo=dt.UTC)


# -- request-level answers ---------------------------------------------------------------


def test_no_key_is_401(tracker: Tracker, expect_error: ErrorCheck) -> None:
    expect_error(tracker.post([{"type": "click", "value": "x"}], headers={}), 401, "unauthorized")


def test_an_unknown_or_malformed_key_is_401(
    tracker: Tracker, hub: Hub, subtests: pytest.Subtests, expect_error: ErrorCheck
) -> None:
    contact = tracker.new_contact()
    for authorization in (
        "Bearer wpt_not-a-real-key",
        "Bearer ",
        "Basic d3B0X3g6",
        tracker.key,
        f"Bearer {tracker.key} extra",
    ):
        with subtests.test(authorization=authorization):
            answer = tracker.post(
                [{"type": "click", "value": "x"}],
                contact,
                headers={"Authorization": authorization},
            )
            expect_error(answer, 401, "unauthorized")
    assert count(hub, activities) == 0


def test_a_disabled_key_is_403(
    client: TestClient,
    make_channel: Callable[..., Any],
    make_key: Callable[..., CreatedKey],
    admin_headers: dict[str, str],
    expect_error: ErrorCheck,
) -> None:
    channel = make_channel()
    key = make_key("tracking", channel.id)
    headers = {"Authorization": f"Bearer {key.key}"}
    contact = client.post("/tracking/contacts", headers=headers).json()["contact"]
    body = {
        "channel": str(channel.id),
        "contact": contact,
        "activities": [{"type": "click", "value": "x"}],
    }
    assert client.post("/tracking/activities", json=body, headers=headers).status_code == 207
    disabled = client.post(f"/api/keys/{key.id}/disable", headers=admin_headers)
    assert disabled.status_code == 200, disabled.text
    expect_error(client.post("/tracking/activities", json=body, headers=headers), 403, "forbidden")
    expect_error(client.post("/tracking/contacts", headers=headers), 403, "forbidden")
    deleted = client.delete(f"/api/keys/{key.id}", headers=admin_headers)
    assert deleted.status_code == 204, deleted.text
    expect_error(
        client.post("/tracking/activities", json=body, headers=headers), 401, "unauthorized"
    )


def test_a_key_of_another_channel_is_403(
    make_tracker: Callable[..., Tracker], hub: Hub, expect_error: ErrorCheck
) -> None:
    mine, theirs = make_tracker(), make_tracker()
    contact = mine.new_contact()
    answer = mine.post([{"type": "click", "value": "x"}], contact, headers=theirs.headers)
    expect_error(answer, 403, "forbidden", "channel")
    assert count(hub, activities) == 0
    assert count(hub, rejected_activities) == 0


def test_admin_and_publishable_keys_are_403(
    make_tracker: Callable[..., Tracker],
    make_key: Callable[..., CreatedKey],
    subtests: pytest.Subtests,
    expect_error: ErrorCheck,
) -> None:
    tracker = make_tracker(kind="website", allowed_origins=["https://site.example"])
    keys = {
        "admin": make_key("admin").key,
        "publishable": make_key("publishable", tracker.channel.id).key,
    }
    contact = tracker.new_contact()
    for access, key in keys.items():
        with subtests.test(access=access):
            headers = {"Authorization": f"Bearer {key}"}
            answer = tracker.post([{"type": "click", "value": "x"}], contact, headers=headers)
            expect_error(answer, 403, "forbidden")
            expect_error(
                tracker.client.post("/tracking/contacts", headers=headers), 403, "forbidden"
            )


def test_an_origin_of_another_channel_is_refused(
    make_tracker: Callable[..., Tracker], hub: Hub, expect_error: ErrorCheck
) -> None:
    site_a, site_b = "https://a.example", "https://b.example"
    mine = make_tracker(kind="website", allowed_origins=[site_a])
    make_tracker(kind="website", allowed_origins=[site_b])
    contact = mine.new_contact()
    activity = [{"type": "click", "value": "x"}]
    for prefix in ("/tracking", "/Kentico.Tracking"):
        foreign = {**mine.headers, "Origin": site_b}
        answer = mine.post(activity, contact, prefix=prefix, headers=foreign)
        expect_error(answer, 403, "forbidden")
        assert "access-control-allow-origin" not in answer.headers
        answer = mine.client.post(f"{prefix}/contacts", headers=foreign)
        expect_error(answer, 403, "forbidden")
        assert "access-control-allow-origin" not in answer.headers

        answer = mine.post(
            activity, contact, prefix=prefix, headers={**mine.headers, "Origin": site_a}
        )
        assert answer.status_code == 207, answer.text
        assert answer.headers["access-control-allow-origin"] == site_a
        answer = mine.post(activity, contact, prefix=prefix)
        assert answer.status_code == 207, answer.text
        assert "access-control-allow-origin" not in answer.headers

        # A preflight carries no key: it may name any channel's origin.
        preflight = mine.client.options(f"{prefix}/activities", headers={"Origin": site_b})
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == site_b
    assert count(hub, activities) == 4
    assert count(hub, rejected_activities) == 0


def test_malformed_bodies_are_400(
    tracker: Tracker, hub: Hub, subtests: pytest.Subtests, expect_error: ErrorCheck
) -> None:
    contact = tracker.new_contact()
    cases: list[tuple[bytes, str, str | None]] = [
        (b"{", "invalid_json", None),
        (b'{"channel": ', "invalid_json", None),
        (b"not json", "invalid_json", None),
        (b"", "invalid_json", None),
        (b'{"channel": "a",}', "invalid_json", None),
        (b'{"activities": [{"type": "click"},]}', "invalid_json", None),
        (b"\xff\xfe", "invalid_json", None),
        (b"[]", "invalid_json", None),
        (b"42", "invalid_json", None),
        (b"null", "invalid_json", None),
    ]
    good: dict[str, object] = {
        "channel": str(tracker.channel.id),
        "contact": contact,
        "activities": [{"type": "click", "value": "x"}],
    }
    for missing in ("channel", "contact", "activities"):
        partial = {k: v for k, v in good.items() if k != missing}
        cases.append((msgspec.json.encode(partial), "missing_field", missing))
    bad_values: list[tuple[dict[str, object], str, str]] = [
        ({"activities": []}, "invalid_field", "activities"),
        ({"activities": {"type": "click"}}, "invalid_field", "activities"),
        ({"activities": None}, "invalid_field", "activities"),
        ({"channel": "not-a-uuid"}, "invalid_field", "channel"),
        ({"contact": 42}, "invalid_field", "contact"),
        ({"extra": 1}, "unknown_field", "extra"),
    ]
    for changes, code, where in bad_values:
        cases.append((msgspec.json.encode({**good, **changes}), code, where))
    # A property twice in different cases: neither is taken for the other.
    twice = {**good, "Activities": [{"type": "click", "value": "y"}]}
    cases.append((msgspec.json.encode(twice), "invalid_field", "Activities"))
    # Not UTF-8 inside an activity (kept undecoded until the writer's side): a byte that is
    # never UTF-8, an overlong encoding, a surrogate encoded as UTF-8.
    for bad in (b"\xff", b"\xc0\xaf", b"\xed\xa0\x80"):
        head = f'{{"channel": "{tracker.channel.id}", "contact": "{contact}", '.encode()
        cases.append(
            (
                head + b'"activities": [{"type": "click", "value": "' + bad + b'"}]}',
                "invalid_json",
                None,
            )
        )
    for raw, error_code, error_field in cases:
        with subtests.test(body=raw):
            expect_error(post_raw(tracker, raw), 400, error_code, error_field)
    assert count(hub, activities) == 0
    assert count(hub, rejected_activities) == 0


def test_an_unknown_contact_is_404_and_its_activities_are_kept(
    tracker: Tracker, hub: Hub, expect_error: ErrorCheck
) -> None:
    nobody = str(uuid.uuid4())
    sent = [{"type": "click", "value": "a"}, {"type": "pagevisit"}]
    answer = tracker.post(sent, nobody)
    expect_error(answer, 404, "contact_not_found", "contact")
    assert count(hub, activities) == 0
    kept = rejected_rows(hub)
    assert [r.reason for r in kept] == ["contact_not_found", "contact_not_found"]
    assert {r.status for r in kept} == {404}
    assert {r.contact_id for r in kept} == {uuid.UUID(nobody)}
    assert {r.channel_id for r in kept} == {tracker.channel.id}
    assert sorted(msgspec.json.encode(r.payload) for r in kept) == sorted(
        msgspec.json.encode(a) for a in sent
    )


def test_a_body_over_the_request_limit_is_413(
    tracker: Tracker, hub: Hub, expect_error: ErrorCheck
) -> None:
    contact = tracker.new_contact()
    big = [{"type": "click", "value": "v" * 1900}] * 1100
    answer = tracker.post(big, contact)
    error = expect_error(answer, 413, "payload_too_large")
    assert "2000000" in error["message"]
    assert count(hub, activities) == 0


def test_more_activities_than_the_limit_is_413(
    tracker: Tracker, hub: Hub, expect_error: ErrorCheck
) -> None:
    contact = tracker.new_contact()
    error = expect_error(
        tracker.post([{"type": "click", "value": "x"}] * 1001, contact), 413, "payload_too_large"
    )
    assert "1000" in error["message"]
    assert count(hub, activities) == 0
    results = tracker.log([{"type": "click", "value": "x"}] * 1000, contact)
    assert {r["status"] for r in results} == {202}
    assert count(hub, activities) == 1000


def test_an_activity_over_the_activity_limit_is_a_413_result(tracker: Tracker, hub: Hub) -> None:
    results = tracker.log(
        [
            {"type": "click", "value": "ok"},
            {"type": "click", "value": "x", "id": "big", "fields": {"pad": "p" * 17_000}},
        ]
    )
    assert [r["status"] for r in results] == [202, 413]
    assert results[1]["error"]["code"] == "payload_too_large"
    assert "16384" in results[1]["error"]["message"]
    [kept] = rejected_rows(hub)
    assert kept.reason == "payload_too_large"
    assert kept.status == 413
    assert kept.payload["id"] == "big"


@pytest.fixture
def small_client(make_settings: Callable[..., Settings]) -> Iterator[tuple[TestClient, Hub]]:
    settings = make_settings(
        max_request_bytes=2000, max_activities_per_request=3, max_activity_bytes=100
    )
    hub = Hub(settings, Store(make_engine(settings)))
    with TestClient(create_app(settings, hub=hub)) as client:
        yield client, hub
    hub.close()


def test_the_limits_are_configurable(
    small_client: tuple[TestClient, Hub], expect_error: ErrorCheck
) -> None:
    client, hub = small_client
    channel = hub.channels.create(ChannelCreate(name="Small", kind="headless"))
    from waypost.services.keys import KeyCreate

    key = hub.keys.create(KeyCreate(access="tracking", channel=channel.id)).key
    headers = {"Authorization": f"Bearer {key}"}
    contact = client.post("/tracking/contacts", headers=headers).json()["contact"]

    def post(sent: list[Any]) -> httpx2.Response:
        body = {"channel": str(channel.id), "contact": contact, "activities": sent}
        return client.post("/tracking/activities", json=body, headers=headers)

    error = expect_error(post([{"type": "click", "value": "x"}] * 4), 413, "payload_too_large")
    assert "3" in error["message"]
    error = expect_error(post([{"type": "click", "value": "x" * 2000}]), 413, "payload_too_large")
    assert "2000" in error["message"]
    answer = post([{"type": "click", "value": "x"}, {"type": "click", "value": "y" * 100}])
    assert answer.status_code == 207
    assert [r["status"] for r in answer.json()["results"]] == [202, 413]


def test_a_body_that_is_not_declared_json_is_415(
    tracker: Tracker, hub: Hub, subtests: pytest.Subtests, expect_error: ErrorCheck
) -> None:
    body = msgspec.json.encode(
        {
            "channel": str(tracker.channel.id),
            "contact": tracker.new_contact(),
            "activities": [{"type": "click", "value": "x"}],
        }
    )
    for content_type in (None, "text/plain", "application/x-www-form-urlencoded", "text/json"):
        with subtests.test(content_type=content_type):
            headers = dict(tracker.headers)
            if content_type is not None:
                headers["Content-Type"] = content_type
            answer = tracker.client.post("/tracking/activities", content=body, headers=headers)
            expect_error(answer, 415, "unsupported_media_type")
    assert count(hub, activities) == 0
    headers = {**tracker.headers, "Content-Type": "Application/JSON; charset=utf-8"}
    answer = tracker.client.post("/tracking/activities", content=body, headers=headers)
    assert answer.status_code == 207, answer.text


def test_other_methods_are_405(tracker: Tracker, expect_error: ErrorCheck) -> None:
    answer = tracker.client.get("/tracking/activities", headers=tracker.headers)
    expect_error(answer, 405, "method_not_allowed")
    assert answer.headers["allow"] == "POST"


# -- idempotency -------------------------------------------------------------------------


def test_a_repeated_id_in_one_request_is_208_with_the_first_id(tracker: Tracker, hub: Hub) -> None:
    results = tracker.log(
        [
            {"type": "click", "value": "a", "id": "k1"},
            {"type": "click", "value": "b", "id": "k1"},
            {"type": "click", "value": "c", "id": "k2"},
            {"type": "click", "value": "d"},
            {"type": "click", "value": "e"},
        ]
    )
    assert [r["status"] for r in results] == [202, 208, 202, 202, 202]
    assert results[1]["id"] == results[0]["id"]
    assert count(hub, activities) == 4
    assert stored(hub, results[0]["id"]).value == "a"


def test_a_repeated_id_across_requests_is_208_and_stored_once(tracker: Tracker, hub: Hub) -> None:
    contact = tracker.new_contact()
    sent = [
        {"type": "click", "value": "a", "id": "r1"},
        {"type": "click", "value": "b", "id": "r2"},
    ]
    first = tracker.log(sent, contact)
    again = tracker.log(sent, contact)
    assert [r["status"] for r in first] == [202, 202]
    assert [r["status"] for r in again] == [208, 208]
    assert [r["id"] for r in again] == [r["id"] for r in first]
    # The same id from another contact of the channel is the same activity.
    other = tracker.log([{"type": "click", "value": "z", "id": "r1"}])
    assert other == [{"status": 208, "id": first[0]["id"]}]
    assert count(hub, activities) == 2
    assert count(hub, activities, activities.c.client_id == "r1") == 1


def test_ids_are_per_channel(make_tracker: Callable[..., Tracker], hub: Hub) -> None:
    one, two = make_tracker(), make_tracker()
    a = one.log([{"type": "click", "value": "a", "id": "same"}])
    b = two.log([{"type": "click", "value": "b", "id": "same"}])
    assert a[0]["status"] == b[0]["status"] == 202
    assert a[0]["id"] != b[0]["id"]
    assert count(hub, activities) == 2


def test_a_rejected_activity_does_not_use_up_its_id(tracker: Tracker, hub: Hub) -> None:
    contact = tracker.new_contact()
    [bad] = tracker.log([{"type": "click", "id": "later"}], contact)
    assert bad["status"] == 400
    [good] = tracker.log([{"type": "click", "value": "x", "id": "later"}], contact)
    assert good["status"] == 202
    [again] = tracker.log([{"type": "click", "value": "x", "id": "later"}], contact)
    assert again == {"status": 208, "id": good["id"]}


class LiveServer:
    """Waypost served by uvicorn in a thread, on a free port of 127.0.0.1."""

    def __init__(self, hub: Hub) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(
            create_app(hub.settings, hub=hub),
            log_level="warning",
            lifespan="off",
            ws="none",
            access_log=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def race(url: str, tracker: Tracker, contact: str, ids: list[str], threads: int) -> list[Any]:
    """Post the same ids from many threads at once (rotated, so they race in every order);
    the results of every request, each with the client id it answers."""
    barrier = threading.Barrier(threads)
    answers: list[list[dict[str, Any]]] = []
    lock = threading.Lock()

    def post(offset: int) -> None:
        rotated = ids[offset:] + ids[:offset]
        body = {
            "channel": str(tracker.channel.id),
            "contact": contact,
            "activities": [{"type": "click", "value": i, "id": i} for i in rotated],
        }
        with httpx.Client(base_url=url, timeout=30) as http:
            barrier.wait()
            answer = http.post("/tracking/activities", json=body, headers=tracker.headers)
        assert answer.status_code == 207, answer.text
        results = answer.json()["results"]
        with lock:
            answers.append([dict(r, client_id=i) for r, i in zip(results, rotated, strict=True)])

    workers = [threading.Thread(target=post, args=(n % len(ids),)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(answers) == threads
    return answers


def test_concurrent_requests_with_the_same_ids_store_each_once(tracker: Tracker, hub: Hub) -> None:
    contact = tracker.new_contact()
    threads, rounds, per_request = 8, 3, 25
    with LiveServer(hub) as server:
        for round_ in range(rounds):
            ids = [f"round{round_}-{i}" for i in range(per_request)]
            answers = race(server.url, tracker, contact, ids, threads)
            flat = [r for answer in answers for r in answer]
            for client_id in ids:
                mine = [r for r in flat if r["client_id"] == client_id]
                assert sorted(r["status"] for r in mine) == [202] + [208] * (threads - 1)
                assert len({r["id"] for r in mine}) == 1
            assert count(hub, activities, activities.c.client_id.in_(ids)) == per_request
    assert count(hub, activities) == rounds * per_request
    with hub.store.read() as conn:
        duplicates = conn.execute(
            sa.select(activities.c.client_id)
            .group_by(activities.c.client_id)
            .having(sa.func.count() > 1)
        ).all()
    assert duplicates == []


def test_a_streamed_body_over_the_limit_is_413_over_real_http(tracker: Tracker, hub: Hub) -> None:
    contact = tracker.new_contact()

    def chunks() -> Iterator[bytes]:
        head = {"channel": str(tracker.channel.id), "contact": contact}
        yield msgspec.json.encode(head)[:-1] + b', "activities": ['
        for _ in range(3000):
            yield b'{"type": "click", "value": "' + b"v" * 990 + b'"},'
        yield b'{"type": "click", "value": "last"}]}'

    with LiveServer(hub) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        answer = http.post(
            "/tracking/activities",
            content=chunks(),
            headers={**tracker.headers, "Content-Type": "application/json"},
        )
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"]["code"] == "payload_too_large"
    assert count(hub, activities) == 0


# -- the email rule of data input --------------------------------------------------------


def data_input(email: str, **fields: str) -> dict[str, Any]:
    return {
        "type": "datainput",
        "value": "Registration form",
        "contactFields": {"ContactEmail": email, **fields},
    }


def owner(hub: Hub, result: dict[str, Any]) -> uuid.UUID:
    assert result["status"] == 202, result
    contact_id: uuid.UUID = stored(hub, result["id"]).contact_id
    return contact_id


def test_a_data_input_sets_the_email_of_a_contact_without_one(tracker: Tracker, hub: Hub) -> None:
    contact = tracker.new_contact()
    [result] = tracker.log([data_input("Ann@Example.com", ContactFirstName="Ann")], contact)
    assert owner(hub, result) == uuid.UUID(contact)
    person = hub.contacts.get(uuid.UUID(contact))
    assert (person.email, person.first_name) == ("Ann@Example.com", "Ann")
    # The same email again (in any case) keeps the contact.
    [again] = tracker.log([data_input("ann@example.COM", ContactLastName="Cole")], contact)
    assert owner(hub, again) == uuid.UUID(contact)
    assert hub.contacts.get(uuid.UUID(contact)).last_name == "Cole"


def test_a_data_input_never_changes_an_existing_email(tracker: Tracker, hub: Hub) -> None:
    contact = tracker.new_contact()
    tracker.log([data_input("ann@example.com", ContactFirstName="Ann")], contact)
    [result] = tracker.log(
        [data_input("bob@example.com", ContactFirstName="Bob", ContactCity="Brno")], contact
    )
    new_owner = owner(hub, result)
    assert new_owner != uuid.UUID(contact)
    ann = hub.contacts.get(uuid.UUID(contact))
    assert (ann.email, ann.first_name, ann.city) == ("ann@example.com", "Ann", None)
    bob = hub.contacts.get(new_owner)
    assert (bob.email, bob.first_name, bob.city) == ("bob@example.com", "Bob", "Brno")
    # Later data inputs with Bob's email from Ann's contact find Bob; none creates another.
    [later] = tracker.log([data_input("BOB@example.com", ContactJobTitle="Clerk")], contact)
    assert owner(hub, later) == new_owner
    assert hub.contacts.get(new_owner).job_title == "Clerk"
    assert count(hub, contacts) == 2


def test_a_data_input_never_rewrites_the_case_of_the_stored_email(
    tracker: Tracker, hub: Hub
) -> None:
    ann, stranger = tracker.new_contact(), tracker.new_contact()
    tracker.log([data_input("Ann.Smith@Example.com")], ann)
    # The same email in other letters, from Ann's contact and from another one.
    [own] = tracker.log([data_input("ANN.SMITH@example.COM", ContactCity="Brno")], ann)
    [other] = tracker.log([data_input("ann.smith@example.com", ContactZIP="60200")], stranger)
    assert owner(hub, own) == owner(hub, other) == uuid.UUID(ann)
    person = hub.contacts.get(uuid.UUID(ann))
    assert (person.email, person.city, person.zip) == ("Ann.Smith@Example.com", "Brno", "60200")
    assert hub.contacts.get(uuid.UUID(stranger)).email is None


def test_a_data_input_with_another_contacts_email_goes_to_that_contact(
    tracker: Tracker, hub: Hub
) -> None:
    ann, stranger = tracker.new_contact(), tracker.new_contact()
    tracker.log([data_input("ann@example.com")], ann)
    tracker.log([data_input("carl@example.com", ContactFirstName="Carl")], stranger)
    [result] = tracker.log([data_input("ann@example.com", ContactCity="Praha")], stranger)
    assert owner(hub, result) == uuid.UUID(ann)
    assert hub.contacts.get(uuid.UUID(ann)).city == "Praha"
    carl = hub.contacts.get(uuid.UUID(stranger))
    assert (carl.email, carl.city) == ("carl@example.com", None)
    # Only the data input moves: other activities of the request stay with their contact.
    results = tracker.log(
        [{"type": "click", "value": "x"}, data_input("ann@example.com")], stranger
    )
    assert owner(hub, results[0]) == uuid.UUID(stranger)
    assert owner(hub, results[1]) == uuid.UUID(ann)


def test_two_new_emails_in_one_request_make_one_contact_each(tracker: Tracker, hub: Hub) -> None:
    contact = tracker.new_contact()
    results = tracker.log(
        [
            data_input("first@example.com"),
            data_input("second@example.com"),
            data_input("Second@example.com", ContactFirstName="Sue"),
        ],
        contact,
    )
    owners = [owner(hub, r) for r in results]
    assert owners[0] == uuid.UUID(contact)
    assert owners[1] == owners[2] != owners[0]
    assert hub.contacts.get(owners[1]).first_name == "Sue"
    assert count(hub, contacts) == 2


def test_contact_field_rules_over_http(tracker: Tracker, hub: Hub) -> None:
    contact = tracker.new_contact()
    results = tracker.log(
        [
            {"type": "datainput", "value": "f", "contactFields": {"ContactCountry": "US"}},
            {"type": "datainput", "value": "f", "contactFields": {"ContactState": "Texas"}},
            {"type": "datainput", "value": "f", "contactFields": {"ContactAge": "40"}},
            {"type": "datainput", "value": "f", "contactFields": {"ContactFirstName": 40}},
            {"type": "click", "value": "f", "contactFields": {"ContactFirstName": "X"}},
            {
                "type": "datainput",
                "value": "f",
                "contactFields": {"ContactCountry": "USA", "ContactState": "TX"},
            },
        ],
        contact,
    )
    assert [r["status"] for r in results] == [400, 400, 400, 400, 400, 202]
    assert [r.get("error", {}).get("field") for r in results[:5]] == [
        "contactFields.ContactCountry",
        "contactFields.ContactState",
        "contactFields.ContactAge",
        "contactFields.ContactFirstName",
        "contactFields",
    ]
    person = hub.contacts.get(uuid.UUID(contact))
    assert (person.country, person.state, person.first_name) == ("USA", "TX", None)


# -- activity types ----------------------------------------------------------------------


def test_unknown_and_disabled_types_are_404_results(
    tracker: Tracker,
    hub: Hub,
    make_type: Callable[..., ActivityType],
    admin_headers: dict[str, str],
) -> None:
    kind = make_type(name="Webinar", code_name="webinar")
    contact = tracker.new_contact()
    assert tracker.log([{"type": "webinar"}], contact)[0]["status"] == 202
    disabled = tracker.client.post(f"/api/activity-types/{kind.id}/disable", headers=admin_headers)
    assert disabled.status_code == 200, disabled.text
    results = tracker.log([{"type": "webinar"}, {"type": "webinar_2"}], contact)
    assert [(r["status"], r["error"]["code"], r["error"]["field"]) for r in results] == [
        (404, "activity_type_disabled", "type"),
        (404, "activity_type_not_found", "type"),
    ]
    kept = rejected_rows(hub)
    assert sorted((r.type_code, r.reason) for r in kept) == [
        ("webinar", "activity_type_disabled"),
        ("webinar_2", "activity_type_not_found"),
    ]
    enabled = tracker.client.post(f"/api/activity-types/{kind.id}/enable", headers=admin_headers)
    assert enabled.status_code == 200
    assert tracker.log([{"type": "webinar"}], contact)[0]["status"] == 202


def test_fields_are_validated_against_the_types_fields(
    tracker: Tracker, hub: Hub, make_type: Callable[..., ActivityType]
) -> None:
    make_type(
        name="Loan request",
        code_name="loan_request",
        fields=[
            {"name": "amount", "type": "decimal", "required": True, "primary": True},
            {"name": "months", "type": "integer"},
        ],
    )
    results = tracker.log(
        [
            {"type": "loan_request", "fields": {"amount": "50000.10", "months": 24}},
            {"type": "loan_request", "fields": {"months": 24}},
            {"type": "loan_request", "fields": {"amount": True}},
            {"type": "loan_request", "fields": {"amount": "1", "months": "24"}},
            {"type": "loan_request", "fields": {"amount": "1", "rate": "3%"}},
        ]
    )
    assert [(r["status"], r.get("error", {}).get("code")) for r in results] == [
        (202, None),
        (400, "missing_field"),
        (400, "field_type_mismatch"),
        (400, "field_type_mismatch"),
        (400, "unknown_field"),
    ]
    row = stored(hub, results[0]["id"])
    assert row.fields == {"amount": "50000.10", "months": 24}
    assert row.title == "Loan request '50000.10'"


def test_occurred_at_and_received_at(tracker: Tracker, hub: Hub) -> None:
    before = dt.datetime.now(dt.UTC)
    ahead = (before + dt.timedelta(hours=23)).isoformat()
    too_far = (before + dt.timedelta(hours=25)).isoformat()
    results = tracker.log(
        [
            {"type": "click", "value": "x"},
            {"type": "click", "value": "x", "occurredAt": "2025-06-01T08:00:00+02:00"},
            {"type": "click", "value": "x", "occurredAt": ahead},
            {"type": "click", "value": "x", "occurredAt": too_far},
            {"type": "click", "value": "x", "occurredAt": "2025-06-01T08:00:00"},
        ]
    )
    assert [r["status"] for r in results] == [202, 202, 202, 400, 400]
    after = dt.datetime.now(dt.UTC)
    now_row = stored(hub, results[0]["id"])
    assert before <= now_row.occurred_at <= after
    assert now_row.received_at == now_row.occurred_at
    past = stored(hub, results[1]["id"])
    assert past.occurred_at == dt.datetime(2025, 6, 1, 6, tzinfo=dt.UTC)
    assert before <= past.received_at <= after
    assert results[3]["error"]["field"] == results[4]["error"]["field"] == "occurredAt"


# -- messages in words ---------------------------------------------------------------------

REQUEST_MESSAGES = [
    ({"channel": "web"}, "channel", "channel must be a UUID."),
    ({"contact": 42}, "contact", "contact must be a UUID, not a whole number."),
    ({"activities": {"type": "click"}}, "activities", "activities must be a list, not an object."),
]


@pytest.mark.parametrize(("changes", "field", "message"), REQUEST_MESSAGES)
def test_request_messages_say_what_to_send(
    tracker: Tracker, changes: dict[str, object], field: str, message: str
) -> None:
    body = {
        "channel": str(tracker.channel.id),
        "contact": tracker.new_contact(),
        "activities": [{"type": "click", "value": "x"}],
        **changes,
    }
    answer = tracker.client.post("/tracking/activities", json=body, headers=tracker.headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == {"code": "invalid_field", "message": message, "field": field}


ACTIVITY_MESSAGES = [
    ({"type": "click", "value": 5}, "value", "value must be a string or null, not a whole number."),
    ({"type": 7}, "type", "type must be a string, not a whole number."),
    (
        {"type": "pagevisit", "url": "https://example.com/", "occurredAt": "yesterday"},
        "occurredAt",
        "occurredAt must be a date and time in ISO 8601 with an offset, such as "
        "2026-01-31T09:30:00Z.",
    ),
    (
        {"type": "quote_request", "fields": {"email": "mail"}},
        "fields.email",
        "email must be an email address, such as jane@example.com.",
    ),
    (
        {"type": "quote_request", "fields": {"site": "example.com"}},
        "fields.site",
        "site must be an absolute http or https URL, such as https://example.com/page.",
    ),
]


@pytest.mark.parametrize(("activity", "field", "message"), ACTIVITY_MESSAGES)
def test_activity_messages_say_what_to_send(
    tracker: Tracker,
    make_type: Callable[..., ActivityType],
    activity: dict[str, object],
    field: str,
    message: str,
) -> None:
    make_type(
        name="Quote request",
        fields=[{"name": "email", "type": "email"}, {"name": "site", "type": "url"}],
    )
    [result] = tracker.log([activity])
    assert result["status"] == 400, result
    assert result["error"]["message"] == message
    assert result["error"]["field"] == field


def test_an_admin_key_is_told_to_use_a_tracking_key(
    tracker: Tracker, make_key: Callable[..., CreatedKey]
) -> None:
    admin = make_key("admin").key
    answer = tracker.post(
        [{"type": "click", "value": "x"}], headers={"Authorization": f"Bearer {admin}"}
    )
    assert answer.status_code == 403
    assert answer.json()["error"]["message"] == (
        "An admin key cannot use the tracking API; use a tracking key (wpt_...)."
    )


@pytest.mark.parametrize(("opt_out", "stored_without_consent"), [(None, False), (False, True)])
def test_server_side_logging_on_a_website_channel_follows_its_tracking_consent(
    make_tracker: Callable[..., Tracker],
    hub: Hub,
    opt_out: bool | None,
    stored_without_consent: bool,
) -> None:
    hub.consents.create(ConsentCreate(code_name="Tracking", display_name="Tracking"))
    fields: dict[str, Any] = {"kind": "website", "tracking_consent": "Tracking"}
    if opt_out is not None:
        fields["enforce_consent"] = opt_out
    tracker = make_tracker(**fields)
    contact = tracker.new_contact()
    [before] = tracker.log([{"type": "click", "value": "a"}], contact)
    if stored_without_consent:
        assert before["status"] == 202
        assert stored(hub, before["id"]).consent_agreed is False
    else:
        assert (before["status"], before["error"]["code"]) == (403, "consent_required")
        [kept] = rejected_rows(hub)
        assert kept.reason == "consent_required"
    agreed = tracker.client.post(
        f"/tracking/contacts/{contact}/consents/Tracking", json={"agree": True},
        headers=tracker.headers,
    )  # fmt: skip
    assert agreed.status_code == 200
    [after] = tracker.log([{"type": "click", "value": "b"}], contact)
    assert after["status"] == 202
    assert stored(hub, after["id"]).consent_agreed is True


def test_a_number_too_long_to_read_is_a_400_result_and_its_activity_can_be_read_back(
    tracker: Tracker, client: TestClient, admin_headers: dict[str, str]
) -> None:
    """An integer of more digits than Python reads (``sys.get_int_max_str_digits``) inside an
    activity: that activity is refused with a reason that says so and kept as sent; the list
    of rejected activities and the contact's export still read it (the number as its text)."""
    contact = tracker.new_contact()
    digits = "1" + "0" * sys.get_int_max_str_digits()
    body = (
        f'{{"channel": "{tracker.channel.id}", "contact": "{contact}", "activities": ['
        f'{{"type": "click", "value": "x", "fields": {{"n": {digits}}}}}, '
        '{"type": "click", "value": "fine"}]}'
    ).encode()
    answer = post_raw(tracker, body)
    assert answer.status_code == 207, answer.text
    refused, stored_one = answer.json()["results"]
    assert refused["status"] == 400
    assert refused["error"]["code"] == "invalid_field"
    assert "A number in the activity is out of range" in refused["error"]["message"]
    assert stored_one["status"] == 202
    listed = client.get("/api/rejected-activities", headers=admin_headers)
    assert listed.status_code == 200, listed.text
    [kept] = listed.json()["data"]
    assert kept["payload"]["fields"] == {"n": digits}
    exported = client.get(f"/api/contacts/{contact}/export", headers=admin_headers)
    assert exported.status_code == 200
    [kept_too] = exported.json()["rejected_activities"]
    assert kept_too["payload"]["fields"] == {"n": digits}


def test_a_number_with_an_exponent_too_large_to_read_is_a_400_result_kept_as_rejected(
    tracker: Tracker, hub: Hub
) -> None:
    """``1e9999999999999999999`` is JSON, but no Decimal holds its exponent: that activity is
    refused with a reason that says so and kept as sent, the others are stored (it was a 500,
    or a 503 from the writer's process, for the whole request)."""
    contact = tracker.new_contact()
    body = (
        f'{{"channel": "{tracker.channel.id}", "contact": "{contact}", "activities": ['
        '{"type": "click", "value": "x", "fields": {"n": 1e9999999999999999999}}, '
        '{"type": "click", "value": "fine"}]}'
    ).encode()
    answer = post_raw(tracker, body)
    assert answer.status_code == 207, answer.text
    refused, stored_one = answer.json()["results"]
    assert refused["status"] == 400
    assert refused["error"]["code"] == "invalid_field"
    assert "exponent too large to read" in refused["error"]["message"]
    assert stored_one["status"] == 202
    [kept] = rejected_rows(hub)
    assert kept.reason == "invalid_field"
    assert kept.payload["value"] == "x"


def test_a_decimal_sent_as_a_json_number_is_stored_as_it_was_written(
    tracker: Tracker, hub: Hub, make_type: Callable[..., ActivityType]
) -> None:
    """A float would say 12345678901234568 for 12345678901234567.89; the field keeps what was
    sent, and a number past the field's 38 digits is refused rather than rounded."""
    make_type(name="Payment", code_name="payment", fields=[{"name": "amount", "type": "decimal"}])
    contact = tracker.new_contact()
    body = (
        f'{{"channel": "{tracker.channel.id}", "contact": "{contact}", "activities": ['
        '{"type": "payment", "fields": {"amount": 12345678901234567.89}}, '
        '{"type": "payment", "fields": {"amount": 19.99}}, '
        '{"type": "payment", "fields": {"amount": 0.' + "1" * 4000 + "}}]}"
    ).encode()
    answer = post_raw(tracker, body)
    assert answer.status_code == 207, answer.text
    exact, plain, too_long = answer.json()["results"]
    assert stored(hub, exact["id"]).fields == {"amount": "12345678901234567.89"}
    assert stored(hub, plain["id"]).fields == {"amount": "19.99"}
    assert too_long["status"] == 400
    assert "more than 38 digits" in too_long["error"]["message"]


def test_an_activity_refused_for_another_reason_naming_an_erased_email_is_kept_nowhere(
    tracker: Tracker, hub: Hub
) -> None:
    """A data input naming an erased person's email, refused for another reason too (an
    unknown property, a time that is not one, a type that does not exist), was kept as a
    rejected activity with the email in its payload. It is that activity's 403
    contact_erased in the 207, and kept nowhere; the others of the request are as usual."""
    person = tracker.new_contact()
    naming = {"type": "datainput", "value": "f", "contactFields": {"ContactEmail": "gone@ex.com"}}
    [result] = tracker.log([naming], person)
    assert result["status"] == 202, result
    hub.erasure.erase(uuid.UUID(person), Actor("key", None))
    hub.catalog.invalidate()
    before = count(hub, rejected_activities)
    naming["contactFields"] = {"ContactEmail": "Gone@Ex.com"}
    sent = [
        {**naming, "colour": "red"},
        {**naming, "occurredAt": "yesterday"},
        {**naming, "type": "nope"},
        {"type": "nope", "value": "x", "fields": {"str::email": "gone@ex.com"}},
        {**naming, "type": "nope", "contactFields": {"ContactEmail": "kept@ex.com"}},
    ]
    results = tracker.log(sent, tracker.new_contact())
    assert [(r["status"], r["error"]["code"]) for r in results] == [
        *[(403, "contact_erased")] * 4,
        (404, "activity_type_not_found"),
    ]
    assert count(hub, rejected_activities) == before + 1

"""The Segment-compatible API under /v1 through the in-process client, on both databases:
docs/segment.md."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import gzip
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx2
import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy import event
from starlette.testclient import TestClient

from waypost.app import create_app
from waypost.hub import Hub
from waypost.services.activity_type_shapes import ActivityTypeCreate, ActivityTypeUpdate
from waypost.services.activity_types import ActivityType
from waypost.services.channels import Channel, ChannelCreate
from waypost.services.collectors import Resolver
from waypost.services.erasure import Actor
from waypost.services.keys import CreatedKey, KeyCreate, KeyUpdate
from waypost.services.replay import ReplayRequest
from waypost.settings import Settings
from waypost.store import Store, make_engine
from waypost.store.schema import (
    activities,
    activity_types,
    contact_external_ids,
    contact_merges,
    contacts,
    rejected_activities,
)

if TYPE_CHECKING:
    from tests.conftest import ErrorCheck

JSON = "application/json"


def basic(key: str) -> dict[str, str]:
    """Segment's auth: the write key as the Basic-auth user name, an empty password."""
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


@dataclass
class Segment:
    """A channel with a tracking key (the write key), and /v1 calls made with it."""

    client: TestClient
    hub: Hub
    channel: Channel
    key: str
    key_id: uuid.UUID

    def post(
        self,
        path: str,
        body: object,
        *,
        headers: dict[str, str] | None = None,
        content_type: str = JSON,
        gzipped: bool = False,
    ) -> httpx2.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {"Content-Type": content_type}
        if gzipped:
            raw = gzip.compress(raw)
            sent["Content-Encoding"] = "gzip"
        sent.update(basic(self.key) if headers is None else headers)
        return self.client.post(path, content=raw, headers=sent)

    def send(self, path: str, body: object, **options: Any) -> None:
        answer = self.post(path, body, **options)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"success": True}
        assert answer.headers["content-type"] == JSON

    def batch(self, *messages: dict[str, Any], **options: Any) -> None:
        self.send("/v1/batch", {"batch": list(messages)}, **options)

    # -- reading the database --------------------------------------------------------------

    def contact_of(self, value: str, kind: str = "user_id") -> uuid.UUID:
        with self.hub.store.read() as conn:
            found: uuid.UUID = conn.execute(
                sa.select(contact_external_ids.c.contact_id).where(
                    contact_external_ids.c.kind == kind, contact_external_ids.c.value == value
                )
            ).scalar_one()
        return found

    def external_ids(self) -> set[tuple[str, str, uuid.UUID]]:
        with self.hub.store.read() as conn:
            rows = conn.execute(
                sa.select(
                    contact_external_ids.c.kind,
                    contact_external_ids.c.value,
                    contact_external_ids.c.contact_id,
                )
            ).all()
        return {(r.kind, r.value, r.contact_id) for r in rows}

    def activities(self) -> list[sa.Row[Any]]:
        with self.hub.store.read() as conn:
            query = (
                sa.select(activities, activity_types.c.code_name.label("type"))
                .join(activity_types, activity_types.c.id == activities.c.type_id)
                .order_by(activities.c.id)
            )
            return list(conn.execute(query).all())

    def rejected(self) -> list[sa.Row[Any]]:
        with self.hub.store.read() as conn:
            query = sa.select(rejected_activities).order_by(rejected_activities.c.id)
            return list(conn.execute(query).all())

    def contact(self, contact_id: uuid.UUID) -> sa.Row[Any]:
        with self.hub.store.read() as conn:
            return conn.execute(sa.select(contacts).where(contacts.c.id == contact_id)).one()

    def count(self, table: sa.Table) -> int:
        with self.hub.store.read() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


@pytest.fixture
def make_segment(
    client: TestClient,
    hub: Hub,
    make_channel: Callable[..., Channel],
    make_key: Callable[..., CreatedKey],
) -> Callable[..., Segment]:
    def make(**channel_fields: Any) -> Segment:
        channel = make_channel(**channel_fields)
        created = make_key("tracking", channel.id)
        return Segment(client, hub, channel, created.key, created.id)

    return make


@pytest.fixture
def segment(make_segment: Callable[..., Segment]) -> Segment:
    return make_segment()


@pytest.fixture
def order_type(make_type: Callable[..., ActivityType]) -> ActivityType:
    """A type fed by Segment: an alias for the event name, typed fields, the rest flagged."""
    return make_type(
        name="Order completed",
        code_name="order_completed",
        aliases=["Order Completed"],
        fields=[{"name": "revenue", "type": "decimal"}, {"name": "sku", "type": "text"}],
        unknown_fields="accept_and_flag",
    )


def track(event_name: str = "Order Completed", **fields: Any) -> dict[str, Any]:
    fields.setdefault("userId", "user-1")
    return {"type": "track", "event": event_name, "messageId": str(uuid.uuid4()), **fields}


# -- routes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/track", "/v1/t"])
def test_track_routes(segment: Segment, order_type: ActivityType, path: str) -> None:
    segment.send(path, {"userId": "u", "event": "Order Completed", "properties": {"sku": "A1"}})
    [stored] = segment.activities()
    assert stored.type == "order_completed"
    assert stored.fields == {"sku": "A1"}
    assert stored.contact_id == segment.contact_of("u")
    assert stored.channel_id == segment.channel.id


@pytest.mark.parametrize("path", ["/v1/page", "/v1/p"])
def test_page_routes(segment: Segment, path: str) -> None:
    segment.send(
        path,
        {"anonymousId": "a", "name": "Pricing", "properties": {"url": "https://example.com/p"}},
    )
    [stored] = segment.activities()
    assert (stored.type, stored.url, stored.value) == (
        "pagevisit",
        "https://example.com/p",
        "Pricing",
    )
    assert stored.title == "Page visit 'Pricing'"


@pytest.mark.parametrize("path", ["/v1/screen", "/v1/s"])
def test_screen_routes(segment: Segment, make_type: Callable[..., ActivityType], path: str) -> None:
    make_type(name="Screen", code_name="screen")
    segment.send(path, {"userId": "u", "name": "Settings"})
    [stored] = segment.activities()
    assert (stored.type, stored.value) == ("screen", "Settings")


@pytest.mark.parametrize("path", ["/v1/identify", "/v1/i"])
def test_identify_routes(segment: Segment, path: str) -> None:
    segment.send(path, {"userId": "u", "traits": {"email": "ann@example.com", "plan": "pro"}})
    row = segment.contact(segment.contact_of("u"))
    assert row.email == "ann@example.com"
    assert row.attributes == {"plan": "pro"}
    assert segment.activities() == []


@pytest.mark.parametrize("path", ["/v1/group", "/v1/g"])
def test_group_routes(segment: Segment, path: str) -> None:
    segment.send(path, {"userId": "u", "groupId": "acme", "traits": {"name": "Acme", "seats": 5}})
    row = segment.contact(segment.contact_of("u"))
    assert row.attributes == {"groups": {"acme": {"name": "Acme", "seats": 5}}}


@pytest.mark.parametrize("path", ["/v1/alias", "/v1/a"])
def test_alias_routes(segment: Segment, path: str) -> None:
    segment.send(path, {"previousId": "anon-9", "userId": "u"})
    contact = segment.contact_of("u")
    assert segment.contact_of("anon-9", "anonymous_id") == contact


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/b", "/v1/import"])
def test_batch_routes(segment: Segment, order_type: ActivityType, path: str) -> None:
    segment.send(
        path,
        {
            "batch": [
                {"type": "identify", "userId": "u", "traits": {"firstName": "Ann"}},
                track(userId="u"),
                {"type": "page", "userId": "u", "properties": {"url": "https://example.com/"}},
            ]
        },
    )
    assert [a.type for a in segment.activities()] == ["order_completed", "pagevisit"]
    assert segment.contact(segment.contact_of("u")).first_name == "Ann"


def test_the_route_sets_the_type_of_a_single_call(segment: Segment) -> None:
    # A page body sent to /v1/page is a page even when it says otherwise.
    segment.send(
        "/v1/page", {"type": "track", "userId": "u", "properties": {"url": "https://e.com"}}
    )
    assert [a.type for a in segment.activities()] == ["pagevisit"]


def test_unknown_routes_are_404_and_other_methods_405(
    segment: Segment, expect_error: ErrorCheck
) -> None:
    expect_error(segment.post("/v1/nope", {}), 404, "not_found")
    answer = segment.client.get("/v1/track", headers=basic(segment.key))
    expect_error(answer, 405, "method_not_allowed")
    assert answer.headers["allow"] == "POST"


# -- authentication ----------------------------------------------------------------------------


def test_basic_auth_with_a_password_is_accepted(segment: Segment) -> None:
    token = base64.b64encode(f"{segment.key}:ignored".encode()).decode()
    segment.send("/v1/identify", {"userId": "u"}, headers={"Authorization": f"Basic {token}"})
    assert segment.contact_of("u")


def test_write_key_in_the_body(segment: Segment, order_type: ActivityType) -> None:
    segment.send("/v1/batch", {"writeKey": segment.key, "batch": [track()]}, headers={})
    segment.send("/v1/track", {**track(), "writeKey": segment.key}, headers={})
    assert len(segment.activities()) == 2
    # The write key is not kept in what the activity stores or in a rejected payload.
    segment.send("/v1/track", {**track("Nope"), "writeKey": segment.key}, headers={})
    [rejected] = segment.rejected()
    assert segment.key not in json.dumps(rejected.payload)


def test_a_bearer_header_falls_back_to_the_write_key_in_the_body(segment: Segment) -> None:
    headers = {"Authorization": "Bearer something-else"}
    segment.send("/v1/identify", {"userId": "u", "writeKey": segment.key}, headers=headers)
    assert segment.contact_of("u")


def test_the_write_key_picks_the_channel(
    make_segment: Callable[..., Segment], order_type: ActivityType
) -> None:
    first, second = make_segment(), make_segment()
    first.batch(track())
    second.batch(track())
    assert sorted(str(a.channel_id) for a in first.activities()) == sorted(
        [str(first.channel.id), str(second.channel.id)]
    )


BAD_AUTH: list[dict[str, str]] = [
    {},
    {"Authorization": "Basic " + base64.b64encode(b":").decode()},
    {"Authorization": "Basic not-base64!"},
    {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:").decode()},
    basic("wpt_unknown"),
    basic("nonsense"),
]


def test_a_missing_or_unknown_key_is_401(
    segment: Segment, order_type: ActivityType, expect_error: ErrorCheck
) -> None:
    for headers in BAD_AUTH:
        for path, body in [
            ("/v1/batch", {"batch": [track()]}),
            ("/v1/track", track()),
            ("/v1/batch", {"batch": [track()], "writeKey": "wpt_unknown"}),
        ]:
            expect_error(segment.post(path, body, headers=headers), 401, "unauthorized")
    assert segment.activities() == []
    assert segment.count(contacts) == 0


def test_a_disabled_key_is_403(
    segment: Segment, hub: Hub, order_type: ActivityType, expect_error: ErrorCheck
) -> None:
    hub.keys.update(segment.key_id, KeyUpdate(enabled=False))
    hub.catalog.invalidate()
    expect_error(segment.post("/v1/batch", {"batch": [track()]}), 403, "forbidden")
    assert segment.activities() == []


@pytest.mark.parametrize("access", ["publishable", "admin"])
def test_publishable_and_admin_keys_are_refused(
    segment: Segment,
    make_channel: Callable[..., Channel],
    make_key: Callable[..., CreatedKey],
    order_type: ActivityType,
    access: str,
    expect_error: ErrorCheck,
) -> None:
    channel = make_channel(kind="website", allowed_origins=["https://example.com"])
    key = make_key(access, channel.id if access == "publishable" else None).key
    expect_error(
        segment.post("/v1/batch", {"batch": [track()]}, headers=basic(key)), 403, "forbidden"
    )
    expect_error(
        segment.post("/v1/track", {**track(), "writeKey": key}, headers={}), 403, "forbidden"
    )
    assert segment.activities() == []


# -- bodies ------------------------------------------------------------------------------------


def test_gzip_bodies(segment: Segment, order_type: ActivityType) -> None:
    segment.batch(track(), track(), gzipped=True)
    segment.send("/v1/identify", {"userId": "u", "traits": {"lastName": "Cole"}}, gzipped=True)
    assert len(segment.activities()) == 2
    assert segment.contact(segment.contact_of("u")).last_name == "Cole"


def test_a_body_that_says_gzip_but_is_not_is_400(
    segment: Segment, expect_error: ErrorCheck
) -> None:
    headers = {**basic(segment.key), "Content-Encoding": "gzip"}
    answer = segment.client.post("/v1/batch", content=b'{"batch": []}', headers=headers)
    expect_error(answer, 400, "invalid_json")
    cut = gzip.compress(json.dumps({"batch": [track()]}).encode())[:-8]
    expect_error(
        segment.client.post("/v1/batch", content=cut, headers=headers), 400, "invalid_json"
    )


def test_json_under_other_content_types(segment: Segment, order_type: ActivityType) -> None:
    content_types = [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "application/json; charset=utf-8",
        "",
    ]
    for content_type in content_types:
        segment.batch(track(), content_type=content_type)
        segment.send("/v1/track", track(), content_type=content_type)
    assert len(segment.activities()) == 2 * len(content_types)


def test_bodies_that_are_not_segment_json_are_400(
    segment: Segment, expect_error: ErrorCheck
) -> None:
    batches = [
        (b"", "invalid_json"),
        (b"{", "invalid_json"),
        (b"batch=%5B%5D", "invalid_json"),  # a real form body is not JSON
        (b"[]", "invalid_field"),
        (b'{"batch": {}}', "invalid_field"),
        (b'{"batch": [1]}', "invalid_field"),
    ]
    for body, code in batches:
        expect_error(segment.post("/v1/batch", body), 400, code)
    singles = [
        (b"", "invalid_json"),
        (b"{", "invalid_json"),
        (b"[]", "invalid_field"),
        (b'"track"', "invalid_field"),
        (b'{"userId": []}', "invalid_field"),
    ]
    for body, code in singles:
        expect_error(segment.post("/v1/track", body), 400, code)
    assert segment.count(rejected_activities) == 0
    assert segment.count(contacts) == 0


def test_a_message_of_a_batch_that_cannot_be_read_is_kept_and_the_others_stored(
    segment: Segment, order_type: ActivityType, hub: Hub, expect_error: ErrorCheck
) -> None:
    """One message of a field of the wrong type, or a number no reader takes, refused the
    whole batch (400), which the SDKs then drop: every message of it was lost. Such a message
    is kept as a rejected activity, as sent, and the others are stored."""
    good = track(userId="u")
    wrong_type = track(userId="u", properties=[])
    body = (
        b'{"batch": ['
        + json.dumps(good).encode()
        + b", "
        + json.dumps(wrong_type).encode()
        + b', {"type": "track", "userId": "u", "event": "Order Completed",'
        + b' "properties": {"revenue": 1e400}}]}'
    )
    segment.send("/v1/batch", body)
    [stored] = segment.activities()
    assert stored.contact_id == segment.contact_of("u")
    kept = segment.rejected()
    assert [(r.reason, r.status, r.source) for r in kept] == [("invalid_field", 400, "segment")] * 2
    assert kept[0].payload == wrong_type
    assert "out of range" in kept[1].message
    # A message naming an erased person is dropped, not kept, even when it cannot be read.
    with hub.store.write() as conn:
        conn.execute(
            contacts.update()
            .where(contacts.c.id == segment.contact_of("u"))
            .values(email="u@example.com", email_key="u@example.com")
        )
    hub.erasure.erase(segment.contact_of("u"), Actor("key", None))
    hub.catalog.invalidate()
    for erased in (
        b'{"batch": [{"type": "track", "userId": "u", "properties": {"n": 1e400}}]}',
        b'{"batch": [{"type": "identify", "anonymousId": "new", "traits": [],'
        b' "context": {"traits": {"email": "U@example.com"}, "n": 1e400}}]}',
        # An id that cannot be read does not hide the email beside it.
        b'{"batch": [{"type": "identify", "userId": 1e400, "traits": {"email": "U@example.com"}}]}',
        b'{"batch": [{"type": "track", "anonymousId": 1e400, "event": "Signed Up",'
        b' "properties": {"str::email": "u@example.com", "email": 1e400}}]}',
    ):
        expect_error(segment.post("/v1/batch", erased), 403, "contact_erased")
    assert segment.count(rejected_activities) == 0  # the erasure took the two kept above
    # One whose ids cannot be read names no one: kept as rejected, whether or not anyone
    # was erased.
    unreadable = b'{"batch": [{"type": "track", "userId": 1e400}]}'
    assert segment.post("/v1/batch", unreadable).status_code == 200
    assert [(r.reason, r.status) for r in segment.rejected()] == [("invalid_field", 400)]


# -- limits: 32 KB per message, 500 KB per batch ------------------------------------------------


def padded(size: int, **fields: Any) -> dict[str, Any]:
    """A track message of exactly ``size`` bytes as JSON, padded in its context (which the
    activity does not keep, so that only Segment's limits are at play)."""
    message = track(**fields, context={"pad": ""})
    message["context"]["pad"] = "x" * (size - len(json.dumps(message)))
    assert len(json.dumps(message)) == size
    return message


def test_a_single_message_over_32_kb_is_400(segment: Segment, expect_error: ErrorCheck) -> None:
    error = expect_error(segment.post("/v1/track", padded(32 * 1024 + 1)), 400, "payload_too_large")
    assert "32" in error["message"]
    expect_error(
        segment.post("/v1/track", padded(40 * 1024), gzipped=True), 400, "payload_too_large"
    )
    assert segment.activities() == []


def test_a_single_message_of_32_kb_passes(segment: Segment, order_type: ActivityType) -> None:
    # Just under the limit once the route's type is in it.
    segment.send("/v1/track", padded(32 * 1024 - 100))
    assert len(segment.activities()) == 1


def test_a_message_over_32_kb_in_a_batch_is_400(
    segment: Segment, order_type: ActivityType, expect_error: ErrorCheck
) -> None:
    body = {"batch": [track(), padded(32 * 1024 + 1)]}
    expect_error(segment.post("/v1/batch", body), 400, "payload_too_large")
    assert segment.activities() == []


def test_a_batch_over_500_kb_is_400(
    segment: Segment, order_type: ActivityType, expect_error: ErrorCheck
) -> None:
    messages = [padded(30 * 1024) for _ in range(17)]  # 510 KB of messages under 32 KB each
    error = expect_error(segment.post("/v1/batch", {"batch": messages}), 400, "payload_too_large")
    assert "500" in error["message"] or "512000" in error["message"]
    # Counted after decompression: a small gzip body that inflates past the limit is refused.
    expect_error(
        segment.post("/v1/batch", {"batch": messages}, gzipped=True), 400, "payload_too_large"
    )
    assert segment.activities() == []


def test_a_batch_under_500_kb_passes(segment: Segment, order_type: ActivityType) -> None:
    segment.batch(*[padded(30 * 1024) for _ in range(16)])  # 480 KB
    assert len(segment.activities()) == 16


def test_properties_over_the_activity_limit_are_kept_as_rejected(
    segment: Segment, order_type: ActivityType, hub: Hub
) -> None:
    """A message within Segment's 32 KB whose activity passes Waypost's own limit per activity
    (WAYPOST_MAX_ACTIVITY_BYTES, 16 KB by default) is accepted and kept as rejected."""
    big = track(properties={"sku": "x" * (hub.settings.max_activity_bytes + 1)})
    segment.batch(big, track())
    assert len(segment.activities()) == 1
    [rejected] = segment.rejected()
    assert (rejected.reason, rejected.status, rejected.source) == (
        "payload_too_large",
        413,
        "segment",
    )


# -- messageId deduplication -------------------------------------------------------------------


def test_a_resent_batch_stores_nothing_twice(segment: Segment, order_type: ActivityType) -> None:
    batch = [
        {"type": "identify", "userId": "u", "anonymousId": "a", "traits": {"email": "a@e.com"}},
        track(userId="u", properties={"revenue": "10.00"}),
        {
            "type": "page",
            "anonymousId": "a",
            "messageId": "page-1",
            "properties": {"url": "https://example.com/"},
        },
        {"type": "alias", "previousId": "b", "userId": "u", "messageId": "alias-1"},
    ]
    segment.batch(*batch)
    first = segment.activities()
    ids_before = segment.external_ids()
    for _ in range(2):
        segment.batch(*batch)
    assert segment.activities() == first
    assert segment.external_ids() == ids_before
    assert segment.count(contacts) == 1
    assert segment.count(contact_merges) == 0
    assert segment.rejected() == []


def test_the_same_message_id_twice_in_one_batch_is_stored_once(
    segment: Segment, order_type: ActivityType
) -> None:
    message = track(messageId="twice")
    segment.batch(message, message)
    [stored] = segment.activities()
    assert stored.client_id == "twice"


def test_message_ids_are_per_channel(
    make_segment: Callable[..., Segment], order_type: ActivityType
) -> None:
    first, second = make_segment(), make_segment()
    first.batch(track(messageId="same"))
    second.batch(track(messageId="same"))
    assert len(first.activities()) == 2


def test_messages_without_a_message_id_are_each_stored(
    segment: Segment, order_type: ActivityType
) -> None:
    message = track()
    del message["messageId"]
    segment.batch(message, message)
    assert len(segment.activities()) == 2


# -- contacts by userId and anonymousId --------------------------------------------------------


def test_ids_become_external_ids_of_one_contact(
    segment: Segment, order_type: ActivityType, admin_headers: dict[str, str]
) -> None:
    segment.batch(track(userId="user-1", anonymousId="anon-1"))
    contact = segment.contact_of("user-1")
    assert segment.external_ids() == {
        ("user_id", "user-1", contact),
        ("anonymous_id", "anon-1", contact),
    }
    answer = segment.client.get(f"/api/contacts/{contact}", headers=admin_headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["external_ids"] == {"user_id": ["user-1"], "anonymous_id": ["anon-1"]}
    # Later messages with either id reach the same contact.
    segment.batch(track(userId="user-1"), track(userId=None, anonymousId="anon-1"))
    assert {a.contact_id for a in segment.activities()} == {contact}
    assert segment.count(contacts) == 1


def test_numeric_user_ids(segment: Segment, order_type: ActivityType) -> None:
    segment.batch(track(userId=42), track(userId="42"), track(userId=None, anonymousId=7))
    [first, second, third] = segment.activities()
    assert first.contact_id == second.contact_id == segment.contact_of("42")
    assert third.contact_id == segment.contact_of("7", "anonymous_id")


def test_a_known_user_gains_a_new_anonymous_id(segment: Segment, order_type: ActivityType) -> None:
    segment.batch(track(userId="u"))
    segment.batch(track(userId="u", anonymousId="device-2"))
    assert segment.contact_of("device-2", "anonymous_id") == segment.contact_of("u")


def test_an_anonymous_contact_gains_the_user_id(segment: Segment, order_type: ActivityType) -> None:
    segment.batch(track(userId=None, anonymousId="a"))
    segment.batch(track(userId="u", anonymousId="a"))
    assert segment.contact_of("u") == segment.contact_of("a", "anonymous_id")
    assert segment.count(contacts) == 1


def test_ids_over_200_characters_are_rejected_not_a_server_error(
    segment: Segment, order_type: ActivityType
) -> None:
    long_id = "u" * 201
    for _ in range(2):
        segment.batch(track(userId=long_id), track(userId="short"))
    assert len(segment.activities()) == 2
    assert [r.reason for r in segment.rejected()] == ["invalid_field", "invalid_field"]
    assert {r.field for r in segment.rejected()} == {"userId"}


# -- identify ----------------------------------------------------------------------------------


def test_identify_traits_set_contact_fields_and_attributes(
    segment: Segment, admin_headers: dict[str, str]
) -> None:
    segment.send(
        "/v1/identify",
        {
            "userId": "u",
            "traits": {
                "email": "Ann@Example.com",
                "firstName": "Ann",
                "lastName": "Cole",
                "phone": "+1 415 555 2671",
                "title": "CTO",
                "birthday": "1990-05-17",
                "description": "Met at the fair",
                "company": {"name": "Acme", "plan": "enterprise"},
                "address": {
                    "street": "1 Market St",
                    "city": "San Francisco",
                    "postalCode": "94105",
                    "state": "CA",
                    "country": "United States",
                },
                "logins": 5,
            },
        },
    )
    contact = segment.contact_of("u")
    got = segment.client.get(f"/api/contacts/{contact}", headers=admin_headers).json()
    assert {k: got[k] for k in got if k not in ("id", "created_at", "updated_at")} == {
        "email": "Ann@Example.com",
        "first_name": "Ann",
        "middle_name": None,
        "last_name": "Cole",
        "birthday": "1990-05-17",
        "mobile_phone": "+14155552671",
        "business_phone": None,
        "company_name": "Acme",
        "job_title": "CTO",
        "address1": "1 Market St",
        "city": "San Francisco",
        "zip": "94105",
        "country": "USA",
        "state": "CA",
        "notes": "Met at the fair",
        "attributes": {"company": {"plan": "enterprise"}, "logins": 5},
        "external_ids": {"user_id": ["u"]},
        "merged_into": None,
    }
    assert segment.contact(contact).email_key == "ann@example.com"


def test_identify_traits_in_context_and_top_level_wins(segment: Segment) -> None:
    segment.send(
        "/v1/identify",
        {
            "userId": "u",
            "traits": {"firstName": "Top"},
            "context": {"traits": {"firstName": "Nested", "lastName": "Cole", "plan": "pro"}},
        },
    )
    row = segment.contact(segment.contact_of("u"))
    assert (row.first_name, row.last_name, row.attributes) == ("Top", "Cole", {"plan": "pro"})


def test_identify_keeps_values_that_do_not_fit_as_attributes(segment: Segment) -> None:
    long_name = "A" * 150
    segment.send(
        "/v1/identify",
        {
            "userId": "u",
            "traits": {"phone": "555-1234", "firstName": long_name, "address": {"city": "C" * 101}},
        },
    )
    row = segment.contact(segment.contact_of("u"))
    assert (row.mobile_phone, row.first_name, row.city) == (None, None, None)
    assert row.attributes == {
        "phone": "555-1234",
        "firstName": long_name,
        "address": {"city": "C" * 101},
    }


def test_later_identifies_update_fields_and_merge_attributes(segment: Segment) -> None:
    segment.send("/v1/identify", {"userId": "u", "traits": {"firstName": "Ann", "a": 1, "b": 1}})
    segment.send("/v1/identify", {"userId": "u", "traits": {"firstName": "Anna", "b": 2}})
    row = segment.contact(segment.contact_of("u"))
    assert (row.first_name, row.attributes) == ("Anna", {"a": 1, "b": 2})


def test_an_email_another_contact_holds_is_kept_as_a_claim(segment: Segment) -> None:
    segment.send("/v1/identify", {"userId": "one", "traits": {"email": "ann@example.com"}})
    segment.send("/v1/identify", {"userId": "two", "traits": {"email": "ANN@example.com"}})
    two = segment.contact(segment.contact_of("two"))
    assert two.email is None
    assert two.attributes == {"claimed_email": "ANN@example.com"}
    assert segment.contact_of("one") != two.id
    assert segment.count(contact_merges) == 0


def test_identify_with_both_ids_joins_an_anonymous_history(
    segment: Segment, order_type: ActivityType, admin_headers: dict[str, str]
) -> None:
    segment.batch(track(userId="u", properties={"sku": "known"}))
    segment.batch(
        track(userId=None, anonymousId="visitor", properties={"sku": "anonymous"}),
        {"type": "page", "anonymousId": "visitor", "properties": {"url": "https://e.com/"}},
    )
    known, anonymous = segment.contact_of("u"), segment.contact_of("visitor", "anonymous_id")
    assert known != anonymous
    segment.send(
        "/v1/identify", {"userId": "u", "anonymousId": "visitor", "traits": {"firstName": "Ann"}}
    )
    assert segment.contact_of("visitor", "anonymous_id") == known
    assert {a.contact_id for a in segment.activities()} == {known}
    assert segment.contact(anonymous).merged_into == known
    with segment.hub.store.read() as conn:
        [merge] = conn.execute(sa.select(contact_merges)).all()
    assert (merge.source_id, merge.target_id, merge.reason) == (
        anonymous,
        known,
        "segment_identify",
    )
    log = segment.client.get(f"/api/contacts/{known}/activities", headers=admin_headers).json()
    assert len(log["data"]) == 3
    # Messages for the anonymous id keep reaching the known contact.
    segment.batch(track(userId=None, anonymousId="visitor"))
    assert {a.contact_id for a in segment.activities()} == {known}


def test_identify_and_track_in_one_batch_join_before_storing(
    segment: Segment, order_type: ActivityType
) -> None:
    segment.batch(track(userId="u"))
    known = segment.contact_of("u")
    segment.batch(
        track(userId=None, anonymousId="visitor"),
        {"type": "identify", "userId": "u", "anonymousId": "visitor"},
        track(userId=None, anonymousId="visitor"),
    )
    assert [a.contact_id for a in segment.activities()] == [known] * 3


def test_a_track_with_both_ids_does_not_merge(segment: Segment, order_type: ActivityType) -> None:
    segment.batch(track(userId="u"), track(userId=None, anonymousId="visitor"))
    segment.batch(track(userId="u", anonymousId="visitor"))
    assert segment.contact_of("u") != segment.contact_of("visitor", "anonymous_id")
    assert segment.count(contact_merges) == 0


def test_an_id_a_concurrent_request_linked_first_is_found_on_a_second_try(
    segment: Segment, order_type: ActivityType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two requests naming the same new userId at once both looked it up, found nothing and
    linked it: the second's insert broke the unique index, a 500 (seen on PostgreSQL). The
    request's transaction now runs again and finds the contact the other one made."""
    real_link = Resolver.link
    raced: list[str] = []

    def link(self: Resolver, contact: uuid.UUID, kind: str, value: str) -> None:
        real_link(self, contact, kind, value)
        if not raced:
            raced.append(value)
            raise sa.exc.IntegrityError("INSERT", None, Exception("duplicate key"))

    monkeypatch.setattr(Resolver, "link", link)
    segment.send("/v1/track", track(userId="racer"))
    assert raced == ["racer"]
    [stored] = segment.activities()
    assert stored.contact_id == segment.contact_of("racer")
    assert segment.count(contacts) == 1


def test_identify_never_merges_two_identified_users(segment: Segment) -> None:
    segment.send("/v1/identify", {"userId": "one", "anonymousId": "device"})
    segment.send("/v1/identify", {"userId": "two"})
    segment.send("/v1/identify", {"userId": "two", "anonymousId": "device"})
    assert segment.contact_of("one") != segment.contact_of("two")
    assert segment.contact_of("device", "anonymous_id") == segment.contact_of("one")
    assert segment.count(contact_merges) == 0


# -- alias -------------------------------------------------------------------------------------


def test_alias_merges_two_contacts(segment: Segment, order_type: ActivityType) -> None:
    segment.batch(track(userId=None, anonymousId="old"), track(userId="new"))
    old, new = segment.contact_of("old", "anonymous_id"), segment.contact_of("new")
    assert old != new
    segment.send("/v1/identify", {"anonymousId": "old", "traits": {"lastName": "Cole"}})
    segment.send("/v1/alias", {"previousId": "old", "userId": "new"})
    assert {a.contact_id for a in segment.activities()} == {new}
    assert segment.contact(old).merged_into == new
    assert segment.contact(new).last_name == "Cole"
    assert segment.contact_of("old", "anonymous_id") == new
    with segment.hub.store.read() as conn:
        [merge] = conn.execute(sa.select(contact_merges)).all()
    assert (merge.source_id, merge.target_id) == (old, new)
    assert (merge.reason, merge.channel_id) == ("segment_alias", segment.channel.id)
    # Resending the alias merges nothing more.
    segment.send("/v1/alias", {"previousId": "old", "userId": "new"})
    assert segment.count(contact_merges) == 1


def test_alias_of_a_previous_user_id(segment: Segment, order_type: ActivityType) -> None:
    segment.batch(track(userId="old-user"), track(userId="new-user"))
    segment.send("/v1/alias", {"previousId": "old-user", "userId": "new-user"})
    assert segment.contact_of("old-user") == segment.contact_of("new-user")
    assert len({a.contact_id for a in segment.activities()}) == 1


def test_alias_with_one_known_id_links_the_other(segment: Segment) -> None:
    segment.send("/v1/identify", {"anonymousId": "anon"})
    segment.send("/v1/alias", {"previousId": "anon", "userId": "u"})
    assert segment.contact_of("u") == segment.contact_of("anon", "anonymous_id")
    segment.send("/v1/identify", {"userId": "v"})
    segment.send("/v1/alias", {"previousId": "fresh", "userId": "v"})
    assert segment.contact_of("fresh", "anonymous_id") == segment.contact_of("v")
    assert segment.count(contacts) == 2
    assert segment.count(contact_merges) == 0


def test_alias_without_both_ids_is_kept_as_rejected(segment: Segment) -> None:
    segment.batch(
        {"type": "alias", "userId": "u"},
        {"type": "alias", "previousId": "p"},
    )
    rejected = segment.rejected()
    assert [(r.reason, r.source, r.status) for r in rejected] == [
        ("missing_field", "segment", 400)
    ] * 2
    assert segment.count(contacts) == 0


# -- track -------------------------------------------------------------------------------------


def test_track_to_a_type_by_code_name_and_by_alias(
    segment: Segment, order_type: ActivityType, admin_headers: dict[str, str]
) -> None:
    segment.batch(
        track("order_completed", properties={"revenue": "42.50", "sku": "A1"}),
        track(
            "Order Completed",
            properties={"revenue": "10", "coupon": "SPRING"},
            context={"page": {"url": "https://shop.example.com/done"}},
        ),
    )
    by_code, by_alias = segment.activities()
    assert (by_code.type, by_alias.type) == ("order_completed", "order_completed")
    assert by_code.fields == {"revenue": "42.50", "sku": "A1"}
    assert by_code.title == "Order completed"
    assert by_alias.url == "https://shop.example.com/done"
    # A property the type does not declare is kept with the activity, flagged.
    assert by_alias.fields == {"revenue": "10"}
    assert "coupon" in json.dumps(by_alias.flags)
    log = segment.client.get(
        "/api/activities", params={"type": "order_completed"}, headers=admin_headers
    ).json()
    assert len(log["data"]) == 2


def test_track_fields_are_validated_like_any_activitys(
    segment: Segment, order_type: ActivityType
) -> None:
    segment.batch(track(properties={"revenue": "not a number"}))
    [stored] = segment.activities()  # accept_and_flag: stored, with the violation flagged
    assert stored.fields is None or "revenue" not in stored.fields
    assert "revenue" in json.dumps(stored.flags)


def test_decimal_properties_sent_as_json_numbers_are_stored_as_written(
    segment: Segment, order_type: ActivityType
) -> None:
    """Segment's SDKs send revenue as a JSON number: it is stored as the sender wrote it."""
    segment.batch(
        track(properties={"revenue": 19.99}),
        track(properties={"revenue": 42}),
        track(properties={"revenue": 1e21}),
        track(properties={"revenue": "007.50"}),
    )
    stored = {(a.fields or {}).get("revenue"): a for a in segment.activities()}
    assert set(stored) == {"19.99", "42", "1000000000000000000000", None}
    assert "007.50" in json.dumps(stored[None].flags)


def test_unknown_events_are_rejected_and_kept(
    segment: Segment, order_type: ActivityType, admin_headers: dict[str, str]
) -> None:
    segment.batch(track("Signed Up", properties={"plan": "pro"}), track())
    assert [a.type for a in segment.activities()] == ["order_completed"]
    listed = segment.client.get("/api/rejected-activities", headers=admin_headers).json()["data"]
    [rejected] = listed
    assert rejected["reason"] == "activity_type_not_found"
    assert rejected["source"] == "segment"
    assert rejected["type"] == "Signed Up"
    assert rejected["status"] == 404
    assert rejected["channel"] == str(segment.channel.id)
    assert rejected["contact"] == str(segment.contact_of("user-1"))
    assert rejected["payload"]["fields"] == {"plan": "pro"}
    assert segment.hub.types.all()  # no type was created
    assert "signed_up" not in {t.code_name for t in segment.hub.types.all()}


def test_an_unknown_event_is_replayable_once_an_alias_names_it(
    segment: Segment, admin_headers: dict[str, str]
) -> None:
    segment.batch(track("Signed Up"))
    [rejected] = segment.rejected()
    created = segment.client.post(
        "/api/activity-types",
        json={"name": "Signup", "code_name": "signup", "aliases": ["Signed Up"]},
        headers=admin_headers,
    )
    assert created.status_code == 201, created.text
    # New events by that name are stored under it: only the replay fails.
    segment.batch(track("Signed Up"))
    assert [a.type for a in segment.activities()] == ["signup"]
    replayed = segment.client.post(
        f"/api/rejected-activities/{rejected.id}/replay", headers=admin_headers
    )
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["stored"] == 1
    assert [a.type for a in segment.activities()] == ["signup", "signup"]


def test_a_disabled_type_is_rejected(segment: Segment, hub: Hub, order_type: ActivityType) -> None:
    hub.types.set_enabled(order_type.id, False)
    hub.catalog.invalidate()
    segment.batch(track())
    assert segment.activities() == []
    assert [r.reason for r in segment.rejected()] == ["activity_type_disabled"]


def test_track_without_an_event_is_rejected(segment: Segment) -> None:
    segment.batch(track(""), {"type": "track", "userId": "u"})
    assert [(r.reason, r.field) for r in segment.rejected()] == [("missing_field", "event")] * 2


def test_unknown_events_become_draft_types_when_the_channel_says_so(
    make_segment: Callable[..., Segment], hub: Hub, admin_headers: dict[str, str]
) -> None:
    segment = make_segment(unknown_events="draft")
    segment.batch(
        track("Signed Up", properties={"plan": "pro"}),
        track("Signed Up", properties={"plan": "free"}),
    )
    segment.batch(track("Signed Up"))
    drafts = [t for t in hub.types.all() if t.draft]
    [draft] = drafts
    assert draft.code_name == "signed_up"
    assert draft.aliases == ["Signed Up"]
    assert draft.name == "Signed Up"
    assert draft.unknown_fields == "accept_and_flag"
    assert draft.enabled
    stored = segment.activities()
    assert [a.type for a in stored] == ["signed_up"] * 3
    assert "pro" in json.dumps(stored[0].flags)
    assert segment.rejected() == []
    # The marketer finds it in the list and approves it.
    listed = segment.client.get("/api/activity-types", headers=admin_headers).json()["data"]
    assert [t["code_name"] for t in listed if t["draft"]] == ["signed_up"]
    approved = segment.client.patch(
        f"/api/activity-types/{draft.id}", json={"draft": False}, headers=admin_headers
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["draft"] is False
    segment.batch(track("Signed Up"))
    assert len(segment.activities()) == 4
    assert not any(t.draft for t in hub.types.all())


def test_draft_types_do_not_clash_with_existing_names(
    make_segment: Callable[..., Segment], make_type: Callable[..., ActivityType], hub: Hub
) -> None:
    make_type(name="Signed Up", code_name="signed_up")
    segment = make_segment(unknown_events="draft")
    segment.batch(track("signed up"), track("Signed-Up"))
    codes = {t.code_name for t in hub.types.all() if t.draft}
    assert len(codes) == 2
    assert "signed_up" not in codes
    assert len(segment.activities()) == 2


def test_the_reject_channel_is_unaffected_by_a_draft_channel(
    make_segment: Callable[..., Segment], hub: Hub
) -> None:
    rejecting = make_segment()
    drafting = make_segment(unknown_events="draft")
    rejecting.batch(track("Trial Started"))
    assert [r.reason for r in rejecting.rejected()] == ["activity_type_not_found"]
    drafting.batch(track("Trial Started"))
    # Now the draft type's alias names the event on every channel.
    rejecting.batch(track("Trial Started"))
    assert [a.type for a in rejecting.activities()] == ["trial_started", "trial_started"]


def test_long_event_names_are_not_a_server_error(
    make_segment: Callable[..., Segment], hub: Hub
) -> None:
    rejecting, drafting = make_segment(), make_segment(unknown_events="draft")
    rejecting.batch(
        track("E" * 300),
        track("E" * 300, timestamp="not a time"),
        {"type": "x" * 300, "userId": "u"},
    )
    assert [len(r.type_code) for r in rejecting.rejected()] == [200] * 3
    drafting.batch(track("D" * 300))
    assert len(drafting.activities()) == 1


@pytest.fixture
def few_drafts(make_settings: Callable[..., Settings]) -> Iterator[Segment]:
    """A channel that makes draft types, on a server that lets two await approval."""
    settings = make_settings(max_draft_types=2)
    hub = Hub(settings, Store(make_engine(settings)))
    try:
        with TestClient(create_app(settings, hub=hub)) as client:
            if hub.shared_changes is not None:
                assert hub.shared_changes.listening.wait(10), "the change listener did not start"
            channel = hub.channels.create(
                ChannelCreate(name="Drafts", kind="headless", unknown_events="draft")
            )
            key = hub.keys.create(KeyCreate(access="tracking", channel=channel.id, name=""))
            yield Segment(client, hub, channel, key.key, key.id)
    finally:
        hub.close()


def test_draft_types_stop_at_their_limit(few_drafts: Segment) -> None:
    """A server's unknown events made draft types without end. At most
    WAYPOST_MAX_DRAFT_TYPES await approval: past it, an unknown event is kept as rejected
    under its contact, saying why, and the drafts made take their events as before."""
    segment, hub = few_drafts, few_drafts.hub
    segment.batch(track("One"), track("Two"), track("Three"), track("One"))
    assert sorted(t.code_name for t in hub.types.all() if t.draft) == ["one", "two"]
    assert [a.type for a in segment.activities()] == ["one", "two", "one"]
    [kept] = segment.rejected()
    assert (kept.reason, kept.status, kept.field, kept.type_code) == (
        "activity_type_not_found",
        404,
        "type",
        "Three",
    )
    assert kept.contact_id == segment.contact_of("user-1")
    assert "WAYPOST_MAX_DRAFT_TYPES (2)" in kept.message
    # A later request finds the limit reached; an approval makes room for the next event.
    segment.batch(track("Four"), track("Two"))
    assert [r.type_code for r in segment.rejected()] == ["Three", "Four"]
    [one] = [t for t in hub.types.all() if t.code_name == "one"]
    hub.types.update(one.id, ActivityTypeUpdate(draft=False))
    segment.batch(track("Five"), track("Six"))
    assert sorted(t.code_name for t in hub.types.all() if t.draft) == ["five", "two"]
    assert [r.type_code for r in segment.rejected()] == ["Three", "Four", "Six"]
    # What was kept is stored once a type has its name.
    hub.types.create(ActivityTypeCreate(name="Third", code_name="third", aliases=["Three"]))
    report = hub.replay.replay_many(ReplayRequest(reason="activity_type_not_found"))
    assert (report.stored, report.still_rejected) == (1, {"activity_type_not_found": 2})
    assert [a.type for a in segment.activities()].count("third") == 1


# -- page and screen ---------------------------------------------------------------------------


def test_page_to_pagevisit(segment: Segment) -> None:
    segment.batch(
        {
            "type": "page",
            "userId": "u",
            "name": "Pricing",
            "properties": {
                "url": "https://example.com/pricing",
                "title": "Pricing | Acme",
                "referrer": "https://www.google.com/",
            },
        },
        {
            "type": "page",
            "userId": "u",
            "context": {
                "page": {
                    "url": "https://example.com/docs",
                    "title": "Docs | Acme",
                    "referrer": "https://example.com/",
                }
            },
        },
    )
    named, from_context = segment.activities()
    assert (named.type, named.url, named.value, named.referrer) == (
        "pagevisit",
        "https://example.com/pricing",
        "Pricing",
        "https://www.google.com/",
    )
    assert (from_context.url, from_context.value, from_context.referrer) == (
        "https://example.com/docs",
        "Docs | Acme",
        "https://example.com/",
    )
    assert from_context.title == "Page visit 'Docs | Acme'"


def test_a_page_without_a_url_is_rejected(segment: Segment) -> None:
    segment.batch({"type": "page", "userId": "u", "name": "Home"})
    [rejected] = segment.rejected()
    assert (rejected.reason, rejected.field, rejected.source) == ("missing_field", "url", "segment")


def test_screen_to_a_screen_type_by_alias(
    segment: Segment, make_type: Callable[..., ActivityType]
) -> None:
    make_type(name="App screen", code_name="app_screen", aliases=["screen"])
    segment.batch({"type": "screen", "userId": "u", "name": "Settings"})
    [stored] = segment.activities()
    assert (stored.type, stored.value, stored.title) == (
        "app_screen",
        "Settings",
        "App screen 'Settings'",
    )


def test_screen_without_a_screen_type_is_a_page_visit_when_it_has_a_url(segment: Segment) -> None:
    segment.batch(
        {"type": "screen", "userId": "u", "name": "Home", "properties": {"url": "https://app.e/"}},
        {"type": "screen", "userId": "u", "name": "Settings"},
    )
    [stored] = segment.activities()
    assert (stored.type, stored.url, stored.value) == ("pagevisit", "https://app.e/", "Home")
    [rejected] = segment.rejected()
    assert (rejected.reason, rejected.field) == ("missing_field", "url")


# -- group -------------------------------------------------------------------------------------


def test_group_traits_in_attributes(segment: Segment) -> None:
    segment.send("/v1/identify", {"userId": "u", "traits": {"plan": "pro"}})
    segment.batch(
        {"type": "group", "userId": "u", "groupId": "acme", "traits": {"name": "Acme"}},
        {"type": "group", "userId": "u", "groupId": 42, "traits": {"industry": "Rockets"}},
        {"type": "group", "userId": "u", "groupId": "acme", "traits": {"name": "Acme Inc."}},
        {
            "type": "group",
            "userId": "u",
            "groupId": "ctx",
            "context": {"traits": {"employees": 5}},
        },
    )
    row = segment.contact(segment.contact_of("u"))
    assert row.attributes == {
        "plan": "pro",
        "groups": {
            "acme": {"name": "Acme Inc."},
            "42": {"industry": "Rockets"},
            "ctx": {"employees": 5},
        },
    }
    assert row.company_name is None


def test_group_without_a_group_id_is_rejected(segment: Segment) -> None:
    segment.batch({"type": "group", "userId": "u", "traits": {"name": "Acme"}})
    [rejected] = segment.rejected()
    assert (rejected.reason, rejected.field) == ("missing_field", "groupId")


# -- messages that cannot be attributed ------------------------------------------------------


def test_messages_without_ids_are_kept_as_rejected(
    segment: Segment, order_type: ActivityType, admin_headers: dict[str, str]
) -> None:
    segment.batch(
        {"type": "track", "event": "Order Completed", "messageId": "m-1"},
        {"type": "identify", "userId": "", "anonymousId": "  ", "traits": {"a": 1}},
        {"type": "bogus", "userId": "user-1"},
        {"userId": "user-1", "event": "No type"},
        track(),
    )
    assert len(segment.activities()) == 1
    listed = segment.client.get("/api/rejected-activities", headers=admin_headers).json()["data"]
    assert len(listed) == 4
    assert {r["source"] for r in listed} == {"segment"}
    assert {r["channel"] for r in listed} == {str(segment.channel.id)}
    by_payload = {json.dumps(r["payload"], sort_keys=True): r for r in listed}
    missing = by_payload[
        json.dumps(
            {"type": "track", "event": "Order Completed", "messageId": "m-1"}, sort_keys=True
        )
    ]
    assert (missing["reason"], missing["field"], missing["status"]) == (
        "missing_field",
        "userId",
        400,
    )
    assert {r["reason"] for r in listed} == {"missing_field", "invalid_field"}
    assert segment.count(contacts) == 1


def test_an_unmapped_message_is_kept_as_its_json_re_encoded(segment: Segment) -> None:
    """Rejected Segment messages hold the message as SQLAlchemy's JSON column encodes it
    (json.dumps of the decoded message), as they always have, under no contact."""
    message = '{"type":"track" ,  "event":"Caf\u00e9 ☕", "properties":{"n":1.50}}'
    segment.send("/v1/batch", ('{"batch": [' + message + "]}").encode())
    with segment.hub.store.read() as conn:
        [row] = conn.execute(
            sa.select(
                sa.cast(rejected_activities.c.payload, sa.Text).label("text"),
                rejected_activities.c.contact_id,
                rejected_activities.c.type_code,
                rejected_activities.c.source,
                rejected_activities.c.status,
                rejected_activities.c.reason,
                rejected_activities.c.field,
            )
        ).all()
    assert row.text == json.dumps(json.loads(message))
    assert (row.contact_id, row.type_code, row.source) == (None, "Café ☕", "segment")
    assert (row.status, row.reason, row.field) == (400, "missing_field", "userId")


def test_the_nul_character_is_rejected_not_a_server_error(
    segment: Segment, order_type: ActivityType
) -> None:
    """PostgreSQL text cannot hold NUL: a message with one anywhere is kept as rejected."""
    segment.batch(
        {"type": "identify", "userId": "u", "traits": {"firstName": "A\u0000"}},
        {"type": "identify", "userId": "a\u0000b"},
        {"type": "track", "userId": "u", "event": "E\u0000", "timestamp": "bad"},
        track("Order Completed", properties={"sku": "\u0000"}),
        {"type": "page", "userId": "u", "name": "P\u0000", "properties": {"url": "https://e.c/"}},
        track(userId="u", properties={"sku": "back\\u0000slash"}),  # an escaped backslash
    )
    rejected = segment.rejected()
    assert [(r.reason, r.source) for r in rejected] == [("invalid_field", "segment")] * 5
    assert "E" in {r.type_code for r in rejected}
    [stored] = segment.activities()
    assert stored.fields == {"sku": "back\\u0000slash"}
    assert segment.contact(segment.contact_of("u")).first_name is None


def test_a_bad_timestamp_rejects_that_message_only(
    segment: Segment, order_type: ActivityType
) -> None:
    segment.batch(track(timestamp="last tuesday"), track())
    assert len(segment.activities()) == 1
    [rejected] = segment.rejected()
    assert (rejected.reason, rejected.field) == ("invalid_field", "timestamp")


# -- time --------------------------------------------------------------------------------------


def test_sent_at_corrects_the_client_clock(segment: Segment, order_type: ActivityType) -> None:
    skew = dt.timedelta(hours=3)  # the client's clock is three hours fast
    now = dt.datetime.now(dt.UTC)
    happened = now + skew - dt.timedelta(minutes=10)
    segment.send(
        "/v1/batch",
        {
            "batch": [track(timestamp=happened.isoformat())],
            "sentAt": (now + skew).isoformat(),
        },
    )
    [stored] = segment.activities()
    expected = stored.received_at - dt.timedelta(minutes=10)
    assert abs(stored.occurred_at - expected) < dt.timedelta(seconds=5)
    assert abs(stored.received_at - now) < dt.timedelta(seconds=30)


def test_a_timestamp_without_sent_at_is_kept(segment: Segment, order_type: ActivityType) -> None:
    segment.batch(track(timestamp="2024-01-02T03:04:05.678+01:00"))
    [stored] = segment.activities()
    assert stored.occurred_at == dt.datetime(2024, 1, 2, 2, 4, 5, 678000, tzinfo=dt.UTC)


def test_original_timestamp_is_used(segment: Segment, order_type: ActivityType) -> None:
    segment.batch(track(originalTimestamp="2024-06-01T00:00:00Z"))
    [stored] = segment.activities()
    assert stored.occurred_at == dt.datetime(2024, 6, 1, tzinfo=dt.UTC)


def test_an_absurd_skew_is_rejected_not_a_server_error(
    segment: Segment, order_type: ActivityType
) -> None:
    segment.batch(track(timestamp="0001-01-01T00:00:00Z", sentAt="9999-12-31T00:00:00Z"), track())
    assert len(segment.activities()) == 1
    assert [r.field for r in segment.rejected()] == ["sentAt"]


# -- storage outages ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["postgresql+psycopg://127.0.0.1:1/waypost", "sqlite:////nonexistent/dir/waypost.db"]
)
def test_an_unreachable_database_is_503(url: str, expect_error: ErrorCheck) -> None:
    settings = Settings(database_url=url)
    with TestClient(create_app(settings)) as client:
        body = json.dumps({"batch": [track()]}).encode()
        answer = client.post("/v1/batch", content=body, headers=basic("wpt_whatever"))
    expect_error(answer, 503, "storage_unavailable")
    assert int(answer.headers["retry-after"]) >= 1


@contextlib.contextmanager
def write_lock(settings: Settings) -> Iterator[None]:
    """Hold the database's write lock from another connection, as a stuck writer would."""
    if settings.is_sqlite:
        conn = sqlite3.connect(
            settings.database_url.removeprefix("sqlite:///"), isolation_level=None
        )
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    url = settings.database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url) as pg:
        pg.execute(
            "LOCK TABLE contacts, contact_external_ids, activities, rejected_activities, "
            "activity_rollups IN EXCLUSIVE MODE"
        )
        yield
        pg.rollback()


@pytest.fixture
def impatient_client(settings: Settings) -> Iterator[TestClient]:
    """A client on a hub whose connections give up on a lock after 0.2 s."""
    if settings.is_sqlite:
        engine = make_engine(settings)

        @event.listens_for(engine, "connect")
        def on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA busy_timeout=200")

    else:
        engine = make_engine(settings, connect_args={"options": "-c lock_timeout=200"})
    hub = Hub(settings, Store(engine))
    with TestClient(create_app(settings, hub=hub)) as client:
        yield client
    hub.close()


def test_a_locked_database_is_503_and_nothing_is_stored(
    segment: Segment,
    order_type: ActivityType,
    settings: Settings,
    impatient_client: TestClient,
    expect_error: ErrorCheck,
) -> None:
    segment.batch(track(userId="known"))
    body = json.dumps(
        {"batch": [track(userId="known", messageId="retry-me"), track(userId="new")]}
    ).encode()
    for payload in (body, json.dumps(track(userId="known")).encode()):
        path = "/v1/batch" if payload is body else "/v1/track"
        with write_lock(settings):
            answer = impatient_client.post(path, content=payload, headers=basic(segment.key))
        expect_error(answer, 503, "storage_unavailable")
        assert int(answer.headers["retry-after"]) >= 1
    assert len(segment.activities()) == 1
    assert segment.count(contacts) == 1
    # The SDK's retry, once the database is back, stores the batch once.
    segment.send("/v1/batch", body)
    segment.send("/v1/batch", body)
    assert len(segment.activities()) == 3


def test_a_hostile_email_trait_is_answered_at_once(segment: Segment) -> None:
    # An email pattern that tried every dot of a long run took seconds on this message, and
    # held every other request while it did. Not an email, the trait is kept as an attribute.
    email = "a@" + "." * 32_000 + "@"
    start = time.perf_counter()
    segment.send("/v1/identify", {"userId": "u", "traits": {"email": email}})
    assert time.perf_counter() - start < 1
    row = segment.contact(segment.contact_of("u"))
    assert (row.email, row.attributes) == (None, {"email": email})


# -- analytics.js from pages: docs/collectors.md ---------------------------------------------

SITE = "https://bank.example"


@pytest.fixture
def page(
    client: TestClient,
    hub: Hub,
    make_channel: Callable[..., Channel],
    make_key: Callable[..., CreatedKey],
) -> Segment:
    """A website channel's publishable key, as analytics.js sends it from the channel's page."""
    channel = make_channel(kind="website", allowed_origins=[SITE])
    made = make_key("publishable", channel.id)
    return Segment(client, hub, channel, made.key, made.id)


def from_page(segment: Segment, origin: str = SITE, key: str | None = None) -> dict[str, str]:
    return {"Origin": origin, **basic(key or segment.key)}


def test_analytics_js_loads_its_settings(page: Segment) -> None:
    answer = page.client.get(
        f"/v1/projects/{page.key}/settings", headers={"Origin": SITE, "Host": "waypost.example"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-origin"] == SITE
    settings = answer.json()
    assert settings["integrations"] == {
        "Segment.io": {
            "apiKey": page.key,
            "apiHost": "waypost.example/v1",
            "protocol": "http",
            "addBundledMetadata": True,
            "unbundledIntegrations": [],
            "maybeBundledConfigIds": {},
        }
    }
    assert settings["metrics"] == {"sampleRate": 0}
    assert settings["remotePlugins"] == []


def test_settings_for_another_origin_or_a_secret_key_are_refused(
    page: Segment, make_key: Callable[..., CreatedKey], expect_error: ErrorCheck
) -> None:
    other = page.client.get(
        f"/v1/projects/{page.key}/settings", headers={"Origin": "https://evil.example"}
    )
    expect_error(other, 403, "forbidden")
    assert "access-control-allow-origin" not in other.headers
    tracking = make_key("tracking", page.channel.id).key
    secret = page.client.get(f"/v1/projects/{tracking}/settings", headers={"Origin": SITE})
    expect_error(secret, 403, "forbidden")
    unknown = page.client.get("/v1/projects/wpp_unknown/settings", headers={"Origin": SITE})
    expect_error(unknown, 401, "unauthorized")


def test_a_preflight_allows_the_write_key_header(page: Segment) -> None:
    answer = page.client.options(
        "/v1/t",
        headers={
            "Origin": SITE,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == SITE
    assert "Authorization" in answer.headers["access-control-allow-headers"]


def test_a_page_sends_with_the_publishable_key_by_the_browser_rules(
    page: Segment, make_type: Callable[..., ActivityType], hub: Hub
) -> None:
    make_type(name="Loan calculated", aliases=["Loan Calculated"], client_side=True)
    make_type(name="Refund issued", aliases=["Refund Issued"])
    hub.catalog.invalidate()
    for name in ("Loan Calculated", "Refund Issued", "Never Defined"):
        body = {"event": name, "anonymousId": "anon-1", "writeKey": page.key}
        answer = page.post("/v1/t", body, headers=from_page(page), content_type="text/plain")
        assert answer.status_code == 200, answer.text
        assert answer.headers["access-control-allow-origin"] == SITE
    assert [a.type for a in page.activities()] == ["loan_calculated"]
    # A page learns nothing of the types it may not log, and makes no draft types.
    assert {(r.reason, r.type_code) for r in page.rejected()} == {
        ("activity_type_not_found", "refund_issued"),
        ("activity_type_not_found", "Never Defined"),
    }


def test_a_page_makes_no_draft_types(
    make_segment: Callable[..., Segment], make_key: Callable[..., CreatedKey]
) -> None:
    drafting = make_segment(kind="website", allowed_origins=[SITE], unknown_events="draft")
    key = make_key("publishable", drafting.channel.id).key
    body = {"event": "Something New", "anonymousId": "a", "writeKey": key}
    answer = drafting.post("/v1/t", body, headers=from_page(drafting, key=key))
    assert answer.status_code == 200, answer.text
    assert drafting.activities() == []
    assert [r.reason for r in drafting.rejected()] == ["activity_type_not_found"]


def test_keys_a_page_may_not_use(
    page: Segment, make_key: Callable[..., CreatedKey], expect_error: ErrorCheck
) -> None:
    body = {"event": "x", "anonymousId": "a"}
    tracking = make_key("tracking", page.channel.id).key
    expect_error(page.post("/v1/t", body, headers=from_page(page, key=tracking)), 403, "forbidden")
    other_origin = from_page(page, origin="https://evil.example")
    expect_error(page.post("/v1/t", body, headers=other_origin), 403, "forbidden")
    # A publishable key from a server (no page) is no page's: refused too.
    expect_error(page.post("/v1/t", body, headers=basic(page.key)), 403, "forbidden")
    assert page.count(contacts) == 0


def test_a_contacts_attributes_stop_growing_at_their_limit(page: Segment) -> None:
    """A page names its visitor as it likes: identify after identify of new traits grew one
    contact's attributes without end (and each took longer, as each rewrites them whole).
    Past 64 KB, the identify is kept as rejected (413) and changes nothing; one that does
    not grow them still applies."""
    headers = from_page(page)
    for n in range(3):
        traits = {f"t{n}-{i}": "v" * 30 for i in range(500)}
        page.send("/v1/i", {"anonymousId": "visitor", "traits": traits}, headers=headers)
    visitor = page.contact_of("visitor", "anonymous_id")
    before = page.contact(visitor).attributes
    assert len(before) == 1500
    grows = {f"more-{i}": "v" * 30 for i in range(500)}
    page.send("/v1/i", {"anonymousId": "visitor", "traits": grows}, headers=headers)
    assert page.contact(visitor).attributes == before
    [kept] = page.rejected()
    assert (kept.reason, kept.status, kept.source) == ("payload_too_large", 413, "segment")
    assert kept.payload["traits"] == grows
    # Fields and traits that do not grow them still apply.
    renamed = {"firstName": "Ann", "t0-0": "w"}
    page.send("/v1/i", {"anonymousId": "visitor", "traits": renamed}, headers=headers)
    row = page.contact(visitor)
    assert (row.first_name, row.attributes["t0-0"]) == ("Ann", "w")


def test_a_message_past_the_addresss_new_contacts_is_kept_as_429(page: Segment) -> None:
    """As the collectors keep theirs (docs/collectors.md): rate_limited, 429 (it was 400)."""
    messages = [{"type": "identify", "anonymousId": f"new-{i}"} for i in range(101)]
    page.send("/v1/b", {"batch": messages}, headers=from_page(page))
    assert page.count(contacts) == 100
    assert [(r.reason, r.status) for r in page.rejected()] == [("rate_limited", 429)]


def test_a_page_cannot_alias_two_identified_users(page: Segment) -> None:
    """analytics.js's alias from a page merged any two users whose ids it named: kept as
    rejected (403) instead; an anonymous visitor's id still joins a user."""
    headers = from_page(page)
    for user in ("ann", "bob"):
        page.send("/v1/i", {"userId": user, "anonymousId": f"{user}-device"}, headers=headers)
    page.send("/v1/a", {"previousId": "ann", "userId": "bob"}, headers=headers)
    assert page.contact_of("ann") != page.contact_of("bob")
    assert page.count(contact_merges) == 0
    assert [(r.reason, r.status) for r in page.rejected()] == [("forbidden", 403)]
    page.send("/v1/t", {"anonymousId": "visitor", "event": "x"}, headers=headers)
    page.send("/v1/a", {"previousId": "visitor", "userId": "bob"}, headers=headers)
    assert page.contact_of("visitor", "anonymous_id") == page.contact_of("bob")


def test_a_page_links_at_most_100_anonymous_ids_to_a_user(page: Segment) -> None:
    """Each message of a page naming a known userId with a new anonymousId linked that id to
    the user's contact, without end: past 100 the message is still the user's, its new id
    not linked."""
    messages = [
        {"type": "identify", "userId": "user-1", "anonymousId": f"a{i}"} for i in range(120)
    ]
    page.send("/v1/b", {"batch": messages}, headers=from_page(page))
    user = page.contact_of("user-1")
    with page.hub.store.read() as conn:
        linked = conn.execute(
            sa.select(sa.func.count()).where(
                contact_external_ids.c.contact_id == user,
                contact_external_ids.c.kind == "anonymous_id",
            )
        ).scalar_one()
    assert linked == 100
    assert page.rejected() == []
    page.send(
        "/v1/t", {"userId": "user-1", "anonymousId": "a119", "event": "x"}, headers=from_page(page)
    )
    assert page.contact_of("user-1") == user
    # An id that was not linked names no one: a visitor of its own.
    page.send("/v1/t", {"anonymousId": "a119", "event": "x"}, headers=from_page(page))
    assert page.contact_of("a119", "anonymous_id") != user


def test_the_id_cap_counts_what_a_merge_in_the_same_request_brought(page: Segment) -> None:
    """A user's count of ids was kept from before an identify merged a visitor into it in the
    same batch: the ids the visitor brought were not counted, and the user passed 100."""
    messages: list[dict[str, object]] = [
        {"type": "identify", "userId": "user-1", "anonymousId": f"a{i}"} for i in range(98)
    ]
    messages += [
        {"type": "track", "anonymousId": "visitor", "event": "x"},
        {"type": "identify", "userId": "user-1", "anonymousId": "visitor"},
        {"type": "identify", "userId": "user-1", "anonymousId": "b0"},
        {"type": "identify", "userId": "user-1", "anonymousId": "b1"},
    ]
    page.send("/v1/b", {"batch": messages}, headers=from_page(page))
    user = page.contact_of("user-1")
    assert page.contact_of("visitor", "anonymous_id") == user
    with page.hub.store.read() as conn:
        linked = conn.execute(
            sa.select(contact_external_ids.c.value).where(
                contact_external_ids.c.contact_id == user,
                contact_external_ids.c.kind == "anonymous_id",
            )
        ).scalars()
        values = set(linked)
    assert len(values) == 100
    assert "b0" in values
    assert "b1" not in values


def test_a_merge_carries_attributes_within_the_limit(segment: Segment) -> None:
    """Merging contacts into one adds the attributes it lacks only while they fit (merges
    grew one contact by another's attributes each): the merged contacts keep theirs."""
    for user in ("a", "b", "target"):
        traits = {f"{user}-{i}": "v" * 40 for i in range(500)}
        segment.send("/v1/identify", {"userId": user, "traits": traits})
    sources = [segment.contact_of(user) for user in ("a", "b")]
    target = segment.contact_of("target")
    for user in ("a", "b"):
        segment.send("/v1/alias", {"previousId": user, "userId": "target"})
    attributes = segment.contact(target).attributes
    assert len(json.dumps(attributes, separators=(",", ":"))) <= 64 * 1024
    assert all(f"target-{i}" in attributes for i in range(500))
    assert all(f"a-{i}" in attributes for i in range(500))
    assert 0 < sum(name.startswith("b-") for name in attributes) < 500
    for source in sources:
        assert segment.contact(source).merged_into == target
        assert len(segment.contact(source).attributes) == 500


def test_an_erased_persons_email_as_a_pages_claim_is_refused_and_stored_nowhere(
    page: Segment, make_type: Callable[..., ActivityType], hub: Hub, expect_error: ErrorCheck
) -> None:
    """A page's str::email would set the email on the visitor's contact (no contact holds it
    once its owner is erased): it names the erased person, as an identify's email trait does,
    and nothing of the message is applied or stored (the email came back before)."""
    make_type(name="Login", aliases=["Logged In"], client_side=True)
    owner = hub.contacts.create_anonymous().contact
    with hub.store.write() as conn:
        conn.execute(
            contacts.update()
            .where(contacts.c.id == owner)
            .values(email="gone@example.com", email_key="gone@example.com")
        )
    hub.erasure.erase(owner, Actor("key", None))
    hub.catalog.invalidate()
    body = {
        "event": "Logged In",
        "anonymousId": "visitor",
        "properties": {"str::email": " Gone@Example.com"},
    }
    expect_error(page.post("/v1/t", body, headers=from_page(page)), 403, "contact_erased")
    assert page.activities() == []
    assert page.rejected() == []
    with hub.store.read() as conn:
        assert conn.execute(sa.select(contacts.c.email)).scalars().all() == []


def test_an_email_key_from_a_page_is_a_claim(
    page: Segment, make_type: Callable[..., ActivityType], hub: Hub
) -> None:
    make_type(name="Login", aliases=["Logged In"], client_side=True)
    hub.catalog.invalidate()
    owner = hub.contacts.create_anonymous().contact
    with hub.store.write() as conn:
        conn.execute(
            contacts.update()
            .where(contacts.c.id == owner)
            .values(email="owner@example.com", email_key="owner@example.com")
        )
    body = {
        "event": "Logged In",
        "anonymousId": "visitor",
        "properties": {"str::email": "owner@example.com"},
    }
    page.send("/v1/t", body, headers=from_page(page))
    [stored] = page.activities()
    visitor = page.contact_of("visitor", "anonymous_id")
    assert stored.contact_id == visitor != owner
    assert page.contact(visitor).attributes["claimed_email"] == "owner@example.com"


def test_a_message_that_cannot_be_mapped_naming_an_erased_email_in_properties_is_dropped(
    segment: Segment, hub: Hub, expect_error: ErrorCheck
) -> None:
    """A page or screen message with Ortto's str::email in its properties, failing its
    mapping (a timestamp that is not one), was kept as rejected with the erased person's
    email in its payload: only a track's properties were read. Any message's are."""
    owner = hub.contacts.create_anonymous().contact
    with hub.store.write() as conn:
        conn.execute(
            contacts.update()
            .where(contacts.c.id == owner)
            .values(email="gone@example.com", email_key="gone@example.com")
        )
    hub.erasure.erase(owner, Actor("key", None))
    hub.catalog.invalidate()
    for kind in ("page", "screen"):
        message = {
            "type": kind,
            "anonymousId": "someone-new",
            "timestamp": "yesterday",
            "properties": {"str::email": "Gone@Example.com"},
        }
        answer = segment.post("/v1/batch", {"batch": [message]})
        expect_error(answer, 403, "contact_erased")
    assert segment.count(rejected_activities) == 0

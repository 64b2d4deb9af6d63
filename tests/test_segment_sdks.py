"""Segment's and RudderStack's own Python SDKs, from PyPI, against a real `waypost serve`.

Nothing is mocked: each SDK sends identify, track, page and screen over HTTP (gzipped) to a
Waypost subprocess, and what arrived is read back from its admin API and its database. The SDKs'
transport is wrapped only to record what they sent, so that the test can check gzip and resend
the very same bytes. Versions verified are listed in docs/segment.md.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import importlib.metadata
import json
import logging
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import rudderstack.analytics
import rudderstack.analytics.request
import segment.analytics
import segment.analytics.request

if TYPE_CHECKING:
    from tests.sdk_support import WaypostServer, running_server
else:
    from sdk_support import WaypostServer, running_server

SDKS = ["segment", "rudderstack"]
# The versions docs/segment.md says were verified.
VERIFIED = {
    "segment": ("segment-analytics-python", "2.4"),
    "rudderstack": ("rudder-sdk-python", "2.1"),
}
# Flush quickly, wait briefly, retry once: a broken server fails the test in seconds.
FAST: dict[str, Any] = {"upload_interval": 0.05, "timeout": 5, "max_retries": 1}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WaypostServer]:
    """One Waypost for the module, with the types the SDKs' events name."""
    with running_server(tmp_path_factory.mktemp("waypost")) as running, running.admin() as admin:
        for body in (
            {
                "name": "Order completed",
                "code_name": "order_completed",
                "aliases": ["Order Completed"],
                "fields": [{"name": "revenue", "type": "decimal"}],
                "unknown_fields": "accept_and_flag",
            },
            {"name": "Screen", "code_name": "screen"},
        ):
            answer = admin.post("/api/activity-types", json=body)
            assert answer.status_code == 201, answer.text
        yield running


@dataclass
class Sent:
    """One request an SDK made, as it made it, and Waypost's answer."""

    url: str
    headers: dict[str, str]
    body: bytes
    status: int

    def messages(self) -> list[dict[str, Any]]:
        raw = gzip.decompress(self.body) if self.gzipped else self.body
        batch: list[dict[str, Any]] = json.loads(raw)["batch"]
        return batch

    @property
    def gzipped(self) -> bool:
        return self.headers.get("Content-Encoding") == "gzip"


@dataclass
class Sdk:
    name: str
    client: Any
    sent: list[Sent]
    errors: list[BaseException]


def transport(name: str) -> ModuleType:
    """The SDK's module that holds its ``requests`` session."""
    module: ModuleType = (
        segment.analytics.request if name == "segment" else rudderstack.analytics.request
    )
    return module


@pytest.fixture(params=SDKS)
def sdk(
    request: pytest.FixtureRequest, server: WaypostServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Sdk]:
    """A client of the SDK, pointed at Waypost with gzip on, its requests recorded."""
    name: str = request.param
    sent: list[Sent] = []
    errors: list[BaseException] = []
    session = transport(name)._session
    real_post = session.post

    def recording_post(url: str, **kwargs: Any) -> Any:
        response = real_post(url, **kwargs)
        body = kwargs["data"]
        sent.append(
            Sent(
                url,
                dict(kwargs["headers"]),
                body if isinstance(body, bytes) else body.encode(),
                response.status_code,
            )
        )
        return response

    monkeypatch.setattr(session, "post", recording_post)

    def on_error(error: BaseException, _batch: object) -> None:
        errors.append(error)

    options: dict[str, Any] = {**FAST, "gzip": True, "on_error": on_error}
    if name == "segment":
        client = segment.analytics.Client(
            server.tracking_key, host=server.url, max_total_backoff_duration=5, **options
        )
    else:
        client = rudderstack.analytics.Client(server.tracking_key, host=server.url, **options)
    yield Sdk(name, client, sent, errors)
    client.shutdown()


def contact_of(server: WaypostServer, kind: str, value: str) -> str:
    """The contact an external id names, straight from the database file (read-only)."""
    with sqlite3.connect(f"file:{server.database}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT contact_id FROM contact_external_ids WHERE kind = ? AND value = ?",
            (kind, value),
        ).fetchall()
    conn.close()
    assert len(rows) == 1, rows
    return str(uuid.UUID(rows[0][0]))


def test_the_installed_sdks_are_the_verified_ones() -> None:
    for distribution, version in VERIFIED.values():
        assert importlib.metadata.version(distribution).startswith(version)


def test_an_sdk_tracks_identifies_pages_and_screens(sdk: Sdk, server: WaypostServer) -> None:
    user, anonymous = f"{sdk.name}-user", f"{sdk.name}-device"
    client = sdk.client
    client.identify(
        user,
        {
            "email": f"ann.{sdk.name}@example.com",
            "firstName": "Ann",
            "lastName": "Cole",
            "phone": "+1 415 555 2671",
            "company": {"name": "Acme"},
            "address": {"city": "Boston", "country": "US", "state": "MA"},
            "plan": "pro",
        },
        anonymous_id=anonymous,
    )
    client.track(user, "Order Completed", {"revenue": "42.50", "coupon": "SPRING"})
    client.track(
        user,
        "Order Completed",
        {"revenue": "7.00"},
        timestamp=dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
    )
    client.page(
        user,
        category="Docs",
        name="Getting started",
        properties={"url": "https://example.com/docs/start", "referrer": "https://example.com/"},
    )
    client.screen(user, name="Settings", properties={"section": "billing"})
    client.flush()

    assert sdk.errors == []
    assert sent_ok(sdk)
    assert all(request.gzipped for request in sdk.sent), [r.headers for r in sdk.sent]
    assert all(request.url == f"{server.url}/v1/batch" for request in sdk.sent)

    contact = contact_of(server, "user_id", user)
    assert contact_of(server, "anonymous_id", anonymous) == contact
    with server.admin() as admin:
        got = admin.get(f"/api/contacts/{contact}").json()
    assert {k: got[k] for k in ("email", "first_name", "last_name", "mobile_phone")} == {
        "email": f"ann.{sdk.name}@example.com",
        "first_name": "Ann",
        "last_name": "Cole",
        "mobile_phone": "+14155552671",
    }
    assert (got["company_name"], got["city"], got["country"], got["state"]) == (
        "Acme",
        "Boston",
        "USA",
        "MA",
    )
    assert got["attributes"] == {"plan": "pro"}
    assert got["external_ids"] == {"user_id": [user], "anonymous_id": [anonymous]}

    stored = server.activities(contact)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for activity in stored:
        by_type.setdefault(activity["type"], []).append(activity)
    assert sorted(by_type) == ["order_completed", "pagevisit", "screen"]
    assert {a["channel"] for a in stored} == {server.channel}  # the write key's channel
    historical, order = by_type["order_completed"]
    assert order["fields"] == {"revenue": "42.50"}
    assert "coupon" in json.dumps(order["flags"])
    assert order["title"] == "Order completed"
    # The SDK's own timestamp, corrected by its sentAt: within seconds of when it says.
    happened = dt.datetime.fromisoformat(historical["occurred_at"])
    assert abs(happened - dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)) < dt.timedelta(
        seconds=30
    )
    assert historical["fields"] == {"revenue": "7.00"}
    [page] = by_type["pagevisit"]
    assert (page["url"], page["referrer"], page["value"]) == (
        "https://example.com/docs/start",
        "https://example.com/",
        "Getting started",
    )
    [screen] = by_type["screen"]
    assert (screen["value"], screen["title"]) == ("Settings", "Screen 'Settings'")
    # Each message's messageId became its activity's client id.
    message_ids = {m["messageId"] for r in sdk.sent for m in r.messages() if m["type"] == "track"}
    assert {a["client_id"] for a in by_type["order_completed"]} == message_ids


def test_a_resent_batch_is_stored_once(sdk: Sdk, server: WaypostServer) -> None:
    """The SDK retries a batch whose answer it did not get: the same bytes, the same
    messageIds. Resending what it sent stores nothing twice."""
    user = f"{sdk.name}-resender"
    sdk.client.identify(user, {"firstName": "Bo"})
    sdk.client.track(user, "Order Completed", {"revenue": "1.00"})
    sdk.client.page(user, name="Home", properties={"url": "https://example.com/"})
    sdk.client.flush()
    assert sdk.errors == []
    assert sent_ok(sdk)
    contact = contact_of(server, "user_id", user)
    before = server.activities(contact)
    assert len(before) == 2
    contacts_before = server.count("SELECT count(*) FROM contacts")
    auth = "Basic " + base64.b64encode(f"{server.tracking_key}:".encode()).decode()
    for request in sdk.sent:
        headers = {**request.headers, "Authorization": auth}
        for _ in range(2):
            answer = httpx.post(request.url, content=request.body, headers=headers, timeout=10)
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"success": True}
    assert server.activities(contact) == before
    assert server.count("SELECT count(*) FROM contacts") == contacts_before


def test_the_same_message_id_through_the_sdk_is_stored_once(
    sdk: Sdk, server: WaypostServer
) -> None:
    user = f"{sdk.name}-twice"
    for _ in range(2):
        sdk.client.track(user, "Order Completed", {"revenue": "2.00"}, message_id=f"{user}-m1")
        sdk.client.flush()
    assert sdk.errors == []
    assert len(sdk.sent) == 2  # two requests, one activity
    [stored] = server.activities(contact_of(server, "user_id", user))
    assert stored["client_id"] == f"{user}-m1"


def test_a_bad_write_key_is_an_error_the_sdk_reports(
    server: WaypostServer, caplog: pytest.LogCaptureFixture
) -> None:
    errors: list[BaseException] = []

    def on_error(error: BaseException, _batch: object) -> None:
        errors.append(error)

    caplog.set_level(logging.CRITICAL)
    clients = [
        segment.analytics.Client("wpt_wrong", host=server.url, on_error=on_error, **FAST),
        rudderstack.analytics.Client("wpt_wrong", host=server.url, on_error=on_error, **FAST),
    ]
    for client in clients:
        client.track("someone", "Order Completed")
        client.flush()
        client.shutdown()
    # Both report the batch as failed; Segment's says why (RudderStack's reads the error body
    # as {"code", "message"} and fails on Waypost's one error shape: see docs/segment.md).
    assert len(errors) == 2
    assert getattr(errors[0], "status", None) == 401
    assert server.count("SELECT count(*) FROM contact_external_ids WHERE value = 'someone'") == 0


def sent_ok(sdk: Sdk) -> bool:
    return bool(sdk.sent) and all(request.status == 200 for request in sdk.sent)

"""/api/webhook-endpoints and /api/webhook-deliveries on both databases."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from starlette.testclient import TestClient

from waypost.app import create_app
from waypost.hub import Hub
from waypost.records.outbox import DELIVERED, FAILED, PENDING
from waypost.settings import Settings
from waypost.store import Store, make_engine

if TYPE_CHECKING:
    from tests.admin_support import UI
    from tests.webhook_support import RECEIVER, T0, add_message, message_row
else:
    from admin_support import UI
    from webhook_support import RECEIVER, T0, add_message, message_row

ErrorCheck = Callable[..., dict[str, str]]
ENDPOINTS = "/api/webhook-endpoints"


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(webhook_allow_private=True)


@pytest.fixture
def strict_client(make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    """A second server on the same database, with the default address rule."""
    strict = make_settings()
    hub = Hub(strict, Store(make_engine(strict)))
    with TestClient(create_app(strict, hub=hub)) as client:
        yield client
    hub.close()


def create(client: TestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    body.setdefault("url", RECEIVER)
    answer = client.post(ENDPOINTS, json=body, headers=headers)
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert isinstance(created, dict)
    return created


def test_create_list_get_change_rotate_delete(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    created = create(client, admin_headers, description="CRM", enabled=True)
    assert uuid.UUID(created["id"])
    assert created["url"] == RECEIVER
    assert (created["description"], created["enabled"], created["disabled_reason"]) == (
        "CRM",
        True,
        None,
    )
    assert created["secret"].startswith("whsec_")
    assert created["created_at"].endswith("Z")
    item = f"{ENDPOINTS}/{created['id']}"
    shown = {k: v for k, v in created.items() if k != "secret"}

    got = client.get(item, headers=admin_headers)
    assert got.status_code == 200
    assert got.json() == shown
    listed = client.get(ENDPOINTS, headers=admin_headers).json()
    assert listed == {"data": [shown], "next": None}

    changed = client.patch(
        item, json={"description": "CRM (EU)", "enabled": False}, headers=admin_headers
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["description"], changed.json()["enabled"]) == ("CRM (EU)", False)

    rotated = client.post(f"{item}/rotate-secret", headers=admin_headers)
    assert rotated.status_code == 200, rotated.text
    assert set(rotated.json()) == {"secret"}
    assert rotated.json()["secret"].startswith("whsec_")
    assert rotated.json()["secret"] != created["secret"]
    after = client.get(item, headers=admin_headers).json()
    assert after["previous_secret_expires_at"] is not None

    # The secret is in no other answer.
    for answer in (got, changed, client.get(ENDPOINTS, headers=admin_headers)):
        assert "whsec_" not in answer.text
        assert 'secret"' not in answer.text.replace("previous_secret_expires_at", "")

    deleted = client.delete(item, headers=admin_headers)
    assert deleted.status_code == 204
    assert client.get(item, headers=admin_headers).status_code == 404


def test_loopback_is_refused_without_the_setting_and_accepted_with_it(
    client: TestClient,
    strict_client: TestClient,
    admin_headers: dict[str, str],
    expect_error: ErrorCheck,
) -> None:
    body = {"url": "http://127.0.0.1:8080/hooks"}
    error = expect_error(
        strict_client.post(ENDPOINTS, json=body, headers=admin_headers), 400, "invalid_field", "url"
    )
    assert "WAYPOST_WEBHOOK_ALLOW_PRIVATE=1" in error["message"]
    created = create(client, admin_headers, **body)
    # A change to a private URL is checked too.
    answer = strict_client.patch(
        f"{ENDPOINTS}/{created['id']}",
        json={"url": "http://10.0.0.7/hooks"},
        headers=admin_headers,
    )
    expect_error(answer, 400, "invalid_field", "url")


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("not a URL", "invalid_field"),
        ("ftp://files.example.com/drop", "invalid_field"),
        ("https://user:password@example.com/hooks", "invalid_field"),
        ("https://example.com/" + "a" * 2000, "invalid_field"),
        ("", "invalid_field"),
        (17, "invalid_field"),
    ],
)
def test_bad_urls_get_the_error_shape(
    client: TestClient, admin_headers: dict[str, str], expect_error: ErrorCheck, url: Any, code: str
) -> None:
    answer = client.post(ENDPOINTS, json={"url": url}, headers=admin_headers)
    expect_error(answer, 400, code, "url")
    assert client.get(ENDPOINTS, headers=admin_headers).json()["data"] == []


def test_bodies_are_strict(
    client: TestClient, admin_headers: dict[str, str], expect_error: ErrorCheck
) -> None:
    expect_error(
        client.post(ENDPOINTS, json={}, headers=admin_headers), 400, "missing_field", "url"
    )
    answer = client.post(ENDPOINTS, json={"url": RECEIVER, "secret": "x"}, headers=admin_headers)
    expect_error(answer, 400, "unknown_field", "secret")
    created = create(client, admin_headers)
    answer = client.patch(
        f"{ENDPOINTS}/{created['id']}", json={"enabled": "no"}, headers=admin_headers
    )
    expect_error(answer, 400, "invalid_field", "enabled")
    answer = client.patch(
        f"{ENDPOINTS}/{created['id']}", json={"description": "x" * 1001}, headers=admin_headers
    )
    expect_error(answer, 400, "invalid_field", "description")


@pytest.mark.parametrize("ident", ["f54a6980-fd21-4ba1-bcfd-0606caadcce5", "not-a-uuid"])
def test_unknown_identifiers_are_404(
    client: TestClient, admin_headers: dict[str, str], expect_error: ErrorCheck, ident: str
) -> None:
    item = f"{ENDPOINTS}/{ident}"
    window = {"since": "2026-01-01T00:00:00Z", "until": "2026-02-01T00:00:00Z"}
    for answer in (
        client.get(item, headers=admin_headers),
        client.patch(item, json={"description": "x"}, headers=admin_headers),
        client.delete(item, headers=admin_headers),
        client.post(f"{item}/rotate-secret", headers=admin_headers),
        client.get(f"{item}/deliveries", headers=admin_headers),
        client.post(f"{item}/replay", json=window, headers=admin_headers),
        client.get(f"/api/webhook-deliveries/{ident}", headers=admin_headers),
        client.post(f"/api/webhook-deliveries/{ident}/retry", headers=admin_headers),
    ):
        expect_error(answer, 404, "not_found")


def test_only_admins_manage_endpoints(
    client: TestClient,
    admin_headers: dict[str, str],
    make_ui: Callable[..., UI],
    expect_error: ErrorCheck,
) -> None:
    created = create(client, admin_headers)
    item = f"{ENDPOINTS}/{created['id']}"
    marketer = make_ui("marketer")
    for method, path in [
        ("GET", ENDPOINTS),
        ("POST", ENDPOINTS),
        ("GET", item),
        ("PATCH", item),
        ("DELETE", item),
        ("POST", f"{item}/rotate-secret"),
        ("GET", f"{item}/deliveries"),
        ("POST", f"{item}/replay"),
        ("GET", f"/api/webhook-deliveries/{uuid.uuid4()}"),
        ("POST", f"/api/webhook-deliveries/{uuid.uuid4()}/retry"),
    ]:
        answer = marketer.api(method, path, json={"url": RECEIVER} if method != "GET" else None)
        expect_error(answer, 403, "forbidden")
    admin = make_ui("admin")
    assert admin.api("GET", item).status_code == 200
    assert admin.api("POST", ENDPOINTS, json={"url": RECEIVER}).status_code == 201


def test_the_delivery_log_retry_and_replay(
    client: TestClient, hub: Hub, admin_headers: dict[str, str], expect_error: ErrorCheck
) -> None:
    created = create(client, admin_headers)
    endpoint_id = uuid.UUID(created["id"])
    item = f"{ENDPOINTS}/{endpoint_id}"
    delivered = add_message(
        hub,
        endpoint_id,
        status=DELIVERED,
        attempts=[{"http_status": 500, "response": "busy"}, {"http_status": 200}],
    )
    failed = add_message(
        hub,
        endpoint_id,
        status=FAILED,
        created_at=T0 + dt.timedelta(minutes=1),
        attempts=[{"http_status": None, "error": "connection refused"}],
    )

    log = client.get(f"{item}/deliveries", headers=admin_headers)
    assert log.status_code == 200, log.text
    first, second = log.json()["data"]
    assert (first["id"], second["id"]) == (str(failed), str(delivered))
    assert second["webhook_id"] == f"msg_{delivered.hex}"
    assert (second["type"], second["status"], second["attempt_count"]) == (
        "activity.performed",
        "delivered",
        2,
    )
    assert [(a["attempt"], a["http_status"], a["response"]) for a in second["attempts"]] == [
        (1, 500, "busy"),
        (2, 200, ""),
    ]
    assert set(second["attempts"][0]) == {
        "attempt",
        "at",
        "http_status",
        "duration_ms",
        "error",
        "response",
    }
    assert "payload" not in second
    assert first["attempts"][0]["error"] == "connection refused"
    only = client.get(f"{item}/deliveries?status=failed", headers=admin_headers).json()
    assert [d["id"] for d in only["data"]] == [str(failed)]
    answer = client.get(f"{item}/deliveries?status=lost", headers=admin_headers)
    expect_error(answer, 400, "invalid_field", "status")
    paged = client.get(f"{item}/deliveries?limit=1", headers=admin_headers).json()
    assert paged["next"] is not None
    rest = client.get(f"{item}/deliveries?limit=1&cursor={paged['next']}", headers=admin_headers)
    assert [d["id"] for d in rest.json()["data"]] == [str(delivered)]

    one = client.get(f"/api/webhook-deliveries/{delivered}", headers=admin_headers).json()
    assert one["payload"] == message_row(hub, delivered).body

    retried = client.post(f"/api/webhook-deliveries/{delivered}/retry", headers=admin_headers)
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == PENDING
    assert message_row(hub, delivered).status == PENDING

    window = {"since": "2026-11-02T09:00:00Z", "until": "2026-11-02T10:00:00Z"}
    replayed = client.post(f"{item}/replay", json=window, headers=admin_headers)
    assert replayed.status_code == 200, replayed.text
    assert replayed.json() == {"count": 1}
    assert message_row(hub, failed).status == PENDING

    answer = client.post(f"{item}/replay", json={"since": window["since"]}, headers=admin_headers)
    expect_error(answer, 400, "missing_field", "until")
    naive = {"since": "2026-11-02T09:00:00", "until": window["until"]}
    answer = client.post(f"{item}/replay", json=naive, headers=admin_headers)
    expect_error(answer, 400, "invalid_field", "since")

    client.patch(item, json={"enabled": False}, headers=admin_headers)
    assert message_row(hub, failed).last_error == "endpoint_disabled"
    answer = client.post(f"/api/webhook-deliveries/{failed}/retry", headers=admin_headers)
    expect_error(answer, 409, "conflict")
    answer = client.post(f"{item}/replay", json=window, headers=admin_headers)
    expect_error(answer, 409, "conflict")


def test_the_document_shows_the_secret_in_two_answers_only(client: TestClient) -> None:
    document = client.get("/api/openapi.json").json()
    schemas = document["components"]["schemas"]
    with_secret = {
        name for name, schema in schemas.items() if "secret" in schema.get("properties", {})
    }
    assert with_secret == {"CreatedWebhookEndpoint", "WebhookSecret"}
    paths = document["paths"]
    assert paths[ENDPOINTS]["post"]["responses"]["201"]["content"]["application/json"][
        "schema"
    ] == {"$ref": "#/components/schemas/CreatedWebhookEndpoint"}
    rotate = paths[ENDPOINTS + "/{endpoint_id}/rotate-secret"]["post"]["responses"]["200"]
    assert rotate["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/WebhookSecret"
    }

"""/api/keys and bearer authentication on both databases."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from waypost.hub import Hub
from waypost.services.channels import Channel
from waypost.services.keys import CreatedKey, KeyQuery, KeyUpdate
from waypost.store.schema import api_keys

ErrorCheck = Callable[..., dict[str, str]]

LISTED = {
    "id",
    "channel",
    "access",
    "name",
    "prefix",
    "last_four",
    "enabled",
    "created_at",
    "disabled_at",
    "last_used_at",
}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def stored_row(hub: Hub, key_id: str) -> dict[str, Any]:
    with hub.store.read() as conn:
        row = conn.execute(sa.select(api_keys).where(api_keys.c.id == uuid.UUID(key_id))).one()
    return dict(row._mapping)


@pytest.mark.parametrize(
    ("access", "kind", "prefix"),
    [("admin", None, "wpa_"), ("tracking", "headless", "wpt_"), ("publishable", "website", "wpp_")],
)
def test_create_shows_the_key_once_and_stores_only_its_hash(
    client: TestClient,
    hub: Hub,
    admin_headers: dict[str, str],
    make_channel: Callable[..., Channel],
    access: str,
    kind: str | None,
    prefix: str,
) -> None:
    channel = str(make_channel(kind=kind).id) if kind else None
    created = client.post(
        "/api/keys",
        json={"access": access, "channel": channel, "name": "Build server"},
        headers=admin_headers,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    secret = body["key"]
    assert secret.startswith(prefix)
    assert len(secret) > 40
    assert body["prefix"] == secret[:8]
    assert body["last_four"] == secret[-4:]
    assert body["access"] == access
    assert body["channel"] == channel
    assert body["name"] == "Build server"
    assert body["enabled"] is True
    assert body["disabled_at"] is None

    row = stored_row(hub, body["id"])
    assert row["key_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert all(secret not in str(value) for value in row.values())

    got = client.get(f"/api/keys/{body['id']}", headers=admin_headers)
    assert got.status_code == 200
    assert set(got.json()) == LISTED
    assert secret not in got.text
    listed = client.get("/api/keys", headers=admin_headers)
    assert secret not in listed.text
    assert all(set(item) == LISTED for item in listed.json()["data"])
    mine = [k for k in listed.json()["data"] if k["id"] == body["id"]]
    assert mine == [{k: v for k, v in body.items() if k != "key"}]


def test_a_new_admin_key_authenticates(client: TestClient, admin_headers: dict[str, str]) -> None:
    secret = client.post("/api/keys", json={"access": "admin"}, headers=admin_headers).json()["key"]
    assert client.get("/api/channels", headers=bearer(secret)).status_code == 200


def test_which_keys_belong_to_which_channels(
    client: TestClient,
    hub: Hub,
    admin_headers: dict[str, str],
    make_channel: Callable[..., Channel],
    expect_error: ErrorCheck,
    subtests: pytest.Subtests,
) -> None:
    headless = str(make_channel(kind="headless").id)
    for access, channel, code in [
        ("admin", headless, "invalid_field"),
        ("tracking", None, "missing_field"),
        ("publishable", None, "missing_field"),
        ("publishable", headless, "invalid_field"),
    ]:
        with subtests.test(access, channel=channel):
            answer = client.post(
                "/api/keys", json={"access": access, "channel": channel}, headers=admin_headers
            )
            expect_error(answer, 400, code, "channel")
    assert len(hub.keys.list_page(KeyQuery()).data) == 1  # only the admin key of the test


def test_a_tracking_key_may_belong_to_a_website_channel(
    client: TestClient, admin_headers: dict[str, str], make_channel: Callable[..., Channel]
) -> None:
    channel = make_channel(kind="website")
    answer = client.post(
        "/api/keys", json={"access": "tracking", "channel": str(channel.id)}, headers=admin_headers
    )
    assert answer.status_code == 201, answer.text


def test_an_unknown_channel_is_refused(
    client: TestClient, admin_headers: dict[str, str], expect_error: ErrorCheck
) -> None:
    answer = client.post(
        "/api/keys",
        json={"access": "tracking", "channel": str(uuid.uuid4())},
        headers=admin_headers,
    )
    expect_error(answer, 400, "invalid_field", "channel")


def test_list_pages_and_filters(
    client: TestClient,
    admin_headers: dict[str, str],
    make_channel: Callable[..., Channel],
    make_key: Callable[..., CreatedKey],
) -> None:
    web = make_channel(kind="website")
    app = make_channel(kind="headless")
    made = [
        make_key("tracking", web.id),
        make_key("publishable", web.id),
        make_key("tracking", app.id),
        make_key("admin"),
    ]
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = client.get("/api/keys", params=params, headers=admin_headers).json()
        seen += [k["id"] for k in body["data"]]
        cursor = body["next"]
        if cursor is None:
            break
    # The fixture's own admin key is listed too.
    assert len(seen) == 5
    assert {str(k.id) for k in made} <= set(seen)

    of_web = client.get("/api/keys", params={"channel": str(web.id)}, headers=admin_headers)
    assert {k["id"] for k in of_web.json()["data"]} == {str(made[0].id), str(made[1].id)}
    tracking = client.get("/api/keys", params={"access": "tracking"}, headers=admin_headers)
    assert {k["id"] for k in tracking.json()["data"]} == {str(made[0].id), str(made[2].id)}
    both = client.get(
        "/api/keys", params={"access": "tracking", "channel": str(app.id)}, headers=admin_headers
    )
    assert [k["id"] for k in both.json()["data"]] == [str(made[2].id)]


def test_disable_and_enable(
    client: TestClient,
    admin_headers: dict[str, str],
    make_key: Callable[..., CreatedKey],
    expect_error: ErrorCheck,
) -> None:
    other = make_key("admin")
    assert client.get("/api/keys", headers=bearer(other.key)).status_code == 200

    disabled = client.post(f"/api/keys/{other.id}/disable", headers=admin_headers)
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["enabled"] is False
    assert disabled.json()["disabled_at"] is not None
    expect_error(client.get("/api/keys", headers=bearer(other.key)), 403, "forbidden")

    enabled = client.post(f"/api/keys/{other.id}/enable", headers=admin_headers)
    assert enabled.json()["enabled"] is True
    assert enabled.json()["disabled_at"] is None
    assert client.get("/api/keys", headers=bearer(other.key)).status_code == 200


def test_patch_renames_and_disables(
    client: TestClient,
    admin_headers: dict[str, str],
    make_key: Callable[..., CreatedKey],
    expect_error: ErrorCheck,
) -> None:
    other = make_key("admin", name="old")
    renamed = client.patch(f"/api/keys/{other.id}", json={"name": "new"}, headers=admin_headers)
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "new"
    assert renamed.json()["enabled"] is True
    off = client.patch(f"/api/keys/{other.id}", json={"enabled": False}, headers=admin_headers)
    assert off.json()["enabled"] is False
    assert off.json()["name"] == "new"
    expect_error(client.get("/api/channels", headers=bearer(other.key)), 403, "forbidden")
    expect_error(
        client.patch(f"/api/keys/{other.id}", json={"key": "wpa_x"}, headers=admin_headers),
        400,
        "unknown_field",
        "key",
    )


def test_delete(
    client: TestClient,
    admin_headers: dict[str, str],
    make_key: Callable[..., CreatedKey],
    expect_error: ErrorCheck,
) -> None:
    other = make_key("admin")
    answer = client.delete(f"/api/keys/{other.id}", headers=admin_headers)
    assert answer.status_code == 204
    expect_error(client.get("/api/keys", headers=bearer(other.key)), 401, "unauthorized")
    expect_error(client.get(f"/api/keys/{other.id}", headers=admin_headers), 404, "not_found")
    expect_error(client.delete(f"/api/keys/{other.id}", headers=admin_headers), 404, "not_found")


def test_unknown_keys_are_404(
    client: TestClient, admin_headers: dict[str, str], expect_error: ErrorCheck
) -> None:
    unknown = f"/api/keys/{uuid.uuid4()}"
    for method, path in [
        ("GET", unknown),
        ("PATCH", unknown),
        ("POST", f"{unknown}/disable"),
        ("POST", f"{unknown}/enable"),
        ("DELETE", unknown),
        ("GET", "/api/keys/wpa_notanid"),
    ]:
        body = {"name": "x"} if method == "PATCH" else None
        expect_error(
            client.request(method, path, json=body, headers=admin_headers), 404, "not_found"
        )


# -- authentication -------------------------------------------------------------------------


def test_no_or_unknown_key_is_401(
    client: TestClient, expect_error: ErrorCheck, subtests: pytest.Subtests
) -> None:
    for authorization in (
        None,
        "",
        "Bearer",
        "Bearer wpa_not-a-key-we-made",
        "Basic d3BhX3g6",
        "Token something",
    ):
        headers = {} if authorization is None else {"Authorization": authorization}
        with subtests.test(authorization=authorization):
            expect_error(client.get("/api/channels", headers=headers), 401, "unauthorized")
            expect_error(
                client.post(
                    "/api/channels", json={"name": "x", "kind": "headless"}, headers=headers
                ),
                401,
                "unauthorized",
            )


def test_the_scheme_is_case_insensitive(
    client: TestClient, make_key: Callable[..., CreatedKey]
) -> None:
    key = make_key("admin").key
    assert client.get("/api/channels", headers={"Authorization": f"bearer {key}"}).status_code == (
        200
    )


def test_a_key_differing_in_one_character_is_unknown(
    client: TestClient, make_key: Callable[..., CreatedKey], expect_error: ErrorCheck
) -> None:
    key = make_key("admin").key
    changed = key[:-1] + ("A" if key[-1] != "A" else "B")
    expect_error(client.get("/api/channels", headers=bearer(changed)), 401, "unauthorized")


@pytest.mark.parametrize(("access", "kind"), [("tracking", "headless"), ("publishable", "website")])
def test_channel_keys_cannot_use_the_admin_api(
    client: TestClient,
    make_channel: Callable[..., Channel],
    make_key: Callable[..., CreatedKey],
    expect_error: ErrorCheck,
    access: str,
    kind: str,
) -> None:
    key = make_key(access, make_channel(kind=kind).id)
    expect_error(client.get("/api/channels", headers=bearer(key.key)), 403, "forbidden")
    expect_error(
        client.post("/api/keys", json={"access": "admin"}, headers=bearer(key.key)),
        403,
        "forbidden",
    )


def test_an_admin_request_with_the_key_table_stale_reloads_it(
    client: TestClient, hub: Hub, admin_headers: dict[str, str], make_key: Callable[..., CreatedKey]
) -> None:
    hub.catalog.invalidate()
    assert client.get("/api/channels", headers=admin_headers).status_code == 200
    snapshot = hub.catalog.fresh()
    assert snapshot is not None  # the next seconds' requests need no thread and no query
    # A key the cached table may not hold yet is still known: the database is asked.
    key = make_key("admin")
    assert client.get("/api/channels", headers=bearer(key.key)).status_code == 200


def test_a_disabled_admin_key_is_403(
    client: TestClient, hub: Hub, make_key: Callable[..., CreatedKey], expect_error: ErrorCheck
) -> None:
    key = make_key("admin")
    hub.keys.update(key.id, KeyUpdate(enabled=False))
    expect_error(client.get("/api/channels", headers=bearer(key.key)), 403, "forbidden")


def test_no_key_appears_in_a_log_line(
    client: TestClient,
    admin_headers: dict[str, str],
    make_channel: Callable[..., Channel],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    channel = make_channel()
    created = client.post(
        "/api/keys", json={"access": "tracking", "channel": str(channel.id)}, headers=admin_headers
    ).json()
    secret = created["key"]
    client.get("/api/channels", headers=bearer(secret))
    client.post(f"/api/keys/{created['id']}/disable", headers=admin_headers)
    client.get("/api/channels", headers=bearer(secret))
    admin_secret = admin_headers["Authorization"].split()[1]
    assert caplog.records, "nothing was logged, so this test would prove nothing"
    assert secret not in caplog.text
    assert admin_secret not in caplog.text


def test_last_used_at_is_noted_on_use_and_written_by_the_flush(
    client: TestClient,
    hub: Hub,
    make_key: Callable[..., CreatedKey],
    make_channel: Callable[..., Channel],
) -> None:
    channel = make_channel(kind="headless")
    tracking = make_key("tracking", channel.id)
    admin = make_key("admin")
    unused = make_key("tracking", channel.id)
    contact = client.post("/tracking/contacts", headers=bearer(tracking.key)).json()["contact"]
    answer = client.post(
        "/tracking/activities",
        headers=bearer(tracking.key),
        json={
            "channel": str(channel.id),
            "contact": contact,
            "activities": [{"type": "click", "value": "cta"}],
        },
    )
    assert answer.status_code == 207, answer.text
    # Noted in memory only: authenticating writes nothing to the database.
    assert stored_row(hub, str(tracking.id))["last_used_at"] is None
    assert hub.keys.usage.flush() == 1
    got = client.get(f"/api/keys/{tracking.id}", headers=bearer(admin.key)).json()
    assert got["last_used_at"] is not None
    assert got["last_used_at"] >= got["created_at"]
    hub.keys.usage.flush()
    listed = {
        item["id"]: item["last_used_at"]
        for item in client.get("/api/keys", headers=bearer(admin.key)).json()["data"]
    }
    assert listed[str(admin.id)] is not None
    assert listed[str(unused.id)] is None
    assert hub.keys.usage.flush() == 1  # only the admin key was used since

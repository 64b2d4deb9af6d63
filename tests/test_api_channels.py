"""/api/channels on both databases."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

from waypost.hub import Hub
from waypost.services.channels import Channel, ChannelService
from waypost.services.keys import CreatedKey
from waypost.store.schema import consents

ErrorCheck = Callable[..., dict[str, str]]


def add_consent(hub: Hub, code_name: str) -> None:
    now = dt.datetime.now(dt.UTC)
    with hub.store.write() as conn:
        conn.execute(
            consents.insert().values(
                id=uuid.uuid4(),
                code_name=code_name,
                display_name=code_name,
                version=1,
                created_at=now,
                updated_at=now,
            )
        )


def test_create_list_get_update(client: TestClient, admin_headers: dict[str, str]) -> None:
    created = client.post(
        "/api/channels",
        json={"name": "Bank site", "kind": "website", "allowed_origins": ["https://Bank.example/"]},
        headers=admin_headers,
    )
    assert created.status_code == 201, created.text
    channel = created.json()
    assert uuid.UUID(channel["id"])
    assert channel["kind"] == "website"
    assert channel["allowed_origins"] == ["https://bank.example"]
    assert channel["default_language"] == "en"
    assert channel["tracking_consent"] is None
    assert channel["enforce_consent"] is False
    listed = client.get("/api/channels", headers=admin_headers).json()
    assert [c["id"] for c in listed["data"]] == [channel["id"]]
    assert listed["next"] is None
    got = client.get(f"/api/channels/{channel['id']}", headers=admin_headers).json()
    assert got == channel
    changed = client.patch(
        f"/api/channels/{channel['id']}", json={"name": "Bank"}, headers=admin_headers
    )
    assert changed.status_code == 200
    assert changed.json()["name"] == "Bank"
    assert changed.json()["updated_at"] >= channel["updated_at"]
    assert client.get(f"/api/channels/{channel['id']}", headers=admin_headers).json()["name"] == (
        "Bank"
    )


def test_create_headless_with_everything(
    client: TestClient, hub: Hub, admin_headers: dict[str, str]
) -> None:
    add_consent(hub, "TrackingConsent")
    created = client.post(
        "/api/channels",
        json={
            "name": "App",
            "kind": "headless",
            "allowed_origins": [],
            "default_language": "cs-CZ",
            "tracking_consent": "TrackingConsent",
            "enforce_consent": True,
        },
        headers=admin_headers,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["default_language"] == "cs-CZ"
    assert body["tracking_consent"] == "TrackingConsent"
    assert body["enforce_consent"] is True
    assert hub.channels.get(uuid.UUID(body["id"])).tracking_consent == "TrackingConsent"


def website_origins(client: TestClient, headers: dict[str, str], origins: list[str]) -> Any:
    """The allowed origins of a website channel created with ``origins``, as stored."""
    body = {"name": "Shop", "kind": "website", "allowed_origins": origins}
    created = client.post("/api/channels", json=body, headers=headers)
    assert created.status_code == 201, created.text
    return created.json()["allowed_origins"]


def test_origins_are_normalised_and_deduplicated(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    origins = ["https://shop.example.com:443", "https://SHOP.example.com/", "http://localhost:3000"]
    assert website_origins(client, admin_headers, origins) == [
        "https://shop.example.com",
        "http://localhost:3000",
    ]


def test_international_hosts_are_stored_as_browsers_send_them(
    client: TestClient, admin_headers: dict[str, str], make_channel: Callable[..., Channel]
) -> None:
    origins = ["http://ä.com", "https://MÜNCHEN.de:443", "http://xn--4ca.com"]
    # Browsers send the IDNA ASCII form in Origin; the written one could never match.
    stored = website_origins(client, admin_headers, origins)
    assert stored == ["http://xn--4ca.com", "https://xn--mnchen-3ya.de"]
    channel = make_channel(kind="website")
    changed = client.patch(
        f"/api/channels/{channel.id}",
        json={"allowed_origins": ["https://ä.com"]},
        headers=admin_headers,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["allowed_origins"] == ["https://xn--4ca.com"]


BAD_ORIGINS: list[tuple[Any, str]] = [
    ([f"https://s{i}.example" for i in range(101)], "allowed_origins"),
    (["https://ok.example", "http://" + "a" * 100_000], "allowed_origins[1]"),
    (["http://" + "a" * 64 + ".example"], "allowed_origins[0]"),
    (["http://" + ".".join(["a" * 50] * 6)], "allowed_origins[0]"),
    (["http://xn--"], "allowed_origins[0]"),
    (["http://xn--zz.example"], "allowed_origins[0]"),
    (["http://ab\u00a0.example".encode().decode("unicode_escape")], "allowed_origins[0]"),
]


def test_origins_beyond_the_limits_are_refused_on_create_and_update(
    client: TestClient,
    admin_headers: dict[str, str],
    make_channel: Callable[..., Channel],
    expect_error: ErrorCheck,
    subtests: pytest.Subtests,
) -> None:
    channel = make_channel(kind="website", allowed_origins=["https://a.example"])
    for origins, field in BAD_ORIGINS:
        with subtests.test(field, first=str(origins[0])[:40], count=len(origins)):
            created = client.post(
                "/api/channels",
                json={"name": "C", "kind": "website", "allowed_origins": origins},
                headers=admin_headers,
            )
            error = expect_error(created, 400, "invalid_field", field)
            assert len(error["message"]) < 400  # a long origin is not echoed whole
            changed = client.patch(
                f"/api/channels/{channel.id}",
                json={"allowed_origins": origins},
                headers=admin_headers,
            )
            expect_error(changed, 400, "invalid_field", field)
    assert [c["id"] for c in client.get("/api/channels", headers=admin_headers).json()["data"]] == [
        str(channel.id)
    ]
    assert client.get(f"/api/channels/{channel.id}", headers=admin_headers).json()[
        "allowed_origins"
    ] == ["https://a.example"]


def test_a_hundred_origins_are_taken(client: TestClient, admin_headers: dict[str, str]) -> None:
    origins = [f"https://s{i}.example" for i in range(100)]
    created = client.post(
        "/api/channels",
        json={"name": "Many", "kind": "website", "allowed_origins": origins + origins[:1]},
        headers=admin_headers,
    )
    assert created.status_code == 400  # 101 entries, even with one repeated
    created = client.post(
        "/api/channels",
        json={"name": "Many", "kind": "website", "allowed_origins": origins},
        headers=admin_headers,
    )
    assert created.status_code == 201, created.text
    assert created.json()["allowed_origins"] == origins


def test_an_unknown_tracking_consent_is_not_echoed_whole(
    client: TestClient, admin_headers: dict[str, str], expect_error: ErrorCheck
) -> None:
    answer = client.post(
        "/api/channels",
        json={"name": "C", "kind": "website", "tracking_consent": "x" * 150},
        headers=admin_headers,
    )
    error = expect_error(answer, 400, "invalid_field", "tracking_consent")
    assert "x" * 101 not in error["message"]
    too_long = {"name": "C", "kind": "website", "tracking_consent": "x" * 100_000}
    answer = client.post("/api/channels", json=too_long, headers=admin_headers)
    error = expect_error(answer, 400, "invalid_field", "tracking_consent")
    assert len(error["message"]) < 200


BAD_CHANNELS: list[tuple[dict[str, Any], str]] = [
    ({"allowed_origins": ["https://ok.example", "*"]}, "allowed_origins[1]"),
    ({"allowed_origins": ["https://ok.example/path"]}, "allowed_origins[0]"),
    ({"default_language": "english"}, "default_language"),
    ({"tracking_consent": "NoSuchConsent"}, "tracking_consent"),
    ({"enforce_consent": True}, "enforce_consent"),
    ({"kind": "app"}, "kind"),
    ({"name": ""}, "name"),
    ({"name": "x" * 201}, "name"),
]


def test_bad_channels_are_refused(
    client: TestClient,
    admin_headers: dict[str, str],
    expect_error: ErrorCheck,
    subtests: pytest.Subtests,
) -> None:
    for body, field in BAD_CHANNELS:
        with subtests.test(field, body=body):
            answer = client.post(
                "/api/channels",
                json={"name": "C", "kind": "website", **body},
                headers=admin_headers,
            )
            expect_error(answer, 400, "invalid_field", field)
    assert client.get("/api/channels", headers=admin_headers).json()["data"] == []


def test_duplicate_name_is_conflict(
    client: TestClient, admin_headers: dict[str, str], expect_error: ErrorCheck
) -> None:
    body = {"name": "Twice", "kind": "headless"}
    assert client.post("/api/channels", json=body, headers=admin_headers).status_code == 201
    again = client.post("/api/channels", json=body, headers=admin_headers)
    expect_error(again, 409, "conflict", "name")


def test_renaming_onto_another_name_is_conflict(
    client: TestClient,
    admin_headers: dict[str, str],
    make_channel: Callable[..., Channel],
    expect_error: ErrorCheck,
) -> None:
    make_channel(name="Taken")
    other = make_channel(name="Other")
    answer = client.patch(
        f"/api/channels/{other.id}", json={"name": "Taken"}, headers=admin_headers
    )
    expect_error(answer, 409, "conflict", "name")
    same = client.patch(f"/api/channels/{other.id}", json={"name": "Other"}, headers=admin_headers)
    assert same.status_code == 200


def test_update_every_field(
    client: TestClient,
    hub: Hub,
    admin_headers: dict[str, str],
    make_channel: Callable[..., Channel],
) -> None:
    add_consent(hub, "Marketing")
    channel = make_channel(kind="website", allowed_origins=["https://a.example"])
    changed = client.patch(
        f"/api/channels/{channel.id}",
        json={
            "allowed_origins": ["https://b.example:8443/"],
            "default_language": "de",
            "tracking_consent": "Marketing",
            "enforce_consent": True,
        },
        headers=admin_headers,
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["name"] == channel.name
    assert body["kind"] == "website"
    assert body["allowed_origins"] == ["https://b.example:8443"]
    assert body["default_language"] == "de"
    assert body["tracking_consent"] == "Marketing"
    assert body["enforce_consent"] is True
    stored = hub.channels.get(channel.id)
    assert stored.allowed_origins == ["https://b.example:8443"]
    assert stored.enforce_consent is True


def test_update_refuses_what_create_refuses(
    client: TestClient,
    hub: Hub,
    admin_headers: dict[str, str],
    make_channel: Callable[..., Channel],
    expect_error: ErrorCheck,
) -> None:
    add_consent(hub, "Marketing")
    channel = make_channel(tracking_consent="Marketing", enforce_consent=True)
    url = f"/api/channels/{channel.id}"
    # Dropping the consent while enforcing it would leave nothing to enforce.
    expect_error(
        client.patch(url, json={"tracking_consent": None}, headers=admin_headers),
        400,
        "invalid_field",
        "enforce_consent",
    )
    expect_error(
        client.patch(url, json={"allowed_origins": ["nope"]}, headers=admin_headers),
        400,
        "invalid_field",
        "allowed_origins[0]",
    )
    expect_error(
        client.patch(url, json={"kind": "website"}, headers=admin_headers),
        400,
        "unknown_field",
        "kind",
    )
    both = client.patch(
        url, json={"tracking_consent": None, "enforce_consent": False}, headers=admin_headers
    )
    assert both.status_code == 200, both.text
    assert both.json()["tracking_consent"] is None


def test_list_pages_with_limit_and_cursor(
    client: TestClient, admin_headers: dict[str, str], make_channel: Callable[..., Channel]
) -> None:
    made = {str(make_channel().id) for _ in range(5)}
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        page = client.get("/api/channels", params=params, headers=admin_headers)
        assert page.status_code == 200, page.text
        body = page.json()
        assert set(body) == {"data", "next"}
        assert len(body["data"]) <= 2
        seen += [c["id"] for c in body["data"]]
        pages += 1
        cursor = body["next"]
        if cursor is None:
            break
    assert pages == 3
    assert len(seen) == 5
    assert set(seen) == made
    everything = client.get("/api/channels", params={"limit": 5}, headers=admin_headers).json()
    assert everything["next"] is None
    assert [c["id"] for c in everything["data"]] == seen


def test_a_cursor_we_did_not_give_out_is_refused(
    client: TestClient, admin_headers: dict[str, str], expect_error: ErrorCheck
) -> None:
    for cursor in ("!!!", "bm90LWEtdXVpZA", "%%"):
        expect_error(
            client.get("/api/channels", params={"cursor": cursor}, headers=admin_headers),
            400,
            "invalid_field",
            "cursor",
        )


def test_get_unknown_and_malformed_ids(
    client: TestClient, admin_headers: dict[str, str], expect_error: ErrorCheck
) -> None:
    expect_error(
        client.get(f"/api/channels/{uuid.uuid4()}", headers=admin_headers), 404, "not_found"
    )
    expect_error(client.get("/api/channels/not-a-uuid", headers=admin_headers), 404, "not_found")
    expect_error(
        client.patch(f"/api/channels/{uuid.uuid4()}", json={"name": "x"}, headers=admin_headers),
        404,
        "not_found",
    )


def test_delete(
    client: TestClient,
    admin_headers: dict[str, str],
    make_channel: Callable[..., Channel],
    expect_error: ErrorCheck,
) -> None:
    channel = make_channel()
    answer = client.delete(f"/api/channels/{channel.id}", headers=admin_headers)
    assert answer.status_code == 204
    assert answer.content == b""
    expect_error(client.get(f"/api/channels/{channel.id}", headers=admin_headers), 404, "not_found")
    expect_error(
        client.delete(f"/api/channels/{channel.id}", headers=admin_headers), 404, "not_found"
    )


def test_a_channel_with_keys_cannot_be_deleted(
    client: TestClient,
    hub: Hub,
    admin_headers: dict[str, str],
    make_channel: Callable[..., Channel],
    make_key: Callable[..., CreatedKey],
    expect_error: ErrorCheck,
) -> None:
    channel = make_channel()
    key = make_key("tracking", channel.id)
    expect_error(
        client.delete(f"/api/channels/{channel.id}", headers=admin_headers), 409, "conflict"
    )
    assert hub.channels.get(channel.id).id == channel.id
    hub.keys.delete(key.id)
    assert client.delete(f"/api/channels/{channel.id}", headers=admin_headers).status_code == 204


def test_a_name_taken_meanwhile_is_still_a_conflict(
    client: TestClient,
    admin_headers: dict[str, str],
    make_channel: Callable[..., Channel],
    monkeypatch: pytest.MonkeyPatch,
    expect_error: ErrorCheck,
) -> None:
    # As if another request took the name between the check and the write.
    monkeypatch.setattr(ChannelService, "_guard_name", lambda *_: None)
    make_channel(name="Raced")
    body = {"name": "Raced", "kind": "headless"}
    expect_error(
        client.post("/api/channels", json=body, headers=admin_headers), 409, "conflict", "name"
    )
    other = make_channel(name="Other")
    expect_error(
        client.patch(f"/api/channels/{other.id}", json={"name": "Raced"}, headers=admin_headers),
        409,
        "conflict",
        "name",
    )


@pytest.mark.parametrize(
    ("kind", "given", "enforced"),
    [
        ("website", {}, True),
        ("website", {"enforce_consent": None}, True),
        ("website", {"enforce_consent": False}, False),
        ("headless", {}, False),
        ("headless", {"enforce_consent": True}, True),
    ],
)
def test_a_website_channel_with_a_tracking_consent_enforces_it_unless_it_opts_out(
    client: TestClient,
    hub: Hub,
    admin_headers: dict[str, str],
    kind: str,
    given: dict[str, Any],
    enforced: bool,
) -> None:
    add_consent(hub, "Tracking")
    body = {"name": "Bank", "kind": kind, "tracking_consent": "Tracking", **given}
    created = client.post("/api/channels", json=body, headers=admin_headers)
    assert created.status_code == 201, created.text
    assert created.json()["enforce_consent"] is enforced


def test_naming_a_tracking_consent_later_turns_enforcing_on_for_a_website_channel(
    client: TestClient, hub: Hub, admin_headers: dict[str, str]
) -> None:
    add_consent(hub, "Tracking")

    def made(kind: str) -> str:
        body = {"name": f"A {kind}", "kind": kind}
        answer = client.post("/api/channels", json=body, headers=admin_headers)
        assert answer.json()["enforce_consent"] is False
        return f"/api/channels/{answer.json()['id']}"

    website, headless = made("website"), made("headless")
    name = {"tracking_consent": "Tracking"}
    assert client.patch(website, json=name, headers=admin_headers).json()["enforce_consent"]
    assert not client.patch(headless, json=name, headers=admin_headers).json()["enforce_consent"]
    # Once it has one, enforcing changes only when asked; opting out in the same change works.
    assert client.patch(website, json={"name": "B"}, headers=admin_headers).json()[
        "enforce_consent"
    ]
    off = {"tracking_consent": None, "enforce_consent": False}
    assert client.patch(website, json=off, headers=admin_headers).status_code == 200
    both = {"tracking_consent": "Tracking", "enforce_consent": False}
    assert (
        client.patch(website, json=both, headers=admin_headers).json()["enforce_consent"] is False
    )

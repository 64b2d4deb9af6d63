"""/api/channels on both databases."""

from __future__ import annotations

from starlette.testclient import TestClient


def test_create_list_get_update(client: TestClient, admin_headers: dict[str, str]) -> None:
    created = client.post(
        "/api/channels",
        json={"name": "Bank site", "kind": "website", "allowed_origins": ["https://Bank.example/"]},
        headers=admin_headers,
    )
    assert created.status_code == 201, created.text
    channel = created.json()
    assert channel["allowed_origins"] == ["https://bank.example"]
    assert channel["default_language"] == "en"
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


def test_duplicate_name_is_conflict(client: TestClient, admin_headers: dict[str, str]) -> None:
    body = {"name": "Twice", "kind": "headless"}
    assert client.post("/api/channels", json=body, headers=admin_headers).status_code == 201
    again = client.post("/api/channels", json=body, headers=admin_headers)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"

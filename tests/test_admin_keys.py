"""The keys pages (admins only): list, create (shown once), disable, enable, delete."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from starlette.testclient import TestClient

from waypost.hub import Hub
from waypost.services.channels import Channel
from waypost.services.keys import CreatedKey, KeyQuery

if TYPE_CHECKING:
    from tests.admin_support import UI, error_of, flash_of
else:
    from admin_support import UI, error_of, flash_of

ADMIN_NO_CHANNEL = "An admin key has no channel: leave Channel empty."
KEY = re.compile(r'<code id="new-key">(wp[atp]_[A-Za-z0-9_-]{43})</code>')


def test_create_a_key_and_see_it_once(
    admin_ui: UI, hub: Hub, client: TestClient, make_channel: Callable[..., Channel]
) -> None:
    channel = make_channel(name="App", kind="headless")
    form = admin_ui.get(f"/admin/keys/new?channel={channel.id}")
    assert f'<option value="{channel.id}" selected>' in form.text
    posted = admin_ui.post(
        "/admin/keys/new", {"access": "tracking", "channel": str(channel.id), "name": "Backend"}
    )
    # Post/Redirect/Get: the secret is on the page redirected to, never in its address.
    assert posted.status_code == 303, error_of(posted)
    target = posted.headers["location"]
    assert re.fullmatch(r"/admin/keys/[0-9a-f-]{36}/created", target)
    answer = admin_ui.get(target)
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    match = KEY.search(answer.text)
    assert match is not None
    secret = match.group(1)
    assert secret not in target
    assert "shown only this once" in answer.text
    # A reload shows it no more, and created nothing.
    again = admin_ui.get(target)
    assert again.status_code == 200
    assert secret not in again.text
    assert "cannot be shown again" in again.text
    assert len(hub.keys.list_page(KeyQuery()).data) == 1
    # The key works, and is never shown again.
    assert hub.keys.authenticate(f"Bearer {secret}").channel_id == channel.id
    listed = admin_ui.get("/admin/keys").text
    assert secret not in listed
    assert f"{secret[:8]}…{secret[-4:]}" in listed
    assert secret not in admin_ui.get(f"/admin/keys?channel={channel.id}").text
    assert secret not in admin_ui.get(f"/admin/channels/{channel.id}").text


def test_an_admin_key_has_no_channel(admin_ui: UI, hub: Hub) -> None:
    answer = admin_ui.post(
        "/admin/keys/new", {"access": "admin", "channel": "", "name": "CI"}, follow=True
    )
    assert answer.status_code == 200
    match = KEY.search(answer.text)
    assert match is not None
    assert hub.keys.authenticate_admin(f"Bearer {match.group(1)}").access == "admin"


@pytest.mark.parametrize(
    ("form", "status", "message"),
    [
        ({"access": "tracking", "channel": ""}, 400, "Choose a channel for a tracking key."),
        ({"access": "publishable", "channel": ""}, 400, "Choose a channel for a publishable key."),
        ({"access": "root", "channel": ""}, 400, "Choose an access type from the list."),
        ({"access": "tracking", "channel": "not-a-uuid"}, 400, "Choose a channel from the list."),
        (
            {"access": "tracking", "channel": "01a2076a-8c3e-7000-8000-000000000000"},
            400,
            "No channel has that identifier.",
        ),
        ({"access": "admin", "channel": "WEBSITE"}, 400, ADMIN_NO_CHANNEL),
        ({"access": "admin", "channel": "not-a-uuid"}, 400, ADMIN_NO_CHANNEL),
        (
            {"access": "publishable", "channel": "HEADLESS"},
            400,
            "Publishable keys are for website channels; use a tracking key.",
        ),
    ],
)
def test_errors_are_shown_at_the_form(
    admin_ui: UI,
    make_channel: Callable[..., Channel],
    form: dict[str, str],
    status: int,
    message: str,
) -> None:
    channels = {
        "WEBSITE": make_channel(kind="website"),
        "HEADLESS": make_channel(kind="headless"),
    }
    if form["channel"] in channels:
        form = {**form, "channel": str(channels[form["channel"]].id)}
    answer = admin_ui.post("/admin/keys/new", {**form, "name": "kept name"})
    assert answer.status_code == status, answer.text
    assert message in error_of(answer)
    assert 'value="kept name"' in answer.text
    assert KEY.search(answer.text) is None
    # The message is at its field too, which is marked invalid.
    field = "access" if form["access"] == "root" else "channel"
    assert f'<p class="field-error" id="{field}-error">{message}</p>' in answer.text
    assert "&#39;" not in error_of(answer)  # no API property names in quotes


def test_the_api_keeps_its_own_words(admin_ui: UI, make_channel: Callable[..., Channel]) -> None:
    """The form's wording is the UI's: the API still names its properties."""
    channel = make_channel(kind="website")
    admin_key = admin_ui.api(
        "POST", "/api/keys", json={"access": "admin", "channel": str(channel.id)}
    )
    assert admin_key.json()["error"] == {
        "code": "invalid_field",
        "message": "Admin keys belong to no channel; leave 'channel' null.",
        "field": "channel",
    }
    tracking_key = admin_ui.api("POST", "/api/keys", json={"access": "tracking"})
    assert tracking_key.json()["error"]["message"] == (
        "A tracking key belongs to a channel; give 'channel'."
    )


def test_disable_enable_and_delete(
    admin_ui: UI, hub: Hub, make_key: Callable[..., CreatedKey], expect_error: Callable[..., object]
) -> None:
    key = make_key("admin", name="Robot")
    answer = admin_ui.post(f"/admin/keys/{key.id}/disable", follow=True)
    assert f"Disabled the key {key.prefix}…{key.last_four}" in flash_of(answer)
    assert not hub.keys.get(key.id).enabled
    assert 'data-confirm="Delete the key' in answer.text
    admin_ui.post(f"/admin/keys/{key.id}/enable")
    assert hub.keys.get(key.id).enabled
    assert admin_ui.post(f"/admin/keys/{key.id}/delete").status_code == 303
    assert admin_ui.post(f"/admin/keys/{key.id}/delete").status_code == 404


def test_the_channel_filter(
    admin_ui: UI, make_channel: Callable[..., Channel], make_key: Callable[..., CreatedKey]
) -> None:
    one, two = make_channel(name="One"), make_channel(name="Two")
    make_key("tracking", one.id, name="key of one")
    make_key("tracking", two.id, name="key of two")
    page = admin_ui.get(f"/admin/keys?channel={one.id}").text
    assert "key of one" in page
    assert "key of two" not in page
    assert "Keys of One" in page
    assert admin_ui.get("/admin/keys?channel=nonsense").status_code == 404


def test_marketers_cannot_see_keys(marketer_ui: UI, make_key: Callable[..., CreatedKey]) -> None:
    key = make_key("admin")
    assert marketer_ui.get("/admin/keys").status_code == 403
    assert marketer_ui.post("/admin/keys/new", {"access": "admin"}).status_code == 403
    assert marketer_ui.post(f"/admin/keys/{key.id}/disable").status_code == 403
    assert marketer_ui.post(f"/admin/keys/{key.id}/delete").status_code == 403


def test_the_list_shows_when_each_key_was_last_used(
    admin_ui: UI, hub: Hub, make_key: Callable[..., CreatedKey]
) -> None:
    used, unused = make_key("admin", name="Used"), make_key("admin", name="Unused")
    hub.keys.authenticate(f"Bearer {used.key}")
    hub.keys.usage.flush()
    page = admin_ui.get("/admin/keys").text
    assert "Last used" in page
    used_row = re.search(rf'<tr id="key-{used.id}">(.*?)</tr>', page, re.S)
    unused_row = re.search(rf'<tr id="key-{unused.id}">(.*?)</tr>', page, re.S)
    assert used_row is not None
    assert unused_row is not None
    assert "never" not in used_row.group(1)
    assert '<span class="muted">never</span>' in unused_row.group(1)


def _selected(page: str, name: str) -> str:
    select = re.search(rf'<select[^>]*name="{name}"[^>]*>(.*?)</select>', page, re.S)
    assert select is not None
    chosen = re.search(r'<option value="([^"]*)" selected>', select.group(1))
    return chosen.group(1) if chosen else ""


@pytest.mark.parametrize("channels", [0, 2])
def test_the_form_as_it_opens_can_be_sent(
    admin_ui: UI, hub: Hub, make_channel: Callable[..., Channel], channels: int
) -> None:
    made = sorted((make_channel(name=f"Site {n}") for n in range(channels)), key=lambda c: c.name)
    form = admin_ui.get("/admin/keys/new").text
    values = {name: _selected(form, name) for name in ("access", "channel")}
    answer = admin_ui.post("/admin/keys/new", {**values, "name": ""}, follow=True)
    assert KEY.search(answer.text) is not None, error_of(answer)
    (key,) = hub.keys.list_page(KeyQuery()).data
    if made:
        assert (key.access, key.channel) == ("tracking", made[0].id)
    else:
        assert (key.access, key.channel) == ("admin", None)


def test_the_secret_is_for_its_own_session_only(admin_ui: UI, make_ui: Callable[..., UI]) -> None:
    posted = admin_ui.post("/admin/keys/new", {"access": "admin", "channel": "", "name": "CI"})
    other = make_ui("admin")
    page = other.get(posted.headers["location"])
    assert page.status_code == 200
    assert KEY.search(page.text) is None
    assert KEY.search(admin_ui.get(posted.headers["location"]).text) is not None

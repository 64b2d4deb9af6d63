"""The channels pages (admins only): list, create, edit, delete."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from waypost.hub import Hub
from waypost.services.channels import Channel
from waypost.services.consents import ConsentCreate
from waypost.services.keys import CreatedKey

if TYPE_CHECKING:
    from tests.admin_support import UI, error_of, flash_of
else:
    from admin_support import UI, error_of, flash_of


def channel_form(**overrides: Any) -> dict[str, Any]:
    form = {
        "name": "Bank site",
        "kind": "website",
        "allowed_origins": "https://Bank.example/\nhttps://www.bank.example, https://bank.example",
        "default_language": "cs-CZ",
        "tracking_consent": "",
        "unknown_events": "reject",
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


def test_create_and_list_a_channel(admin_ui: UI, hub: Hub) -> None:
    hub.consents.create(ConsentCreate(code_name="TrackingConsent", display_name="Tracking"))
    form = channel_form(tracking_consent="TrackingConsent", enforce_consent="1")
    answer = admin_ui.post("/admin/channels/new", form)
    assert answer.status_code == 303, error_of(answer)
    [created] = [c for c in hub.channels.list_page(_all()).data if c.name == "Bank site"]
    assert created.kind == "website"
    assert created.allowed_origins == ["https://bank.example", "https://www.bank.example"]
    assert created.default_language == "cs-CZ"
    assert (created.tracking_consent, created.enforce_consent) == ("TrackingConsent", True)
    assert answer.headers["location"] == f"/admin/channels/{created.id}"
    page = admin_ui.get(answer.headers["location"])
    assert "Create a key for it" in flash_of(page) or "create a key" in flash_of(page)
    assert created.identity_secret in page.text
    listed = admin_ui.get("/admin/channels").text
    assert "Bank site" in listed
    assert "<code>https://www.bank.example</code>" in listed


def _all() -> Any:
    from waypost.pagination import ListQuery

    return ListQuery(limit=1000)


@pytest.mark.parametrize(
    ("overrides", "status", "message"),
    [
        ({"name": ""}, 400, "name"),
        ({"kind": None}, 400, "kind"),
        ({"kind": "satellite"}, 400, "kind"),
        ({"allowed_origins": "ftp://files.example"}, 400, "is not an origin"),
        ({"default_language": "english!"}, 400, "language code"),
        ({"tracking_consent": "Nope"}, 400, "No consent has the code name"),
        ({"enforce_consent": "1"}, 400, "needs a tracking_consent"),
    ],
)
def test_errors_are_shown_at_the_form(
    admin_ui: UI, overrides: dict[str, Any], status: int, message: str
) -> None:
    answer = admin_ui.post("/admin/channels/new", channel_form(**overrides))
    assert answer.status_code == status, answer.text
    assert message in error_of(answer)
    if overrides.get("name") != "":
        assert 'value="Bank site"' in answer.text


def test_a_duplicate_name_is_a_conflict(admin_ui: UI, make_channel: Callable[..., Channel]) -> None:
    make_channel(name="Bank site")
    answer = admin_ui.post("/admin/channels/new", channel_form())
    assert answer.status_code == 409
    assert "exists already" in error_of(answer)


def test_edit_a_channel(admin_ui: UI, hub: Hub, make_channel: Callable[..., Channel]) -> None:
    found = make_channel(name="App", kind="headless")
    page = admin_ui.get(f"/admin/channels/{found.id}")
    assert "fixed once created" in page.text
    form = channel_form(name="Mobile app", kind=None, allowed_origins="", unknown_events="draft")
    answer = admin_ui.post(f"/admin/channels/{found.id}", form)
    assert answer.status_code == 303, error_of(answer)
    changed = hub.channels.get(found.id)
    assert (changed.name, changed.kind, changed.unknown_events) == (
        "Mobile app",
        "headless",
        "draft",
    )
    assert changed.default_language == "cs-CZ"
    bad = admin_ui.post(f"/admin/channels/{found.id}", channel_form(default_language="?"))
    assert bad.status_code == 400
    assert "headless" in bad.text  # the kind is shown as it is, not as sent


def test_delete_a_channel_only_without_keys(
    admin_ui: UI,
    hub: Hub,
    make_channel: Callable[..., Channel],
    make_key: Callable[..., CreatedKey],
) -> None:
    unused, used = make_channel(name="Unused"), make_channel(name="Used")
    make_key("tracking", used.id)
    assert admin_ui.post(f"/admin/channels/{unused.id}/delete").status_code == 303
    refused = admin_ui.post(f"/admin/channels/{used.id}/delete")
    assert refused.status_code == 409
    assert "delete its keys first" in refused.text
    assert {c.name for c in hub.channels.list_page(_all()).data} == {"Used"}


def test_marketers_cannot_touch_channels(
    marketer_ui: UI, hub: Hub, make_channel: Callable[..., Channel]
) -> None:
    found = make_channel(name="App")
    assert marketer_ui.get(f"/admin/channels/{found.id}").status_code == 403
    assert marketer_ui.post(f"/admin/channels/{found.id}", channel_form()).status_code == 403
    assert marketer_ui.post(f"/admin/channels/{found.id}/delete").status_code == 403
    assert hub.channels.get(found.id).name == "App"


@pytest.mark.parametrize(("chosen", "enforced"), [("", True), ("1", True), ("0", False)])
def test_the_form_offers_the_default_of_the_kind_or_a_choice(
    admin_ui: UI, hub: Hub, chosen: str, enforced: bool
) -> None:
    hub.consents.create(ConsentCreate(code_name="TrackingConsent", display_name="Tracking"))
    form = admin_ui.get("/admin/channels/new").text
    assert '<option value="" selected>As the kind says' in form
    answer = admin_ui.post(
        "/admin/channels/new",
        channel_form(tracking_consent="TrackingConsent", enforce_consent=chosen),
    )
    assert answer.status_code == 303, error_of(answer)
    [created] = [c for c in hub.channels.list_page(_all()).data if c.name == "Bank site"]
    assert created.enforce_consent is enforced
    shown = admin_ui.get(f"/admin/channels/{created.id}").text
    assert f'<option value="{"1" if enforced else "0"}" selected>' in shown

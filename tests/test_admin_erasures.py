"""The erasure pages (waypost/admin/pages/erasures.py): erasing from the contact page, which
asks for the email, and the suppressions with lift; admins only. On SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest
from starlette.testclient import TestClient

from waypost.hub import Hub
from waypost.records.contacts import insert_contact

if TYPE_CHECKING:
    from tests.admin_support import UI, error_of, flash_of
    from tests.contact_data_support import World, make_person, make_world, rows_naming
else:
    from admin_support import UI, error_of, flash_of
    from contact_data_support import World, make_person, make_world, rows_naming


@pytest.fixture
def world(client: TestClient, hub: Hub) -> World:
    return make_world(client, hub)


def test_the_contact_page_offers_export_and_erase_to_admins_only(
    world: World, admin_ui: UI, marketer_ui: UI
) -> None:
    person = make_person(world, "ann")
    page = admin_ui.get(f"/admin/contacts/{person.contact}").text
    assert f'href="/api/contacts/{person.contact}/export" download' in page
    assert f'href="/admin/contacts/{person.contact}/erase"' in page
    assert 'href="/admin/suppressions"' in admin_ui.get("/admin/channels").text
    exported = admin_ui.get(f"/api/contacts/{person.contact}/export")
    assert exported.json()["contact"]["id"] == str(person.contact)
    seen = marketer_ui.get(f"/admin/contacts/{person.contact}").text
    assert "/erase" not in seen
    assert f"/api/contacts/{person.contact}/export" not in seen
    assert marketer_ui.get(f"/admin/contacts/{person.contact}/erase").status_code == 403
    assert marketer_ui.post(f"/admin/contacts/{person.contact}/erase", {}).status_code == 403
    assert marketer_ui.get("/admin/suppressions").status_code == 403
    # A merged contact's page offers neither: its data is its survivor's.
    assert "/erase" not in admin_ui.get(f"/admin/contacts/{person.merged[0]}").text


def test_erasing_asks_for_the_email_typed(world: World, hub: Hub, admin_ui: UI) -> None:
    person = make_person(world, "bob")
    url = f"/admin/contacts/{person.contact}/erase"
    form = admin_ui.get(url)
    assert "Type the contact&#39;s email to confirm" in form.text
    wrong = admin_ui.post(url, {"confirmation": "someone@example.com"})
    assert wrong.status_code == 400
    assert "nothing was erased" in error_of(wrong)
    assert list(rows_naming(hub, person))
    done = admin_ui.post(url, {"confirmation": f"  {person.email.upper()} "})
    assert done.status_code == 303, error_of(done)
    assert done.headers["location"] == "/admin/contacts"
    flash = flash_of(admin_ui.get("/admin/contacts"))
    assert flash.startswith("Erased the contact (contacts: 2, activities: 5,")
    assert person.email.lower() not in flash.lower()
    assert list(rows_naming(hub, person)) == []
    assert admin_ui.get(url).status_code == 404
    log = admin_ui.get("/admin/suppressions").text
    assert str(admin_ui.user.id) in log
    assert "6" in log


def test_a_contact_without_an_email_is_confirmed_by_its_id(hub: Hub, admin_ui: UI) -> None:
    with hub.store.write() as conn:
        contact = insert_contact(conn)
    url = f"/admin/contacts/{contact}/erase"
    assert "type its ID to confirm" in admin_ui.get(url).text
    assert admin_ui.post(url, {"confirmation": str(uuid.uuid4())}).status_code == 400
    assert admin_ui.post(url, {"confirmation": str(contact).upper()}).status_code == 303


def test_suppressions_are_found_by_value_and_lifted(world: World, admin_ui: UI) -> None:
    person = make_person(world, "cyd")
    admin_ui.api("POST", f"/api/contacts/{person.contact}/erase")
    listed = admin_ui.get("/admin/suppressions").text
    assert listed.count("/lift") == 6
    found = admin_ui.get("/admin/suppressions", params={"value": person.user_id}).text
    assert found.count("/lift") == 1
    assert "<code>user_id</code>" in found
    assert person.user_id not in found.replace(f'value="{person.user_id}"', "")
    [lift] = [part.split('"')[0] for part in found.split('action="')[1:] if "/lift" in part]
    assert admin_ui.post(lift, {}).status_code == 303
    assert world.segment("track", {"userId": person.user_id, "event": "loan_calc"}) == 200
    assert admin_ui.get("/admin/suppressions").text.count("/lift") == 5
    nothing = admin_ui.get("/admin/suppressions", params={"value": "nobody@example.com"}).text
    assert "Nothing suppressed is that value." in nothing

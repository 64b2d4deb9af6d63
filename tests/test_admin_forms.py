"""Pure parts of the admin UI: form parsing, the role table, where a login may lead, templates,
the navigation."""

from __future__ import annotations

import pytest

from waypost.access.roles import TAG_AREAS, can
from waypost.admin.forms import Form, parse_form
from waypost.admin.pages import MODULES, home, nav_items, views
from waypost.admin.pages.login import safe_next
from waypost.admin.rendering import Renderer, error_for
from waypost.admin.views import Navigation, NavLink, navigation
from waypost.app import admin_operations
from waypost.errors import ApiError, invalid


def test_forms_keep_order_rows_and_first_values() -> None:
    form = parse_form(
        b"name=+Loan+&fields-10-name=b&fields-2-name=a&fields-2-type=text&x=1&x=2&box=on&off=0",
        "application/x-www-form-urlencoded; charset=utf-8",
    )
    assert form.get("name") == "Loan"
    assert form.raw("name") == " Loan "
    assert form.getlist("x") == ["1", "2"]
    assert form.rows("fields") == [{"name": "a", "type": "text"}, {"name": "b"}]
    assert form.checked("box")
    assert not form.checked("off")
    assert not form.checked("missing")
    assert "x" in form
    assert parse_form(b"", "").pairs == []


def test_numbers_in_forms() -> None:
    form = Form([("a", "12"), ("b", ""), ("c", "twelve")])
    assert form.optional_int("a", "A") == 12
    assert form.optional_int("b", "B") is None
    with pytest.raises(ApiError) as raised:
        form.optional_int("c", "C")
    assert (raised.value.status, raised.value.field) == (400, "c")


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b'{"a": 1}', "application/json", 415),
        (b"a=1", "multipart/form-data; boundary=x", 415),
        (b"&".join(b"f%d=1" % i for i in range(3000)), "application/x-www-form-urlencoded", 400),
        (b"name=a%00b", "application/x-www-form-urlencoded", 400),
    ],
)
def test_bad_form_bodies(body: bytes, content_type: str, status: int) -> None:
    with pytest.raises(ApiError) as raised:
        parse_form(body, content_type)
    assert raised.value.status == status


def test_roles() -> None:
    assert all(can("admin", area, True) for area in ("channels", "keys", "users", None))
    assert can("marketer", "types", True)
    assert can("marketer", "consents")
    assert not can("marketer", "consents", True)
    for area in ("channels", "keys", "users", None, "something new"):
        assert not can("marketer", area)
    # Every tag of the admin API belongs to an area, so marketers get what their role allows.
    assert {op.tag for op in admin_operations()} <= set(TAG_AREAS)


@pytest.mark.parametrize(
    ("target", "safe"),
    [
        ("/admin/types?x=1", "/admin/types?x=1"),
        ("/admin", "/admin"),
        ("//evil.example", "/admin"),
        ("/admin\\\\evil", "/admin"),
        ("https://evil.example/admin", "/admin"),
        ("/administrator", "/admin"),
        ("/api/keys", "/admin"),
    ],
)
def test_where_a_login_may_lead(target: str, safe: str) -> None:
    assert safe_next(target) == safe


def test_error_for_matches_a_field_and_its_parts() -> None:
    error = invalid("Bad.", "fields[2].name")
    assert error_for(error, "fields") == "Bad."
    assert error_for(error, "field") == ""
    assert error_for(None, "fields") == ""
    assert error_for(invalid("No field."), "name") == ""


def test_every_template_compiles_and_static_files_have_versions() -> None:
    renderer = Renderer()
    for name in renderer.env.list_templates():
        renderer.env.get_template(name)
    url = renderer.static_url("admin.css")
    assert url.startswith("/admin/static/admin.css?v=")
    assert renderer.static_url("admin.css") == url


def test_the_page_registry() -> None:
    # Paths are unique, but for home's: a dashboard registered before it takes /admin.
    paths = [view.path for view in views() if view.handler is not home.home]
    assert len(paths) == len(set(paths))
    assert MODULES[-1] is home
    orders = [item.order for item in nav_items()]
    assert orders == sorted(orders)
    labels = [item.label for item in nav_items()]
    mine = ["Activity types", "Channels", "Keys", "Consents", "Users"]
    assert [label for label in labels if label in mine] == mine
    assert all(hasattr(module, "VIEWS") and hasattr(module, "NAV") for module in MODULES)


def test_the_settings_pages_share_one_entry_of_the_navigation() -> None:
    items = nav_items()
    admin = navigation(items, "admin", "/admin/users/new")
    labels = [link.label for link in admin.main]
    assert labels == [
        "Dashboard", "Activity types", "Contacts", "Activities", "Rejected activities",
        "Contact groups", "Reports", "Playbooks", "Settings",
    ]  # fmt: skip
    assert admin.main[-1] == NavLink("Settings", "/admin/channels", "true")
    assert [(link.label, link.current) for link in admin.settings] == [
        ("Channels", ""), ("Keys", ""), ("Webhooks", ""), ("Consents", ""), ("Users", "page"),
        ("Erasures", ""),
    ]  # fmt: skip
    elsewhere = navigation(items, "admin", "/admin")
    assert elsewhere.settings == []
    assert [link.label for link in elsewhere.main if link.current] == ["Dashboard"]
    assert elsewhere.main[-1].current == ""
    # A marketer reads one settings page: it is an entry of its own, without a row.
    marketer = navigation(items, "marketer", "/admin/consents")
    assert marketer.main[-1] == NavLink("Consents", "/admin/consents", "page")
    assert marketer.settings == []
    assert navigation(items, None, "/admin/login") == Navigation([], [])

"""Users (admins only): the list, creating a user, disabling and enabling one."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.responses import Response

from waypost.admin.views import NavItem, Page, View
from waypost.errors import ApiError, from_validation_error, invalid
from waypost.services.users import ROLES, UserCreate

NAV = NavItem("Users", "/admin/users", "users", 100, "settings")

ROLE_OPTIONS = (
    ("marketer", "Marketer: types, contacts, activities, groups, reports"),
    ("admin", "Admin: everything, including channels, keys and users"),
)


def list_users(page: Page) -> Response:
    return page.render("users/list.html", users=page.hub.users.list())


def _form(page: Page, values: dict[str, Any], **extra: Any) -> Response:
    return page.render(
        "users/form.html",
        extra.pop("status", 200),
        values=values,
        roles=ROLE_OPTIONS,
        error=extra.pop("error", None),
    )


def new_user(page: Page) -> Response:
    form = page.form
    if page.request.method == "GET":
        return _form(page, {"email": "", "role": "marketer"})
    values = {"email": form.get("email"), "role": form.get("role")}
    try:
        if form.raw("password") != form.raw("password_again"):
            raise invalid("The two passwords differ; type the same one twice.", "password")
        try:
            body = msgspec.convert({**values, "password": form.raw("password")}, UserCreate)
        except msgspec.ValidationError as exc:
            raise from_validation_error(exc, UserCreate) from None
        created = page.hub.users.create(body)
    except ApiError as exc:
        return _form(page, values, error=exc, status=exc.status)
    return page.redirect("/admin/users", f"Created the {created.role} {created.email}.")


def _set_disabled(page: Page, disabled: bool) -> Response:
    user_id = page.uuid_param("user_id", "user")
    if disabled and user_id == page.session.user.id:
        raise ApiError(409, "conflict", "You cannot disable yourself; ask another admin.")
    changed = page.hub.users.set_disabled(user_id, disabled)
    what = "Disabled" if disabled else "Enabled"
    return page.redirect("/admin/users", f"{what} {changed.email}.")


def disable_user(page: Page) -> Response:
    return _set_disabled(page, True)


def enable_user(page: Page) -> Response:
    return _set_disabled(page, False)


assert set(ROLES) == {value for value, _ in ROLE_OPTIONS}

ITEM = "/admin/users/{user_id}"
VIEWS = [
    View("/admin/users", list_users, "users"),
    View("/admin/users/new", new_user, "users", ("GET", "POST"), write=True),
    View(ITEM + "/disable", disable_user, "users", ("POST",)),
    View(ITEM + "/enable", enable_user, "users", ("POST",)),
]

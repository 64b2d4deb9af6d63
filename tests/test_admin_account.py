"""The logged-in user's own account page: changing the password."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from starlette.testclient import TestClient

from waypost.hub import Hub
from waypost.services.users import User
from waypost.store.schema import users

if TYPE_CHECKING:
    from tests.admin_support import PASSWORD, UI, csrf_of, error_of, flash_of, log_in
else:
    from admin_support import PASSWORD, UI, csrf_of, error_of, flash_of, log_in

NEW = "a brand new passphrase"


def second_session(client: TestClient, user: User) -> TestClient:
    other = TestClient(client.app)
    assert log_in(other, user.email).status_code == 303
    return other


@pytest.mark.parametrize("role", ["admin", "marketer"])
def test_change_your_own_password(
    make_ui: Callable[..., UI], client: TestClient, hub: Hub, role: str
) -> None:
    ui = make_ui(role)
    other = second_session(client, ui.user)
    page = ui.get("/admin/password")
    assert page.status_code == 200
    assert 'action="/admin/password"' in page.text
    assert 'href="/admin/password"' in ui.get("/admin").text  # linked from every page
    answer = ui.post(
        "/admin/password",
        {"current_password": PASSWORD, "new_password": NEW, "new_password_again": NEW},
    )
    assert answer.status_code == 303
    assert "Changed your password" in flash_of(ui.get(answer.headers["location"]))
    # This session goes on; the other one has ended.
    assert ui.get("/admin/password").status_code == 200
    assert other.get("/admin/password", follow_redirects=False).status_code == 303
    # The new password opens a session, the old one no longer does; the hash is Argon2.
    assert hub.users.authenticate(ui.user.email, PASSWORD) is None
    assert hub.users.authenticate(ui.user.email, NEW) is not None
    stored = hub.users.get(ui.user.id)
    assert stored.email == ui.user.email
    assert log_in(TestClient(client.app), ui.user.email, NEW).status_code == 303


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        (
            {"current_password": "not it at all", "new_password": NEW, "new_password_again": NEW},
            "current_password",
            "That is not your current password; type it again.",
        ),
        (
            {"current_password": PASSWORD, "new_password": NEW, "new_password_again": NEW + "!"},
            "new_password",
            "The two new passwords differ; type the same one twice.",
        ),
        (
            {"current_password": PASSWORD, "new_password": "short", "new_password_again": "short"},
            "new_password",
            "A password has at least 10 characters.",
        ),
    ],
)
def test_mistakes_are_shown_at_the_form(
    admin_ui: UI, client: TestClient, hub: Hub, form: dict[str, str], field: str, message: str
) -> None:
    other = second_session(client, admin_ui.user)
    answer = admin_ui.post("/admin/password", form)
    assert answer.status_code == 400
    assert message in error_of(answer)
    assert f'<p class="field-error" id="{field}-error">{message}</p>' in answer.text
    assert hub.users.authenticate(admin_ui.user.email, PASSWORD) is not None
    assert other.get("/admin/password", follow_redirects=False).status_code == 200


def test_the_form_needs_its_csrf_token(admin_ui: UI, hub: Hub) -> None:
    fields = {"current_password": PASSWORD, "new_password": NEW, "new_password_again": NEW}
    assert admin_ui.post("/admin/password", fields, csrf="").status_code == 403
    assert admin_ui.post("/admin/password", fields, csrf="wrong").status_code == 403
    assert hub.users.authenticate(admin_ui.user.email, PASSWORD) is not None
    assert csrf_of(admin_ui.get("/admin/password").text) == admin_ui.csrf


def test_the_stored_hash_is_argon2(admin_ui: UI, hub: Hub) -> None:
    admin_ui.post(
        "/admin/password",
        {"current_password": PASSWORD, "new_password": NEW, "new_password_again": NEW},
    )
    with hub.store.read() as conn:
        stored = conn.execute(
            sa.select(users.c.password_hash).where(users.c.id == admin_ui.user.id)
        ).scalar_one()
    assert stored.startswith("$argon2id$")
    assert PasswordHasher().verify(stored, NEW)

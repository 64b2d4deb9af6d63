"""Users and sessions (the services), the users pages, ``waypost users`` and the first admin."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from click.testing import CliRunner

from waypost import servers
from waypost.bootstrap import FIRST_ADMIN, bootstrap_admin
from waypost.cli import main
from waypost.errors import ApiError
from waypost.hub import Hub
from waypost.services.users import User
from waypost.settings import load_settings
from waypost.store.schema import user_sessions, users

if TYPE_CHECKING:
    from tests.admin_support import FAST_HASHER, PASSWORD, UI, error_of, flash_of
else:
    from admin_support import FAST_HASHER, PASSWORD, UI, error_of, flash_of

MakeUser = Callable[..., User]


# -- the services ----------------------------------------------------------------------------


def test_emails_are_logins_whatever_their_case(hub: Hub, make_user: MakeUser) -> None:
    user = make_user("marketer", email="  Jane.Doe@Example.COM ")
    assert user.email == "jane.doe@example.com"
    assert hub.users.authenticate("JANE.DOE@example.com", PASSWORD) is not None
    with pytest.raises(ApiError) as raised:
        make_user("admin", email="jane.doe@EXAMPLE.com")
    assert (raised.value.status, raised.value.field) == (409, "email")


@pytest.mark.parametrize(
    ("email", "password", "field"),
    [
        ("no-at-sign", PASSWORD, "email"),
        ("a b@c.d", PASSWORD, "email"),
        ("a@b.c", "short", "password"),
    ],
)
def test_bad_users_are_400(make_user: MakeUser, email: str, password: str, field: str) -> None:
    with pytest.raises(ApiError) as raised:
        make_user("admin", email=email, password=password)
    assert (raised.value.status, raised.value.field) == (400, field)


def test_passwords_are_argon2_hashes(hub: Hub, make_user: MakeUser) -> None:
    user = make_user()
    with hub.store.read() as conn:
        stored = conn.execute(sa.select(users.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    assert hub.users.authenticate(user.email, "wrong password") is None
    # A hash made with weaker parameters is upgraded at the next login.
    hub.users.hasher = PasswordHasher()
    logged = hub.users.authenticate(user.email, PASSWORD)
    assert logged is not None
    assert logged.last_login_at is not None
    with hub.store.read() as conn:
        upgraded = conn.execute(sa.select(users.c.password_hash)).scalar_one()
    assert upgraded != stored
    assert "m=65536" in upgraded


def test_a_new_password_or_disabling_ends_the_sessions(hub: Hub, make_user: MakeUser) -> None:
    user = make_user()
    token, _ = hub.sessions.start(user)
    assert hub.sessions.lookup(token) is not None
    hub.users.set_password(user.id, "another long password")
    assert hub.sessions.lookup(token) is None
    assert hub.users.authenticate(user.email, "another long password") is not None
    token, _ = hub.sessions.start(user)
    hub.users.set_disabled(user.id, True)
    assert hub.sessions.lookup(token) is None
    assert hub.users.authenticate(user.email, "another long password") is None


def test_sessions(hub: Hub, make_user: MakeUser) -> None:
    user = make_user()
    token, session = hub.sessions.start(user)
    assert hub.sessions.lookup(None) is None
    assert hub.sessions.lookup("x" * 500) is None
    assert hub.sessions.lookup(token + "x") is None
    found = hub.sessions.lookup(token)
    assert found is not None
    assert (found.user.email, found.csrf_token) == (user.email, session.csrf_token)
    assert found.csrf_token != token
    # Expired sessions do not count, and the next login sweeps them away.
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    with hub.store.write() as conn:
        conn.execute(user_sessions.update().values(expires_at=past))
    assert hub.sessions.lookup(token) is None
    hub.sessions.start(user)
    with hub.store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(user_sessions)).scalar() == 1
    assert hub.sessions.end_all(user.id) == 1


def test_the_first_admin(hub: Hub) -> None:
    hub.users.hasher = FAST_HASHER
    first = bootstrap_admin(hub)
    assert first is not None
    assert first.email == FIRST_ADMIN
    assert len(first.password) >= 16
    assert hub.users.authenticate(FIRST_ADMIN, first.password) is not None
    assert bootstrap_admin(hub) is None
    assert "http://127.0.0.1:8000/admin" in first.describe("http://127.0.0.1:8000")[0]


# -- the pages -------------------------------------------------------------------------------


def test_create_disable_and_enable_a_user(admin_ui: UI, hub: Hub) -> None:
    hub.users.hasher = FAST_HASHER
    form = {
        "email": "New@Example.com",
        "role": "marketer",
        "password": "a long password",
        "password_again": "a long password",
    }
    answer = admin_ui.post("/admin/users/new", form, follow=True)
    assert "Created the marketer new@example.com" in flash_of(answer)
    created = hub.users.get_by_email("new@example.com")
    assert created.role == "marketer"
    answer = admin_ui.post(f"/admin/users/{created.id}/disable", follow=True)
    assert "Disabled new@example.com" in flash_of(answer)
    assert hub.users.get(created.id).disabled
    admin_ui.post(f"/admin/users/{created.id}/enable")
    assert not hub.users.get(created.id).disabled
    refused = admin_ui.post(f"/admin/users/{admin_ui.user.id}/disable")
    assert refused.status_code == 409
    assert "cannot disable yourself" in refused.text


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"password_again": "something else"}, "differ"),
        ({"password": "short", "password_again": "short"}, "at least 10"),
        ({"email": "nope"}, "'nope' is not an email address; give one such as jane@example.com."),
        ({"role": "owner"}, "role: 'owner' is not allowed; use one of admin, marketer."),
    ],
)
def test_user_form_errors(admin_ui: UI, changes: dict[str, str], message: str) -> None:
    form = {
        "email": "new@example.com",
        "role": "marketer",
        "password": "a long password",
        "password_again": "a long password",
        **changes,
    }
    answer = admin_ui.post("/admin/users/new", form)
    assert answer.status_code == 400
    assert message in error_of(answer)
    assert "a long password" not in answer.text  # passwords are never sent back


def test_the_users_list(admin_ui: UI, make_user: MakeUser) -> None:
    make_user("marketer", email="m@example.com")
    page = admin_ui.get("/admin/users").text
    assert "m@example.com" in page
    assert re.search(rf"{re.escape(admin_ui.user.email)} <span class=\"badge\">you</span>", page)


# -- waypost users ---------------------------------------------------------------------------


@pytest.fixture
def cli_db(tmp_path: Path, sqlite_template: Path) -> str:
    shutil.copy(sqlite_template, tmp_path / "cli.db")
    return f"sqlite:///{tmp_path / 'cli.db'}"


def test_users_commands(cli_db: str) -> None:
    runner = CliRunner(env={"WAYPOST_DATABASE_URL": cli_db})
    created = runner.invoke(
        main, ["users", "create", "--email", "Ann@Example.com", "--role", "marketer"],
        input="a long password\na long password\n",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    assert "Created marketer ann@example.com" in created.output
    assert "a long password" not in created.output
    again = runner.invoke(
        main, ["users", "create", "--email", "ann@example.com", "--role", "admin",
               "--password", "a long password"],
    )  # fmt: skip
    assert again.exit_code == 1
    assert "exists already" in again.output
    short = runner.invoke(
        main, ["users", "create", "--email", "b@example.com", "--role", "admin", "--password", "x"]
    )
    assert short.exit_code == 1
    assert "at least 10 characters" in short.output
    bad_role = runner.invoke(main, ["users", "create", "--email", "c@example.com", "--role", "x"])
    assert bad_role.exit_code == 2
    listed = runner.invoke(main, ["users", "list"])
    assert re.search(r"ann@example.com\s+marketer\s+no\s+", listed.output), listed.output
    for args, out in [
        (["disable", "--email", "ann@example.com"], "Disabled ann@example.com."),
        (["enable", "--email", "ANN@example.com"], "Enabled ann@example.com."),
        (["password", "--email", "ann@example.com", "--password", "another password"],
         "Set a new password for ann@example.com."),
    ]:  # fmt: skip
        result = runner.invoke(main, ["users", *args])
        assert result.exit_code == 0, result.output
        assert out in result.output
    missing = runner.invoke(main, ["users", "disable", "--email", "nobody@example.com"])
    assert missing.exit_code == 1
    hub = Hub(load_settings({"WAYPOST_DATABASE_URL": cli_db}))
    try:
        assert hub.users.authenticate("ann@example.com", "another password") is not None
    finally:
        hub.close()
    for command in ("users", "users create", "users list"):
        helped = runner.invoke(main, [*command.split(), "--help"])
        assert helped.exit_code == 0
        assert "Usage:" in helped.output


def test_users_create_needs_the_role_and_email(cli_db: str) -> None:
    runner = CliRunner(env={"WAYPOST_DATABASE_URL": cli_db})
    assert runner.invoke(main, ["users", "create", "--role", "admin"]).exit_code == 2
    assert runner.invoke(main, ["users", "create", "--email", "a@b.c"]).exit_code == 2


def test_serve_prints_the_first_admin_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(servers, "serve_together", lambda configs, **kwargs: None)
    url = f"sqlite:///{tmp_path / 'new.db'}"
    runner = CliRunner(env={"WAYPOST_DATABASE_URL": url})
    first = runner.invoke(main, ["serve", "--port", "8123"])
    assert first.exit_code == 0, first.output
    assert "Admin UI:   http://127.0.0.1:8123/admin" in first.output
    assert f"Login:     {FIRST_ADMIN}" in first.output
    match = re.search(r"Password:  (\S+)", first.output)
    assert match is not None
    hub = Hub(load_settings({"WAYPOST_DATABASE_URL": url}))
    try:
        assert hub.users.authenticate(FIRST_ADMIN, match.group(1)) is not None
    finally:
        hub.close()
    second = runner.invoke(main, ["serve", "--port", "8123"])
    assert "Admin UI:   http://127.0.0.1:8123/admin" in second.output
    assert "Password:" not in second.output

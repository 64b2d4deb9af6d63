"""Logging in and out, sessions and their cookie, CSRF, roles, and sessions on the admin API."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
import uvicorn
from starlette.requests import Request
from starlette.testclient import TestClient

from waypost.access.auth import secure_cookies
from waypost.app import WaypostApp, create_app
from waypost.clientip import uvicorn_proxy_options
from waypost.hub import Hub
from waypost.services.users import User, UserCreate
from waypost.settings import Settings
from waypost.store.schema import user_sessions

if TYPE_CHECKING:
    from tests.admin_support import (
        FAST_HASHER,
        PASSWORD,
        UI,
        csrf_of,
        error_of,
        flash_of,
        log_in,
        login_token_of,
    )
    from tests.conftest import ErrorCheck
else:
    from admin_support import (
        FAST_HASHER,
        PASSWORD,
        UI,
        csrf_of,
        error_of,
        flash_of,
        log_in,
        login_token_of,
    )

MakeUser = Callable[..., User]


def session_cookie(answer: object) -> str:
    headers = getattr(answer, "headers")  # noqa: B009
    cookies = [c for c in headers.get_list("set-cookie") if c.startswith("waypost_session=")]
    assert len(cookies) == 1, cookies
    return str(cookies[0])


# -- logging in ------------------------------------------------------------------------------


def test_pages_need_a_login_and_come_back_after_it(client: TestClient, make_user: MakeUser) -> None:
    user = make_user("marketer")
    answer = client.get("/admin/types?x=1", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/admin/login?next=%2Fadmin%2Ftypes%3Fx%3D1"
    page = client.get(answer.headers["location"])
    assert 'name="next" value="/admin/types?x=1"' in page.text
    logged = client.post(
        "/admin/login",
        data={
            "csrf_token": login_token_of(page.text),
            "email": user.email.upper(),
            "password": "correct horse battery",
            "next": "/admin/types?x=1",
        },
        follow_redirects=False,
    )
    assert logged.status_code == 303, logged.text
    assert logged.headers["location"] == "/admin/types?x=1"
    cookie = session_cookie(logged)
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie  # plain http, cookie_secure=auto
    assert client.get("/admin/types").status_code == 200
    # A logged-in user who opens the login page goes on.
    again = client.get("/admin/login?next=/admin/types", follow_redirects=False)
    assert again.headers["location"] == "/admin/types"


@pytest.mark.parametrize("target", ["//evil.example/admin", "https://evil.example", "/api/keys"])
def test_a_login_never_leads_off_the_admin_ui(
    client: TestClient, make_user: MakeUser, target: str
) -> None:
    user = make_user()
    page = client.get("/admin/login")
    answer = client.post(
        "/admin/login",
        data={
            "csrf_token": login_token_of(page.text),
            "email": user.email,
            "password": "correct horse battery",
            "next": target,
        },
        follow_redirects=False,
    )
    assert answer.headers["location"] == "/admin"


@pytest.mark.parametrize(
    ("email", "password"),
    [("admin1@example.com", "wrong password!"), ("nobody@example.com", "correct horse battery")],
)
def test_a_wrong_email_or_password_gets_one_answer(
    client: TestClient, make_user: MakeUser, email: str, password: str
) -> None:
    make_user("admin")
    answer = log_in(client, email, password)
    assert answer.status_code == 400
    assert "The email or the password is wrong" in error_of(answer)
    assert f'value="{email}"' in answer.text  # the email is kept, never the password
    assert password not in answer.text
    assert "waypost_session" not in answer.headers.get("set-cookie", "")


def test_a_disabled_user_cannot_log_in_and_is_logged_out(
    client: TestClient, hub: Hub, make_ui: Callable[..., UI]
) -> None:
    ui = make_ui("marketer")
    hub.users.set_disabled(ui.user.id, True)
    assert ui.get("/admin/types", follow_redirects=False).status_code == 303
    assert log_in(client, ui.user.email).status_code == 400
    hub.users.set_disabled(ui.user.id, False)
    assert log_in(client, ui.user.email).status_code == 303


def test_the_login_form_needs_its_own_token(client: TestClient, make_user: MakeUser) -> None:
    user = make_user()
    client.get("/admin/login")
    forged = client.post(
        "/admin/login",
        data={"csrf_token": "forged", "email": user.email, "password": "correct horse battery"},
    )
    assert forged.status_code == 403
    assert "This form has expired" in forged.text
    other = TestClient(client.app)  # no login cookie at all
    page = client.get("/admin/login")
    answer = other.post(
        "/admin/login",
        data={"csrf_token": login_token_of(page.text), "email": user.email, "password": "x"},
    )
    assert answer.status_code == 403


def test_logins_are_throttled_per_email(client: TestClient, make_user: MakeUser) -> None:
    user = make_user()
    for _ in range(10):
        assert log_in(client, user.email, "wrong password!").status_code == 400
    refused = log_in(client, user.email)  # even the right password, for a while
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    assert "Too many login attempts" in error_of(refused)
    other = make_user()
    assert log_in(client, other.email).status_code == 303


def at(client: TestClient, address: str, forwarded_for: str | None = None) -> TestClient:
    """The app as uvicorn serves it (with the proxy options ``waypost serve`` gives it), seen
    from a peer at ``address``, optionally sending ``X-Forwarded-For``."""
    app = client.app
    assert isinstance(app, WaypostApp)
    trusted = app.state.hub.settings.trusted_proxies
    config = uvicorn.Config(app, log_config=None, **uvicorn_proxy_options(trusted))
    config.load()
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return TestClient(config.loaded_app, client=(address, 40000), headers=headers)


def test_only_failed_logins_from_the_same_address_throttle(
    client: TestClient, make_user: MakeUser
) -> None:
    user = make_user()
    attacker = at(client, "198.51.100.1")
    for _ in range(10):
        assert log_in(attacker, user.email, "wrong password!").status_code == 400
    assert log_in(attacker, user.email).status_code == 429
    # Another address with no failures logs in: an attacker cannot lock the user out.
    assert log_in(at(client, "198.51.100.2"), user.email).status_code == 303
    # Failures for one email do not hold back another email from that address.
    assert log_in(attacker, make_user().email).status_code == 303


def test_guesses_from_one_ipv6_64_count_as_one_address(
    client: TestClient, make_user: MakeUser
) -> None:
    """Whoever has one address of a /64 may use any of its 2^64: a new one for each guess is
    still one address guessing."""
    user = make_user()
    for i in range(1, 11):
        guess = log_in(at(client, f"2001:db8:66:77::{i:x}"), user.email, "wrong password!")
        assert guess.status_code == 400
    assert log_in(at(client, "2001:db8:66:77:1:2:3:4"), user.email).status_code == 429
    # Another /64 is another address.
    assert log_in(at(client, "2001:db8:66:78::1"), user.email).status_code == 303


def test_successful_logins_never_count(client: TestClient, make_user: MakeUser) -> None:
    user = make_user()
    for _ in range(12):  # each in a browser of its own, as a logged-in one skips the form
        assert log_in(at(client, "198.51.100.3"), user.email).status_code == 303
    office = at(client, "198.51.100.3")
    for _ in range(10):
        assert log_in(office, user.email, "wrong password!").status_code == 400
    assert log_in(office, user.email, "wrong password!").status_code == 429


def test_a_forwarded_for_header_from_an_untrusted_peer_is_ignored(
    client: TestClient, make_user: MakeUser
) -> None:
    # By default no proxy is trusted, not even one on loopback.
    user = make_user()
    answers = [
        log_in(at(client, "127.0.0.1", f"203.0.113.{i}"), user.email, "wrong!").status_code
        for i in range(11)
    ]
    assert answers == [400] * 10 + [429]
    # Nor does it spread guesses at many emails over made-up addresses.
    answers = [
        log_in(at(client, "127.0.0.1", f"192.0.2.{i}"), f"u{i}@example.com", "x").status_code
        for i in range(41)
    ]
    assert answers == [400] * 40 + [429]  # 50 failures from one address, then no more


def test_a_trusted_proxy_forwards_the_client_address(
    make_settings: Callable[..., Settings], hub: Hub, make_user: MakeUser
) -> None:
    settings = make_settings(trusted_proxies="127.0.0.1, 10.0.0.0/8")
    # A hub of its own on the same database (users made through the fixture's are seen), so
    # that closing it stops everything its server started.
    proxied = Hub(settings)
    try:
        with TestClient(create_app(settings, hub=proxied)) as client:
            user = make_user()
            for _ in range(10):
                via = at(client, "127.0.0.1", "198.51.100.7, 10.1.2.3")
                assert log_in(via, user.email, "wrong!").status_code == 400
            assert log_in(at(client, "10.9.9.9", "198.51.100.7"), user.email).status_code == 429
            # Whatever the client put left of what the proxies saw does not count.
            spoofed = at(client, "127.0.0.1", "192.0.2.1, 198.51.100.7")
            assert log_in(spoofed, user.email).status_code == 429
            assert log_in(at(client, "127.0.0.1", "198.51.100.8"), user.email).status_code == 303
            # A peer that is no trusted proxy is the client, whatever it forwards.
            assert log_in(at(client, "192.0.2.9", "198.51.100.7"), user.email).status_code == 303
    finally:
        proxied.close()


def test_bad_login_bodies_get_4xx(client: TestClient) -> None:
    page = client.get("/admin/login")
    token = login_token_of(page.text)
    as_json = client.post("/admin/login", json={"csrf_token": token})
    assert as_json.status_code == 415
    big = client.post(
        "/admin/login",
        content=b"a=" + b"x" * 20_000,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert big.status_code == 413


# -- sessions --------------------------------------------------------------------------------


def test_only_the_tokens_hash_is_stored(client: TestClient, hub: Hub, make_user: MakeUser) -> None:
    user = make_user()
    answer = log_in(client, user.email)
    token = session_cookie(answer).split(";", 1)[0].split("=", 1)[1]
    with hub.store.read() as conn:
        stored = conn.execute(sa.select(user_sessions.c.token_hash)).scalars().all()
    assert stored == [hashlib.sha256(token.encode()).hexdigest()]


def test_an_expired_session_leads_to_the_login(admin_ui: UI, hub: Hub) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    with hub.store.write() as conn:
        conn.execute(user_sessions.update().values(expires_at=past))
    answer = admin_ui.get("/admin/types", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/admin/login")


def test_a_session_slides_with_use(admin_ui: UI, hub: Hub) -> None:
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    with hub.store.write() as conn:
        conn.execute(
            user_sessions.update().values(last_seen_at=old, expires_at=old + dt.timedelta(hours=12))
        )
    assert admin_ui.get("/admin/types").status_code == 200
    with hub.store.read() as conn:
        row = conn.execute(sa.select(user_sessions)).one()
    assert row.last_seen_at > old + dt.timedelta(minutes=59)
    assert row.expires_at > dt.datetime.now(dt.UTC) + dt.timedelta(hours=11)


def test_logout_is_a_post_with_the_token(admin_ui: UI, hub: Hub) -> None:
    assert admin_ui.get("/admin/logout").status_code == 404  # no such page: a GET changes nothing
    refused = admin_ui.post("/admin/logout", csrf="wrong")
    assert refused.status_code == 403
    assert admin_ui.get("/admin/types").status_code == 200
    answer = admin_ui.post("/admin/logout")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/admin/login"
    assert 'waypost_session=""' in answer.headers["set-cookie"]
    with hub.store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(user_sessions)).scalar() == 0
    assert flash_of(admin_ui.get("/admin/login")) == "You have logged out."
    assert admin_ui.get("/admin/types", follow_redirects=False).status_code == 303


@pytest.mark.parametrize(("setting", "scheme", "secure"), [
    ("auto", "https", True), ("auto", "http", False), ("always", "https", True),
    ("never", "https", False),
])  # fmt: skip
def test_the_secure_flag(
    make_settings: Callable[..., Settings], setting: str, scheme: str, secure: bool
) -> None:
    settings = make_settings(cookie_secure=setting)
    own_hub = Hub(settings)
    try:
        own_hub.users.hasher = FAST_HASHER
        own_hub.users.create(UserCreate(email="a@example.com", role="admin", password=PASSWORD))
        browser = TestClient(create_app(settings, hub=own_hub), base_url=f"{scheme}://testserver")
        answer = log_in(browser, "a@example.com")
        assert answer.status_code == 303, answer.text
        assert ("; Secure" in session_cookie(answer)) is secure
    finally:
        own_hub.close()


def test_an_https_public_url_makes_cookies_secure(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(public_url="https://track.example.com")
    request = Request({"type": "http", "scheme": "http", "headers": [], "path": "/"})
    assert secure_cookies(settings, request)


# -- CSRF and roles on pages -----------------------------------------------------------------


def test_every_post_needs_the_sessions_token(make_ui: Callable[..., UI]) -> None:
    admin, other = make_ui("admin"), make_ui("admin")
    form = {"name": "Webinar registration", "enabled": "1"}
    for token in ("", "forged", other.csrf):
        answer = admin.post("/admin/types/new", form, csrf=token)
        assert answer.status_code == 403, token
        assert "This form has expired" in answer.text
        assert "nothing was changed" in answer.text
    assert "Webinar registration" not in admin.get("/admin/types").text
    assert admin.post("/admin/types/new", form).status_code == 303


def test_pages_send_security_headers(admin_ui: UI) -> None:
    page = admin_ui.get("/admin/types")
    assert page.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert "<script>" not in page.text  # the policy allows no inline script
    css = admin_ui.get("/admin/static/admin.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert admin_ui.get("/admin/static/admin.js").status_code == 200
    # Icons the page names, so that the browser does not ask for a /favicon.ico it lacks.
    icons = re.findall(r'<link rel="icon" href="([^"]+)"', page.text)
    assert "/favicon.ico" in icons
    for icon in icons:
        assert admin_ui.get(icon).status_code == 200, icon


LISTS = ["/admin/types", "/admin/contacts", "/admin/activities", "/admin/rejected",
         "/admin/groups", "/admin/channels", "/admin/keys", "/admin/consents",
         "/admin/users"]  # fmt: skip
BOX = re.compile(r'(<p class="scroll-hint"[^>]*>[^<]*<span[^>]*>→</span></p>\n)?'
                 r'(<div class="table-wrap"[^>]*>)')  # fmt: skip


def test_every_table_scrolls_in_a_labelled_region(admin_ui: UI) -> None:
    """A wide table scrolls sideways in its box: the keyboard reaches it, and it says so."""
    for path in LISTS:
        page = admin_ui.get(path)
        assert page.status_code == 200, path
        boxes = BOX.findall(page.text)
        assert boxes, path
        for hint, box in boxes:
            assert re.fullmatch(
                r'<div class="table-wrap" role="region" aria-label="[^"]+" tabindex="0">', box
            ), (path, box)
            assert 'aria-hidden="true">Scroll sideways to see more' in hint, path


def test_unknown_pages_are_404_pages(admin_ui: UI) -> None:
    answer = admin_ui.get("/admin/nothing/here")
    assert answer.status_code == 404
    assert "<h1>Not found</h1>" in answer.text
    assert admin_ui.get("/admin/types/not-a-uuid").status_code == 404
    assert admin_ui.get("/admin/types/01a2076a-8c3e-7000-8000-000000000000").status_code == 404


ADMIN_ONLY = ["/admin/channels", "/admin/channels/new", "/admin/keys", "/admin/keys/new",
              "/admin/users", "/admin/users/new", "/admin/consents/new"]  # fmt: skip


def test_marketers_see_no_channels_keys_or_users(marketer_ui: UI, admin_ui: UI) -> None:
    page = marketer_ui.get("/admin/types")
    nav = page.text.split('<nav id="site-nav"', 1)[1].split("</nav>", 1)[0]
    assert 'href="/admin/types"' in nav
    assert 'href="/admin/consents"' in nav
    for hidden in ("/admin/channels", "/admin/keys", "/admin/users"):
        assert f'href="{hidden}"' not in nav
    for path in ADMIN_ONLY:
        answer = marketer_ui.get(path)
        assert answer.status_code == 403, path
        assert "Not for your role" in answer.text
    for path in ("/admin/channels/new", "/admin/keys/new", "/admin/users/new"):
        assert marketer_ui.post(path, {"name": "x"}).status_code == 403
    assert ">Settings</a>" not in nav  # one settings page is shown by its own name
    # An admin's settings pages are one entry, and a row of their own on those pages.
    admin_nav = admin_ui.get("/admin/types").text
    assert '<li><a href="/admin/channels">Settings</a></li>' in admin_nav
    assert 'aria-label="Settings"' not in admin_nav
    keys = admin_ui.get("/admin/keys").text
    assert '<a href="/admin/channels" aria-current="true">Settings</a>' in keys
    settings = keys.split('<nav class="sub-nav" aria-label="Settings">', 1)[1].split("</nav>")[0]
    for shown in ("/admin/channels", "/admin/keys", "/admin/users", "/admin/consents"):
        assert f'href="{shown}"' in settings
    assert '<a href="/admin/keys" aria-current="page">Keys</a>' in settings
    # /admin is the dashboard, or else a redirect to the first page the role may open.
    home = marketer_ui.get("/admin", follow_redirects=False)
    assert home.status_code == 200 or home.headers["location"] == "/admin/types"


# -- sessions on the admin API ---------------------------------------------------------------


def test_the_api_takes_a_session(marketer_ui: UI, expect_error: ErrorCheck) -> None:
    listed = marketer_ui.client.get("/api/activity-types")
    assert listed.status_code == 200
    assert {t["code_name"] for t in listed.json()["data"]} >= {"pagevisit", "click"}
    no_token = marketer_ui.client.post("/api/activity-types", json={"name": "Signed up"})
    expect_error(no_token, 403, "forbidden")
    assert "X-CSRF-Token" in no_token.json()["error"]["message"]
    wrong = marketer_ui.api(
        "POST", "/api/activity-types", json={"name": "Signed up"}, headers={"X-CSRF-Token": "x"}
    )
    expect_error(wrong, 403, "forbidden")
    created = marketer_ui.api("POST", "/api/activity-types", json={"name": "Signed up"})
    assert created.status_code == 201, created.text


def test_the_api_keeps_a_marketer_to_the_role(marketer_ui: UI, expect_error: ErrorCheck) -> None:
    for path in ("/api/channels", "/api/keys"):
        expect_error(marketer_ui.client.get(path), 403, "forbidden")
    expect_error(marketer_ui.api("POST", "/api/channels", json={"name": "x"}), 403, "forbidden")
    assert marketer_ui.client.get("/api/consents").status_code == 200
    refused = marketer_ui.api("POST", "/api/consents", json={"code_name": "x", "display_name": "x"})
    expect_error(refused, 403, "forbidden")


def test_an_admin_session_may_do_everything(admin_ui: UI) -> None:
    created = admin_ui.api("POST", "/api/channels", json={"name": "App", "kind": "headless"})
    assert created.status_code == 201, created.text
    assert admin_ui.client.get("/api/keys").status_code == 200


def test_a_bearer_key_wins_over_the_cookie(
    marketer_ui: UI, admin_headers: dict[str, str], expect_error: ErrorCheck
) -> None:
    # The key decides: an admin key opens channels to this marketer's browser...
    assert marketer_ui.client.get("/api/channels", headers=admin_headers).status_code == 200
    # ...and a bad key is refused even though the cookie is good.
    bad = marketer_ui.client.get("/api/activity-types", headers={"Authorization": "Bearer x"})
    expect_error(bad, 401, "unauthorized")


def test_an_ended_session_is_401_on_the_api(
    admin_ui: UI, hub: Hub, expect_error: ErrorCheck
) -> None:
    hub.sessions.end_all(admin_ui.user.id)
    expect_error(admin_ui.client.get("/api/activity-types"), 401, "unauthorized")
    anonymous = TestClient(admin_ui.client.app)
    expect_error(anonymous.get("/api/activity-types"), 401, "unauthorized")


def test_the_session_token_is_in_each_page(admin_ui: UI) -> None:
    assert csrf_of(admin_ui.get("/admin/keys").text) == admin_ui.csrf


def test_the_login_page_says_where_accounts_come_from(client: TestClient) -> None:
    page = client.get("/admin/login")
    match = re.search(r'<p class="hint" id="login-help">(.*?)</p>', page.text, re.S)
    assert match is not None
    hint = " ".join(re.sub(r"<[^>]+>", "", match.group(1)).split())
    # Admins add users in the UI; the command line is for the first admin, or scripts.
    assert "Users page" in hint
    assert "waypost serve" in hint
    assert hint.index("Users page") < hint.index("waypost users create")

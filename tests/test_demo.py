"""The demo site: its data, its pages, ``waypost demo`` and ``waypost serve --demo``."""

from __future__ import annotations

import hashlib
import hmac
import re
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import httpx
import msgspec
import pytest
import uvicorn
from click.testing import CliRunner, Result
from starlette.testclient import TestClient

from waypost.app import create_app
from waypost.cli import main
from waypost.demo import DemoSetup, create_demo_app, prepare_demo
from waypost.demo.data import (
    ADMIN_KEY_NAME,
    CONSENT,
    GROUP_CONDITION,
    GROUP_NAME,
    KEY_NAME,
    LOAN_TYPE,
    key_names,
)
from waypost.errors import ApiError
from waypost.hub import Hub
from waypost.pagination import ListQuery
from waypost.services.activity_types import ActivityTypeCreate, ActivityTypeUpdate
from waypost.services.channels import Channel
from waypost.services.consents import ConsentCreate, ConsentText
from waypost.services.groups import GroupCreate, MemberQuery
from waypost.services.keys import KeyCreate, KeyQuery
from waypost.settings import Settings, load_settings

if TYPE_CHECKING:
    from tests.conftest import Tracker
    from tests.server_support import ServedWaypost, free_port
else:
    from server_support import ServedWaypost, free_port

SITE = "http://127.0.0.1:8001"


SITE_KEYS = key_names(SITE)
OTHER_SITE = "http://127.0.0.1:18002"


def demo_keys(hub: Hub, channel: uuid.UUID | None, name: str = SITE_KEYS[0]) -> list[str]:
    return [
        f"{k.prefix}…{k.last_four}"
        for k in hub.keys.list_page(KeyQuery(channel=channel, limit=1000)).data
        if k.name == name and k.channel == channel
    ]


def demo_groups(hub: Hub) -> list[uuid.UUID]:
    return [g.id for g in hub.groups.list_page(MemberQuery()).data if g.name == GROUP_NAME]


# -- the data --------------------------------------------------------------------------------


def test_prepare_demo_on_an_empty_database_and_again(hub: Hub) -> None:
    first = prepare_demo(hub, [SITE])
    channel = hub.channels.get(first.channel_id)
    assert (channel.kind, channel.allowed_origins, channel.tracking_consent) == (
        "website",
        [SITE],
        CONSENT,
    )
    assert first.identity_secret == channel.identity_secret
    consent = hub.consents.get_by_code(CONSENT)
    assert first.consent_text == consent.texts["en"]
    loan = hub.types.get_by_code(LOAN_TYPE)
    assert (loan.name, loan.enabled, loan.client_side) == ("Loan calculator usage", True, True)
    [amount] = loan.fields
    assert (amount.name, amount.type, amount.primary) == ("amount", "decimal", True)
    principal = hub.keys.authenticate(f"Bearer {first.publishable_key}")
    assert (principal.access, principal.channel_id) == ("publishable", channel.id)
    group = hub.groups.get(first.group_id)
    assert (group.name, group.condition) == (GROUP_NAME, GROUP_CONDITION)
    assert GROUP_CONDITION == {"activity": {"type": LOAN_TYPE, "within_days": 30}}
    backend = hub.keys.authenticate(f"Bearer {first.admin_key}")
    assert (backend.access, backend.channel_id) == ("admin", None)

    second = prepare_demo(hub, ["http://127.0.0.1:8001/"])
    assert second.channel_id == first.channel_id
    assert second.publishable_key != first.publishable_key
    assert hub.channels.get(channel.id) == channel
    assert hub.consents.get_by_code(CONSENT) == consent
    assert hub.types.get_by_code(LOAN_TYPE) == loan
    assert len(hub.channels.list_page(ListQuery()).data) == 1
    # The group is made once, and kept.
    assert second.group_id == first.group_id
    assert demo_groups(hub) == [first.group_id]
    assert hub.groups.get(first.group_id) == group
    # The previous demo keys are gone: only the new ones can be used.
    assert len(demo_keys(hub, channel.id)) == 1
    assert len(demo_keys(hub, None, SITE_KEYS[1])) == 1
    hub.keys.authenticate(f"Bearer {second.publishable_key}")
    hub.keys.authenticate(f"Bearer {second.admin_key}")
    for old in (first.publishable_key, first.admin_key):
        with pytest.raises(ApiError) as refused:
            hub.keys.authenticate(f"Bearer {old}")
        assert refused.value.status == 401


def authenticates(hub: Hub, key: str) -> bool:
    try:
        hub.keys.authenticate(f"Bearer {key}")
    except ApiError as exc:
        if exc.status == 401:
            return False
        raise
    return True


def test_demos_on_two_origins_keep_their_own_keys(hub: Hub) -> None:
    assert SITE_KEYS == (
        "Demo site http://127.0.0.1:8001",
        "Demo site http://127.0.0.1:8001 (personalization)",
    )
    # Keys an earlier version named without the origin, made by its demo.
    channel = prepare_demo(hub, []).channel_id
    earlier = [
        hub.keys.create(KeyCreate(access="publishable", channel=channel, name=KEY_NAME)).key,
        hub.keys.create(KeyCreate(access="admin", name=ADMIN_KEY_NAME)).key,
    ]
    operators = hub.keys.create(KeyCreate(access="admin", name="Demo site backups")).key

    first = prepare_demo(hub, [SITE])
    other = prepare_demo(hub, [f"{OTHER_SITE}/"])
    again = prepare_demo(hub, [SITE])

    for setup in (other, again):
        assert authenticates(hub, setup.publishable_key)
        assert authenticates(hub, setup.admin_key)
    # A demo replaces its own origin's keys, and the unqualified ones of earlier versions.
    for key in (first.publishable_key, first.admin_key, *earlier):
        assert not authenticates(hub, key)
    assert authenticates(hub, operators)
    other_keys = key_names(OTHER_SITE)
    assert len(demo_keys(hub, channel, other_keys[0])) == 1
    assert len(demo_keys(hub, None, other_keys[1])) == 1
    assert len(demo_keys(hub, channel)) == 1
    assert len(demo_keys(hub, None, SITE_KEYS[1])) == 1
    # One channel serves both, allowing both origins.
    assert other.channel_id == again.channel_id == channel
    assert hub.channels.get(channel).allowed_origins == [SITE, OTHER_SITE]


def test_prepare_demo_completes_what_exists(hub: Hub, make_channel: Callable[..., Channel]) -> None:
    hub.consents.create(
        ConsentCreate(
            code_name=CONSENT,
            display_name="Tracking",
            texts={"cs": ConsentText("Sledování", "<p>Sledování</p>")},
        )
    )
    loan = hub.types.create(
        msgspec.convert(
            {
                "name": "Loan calculator usage",
                "code_name": LOAN_TYPE,
                "fields": [{"name": "amount", "type": "decimal", "primary": True}],
            },
            ActivityTypeCreate,
        )
    )
    hub.types.update(loan.id, ActivityTypeUpdate(enabled=False))
    oldest = make_channel(kind="website", allowed_origins=["https://bank.example.com"])
    make_channel(kind="website")
    make_channel(kind="headless")
    changed = hub.groups.create(
        GroupCreate(name=GROUP_NAME, condition={"activity": {"type": LOAN_TYPE, "at_least": 5}})
    )
    other = hub.groups.create(GroupCreate(name="Loan fans", condition=GROUP_CONDITION))
    an_admin_key = hub.keys.create(KeyCreate(access="admin", name="Operator")).key

    setup = prepare_demo(hub, [SITE])

    assert setup.channel_id == oldest.id
    channel = hub.channels.get(oldest.id)
    assert channel.allowed_origins == ["https://bank.example.com", SITE]
    assert channel.tracking_consent == CONSENT
    consent = hub.consents.get_by_code(CONSENT)
    assert set(consent.texts) == {"cs", "en"}
    assert setup.consent_text == consent.texts["en"]
    loan = hub.types.get_by_code(LOAN_TYPE)
    assert (loan.enabled, loan.client_side) == (True, True)
    # The group of that name is the demo's, its condition put back; other groups are left be.
    assert setup.group_id == changed.id
    assert hub.groups.get(changed.id).condition == GROUP_CONDITION
    assert hub.groups.get(other.id) == other
    hub.keys.authenticate(f"Bearer {an_admin_key}")  # the operator's key stays


# -- the pages -------------------------------------------------------------------------------


SETUP = DemoSetup(
    channel_id=uuid.uuid4(),
    publishable_key="wpp_" + "k" * 43,
    identity_secret="s3cret",
    consent_text=ConsentText("May we track you?", "<p>The <em>whole</em> story.</p>"),
    group_id=uuid.uuid4(),
    admin_key="wpa_" + "a" * 43,
)


@pytest.fixture
def site() -> Iterator[TestClient]:
    with TestClient(create_demo_app(SETUP, "http://127.0.0.1:8000/")) as client:
        yield client


def test_every_page_carries_the_tracker_stub_and_the_banner(site: TestClient) -> None:
    for path in ("/", "/loans", "/offers", "/login"):
        answer = site.get(path)
        assert answer.status_code == 200, path
        html = answer.text
        assert '"http://127.0.0.1:8000/waypost.js", "wpp_kkkk' in html
        assert "w.WaypostObject = name;" in html
        assert "May we track you?" in html
        assert "<p>The <em>whole</em> story.</p>" in html
        assert 'wp("pagevisit");' in html
        assert re.search(r'id="consent-banner"[^>]*\s+>', html), "the banner shows"
        assert "https://" not in html, "nothing comes from elsewhere"
    site.cookies.set("wp_cookielevel", "visitor")
    assert re.search(r'id="consent-banner"[^>]*\bhidden\b', site.get("/").text)


def test_the_pages_log_what_the_bank_scenario_needs(site: TestClient) -> None:
    home = site.get("/").text
    assert 'id="btnCTA"' in home
    assert 'wp("click", {value: "btnCTA"})' in home
    assert 'wp("consent", {consent: "TrackingConsent", agree: true})' in home
    assert 'wp("consent", {consent: "TrackingConsent", agree: false})' in home
    assert 'wp("cookielevel", "visitor")' in home
    loans = site.get("/loans").text
    assert 'activity_id: "custom_loan_calculator"' in loans
    assert '"dec:cm:amount": String(amount)' in loans


def test_login_identifies_the_visitor_with_the_backends_hash(site: TestClient) -> None:
    assert site.get("/account", follow_redirects=False).headers["location"] == "/login"
    refused = site.post("/login", data={"email": "nobody", "password": "x"})
    assert refused.status_code == 400
    answer = site.post(
        "/login",
        data={"email": "Jane@Example.com", "first": "Jane", "last": "", "password": "pw"},
        follow_redirects=False,
    )
    assert (answer.status_code, answer.headers["location"]) == (303, "/account")
    account = site.get("/account").text
    expected = hmac.new(b"s3cret", b"jane@example.com", hashlib.sha256).hexdigest()
    assert (
        'wp("identify", {"email": "Jane@Example.com", "first": "Jane", "last": null, '
        f'"hash": "{expected}"}});'
    ) in account
    assert "Welcome, Jane" in account


def test_a_forged_session_is_not_logged_in(site: TestClient) -> None:
    site.post("/login", data={"email": "jane@example.com", "password": "pw"})
    payload, _, mac = site.cookies["demo_session"].partition(".")
    site.cookies.clear()
    site.cookies.set("demo_session", f"{payload}.{'0' * len(mac)}")
    assert site.get("/account", follow_redirects=False).headers["location"] == "/login"
    site.cookies.clear()
    site.cookies.set("demo_session", "garbage")
    assert site.get("/account", follow_redirects=False).status_code == 303


def test_logout(site: TestClient) -> None:
    site.post("/login", data={"email": "jane@example.com", "password": "pw"})
    assert "Log out" in site.get("/").text
    site.post("/logout")
    assert "demo_session" not in site.cookies
    assert 'href="/login"' in site.get("/").text


# -- the offers page, personalized from the group ------------------------------------------------


PERSONAL = 'id="personal-offer"'
GENERIC = 'id="generic-offer"'


def offers(site: TestClient, contact: str | None, level: str | None = "visitor") -> str:
    """The offers page as a visitor with these waypost.js cookies sees it."""
    site.cookies.clear()
    if level is not None:
        site.cookies.set("wp_cookielevel", level)
    if contact is not None:
        site.cookies.set("wp_contact", contact)
    answer = site.get("/offers")
    assert answer.status_code == 200, answer.text
    assert answer.headers["Cache-Control"] == "private, no-store"
    assert (PERSONAL in answer.text) != (GENERIC in answer.text)
    return answer.text


def test_the_offers_page_personalizes_for_the_groups_members(
    hub: Hub, settings: Settings, make_tracker: Callable[..., Tracker]
) -> None:
    setup = prepare_demo(hub, [SITE])
    tracker = make_tracker()
    hub.catalog.invalidate()
    member, other = tracker.new_contact(), tracker.new_contact()
    tracker.log([{"type": "pagevisit", "url": "https://bank.example/"}], other)
    assert hub.group_updates.wait_idle()
    [result] = tracker.log([{"type": LOAN_TYPE, "value": "25000"}], member)
    acknowledged = time.monotonic()
    assert result["status"] == 202
    assert hub.group_updates.wait_idle()
    assert time.monotonic() - acknowledged < 1.0, "the group follows within a second"

    # The demo's backend calls the real Waypost API (in process, through httpx's transport).
    transport = httpx.ASGITransport(app=create_app(settings, hub=hub))
    with TestClient(create_demo_app(setup, "http://127.0.0.1:8000", transport=transport)) as site:
        page = offers(site, member)
        assert PERSONAL in page
        assert "A personal rate for your loan" in page
        assert "You used our loan calculator recently" in page
        assert setup.admin_key not in page
        assert GENERIC in offers(site, other)
        assert GENERIC in offers(site, member, level="essential")
        assert GENERIC in offers(site, None)
        assert GENERIC in offers(site, str(uuid.uuid4()))  # Waypost: 404, no such contact
        page = site.get("/offers").text  # no cookies at all: a visitor who never chose
        assert GENERIC in page
        assert 'href="/loans">loan calculator</a>' in page


def test_the_offers_page_asks_waypost_from_the_backend_with_the_admin_key() -> None:
    asked: list[httpx.Request] = []

    def waypost(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        return httpx.Response(200, json={"member": True, "since": "2026-01-01T00:00:00Z"})

    app = create_demo_app(
        SETUP,
        "http://127.0.0.1:8000/",
        backend_url="http://waypost.internal:8000/",
        transport=httpx.MockTransport(waypost),
    )
    contact = str(uuid.uuid4())
    with TestClient(app) as site:
        # Without a contact cookie at a tracking level, there is nobody to ask about.
        for cookie, level in (
            (None, "visitor"),
            (contact, None),
            (contact, "none"),
            (contact, "essential"),
            ("not-a-uuid", "visitor"),
            ("", "all"),
        ):
            assert GENERIC in offers(site, cookie, level), (cookie, level)
        assert asked == []
        for level in ("visitor", "all"):
            page = offers(site, contact, level)
            assert PERSONAL in page
            assert SETUP.admin_key not in page
        for path in ("/", "/loans", "/login"):
            assert SETUP.admin_key not in site.get(path).text
    assert len(asked) == 2
    for request in asked:
        assert request.method == "GET"
        assert str(request.url) == (
            f"http://waypost.internal:8000/api/groups/{SETUP.group_id}/check/{contact}"
        )
        assert request.headers["Authorization"] == f"Bearer {SETUP.admin_key}"


def _raise(exc: Exception) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


@pytest.mark.parametrize(
    "waypost",
    [
        _raise(httpx.ConnectError("Connection refused")),
        _raise(httpx.ReadTimeout("timed out")),
        lambda r: httpx.Response(500, text="Internal Server Error"),
        lambda r: httpx.Response(503, json={"error": {"code": "storage_unavailable"}}),
        lambda r: httpx.Response(401, json={"error": {"code": "unauthorized"}}),
        lambda r: httpx.Response(404, json={"error": {"code": "not_found"}}),
        lambda r: httpx.Response(200, text="<html>a proxy's page</html>"),
        lambda r: httpx.Response(200, json=[True]),
        lambda r: httpx.Response(200, json={"member": "yes"}),
    ],
    ids=["down", "slow", "500", "503", "401", "404", "not-json", "a-list", "not-a-bool"],
)
def test_the_offers_page_is_generic_when_waypost_cannot_say(
    waypost: Callable[[httpx.Request], httpx.Response],
) -> None:
    app = create_demo_app(SETUP, "http://127.0.0.1:8000", transport=httpx.MockTransport(waypost))
    with TestClient(app) as site:
        assert GENERIC in offers(site, str(uuid.uuid4()))


def test_the_offers_page_renders_when_nothing_listens_at_wayposts_address(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_demo_app(SETUP, f"http://127.0.0.1:{free_port()}")
    with TestClient(app) as site:
        assert GENERIC in offers(site, str(uuid.uuid4()))
    assert "Waypost did not answer the membership check" in caplog.text


# -- the commands ----------------------------------------------------------------------------


@pytest.fixture
def invoke(database_url: str) -> Callable[..., Result]:
    runner = CliRunner(env={"WAYPOST_DATABASE_URL": database_url})

    def run(*args: str) -> Result:
        result = runner.invoke(main, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result

    return run


def website(database_url: str) -> Channel:
    hub = Hub(load_settings({"WAYPOST_DATABASE_URL": database_url}))
    try:
        [channel] = [c for c in hub.channels.list_page(ListQuery()).data if c.kind == "website"]
        return channel
    finally:
        hub.close()


def test_waypost_demo(
    invoke: Callable[..., Result], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append({"app": app, **kw}))
    result = invoke("demo", "--port", "8123", "--api-url", "http://127.0.0.1:9/")
    [call] = served
    assert (call["host"], call["port"]) == ("127.0.0.1", 8123)
    assert "The demo site is serving on http://127.0.0.1:8123" in result.stdout
    assert "http://127.0.0.1:9" in result.stdout
    assert "nothing answers at http://127.0.0.1:9" in result.stderr
    channel = website(database_url)
    assert channel.allowed_origins == ["http://127.0.0.1:8123"]
    assert channel.tracking_consent == CONSENT
    with TestClient(call["app"]) as client:
        assert '"http://127.0.0.1:9/waypost.js"' in client.get("/").text
    # The backend asks the same Waypost, with the group and the admin key prepare_demo made.
    hub = Hub(load_settings({"WAYPOST_DATABASE_URL": database_url}))
    try:
        [group] = demo_groups(hub)
        assert len(demo_keys(hub, None, key_names("http://127.0.0.1:8123")[1])) == 1
    finally:
        hub.close()
    personalization = call["app"].state.personalization
    assert personalization.url == f"http://127.0.0.1:9/api/groups/{group}/check/"


def test_a_second_demo_beside_a_running_one(
    invoke: Callable[..., Result], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append(app))
    invoke("demo", "--port", "8123", "--api-url", "http://127.0.0.1:9/")
    invoke("demo", "--port", "8124", "--api-url", "http://127.0.0.1:9/")
    hub = Hub(load_settings({"WAYPOST_DATABASE_URL": database_url}))
    try:
        # The first demo still works: its page's key and its backend's key are both valid.
        for app in served:
            with TestClient(app) as client:
                found = re.search(r'"(wpp_[^"]+)"', client.get("/").text)
            assert found
            assert hub.keys.authenticate(f"Bearer {found[1]}").access == "publishable"
            admin = app.state.personalization.headers["Authorization"]
            assert hub.keys.authenticate(admin).access == "admin"
    finally:
        hub.close()
    assert website(database_url).allowed_origins == [
        "http://127.0.0.1:8123",
        "http://127.0.0.1:8124",
    ]


def test_serve_with_the_demo(
    invoke: Callable[..., Result], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[uvicorn.Config] = []

    async def serve(self: uvicorn.Server, sockets: object = None) -> None:
        started.append(self.config)

    monkeypatch.setattr(uvicorn.Server, "serve", serve)
    handler = signal.getsignal(signal.SIGINT)
    result = invoke("serve", "--port", "8124", "--demo", "--demo-port", "8125")
    assert signal.getsignal(signal.SIGINT) == handler
    assert [(c.host, c.port) for c in started] == [("127.0.0.1", 8124), ("127.0.0.1", 8125)]
    assert "Demo site:  http://127.0.0.1:8125" in result.stdout
    channel = website(database_url)
    assert channel.allowed_origins == ["http://127.0.0.1:8124", "http://127.0.0.1:8125"]
    with TestClient(cast(Any, started[1].app)) as client:
        assert '"http://127.0.0.1:8124/waypost.js"' in client.get("/loans").text
    # In the same process, the demo's backend reaches the API on loopback.
    personalization = cast(Any, started[1].app).state.personalization
    assert personalization.url.startswith("http://127.0.0.1:8124/api/groups/")


def offer_for_a_calculation(api: str, demo: str, output: str) -> None:
    """A contact uses the calculator (logged with the tracking key printed in ``output``); the
    demo's backend, in the same process and event loop as the API, then shows that contact the
    offer."""
    found = re.search(r"Tracking key \(headless channel\):\s+(\S+)", output)
    channel = re.search(r"Headless channel:\s+(\S+)", output)
    assert found, output
    assert channel, output
    headers = {"Authorization": f"Bearer {found[1]}"}
    contact = httpx.post(f"{api}/tracking/contacts", headers=headers).json()["contact"]
    cookies = {"wp_cookielevel": "visitor", "wp_contact": contact}
    assert GENERIC in httpx.get(f"{demo}/offers", cookies=cookies).text
    body = {
        "channel": channel[1],
        "contact": contact,
        "activities": [{"type": LOAN_TYPE, "value": "5000"}],
    }
    answer = httpx.post(f"{api}/tracking/activities", json=body, headers=headers)
    assert answer.json()["results"][0]["status"] == 202, answer.text
    deadline = time.monotonic() + 5
    while PERSONAL not in httpx.get(f"{demo}/offers", cookies=cookies).text:
        assert time.monotonic() < deadline, "no personal offer"
        time.sleep(0.1)


def alert_for_a_large_calculation(api: str, demo: str, output: str) -> None:
    """A calculation of 150,000 fires the demo's playbook: its webhook reaches the demo's
    backend, which verifies it and lists it on /alerts; one of 5,000 does not."""
    found = re.search(r"Tracking key \(headless channel\):\s+(\S+)", output)
    channel = re.search(r"Headless channel:\s+(\S+)", output)
    assert found, output
    assert channel, output
    headers = {"Authorization": f"Bearer {found[1]}"}
    contact = httpx.post(f"{api}/tracking/contacts", headers=headers).json()["contact"]
    assert "No alert yet." in httpx.get(f"{demo}/alerts").text
    body = {
        "channel": channel[1],
        "contact": contact,
        "activities": [
            {"type": LOAN_TYPE, "fields": {"amount": "5000"}},
            {"type": LOAN_TYPE, "fields": {"amount": "150000"}},
        ],
    }
    answer = httpx.post(f"{api}/tracking/activities", json=body, headers=headers)
    assert [r["status"] for r in answer.json()["results"]] == [202, 202], answer.text
    deadline = time.monotonic() + 10
    while contact not in (page := httpx.get(f"{demo}/alerts").text):
        assert time.monotonic() < deadline, "no alert"
        time.sleep(0.1)
    assert "150000" in page
    assert ">5000<" not in page


@pytest.mark.slow
def test_serve_with_the_demo_in_a_real_process(tmp_path: Path) -> None:
    demo = free_port()
    with ServedWaypost(
        tmp_path,
        f"sqlite:///{tmp_path / 'served.db'}",
        args=["--demo", "--demo-port", str(demo)],
    ) as server:
        try:
            server.start()
            server.wait_until_answers(f"http://127.0.0.1:{demo}/loans")
            server.wait_until_answers(f"{server.url}/waypost.js")
            offer_for_a_calculation(server.url, f"http://127.0.0.1:{demo}", server.output())
            alert_for_a_large_calculation(server.url, f"http://127.0.0.1:{demo}", server.output())
        finally:
            # Ctrl+C stops both servers, and the process ends as uvicorn's would.
            code = server.interrupt()
    output = server.output()
    assert code == 0, output
    assert f"Demo site:  http://127.0.0.1:{demo}" in output
    assert output.count("Application shutdown complete") == 2, output

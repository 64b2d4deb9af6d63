"""The demo site: its data, its pages, ``waypost demo`` and ``waypost serve --demo``."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import msgspec
import pytest
import uvicorn
from click.testing import CliRunner, Result
from starlette.testclient import TestClient

from waypost.cli import main
from waypost.demo import DemoSetup, create_demo_app, prepare_demo
from waypost.demo.data import CONSENT, KEY_NAME, LOAN_TYPE
from waypost.errors import ApiError
from waypost.hub import Hub
from waypost.pagination import ListQuery
from waypost.services.activity_types import ActivityTypeCreate, ActivityTypeUpdate
from waypost.services.channels import Channel
from waypost.services.consents import ConsentCreate, ConsentText
from waypost.services.keys import KeyQuery
from waypost.settings import load_settings

SITE = "http://127.0.0.1:8001"


def demo_keys(hub: Hub, channel: uuid.UUID) -> list[str]:
    return [
        f"{k.prefix}…{k.last_four}"
        for k in hub.keys.list_page(KeyQuery(channel=channel)).data
        if k.name == KEY_NAME
    ]


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

    second = prepare_demo(hub, ["http://127.0.0.1:8001/"])
    assert second.channel_id == first.channel_id
    assert second.publishable_key != first.publishable_key
    assert hub.channels.get(channel.id) == channel
    assert hub.consents.get_by_code(CONSENT) == consent
    assert hub.types.get_by_code(LOAN_TYPE) == loan
    assert len(hub.channels.list_page(ListQuery()).data) == 1
    # The previous demo key is gone: only the new one can be used.
    assert len(demo_keys(hub, channel.id)) == 1
    hub.keys.authenticate(f"Bearer {second.publishable_key}")
    with pytest.raises(ApiError) as refused:
        hub.keys.authenticate(f"Bearer {first.publishable_key}")
    assert refused.value.status == 401


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


# -- the pages -------------------------------------------------------------------------------


SETUP = DemoSetup(
    channel_id=uuid.uuid4(),
    publishable_key="wpp_" + "k" * 43,
    identity_secret="s3cret",
    consent_text=ConsentText("May we track you?", "<p>The <em>whole</em> story.</p>"),
)


@pytest.fixture
def site() -> Iterator[TestClient]:
    with TestClient(create_demo_app(SETUP, "http://127.0.0.1:8000/")) as client:
        yield client


def test_every_page_carries_the_tracker_stub_and_the_banner(site: TestClient) -> None:
    for path in ("/", "/loans", "/login"):
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.slow
def test_serve_with_the_demo_in_a_real_process(tmp_path: Path) -> None:
    api, demo = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("WAYPOST_")},
        "WAYPOST_DATABASE_URL": f"sqlite:///{tmp_path / 'served.db'}",
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, "-m", "waypost.cli", "serve", "--port", str(api), "--demo"]
    command += ["--demo-port", str(demo)]
    lines: list[str] = []
    with subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as server:
        reader = threading.Thread(target=lambda: lines.extend(server.stdout or ()), daemon=True)
        reader.start()
        try:
            deadline = time.monotonic() + 30
            for url in (f"http://127.0.0.1:{demo}/loans", f"http://127.0.0.1:{api}/waypost.js"):
                while True:
                    assert server.poll() is None, "".join(lines)
                    assert time.monotonic() < deadline, "".join(lines)
                    try:
                        if httpx.get(url, timeout=1).status_code == 200:
                            break
                    except httpx.TransportError:
                        time.sleep(0.1)
        finally:
            # Ctrl+C stops both servers, and the process ends as uvicorn's would.
            server.send_signal(signal.SIGINT)
            code = server.wait(timeout=15)
        reader.join(timeout=5)
    output = "".join(lines)
    assert code == 0, output
    assert f"Demo site:  http://127.0.0.1:{demo}" in output
    assert output.count("Application shutdown complete") == 2, output

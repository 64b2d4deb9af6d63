"""PostHog's own Python client, from PyPI, unchanged, against a real `waypost serve`.

Nothing is mocked: the client captures, sets person properties and aliases over HTTP (gzipped
or not) to a Waypost subprocess, and what arrived is read back from its admin API and its
database. The client's session is wrapped only to record what it sent, so that the test can
resend the very same bytes. A storage outage is a real one: the server's PostgreSQL database
refuses connections for a while, and the client retries the 503 until it is back. The version
verified is listed in docs/collectors.md.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.metadata
import json
import logging
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import posthog
import posthog.request
import psycopg
import pytest

if TYPE_CHECKING:
    from tests.browser_support import PageVisit, launch, open_visit
    from tests.js_support import (
        NODE_MODULES,
        Site,
        allow_origins,
        require_browser_clients,
        wait_for,
        website_of,
    )
    from tests.sdk_support import WaypostServer, own_postgres, refuse_connections, running_server
else:
    from browser_support import PageVisit, launch, open_visit
    from js_support import (
        NODE_MODULES,
        Site,
        allow_origins,
        require_browser_clients,
        wait_for,
        website_of,
    )
    from sdk_support import WaypostServer, own_postgres, refuse_connections, running_server

__all__ = ["own_postgres"]  # a fixture of tests/sdk_support.py this module uses

# The version docs/collectors.md says was verified.
VERIFIED = ("posthog", "7.91")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WaypostServer]:
    """One Waypost for the module, with the type the client's events name."""
    with running_server(tmp_path_factory.mktemp("waypost")) as running:
        create_types(running)
        yield running


def create_types(server: WaypostServer) -> None:
    with server.admin() as admin:
        answer = admin.post(
            "/api/activity-types",
            json={
                "name": "Signed up",
                "code_name": "signed_up",
                "aliases": ["user signed up"],
                "fields": [{"name": "plan", "type": "text"}],
                "unknown_fields": "accept_and_flag",
            },
        )
        assert answer.status_code == 201, answer.text


@dataclass
class Sent:
    """One request the client made, as it made it, and Waypost's answer."""

    url: str
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class Recorded:
    client: posthog.Posthog
    sent: list[Sent]
    errors: list[BaseException]


def record(monkeypatch: pytest.MonkeyPatch) -> list[Sent]:
    """Every request the client's session makes, with the answer's status."""
    sent: list[Sent] = []
    session = posthog.request._get_session()
    real_post = session.post

    def recording_post(url: str, **kwargs: Any) -> Any:
        response = real_post(url, **kwargs)
        body = kwargs["data"]
        sent.append(
            Sent(
                url,
                dict(kwargs["headers"]),
                body if isinstance(body, bytes) else body.encode(),
                response.status_code,
            )
        )
        return response

    monkeypatch.setattr(session, "post", recording_post)
    return sent


def make_client(key: str, url: str, errors: list[BaseException], **options: Any) -> posthog.Posthog:
    def on_error(error: BaseException, _batch: object) -> None:
        errors.append(error)

    return posthog.Posthog(
        key, host=url, flush_interval=0.05, timeout=5, on_error=on_error, **options
    )


@pytest.fixture(params=[False, True], ids=["plain", "gzip"])
def recorded(
    request: pytest.FixtureRequest, server: WaypostServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Recorded]:
    sent = record(monkeypatch)
    errors: list[BaseException] = []
    client = make_client(server.tracking_key, server.url, errors, gzip=request.param)
    yield Recorded(client, sent, errors)
    client.shutdown()


def contact_of(server: WaypostServer, kind: str, value: str) -> str:
    """The contact an external id names, straight from the database file (read-only)."""
    with sqlite3.connect(f"file:{server.database}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT c.id, c.merged_into FROM contact_external_ids e "
            "JOIN contacts c ON c.id = e.contact_id WHERE e.kind = ? AND e.value = ?",
            (kind, value),
        ).fetchall()
    conn.close()
    assert len(rows) == 1, rows
    contact, merged_into = rows[0]
    return str(uuid.UUID(merged_into or contact))


def test_the_installed_client_is_the_verified_one() -> None:
    distribution, version = VERIFIED
    assert importlib.metadata.version(distribution).startswith(version)


def test_the_client_captures_sets_and_aliases(recorded: Recorded, server: WaypostServer) -> None:
    suffix = uuid.uuid4().hex[:8]
    user, anonymous = f"user-{suffix}", f"anon-{suffix}"
    client = recorded.client
    client.capture(
        "$pageview",
        distinct_id=anonymous,
        properties={
            "$current_url": "https://shop.example/pricing",
            "title": "Pricing",
        },
    )
    client.capture(
        "user signed up",
        distinct_id=user,
        properties={"plan": "pro", "coupon": "SPRING"},
        timestamp=dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
    )
    client.set(distinct_id=user, properties={"email": f"{suffix}@example.com", "first_name": "Ann"})
    client.set_once(distinct_id=user, properties={"first_name": "Not Ann", "last_name": "Cole"})
    client.alias(previous_id=anonymous, distinct_id=user)
    client.capture("no such event", distinct_id=user)
    client.flush()

    assert recorded.errors == []
    assert recorded.sent
    assert all(s.status == 200 for s in recorded.sent)
    assert all(s.url == f"{server.url}/batch/" for s in recorded.sent)

    contact = contact_of(server, "posthog_anon", user)
    # The alias merged the anonymous visitor into the user.
    assert contact_of(server, "posthog_anon", anonymous) == contact
    with server.admin() as admin:
        got = admin.get(f"/api/contacts/{contact}").json()
    assert (got["email"], got["first_name"], got["last_name"]) == (
        f"{suffix}@example.com",
        "Ann",
        "Cole",
    )
    stored = server.activities(contact)
    assert [a["type"] for a in stored] == ["signed_up", "pagevisit"]
    signed_up, visit = stored
    assert signed_up["fields"] == {"plan": "pro"}
    assert "coupon" in str(signed_up["flags"])
    # The client's own timestamp, corrected by its sent_at: within seconds of when it says.
    happened = dt.datetime.fromisoformat(signed_up["occurred_at"])
    assert abs(happened - dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)) < dt.timedelta(
        seconds=30
    )
    assert (visit["url"], visit["value"]) == ("https://shop.example/pricing", "Pricing")
    assert (
        server.count(
            "SELECT count(*) FROM rejected_activities WHERE source = 'posthog' "
            "AND type_code = 'no such event' AND reason = 'activity_type_not_found' "
            "AND contact_id = ?",
            uuid.UUID(contact).hex,
        )
        == 1
    )


def test_a_resent_batch_is_stored_once(recorded: Recorded, server: WaypostServer) -> None:
    """The client resends a batch whose answer it did not get: the same bytes, the same
    uuids. Resending what it sent stores nothing twice."""
    user = f"resender-{uuid.uuid4().hex[:8]}"
    recorded.client.capture("user signed up", distinct_id=user, properties={"plan": "a"})
    recorded.client.capture(
        "$pageview", distinct_id=user, properties={"$current_url": "https://shop.example/"}
    )
    recorded.client.flush()
    assert recorded.errors == []
    contact = contact_of(server, "posthog_anon", user)
    before = server.activities(contact)
    assert len(before) == 2
    contacts_before = server.count("SELECT count(*) FROM contacts")
    for request in recorded.sent:
        for _ in range(2):
            answer = httpx.post(request.url, content=request.body, headers=request.headers)
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"status": 1}
    assert server.activities(contact) == before
    assert server.count("SELECT count(*) FROM contacts") == contacts_before


def test_a_bad_key_is_an_error_the_client_reports(
    server: WaypostServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.CRITICAL)
    sent = record(monkeypatch)
    errors: list[BaseException] = []
    client = make_client("wpt_wrong", server.url, errors, max_retries=1)
    client.capture("user signed up", distinct_id="someone")
    client.flush()
    client.shutdown()
    # A 401 is not retried: one request, one error, with PostHog's detail.
    assert [s.status for s in sent] == [401]
    [error] = errors
    assert isinstance(error, posthog.request.APIError)
    assert error.status == 401
    assert "not known" in error.message


# -- a storage outage ----------------------------------------------------------------------------


def test_a_storage_outage_is_a_503_the_client_retries(
    own_postgres: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.CRITICAL)
    name, url = own_postgres
    with running_server(tmp_path, database_url=url) as server:
        create_types(server)
        sent = record(monkeypatch)
        errors: list[BaseException] = []
        client = make_client(server.tracking_key, server.url, errors, max_retries=5)
        refuse_connections(name, True)
        event_id = str(uuid.uuid4())
        client.capture("user signed up", distinct_id="outage", uuid=event_id)
        flushing = threading.Thread(target=client.flush)
        flushing.start()
        deadline = time.monotonic() + 20
        while not any(s.status == 503 for s in sent) and time.monotonic() < deadline:
            time.sleep(0.05)
        refuse_connections(name, False)
        flushing.join(30)
        client.shutdown()
        statuses = [s.status for s in sent]
        assert statuses[0] == 503, statuses
        assert statuses[-1] == 200, statuses
        assert errors == []
        with psycopg.connect(url.replace("+psycopg", "")) as conn:
            stored = conn.execute(
                "SELECT count(*) FROM activities WHERE client_id = %s", (event_id,)
            ).fetchone()
        assert stored == (1,)


# -- posthog-js in Chromium ----------------------------------------------------------------------

# The full bundle, which loads nothing from elsewhere; served by the test site from node_modules.
# The page's only option beyond the host is the one posthog-js names for end-to-end tests: a
# browser driven by Playwright says it is automated (navigator.webdriver), and posthog-js drops
# the events of bots.
POSTHOG_JS = NODE_MODULES / "posthog-js" / "dist" / "array.full.no-external.js"
PAGE = """<!doctype html>
<html><head><title>Pricing</title>
<script src="/posthog.js"></script>
<script>
  posthog.init(%(key)s, {api_host: %(host)s, opt_out_useragent_filter: true});
  posthog.capture("web signed up", {plan: "pro"});
  posthog.identify(%(user)s, {email: %(email)s, first_name: "Ann"});
</script></head><body><h1>Pricing</h1></body></html>
"""


@dataclass
class Pages:
    """A Waypost whose website channel allows ``site``'s origin, not ``elsewhere``'s."""

    server: WaypostServer
    key: str
    site: Site
    elsewhere: Site


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_browser_clients()
    yield from launch()


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pages]:
    require_browser_clients()
    files = {"/posthog.js": POSTHOG_JS}
    with (
        running_server(tmp_path_factory.mktemp("waypost")) as server,
        contextlib.closing(Site(files)) as site,
        contextlib.closing(Site(files)) as elsewhere,
    ):
        with server.admin() as admin:
            answer = admin.post(
                "/api/activity-types",
                json={
                    "name": "Signed up on the web",
                    "code_name": "web_signed_up",
                    "aliases": ["web signed up"],
                    "client_side": True,
                    "fields": [{"name": "plan", "type": "text"}],
                    "unknown_fields": "accept_and_flag",
                },
            )
            assert answer.status_code == 201, answer.text
        channel, key = website_of(server)
        allow_origins(server, channel, [site.origin])
        yield Pages(server, key, site, elsewhere)


def open_page(browser: Any, pages: Pages, site: Site, user: str) -> Iterator[PageVisit]:
    values = {
        "key": json.dumps(pages.key),
        "host": json.dumps(pages.server.url),
        "user": json.dumps(user),
        "email": json.dumps(f"{user}@example.com"),
    }
    site.pages[f"/{user}.html"] = PAGE % values
    yield from open_visit(browser, lambda page: PageVisit(site, page))


def test_posthog_js_in_a_page_of_the_channel(browser: Any, pages: Pages) -> None:
    user = f"web-{uuid.uuid4().hex[:8]}"
    visits = open_page(browser, pages, pages.site, user)
    visit = next(visits)
    visit.goto(f"/{user}.html")
    server = pages.server

    def stored() -> list[dict[str, Any]] | None:
        found = server.count(
            "SELECT count(*) FROM contact_external_ids WHERE kind = 'posthog_user' AND value = ?",
            user,
        )
        if not found:
            return None
        activities = server.activities(contact_of(server, "posthog_user", user))
        return activities if len(activities) >= 2 else None

    activities = wait_for(stored)
    contact = contact_of(server, "posthog_user", user)
    with server.admin() as admin:
        got = admin.get(f"/api/contacts/{contact}").json()
    assert (got["email"], got["first_name"]) == (f"{user}@example.com", "Ann")
    # The anonymous device id the page started with is the same contact, merged or linked.
    assert got["external_ids"]["posthog_user"] == [user]
    assert [i for i in got["external_ids"]["posthog_anon"] if i != user]
    by_type = {a["type"]: a for a in activities}
    assert by_type["pagevisit"]["url"] == f"{pages.site.url}/{user}.html"
    assert by_type["pagevisit"]["value"] == "Pricing"
    assert by_type["web_signed_up"]["fields"] == {"plan": "pro"}
    visit.shot("posthog-js")
    next(visits, None)


def test_posthog_js_from_another_origin_is_refused(browser: Any, pages: Pages) -> None:
    user = f"elsewhere-{uuid.uuid4().hex[:8]}"
    visits = open_page(browser, pages, pages.elsewhere, user)
    visit = next(visits)
    # The browser reports the refused requests, and CORS keeps their answers from the page.
    visit.expect_error("CORS policy|Failed to load resource|net::ERR_FAILED|403")
    visit.expect_error(r"\[PostHog\.js\]")
    visit.goto(f"/{user}.html")
    server = pages.server
    # The page's events reached Waypost, which refused them.
    wait_for(lambda: re.search(r'"POST /(e|i/v0/e)/\S* HTTP/1.1" 403', server.output()))
    assert server.count("SELECT count(*) FROM contact_external_ids WHERE value = ?", user) == 0
    next(visits, None)

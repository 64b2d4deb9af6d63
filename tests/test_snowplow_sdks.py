"""Snowplow's own Python tracker, from PyPI, unchanged, against a real `waypost serve`.

Nothing is mocked: the tracker sends page views, pings, structured and self-describing events
with contexts over HTTP (POST batches and GET pixels) to a Waypost subprocess, and what arrived
is read back from its admin API and its database. The tracker's requests session is its own
``session`` option, recording what it sent, so that the test can resend the very same bytes.
A storage outage is a real one: the server's PostgreSQL database refuses connections for a
while, and the tracker retries the 503 until it is back. The version verified is listed in
docs/collectors.md.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import re
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
import requests
from snowplow_tracker.emitters import Emitter
from snowplow_tracker.events.page_ping import PagePing
from snowplow_tracker.events.page_view import PageView
from snowplow_tracker.events.screen_view import ScreenView
from snowplow_tracker.events.self_describing import SelfDescribing
from snowplow_tracker.events.structured_event import StructuredEvent
from snowplow_tracker.self_describing_json import SelfDescribingJson
from snowplow_tracker.subject import Subject
from snowplow_tracker.tracker import Tracker

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
VERIFIED = ("snowplow-tracker", "1.1")
LOAN = "iglu:com.acme/loan_calc/jsonschema/1-0-2"
USER_CONTEXT = "iglu:com.acme/user/jsonschema/1-0-0"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WaypostServer]:
    """One Waypost for the module, with the types the tracker's events name."""
    with running_server(tmp_path_factory.mktemp("waypost")) as running:
        create_types(running)
        yield running


def create_types(server: WaypostServer, client_side: bool = False) -> None:
    with server.admin() as admin:
        for body in (
            {
                "name": "Loan calculator",
                "code_name": "loan_calc",
                "aliases": ["iglu:com.acme/loan_calc/jsonschema/1-*-*"],
                "fields": [{"name": "amount", "type": "decimal"}],
            },
            {
                "name": "Video played",
                "code_name": "video_played",
                "aliases": ["media/play"],
                "fields": [{"name": "value", "type": "decimal"}],
            },
        ):
            answer = admin.post("/api/activity-types", json={**body, "client_side": client_side})
            assert answer.status_code == 201, answer.text


@dataclass
class Sent:
    """One request the tracker made, as it made it, and Waypost's answer."""

    method: str
    url: str
    body: bytes | None
    headers: dict[str, str]
    status: int


class RecordingSession(requests.Session):
    """A requests session that notes every request the tracker makes."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[Sent] = []

    def request(self, method: str, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        response = super().request(method, url, *args, **kwargs)
        body = kwargs.get("data")
        self.sent.append(
            Sent(
                str(method).upper(),
                response.request.url or "",
                body.encode() if isinstance(body, str) else body,
                dict(kwargs.get("headers") or {}),
                response.status_code,
            )
        )
        return response


@dataclass
class Recorded:
    tracker: Tracker
    session: RecordingSession
    failures: list[Any]


def make_tracker(url: str, key: str, method: str, **options: Any) -> Recorded:
    session = RecordingSession()
    failures: list[Any] = []
    parts = urlsplit(url)
    emitter = Emitter(
        parts.hostname or "",
        protocol="http",
        port=parts.port,
        method=method,  # type: ignore[arg-type]
        batch_size=50,
        request_timeout=5,
        on_failure=lambda _count, events: failures.append(events),
        session=session,
        **options,
    )
    return Recorded(Tracker("test", emitter, app_id=key), session, failures)


@pytest.fixture(params=["post", "get"])
def recorded(request: pytest.FixtureRequest, server: WaypostServer) -> Recorded:
    return make_tracker(server.url, server.tracking_key, request.param)


def contact_of(server: WaypostServer, kind: str, value: str) -> str:
    """The surviving contact an external id names, from the database file (read-only)."""
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


def test_the_installed_tracker_is_the_verified_one() -> None:
    distribution, version = VERIFIED
    assert importlib.metadata.version(distribution).startswith(version)


def test_the_tracker_sends_every_kind_of_event(recorded: Recorded, server: WaypostServer) -> None:
    suffix = uuid.uuid4().hex[:8]
    browser = Subject().set_domain_user_id(f"browser-{suffix}")
    user = Subject().set_user_id(f"user-{suffix}").set_domain_user_id(f"browser-{suffix}")
    tracker = recorded.tracker
    tracker.track(PageView("https://shop.example/", "Home", event_subject=browser))
    tracker.track(PagePing("https://shop.example/", event_subject=browser))
    tracker.track(StructuredEvent("media", "play", "intro.mp4", value=12.5, event_subject=browser))
    tracker.track(
        SelfDescribing(
            SelfDescribingJson(LOAN, {"amount": "50000.10"}),
            event_subject=user,
            context=[SelfDescribingJson(USER_CONTEXT, {"tier": "gold"})],
        )
    )
    tracker.track(ScreenView(id_=str(uuid.uuid4()), name="Settings", event_subject=user))
    tracker.flush()

    assert recorded.failures == []
    sent = recorded.session.sent
    assert sent
    assert all(s.status == 200 for s in sent)
    expected = "/i" if sent[0].method == "GET" else "/com.snowplowanalytics.snowplow/tp2"
    assert all(urlsplit(s.url).path == expected for s in sent)

    contact = contact_of(server, "snowplow_uid", f"user-{suffix}")
    # The browser's visitor was merged into the user who logged in on it.
    assert contact_of(server, "snowplow_duid", f"browser-{suffix}") == contact
    stored = server.activities(contact)
    by_type = {a["type"]: a for a in stored}
    assert sorted(by_type) == ["loan_calc", "pagevisit", "video_played"]
    assert (by_type["pagevisit"]["url"], by_type["pagevisit"]["value"]) == (
        "https://shop.example/",
        "Home",
    )
    assert by_type["video_played"]["value"] == "intro.mp4"
    assert by_type["video_played"]["fields"] == {"value": "12.5"}
    loan = by_type["loan_calc"]
    assert loan["fields"] == {"amount": "50000.10"}
    assert (
        server.count(
            "SELECT count(*) FROM rejected_activities WHERE source = 'snowplow' AND "
            "reason = 'activity_type_not_found' AND type_code LIKE '%screen_view%'"
        )
        >= 1
    )
    # The page ping was neither stored nor kept.
    assert server.count("SELECT count(*) FROM rejected_activities WHERE type_code = 'pp'") == 0


def test_contexts_are_kept_with_the_activity(server: WaypostServer) -> None:
    recorded = make_tracker(server.url, server.tracking_key, "post")
    duid = f"ctx-{uuid.uuid4().hex[:8]}"
    recorded.tracker.track(
        SelfDescribing(
            SelfDescribingJson(LOAN, {"amount": "1"}),
            event_subject=Subject().set_domain_user_id(duid),
            context=[SelfDescribingJson(USER_CONTEXT, {"tier": "gold"})],
        )
    )
    recorded.tracker.flush()
    [loan] = server.activities(contact_of(server, "snowplow_duid", duid))
    [flag] = loan["flags"]
    assert flag["field"] == "contexts"
    assert flag["value"] == [{"schema": USER_CONTEXT, "data": {"tier": "gold"}}]


def test_a_resent_request_is_stored_once(recorded: Recorded, server: WaypostServer) -> None:
    duid = f"resender-{uuid.uuid4().hex[:8]}"
    subject = Subject().set_domain_user_id(duid)
    recorded.tracker.track(PageView("https://shop.example/a", event_subject=subject))
    recorded.tracker.track(
        SelfDescribing(SelfDescribingJson(LOAN, {"amount": "2"}), event_subject=subject)
    )
    recorded.tracker.flush()
    assert recorded.failures == []
    contact = contact_of(server, "snowplow_duid", duid)
    before = server.activities(contact)
    assert len(before) == 2
    contacts_before = server.count("SELECT count(*) FROM contacts")
    for request in recorded.session.sent:
        for _ in range(2):
            answer = httpx.request(
                request.method, request.url, content=request.body, headers=request.headers
            )
            assert answer.status_code == 200, answer.text
    assert server.activities(contact) == before
    assert server.count("SELECT count(*) FROM contacts") == contacts_before


def test_a_bad_key_fails_without_retries(
    server: WaypostServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL)
    recorded = make_tracker(server.url, "wpt_wrong", "post")
    recorded.tracker.track(PageView("https://shop.example/"))
    recorded.tracker.flush()
    time.sleep(1.5)
    # 401 is not a status the tracker retries: one request, reported failed.
    assert [s.status for s in recorded.session.sent] == [401]
    assert len(recorded.failures) == 1


def test_a_storage_outage_is_a_503_the_tracker_retries(
    own_postgres: tuple[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL)
    name, url = own_postgres
    with running_server(tmp_path, database_url=url) as server:
        create_types(server)
        recorded = make_tracker(server.url, server.tracking_key, "post", max_retry_delay_seconds=2)
        refuse_connections(name, True)
        event_id: str | None = None
        try:
            event_id = recorded.tracker.track(
                PageView("https://shop.example/", event_subject=Subject().set_domain_user_id("o"))
            )
            recorded.tracker.flush()
        finally:
            refuse_connections(name, False)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if recorded.session.sent and recorded.session.sent[-1].status == 200:
                break
            time.sleep(0.1)
        statuses = [s.status for s in recorded.session.sent]
        assert statuses[0] == 503, statuses
        assert statuses[-1] == 200, statuses
        with psycopg.connect(url.replace("+psycopg", "")) as conn:
            stored = conn.execute(
                "SELECT count(*) FROM activities WHERE client_id = %s", (event_id,)
            ).fetchone()
        assert stored == (1,)


# -- @snowplow/browser-tracker in Chromium -------------------------------------------------------

# The tracker's UMD bundle (the global snowplowBrowserTracking), served from node_modules.
TRACKER_JS = NODE_MODULES / "@snowplow" / "browser-tracker" / "dist" / "index.umd.min.js"
PAGE = """<!doctype html>
<html><head><title>Loans</title>
<script src="/sp.js"></script>
<script>
  const sp = snowplowBrowserTracking;
  sp.newTracker("sp", %(collector)s, {appId: %(key)s});
  sp.trackPageView();
  sp.setUserId(%(user)s);
  sp.trackStructEvent({category: "media", action: "play", label: "intro.mp4", value: 3});
  sp.trackSelfDescribingEvent({event: {schema: %(loan)s, data: {amount: "2500.00"}}});
</script></head><body><h1>Loans</h1></body></html>
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
    files = {"/sp.js": TRACKER_JS}
    with (
        running_server(tmp_path_factory.mktemp("waypost")) as server,
        contextlib.closing(Site(files)) as site,
        contextlib.closing(Site(files)) as elsewhere,
    ):
        create_types(server, client_side=True)
        channel, key = website_of(server)
        allow_origins(server, channel, [site.origin])
        yield Pages(server, key, site, elsewhere)


def open_page(browser: Any, pages: Pages, site: Site, user: str) -> Iterator[PageVisit]:
    values = {
        "collector": json.dumps(pages.server.url),
        "key": json.dumps(pages.key),
        "user": json.dumps(user),
        "loan": json.dumps(LOAN),
    }
    site.pages[f"/{user}.html"] = PAGE % values
    yield from open_visit(browser, lambda page: PageVisit(site, page))


def test_the_browser_tracker_in_a_page_of_the_channel(browser: Any, pages: Pages) -> None:
    user = f"web-{uuid.uuid4().hex[:8]}"
    visits = open_page(browser, pages, pages.site, user)
    visit = next(visits)
    visit.goto(f"/{user}.html")
    server = pages.server

    def stored() -> list[dict[str, Any]] | None:
        query = (
            "SELECT count(*) FROM contact_external_ids WHERE kind = 'snowplow_uid' AND value = ?"
        )
        if not server.count(query, user):
            return None
        activities = server.activities(contact_of(server, "snowplow_uid", user))
        return activities if len(activities) >= 3 else None

    activities = wait_for(stored)
    by_type = {a["type"]: a for a in activities}
    assert sorted(by_type) == ["loan_calc", "pagevisit", "video_played"]
    visit_ = by_type["pagevisit"]
    assert (visit_["url"], visit_["value"]) == (f"{pages.site.url}/{user}.html", "Loans")
    assert by_type["video_played"]["value"] == "intro.mp4"
    assert by_type["loan_calc"]["fields"] == {"amount": "2500.00"}
    # The tracker's own contexts (the web page's id) are kept with each activity.
    [flag] = by_type["loan_calc"]["flags"]
    assert flag["field"] == "contexts"
    assert any("web_page" in context["schema"] for context in flag["value"])
    # The page view came before setUserId: the browser's visitor and the user are one contact.
    contact = contact_of(server, "snowplow_uid", user)
    with server.admin() as admin:
        got = admin.get(f"/api/contacts/{contact}").json()
    assert len(got["external_ids"]["snowplow_duid"]) == 1
    visit.shot("snowplow-browser-tracker")
    next(visits, None)


def test_the_browser_tracker_from_another_origin_is_refused(browser: Any, pages: Pages) -> None:
    user = f"elsewhere-{uuid.uuid4().hex[:8]}"
    visits = open_page(browser, pages, pages.elsewhere, user)
    visit = next(visits)
    # The browser reports the refused requests, and CORS keeps their answers from the page.
    visit.expect_error("CORS policy|Failed to load resource|net::ERR_FAILED|403")
    server = pages.server
    posted = re.compile(r'"POST /com.snowplowanalytics.snowplow/tp2 HTTP/1.1" 200')
    posts_before = len(posted.findall(server.output()))
    visit.goto(f"/{user}.html")
    # The tracker posts JSON, so the browser asks first; the preflight's answer allows no
    # other origin, and the browser sends nothing more.
    asked = re.compile(r'"OPTIONS /com.snowplowanalytics.snowplow/tp2 HTTP/1.1" 204')
    wait_for(lambda: asked.search(server.output()))
    time.sleep(0.5)
    assert len(posted.findall(server.output())) == posts_before
    assert server.count("SELECT count(*) FROM contact_external_ids WHERE value = ?", user) == 0
    next(visits, None)

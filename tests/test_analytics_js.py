"""Segment's analytics.js (``@segment/analytics-next`` from npm), unchanged, in Chromium
against a real `waypost serve`: its ``cdnURL`` points at Waypost, its write key is the website
channel's publishable key (docs/collectors.md).

analytics.js loads its settings from ``/v1/projects/<writeKey>/settings``, then sends page,
track and identify calls to ``/v1/p``, ``/v1/t`` and ``/v1/i`` with CORS. What arrived is read
back from the database. The version verified is listed in docs/collectors.md.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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
    from tests.sdk_support import WaypostServer, running_server
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
    from sdk_support import WaypostServer, running_server

# The version docs/collectors.md says was verified.
VERIFIED = "1.84"
PACKAGE = NODE_MODULES / "@segment" / "analytics-next"
# The UMD build, which the site serves from node_modules: nothing comes from Segment's CDN.
ANALYTICS_JS = PACKAGE / "dist" / "umd" / "index.js"
# The access log masks keys, and with them part of the path.
REFUSED = re.compile(r'"GET /v1/projects/\S+ HTTP/1.1" 403')
PAGE = """<!doctype html>
<html><head><title>Loans</title>
<script src="/analytics.js"></script>
<script>
  const analytics = AnalyticsNext.AnalyticsBrowser.load(
    {writeKey: %(key)s, cdnURL: %(host)s});
  analytics.page();
  analytics.track("Loan Calculated", {amount: "50000.10", years: 30});
  analytics.identify(%(user)s, {email: %(email)s, firstName: "Ann"});
</script></head><body><h1>Loans</h1></body></html>
"""


@dataclass
class Pages:
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
    files = {"/analytics.js": ANALYTICS_JS}
    with (
        running_server(tmp_path_factory.mktemp("waypost")) as server,
        contextlib.closing(Site(files)) as site,
        contextlib.closing(Site(files)) as elsewhere,
    ):
        with server.admin() as admin:
            answer = admin.post(
                "/api/activity-types",
                json={
                    "name": "Loan calculator usage",
                    "code_name": "loan_calculated",
                    "aliases": ["Loan Calculated"],
                    "client_side": True,
                    "fields": [
                        {"name": "amount", "type": "decimal", "primary": True},
                        {"name": "years", "type": "integer"},
                    ],
                },
            )
            assert answer.status_code == 201, answer.text
        channel, key = website_of(server)
        allow_origins(server, channel, [site.origin])
        yield Pages(server, key, site, elsewhere)


def open_page(browser: Any, pages: Pages, site: Site, user: str, key: str) -> Iterator[PageVisit]:
    values = {
        "key": json.dumps(key),
        "host": json.dumps(pages.server.url),
        "user": json.dumps(user),
        "email": json.dumps(f"{user}@example.com"),
    }
    site.pages[f"/{user}.html"] = PAGE % values
    yield from open_visit(browser, lambda page: PageVisit(site, page))


def contact_of(server: WaypostServer, kind: str, value: str) -> str | None:
    with sqlite3.connect(f"file:{server.database}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT c.id, c.merged_into FROM contact_external_ids e "
            "JOIN contacts c ON c.id = e.contact_id WHERE e.kind = ? AND e.value = ?",
            (kind, value),
        ).fetchall()
    conn.close()
    if not rows:
        return None
    contact, merged_into = rows[0]
    return str(uuid.UUID(merged_into or contact))


def test_the_installed_client_is_the_verified_one() -> None:
    require_browser_clients()
    version = json.loads((PACKAGE / "package.json").read_text())["version"]
    assert version.startswith(VERIFIED)


def test_analytics_js_in_a_page_of_the_channel(browser: Any, pages: Pages) -> None:
    user = f"ajs-{uuid.uuid4().hex[:8]}"
    visits = open_page(browser, pages, pages.site, user, pages.key)
    visit = next(visits)
    visit.goto(f"/{user}.html")
    server = pages.server

    def stored() -> list[dict[str, Any]] | None:
        contact = contact_of(server, "user_id", user)
        if contact is None:
            return None
        activities = server.activities(contact)
        return activities if len(activities) >= 2 else None

    activities = wait_for(stored)
    contact = contact_of(server, "user_id", user)
    with server.admin() as admin:
        got = admin.get(f"/api/contacts/{contact}").json()
    assert (got["email"], got["first_name"]) == (f"{user}@example.com", "Ann")
    # The anonymous id the page began with was merged into the identified user.
    assert got["external_ids"]["anonymous_id"]
    by_type = {a["type"]: a for a in activities}
    assert by_type["pagevisit"]["url"] == f"{pages.site.url}/{user}.html"
    assert by_type["loan_calculated"]["fields"] == {"amount": "50000.10", "years": 30}
    assert server.count("SELECT count(*) FROM rejected_activities") == 0
    visit.shot("analytics-js")
    next(visits, None)


def test_analytics_js_from_another_origin_is_refused(browser: Any, pages: Pages) -> None:
    user = f"elsewhere-{uuid.uuid4().hex[:8]}"
    before = len(REFUSED.findall(pages.server.output()))
    visits = open_page(browser, pages, pages.elsewhere, user, pages.key)
    visit = next(visits)
    # The settings are refused, so analytics.js never loads and sends nothing.
    visit.expect_error("CORS policy|Failed to load resource|net::ERR_FAILED|403|Failed to fetch")
    visit.goto(f"/{user}.html")
    server = pages.server
    wait_for(lambda: len(REFUSED.findall(server.output())) > before)
    assert contact_of(server, "user_id", user) is None
    next(visits, None)


def test_a_tracking_key_in_a_page_is_refused(browser: Any, pages: Pages) -> None:
    user = f"secret-{uuid.uuid4().hex[:8]}"
    before = len(REFUSED.findall(pages.server.output()))
    visits = open_page(browser, pages, pages.site, user, pages.server.tracking_key)
    visit = next(visits)
    visit.expect_error("CORS policy|Failed to load resource|net::ERR_FAILED|403|Failed to fetch")
    visit.goto(f"/{user}.html")
    server = pages.server
    wait_for(lambda: len(REFUSED.findall(server.output())) > before)
    assert contact_of(server, "user_id", user) is None
    next(visits, None)

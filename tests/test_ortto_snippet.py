"""Ortto's snippet, as Ortto's documentation writes it, in Chromium against a real `waypost
serve`: only the script's address and the key changed (docs/collectors.md).

The page is Ortto's tracking code (ap3c.cmd, the ap3c.activity line Ortto tells sites to add,
the script element it inserts) with the reference example's calls: ap3c.init, ap3c.track with
an email and names, and ap3c.activity with Ortto's typed attributes and the str::email system
key. What arrived is read back from the database.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.browser_support import PageVisit, launch, open_visit
    from tests.js_support import Site, allow_origins, require_browser_clients, wait_for, website_of
    from tests.sdk_support import WaypostServer, running_server
else:
    from browser_support import PageVisit, launch, open_visit
    from js_support import Site, allow_origins, require_browser_clients, wait_for, website_of
    from sdk_support import WaypostServer, running_server

# Ortto's tracking code with the line its documentation tells sites to add after
# ap3c.cmd.push, then the documentation's own example. Only the key and the script's address
# are Waypost's; ap3c.init's second argument stays Ortto's capture address.
SNIPPET = """<!doctype html>
<html><head><title>Account</title>
<script>
window.ap3c = window.ap3c || {};
var ap3c = window.ap3c;
ap3c.cmd = ap3c.cmd || [];
ap3c.cmd.push(function() {
  ap3c.init(%(key)s, 'https://capture-api.autopilotapp.com/');
  ap3c.track({"v":0,"email":%(user)s,"first":"John","last":"Apple"});
});
ap3c.activity = function(act) { ap3c.act = (ap3c.act || []); ap3c.act.push(act); };
var s, t; s = document.createElement('script'); s.type = 'text/javascript';
s.src = %(script)s;
t = document.getElementsByTagName('script')[0]; t.parentNode.insertBefore(s, t);
</script>
<script>
%(activity)s
</script>
</head><body><h1>Account</h1></body></html>
"""
# The example as reference 001 writes it: the activity outside the ap3c.cmd.push block.
OUTSIDE = """ap3c.activity({ "activity_id": "act:cm:login", "attributes": {
  "str::email": %(john)s, "str:cm:payment-plan": "$100 starter plan",
  "bol:cm:account-owner": true, "str:cm:web-browser": "Google Chrome" } });"""
# Without the added line, the activity must be inside the block (reference 004).
INSIDE = """ap3c.cmd.push(function() { ap3c.activity({ "activity_id": "act:cm:webinar-joined",
  "attributes": { "str:cm:webinar-name": "Spring rates" } }); });"""


@dataclass
class Ortto:
    server: WaypostServer
    key: str
    site: Site
    elsewhere: Site


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_browser_clients()
    yield from launch()


@pytest.fixture(scope="module")
def ortto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ortto]:
    require_browser_clients()
    with (
        running_server(tmp_path_factory.mktemp("waypost")) as server,
        contextlib.closing(Site({})) as site,
        contextlib.closing(Site({})) as elsewhere,
    ):
        with server.admin() as admin:
            for body in (
                {
                    "name": "Login",
                    "code_name": "login",
                    "client_side": True,
                    "fields": [
                        {"name": "payment_plan", "type": "text"},
                        {"name": "account_owner", "type": "boolean"},
                        {"name": "web_browser", "type": "text"},
                    ],
                },
                {
                    "name": "Webinar joined",
                    "code_name": "webinar_joined",
                    "client_side": True,
                    "fields": [{"name": "webinar_name", "type": "text"}],
                },
            ):
                answer = admin.post("/api/activity-types", json=body)
                assert answer.status_code == 201, answer.text
        channel, key = website_of(server)
        allow_origins(server, channel, [site.origin])
        yield Ortto(server, key, site, elsewhere)


def open_page(
    browser: Any, ortto: Ortto, site: Site, activity: str, **emails: str
) -> Iterator[PageVisit]:
    values = {
        "key": json.dumps(ortto.key),
        "script": json.dumps(f"{ortto.server.url}/waypost.js"),
        **{name: json.dumps(email) for name, email in emails.items()},
    }
    values["activity"] = activity % values
    page = f"/{uuid.uuid4().hex[:8]}.html"
    site.pages[page] = SNIPPET % values
    visits = open_visit(browser, lambda p: PageVisit(site, p))
    visit = next(visits)
    visit.goto(page)
    yield visit
    next(visits, None)


def rows(server: WaypostServer, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{server.database}?mode=ro", uri=True) as conn:
        found = conn.execute(sql, params).fetchall()
    conn.close()
    return found


def contact_with(server: WaypostServer, email: str) -> tuple[Any, ...] | None:
    found = rows(
        server,
        "SELECT id, first_name, last_name, attributes FROM contacts WHERE email = ?",
        email,
    )
    return found[0] if found else None


def activities_of(server: WaypostServer, contact: str) -> list[tuple[Any, ...]]:
    return rows(
        server,
        "SELECT t.code_name, a.fields, a.url FROM activities a JOIN activity_types t "
        "ON t.id = a.type_id WHERE a.contact_id = ? ORDER BY a.id",
        contact,
    )


def test_the_reference_example_identifies_and_logs(browser: Any, ortto: Ortto) -> None:
    server = ortto.server
    user, john = "user@emaildomain.com", "john@example.com"
    visits = open_page(browser, ortto, ortto.site, OUTSIDE, user=user, john=john)
    visit = next(visits)
    # ap3c.track named the visitor and logged the page view.
    named = wait_for(lambda: contact_with(server, user))
    assert named[1:3] == ("John", "Apple")
    visit_rows = wait_for(lambda: activities_of(server, named[0]))
    assert [(code, url) for code, _, url in visit_rows] == [
        ("pagevisit", visit.page.url),
    ]
    # The activity's str::email named another person: a new contact (a browser's claim never
    # reaches a contact that has the email already), the activity is theirs.
    john_row = wait_for(lambda: contact_with(server, john))
    [(code, fields, _)] = wait_for(lambda: activities_of(server, john_row[0]))
    assert code == "login"
    assert json.loads(fields) == {
        "payment_plan": "$100 starter plan",
        "account_owner": True,
        "web_browser": "Google Chrome",
    }
    visit.shot("ortto-snippet")
    next(visits, None)


def test_an_email_another_contact_has_is_only_a_claim(browser: Any, ortto: Ortto) -> None:
    server = ortto.server
    owner = f"owner-{uuid.uuid4().hex[:8]}@example.com"
    visitor = f"visitor-{uuid.uuid4().hex[:8]}@example.com"
    # One browser: the owner's contact, with its page view (and a login of another person).
    first = open_page(browser, ortto, ortto.site, OUTSIDE, user=owner, john=visitor)
    next(first)
    owner_row = wait_for(lambda: contact_with(server, owner))
    wait_for(lambda: activities_of(server, owner_row[0]))
    wait_for(lambda: contact_with(server, visitor))
    next(first, None)
    # Another browser claims the owner's email in an activity: no merge, no move.
    second = open_page(browser, ortto, ortto.site, OUTSIDE, user=f"x-{visitor}", john=owner)
    next(second)
    claimed = wait_for(
        lambda: rows(
            server,
            "SELECT id FROM contacts WHERE attributes LIKE ?",
            f'%"claimed_email": "{owner}"%',
        )
    )
    [(claimant,)] = claimed

    # The claim is written when the request's contact is worked out, before the writer
    # commits the request's activities: wait for those too.
    def claimant_codes() -> list[str] | None:
        codes = [code for code, _, _ in activities_of(server, claimant)]
        return codes if len(codes) >= 2 else None

    try:
        assert wait_for(claimant_codes) == ["pagevisit", "login"]
        assert [code for code, _, _ in activities_of(server, owner_row[0])] == ["pagevisit"]
        assert rows(server, "SELECT count(*) FROM contact_merges") == [(0,)]
    finally:
        next(second, None)


def test_an_activity_inside_the_block_without_the_added_line(browser: Any, ortto: Ortto) -> None:
    server = ortto.server
    user = f"webinar-{uuid.uuid4().hex[:8]}@example.com"
    page = SNIPPET.replace(
        "ap3c.activity = function(act) { ap3c.act = (ap3c.act || []); ap3c.act.push(act); };",
        "",
    )
    values = {
        "key": json.dumps(ortto.key),
        "script": json.dumps(f"{server.url}/waypost.js"),
        "user": json.dumps(user),
        "activity": INSIDE,
    }
    ortto.site.pages["/inside.html"] = page % values
    visits = open_visit(browser, lambda p: PageVisit(ortto.site, p))
    visit = next(visits)
    visit.goto("/inside.html")
    contact = wait_for(lambda: contact_with(server, user))
    found = wait_for(lambda: [r for r in activities_of(server, contact[0]) if r[0] != "pagevisit"])
    # act:cm:webinar-joined is the type webinar_joined, its key's - and _ alike.
    assert [(code, json.loads(fields)) for code, fields, _ in found] == [
        ("webinar_joined", {"webinar_name": "Spring rates"})
    ]
    next(visits, None)


def test_a_page_of_another_origin_is_refused(browser: Any, ortto: Ortto) -> None:
    server = ortto.server
    user = f"elsewhere-{uuid.uuid4().hex[:8]}@example.com"
    values = {
        "key": json.dumps(ortto.key),
        "script": json.dumps(f"{server.url}/waypost.js"),
        "user": json.dumps(user),
        "activity": "",
    }
    ortto.elsewhere.pages["/page.html"] = SNIPPET % values
    visits = open_visit(browser, lambda p: PageVisit(ortto.elsewhere, p))
    visit = next(visits)
    visit.expect_error("CORS policy|Failed to load resource|net::ERR_FAILED|403")
    visit.goto("/page.html")
    wait_for(
        lambda: '"POST /browser/identify?key=' in server.output() and " 403" in server.output()
    )
    assert contact_with(server, user) is None
    next(visits, None)

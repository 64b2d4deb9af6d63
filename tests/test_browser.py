"""waypost.js in a real browser (Debian's chromium through Playwright) against a real server.

A Waypost server, the demo site and a site of test pages run in threads on loopback ports, so
each is its own origin; a second copy of the test pages runs on an origin the channel does not
allow. Each test has a fresh browser context (no cookies), saves a screenshot under
test-artifacts/, and fails if a page logged a console error it did not expect.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
import sqlalchemy as sa
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from waypost.app import create_app
from waypost.demo import DemoSetup, create_demo_app, prepare_demo
from waypost.demo.pages import STUB, js
from waypost.domain.activity import Activity
from waypost.hub import Hub
from waypost.services.activities import ActivityQuery, RejectedQuery
from waypost.services.channels import ChannelUpdate
from waypost.settings import load_settings
from waypost.store import migrate
from waypost.store.schema import activities, consent_agreements, contacts, rejected_activities

if TYPE_CHECKING:
    from tests.browser_support import ARTIFACTS, CHROMIUM, launch
else:
    from browser_support import ARTIFACTS, CHROMIUM, launch

playwright_api = pytest.importorskip("playwright.sync_api")

REQUIRE_SERVICES = os.environ.get("WAYPOST_REQUIRE_SERVICES") == "1"
CONSENT = "TrackingConsent"

T = TypeVar("T")

if not Path(CHROMIUM).exists():
    MISSING = f"{CHROMIUM} is missing (apt-get install chromium; make test installs it as root)"
    if REQUIRE_SERVICES:
        pytest.fail(f"{MISSING}, and WAYPOST_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(MISSING, allow_module_level=True)


# -- servers ---------------------------------------------------------------------------------


class ServerThread:
    """A uvicorn server in a thread, on a loopback socket bound before it starts."""

    def __init__(self, app: Any) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.port: int = self.socket.getsockname()[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.socket.close()


# The test pages: the documented stub (under the global name asked for), then the page's calls,
# in <head>, so that they run before the async script can.
TEST_PAGES = {
    "blank": "",
    "queued": """
  wp("cookielevel", "visitor");
  wp("consent", {consent: "TrackingConsent", agree: true});
  wp("pagevisit");
  wp("click", {value: "queued-click"});
  wp("activity", {activity_id: "act:cm:custom_loan_calculator",
                  attributes: {"dec:cm:amount": "1234.50"}});
  document.documentElement.dataset.queued = wp.q.length;
""",
    "renamed": """
  document.documentElement.dataset.globals = JSON.stringify(Object.keys(window));
  bankTracker("cookielevel", "all");
  bankTracker("consent", {consent: "TrackingConsent", agree: true});
  bankTracker("customactivity", {type: "custom_loan_calculator", value: "777",
                                 title: "Loan calculator usage"});
""",
}


def pages_app(tracker_src: str, key: str) -> Starlette:
    async def show(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in TEST_PAGES:
            return Response("no such page", status_code=404)
        global_name = "bankTracker" if name == "renamed" else "wp"
        stub = STUB.replace('"wp"', js(global_name)) % (js(tracker_src), js(key))
        html = f"""<!doctype html><html><head><meta charset="utf-8">
<link rel="icon" href="data:,"><title>Test page {name}</title>
<script>
  {stub}
  {TEST_PAGES[name]}
</script></head><body><h1>Test page {name}</h1></body></html>"""
        return HTMLResponse(html)

    return Starlette(routes=[Route("/{name}", show)])


@dataclass
class Stack:
    """The running servers and the hub of the Waypost one, to look into its database."""

    hub: Hub
    api: ServerThread
    demo: ServerThread
    pages: ServerThread
    foreign: ServerThread
    setup: DemoSetup

    def count(self, table: sa.Table) -> int:
        with self.hub.store.read() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())

    def log(self, contact: str, type_code: str | None = None) -> list[Activity]:
        query = ActivityQuery(contact=uuid.UUID(contact), type=type_code, limit=1000)
        return list(reversed(self.hub.activities.log(query).data))  # oldest first

    def agreed(self, contact: str) -> bool:
        return self.hub.consents.state(uuid.UUID(contact), CONSENT).agreed


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    path = tmp_path_factory.mktemp("browser") / "waypost.db"
    settings = load_settings({"WAYPOST_DATABASE_URL": f"sqlite:///{path}"})
    hub = Hub(settings)
    migrate.upgrade(hub.store.engine)
    api = ServerThread(create_app(settings, hub=hub))
    setup = prepare_demo(hub, [])
    demo = ServerThread(create_demo_app(setup, api.origin))
    tracker_src = f"{api.origin}/waypost.js"
    pages = ServerThread(pages_app(tracker_src, setup.publishable_key))
    foreign = ServerThread(pages_app(tracker_src, setup.publishable_key))
    channel = hub.channels.get(setup.channel_id)
    hub.channels.update(
        channel.id,
        ChannelUpdate(allowed_origins=[*channel.allowed_origins, demo.origin, pages.origin]),
    )
    servers = [server.start() for server in (api, demo, pages, foreign)]
    try:
        yield Stack(hub, api, demo, pages, foreign, setup)
    finally:
        for server in servers:
            server.stop()
        hub.close()


# -- the browser -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch()


@dataclass
class Visit:
    """A fresh browser context and page, with what the page logged and sent."""

    context: Any
    page: Any
    errors: list[str] = field(default_factory=list)
    expected_errors: list[re.Pattern[str]] = field(default_factory=list)
    sent: list[Any] = field(default_factory=list)  # requests to /browser/*

    def expect_error(self, pattern: str) -> None:
        self.expected_errors.append(re.compile(pattern))

    def cookie(self, name: str) -> str | None:
        for cookie in self.context.cookies():
            if cookie["name"] == name:
                return str(cookie["value"])
        return None

    def contact(self) -> str:
        return self.eventually(lambda: self.cookie("wp_contact"), "the wp_contact cookie")

    def eventually(self, check: Callable[[], T | None], what: str) -> T:
        """:func:`eventually`, letting Playwright deliver the page's events meanwhile."""
        return eventually(check, what, sleep=lambda s: self.page.wait_for_timeout(s * 1000))


@pytest.fixture
def visit(browser: Any, request: pytest.FixtureRequest) -> Iterator[Visit]:
    context = browser.new_context()
    context.set_default_timeout(10_000)
    page = context.new_page()
    visit = Visit(context, page)

    def on_console(message: Any) -> None:
        if message.type == "error":
            visit.errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: visit.errors.append(f"uncaught: {error}"))
    page.on("request", lambda r: visit.sent.append(r) if "/browser/" in r.url else None)
    try:
        yield visit
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / f"browser-{request.node.name}.png", full_page=True)
        context.close()
    unexpected = [e for e in visit.errors if not any(p.search(e) for p in visit.expected_errors)]
    assert unexpected == [], unexpected


def eventually(
    check: Callable[[], T | None],
    what: str,
    timeout: float = 10,
    sleep: Callable[[float], object] = time.sleep,
) -> T:
    """Poll ``check`` until it gives something truthy (sends are asynchronous)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        sleep(0.05)


def wait_for_types(stack: Stack, contact: str, *codes: str) -> list[Activity]:
    """The contact's log once it holds ``codes`` (in this order, oldest first)."""

    def done() -> list[Activity] | None:
        log = stack.log(contact)
        return log if [a.type for a in log] == list(codes) else None

    try:
        return eventually(done, f"activities {codes}")
    except AssertionError:
        have = [a.type for a in stack.log(contact)]
        raise AssertionError(f"wanted {codes}, have {have}") from None


# -- the demo site ---------------------------------------------------------------------------


def test_nothing_is_logged_before_consent(stack: Stack, visit: Visit) -> None:
    before = {t.name: stack.count(t) for t in (contacts, activities, rejected_activities)}
    page = visit.page
    page.goto(stack.demo.origin)
    assert page.locator("#consent-banner").is_visible()
    page.click("#btnCTA")
    page.wait_for_url("**/loans#offers")
    page.fill("#amount", "30000")
    page.click("#calculate")
    assert "Monthly payment" in page.inner_text("#result")
    page.goto(f"{stack.demo.origin}/login")
    page.fill("#email", "early@example.com")
    page.fill("#password", "secret")
    page.click("#login")
    page.wait_for_url("**/account")
    page.wait_for_load_state("networkidle")
    assert visit.sent == []
    assert visit.cookie("wp_contact") is None
    assert {t.name: stack.count(t) for t in (contacts, activities, rejected_activities)} == before


WIDEST = """(width) => {
  const wide = [...document.querySelectorAll('body *')]
    .filter((e) => e.getBoundingClientRect().right > width + 0.5)
    .map((e) => e.id || e.className || e.tagName);
  return {scroll: document.scrollingElement.scrollWidth, wide: wide};
}"""


def test_the_demo_site_fits_a_phone(stack: Stack, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        demo = stack.demo.origin
        page.goto(f"{demo}/login")
        page.fill("#email", "phone@example.com")
        page.fill("#first", "Pat")
        page.fill("#password", "secret")
        page.click("#login")
        page.wait_for_url("**/account")
        # Logged in, the header holds the most; the consent banner is still open.
        for path in ("/account", "/", "/loans", "/offers", "/login"):
            page.goto(demo + path)
            fits = page.evaluate(WIDEST, 390)
            assert fits == {"scroll": 390, "wide": []}, (path, fits)
            assert page.locator("#consent-banner").is_visible()
            name = path.strip("/") or "home"
            page.screenshot(path=ARTIFACTS / f"demo-phone-{name}.png", full_page=True)
    finally:
        context.close()
    assert errors == []


def test_the_bank_scenario(stack: Stack, visit: Visit) -> None:
    page = visit.page
    demo = stack.demo.origin
    page.goto(demo)
    banner = page.locator("#consent-banner")
    assert stack.setup.consent_text.short_text in banner.inner_text()
    page.click("#consent-accept")
    assert banner.is_hidden()
    contact = visit.contact()
    assert visit.cookie("wp_cookielevel") == "visitor"
    assert stack.agreed(contact)
    [visit_home] = wait_for_types(stack, contact, "pagevisit")
    assert visit_home.url == f"{demo}/"
    assert visit_home.value == "Home · Waypost Bank"

    # The CTA is a link: its click is sent as the page goes away, and still arrives.
    page.click("#btnCTA")
    page.wait_for_url("**/loans#offers")
    log = wait_for_types(stack, contact, "pagevisit", "click", "pagevisit")
    assert log[1].value == "btnCTA"
    assert log[1].title == "Clicked 'btnCTA'"
    assert log[2].url == f"{demo}/loans#offers"
    assert log[2].referrer == f"{demo}/"

    page.fill("#amount", "25000")
    page.click("#calculate")
    [loan] = eventually(lambda: stack.log(contact, "custom_loan_calculator"), "the loan activity")
    assert loan.fields == {"amount": "25000"}
    assert loan.title == "Loan calculator usage '25000'"

    page.click("header >> text=Log in")
    page.fill("#email", "Jane.Doe@example.com")
    page.fill("#first", "Jane")
    page.fill("#last", "Doe")
    page.fill("#password", "secret")
    page.click("#login")
    page.wait_for_url("**/account")
    eventually(lambda: stack.hub.contacts.get(uuid.UUID(contact)).email, "the contact's email")
    person = stack.hub.contacts.get(uuid.UUID(contact))
    assert (person.email, person.first_name, person.last_name) == (
        "Jane.Doe@example.com",
        "Jane",
        "Doe",
    )
    assert visit.cookie("wp_contact") == contact
    wait_for_types(
        stack, contact, "pagevisit", "click", "pagevisit", "custom_loan_calculator", "pagevisit",
        "pagevisit",
    )  # fmt: skip

    # Revoking: the agreement is withdrawn, the contact cookie goes, and nothing more is sent.
    page.click("#privacy-settings")
    page.click("#consent-decline")
    assert visit.cookie("wp_cookielevel") == "essential"
    assert visit.cookie("wp_contact") is None
    eventually(lambda: not stack.agreed(contact), "the revocation")
    sent = len(visit.sent)
    page.goto(f"{demo}/loans")
    page.click("#calculate")
    page.wait_for_load_state("networkidle")
    assert len(visit.sent) == sent
    assert len(stack.log(contact)) == 6


def test_login_joins_the_customer_the_bank_knows(stack: Stack, visit: Visit) -> None:
    channel = stack.hub.channels.get(stack.setup.channel_id)
    known = stack.hub.contacts.identify(
        channel.id, channel.identity_secret, None, "known@example.com", {}, None
    ).contact
    page = visit.page
    page.goto(stack.demo.origin)
    page.click("#consent-accept")
    browser_contact = visit.contact()
    wait_for_types(stack, browser_contact, "pagevisit")
    page.goto(f"{stack.demo.origin}/login")
    page.fill("#email", "KNOWN@example.com")
    page.fill("#password", "secret")
    page.click("#login")
    page.wait_for_url("**/account")
    # The demo's backend signed the email, so the browser's contact merges into the known one
    # and the tracker keeps the known one from then on.
    visit.eventually(lambda: visit.cookie("wp_contact") == str(known), "the merged contact")
    wait_for_types(stack, str(known), "pagevisit", "pagevisit", "pagevisit")
    assert stack.agreed(str(known))


def test_the_offers_page_shows_a_loan_calculator_user_the_personal_offer(
    stack: Stack, visit: Visit
) -> None:
    page = visit.page
    demo = stack.demo.origin
    page.goto(f"{demo}/offers")
    assert page.locator("#generic-offer").is_visible()
    page.click("#consent-accept")
    contact = visit.contact()
    page.click("#offer-cta")
    page.wait_for_url("**/loans")
    page.fill("#amount", "30000")
    page.click("#calculate")
    eventually(lambda: stack.log(contact, "custom_loan_calculator"), "the loan activity")
    # The demo's group follows the activity in the background, within a second of its 202.
    stored = time.monotonic()
    group, who = stack.setup.group_id, uuid.UUID(contact)
    eventually(lambda: stack.hub.groups.check(group, who, None).member, "the membership", 1.0)
    assert time.monotonic() - stored < 1.0

    page.click("header >> text=Offers")
    page.wait_for_url("**/offers")
    offer = page.locator("#personal-offer")
    assert offer.is_visible()
    assert "A personal rate for your loan" in offer.inner_text()
    assert page.locator("#generic-offer").count() == 0
    assert stack.setup.admin_key not in page.content()
    (ARTIFACTS / "screenshots").mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / "screenshots" / "demo-offer.png", full_page=True)
    log = wait_for_types(
        stack, contact, "pagevisit", "click", "pagevisit", "custom_loan_calculator", "pagevisit"
    )
    assert log[1].value == "generic-offer"


def test_the_eleventh_loan_calculation_of_a_day_is_rate_limited(stack: Stack, visit: Visit) -> None:
    visit.expect_error(r"status of 429")
    answers: list[int] = []
    visit.page.on(
        "response", lambda r: answers.append(r.status) if "/browser/activity" in r.url else None
    )
    page = visit.page
    page.goto(f"{stack.demo.origin}/loans")
    page.click("#consent-accept")
    contact = visit.contact()
    visit.eventually(lambda: answers == [202], "the page visit")
    page.fill("#amount", "40000")
    for _ in range(11):
        page.click("#calculate")
    visit.eventually(lambda: len(answers) == 12, "twelve answers")
    assert sorted(answers) == [202] * 11 + [429]
    visit.eventually(lambda: any("status of 429" in e for e in visit.errors), "the 429 error")
    assert len(stack.log(contact, "custom_loan_calculator")) == 10
    [rejected] = [
        r
        for r in stack.hub.activities.rejected(RejectedQuery(reason="rate_limited")).data
        if r.contact == uuid.UUID(contact)
    ]
    assert (rejected.status, rejected.type, rejected.source) == (
        429,
        "custom_loan_calculator",
        "browser",
    )


# -- the tracker on other pages --------------------------------------------------------------


def test_calls_made_before_the_script_loaded_are_kept(stack: Stack, visit: Visit) -> None:
    page = visit.page
    page.goto(f"{stack.pages.origin}/queued")
    assert page.get_attribute("html", "data-queued") == "5"
    contact = visit.contact()
    log = wait_for_types(stack, contact, "pagevisit", "click", "custom_loan_calculator")
    assert log[0].value == "Test page queued"
    assert log[1].value == "queued-click"
    assert log[2].fields == {"amount": "1234.50"}
    assert page.evaluate("typeof wp === 'function' && wp.q === undefined")


def test_a_renamed_global(stack: Stack, visit: Visit) -> None:
    page = visit.page
    page.goto(f"{stack.pages.origin}/renamed")
    contact = visit.contact()
    [loan] = wait_for_types(stack, contact, "custom_loan_calculator")
    assert (loan.value, loan.title) == ("777", "Loan calculator usage")
    assert visit.cookie("wp_cookielevel") == "all"
    assert page.evaluate("typeof bankTracker === 'function' && typeof wp === 'undefined'")
    # The script added no global of its own: only the stub's two are there.
    added = page.evaluate(
        """() => {
          const before = JSON.parse(document.documentElement.dataset.globals);
          return Object.keys(window).filter((name) => !before.includes(name));
        }"""
    )
    assert added == []
    assert page.evaluate("[window.WaypostObject, typeof bankTracker.q]") == [
        "bankTracker",
        "undefined",
    ]


def test_a_page_on_an_origin_the_channel_does_not_allow_is_refused(
    stack: Stack, visit: Visit
) -> None:
    visit.expect_error(r"blocked by CORS policy")
    visit.expect_error(r"net::ERR_FAILED")
    failed: list[str] = []
    visit.page.on("requestfailed", lambda r: failed.append(r.url))
    before = {
        t.name: stack.count(t)
        for t in (contacts, consent_agreements, activities, rejected_activities)
    }
    page = visit.page
    page.goto(f"{stack.foreign.origin}/blank")
    page.evaluate(
        """() => {
          wp("cookielevel", "visitor");
          wp("consent", {consent: "TrackingConsent", agree: true});
          wp("pagevisit");
        }"""
    )
    visit.eventually(lambda: failed, "the refused request")
    assert "/browser/consent" in failed[0]
    page.wait_for_load_state("networkidle")
    assert visit.cookie("wp_contact") is None
    visit.eventually(lambda: any("CORS policy" in e for e in visit.errors), "the CORS error")
    after = {
        t.name: stack.count(t)
        for t in (contacts, consent_agreements, activities, rejected_activities)
    }
    assert after == before


def test_a_send_that_failed_offline_is_sent_again_online(stack: Stack, visit: Visit) -> None:
    visit.expect_error(r"net::ERR_INTERNET_DISCONNECTED")
    page = visit.page
    page.goto(f"{stack.pages.origin}/blank")
    page.evaluate(
        """() => {
          wp("cookielevel", "visitor");
          wp("consent", {consent: "TrackingConsent", agree: true});
        }"""
    )
    contact = visit.contact()
    visit.context.set_offline(True)
    page.evaluate("() => wp('click', {value: 'offline'})")
    visit.eventually(lambda: visit.errors, "the failed send")
    assert stack.log(contact) == []
    visit.context.set_offline(False)
    [click] = wait_for_types(stack, contact, "click")
    assert click.value == "offline"


def test_sends_go_by_beacon_while_the_page_is_hidden(stack: Stack, visit: Visit) -> None:
    page = visit.page
    page.goto(f"{stack.pages.origin}/blank")
    page.evaluate(
        """() => {
          wp("cookielevel", "visitor");
          wp("consent", {consent: "TrackingConsent", agree: true});
        }"""
    )
    contact = visit.contact()
    page.evaluate(
        """() => {
          window.dispatchEvent(new PageTransitionEvent("pagehide"));
          wp("click", {value: "leaving"});
        }"""
    )
    [click] = wait_for_types(stack, contact, "click")
    assert click.value == "leaving"
    assert visit.sent[-1].resource_type in ("ping", "beacon"), visit.sent[-1].resource_type


# -- a page that goes away before the consent's answer ----------------------------------------


def consent_bodies(visit: Visit) -> list[dict[str, Any]]:
    """What the page sent to /browser/consent, in order."""
    return [json.loads(r.post_data) for r in visit.sent if "/browser/consent" in r.url]


def delay_consents(visit: Visit, seconds: float) -> None:
    """A slow network between the browser and Waypost, for consents: each is held ``seconds``
    before it goes on to the server."""

    def slow(route: Any) -> None:
        visit.page.wait_for_timeout(seconds * 1000)
        route.continue_()

    visit.context.route("**/browser/consent?*", slow)


def test_leaving_before_the_consents_answer_the_next_page_recovers(
    stack: Stack, visit: Visit
) -> None:
    delay_consents(visit, 0.3)
    before = (stack.count(contacts), stack.count(consent_agreements))
    page = visit.page
    page.goto(stack.demo.origin)
    page.click("#consent-accept")
    page.wait_for_timeout(100)
    assert visit.cookie("wp_contact") is None
    assert visit.cookie("wp_pending_consent") is not None
    # The visitor moves on before the answer: it never reaches the page that asked.
    page.goto(f"{stack.demo.origin}/loans")
    assert page.locator("#consent-banner").is_hidden()
    contact = visit.contact()
    visit.eventually(lambda: visit.cookie("wp_pending_consent") is None, "the pending cleared")
    # The loans page's visit waited for the contact. The home page's was dropped with it when
    # the visitor left before the answer came; on a busy machine the old page may still be
    # there when the answer comes (the next page's first response is slow), and logs its visit.
    loans = f"{stack.demo.origin}/loans"

    def loans_logged() -> list[Activity] | None:
        log = stack.log(contact)
        return log if any(a.url == loans for a in log) else None

    visits = visit.eventually(loans_logged, "the loans page's visit")
    assert [a.type for a in visits] in (["pagevisit"], ["pagevisit", "pagevisit"])
    assert visits[-1].url == loans
    assert all((a.url or "").removeprefix(stack.demo.origin) in ("", "/") for a in visits[:-1])
    page.fill("#amount", "20000")
    page.click("#calculate")
    wait_for_types(stack, contact, *(a.type for a in visits), "custom_loan_calculator")

    # The agreement arrived more than once (the first send, maybe a beacon, the next page's),
    # always with one id: one contact, one agreement. (Once, if the home page had its answer.)
    bodies = consent_bodies(visit)
    assert len(bodies) >= (1 if len(visits) == 2 else 2)
    assert {b["id"] for b in bodies} == {bodies[0]["id"]}
    assert all("contact" not in b for b in bodies)
    page.wait_for_load_state("networkidle")
    assert (stack.count(contacts), stack.count(consent_agreements)) == (
        before[0] + 1,
        before[1] + 1,
    )
    assert stack.agreed(contact)


def test_leaving_twice_before_the_answer(stack: Stack, visit: Visit) -> None:
    delay_consents(visit, 0.3)
    before = stack.count(contacts)
    page = visit.page
    page.goto(stack.demo.origin)
    page.click("#consent-accept")
    page.wait_for_timeout(100)
    page.goto(f"{stack.demo.origin}/offers")
    page.wait_for_timeout(100)
    page.goto(f"{stack.demo.origin}/loans")
    contact = visit.contact()
    [visit_loans] = wait_for_types(stack, contact, "pagevisit")
    assert visit_loans.url == f"{stack.demo.origin}/loans"
    page.wait_for_load_state("networkidle")
    assert stack.count(contacts) == before + 1


def refuse_first_consent(visit: Visit) -> None:
    """Waypost is out of order for the first consent: 503, as from a database outage."""
    refused: list[str] = []

    def route(route: Any) -> None:
        if refused:
            route.continue_()
            return
        refused.append(route.request.url)
        body = {"error": {"code": "storage_unavailable", "message": "Try again."}}
        route.fulfill(
            status=503,
            json=body,
            headers={"Access-Control-Allow-Origin": "*", "Retry-After": "1"},
        )

    visit.context.route("**/browser/consent?*", route)
    visit.expect_error(r"status of 503")


def test_an_agreement_answered_503_is_sent_again_from_the_next_page(
    stack: Stack, visit: Visit
) -> None:
    refuse_first_consent(visit)
    page = visit.page
    page.goto(stack.demo.origin)
    page.click("#consent-accept")
    visit.eventually(lambda: visit.errors, "the 503")
    assert visit.cookie("wp_contact") is None
    assert visit.cookie("wp_pending_consent") is not None
    page.click("header >> text=Loans")
    page.wait_for_url("**/loans")
    contact = visit.contact()
    wait_for_types(stack, contact, "pagevisit")
    assert visit.cookie("wp_pending_consent") is None
    first, second = consent_bodies(visit)
    assert first == second
    assert first["agree"] is True


def test_accepting_again_after_a_503_sends_the_same_agreement(stack: Stack, visit: Visit) -> None:
    refuse_first_consent(visit)
    before = stack.count(contacts)
    page = visit.page
    page.goto(stack.demo.origin)
    page.click("#consent-accept")
    visit.eventually(lambda: visit.errors, "the 503")
    page.click("#privacy-settings")
    page.click("#consent-accept")
    contact = visit.contact()
    first, second = consent_bodies(visit)
    assert first == second
    assert visit.cookie("wp_pending_consent") is None
    assert stack.agreed(contact)
    assert stack.count(contacts) == before + 1


def test_declining_an_agreement_that_was_never_answered(stack: Stack, visit: Visit) -> None:
    refuse_first_consent(visit)
    before = (stack.count(contacts), stack.count(consent_agreements))
    page = visit.page
    page.goto(stack.demo.origin)
    page.click("#consent-accept")
    visit.eventually(lambda: visit.errors, "the 503")
    page.click("#privacy-settings")
    page.click("#consent-decline")
    # The revocation names the agreement by its id: had the agreement reached Waypost, the
    # contact it made would be revoked; it did not, so Waypost makes none for it, ever.
    visit.eventually(lambda: len(consent_bodies(visit)) == 2, "the revocation")
    agreement, revocation = consent_bodies(visit)
    assert revocation == {"consent": CONSENT, "agree": False, "id": agreement["id"]}
    page.wait_for_load_state("networkidle")
    assert visit.cookie("wp_pending_consent") is None
    assert visit.cookie("wp_cookielevel") == "essential"
    page.goto(f"{stack.demo.origin}/loans")
    page.wait_for_load_state("networkidle")
    assert len(consent_bodies(visit)) == 2
    assert (stack.count(contacts), stack.count(consent_agreements)) == before

"""Contact groups and the dashboard in a real browser (Debian's chromium through Playwright).

One server for the module, on a SQLite file, with a marketer, an activity type with a field,
a consent, and six contacts whose activities arrive through the tracking API. Each test gets a
fresh browser context, saves screenshots under test-artifacts/screenshots/, and fails if a page
logged a console error (Content-Security-Policy violations included).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import msgspec
import pytest

from waypost.app import create_app
from waypost.hub import Hub
from waypost.services.activity_types import ActivityTypeCreate
from waypost.services.channels import ChannelCreate
from waypost.services.consents import ConsentCreate
from waypost.services.groups import GroupCreate
from waypost.services.keys import KeyCreate
from waypost.services.users import UserCreate

if TYPE_CHECKING:
    from tests.admin_support import PASSWORD
    from tests.browser_support import PageVisit, admin_hub, launch, open_visit
    from tests.test_browser import ServerThread
else:
    from admin_support import PASSWORD
    from browser_support import PageVisit, admin_hub, launch, open_visit
    from test_browser import ServerThread

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

MARKETER = "groups-marketer@example.com"
# Logged to the console by the page itself, so that a violation fails the test even where
# the browser would only report it.
CSP_REPORTER = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error("CSP violation: " + event.violatedDirective + " " + event.blockedURI);
});
"""


@dataclass
class Site:
    hub: Hub
    server: ServerThread
    contacts: list[uuid.UUID]

    @property
    def url(self) -> str:
        return self.server.origin


def _track(site_url: str, key: str, channel: uuid.UUID, contact: str, activities: Any) -> None:
    answer = httpx.post(
        f"{site_url}/tracking/activities",
        json={"channel": str(channel), "contact": contact, "activities": activities},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert answer.status_code == 207, answer.text


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    settings, hub = admin_hub(tmp_path_factory, "groups-browser")
    hub.users.create(UserCreate(email=MARKETER, role="marketer", password=PASSWORD))
    fields = [
        {"name": "amount", "type": "decimal"},
        {"name": "years", "type": "integer"},
        {"name": "plan", "type": "text"},
    ]
    loan = {"name": "Loan calculator", "fields": fields}
    hub.types.create(msgspec.convert(loan, ActivityTypeCreate))
    consent = {
        "code_name": "Newsletter",
        "display_name": "Newsletter",
        "texts": {"en": {"short_text": "News", "full_text": "News"}},
    }
    hub.consents.create(msgspec.convert(consent, ConsentCreate))
    channel = hub.channels.create(ChannelCreate(name="Bank", kind="headless"))
    key = hub.keys.create(KeyCreate(access="tracking", channel=channel.id, name="")).key
    server = ServerThread(create_app(settings, hub=hub)).start()
    try:
        contacts = []
        for n in range(6):
            answer = httpx.post(
                f"{server.origin}/tracking/contacts", headers={"Authorization": f"Bearer {key}"}
            )
            contact = answer.json()["contact"]
            contacts.append(uuid.UUID(contact))
            # Everyone clicked; three used the loan calculator, with these amounts.
            loans = {0: ["60000"] * 4, 1: ["1000"] * 3, 2: ["70000"]}.get(n, [])
            _track(
                server.origin,
                key,
                channel.id,
                contact,
                [{"type": "click", "value": "cta"}]
                + [{"type": "loan_calculator", "fields": {"amount": a}} for a in loans],
            )
        for n in (0, 2):
            hub.consents.agree(contacts[n], "Newsletter", True, None)
        _track(server.origin, key, channel.id, str(contacts[5]), [{"type": "no_such_type"}])
        yield Site(hub, server, contacts)
    finally:
        server.stop()
        hub.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch()


class Visit(PageVisit):
    """A visit of the group pages (see browser_support.PageVisit)."""

    def log_in(self) -> None:
        self.sign_in("/admin/groups", MARKETER, PASSWORD)

    def count_is(self, pattern: str) -> None:
        """The live count, once the one asked for after the last change has arrived."""
        done = self.page.locator("#condition-count[aria-busy=false]")
        expect(done).to_have_text(re.compile(pattern))

    def condition(self) -> Any:
        return json.loads(self.page.input_value("#condition"))


def _visit(browser: Any, site: Site, **options: Any) -> Iterator[Visit]:
    yield from open_visit(browser, lambda page: Visit(site, page), CSP_REPORTER, **options)


@pytest.fixture
def visit(browser: Any, site: Site) -> Iterator[Visit]:
    yield from _visit(browser, site)


# -- the tests -------------------------------------------------------------------------------


def test_build_a_group_with_the_builder(visit: Visit) -> None:
    page = visit.page
    visit.log_in()
    visit.shot("groups-list-empty")
    page.click("text=New contact group")
    page.wait_for_url("**/admin/groups/new")
    # The builder replaces the JSON (folded away, kept in step) and counts at once.
    expect(page.locator("#condition-builder")).to_be_visible()
    assert not page.is_visible("#condition")
    visit.count_is(r"^0 contacts match")  # nobody visited a page
    page.fill("#name", "Big loan shoppers")
    page.fill("#description", "Ran the loan calculator for a big loan, or agreed to news.")

    page.select_option("#cb-0-type", "click")
    visit.count_is(r"^6 contacts match")
    page.select_option("#cb-0-type", "loan_calculator")
    visit.count_is(r"^3 contacts match")
    page.fill("#cb-0-n", "3")
    visit.count_is(r"^2 contacts match")
    page.click("#cb-0-add-filter")
    page.select_option("#cb-0-f0-op", "gte")
    page.fill("#cb-0-f0-value", "50000")
    visit.count_is(r"^1 contact matches")
    page.select_option("#cb-add-kind", "consent")
    page.click("#cb-add")
    expect(page.locator("#cb-1-consent")).to_be_focused()
    visit.count_is(r"^1 contact matches")  # all of: c0 alone
    page.select_option("#cb-match", "any")
    visit.count_is(r"^2 contacts match")  # c0 or c2
    assert visit.condition() == {
        "any": [
            {
                "activity": {
                    "type": "loan_calculator",
                    "at_least": 3,
                    "within_days": 30,
                    "fields": {"amount": {"gte": "50000"}},
                }
            },
            {"consent": "Newsletter"},
        ]
    }
    # A condition the service refuses shows its message instead of a count.
    page.fill("#cb-0-days", "0")
    visit.count_is(r"^Not valid yet: .*within_days")
    visit.expect_error(r"status of 400")
    page.fill("#cb-0-days", "30")
    visit.count_is(r"^2 contacts match")
    visit.shot("groups-builder")

    page.click("text=Create group")
    page.wait_for_url("**/admin/groups/*")
    assert "Created the group Big loan shoppers: 2 contacts" in page.inner_text(".flash")
    assert page.inner_text("#member-count") == "2"
    links = page.locator("#members-heading ~ .table-wrap tbody a")
    expect(links).to_have_count(2)
    hrefs = {links.nth(i).get_attribute("href") for i in range(2)}
    site = visit.site
    assert hrefs == {f"/admin/contacts/{site.contacts[0]}", f"/admin/contacts/{site.contacts[2]}"}
    chart = page.locator("#membership svg[role=img]")
    expect(chart).to_be_visible()
    assert "Members per day" in (chart.locator("title").first.text_content() or "")
    today = page.locator("#membership circle").last.locator("title").text_content()
    assert today.endswith(": 2 members")
    assert "At least one of these:" in page.inner_text(".condition-text")
    visit.shot("groups-show")


def test_edit_the_json_by_hand_and_use_another_group(visit: Visit) -> None:
    page = visit.page
    groups = visit.site.hub.groups
    base = groups.create(GroupCreate(name="Clickers", condition={"activity": {"type": "click"}}))
    groups.create(GroupCreate(name="Newsletter fans", condition={"consent": "Newsletter"}))
    visit.log_in()
    visit.shot("groups-list")
    visit.goto(f"/admin/groups/{base.id}/edit")
    # A single condition is shown as "all of" it; the JSON stays as it was until a change.
    expect(page.locator("#cb-0-type")).to_have_value("click")
    assert visit.condition() == {"activity": {"type": "click"}}
    visit.count_is(r"^6 contacts match")
    page.click("summary:text('Condition as JSON')")
    page.fill("#condition", '{"all": [')
    expect(page.locator("#condition-builder-note")).to_contain_text("not valid yet")
    assert not page.is_visible("#condition-builder")
    visit.count_is(r"^No count: the JSON is not valid")
    page.fill("#condition", '{"not": {"consent": "Newsletter"}}')
    expect(page.locator("#condition-builder")).to_be_visible()
    expect(page.locator("#cb-0-not")).to_be_checked()
    visit.count_is(r"^4 contacts match")
    page.select_option("#cb-add-kind", "group")
    page.click("#cb-add")
    # A group cannot use itself: only the others are offered.
    offered = page.locator("#cb-1-group option").all_inner_texts()
    assert "Newsletter fans" in offered
    assert "Clickers" not in offered
    page.select_option("#cb-1-group", label="Newsletter fans")
    visit.count_is(r"^0 contacts match")
    page.select_option("#cb-match", "any")
    visit.count_is(r"^6 contacts match")
    visit.shot("groups-edit")
    page.click("text=Save")
    page.wait_for_url(f"**/admin/groups/{base.id}")
    assert "Saved the group Clickers: 6 contacts" in page.inner_text(".flash")
    changed = groups.get(base.id)
    assert changed.condition["any"][0] == {"not": {"consent": "Newsletter"}}
    assert changed.member_count == 6
    assert "In the group Newsletter fans" in page.inner_text(".condition-text")


def test_without_scripts_the_json_and_the_count_button_do_it(browser: Any, site: Site) -> None:
    for visit in _visit(browser, site, java_script_enabled=False):
        page = visit.page
        visit.log_in()
        visit.goto("/admin/groups/new")
        assert not page.is_visible("#condition-builder")
        page.fill("#name", "Newsletter readers")
        page.fill("#condition", '{"consent": "Newsletter"}')
        page.click("text=Count contacts")
        assert page.inner_text("#condition-count").startswith("2 contacts match")
        assert page.input_value("#name") == "Newsletter readers"
        visit.shot("groups-form-no-script")
        page.click("text=Create group")
        page.wait_for_url("**/admin/groups/*")
        assert page.inner_text("#member-count") == "2"


def test_the_dashboard_charts(visit: Visit) -> None:
    page = visit.page
    visit.log_in()
    page.click("#site-nav >> text=Dashboard")
    page.wait_for_url(re.compile(r".*/admin$"))
    assert page.inner_text("#total-activities") == "14"  # 6 clicks, 8 loan calculations
    assert page.inner_text("#total-contacts") == "6"
    assert page.inner_text("#total-rejected") == "1"
    charts = page.locator("figure.chart > svg[role=img]")
    expect(charts).to_have_count(4)
    legend = page.locator("#activities-chart .chart-legend li")
    assert sorted(legend.all_inner_texts()) == ["Click", "Loan calculator"]
    today = page.locator("#activities-chart .chart-bars rect title").all_text_contents()
    assert any(t.endswith("Loan calculator 8") for t in today), today
    reason = page.locator("#rejected-chart rect title").text_content()
    assert reason == "Unknown activity type (activity_type_not_found): 1"
    page.click("#activities-chart summary")
    expect(page.locator("#activities-chart table")).to_be_visible()
    visit.shot("dashboard")
    page.click(".period >> text=7 days")
    page.wait_for_url("**/admin?days=7")
    assert page.locator("#activities-chart .chart-x text").count() == 7


def test_the_dashboard_and_a_group_at_phone_width(browser: Any, site: Site) -> None:
    phone = {"viewport": {"width": 390, "height": 844}, "is_mobile": True}
    for visit in _visit(browser, site, **phone):
        page = visit.page
        visit.log_in()
        visit.goto("/admin")
        # The charts scroll in their own box; the page itself is no wider than the screen.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        visit.shot("phone-dashboard")
        visit.goto("/admin/groups/new")
        page.select_option("#cb-0-type", "loan_calculator")
        visit.count_is(r"^3 contacts match")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        visit.shot("phone-groups-builder")


ROUND_TRIPS: list[Any] = [
    {"all": [{"activity": {"type": "click", "at_least": 1}}]},
    {"any": [{"not": {"consent": "Newsletter"}}, {"group": str(uuid.UUID(int=1))}]},
    {"not": {"all": [{"activity": {"type": "click", "exactly": 0, "within_days": 7}}]}},
    {"activity": {"type": "loan_calculator", "at_most": 2,
                  "between": {"from": "2026-01-01", "to": "2026-01-31"},
                  "fields": {"amount": {"gte": "10", "lt": "20"}}}},
    {"contact": {"field": "attributes.plan", "in": ["pro", "team"]}},
    {"contact": {"field": "email", "exists": False}},
    {"contact": {"field": "birthday", "before": "1990-01-01"}},
    {"contact": {"field": "country", "not_equals": "USA"}},
]  # fmt: skip
CANNOT_SHOW = [
    [],
    {"all": [], "any": []},
    {"activity": {"type": "click", "someday": 1}},
    {"contact": {"field": "zip", "in": ["1,2"]}},
    {"unknown": 1},
]


def test_the_builder_reads_and_writes_every_kind_of_condition(visit: Visit) -> None:
    page = visit.page
    visit.log_in()
    visit.goto("/admin/groups/new")
    trips = page.evaluate(
        "(cs) => cs.map((c) => WaypostGroupBuilder.toJSON(WaypostGroupBuilder.fromJSON(c)))",
        ROUND_TRIPS,
    )
    assert trips == ROUND_TRIPS
    # The count is written out (at least 1); a "not" of a "not" keeps its meaning.
    normalised = page.evaluate(
        "(cs) => cs.map((c) => WaypostGroupBuilder.toJSON(WaypostGroupBuilder.fromJSON(c)))",
        [{"activity": {"type": "click", "within_days": 3}}, {"not": {"not": {"consent": "N"}}}],
    )
    assert normalised == [
        {"activity": {"type": "click", "at_least": 1, "within_days": 3}},
        {"not": {"all": [{"not": {"consent": "N"}}]}},
    ]
    refused = page.evaluate(
        """(cs) => cs.map((c) => {
             try { WaypostGroupBuilder.fromJSON(c); return "shown"; }
             catch (error) { return error.message; }
           })""",
        CANNOT_SHOW,
    )
    assert "shown" not in refused
    assert all(isinstance(message, str) and message for message in refused)


def test_the_builder_offers_the_operators_each_field_type_takes(visit: Visit) -> None:
    page = visit.page
    visit.log_in()
    visit.goto("/admin/groups/new")
    page.select_option("#cb-0-type", "loan_calculator")
    page.click("#cb-0-add-filter")
    page.select_option("#cb-0-f0-name", "years")
    ops = page.locator("#cb-0-f0-op option")
    assert ops.all_inner_texts() == ["=", ">", "≥", "<", "≤"]  # no contains on an integer
    page.select_option("#cb-0-f0-op", "lt")
    page.fill("#cb-0-f0-value", "30")
    visit.count_is(r"^0 contacts match")
    # A text field takes = and contains; the range chosen before gives way to =.
    page.select_option("#cb-0-f0-name", "plan")
    assert ops.all_inner_texts() == ["=", "contains"]
    assert page.input_value("#cb-0-f0-op") == "eq"
    filters = visit.condition()["all"][0]["activity"]["fields"]
    assert filters == {"plan": {"eq": "30"}}
    visit.count_is(r"^0 contacts match")


def test_contact_conditions_and_dates_in_the_builder(visit: Visit) -> None:
    page = visit.page
    visit.log_in()
    visit.goto("/admin/groups/new")
    visit.count_is(r"^0 contacts match")
    page.select_option("#cb-0-window", "between")
    # Dates are ISO 8601 text, as everywhere in the UI, not a locale's date picker.
    for box in ("#cb-0-from", "#cb-0-to"):
        assert page.get_attribute(box, "type") == "text"
        assert page.get_attribute(box, "placeholder") == "YYYY-MM-DD"
    page.fill("#cb-0-from", "2026-01-01")
    page.fill("#cb-0-to", "2026-01-31")
    page.select_option("#cb-add-kind", "contact")
    page.click("#cb-add")
    page.select_option("#cb-1-field", "birthday")
    # Dates compare with before and after: the operators follow the field.
    ops = page.locator("#cb-1-op option").all_inner_texts()
    assert ops == ["is before", "is after", "is set or not"]
    page.select_option("#cb-1-op", "before")
    assert page.get_attribute("#cb-1-value", "type") == "text"
    assert page.get_attribute("#cb-1-value", "placeholder") == "YYYY-MM-DD"
    page.fill("#cb-1-value", "1990-01-01")
    page.select_option("#cb-add-kind", "contact")
    page.click("#cb-add")
    page.select_option("#cb-2-field", "attributes")
    page.fill("#cb-2-attr", "plan")
    page.select_option("#cb-2-op", "in")
    page.fill("#cb-2-value", "pro, team ,")
    page.check("#cb-2-not")
    visit.count_is(r"^0 contacts match")
    assert visit.condition() == {
        "all": [
            {
                "activity": {
                    "type": "pagevisit",
                    "at_least": 1,
                    "between": {"from": "2026-01-01", "to": "2026-01-31"},
                }
            },
            {"contact": {"field": "birthday", "before": "1990-01-01"}},
            {"not": {"contact": {"field": "attributes.plan", "in": ["pro", "team"]}}},
        ]
    }
    page.click("#cb-0-remove")
    expect(page.locator("#cb-add-kind")).to_be_focused()
    assert visit.condition()["all"][0] == {"contact": {"field": "birthday", "before": "1990-01-01"}}
    visit.shot("groups-builder-contacts")

"""Reports in a real browser (Debian's chromium through Playwright): a marketer answers the
three questions reports are for from the UI alone, saves a report, pins it to the dashboard
and downloads its CSV.

One server for the module, on a SQLite file, with a marketer; the types `deposit` (`amount`,
decimal), `loan_calculator` (`term`, integer) and `loan_application`; a contact group
*Premium clients* (contacts in Brno); and activities from March 2026. Screenshots go to
test-artifacts/screenshots/; a console error (a Content-Security-Policy violation included)
fails the test.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import msgspec
import pytest

from waypost.app import create_app
from waypost.hub import Hub
from waypost.services.activity_types import ActivityTypeCreate
from waypost.services.channels import ChannelCreate
from waypost.services.groups import GroupCreate
from waypost.services.keys import KeyCreate
from waypost.services.users import UserCreate

if TYPE_CHECKING:
    from tests.admin_support import PASSWORD
    from tests.browser_support import PageVisit, admin_hub, launch, open_visit
    from tests.test_admin_groups_browser import CSP_REPORTER
    from tests.test_browser import ServerThread
else:
    from admin_support import PASSWORD
    from browser_support import PageVisit, admin_hub, launch, open_visit
    from test_admin_groups_browser import CSP_REPORTER
    from test_browser import ServerThread

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

MARKETER = "reports-marketer@example.com"
GROUP = "Premium clients"


@dataclass
class Site:
    hub: Hub
    server: ServerThread
    key: str
    channel: str

    @property
    def url(self) -> str:
        return self.server.origin

    def contact(self, city: str) -> str:
        headers = {"Authorization": f"Bearer {self.key}"}
        contact = str(
            httpx.post(f"{self.url}/tracking/contacts", headers=headers).json()["contact"]
        )
        self.track(contact, [{"type": "datainput", "value": "Form",
                              "contactFields": {"ContactCity": city}}])  # fmt: skip
        return contact

    def track(self, contact: str, activities: list[dict[str, Any]]) -> None:
        answer = httpx.post(
            f"{self.url}/tracking/activities",
            json={"channel": self.channel, "contact": contact, "activities": activities},
            headers={"Authorization": f"Bearer {self.key}"},
        )
        assert answer.status_code == 207, answer.text
        assert all(r["status"] == 202 for r in answer.json()["results"]), answer.text


def at(day: int, hour: int = 10) -> str:
    return f"2026-03-{day:02d}T{hour:02d}:00:00Z"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    settings, hub = admin_hub(tmp_path_factory, "reports-browser")
    hub.users.create(UserCreate(email=MARKETER, role="marketer", password=PASSWORD))
    for body in (
        {"name": "Deposit", "code_name": "deposit",
         "fields": [{"name": "amount", "type": "decimal"}]},
        {"name": "Loan calculator", "code_name": "loan_calculator",
         "fields": [{"name": "term", "type": "integer"}]},
        {"name": "Loan application", "code_name": "loan_application"},
    ):  # fmt: skip
        hub.types.create(msgspec.convert(body, ActivityTypeCreate))
    hub.groups.create(
        GroupCreate(name=GROUP, condition={"contact": {"field": "city", "equals": "Brno"}})
    )
    channel = hub.channels.create(ChannelCreate(name="Bank", kind="headless"))
    key = hub.keys.create(KeyCreate(access="tracking", channel=channel.id, name="")).key
    server = ServerThread(create_app(settings, hub=hub)).start()
    try:
        site = Site(hub, server, key, str(channel.id))
        brno, brno_too, prague = site.contact("Brno"), site.contact("Brno"), site.contact("Prague")
        deposit = [("deposit", brno, 2, "1000.10"), ("deposit", brno_too, 2, "250.05"),
                   ("deposit", prague, 2, "99999"), ("deposit", brno, 4, "0.01")]  # fmt: skip
        for type_, contact, day, amount in deposit:
            site.track(contact, [{"type": type_, "occurredAt": at(day),
                                  "fields": {"amount": amount}}])  # fmt: skip
        # Terms: 24 twice, 12 once, 36 once; Brno applies within 7 days, Prague after 9.
        for contact, day, term in ((brno, 3, 24), (brno_too, 3, 24), (prague, 3, 12),
                                   (prague, 5, 36)):  # fmt: skip
            site.track(contact, [{"type": "loan_calculator", "occurredAt": at(day),
                                  "fields": {"term": term}}])  # fmt: skip
        site.track(brno, [{"type": "loan_application", "occurredAt": at(6)}])
        site.track(prague, [{"type": "loan_application", "occurredAt": at(12)}])
        yield site
    finally:
        server.stop()
        hub.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch()


class Visit(PageVisit):
    """A visit of the report pages (see browser_support.PageVisit)."""

    def log_in(self) -> None:
        self.sign_in("/admin/reports", MARKETER, PASSWORD)

    def new_report(self, kind: str) -> None:
        self.page.click("text=New report")
        self.page.wait_for_url("**/admin/reports/new")
        self.page.select_option("#kind", kind)
        self.page.fill("#since", "2026-03-01")
        self.page.fill("#until", "2026-03-14")

    def show(self) -> None:
        self.page.click("text=Show report")
        self.page.wait_for_selector("#report-result")

    def numbers(self) -> list[list[str]]:
        rows = self.page.locator("#report-result table tbody tr")
        return [
            [cell.strip() for cell in rows.nth(i).locator("th, td").all_inner_texts()]
            for i in range(rows.count())
        ]


@pytest.fixture
def visit(browser: Any, site: Site) -> Iterator[Visit]:
    yield from open_visit(browser, lambda page: Visit(site, page), CSP_REPORTER)


def test_how_much_was_deposited_per_day_by_the_groups_contacts(visit: Visit) -> None:
    page = visit.page
    visit.log_in()
    visit.new_report("numeric")
    # Only the chosen kind's controls are shown.
    expect(page.locator("#field")).to_be_visible()
    assert not page.is_visible("#step-0-type")
    assert not page.is_visible("#buckets")
    page.check("#type-deposit")
    page.fill("#field", "amount")
    page.select_option("#group", label=GROUP)
    visit.show()
    assert (
        page.inner_text("#result-heading") == "Deposit: amount per day, contacts in Premium clients"
    )
    expect(page.locator("#report-chart svg[role=img]")).to_be_visible()
    rows = {row[0]: row for row in visit.numbers()}
    # Prague's 99,999 is not the group's; decimals stay exact.
    assert rows["2026-03-02"][1:3] == ["2", "1250.15"]
    assert rows["2026-03-04"][1:3] == ["1", "0.01"]
    assert rows["2026-03-03"][1] == "0"
    visit.shot("reports-deposits")

    page.fill("#name", "Premium deposits per day")
    page.uncheck("#rolling")
    page.check("#on_dashboard")
    page.click("text=Save report")
    page.wait_for_url(re.compile(r".*/admin/reports/[0-9a-f-]{36}$"))
    assert "Saved Premium deposits per day." in page.inner_text(".flash")
    assert visit.numbers()[1][2] == "1250.15"

    page.click("text=Dashboard")
    page.wait_for_url("**/admin")
    pinned = page.locator(".pinned-reports")
    expect(pinned).to_have_count(1)
    assert "Premium deposits per day" in pinned.inner_text()
    expect(pinned.locator("svg[role=img]")).to_be_visible()
    visit.shot("reports-dashboard")


def test_which_loan_terms_calculator_users_pick_and_the_csv(visit: Visit) -> None:
    page = visit.page
    visit.log_in()
    visit.new_report("breakdown")
    expect(page.locator("#buckets")).to_be_visible()
    page.check("#type-loan_calculator")
    page.fill("#field", "term")
    page.check("#contacts")
    visit.show()
    assert [row[:3] for row in visit.numbers()] == [
        ["24", "2", "2"],
        ["12", "1", "1"],
        ["36", "1", "1"],
    ]
    with page.expect_download() as event:
        page.click("#report-result .downloads a")
    download = event.value
    assert download.suggested_filename == "loan-calculator-by-term.csv"
    text = Path(download.path()).read_text(encoding="utf-8-sig")
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0] == ["value", "activities", "contacts"]
    assert [line[:2] for line in lines[1:]] == [["24", "2"], ["12", "1"], ["36", "1"]]
    visit.shot("reports-terms")


def test_how_many_calculator_users_applied_within_seven_days(visit: Visit) -> None:
    page = visit.page
    visit.log_in()
    visit.new_report("funnel")
    expect(page.locator("#step-0-type")).to_be_visible()
    assert not page.is_visible("#field")
    page.select_option("#step-0-type", "loan_calculator")
    page.select_option("#step-1-type", "loan_application")
    page.fill("#window_days", "7")
    visit.show()
    assert page.inner_text("#result-heading") == (
        "Funnel: Loan calculator → Loan application, within 7 days"
    )
    steps = visit.numbers()
    assert [row[:2] for row in steps] == [["1. loan_calculator", "3"], ["2. loan_application", "1"]]
    expect(page.locator("#report-chart svg rect")).to_have_count(2)
    visit.shot("reports-funnel")

    # Saved, found in the list, opened and deleted.
    page.fill("#name", "Calculator to application")
    page.click("text=Save report")
    page.wait_for_url(re.compile(r".*/admin/reports/[0-9a-f-]{36}$"))
    page.click(".breadcrumb >> text=Reports")
    page.wait_for_url("**/admin/reports")
    page.click("text=Calculator to application")
    page.click("button:text('Delete')")
    page.wait_for_url("**/admin/reports")
    assert "Deleted the report Calculator to application." in page.inner_text(".flash")
    assert "Calculator to application" not in page.inner_text("tbody")

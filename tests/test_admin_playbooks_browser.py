"""Playbooks in a real browser (Debian's chromium through Playwright): a marketer creates a
playbook whose audience is built with the group condition builder, and its runs appear.

One server for the module, on a SQLite file, with a marketer, an activity type with a decimal
field, a webhook endpoint, and three contacts, two of them in Brno. Screenshots go to
test-artifacts/screenshots/; a console error (a Content-Security-Policy violation included)
fails the test.
"""

from __future__ import annotations

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
from waypost.services.keys import KeyCreate
from waypost.services.users import UserCreate

if TYPE_CHECKING:
    from tests.admin_support import PASSWORD
    from tests.browser_support import PageVisit, admin_hub, launch, open_visit
    from tests.playbook_support import insert_endpoint, runs
    from tests.test_admin_groups_browser import CSP_REPORTER
    from tests.test_browser import ServerThread
else:
    from admin_support import PASSWORD
    from browser_support import PageVisit, admin_hub, launch, open_visit
    from playbook_support import insert_endpoint, runs
    from test_admin_groups_browser import CSP_REPORTER
    from test_browser import ServerThread

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

MARKETER = "playbooks-marketer@example.com"
HOOK = "https://crm.example/hooks/big-loans"


@dataclass
class Site:
    hub: Hub
    server: ServerThread
    key: str
    channel: uuid.UUID
    contacts: list[str]
    endpoint: uuid.UUID

    @property
    def url(self) -> str:
        return self.server.origin

    def track(self, contact: str, activities: Any) -> list[str]:
        answer = httpx.post(
            f"{self.url}/tracking/activities",
            json={"channel": str(self.channel), "contact": contact, "activities": activities},
            headers={"Authorization": f"Bearer {self.key}"},
        )
        assert answer.status_code == 207, answer.text
        return [r["id"] for r in answer.json()["results"]]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    settings, hub = admin_hub(tmp_path_factory, "playbooks-browser")
    hub.users.create(UserCreate(email=MARKETER, role="marketer", password=PASSWORD))
    loan = {"name": "Loan calculator", "fields": [{"name": "amount", "type": "decimal"}]}
    hub.types.create(msgspec.convert(loan, ActivityTypeCreate))
    channel = hub.channels.create(ChannelCreate(name="Bank", kind="headless"))
    key = hub.keys.create(KeyCreate(access="tracking", channel=channel.id, name="")).key
    endpoint = insert_endpoint(hub, url=HOOK)
    server = ServerThread(create_app(settings, hub=hub)).start()
    try:
        site = Site(hub, server, key, channel.id, [], endpoint)
        for city in ("Brno", "Brno", "Prague"):
            answer = httpx.post(
                f"{server.origin}/tracking/contacts", headers={"Authorization": f"Bearer {key}"}
            )
            contact = answer.json()["contact"]
            site.contacts.append(contact)
            site.track(contact, [{"type": "datainput", "value": "Form", "contactFields": {
                "ContactCity": city}}])  # fmt: skip
        yield site
    finally:
        server.stop()
        hub.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch()


class Visit(PageVisit):
    """A visit of the playbook pages (see browser_support.PageVisit)."""

    def log_in(self) -> None:
        self.sign_in("/admin/playbooks", MARKETER, PASSWORD)


@pytest.fixture
def visit(browser: Any, site: Site) -> Iterator[Visit]:
    yield from open_visit(browser, lambda page: Visit(site, page), CSP_REPORTER)


def test_create_a_playbook_with_an_audience_built_in_the_form(visit: Visit) -> None:
    page, site = visit.page, visit.site
    visit.log_in()
    expect(page.locator("text=No playbooks yet.")).to_be_visible()
    page.click("text=New playbook")
    page.wait_for_url("**/admin/playbooks/new")
    # Only the chosen trigger's controls are shown.
    expect(page.locator("#type")).to_be_visible()
    assert not page.is_visible("#group")
    page.select_option("#event", "consent_agreed")
    expect(page.locator("#consent")).to_be_visible()
    assert not page.is_visible("#type")
    page.select_option("#event", "activity")

    page.fill("#name", "Big loans in Brno")
    page.select_option("#type", "loan_calculator")
    page.fill("#filter-0-field", "amount")
    page.select_option("#filter-0-op", "gte")
    page.fill("#filter-0-value", "10000")

    # The audience is a group condition, in the group builder, with its live count.
    page.check("#audience-condition")
    expect(page.locator("#condition-builder")).to_be_visible()
    page.click("summary:text('Condition as JSON')")
    page.fill("#condition", '{"all": [{"contact": {"field": "city", "equals": "Prague"}}]}')
    done = page.locator("#condition-count[aria-busy=false]")
    expect(done).to_have_text(re.compile(r"^1 contact matches"))
    builder_value = page.locator("#condition-builder input[type=text]").first
    builder_value.fill("Brno")
    expect(done).to_have_text(re.compile(r"^2 contacts match"))

    page.select_option("#cadence", "once")
    page.check(f"#endpoint-{site.endpoint}")
    visit.shot("playbooks-form")
    page.click("text=Create playbook")
    page.wait_for_url(re.compile(r".*/admin/playbooks/[0-9a-f-]{36}$"))
    assert "Created Big loans in Brno." in page.inner_text(".flash")
    assert page.inner_text("#trigger-text") == (
        "When a contact performs Loan calculator with amount ≥ 10000"
    )
    assert page.inner_text("#cadence-text") == "Once per contact"
    assert "City is “Brno”" in page.inner_text(".condition-text")
    # The endpoint by its origin: its path may hold a secret marketers do not see.
    expect(page.locator("code", has_text="https://crm.example")).to_be_visible()
    assert "/hooks/big-loans" not in page.content()

    brno, _, prague = site.contacts
    [small] = site.track(brno, [{"type": "loan_calculator", "fields": {"amount": "500"}}])
    [big] = site.track(brno, [{"type": "loan_calculator", "fields": {"amount": "25000"}}])
    site.track(prague, [{"type": "loan_calculator", "fields": {"amount": "25000"}}])
    assert [(str(r["contact_id"]), r["subject"]) for r in runs(site.hub)] == [(brno, big)]
    page.reload()
    rows = page.locator("#runs-heading ~ .table-wrap tbody tr")
    expect(rows).to_have_count(1)
    assert big in rows.first.inner_text()
    assert small not in page.content()
    visit.shot("playbooks-show")

    page.click("text=Playbooks")
    page.wait_for_url("**/admin/playbooks")
    row = page.locator("tbody tr").first
    assert "Once per contact" in row.inner_text()
    visit.shot("playbooks-list")

"""The webhook pages in a real browser (Debian's chromium through Playwright): create an
endpoint, see its secret once, see a delivery in its log, press Retry.

One server for the module, on a SQLite file that allows loopback endpoints, with an admin.
Each test gets a fresh browser context, saves screenshots under test-artifacts/screenshots/,
and fails if a page logged a console error (Content-Security-Policy violations included).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from waypost.app import create_app
from waypost.hub import Hub
from waypost.records.outbox import FAILED, PENDING
from waypost.services.users import UserCreate
from waypost.services.webhook_endpoints import WebhookEndpointCreate

if TYPE_CHECKING:
    from tests.admin_support import PASSWORD
    from tests.browser_support import PageVisit, admin_hub, launch, open_visit
    from tests.test_browser import ServerThread
    from tests.webhook_support import add_message, message_row
else:
    from admin_support import PASSWORD
    from browser_support import PageVisit, admin_hub, launch, open_visit
    from test_browser import ServerThread
    from webhook_support import add_message, message_row

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

ADMIN = "webhooks-admin@example.com"
CSP_REPORTER = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error("CSP violation: " + event.violatedDirective + " " + event.blockedURI);
});
"""


@dataclass
class Site:
    hub: Hub
    server: ServerThread

    @property
    def url(self) -> str:
        return self.server.origin


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    settings, hub = admin_hub(tmp_path_factory, "webhooks-browser", webhook_allow_private=True)
    hub.users.create(UserCreate(email=ADMIN, role="admin", password=PASSWORD))
    server = ServerThread(create_app(settings, hub=hub)).start()
    try:
        yield Site(hub, server)
    finally:
        server.stop()
        hub.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch()


class Visit(PageVisit):
    """A visit of the webhook pages (see browser_support.PageVisit)."""

    def log_in(self) -> None:
        self.sign_in("/admin/webhooks", ADMIN, PASSWORD)


@pytest.fixture
def visit(browser: Any, site: Site) -> Iterator[Visit]:
    yield from open_visit(
        browser,
        lambda page: Visit(site, page),
        CSP_REPORTER,
        viewport={"width": 1280, "height": 900},
    )


def test_create_see_the_secret_once_and_retry_a_delivery(visit: Visit) -> None:
    page = visit.page
    hub = visit.site.hub
    visit.log_in()
    expect(page.locator(".sub-nav a[aria-current=page]")).to_have_text("Webhooks")
    visit.shot("webhooks-list-empty")
    page.click("text=New endpoint")
    page.wait_for_url("**/admin/webhooks/new")
    # A URL the rule refuses comes back with its message, what was typed kept.
    page.fill("#url", "ftp://files.example.com/drop")
    page.fill("#description", "The CRM's intake")
    page.click("text=Create endpoint")
    expect(page.locator("#error-summary")).to_contain_text("starts with https://")
    visit.expect_error(r"status of 400")
    assert page.input_value("#description") == "The CRM's intake"
    page.fill("#url", "http://127.0.0.1:9/hooks")
    page.click("text=Create endpoint")
    page.wait_for_url(re.compile(r".*/admin/webhooks/[0-9a-f-]{36}/secret$"))
    assert "Created the webhook endpoint" in page.inner_text(".flash")
    secret = page.inner_text("#webhook-secret")
    assert secret.startswith("whsec_")
    expect(page.locator("button[data-copy=webhook-secret]")).to_be_visible()
    endpoint_id = uuid.UUID(page.url.rsplit("/", 2)[1])
    assert hub.webhook_endpoints.holds_secret(endpoint_id, secret)
    visit.shot("webhooks-secret")
    page.reload()
    expect(page.locator("#webhook-secret")).to_have_count(0)
    expect(page.locator("[role=status]")).to_contain_text("is not shown again")

    message_id = add_message(
        hub,
        endpoint_id,
        status=FAILED,
        attempts=[
            {"http_status": 503, "response": "Service Unavailable", "duration_ms": 31},
            {"http_status": None, "error": "connection refused", "duration_ms": 2},
        ],
    )
    page.click("text=Go to the endpoint and its delivery log")
    page.wait_for_url(f"**/admin/webhooks/{endpoint_id}")
    row = page.locator(f"#delivery-{message_id}")
    expect(row).to_contain_text(f"msg_{message_id.hex}")
    expect(row).to_contain_text("Failed")
    attempts = row.locator("details")
    expect(attempts.locator("summary")).to_have_text(
        "2 attempts, last: No answer: connection refused"
    )
    expect(attempts.locator("ol.attempts")).not_to_be_visible()
    attempts.locator("summary").click()
    expect(attempts.locator("ol.attempts li").first).to_contain_text("HTTP 503, 31 ms")
    expect(attempts.locator("pre")).to_have_text("Service Unavailable")
    visit.shot("webhooks-delivery-log")

    row.locator("button:text('Retry')").click()
    page.wait_for_url(f"**/admin/webhooks/{endpoint_id}#delivery-{message_id}")
    assert f"msg_{message_id.hex} is sent again now" in page.inner_text(".flash")
    expect(page.locator(f"#delivery-{message_id}")).to_contain_text("Pending")
    assert message_row(hub, message_id).status == PENDING
    visit.shot("webhooks-retried")


def test_disable_rotate_and_replay(visit: Visit) -> None:
    page = visit.page
    hub = visit.site.hub
    endpoint = hub.webhook_endpoints.create(WebhookEndpointCreate(url="http://127.0.0.1:9/other"))
    failed = add_message(hub, endpoint.id, status=FAILED)
    visit.log_in()
    page.click(f"#endpoint-{endpoint.id} a")
    page.wait_for_url(f"**/admin/webhooks/{endpoint.id}")
    page.click("button:text('Disable')")  # confirmed by the visit's dialog handler
    expect(page.locator("#endpoint-status")).to_contain_text("Disabled: a person disabled it")
    expect(page.locator("#replay-button")).to_be_disabled()
    page.click("button:text('Enable')")
    expect(page.locator("#endpoint-status")).to_have_text("Enabled")
    page.fill("#replay-since", "2026-11-01")
    page.fill("#replay-until", "2026-11-03")
    page.click("#replay-button")
    expect(page.locator(".flash")).to_contain_text("Replaying 1 failed message")
    assert message_row(hub, failed).status == PENDING
    page.click("button:text('Rotate the secret')")
    page.wait_for_url(f"**/admin/webhooks/{endpoint.id}/secret")
    assert page.inner_text("#webhook-secret") != endpoint.secret
    expect(page.locator("dl.facts")).to_contain_text("signs too until")

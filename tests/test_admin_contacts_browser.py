"""The contacts, activities and rejected activities pages in a real browser (Debian's
chromium through Playwright) against a real server: searching a contact and reading its log,
filtering the activity log, opening a rejected activity and replaying it after the dry run.

The server, browser and page fixtures are those of tests/test_admin_browser.py (no page may
log a console error it did not expect; screenshots go to test-artifacts/screenshots/), on a
database seeded with tests/admin_log_support.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx2
import msgspec
import pytest

from waypost.app import create_app
from waypost.services.activity_types import ActivityType, ActivityTypeCreate
from waypost.services.channels import ChannelCreate
from waypost.services.keys import KeyCreate
from waypost.services.users import UserCreate

if TYPE_CHECKING:
    from tests.admin_log_support import Seeded, seed
    from tests.admin_support import PASSWORD
    from tests.browser_support import admin_hub
    from tests.conftest import Tracker
    from tests.test_admin_browser import ADMIN, MARKETER, Site, Visit, _visit, browser, flash
    from tests.test_browser import ServerThread
else:
    from admin_log_support import Seeded, seed
    from admin_support import PASSWORD
    from browser_support import admin_hub
    from conftest import Tracker
    from test_admin_browser import ADMIN, MARKETER, Site, Visit, _visit, browser, flash
    from test_browser import ServerThread

__all__ = ["browser"]  # the fixture, shared with tests/test_admin_browser.py

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True}


@pytest.fixture(scope="module")
def seeded_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, Seeded]]:
    settings, hub = admin_hub(tmp_path_factory, "admin-contacts-browser")
    hub.users.create(UserCreate(email=ADMIN, role="admin", password=PASSWORD))
    hub.users.create(UserCreate(email=MARKETER, role="marketer", password=PASSWORD))
    server = ServerThread(create_app(settings, hub=hub)).start()
    channel = hub.channels.create(ChannelCreate(name="Bank website", kind="headless"))
    key = hub.keys.create(KeyCreate(access="tracking", channel=channel.id, name="site")).key
    hub.catalog.invalidate()

    def make_type(**fields: Any) -> ActivityType:
        return hub.types.create(msgspec.convert(fields, ActivityTypeCreate))

    try:
        with httpx2.Client(base_url=server.origin, timeout=10) as http:
            seeded = seed(hub, Tracker(http, channel, key), make_type)  # type: ignore[arg-type]
        yield Site(hub, server), seeded
    finally:
        server.stop()
        hub.close()


@pytest.fixture(scope="module")
def site(seeded_site: tuple[Site, Seeded]) -> Site:
    return seeded_site[0]


@pytest.fixture
def seeded(seeded_site: tuple[Site, Seeded]) -> Seeded:
    return seeded_site[1]


@pytest.fixture
def visit(browser: Any, site: Site) -> Iterator[Visit]:
    yield from _visit(browser, site)


@pytest.fixture
def phone(browser: Any, site: Site) -> Iterator[Visit]:
    yield from _visit(browser, site, **PHONE)


def rows(visit: Visit, prefix: str) -> int:
    return int(visit.page.locator(f'tr[id^="{prefix}-"]').count())


def test_search_a_contact_and_read_its_log(visit: Visit, seeded: Seeded) -> None:
    page = visit.page
    visit.log_in(MARKETER)
    page.click("nav >> text=Contacts")
    page.wait_for_url("**/admin/contacts")
    page.fill("#q", "jane d")
    page.press("#q", "Enter")
    page.wait_for_url("**/admin/contacts?q=jane+d")
    assert rows(visit, "contact") == 1
    visit.shot("contacts-search")
    page.click("text=Jane Doe")
    page.wait_for_url(f"**/admin/contacts/{seeded.jane}")
    assert page.inner_text("h1") == "Jane Doe"
    assert "ACME <Bank>" in page.inner_text("dl.facts")
    assert page.is_visible("#consent-Newsletter >> text=Agreed")
    assert page.is_visible("text=Brno people")
    assert rows(visit, "activity") >= 4
    visit.shot("contact-page")
    page.select_option("#filter-type", "click")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**type=click**")
    assert rows(visit, "activity") == 1
    assert "cta-1" in page.inner_text("table.log")
    # Field filters appear once a type with fields is chosen.
    page.select_option("#filter-type", seeded.deposit.code_name)
    page.click("form.filters button[type=submit]")
    page.wait_for_selector('input[name="field.currency"]')
    page.fill('input[name="field.currency"]', "CZK")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**field.currency=CZK**")
    assert rows(visit, "activity") == 1
    visit.shot("contact-log-filtered")


def test_filter_the_activity_log(visit: Visit, seeded: Seeded) -> None:
    page = visit.page
    visit.log_in(ADMIN)
    page.click("nav >> text=Activities")
    page.wait_for_url("**/admin/activities")
    assert rows(visit, "activity") >= 5
    page.select_option("#filter-type", "click")
    page.fill("#filter-since", "2026-01-05")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**/admin/activities?**")
    assert rows(visit, "activity") == 1
    assert "john-cta" in page.inner_text("table.log")
    visit.shot("activities-log")
    page.click("table.log >> text=John Smith")
    page.wait_for_url(f"**/admin/contacts/{seeded.john}")
    # A filter that is not valid is a 400 page that shows the form with the message.
    visit.expect_error(r"status of 400")
    answer = visit.goto("/admin/activities?contact=somebody")
    assert answer.status == 400
    assert "is not an identifier" in page.inner_text(".error-summary")
    assert page.evaluate("document.activeElement.id") == "error-summary"
    visit.shot("activities-bad-filter")


def test_compare_a_field_in_the_activity_log(visit: Visit, seeded: Seeded) -> None:
    page = visit.page
    visit.log_in(ADMIN)
    visit.goto(f"/admin/activities?type={seeded.deposit.code_name}")
    assert page.get_attribute("#filter-since", "type") == "text"  # no locale's date picker
    assert page.get_attribute("#filter-since", "placeholder") == "YYYY-MM-DD or YYYY-MM-DDTHH:MM"
    page.select_option("select[name='field_op.amount']", "gte")
    page.fill("input[name='field.amount']", "50")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**/admin/activities?**")
    assert rows(visit, "activity") == 1
    assert "100.50" in page.inner_text("table.log")
    # The comparison and its value sit side by side under the field's name.
    op = page.locator("select[name='field_op.amount']").bounding_box()
    value = page.locator("input[name='field.amount']").bounding_box()
    assert abs(op["y"] + op["height"] - value["y"] - value["height"]) < 2
    assert value["x"] > op["x"] + op["width"]
    visit.shot("activities-field-comparison")


def test_replay_a_rejected_activity_after_the_dry_run(visit: Visit, seeded: Seeded) -> None:
    page = visit.page
    hub = visit.site.hub
    visit.log_in(MARKETER)
    page.click("nav >> text=Rejected activities")
    page.wait_for_url("**/admin/rejected")
    visit.shot("rejected-list")
    first = seeded.rejected[0]
    page.click(f"#rejected-{first} a")
    page.wait_for_url(f"**/admin/rejected/{first}")
    assert '"webinar_signup"' in page.inner_text("pre.payload")
    visit.shot("rejected-activity")
    page.click("text=Replay…")
    page.wait_for_url(f"**/admin/rejected/replay?id={first}")
    assert "would store 0 and reject 1 again" in page.inner_text("#dry-run-summary")
    # The cause fixed: the type exists now, and the dry run says the activity would pass.
    if not any(t.code_name == "webinar_signup" for t in hub.types.all()):
        hub.types.create(ActivityTypeCreate(name="Webinar signup", code_name="webinar_signup"))
    hub.catalog.invalidate()
    page.reload()
    assert page.inner_text("#dry-run-summary") == "Replaying 1 activity now would store 1."
    visit.shot("rejected-replay-dry-run")
    page.click("#replay-button")
    page.wait_for_url(f"**/admin/rejected/{first}")
    assert flash(visit) == "Replayed 1 activity: stored 1."
    assert "stored as" in page.inner_text("dl.facts")
    visit.shot("rejected-replayed")
    # The rest of the reason, from the list.
    page.click("text=Rejected activities >> nth=0")
    page.wait_for_url("**/admin/rejected")
    page.click(".reasons >> text=activity_type_not_found")
    page.wait_for_url("**/admin/rejected?reason=activity_type_not_found")
    page.click("text=Replay the rejected activities that match these filters…")
    page.wait_for_url("**/admin/rejected/replay?reason=activity_type_not_found")
    assert page.inner_text("#dry-run-summary") == "Replaying 1 activity now would store 1."
    page.click("#replay-button")
    page.wait_for_url("**/admin/rejected?reason=activity_type_not_found")
    assert flash(visit) == "Replayed 1 activity: stored 1."
    visit.shot("rejected-replayed-reason")


def test_phone_width(phone: Visit, seeded: Seeded) -> None:
    page = phone.page
    phone.log_in(MARKETER)
    for path, name in (
        (f"/admin/contacts/{seeded.jane}", "phone-contact-page"),
        ("/admin/activities", "phone-activities"),
        (f"/admin/rejected/{seeded.rejected[2]}", "phone-rejected-activity"),
    ):
        phone.goto(path)
        # Nothing wider than the screen but the tables and the payload, which scroll.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
        phone.shot(name)

"""The admin UI in a real browser (Debian's chromium through Playwright) against a real server.

One server for the module, on a SQLite file, with an admin and a marketer. Each test gets a
fresh browser context, saves screenshots of the pages it visits under
test-artifacts/screenshots/, and fails if a page logged a console error it did not expect.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from waypost.app import create_app
from waypost.domain.codenames import derive_code_name
from waypost.hub import Hub
from waypost.services.channels import ChannelCreate
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
# Locator assertions poll in Playwright's own world; a string wait_for_function is eval, which
# the admin's Content Security Policy refuses once the first check has not held.
expect = playwright_api.expect

ADMIN = "admin@example.com"
MARKETER = "marketer@example.com"


@dataclass
class Site:
    """The running server and its hub."""

    hub: Hub
    server: ServerThread

    @property
    def url(self) -> str:
        return self.server.origin


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    settings, hub = admin_hub(tmp_path_factory, "admin-browser")
    hub.users.create(UserCreate(email=ADMIN, role="admin", password=PASSWORD))
    hub.users.create(UserCreate(email=MARKETER, role="marketer", password=PASSWORD))
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
    """A visit of the admin UI (see browser_support.PageVisit)."""

    def log_in(self, email: str, password: str = PASSWORD) -> None:
        self.sign_in("/admin/types", email, password)


def _visit(browser: Any, site: Site, **context_options: Any) -> Iterator[Visit]:
    yield from open_visit(browser, lambda page: Visit(site, page), **context_options)


@pytest.fixture
def visit(browser: Any, site: Site) -> Iterator[Visit]:
    yield from _visit(browser, site)


@pytest.fixture
def laptop(browser: Any, site: Site) -> Iterator[Visit]:
    yield from _visit(browser, site, viewport={"width": 1280, "height": 800})


@pytest.fixture
def phone(browser: Any, site: Site) -> Iterator[Visit]:
    yield from _visit(browser, site, viewport={"width": 390, "height": 844}, is_mobile=True)


def flash(visit: Visit) -> str:
    return str(visit.page.inner_text(".flash"))


# -- the tests -------------------------------------------------------------------------------


def test_log_in_and_out(visit: Visit) -> None:
    page = visit.page
    visit.goto("/admin/channels")
    page.wait_for_url("**/admin/login?next=%2Fadmin%2Fchannels")
    visit.shot("login")
    page.fill("#email", ADMIN)
    page.fill("#password", "wrong password")
    page.click("button[type=submit]")
    visit.expect_error(r"status of 400")
    assert "wrong" in page.inner_text(".error-summary")
    # The script moves the focus to the error, for screen readers and keyboards.
    expect(page.locator("#error-summary")).to_be_focused()
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/admin/channels")
    assert page.inner_text("nav .who").startswith(ADMIN)
    page.click("text=Log out")
    page.wait_for_url("**/admin/login")
    assert flash(visit) == "You have logged out."
    visit.goto("/admin/types")
    page.wait_for_url("**/admin/login**")


def test_the_code_name_script_mirrors_the_server(visit: Visit) -> None:
    visit.log_in(MARKETER)
    names = [
        "Loan calculator usage", "Café Crème — 2 \u00d7 ½", "Straße & Smørrebrød", "ÆØÅ æøå",
        "  --Leading and trailing--  ", "Ünïcödé İstanbul \u0131i", "日本語", "", "a" * 150 + " b",
        "x.y", "Tab\tand\nnewline", "ﬁnance ﬂow", "Łódź Đakovo Þór",
    ]  # fmt: skip
    derived = visit.page.evaluate("(names) => names.map(window.WaypostAdmin.deriveCodeName)", names)
    assert derived == [derive_code_name(name) for name in names]


def test_create_a_type_with_fields(visit: Visit) -> None:
    page = visit.page
    visit.log_in(MARKETER)
    visit.shot("types-list")
    page.click("text=New activity type")
    page.wait_for_url("**/admin/types/new")
    page.fill("#name", "Webinar registration")
    assert page.input_value("#code_name") == "webinar_registration"
    page.fill("#description", "Signed up for a webinar.")
    page.check("#client_side")
    page.fill("#fields-0-name", "webinar")
    page.select_option("#fields-0-type", "text")
    page.check("#fields-0-required")
    page.check("#fields-0-primary")
    page.fill("#fields-0-description", "The webinar's title")
    page.fill("#fields-0-max_length", "200")
    page.click("text=Add a field")
    expect(page.locator("#fields-1-name")).to_be_focused()
    page.fill("#fields-1-name", "seats")
    page.fill("#fields-1-max_length", "5")
    page.select_option("#fields-1-type", "integer")
    # Max length is for text fields: off (and not sent) for the integer.
    assert page.is_disabled("#fields-1-max_length")
    assert page.is_enabled("#fields-0-max_length")
    page.check("#fields-1-primary")  # at most one primary: the first one is unchecked
    assert not page.is_checked("#fields-0-primary")
    page.check("#fields-0-primary")
    page.click("text=Add a field")
    page.fill("#fields-2-name", "dropped")
    page.click(".field-row:has(#fields-2-name) [data-remove-row]")
    assert page.locator("#fields-2-name").count() == 0
    page.fill("#limit_contact", "3")
    page.fill("#retention_days", "30")
    visit.shot("types-form")
    page.click("text=Create activity type")
    page.wait_for_url("**/admin/types")
    assert "Created the activity type Webinar registration" in flash(visit)
    created = visit.site.hub.types.get_by_code("webinar_registration")
    assert [(f.name, f.type, f.required, f.primary) for f in created.fields] == [
        ("webinar", "text", True, True),
        ("seats", "integer", False, False),
    ]
    assert (created.fields[0].description, created.fields[0].max_length) == (
        "The webinar's title",
        200,
    )
    assert created.fields[1].max_length is None
    assert created.client_side
    assert created.rate_limits.per_contact is not None
    assert created.rate_limits.per_contact.limit == 3
    assert created.retention_days == 30

    # The same name again: the service's conflict is shown at the form, the input kept.
    visit.expect_error(r"status of 409")
    page.click("text=New activity type")
    page.fill("#name", "Webinar registration")
    page.fill("#code_name", "webinar_again")
    page.fill("#fields-0-name", "kept")
    page.click("text=Create activity type")
    assert "exists already" in page.inner_text(".error-summary")
    assert page.input_value("#fields-0-name") == "kept"
    assert page.input_value("#code_name") == "webinar_again"
    visit.shot("types-form-error")


RED_CONTROLS = """(form) => {
  const danger = getComputedStyle(document.documentElement).getPropertyValue('--danger').trim();
  const probe = document.createElement('span');
  probe.style.color = danger;
  document.body.appendChild(probe);
  const red = getComputedStyle(probe).color;
  probe.remove();
  return [...form.querySelectorAll('input:not([type=hidden]), select, textarea')]
    .filter((c) => c.offsetParent !== null && getComputedStyle(c).borderTopColor === red)
    .map((c) => c.id);
}"""


def test_a_type_form_error_outlines_only_the_control_at_fault(visit: Visit) -> None:
    page = visit.page
    visit.log_in(MARKETER)
    visit.goto("/admin/types/new")
    page.fill("#name", "Seminar booked")
    page.fill("#fields-0-name", "seats")
    page.click("text=Add a field")
    page.fill("#fields-1-name", "seats")
    page.fill("#limit_contact", "5")
    page.fill("#limit_contact_window", "")
    visit.expect_error(r"status of 400")
    page.click("text=Create activity type")
    assert "give the window" in page.inner_text(".error-summary")
    form = page.locator("form.type-form")
    assert form.evaluate(RED_CONTROLS) == ["limit_contact_window"]
    described = page.get_attribute("#limit_contact_window", "aria-describedby")
    assert "give the window" in page.inner_text(f"#{described}")
    page.fill("#limit_contact_window", "1")
    page.click("text=Create activity type")
    assert "used twice" in page.inner_text(".error-summary")
    assert form.evaluate(RED_CONTROLS) == ["fields-1-name"]
    visit.shot("types-form-field-error")


def test_enable_and_disable_a_type(visit: Visit) -> None:
    page = visit.page
    visit.log_in(MARKETER)
    row = page.locator("#type-click")
    row.locator("text=Disable").click()
    page.wait_for_url("**/admin/types")
    assert "Disabled Clicked" in flash(visit) or "Disabled" in flash(visit)
    assert "Disabled" in page.locator("#type-click").inner_text()
    assert not visit.site.hub.types.get_by_code("click").enabled
    page.locator("#type-click").locator("text=Enable").click()
    page.wait_for_url("**/admin/types")
    assert visit.site.hub.types.get_by_code("click").enabled
    page.click("#type-click a")
    page.wait_for_url("**/admin/types/*")
    visit.shot("types-edit")


def test_create_a_channel_and_a_key_seen_once(visit: Visit) -> None:
    page = visit.page
    visit.log_in(ADMIN)
    page.click("#site-nav >> text=Settings")  # the settings' first page: channels
    page.wait_for_url("**/admin/channels")
    assert page.get_attribute(".sub-nav >> text=Channels", "aria-current") == "page"
    page.click("text=New channel")
    page.fill("#name", "Shop")
    page.check("#kind-website")
    page.fill("#allowed_origins", "https://shop.example\nhttps://www.shop.example")
    visit.shot("channels-form")
    page.click("text=Create channel")
    page.wait_for_url("**/admin/channels/*")
    assert "Created the website channel Shop" in flash(visit)
    page.click("a:text-is('Create a key')")
    page.wait_for_url("**/admin/keys/new?channel=*")
    page.select_option("#access", "publishable")
    page.fill("#name", "Shop pages")
    visit.shot("keys-form")
    page.click("text=Create key")
    page.wait_for_url("**/admin/keys/*/created")
    secret = page.inner_text("#new-key").strip()
    assert secret.startswith("wpp_")
    page.click("text=Copy the key")
    expect(page.locator("#new-key-status")).not_to_have_text("")
    visit.shot("keys-created")
    page.reload()  # shown once: a reload neither shows it again nor makes a second key
    assert secret not in page.content()
    assert "cannot be shown again" in page.content()
    key = visit.site.hub.keys.authenticate(f"Bearer {secret}")
    page.click("text=Back to the keys")
    page.wait_for_url("**/admin/keys")
    assert secret not in page.content()
    assert f"{secret[:8]}…{secret[-4:]}" in page.inner_text(f"#key-{key.key_id}")
    page.locator(f"#key-{key.key_id}").locator("text=Disable").click()  # confirmed
    page.wait_for_url("**/admin/keys")
    assert "Disabled" in page.inner_text(f"#key-{key.key_id}")
    visit.shot("keys-list")
    page.click(".sub-nav >> text=Channels")
    page.wait_for_url("**/admin/channels")
    visit.shot("channels-list")


def test_create_a_consent_with_two_languages(visit: Visit) -> None:
    page = visit.page
    visit.log_in(ADMIN)
    visit.goto("/admin/consents")
    page.click("text=New consent")
    page.fill("#code_name", "Newsletter")
    page.fill("#display_name", "Newsletter")
    page.fill("#texts-0-short_text", "We send you news.")
    page.fill("#texts-0-full_text", "<p>Once a month.</p>")
    page.click("text=Add a language")
    page.fill("#texts-1-language", "de")
    page.fill("#texts-1-short_text", "Wir schicken Neuigkeiten.")
    page.fill("#texts-1-full_text", "<p>Einmal im Monat.</p>")
    visit.shot("consents-form")
    page.click("text=Create consent")
    page.wait_for_url("**/admin/consents")
    assert "Created the consent Newsletter" in flash(visit)
    consent = visit.site.hub.consents.get_by_code("Newsletter")
    assert sorted(consent.texts) == ["de", "en"]
    assert consent.texts["de"].short_text == "Wir schicken Neuigkeiten."
    visit.shot("consents-list")
    visit.goto("/admin/users")
    visit.shot("users-list")


def test_a_marketer_sees_no_channels_or_keys(visit: Visit) -> None:
    visit.log_in(MARKETER)
    nav = visit.page.inner_text("#site-nav")
    assert "Activity types" in nav
    assert "Channels" not in nav
    assert "Keys" not in nav
    visit.expect_error(r"status of 403")
    answer = visit.goto("/admin/keys")
    assert answer.status == 403
    assert visit.page.inner_text("h1") == "Not for your role"
    visit.shot("forbidden")


HEADER_LINE = """() => {
  const header = document.querySelector('.site-header');
  const parts = [...header.querySelectorAll('.brand, #site-nav a, .who, #site-nav button')];
  const middles = parts.map(e => {
    const r = e.getBoundingClientRect();
    return r.top + r.height / 2;
  });
  const spread = Math.max(...middles) - Math.min(...middles);
  return {height: header.getBoundingClientRect().height, spread: spread};
}"""


@pytest.mark.parametrize("email", [ADMIN, MARKETER])
def test_the_navigation_fits_one_line_at_1280_px(laptop: Visit, email: str) -> None:
    page = laptop.page
    laptop.log_in(email)
    line = page.evaluate(HEADER_LINE)
    assert line["spread"] < 8, line  # the links, the user and Log out on one line
    assert line["height"] < 60, line
    if email == MARKETER:
        return
    page.click("#site-nav >> text=Settings")
    page.wait_for_url("**/admin/channels")
    page.click(".sub-nav >> text=Keys")
    page.wait_for_url("**/admin/keys")
    assert page.get_attribute("#site-nav >> text=Settings", "aria-current") == "true"
    assert page.get_attribute(".sub-nav >> text=Keys", "aria-current") == "page"
    assert page.evaluate(HEADER_LINE)["spread"] < 8
    # The settings' row is a landmark of its own, under the main one.
    main_nav = page.locator("#site-nav").bounding_box()
    settings = page.locator("nav[aria-label=Settings]").bounding_box()
    assert settings["y"] >= main_nav["y"] + main_nav["height"] - 1
    laptop.shot("navigation-settings")


def test_phone_width(phone: Visit) -> None:
    page = phone.page
    phone.log_in(MARKETER)
    assert not page.is_visible("#site-nav")
    toggle = page.locator(".nav-toggle")
    assert toggle.get_attribute("aria-expanded") == "false"
    toggle.click()
    assert toggle.get_attribute("aria-expanded") == "true"
    assert page.is_visible("#site-nav >> text=Consents")
    # Nothing wider than the screen but the tables, which scroll in their own box.
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
    phone.shot("phone-types-list")
    phone.goto("/admin/types/new")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    phone.shot("phone-types-form")


DASHBOARD_LAYOUT = """() => {
  const box = (e) => e.getBoundingClientRect();
  const inner = (e) => {
    const style = getComputedStyle(e);
    return box(e).width - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight)
      - parseFloat(style.borderLeftWidth) - parseFloat(style.borderRightWidth);
  };
  const panels = [...document.querySelectorAll('main .panel')];
  const tiles = [...document.querySelectorAll('.tiles li')];
  const edges = (list) => [Math.min(...list.map((e) => box(e).left)),
                           Math.max(...list.map((e) => box(e).right))];
  return {
    charts: panels.filter((p) => p.querySelector('figure')).map((p) => ({
      id: p.querySelector('figure').id, svg: box(p.querySelector('svg')).width, room: inner(p),
    })),
    panels: panels.map((p) => [box(p).left, box(p).top, box(p).width, box(p).height]),
    tiles: tiles.map((t) => [box(t).left, box(t).top, box(t).width, box(t).height]),
    tileEdges: edges(tiles), panelEdges: edges(panels),
    scroll: document.scrollingElement.scrollWidth,
  };
}"""


def _seed_dashboard(hub: Hub) -> None:
    from waypost.ids import new_id, utcnow
    from waypost.store.schema import activity_daily_counts, rejected_activities

    now = utcnow()
    click = hub.types.get_by_code("click")
    with hub.store.write() as conn:
        conn.execute(
            activity_daily_counts.insert(),
            [{"type_id": click.id, "day": now.date(), "count": 40}],
        )
        for reason in ["rate_limited"] * 3 + ["activity_type_not_found"]:
            conn.execute(
                rejected_activities.insert().values(
                    id=new_id(), reason=reason, status=429, message="refused",
                    source="tracking", payload={}, received_at=now,
                )
            )  # fmt: skip


@pytest.mark.parametrize("width", [1280, 1000, 390])
def test_dashboard_cards_sit_in_an_even_grid_and_charts_fill_them(
    browser: Any, site: Site, width: int
) -> None:
    if width == 1280:
        _seed_dashboard(site.hub)
    for visit in _visit(browser, site, viewport={"width": width, "height": 900}):
        visit.log_in(ADMIN)
        visit.goto("/admin")
        layout = visit.page.evaluate(DASHBOARD_LAYOUT)
        visit.shot(f"dashboard-{width}")
        assert layout["scroll"] <= width
        for chart in layout["charts"]:  # each chart as wide as its card's content
            assert abs(chart["svg"] - chart["room"]) <= 1, chart
        # The tiles span the cards' width, in one row of equal tiles (a column on a phone).
        assert [round(e) for e in layout["tileEdges"]] == [round(e) for e in layout["panelEdges"]]
        assert len({round(t[2]) for t in layout["tiles"]}) == 1, layout["tiles"]
        # Tiles and cards side by side share their top and height.
        for boxes in (layout["tiles"], layout["panels"]):
            rows: dict[int, list[list[float]]] = {}
            for box in boxes:
                rows.setdefault(round(box[1]), []).append(box)
            for row in rows.values():
                assert len({round(b[3]) for b in row}) == 1, row
            if width == 1280:
                assert len(rows) < len(boxes)  # some do sit side by side


SCROLLER = """(box) => ({
  over: box.scrollWidth > box.clientWidth, left: box.scrollLeft,
  role: box.getAttribute('role'), label: box.getAttribute('aria-label'),
  tabindex: box.getAttribute('tabindex'),
})"""


def test_wide_tables_say_they_scroll_sideways(phone: Visit, laptop: Visit) -> None:
    hub = phone.site.hub
    channel = hub.channels.create(ChannelCreate(name="A channel with a long name", kind="headless"))
    hub.keys.create(KeyCreate(access="tracking", channel=channel.id, name="Backend of the shop"))
    page = phone.page
    phone.log_in(ADMIN)
    phone.goto("/admin/keys")
    box = page.locator(".table-wrap")
    state = box.evaluate(SCROLLER)
    assert state == {
        "over": True, "left": 0, "role": "region", "label": "API keys", "tabindex": "0",
    }  # fmt: skip
    assert page.is_visible("text=Scroll sideways to see more")
    phone.shot("phone-keys-list")
    # The keyboard reaches the box and scrolls it.
    page.focus("text=New key")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "API keys"
    page.keyboard.press("ArrowRight")
    for _ in range(40):  # the scroll is smooth (wait_for_function would need eval, the CSP)
        if box.evaluate("(box) => box.scrollLeft") > 0:
            break
        page.wait_for_timeout(50)
    assert box.evaluate("(box) => box.scrollLeft") > 0
    phone.shot("phone-keys-list-scrolled")
    # Where the table fits there is no hint and no extra stop for the keyboard.
    laptop.log_in(ADMIN)
    laptop.goto("/admin/keys")
    state = laptop.page.locator(".table-wrap").evaluate(SCROLLER)
    assert (state["over"], state["tabindex"], state["role"]) == (False, None, "region")
    assert not laptop.page.is_visible("text=Scroll sideways to see more")


def test_the_api_docs_log_no_error(visit: Visit) -> None:
    """The docs page names the favicon, which is served: no 404 in the console."""
    page = visit.page
    icons: list[int] = []
    page.on("response", lambda r: icons.append(r.status) if "favicon" in r.url else None)
    visit.goto("/api/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    href = page.get_attribute("link[rel=icon]", "href")
    assert href == "/favicon.ico"
    assert page.evaluate("(href) => fetch(href).then(r => r.status)", href) == 200
    assert all(status in (200, 304) for status in icons), icons

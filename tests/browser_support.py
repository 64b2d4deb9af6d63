"""What the browser tests share: Debian's chromium driven by Playwright, and a visit (a fresh
context and page) that fails its test on any console error it was not told to expect."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from waypost.hub import Hub
from waypost.settings import Settings, load_settings
from waypost.store import migrate

if TYPE_CHECKING:
    from tests.admin_support import FAST_HASHER
else:
    from admin_support import FAST_HASHER

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"


def admin_hub(
    tmp_path_factory: pytest.TempPathFactory, name: str, **overrides: Any
) -> tuple[Settings, Hub]:
    """A hub on a migrated SQLite file of its own, whose users' passwords hash fast."""
    path = tmp_path_factory.mktemp(name) / "waypost.db"
    settings = load_settings({"WAYPOST_DATABASE_URL": f"sqlite:///{path}"}, **overrides)
    hub = Hub(settings)
    migrate.upgrade(hub.store.engine)
    hub.users.hasher = FAST_HASHER
    return settings, hub


def launch() -> Iterator[Any]:
    """Chromium for a module's tests (the body of a module-scoped ``browser`` fixture)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class PageVisit:
    """A fresh browser context and page on a site (anything with a ``url``), and the console
    errors it logged."""

    site: Any
    page: Any
    errors: list[str] = field(default_factory=list)
    expected: list[re.Pattern[str]] = field(default_factory=list)

    def expect_error(self, pattern: str) -> None:
        self.expected.append(re.compile(pattern))

    def goto(self, path: str) -> Any:
        return self.page.goto(self.site.url + path)

    def sign_in(self, path: str, email: str, password: str) -> None:
        """Open ``path`` of the admin UI, sign in on the login page it leads to, and come back."""
        self.goto(path)
        self.page.wait_for_url("**/admin/login**")
        self.page.fill("#email", email)
        self.page.fill("#password", password)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(f"**{path}")

    def shot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


V = TypeVar("V", bound=PageVisit)


def open_visit(
    browser: Any, make: Callable[[Any], V], init_script: str | None = None, **options: Any
) -> Iterator[V]:
    """A visit made by ``make(page)``; after the test, no unexpected console error."""
    context = browser.new_context(**options)
    context.set_default_timeout(10_000)
    if init_script is not None:
        context.add_init_script(init_script)
    page = context.new_page()
    visit = make(page)
    page.on("console", lambda m: visit.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: visit.errors.append(f"uncaught: {error}"))
    page.on("dialog", lambda dialog: dialog.accept())
    try:
        yield visit
    finally:
        context.close()
    unexpected = [e for e in visit.errors if not any(p.search(e) for p in visit.expected)]
    assert unexpected == [], unexpected

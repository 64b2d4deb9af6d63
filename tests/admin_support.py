"""Helpers for the admin UI's tests: users, logging in, and forms sent with their CSRF token."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

import httpx2
from argon2 import PasswordHasher
from starlette.testclient import TestClient

from waypost.services.users import User

# Argon2's recommended parameters take a tenth of a second a hash; tests need no such cost.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PASSWORD = "correct horse battery"

_META = re.compile(r'<meta name="csrf-token" content="([^"]*)">')
_FIELD = re.compile(r'name="csrf_token" value="([^"]*)"')


def csrf_of(html: str) -> str:
    """The session's CSRF token, from a page's ``<meta name="csrf-token">``."""
    match = _META.search(html)
    assert match is not None, "no CSRF token in the page"
    assert match.group(1), "an empty CSRF token"
    return match.group(1)


def login_token_of(html: str) -> str:
    match = _FIELD.search(html)
    assert match is not None, "no token in the login form"
    return match.group(1)


def log_in(client: TestClient, email: str, password: str = PASSWORD) -> httpx2.Response:
    """Open the login page and send its form; the answer is not followed."""
    page = client.get("/admin/login")
    assert page.status_code == 200, page.text
    return client.post(
        "/admin/login",
        data={"csrf_token": login_token_of(page.text), "email": email, "password": password},
        follow_redirects=False,
    )


@dataclass
class UI:
    """A browser session of one user: its own cookies, and its CSRF token."""

    client: TestClient
    user: User
    csrf: str

    def get(self, path: str, **kwargs: Any) -> httpx2.Response:
        return self.client.get(path, **kwargs)

    def post(
        self, path: str, data: dict[str, Any] | None = None, *, csrf: str | None = None,
        follow: bool = False,
    ) -> httpx2.Response:  # fmt: skip
        """Send a form with the session's CSRF token (or ``csrf`` instead, "" for none)."""
        fields = dict(data or {})
        token = self.csrf if csrf is None else csrf
        if token:
            fields["csrf_token"] = token
        return self.client.post(path, data=fields, follow_redirects=follow)

    def api(self, method: str, path: str, **kwargs: Any) -> httpx2.Response:
        """An admin API call made with the session cookie and the X-CSRF-Token header."""
        headers = {"X-CSRF-Token": self.csrf, **kwargs.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kwargs)


def flash_of(response: httpx2.Response) -> str:
    match = re.search(r'<p class="flash" role="status">(.*?)</p>', response.text, re.S)
    return html.unescape(match.group(1)) if match else ""


def error_of(response: httpx2.Response) -> str:
    match = re.search(r'<div class="error-summary"[^>]*>(.*?)</div>', response.text, re.S)
    if match is None:
        return ""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", match.group(1))).split())

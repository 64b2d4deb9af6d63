"""The demo bank as a Starlette app: home, loan calculator, log in and account pages.

It talks to Waypost only from the browser, through /waypost.js at ``api_url``; its backend's one
Waypost duty is the identity hash of whoever logs in, computed with the channel's secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from waypost.demo import pages
from waypost.demo.data import DemoSetup
from waypost.demo.pages import Frame, Visitor

SESSION = "demo_session"


def identity_hash(identity_secret: str, email: str) -> str:
    """What a site's backend computes at login (docs/browser-tracking.md)."""
    return hmac.new(identity_secret.encode(), email.lower().encode(), hashlib.sha256).hexdigest()


class Sessions:
    """Logged-in visitors in a signed cookie, so that a visitor cannot claim another's email
    and get its identity hash. The key lives as long as the process: a restart logs out."""

    def __init__(self) -> None:
        self.key = secrets.token_bytes(32)

    def _mac(self, payload: str) -> str:
        return hmac.new(self.key, payload.encode(), hashlib.sha256).hexdigest()

    def dump(self, visitor: Visitor) -> str:
        data = json.dumps([visitor.email, visitor.first, visitor.last]).encode()
        payload = base64.urlsafe_b64encode(data).decode()
        return f"{payload}.{self._mac(payload)}"

    def load(self, cookie: str | None) -> Visitor | None:
        payload, _, mac = (cookie or "").partition(".")
        if not payload or not hmac.compare_digest(mac, self._mac(payload)):
            return None
        email, first, last = json.loads(base64.urlsafe_b64decode(payload))
        return Visitor(email, first, last)


def create_demo_app(setup: DemoSetup, api_url: str) -> Starlette:
    """The demo site, using the Waypost API at ``api_url`` (e.g. http://127.0.0.1:8000)."""
    sessions = Sessions()
    tracker_src = api_url.rstrip("/") + "/waypost.js"

    def frame(request: Request) -> Frame:
        return Frame(
            tracker_src=tracker_src,
            publishable_key=setup.publishable_key,
            consent_short=setup.consent_text.short_text,
            consent_full=setup.consent_text.full_text,
            cookie_level=request.cookies.get("wp_cookielevel"),
            visitor=sessions.load(request.cookies.get(SESSION)),
        )

    async def home(request: Request) -> Response:
        return HTMLResponse(pages.home(frame(request)))

    async def loans(request: Request) -> Response:
        return HTMLResponse(pages.loans(frame(request)))

    async def login_form(request: Request) -> Response:
        return HTMLResponse(pages.login(frame(request)))

    async def login(request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        email, first, last, password = (
            (form.get(name) or [""])[0].strip() for name in ("email", "first", "last", "password")
        )
        # A real bank checks the password here; the demo takes any, as its login page says.
        if "@" not in email or not password:
            page = pages.login(frame(request), "Give an email address and a password.")
            return HTMLResponse(page, status_code=400)
        response = RedirectResponse("/account", status_code=303)
        cookie = sessions.dump(Visitor(email, first, last))
        response.set_cookie(SESSION, cookie, httponly=True, samesite="lax")
        return response

    async def logout(_: Request) -> Response:
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(SESSION)
        return response

    async def account(request: Request) -> Response:
        current = frame(request)
        if current.visitor is None:
            return RedirectResponse("/login", status_code=303)
        signature = identity_hash(setup.identity_secret, current.visitor.email)
        return HTMLResponse(pages.account(current, current.visitor, signature))

    return Starlette(
        routes=[
            Route("/", home),
            Route("/loans", loans),
            Route("/login", login_form, methods=["GET"]),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/account", account),
        ]
    )

"""The demo bank as a Starlette app: home, loan calculator, offers, log in and account pages.

Pages talk to Waypost from the browser, through /waypost.js at ``api_url``. The backend has two
Waypost duties, as a real site's would: the identity hash of whoever logs in, computed with the
channel's secret, and, for the offers page, asking Waypost's admin API whether the visitor is in
the "Used the loan calculator" group, with an admin key that never leaves the server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import uuid
from urllib.parse import parse_qs

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from waypost.demo import pages
from waypost.demo.alerts import WEBHOOK_PATH, AlertInbox
from waypost.demo.data import DemoSetup
from waypost.demo.pages import Frame, Visitor

SESSION = "demo_session"
# waypost.js keeps the visitor's contact in this first-party cookie, at these levels only.
CONTACT_COOKIE = "wp_contact"
TRACKING_LEVELS = ("visitor", "all")

log = logging.getLogger("waypost.demo")


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


class Personalization:
    """The backend's question to Waypost: is this visitor in the demo's group?

    ``GET /api/groups/{id}/check/{contact}`` with the demo's admin key, a lookup of the kept
    membership. Any failure (Waypost down or slow, an unknown contact, a refused key) answers
    "no", so the page still renders, in its generic version.
    """

    def __init__(
        self,
        setup: DemoSetup,
        api_url: str,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 2.0,
    ) -> None:
        self.url = f"{api_url.rstrip('/')}/api/groups/{setup.group_id}/check/"
        self.headers = {"Authorization": f"Bearer {setup.admin_key}"}
        self.transport = transport
        self.timeout = timeout

    async def member(self, request: Request) -> bool:
        """Whether the visitor of ``request`` is in the group, by their Waypost contact cookie."""
        if request.cookies.get("wp_cookielevel") not in TRACKING_LEVELS:
            return False
        try:
            contact = uuid.UUID(request.cookies.get(CONTACT_COOKIE) or "")
        except ValueError:
            return False
        try:
            # A client per page view: in ``serve --demo`` the API answers from this same event
            # loop, and a client kept across requests would outlive the loop it was made on.
            async with httpx.AsyncClient(transport=self.transport, timeout=self.timeout) as client:
                answer = await client.get(f"{self.url}{contact}", headers=self.headers)
        except httpx.HTTPError as exc:
            log.warning("Waypost did not answer the membership check: %s", exc)
            return False
        if answer.status_code != 200:
            if answer.status_code != 404:  # 404: a contact of another database, or erased
                log.warning("Waypost answered the membership check with %s", answer.status_code)
            return False
        try:
            body = answer.json()
        except ValueError:
            return False
        return isinstance(body, dict) and body.get("member") is True


def create_demo_app(
    setup: DemoSetup,
    api_url: str,
    *,
    backend_url: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Starlette:
    """The demo site, using the Waypost API at ``api_url`` (e.g. http://127.0.0.1:8000).

    Browsers reach Waypost at ``api_url``; the backend at ``backend_url`` (default: the same),
    through ``transport`` when given (tests).
    """
    sessions = Sessions()
    inbox = AlertInbox(setup.alerts_secret)
    personalization = Personalization(setup, backend_url or api_url, transport)
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

    async def offers(request: Request) -> Response:
        member = await personalization.member(request)
        # The answer depends on the visitor's cookies: no shared cache may keep it.
        headers = {"Cache-Control": "private, no-store"}
        return HTMLResponse(pages.offers(frame(request), member), headers=headers)

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

    async def webhook(request: Request) -> Response:
        headers = {k: request.headers.get(k, "") for k in pages.WEBHOOK_HEADERS}
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > 256 * 1024:
                return Response(status_code=413)
        return Response(status_code=inbox.receive(headers, body))

    async def alerts(request: Request) -> Response:
        page = pages.alerts(frame(request), list(inbox.alerts), inbox.secret is not None)
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    app = Starlette(
        routes=[
            Route("/", home),
            Route("/loans", loans),
            Route("/offers", offers),
            Route("/login", login_form, methods=["GET"]),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/account", account),
            Route("/alerts", alerts),
            Route(WEBHOOK_PATH, webhook, methods=["POST"]),
        ]
    )
    app.state.personalization = personalization
    app.state.alerts = inbox
    return app

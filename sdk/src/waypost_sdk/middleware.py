"""ASGI and WSGI middleware that find the visitor's contact for :class:`ActivityLogger`.

They read the cookies the browser tracker (``/waypost.js``) keeps: ``wp_contact``, the
visitor's contact id, and ``wp_cookielevel``, the visitor's cookie level (``none``,
``essential``, ``visitor`` or ``all``). At ``visitor`` or ``all`` the contact in the cookie is
the current contact, and a visitor without one gets a new contact, created through the client
and set in ``wp_contact`` on the response. Below that, there is no current contact and nothing
is created, so nothing is logged before the visitor allows it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from contextvars import Token
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote
from wsgiref.util import request_uri

from waypost_sdk.client import Client
from waypost_sdk.context import RequestContext, request_context, web_url
from waypost_sdk.models import WaypostError

if TYPE_CHECKING:
    from types import TracebackType
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger("waypost_sdk")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LEVELS = ("none", "essential", "visitor", "all")
TRACKED_LEVELS = frozenset({"visitor", "all"})
YEAR = 365 * 24 * 60 * 60


@dataclass(frozen=True, kw_only=True)
class ContactCookies:
    """The cookies shared with the browser tracker, and how the contact cookie is set."""

    contact_cookie: str = "wp_contact"
    level_cookie: str = "wp_cookielevel"
    default_level: str = "essential"
    """The level of a visitor without a level cookie; the tracker's default is essential."""
    max_age: int = YEAR
    domain: str | None = None
    path: str = "/"

    def __post_init__(self) -> None:
        if self.default_level not in LEVELS:
            raise ValueError(f"default_level must be one of {', '.join(LEVELS)}")

    def resolve(self, header: str) -> tuple[str | None, bool]:
        """From a ``Cookie`` header: the contact to use, and whether the visitor is tracked."""
        cookies = _parse(header)
        level = cookies.get(self.level_cookie)
        if level not in LEVELS:
            level = self.default_level
        if level not in TRACKED_LEVELS:
            return None, False
        try:
            contact = str(uuid.UUID(cookies.get(self.contact_cookie, "")))
        except ValueError:
            contact = None
        return contact, True

    def set_cookie(self, contact: str, secure: bool) -> str:
        """The ``Set-Cookie`` value, with the tracker's attributes (it must read the cookie,
        so it is not HttpOnly)."""
        parts = [f"{self.contact_cookie}={quote(contact)}", f"Path={self.path}"]
        parts.append(f"Max-Age={self.max_age}")
        if self.domain:
            parts.append(f"Domain={self.domain}")
        parts.append("SameSite=Lax")
        if secure:
            parts.append("Secure")
        return "; ".join(parts)


def _parse(header: str) -> dict[str, str]:
    # One malformed cookie must not hide the others, as it would with http.cookies.
    cookies: dict[str, str] = {}
    for pair in header.split(";"):
        name, sep, value = pair.partition("=")
        if sep:
            cookies.setdefault(name.strip(), unquote(value.strip().strip('"')))
    return cookies


def _reset(token: Token[RequestContext | None]) -> None:
    try:
        request_context.reset(token)
    except (ValueError, RuntimeError):  # another context, or reset already
        request_context.set(None)


class _MiddlewareBase:
    def __init__(
        self,
        client: Client,
        *,
        create_contacts: bool,
        cookies: ContactCookies | None,
    ) -> None:
        self.client = client
        self.create_contacts = create_contacts
        self.cookies = cookies if cookies is not None else ContactCookies()

    def _create_contact(self) -> str | None:
        try:
            return self.client.create_contact()
        except WaypostError as exc:
            log.warning("Could not create a contact for a visitor: %s", exc)
            return None


class WaypostASGIMiddleware(_MiddlewareBase):
    """ASGI middleware: sets the current contact for each HTTP request (see the module doc).

    ``app = WaypostASGIMiddleware(app, client)``. With ``create_contacts=False`` a visitor
    without a contact cookie stays without a contact. ``cookies`` changes the cookie names,
    the default level (for sites where tracking needs no choice) and the cookie's domain.
    Contacts are created on a worker thread, so the event loop is never blocked (under
    asyncio; another event loop waits for the call).
    """

    def __init__(
        self,
        app: ASGIApp,
        client: Client,
        *,
        create_contacts: bool = True,
        cookies: ContactCookies | None = None,
    ) -> None:
        super().__init__(client, create_contacts=create_contacts, cookies=cookies)
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        header = "; ".join(v.decode("latin-1") for k, v in headers if k == b"cookie")
        contact, tracked = self.cookies.resolve(header)
        new_cookie: bytes | None = None
        if contact is None and tracked and self.create_contacts and scope["method"] != "OPTIONS":
            contact = await self._create_contact_async()
            if contact is not None:
                secure = scope.get("scheme") in ("https", "wss")
                new_cookie = self.cookies.set_cookie(contact, secure).encode("latin-1")
        context = RequestContext(contact, _asgi_url(scope, headers), _referrer(headers))
        token = request_context.set(context)
        try:
            if new_cookie is None:
                await self.app(scope, receive, send)
                return

            async def send_with_cookie(message: Message) -> None:
                if message["type"] == "http.response.start":
                    extra = (b"set-cookie", new_cookie)
                    message = {**message, "headers": [*message.get("headers", []), extra]}
                await send(message)

            await self.app(scope, receive, send_with_cookie)
        finally:
            _reset(token)

    async def _create_contact_async(self) -> str | None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # not asyncio (trio): a blocking call is all there is
            return self._create_contact()
        return await asyncio.to_thread(self._create_contact)


class WaypostWSGIMiddleware(_MiddlewareBase):
    """WSGI middleware: sets the current contact for each request (see the module doc).

    ``app.wsgi_app = WaypostWSGIMiddleware(app.wsgi_app, client)`` in Flask,
    ``application = WaypostWSGIMiddleware(get_wsgi_application(), client)`` in Django. The
    contact stays current while the response body is produced, until the server closes it.
    """

    def __init__(
        self,
        app: WSGIApplication,
        client: Client,
        *,
        create_contacts: bool = True,
        cookies: ContactCookies | None = None,
    ) -> None:
        super().__init__(client, create_contacts=create_contacts, cookies=cookies)
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        contact, tracked = self.cookies.resolve(environ.get("HTTP_COOKIE", ""))
        new_cookie: str | None = None
        method = environ.get("REQUEST_METHOD", "GET")
        if contact is None and tracked and self.create_contacts and method != "OPTIONS":
            contact = self._create_contact()
            if contact is not None:
                secure = environ.get("wsgi.url_scheme") == "https"
                new_cookie = self.cookies.set_cookie(contact, secure)
        url = web_url(request_uri(environ)) if environ.get("HTTP_HOST") else None
        context = RequestContext(contact, url, web_url(environ.get("HTTP_REFERER")))
        token = request_context.set(context)

        def start_with_cookie(
            status: str,
            response_headers: list[tuple[str, str]],
            exc_info: tuple[type[BaseException], BaseException, TracebackType]
            | tuple[None, None, None]
            | None = None,
        ) -> Callable[[bytes], object]:
            if new_cookie is not None:
                response_headers = [*response_headers, ("Set-Cookie", new_cookie)]
            return start_response(status, response_headers, exc_info)

        try:
            result = self.app(environ, start_with_cookie)
        except BaseException:
            _reset(token)
            raise
        return _ClosingBody(result, token)


class _ClosingBody:
    """The app's body; closing it ends the request's context (PEP 3333 calls close)."""

    def __init__(self, body: Iterable[bytes], token: Token[RequestContext | None]) -> None:
        self._body = body
        self._token = token

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            _reset(self._token)


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


def _asgi_url(scope: Scope, headers: list[tuple[bytes, bytes]]) -> str | None:
    host = _header(headers, b"host")
    if host is None:
        server = scope.get("server")
        if not server or server[1] is None:
            return None
        host = f"{server[0]}:{server[1]}"
    raw_path = scope.get("raw_path")
    # Some servers (and httpx's ASGITransport) put the query in raw_path too.
    path = raw_path.decode("latin-1").split("?", 1)[0] if raw_path else quote(scope["path"])
    query = scope.get("query_string", b"").decode("latin-1")
    url = f"{scope.get('scheme', 'http')}://{host}{path}" + (f"?{query}" if query else "")
    return web_url(url)


def _referrer(headers: list[tuple[bytes, bytes]]) -> str | None:
    return web_url(_header(headers, b"referer"))

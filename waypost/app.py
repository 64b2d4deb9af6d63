"""``create_app(settings)`` builds the ASGI application; nothing is created at import."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from waypost.admin.rendering import SECURITY_HEADERS
from waypost.admin.routes import admin_routes
from waypost.api import (
    activities,
    activity_types,
    channels,
    consents,
    contacts,
    exports,
    groups,
    keys,
    personal_data,
    playbooks,
    reports,
    saved_reports,
    webhooks,
)
from waypost.api.openapi import DOCS_PAGE, DOCS_SCRIPT, openapi_document
from waypost.api.routing import (
    Operation,
    build_routes,
    error_response,
    storage_unavailable,
)
from waypost.errors import ApiError
from waypost.hub import Hub
from waypost.logs import REQUEST_ID, request_id_of
from waypost.metrics import UNMATCHED, Metrics, process_ended
from waypost.ops import ops_routes
from waypost.settings import Settings
from waypost.store import StorageUnavailable
from waypost.transports.router import IngestRouter
from waypost.transports.routes import INGEST_ROUTES

log = logging.getLogger("waypost")

STATIC = Path(__file__).parent / "static"

DESCRIPTION = (
    "Waypost's admin API. Authenticate with `Authorization: Bearer <admin key>` (wpa_...), or "
    "with the session cookie of the admin UI (changes then need its `X-CSRF-Token` header). "
    'Errors always have the shape `{"error": {"code", "message", "field"}}`.'
)


def admin_operations() -> list[Operation]:
    return [
        *channels.OPERATIONS,
        *keys.OPERATIONS,
        *activity_types.OPERATIONS,
        *consents.OPERATIONS,
        *contacts.OPERATIONS,
        *activities.OPERATIONS,
        *groups.OPERATIONS,
        *playbooks.OPERATIONS,
        *exports.OPERATIONS,
        *personal_data.OPERATIONS,
        *reports.OPERATIONS,
        *saved_reports.OPERATIONS,
        *webhooks.OPERATIONS,
    ]


def api_document() -> dict[str, Any]:
    """The OpenAPI document served at /api/openapi.json."""
    return openapi_document(
        [*admin_operations(), *INGEST_ROUTES],
        title="Waypost",
        version=version("waypost"),
        description=DESCRIPTION,
    )


@functools.cache
def api_document_body() -> bytes:
    """The OpenAPI document as served, encoded once per process: it depends on the code alone,
    and building it was most of what building the app cost."""
    return msgspec.json.encode(api_document())


class WaypostApp:
    """The ASGI entry point: ingest paths go straight to their transports (the ingest route
    table, waypost/transports/routes.py), the rest to the admin application, so the framework's
    per-request machinery stays off the hot path.

    Every HTTP request gets a request id (the client's ``X-Request-Id`` when sane, else a new
    one), set for the log lines written while it is served and sent back in ``X-Request-Id``,
    and is counted in the metrics by route template and status."""

    def __init__(self, admin: Starlette, ingest: IngestRouter, metrics: Metrics) -> None:
        self.admin = admin
        self.ingest = ingest
        self.metrics = metrics
        self.state = admin.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.admin(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_of(_header(scope, b"x-request-id"))
        # Each request runs in a task of its own, so the id stays with this request's lines.
        REQUEST_ID.set(request_id)
        tag = (b"x-request-id", request_id.encode())
        status = 500  # what the server answers when the application fails before answering
        path: str = scope["path"]
        found = self.ingest.find(path)
        if found is not None:
            # The hot path: the transport adds the tag itself and says what it answered, so
            # no wrapper of ``send`` runs for each message.
            transport, methods = found
            try:
                status = await transport.serve(scope, receive, send, methods, [tag])
            finally:
                # An exact path is one of the route table's; another, its template.
                route = path if methods is not None else transport.paths.template(path) or UNMATCHED
                self.metrics.observe_request(
                    scope["method"], route, status, time.perf_counter() - started
                )
            return

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # A new list: the one given may be a response object's own.
                message["headers"] = [*message.get("headers", ()), tag]
            await send(message)

        route = UNMATCHED
        try:
            await self.admin(scope, receive, answer)
        finally:
            # Starlette's router notes the route it matched in the scope.
            matched = getattr(scope.get("route"), "path", None)
            if isinstance(matched, str):
                route = matched
            elapsed = time.perf_counter() - started
            self.metrics.observe_request(scope["method"], route, status, elapsed)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def create_app(settings: Settings, *, hub: Hub | None = None) -> WaypostApp:
    """Build Waypost for ``settings``. A given ``hub`` is used as is and not closed on shutdown."""
    owns_hub = hub is None
    the_hub = hub if hub is not None else Hub(settings)
    operations = admin_operations()
    document = api_document_body()

    async def openapi_json(_: Request) -> Response:
        return Response(document, media_type="application/json")

    async def docs(_: Request) -> Response:
        # The admin UI's origin: the same protection as its pages (no framing, no inline script).
        return HTMLResponse(DOCS_PAGE, headers=SECURITY_HEADERS)

    docs_script = DOCS_SCRIPT.encode()

    async def docs_start(request: Request) -> Response:
        return cached_response(request, docs_script, "text/javascript; charset=utf-8", max_age=300)

    async def home(_: Request) -> Response:
        return RedirectResponse("/api/docs")

    tracker_body = (STATIC / "waypost.js").read_bytes()
    icon_body = (STATIC / "favicon.ico").read_bytes()

    async def tracker(request: Request) -> Response:
        return script_response(request, tracker_body)

    async def favicon(request: Request) -> Response:
        # Browsers ask for it on every page without a <link rel="icon">: a 404 there is a
        # console error on the docs page.
        return cached_response(request, icon_body, "image/x-icon", max_age=86400)

    routes: list[BaseRoute] = [*build_routes(operations, the_hub)]
    routes += [
        *ops_routes(the_hub),
        Route("/", home),
        Route("/waypost.js", tracker),
        Route("/favicon.ico", favicon),
        Route("/api/openapi.json", openapi_json),
        Route("/api/docs", docs),
        Route("/api/docs/start.js", docs_start),
        Mount("/api/docs/assets", StaticFiles(directory=STATIC / "swagger-ui"), name="docs-assets"),
        *admin_routes(the_hub),
    ]

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        # The writer's answers are read on this loop while it serves; running from the start
        # (not from the first request), as /readyz checks.
        the_hub.writer.answer_on(asyncio.get_running_loop())
        try:
            the_hub.writer.start()
            the_hub.group_updates.start()
            the_hub.keys.usage.start()
            the_hub.start_webhooks()
            the_hub.purges.start()
            if the_hub.shared_changes is not None:
                the_hub.shared_changes.start()
        except BaseException:
            # This loop will not serve: it must not be left reading the answers.
            the_hub.writer.answer_on(None)
            raise
        try:
            yield
        finally:
            # What stops below may block this loop's thread, and the loop ends with the lifespan.
            the_hub.writer.answer_on(None)
            # Here rather than in Hub.close() alone: uvicorn ends a SIGTERM shutdown by raising
            # the signal again once the lifespan is over, and the calls in flight must be
            # recorded before that (docs/playbooks.md, "Several nodes").
            await asyncio.to_thread(the_hub.stop_webhooks)
            await the_hub.rate_limiter.close()
            if owns_hub:
                the_hub.close()
            the_hub.metrics.flush()
            process_ended()

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            HTTPException: _http_error,
            StorageUnavailable: _storage_error,
            Exception: _server_error,
        },
    )
    app.state.hub = the_hub
    return WaypostApp(app, IngestRouter(the_hub), the_hub.metrics)


def script_response(request: Request, body: bytes) -> Response:
    """A static script with a strong ETag, revalidated by browsers at most every 5 minutes."""
    return cached_response(
        request,
        body,
        "text/javascript; charset=utf-8",
        max_age=300,
        headers={"Access-Control-Allow-Origin": "*"},
    )


def cached_response(
    request: Request,
    body: bytes,
    media_type: str,
    *,
    max_age: int,
    headers: dict[str, str] | None = None,
) -> Response:
    """A static body with a strong ETag, kept by browsers for ``max_age`` seconds."""
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={max_age}", **(headers or {})}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = HTTP_CODES.get(exc.status_code, "http_error")
    message = "No such route." if exc.status_code == 404 else str(exc.detail)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Each operation is a route of its own: Starlette names the first route's methods only.
        allowed = _allowed_methods(request)
        headers["Allow"] = ", ".join(allowed)
        message = f"Use {' or '.join(m for m in allowed if m != 'HEAD')} here."
    error = ApiError(exc.status_code, code, message)
    error.headers = headers
    return error_response(error)


def _allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches(request.scope)
            if match != Match.NONE:
                methods |= route.methods
    order = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    return sorted(methods, key=lambda m: (order.index(m) if m in order else len(order), m))


async def _storage_error(_: Request, __: Exception) -> Response:
    return error_response(storage_unavailable())


async def _server_error(_: Request, exc: Exception) -> Response:
    log.exception("unexpected error", exc_info=exc)
    return error_response(ApiError(500, "internal_error", "Something went wrong on our side."))

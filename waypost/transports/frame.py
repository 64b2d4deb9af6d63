"""The request frame every ingest transport shares, as bare ASGI.

A transport is one wire format: the tracking API, the browser endpoints, Segment's HTTP API,
and any later collector (PostHog, Snowplow, Marketo) the same way. It is a :class:`Transport`
subclass that says how its keys are sent and checked (:class:`KeyRule`), whether pages call it
(:class:`Cors`), and holds its endpoints: each decodes its messages, calls the pipeline or a
service and encodes its answer. Its routes are lines of the ingest route table
(waypost/transports/routes.py), which both dispatches and documents them.

The frame does the rest the same way for every transport: the body within its size limit
(gunzipped), JSON within the nesting limit, the catalog snapshot, the key, unknown routes and
methods, a storage outage as 503 with Retry-After, errors in the JSON error shape, and CORS.
It is bare ASGI so that the admin framework's per-request machinery stays off the hot path.
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qs, unquote

from anyio import to_thread

from waypost.domain.keys import bearer_token, hash_key
from waypost.error_words import a_or_an
from waypost.errors import ApiError, StorageUnavailable
from waypost.pipeline.catalog import ChannelInfo, KeyInfo, Snapshot
from waypost.transports.bodies import read_body

if TYPE_CHECKING:
    from waypost.hub import Hub

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

Headers = list[tuple[bytes, bytes]]
# What an endpoint answers: status, body (JSON or empty) and extra headers.
Answer = tuple[int, bytes, Headers]
Endpoint = Callable[["IngestRequest"], Awaitable[Answer]]
# The endpoints of one path, by method.
Methods = Mapping[str, Endpoint]

NO_PARAMS: Mapping[str, str] = MappingProxyType({})
VARY: Headers = [(b"vary", b"Origin")]
NO_HEADERS: Headers = []
METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

STORAGE_DOWN = ApiError(
    503,
    "storage_unavailable",
    "The database cannot be reached; nothing was stored. Retry shortly.",
    headers={"Retry-After": "1"},
)
# A bug: the details go to the log, never into the answer (docs/errors.md).
INTERNAL = ApiError(500, "internal_error", "Something went wrong on our side.")

log = logging.getLogger("waypost.ingest")


class IngestRequest:
    """One request as a transport's endpoint sees it: the ASGI scope and body channel, the
    headers, the path's values, and what authentication found (for the answer's CORS)."""

    __slots__ = ("channel", "headers", "key", "method", "params", "receive", "scope", "snapshot")

    def __init__(self, scope: Scope, receive: Receive, params: Mapping[str, str]) -> None:
        self.scope = scope
        self.receive = receive
        self.headers: dict[bytes, bytes] = dict(scope["headers"])
        self.method: str = scope["method"]
        self.params = params
        self.snapshot: Snapshot | None = None
        self.channel: ChannelInfo | None = None
        self.key: KeyInfo | None = None


@dataclass(frozen=True)
class KeyRule:
    """Which keys a transport takes, and the words of each refusal. ``wrong_access`` may name
    the key sent as ``{a_key}`` ("An admin key")."""

    access: str
    missing: str
    unknown: str
    disabled: str
    wrong_access: str
    no_channel: str
    # A channel kind the key's channel must be, or None for any.
    channel_kind: str | None = None


@dataclass(frozen=True)
class Cors:
    """How pages may call a transport: the preflight's methods and headers, and the words for
    a page outside the allowed origins of the key's channel (``{origin}``)."""

    methods: bytes
    headers: bytes
    foreign_origin: str
    # Whether a request without an Origin is refused (browsers always send one) and every
    # answer varies by Origin, or only answers to pages do.
    origin_required: bool = False
    # Whether pages may send cookies with their requests (clients that fetch with
    # credentials: "include" read no answer without Access-Control-Allow-Credentials).
    credentials: bool = False


# How transports send keys; each transport hands the one it takes to Transport.authenticate.


def bearer(request: IngestRequest) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header."""
    raw = request.headers.get(b"authorization")
    return bearer_token(raw.decode("latin-1") if raw is not None else None)


def basic_user(request: IngestRequest) -> str | None:
    """The user name of an ``Authorization: Basic ...`` header (Segment's write key)."""
    header = request.headers.get(b"authorization")
    if not header:
        return None
    scheme, _, token = header.decode("latin-1").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, _, _password = decoded.partition(":")
    return user or None


def query_key(request: IngestRequest, name: str = "key") -> str | None:
    """The first ``name=`` query parameter (a publishable key: ``sendBeacon`` sends no
    headers)."""
    query = parse_qs(request.scope.get("query_string", b"").decode("latin-1"))
    values = query.get(name)
    return values[0] if values else None


def check_key(
    snapshot: Snapshot, token: str | None, rule: KeyRule, browser: KeyRule | None = None
) -> tuple[KeyInfo, ChannelInfo]:
    """The key ``token`` and its channel, or the 401/403 of ``rule``; a key of ``browser``'s
    access is checked by that rule instead."""
    if not token:
        raise ApiError(401, "unauthorized", rule.missing)
    key = snapshot.keys.get(_hashed(token))
    if key is None:
        raise ApiError(401, "unauthorized", rule.unknown)
    if browser is not None and key.access == browser.access:
        rule = browser
    if not key.enabled:
        raise ApiError(403, "forbidden", rule.disabled)
    if key.access != rule.access or key.channel_id is None:
        a_key = f"{a_or_an(key.access).capitalize()} key"
        raise ApiError(403, "forbidden", rule.wrong_access.format(a_key=a_key))
    channel = snapshot.channels.get(key.channel_id)
    if channel is None or (rule.channel_kind is not None and channel.kind != rule.channel_kind):
        raise ApiError(403, "forbidden", rule.no_channel)
    return key, channel


# The hash of each key recently sent: clients send the same few keys again and again, and a
# dictionary lookup costs a tenth of a SHA-256. Bounded, so random keys cannot grow it.
_hashed = functools.lru_cache(maxsize=1024)(hash_key)


class Transport:
    """The frame of one wire format: it finds the endpoint, answers what no endpoint should
    (preflights, unknown routes and methods, errors, storage outages) and adds CORS.
    Subclasses set ``keys`` (and ``cors`` if pages call them), hold their endpoints, and may
    override :meth:`admit` to check every request before its route."""

    keys: ClassVar[KeyRule]
    # For transports that both servers and pages call (PostHog, Snowplow): the rule of the
    # browser's key (publishable), which works from the channel's allowed origins only, while
    # a key of ``keys`` (a secret) is refused from any page.
    browser_keys: ClassVar[KeyRule | None] = None
    # The words for a server's key sent from a page ({origin}).
    key_in_page: ClassVar[str] = (
        "A tracking key is secret: a page ({origin}) must use a publishable key (wpp_...)."
    )
    cors: ClassVar[Cors | None] = None
    not_found: ClassVar[str] = "No such route."
    wrong_method: ClassVar[str] = "Use {methods}."
    # Path values are percent-decoded once more and checked for NUL (they reach the database).
    unquote_paths: ClassVar[bool] = False

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.settings = hub.settings
        self.catalog = hub.catalog
        self.writer = hub.writer
        # Set by the route table: this transport's paths that are not matched exactly.
        self.paths = PathTable((), ())

    async def serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        methods: Methods | None = None,
        tail: Headers = NO_HEADERS,
    ) -> int:
        """Answer one request and return the status answered; ``methods`` are its path's
        endpoints when the route table matched the path exactly, else the path is matched
        here. ``tail`` are headers every answer ends with (the request id)."""
        request = IngestRequest(scope, receive, NO_PARAMS)
        try:
            if methods is None:
                methods, request.params = self.paths.match(scope["path"], self.unquote_paths)
            status, body, headers = await self._handle(request, methods)
        except ApiError as exc:
            status, body, headers = exc.status, self.error_body(exc), encode_headers(exc.headers)
        except StorageUnavailable:
            status, body = 503, self.error_body(STORAGE_DOWN)
            headers = encode_headers(STORAGE_DOWN.headers)
        except Exception:
            # Answered in the transport's error shape, as the admin API answers its bugs,
            # rather than as the server's plain text.
            log.exception("unexpected error")
            status, body, headers = 500, self.error_body(INTERNAL), []
        if self.cors is not None:
            try:
                headers = headers + await self._cors_headers(request, self.cors)
            except StorageUnavailable:
                # The origins are in the catalog, which cannot be loaded either.
                status, body = 503, self.error_body(STORAGE_DOWN)
                headers = encode_headers(STORAGE_DOWN.headers)
        await respond(send, status, body, headers, tail)
        return status

    async def _handle(self, request: IngestRequest, methods: Methods | None) -> Answer:
        if request.method == "OPTIONS" and self.cors is not None:
            return 204, b"", []
        await self.admit(request)
        if methods is None:
            raise ApiError(404, "not_found", self.not_found)
        endpoint = methods.get(request.method)
        if endpoint is None:
            allowed = sorted(methods, key=METHOD_ORDER.index)
            raise ApiError(
                405,
                "method_not_allowed",
                self.wrong_method.format(methods=" or ".join(allowed)),
                headers={"Allow": ", ".join(allowed)},
            )
        return await endpoint(request)

    async def admit(self, request: IngestRequest) -> None:
        """Checks every request passes before its route is looked at; none by default."""

    def error_body(self, error: ApiError) -> bytes:
        """The body of an error answer: the one error shape (docs/errors.md), unless the
        transport's tool has a convention of its own."""
        return error.body()

    async def snapshot(self, request: IngestRequest) -> Snapshot:
        """The catalog as of now (loaded in a worker thread when it is stale)."""
        snapshot = self.catalog.fresh()
        if snapshot is None:
            snapshot = await to_thread.run_sync(self.catalog.get)
        request.snapshot = snapshot
        return snapshot

    async def authenticate(self, request: IngestRequest, token: str | None) -> ChannelInfo:
        """The channel of the key ``token``, checked by the transport's :class:`KeyRule`; a
        page must be one of the channel's allowed origins. Counts as a use of the key."""
        browser = self.browser_keys
        key, channel = check_key(await self.snapshot(request), token, self.keys, browser)
        request.channel, request.key = channel, key
        cors = self.cors
        if browser is not None:
            _check_page(request, key, channel, browser, cors, self.key_in_page)
        elif cors is not None:
            origin = request.headers.get(b"origin")
            # Preflights carry no key, so they answer for every channel's origins; the request
            # itself names its channel, and a page of another channel may not use the key.
            if (origin is not None or cors.origin_required) and (
                origin is None or origin.decode("latin-1") not in channel.allowed_origins
            ):
                shown = origin.decode("latin-1") if origin else "(none)"
                raise ApiError(403, "forbidden", cors.foreign_origin.format(origin=shown))
        self.hub.keys.usage.note(key.id)
        return channel

    async def body(self, request: IngestRequest, limit: int | None = None) -> bytes:
        """The request body within ``limit`` bytes (the request limit by default)."""
        if limit is None:
            limit = self.settings.max_request_bytes
        return await read_body(request.receive, request.headers, limit)

    async def _cors_headers(self, request: IngestRequest, cors: Cors) -> Headers:
        origin = request.headers.get(b"origin")
        if origin is None:
            return VARY if cors.origin_required else []
        channel = request.channel
        # Once the key is known only its channel's origins may read the answer.
        allowed = (
            channel.allowed_origins
            if channel is not None
            else (await self.snapshot(request)).all_origins
        )
        if origin.decode("latin-1") not in allowed:
            return VARY
        headers = [
            *VARY,
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-methods", cors.methods),
            (b"access-control-allow-headers", cors.headers),
            (b"access-control-max-age", b"600"),
        ]
        if cors.credentials:
            headers.append((b"access-control-allow-credentials", b"true"))
        return headers


def _check_page(
    request: IngestRequest,
    key: KeyInfo,
    channel: ChannelInfo,
    browser: KeyRule,
    cors: Cors | None,
    key_in_page: str,
) -> None:
    """A browser's key works from its channel's pages only (the Origin, or for an image with
    no Origin the Referer's origin); any other key is a secret no page may send."""
    origin = request.headers.get(b"origin")
    if key.access != browser.access:
        if origin is not None:
            raise ApiError(403, "forbidden", key_in_page.format(origin=origin.decode("latin-1")))
        return
    page = origin.decode("latin-1") if origin is not None else referrer_origin(request)
    if page is None or page not in channel.allowed_origins:
        words = cors.foreign_origin if cors is not None else "The origin {origin!r} is refused."
        raise ApiError(403, "forbidden", words.format(origin=page or "(none)"))


def referrer_origin(request: IngestRequest) -> str | None:
    """The origin (scheme://host[:port]) of the Referer header, if it has one."""
    raw = request.headers.get(b"referer")
    if raw is None or len(raw) > 4096:
        return None
    scheme, sep, rest = raw.decode("latin-1").partition("://")
    if not sep or scheme not in ("http", "https"):
        return None
    host = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    return f"{scheme}://{host}" if host and "@" not in host else None


class PathTable:
    """The paths of one transport that need more than an exact match: a trailing slash, and
    paths with values such as ``/tracking/consents/{consent}``."""

    def __init__(
        self, prefixes: tuple[str, ...], templates: tuple[tuple[tuple[str, ...], Methods], ...]
    ) -> None:
        self.prefixes = prefixes
        # Literal templates first, so that they win over the values of others.
        self.templates = sorted(templates, key=lambda t: sum(p.startswith("{") for p in t[0]))

    def template(self, path: str) -> str | None:
        """The route template ``path`` matches (``/tracking/consents/{consent}``), for the
        metrics, which label requests by route and never by path; None when none does."""
        for prefix in self.prefixes:
            if path.startswith(prefix):
                parts = path[len(prefix) :].strip("/").split("/")
                break
        else:
            return None
        for template, _ in self.templates:
            if len(template) == len(parts) and all(
                t.startswith("{") or t == p for t, p in zip(template, parts, strict=True)
            ):
                return prefix + "/".join(template)
        return None

    def match(self, path: str, unquote_parts: bool) -> tuple[Methods | None, Mapping[str, str]]:
        """The endpoints of ``path`` and its values, or None when no route has that path."""
        for prefix in self.prefixes:
            if path.startswith(prefix):
                parts = path[len(prefix) :].strip("/").split("/")
                break
        else:
            return None, NO_PARAMS
        if unquote_parts:
            parts = [unquote(p) for p in parts]
            if any("\x00" in part for part in parts):
                # Consent code names in the path reach the database, whose text cannot hold NUL.
                raise ApiError(400, "invalid_field", "The path cannot hold the NUL character.")
        for template, methods in self.templates:
            if len(template) == len(parts) and all(
                t.startswith("{") or t == p for t, p in zip(template, parts, strict=True)
            ):
                params = {t[1:-1]: p for t, p in zip(template, parts, strict=True) if t[0] == "{"}
                return methods, params
        return None, NO_PARAMS


async def respond(
    send: Send, status: int, body: bytes, headers: Headers, tail: Headers = NO_HEADERS
) -> None:
    """Send a JSON answer (or an empty one) with ``headers``, then ``tail``."""
    response_headers = [(b"content-length", str(len(body)).encode()), *headers]
    if body and not any(name == b"content-type" for name, _ in headers):
        response_headers.append((b"content-type", b"application/json"))
    if tail:
        response_headers += tail
    await send({"type": "http.response.start", "status": status, "headers": response_headers})
    await send({"type": "http.response.body", "body": body})


def encode_headers(extra: dict[str, str]) -> Headers:
    return [(k.lower().encode(), v.encode()) for k, v in extra.items()]

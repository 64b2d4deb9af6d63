"""PostHog's capture API, as bare ASGI, so that posthog-python and posthog-js send to Waypost
by changing their host (docs/collectors.md).

``POST /batch/``, ``/capture/``, ``/e/`` and ``/i/v0/e/`` (each with or without the trailing
slash) take events: plain JSON, gzip (``Content-Encoding: gzip``, ``?compression=gzip-js`` or
the gzip magic bytes), or a form whose ``data`` is JSON or base64 of JSON. The key travels as
``api_key`` or ``token`` in the body (or ``properties.token`` of the events): a tracking key
from a server, a publishable key from a page of the channel's allowed origins. The answer is
PostHog's ``200 {"status": 1}`` once everything is committed; errors are PostHog's
``{"type", "code", "detail", "attr"}`` with Waypost's ``error`` beside them, and a storage
outage is the 503 both PostHog clients retry.

What else posthog-js asks for is answered so that it runs without errors: ``/flags/``,
``/decide/`` (no feature flags), ``/array/<key>/config`` and ``config.js`` (nothing to load).
"""

from __future__ import annotations

from typing import Any

import msgspec

from waypost.domain.posthog import body_of, decode_text, map_event
from waypost.errors import ApiError
from waypost.ids import utcnow
from waypost.services.collectors import POSTHOG_IDS
from waypost.transports.bodies import gunzip, media_type
from waypost.transports.collected import CollectorTransport
from waypost.transports.frame import Answer, Cors, IngestRequest, KeyRule, query_key

OK = b'{"status":1}'
FORM = b"application/x-www-form-urlencoded"
GZIP_MAGIC = b"\x1f\x8b"
# The error types of PostHog's answers, by status.
ERROR_TYPES = {
    401: "authentication_error",
    403: "authentication_error",
    500: "server_error",
    503: "server_error",
}


class PostHogError(msgspec.Struct):
    """PostHog's error answer, with Waypost's one error shape beside it."""

    type: str
    code: str
    detail: str
    attr: str | None
    error: dict[str, str | None]


class FlagsAnswer(msgspec.Struct, rename="camel"):
    """``/flags/`` and ``/decide/``: no feature flags, nothing else switched on."""

    flags: dict[str, Any] = msgspec.field(default_factory=dict)
    feature_flags: dict[str, Any] = msgspec.field(default_factory=dict)
    feature_flag_payloads: dict[str, Any] = msgspec.field(default_factory=dict)
    errors_while_computing_flags: bool = False
    quota_limited: list[str] = msgspec.field(default_factory=list)
    session_recording: bool = False
    supported_compression: list[str] = msgspec.field(default_factory=lambda: ["gzip", "gzip-js"])
    site_apps: list[Any] = msgspec.field(default_factory=list)
    surveys: bool = False
    heatmaps: bool = False
    capture_performance: bool = False
    autocapture_exceptions: bool = False
    toolbar_params: dict[str, Any] = msgspec.field(default_factory=dict)
    is_authenticated: bool = False
    config: dict[str, Any] = msgspec.field(
        default_factory=lambda: {"enable_collect_everything": True}
    )


class RemoteConfig(msgspec.Struct, rename="camel"):
    """``/array/<key>/config``: what posthog-js loads at start."""

    token: str
    supported_compression: list[str] = msgspec.field(default_factory=lambda: ["gzip", "gzip-js"])
    has_feature_flags: bool = False
    session_recording: bool = False
    heatmaps: bool = False
    surveys: bool = False
    site_apps: list[Any] = msgspec.field(default_factory=list)
    capture_performance: bool = False
    autocapture_exceptions: bool = False
    capture_dead_clicks: bool = False
    default_identified_only: bool = True
    elements_chain_as_string: bool = True


# The shapes the OpenAPI document shows (waypost/transports/routes.py); the endpoint decodes
# more leniently, as PostHog does.


class PostHogEvent(msgspec.Struct):
    """One PostHog event; ``$set`` and ``$set_once`` may be top-level or in properties."""

    event: str
    distinct_id: str | int | None = None
    properties: dict[str, Any] | None = None
    timestamp: str | None = None
    uuid: str | None = None
    set: dict[str, Any] | None = msgspec.field(default=None, name="$set")
    set_once: dict[str, Any] | None = msgspec.field(default=None, name="$set_once")


class PostHogBatch(msgspec.Struct):
    """PostHog's capture body as its clients send it; one event or a list of events is taken
    too, gzipped or as a form's base64 ``data``. The key is ``api_key`` (or ``token``)."""

    batch: list[PostHogEvent] | None = None
    api_key: str | None = None
    sent_at: str | None = None


class PostHogOk(msgspec.Struct):
    status: int


_flags = msgspec.json.encode(FlagsAnswer())
_encode = msgspec.json.Encoder().encode


class PostHogApp(CollectorTransport):
    """PostHog's capture endpoints: the key in the body, from servers or pages."""

    keys = KeyRule(
        access="tracking",
        missing="Send the project key as api_key (a tracking key, or a publishable key "
        "from a page).",
        unknown="That project key (api_key) is not known.",
        disabled="That project key is disabled.",
        wrong_access="{a_key} cannot send events; use a tracking or publishable key.",
        no_channel="The key's channel no longer exists.",
    )
    browser_keys = KeyRule(
        access="publishable",
        missing="",
        unknown="",
        disabled="That project key is disabled.",
        wrong_access="",
        no_channel="Publishable keys work for website channels only.",
        channel_kind="website",
    )
    cors = Cors(
        methods=b"GET, POST, OPTIONS",
        headers=b"Content-Type",
        foreign_origin="The origin {origin!r} is not an allowed origin of the key's channel.",
    )
    not_found = "No such route; see docs/collectors.md."
    kinds = POSTHOG_IDS
    source = "posthog"

    async def capture(self, request: IngestRequest) -> Answer:
        """``/batch/``, ``/capture/``, ``/e/``, ``/i/v0/e/``: events."""
        raw = await self.body(request)
        compression = query_key(request, "compression")
        if compression in ("gzip-js", "gzip") or raw.startswith(GZIP_MAGIC):
            raw = gunzip(raw, self.settings.max_request_bytes)
        document = decode_text(raw, compression, media_type(request.headers) == FORM)
        body = body_of(document)
        now = utcnow()
        events = [map_event(event, body.sent_at, now) for event in body.events]
        token = body.token or query_key(request, "api_key") or query_key(request, "token")
        await self.collect(request, token, events, now)
        return 200, OK, []

    async def flags(self, request: IngestRequest) -> Answer:
        """``/flags/``, ``/decide/``: no feature flags (they are not Waypost's)."""
        return 200, _flags, []

    async def config(self, request: IngestRequest) -> Answer:
        """``/array/<key>/config``: posthog-js's remote config, with nothing switched on."""
        return 200, _encode(RemoteConfig(_key(request))), []

    async def config_js(self, request: IngestRequest) -> Answer:
        """``/array/<key>/config.js``: the same config as the script posthog-js may load."""
        key = _key(request)
        config = _encode({"config": RemoteConfig(key), "siteApps": []}).decode()
        script = (
            "(function(){window._POSTHOG_REMOTE_CONFIG=window._POSTHOG_REMOTE_CONFIG||{};"
            f"window._POSTHOG_REMOTE_CONFIG[{_encode(key).decode()}]={config};}})();"
        )
        return 200, script.encode(), [(b"content-type", b"application/javascript")]

    def error_body(self, error: ApiError) -> bytes:
        detail = error.detail
        kind = ERROR_TYPES.get(error.status, "validation_error")
        return _encode(
            PostHogError(
                kind,
                detail.code,
                detail.message,
                detail.field,
                {"code": detail.code, "message": detail.message, "field": detail.field},
            )
        )


def _key(request: IngestRequest) -> str:
    key = request.params.get("key", "")
    # The key is echoed into the answer: only the characters keys are made of.
    if not key or len(key) > 100 or not all(c.isalnum() or c in "_-" for c in key):
        raise ApiError(404, "not_found", "No such project key.")
    return key

"""The headless tracking API (Kentico-compatible) as bare ASGI.

It answers under /tracking and /Kentico.Tracking: consent texts, anonymous contacts, consent
agreements and ``POST /activities``, whose 207 answer has one result per activity, in order.
"""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, unquote

import msgspec
from anyio import to_thread

from waypost.domain.keys import bearer_token, hash_key
from waypost.error_words import a_or_an
from waypost.errors import (
    ApiError,
    check_depth,
    check_no_nul,
    from_validation_error,
    too_deep,
)
from waypost.hub import Hub
from waypost.ids import utcnow
from waypost.ingest.activities import prepare
from waypost.ingest.asgi import (
    STORAGE_DOWN,
    Receive,
    Scope,
    Send,
    encode_headers,
    media_type,
    read_body,
    respond,
)
from waypost.ingest.catalog import ChannelInfo, KeyInfo, Snapshot
from waypost.ingest.writer_decision import ActivityResult
from waypost.store import StorageUnavailable

PREFIXES = ("/tracking", "/Kentico.Tracking")


class ForeignOrigin(ApiError):
    """A request from a page outside the allowed origins of the key's channel."""


class ResultsOut(msgspec.Struct):
    """The 207 answer: one result per activity, in order."""

    results: list[ActivityResult]


class TrackingBody(msgspec.Struct, forbid_unknown_fields=True):
    """The body of ``POST /tracking/activities``."""

    channel: uuid.UUID
    contact: uuid.UUID
    activities: list[msgspec.Raw]


class AgreeBody(msgspec.Struct, forbid_unknown_fields=True):
    """The body of a consent agreement: ``{"agree": true}`` agrees, ``false`` revokes."""

    agree: bool


class ConsentTextOut(msgspec.Struct, rename="camel"):
    short_text: str
    full_text: str


class IsAgreedOut(msgspec.Struct, rename="camel"):
    is_agreed: bool


_encode = msgspec.json.Encoder().encode
_decode_body = msgspec.json.Decoder(TrackingBody).decode
_decode_raw_object = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
_decode_agree = msgspec.json.Decoder(AgreeBody).decode


def _json_media(headers: dict[bytes, bytes]) -> bool:
    return media_type(headers) == b"application/json"


class TrackingApp:
    """The tracking routes; everything else under the prefixes is a 404."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.settings = hub.settings
        self.catalog = hub.catalog
        self.writer = hub.writer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        origin = headers.get(b"origin")
        cors = origin is not None
        try:
            status, body, extra = await self._dispatch(scope, receive, headers)
        except ForeignOrigin as exc:
            # The page is not one of the key's channel: its script may not read the answer.
            status, body, extra, cors = exc.status, exc.body(), exc.headers, False
        except ApiError as exc:
            status, body, extra = exc.status, exc.body(), exc.headers
        except StorageUnavailable:
            status, body, extra = 503, STORAGE_DOWN.body(), STORAGE_DOWN.headers
        response_headers = encode_headers(extra)
        if origin is not None:
            response_headers += await self._cors(origin) if cors else [(b"vary", b"Origin")]
        await respond(send, status, body, response_headers)

    async def _dispatch(
        self, scope: Scope, receive: Receive, headers: dict[bytes, bytes]
    ) -> tuple[int, bytes, dict[str, str]]:
        path: str = scope["path"]
        for prefix in PREFIXES:
            if path.startswith(prefix):
                rest = path[len(prefix) :]
                break
        else:  # pragma: no cover - the dispatcher only sends these prefixes
            raise ApiError(404, "not_found", "No such route.")
        method: str = scope["method"]
        parts = [unquote(p) for p in rest.strip("/").split("/")]
        if any("\x00" in part for part in parts):
            # Consent code names in the path reach the database, whose text cannot hold NUL.
            raise ApiError(400, "invalid_field", "The path cannot hold the NUL character.")
        if method == "OPTIONS":
            return 204, b"", {}
        if parts == ["activities"]:
            self._allow(method, "POST")
            return await self._activities(receive, headers)
        if parts == ["contacts"]:
            self._allow(method, "POST")
            await self._authenticate(headers)
            created = await to_thread.run_sync(self.hub.contacts.create_anonymous)
            return 200, _encode(created), {}
        if len(parts) == 2 and parts[0] == "consents":
            self._allow(method, "GET")
            return await self._consent_text(parts[1], scope, headers)
        if len(parts) == 4 and parts[0] == "contacts" and parts[2] == "consents":
            self._allow(method, "GET", "POST")
            return await self._agreement(method, parts[1], parts[3], receive, headers)
        raise ApiError(404, "not_found", "No such tracking route.")

    @staticmethod
    def _allow(method: str, *allowed: str) -> None:
        if method not in allowed:
            raise ApiError(
                405,
                "method_not_allowed",
                f"Use {' or '.join(allowed)} here.",
                headers={"Allow": ", ".join(allowed)},
            )

    async def _snapshot(self) -> Snapshot:
        snapshot = self.catalog.fresh()
        if snapshot is None:
            snapshot = await to_thread.run_sync(self.catalog.get)
        return snapshot

    async def _authenticate(self, headers: dict[bytes, bytes]) -> tuple[KeyInfo, ChannelInfo]:
        raw = headers.get(b"authorization")
        token = bearer_token(raw.decode("latin-1") if raw is not None else None)
        if token is None:
            raise ApiError(
                401, "unauthorized", "Send 'Authorization: Bearer <tracking key>' (wpt_...)."
            )
        snapshot = await self._snapshot()
        key = snapshot.keys.get(hash_key(token))
        if key is None:
            raise ApiError(401, "unauthorized", "That API key is not known; use a tracking key.")
        if not key.enabled:
            raise ApiError(403, "forbidden", "That API key is disabled.")
        if key.access != "tracking" or key.channel_id is None:
            raise ApiError(
                403,
                "forbidden",
                f"{a_or_an(key.access).capitalize()} key cannot use the tracking API; "
                "use a tracking key (wpt_...).",
            )
        channel = snapshot.channels.get(key.channel_id)
        if channel is None:
            raise ApiError(403, "forbidden", "The key's channel no longer exists.")
        origin = headers.get(b"origin")
        # Preflights carry no key, so they answer for every channel's origins; the request
        # itself names its channel, and a page of another channel may not use the key.
        if origin is not None and origin.decode("latin-1") not in channel.allowed_origins:
            raise ForeignOrigin(
                403,
                "forbidden",
                f"The origin {origin.decode('latin-1')!r} is not an allowed origin of the "
                "key's channel; add it to the channel's allowed origins.",
            )
        self.hub.keys.usage.note(key.id)
        return key, channel

    async def _body(self, receive: Receive, headers: dict[bytes, bytes]) -> bytes:
        return await read_body(receive, headers, self.settings.max_request_bytes)

    # -- routes ----------------------------------------------------------------------------

    async def _activities(
        self, receive: Receive, headers: dict[bytes, bytes]
    ) -> tuple[int, bytes, dict[str, str]]:
        _, channel = await self._authenticate(headers)
        if not _json_media(headers):
            raise ApiError(415, "unsupported_media_type", "Send 'Content-Type: application/json'.")
        try:
            body = _parse_tracking_body(await self._body(receive, headers))
        except RecursionError:
            # Checking a whole batch's depth up front costs more than decoding it; each
            # activity's depth is checked on its own (prepare), so only a document too deep
            # to decode at all ends here.
            raise too_deep() from None
        if body.channel != channel.id:
            raise ApiError(
                403,
                "forbidden",
                "The API key belongs to another channel than 'channel'.",
                "channel",
            )
        count = len(body.activities)
        if count == 0:
            raise ApiError(400, "invalid_field", "Send at least one activity.", "activities")
        if count > self.settings.max_activities_per_request:
            raise ApiError(
                413,
                "payload_too_large",
                f"A request holds at most {self.settings.max_activities_per_request} activities; "
                f"this one has {count}.",
                "activities",
            )
        snapshot = await self._snapshot()
        now = utcnow()
        limit = self.settings.max_activity_bytes
        items = [prepare(bytes(raw), snapshot, now, limit) for raw in body.activities]
        results = await self.writer.submit(channel, body.contact, items, now)
        return 207, _encode(ResultsOut(results)), {}

    async def _consent_text(
        self, code_name: str, scope: Scope, headers: dict[bytes, bytes]
    ) -> tuple[int, bytes, dict[str, str]]:
        _, channel = await self._authenticate(headers)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        check_no_nul((name, value) for name, values in query.items() for value in values)
        language = next(
            (values[0] for name, values in query.items() if name.lower() == "languagename"), None
        )
        text = await to_thread.run_sync(
            self.hub.consents.text_for, code_name, language, channel.default_language
        )
        return 200, _encode(ConsentTextOut(text.short_text, text.full_text)), {}

    async def _agreement(
        self,
        method: str,
        contact: str,
        consent: str,
        receive: Receive,
        headers: dict[bytes, bytes],
    ) -> tuple[int, bytes, dict[str, str]]:
        _, channel = await self._authenticate(headers)
        try:
            contact_id = uuid.UUID(contact)
        except ValueError:
            raise ApiError(404, "contact_not_found", f"No contact {contact!r}.") from None
        if method == "GET":
            state = await to_thread.run_sync(self.hub.consents.state, contact_id, consent)
            return 200, _encode(IsAgreedOut(state.agreed)), {}
        if not _json_media(headers):
            raise ApiError(415, "unsupported_media_type", "Send 'Content-Type: application/json'.")
        raw = await self._body(receive, headers)
        check_depth(raw)
        try:
            body = _decode_agree(_lower_keys(raw))
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise from_validation_error(exc) from None
        agreement = await to_thread.run_sync(
            self.hub.consents.agree, contact_id, consent, body.agree, channel.id
        )
        return 200, _encode(IsAgreedOut(agreement.agreed)), {}

    async def _cors(self, origin: bytes) -> list[tuple[bytes, bytes]]:
        snapshot = await self._snapshot()
        vary = [(b"vary", b"Origin")]
        if origin.decode("latin-1") not in snapshot.all_origins:
            return vary
        return [
            *vary,
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
            (b"access-control-allow-headers", b"Authorization, Content-Type"),
            (b"access-control-max-age", b"600"),
        ]


def _lower_keys(raw: bytes) -> bytes:
    """Re-encode a small JSON object with lower-cased property names (``Agree`` -> ``agree``)."""
    try:
        obj = _decode_raw_object(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return raw
    return _encode({k.lower(): v for k, v in obj.items()})


TOP_LEVEL = {"channel": "channel", "contact": "contact", "activities": "activities"}


def _parse_tracking_body(raw: bytes) -> TrackingBody:
    """Decode the request, matching ``Channel``, ``Contact`` and ``Activities`` in any case."""
    try:
        return _decode_body(raw)
    except msgspec.ValidationError as exc:  # a subclass of DecodeError, so caught first
        first_error = from_validation_error(exc)
    except msgspec.DecodeError as exc:
        raise from_validation_error(exc) from None
    try:
        obj = _decode_raw_object(raw)
    except msgspec.ValidationError:
        raise ApiError(400, "invalid_json", "The body must be a JSON object.") from None
    except msgspec.DecodeError as exc:
        # msgspec validates while it parses: '{"channel": "a",}' fails validation first.
        raise from_validation_error(exc) from None
    canonical: dict[str, msgspec.Raw] = {}
    for key, value in obj.items():
        name = TOP_LEVEL.get(key.lower())
        if name is None:
            raise ApiError(
                400,
                "unknown_field",
                f"Unknown property {key!r}; the body has channel, contact and activities.",
                key,
            )
        canonical[name] = value
    if len(canonical) == len(obj) and obj.keys() == canonical.keys():
        raise first_error
    try:
        return _decode_body(_encode(canonical))
    except msgspec.ValidationError as exc:
        raise from_validation_error(exc) from None

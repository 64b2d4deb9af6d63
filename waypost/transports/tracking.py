"""The headless tracking API (Kentico-compatible) as bare ASGI.

It answers under /tracking and /Kentico.Tracking (the routes are in waypost/transports/routes.py):
consent texts, anonymous contacts, consent agreements and ``POST /activities``, whose 207
answer has one result per activity, in order.
"""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs

import msgspec
from anyio import to_thread

from waypost.errors import (
    ApiError,
    check_depth,
    check_no_nul,
    from_validation_error,
    too_deep,
)
from waypost.ids import utcnow
from waypost.pipeline.catalog import ChannelInfo
from waypost.pipeline.writer_decision import ActivityResult
from waypost.transports.bodies import check_utf8, media_type
from waypost.transports.frame import (
    Answer,
    Cors,
    IngestRequest,
    KeyRule,
    Transport,
    bearer,
)


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


class TrackingApp(Transport):
    """The tracking endpoints: a tracking key as bearer token, pages of the key's channel."""

    keys = KeyRule(
        access="tracking",
        missing="Send 'Authorization: Bearer <tracking key>' (wpt_...).",
        unknown="That API key is not known; use a tracking key.",
        disabled="That API key is disabled.",
        wrong_access="{a_key} cannot use the tracking API; use a tracking key (wpt_...).",
        no_channel="The key's channel no longer exists.",
    )
    cors = Cors(
        methods=b"GET, POST, OPTIONS",
        headers=b"Authorization, Content-Type",
        foreign_origin="The origin {origin!r} is not an allowed origin of the key's channel; "
        "add it to the channel's allowed origins.",
    )
    not_found = "No such tracking route."
    wrong_method = "Use {methods} here."
    unquote_paths = True

    async def _channel(self, request: IngestRequest) -> ChannelInfo:
        return await self.authenticate(request, bearer(request))

    async def activities(self, request: IngestRequest) -> Answer:
        """``POST /activities``: one result per activity, in order."""
        channel = await self._channel(request)
        if not _json_media(request.headers):
            raise ApiError(415, "unsupported_media_type", "Send 'Content-Type: application/json'.")
        raw_body = await self.body(request)
        check_utf8(raw_body)
        try:
            body = _parse_tracking_body(raw_body)
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
        # The catalog the key was checked against, as the other transports validate with.
        snapshot = request.snapshot
        assert snapshot is not None
        now = utcnow()
        limit = self.settings.max_activity_bytes
        raw = [bytes(one) for one in body.activities]
        results = await self.writer.submit_raw(channel, body.contact, raw, snapshot, now, limit)
        return 207, _encode(ResultsOut(results)), []

    async def create_contact(self, request: IngestRequest) -> Answer:
        """``POST /contacts``: a new anonymous contact."""
        await self._channel(request)
        created = await to_thread.run_sync(self.hub.contacts.create_anonymous)
        return 200, _encode(created), []

    async def consent_text(self, request: IngestRequest) -> Answer:
        """``GET /consents/{consent}``: in ``languageName=``, else the channel's language."""
        channel = await self._channel(request)
        query = parse_qs(request.scope.get("query_string", b"").decode("latin-1"))
        check_no_nul((name, value) for name, values in query.items() for value in values)
        language = next(
            (values[0] for name, values in query.items() if name.lower() == "languagename"), None
        )
        text = await to_thread.run_sync(
            self.hub.consents.text_for,
            request.params["consent"],
            language,
            channel.default_language,
        )
        return 200, _encode(ConsentTextOut(text.short_text, text.full_text)), []

    async def is_agreed(self, request: IngestRequest) -> Answer:
        """``GET /contacts/{contact}/consents/{consent}``: whether it is agreed now."""
        await self._channel(request)
        contact_id = _contact_id(request.params["contact"])
        state = await to_thread.run_sync(
            self.hub.consents.state, contact_id, request.params["consent"]
        )
        return 200, _encode(IsAgreedOut(state.agreed)), []

    async def agree(self, request: IngestRequest) -> Answer:
        """``POST /contacts/{contact}/consents/{consent}``: agree or revoke."""
        channel = await self._channel(request)
        contact_id = _contact_id(request.params["contact"])
        if not _json_media(request.headers):
            raise ApiError(415, "unsupported_media_type", "Send 'Content-Type: application/json'.")
        raw = await self.body(request)
        check_depth(raw)
        try:
            body = _decode_agree(_lower_keys(raw))
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise from_validation_error(exc) from None
        agreement = await to_thread.run_sync(
            self.hub.consents.agree, contact_id, request.params["consent"], body.agree, channel.id
        )
        return 200, _encode(IsAgreedOut(agreement.agreed)), []


def _contact_id(contact: str) -> uuid.UUID:
    try:
        return uuid.UUID(contact)
    except ValueError:
        raise ApiError(404, "contact_not_found", f"No contact {contact!r}.") from None


def _given_twice(key: str) -> ApiError:
    # "agree" and "Agree": neither is the one meant, so neither is taken.
    return ApiError(400, "invalid_field", f"The property {key!r} is given twice.", key)


def _lower_keys(raw: bytes) -> bytes:
    """Re-encode a small JSON object with lower-cased property names (``Agree`` -> ``agree``);
    400 when two of them differ in case only."""
    try:
        obj = _decode_raw_object(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return raw
    lowered: dict[str, msgspec.Raw] = {}
    for key, value in obj.items():
        name = key.lower()
        if name in lowered:
            raise _given_twice(key)
        lowered[name] = value
    return _encode(lowered)


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
        if name in canonical:
            raise _given_twice(key)
        canonical[name] = value
    if len(canonical) == len(obj) and obj.keys() == canonical.keys():
        raise first_error
    try:
        return _decode_body(_encode(canonical))
    except msgspec.ValidationError as exc:
        raise from_validation_error(exc) from None

"""Marketo's custom activities API, as bare ASGI, so that code written for Marketo's
``POST /rest/v1/activities/external.json`` logs to Waypost by changing its host and
credentials (docs/collectors.md).

The token is a tracking key, as ``Authorization: Bearer`` or ``?access_token=``; Marketo's
client credentials flow (``/identity/oauth/token``) answers with the tracking key sent as the
client secret as the token, so that clients that authenticate first work unchanged. The answer
is Marketo's: ``{"requestId", "success": true, "result": [...]}`` with one result per record,
in order (``added`` with the activity's id, or ``skipped`` with ``reasons``), once everything
is committed. Errors are Marketo's ``{"requestId", "success": false, "errors": [{"code",
"message"}]}`` with Waypost's one error shape beside them, under a 4xx status (Marketo answers
200; its clients read ``success``), and a storage outage is a 503 with Marketo's retryable code
608, which Marketo's clients retry.
"""

from __future__ import annotations

import secrets
import time
from typing import Literal
from urllib.parse import parse_qsl

import msgspec

from waypost.domain.marketo import TypeView, map_record, records_of
from waypost.errors import ApiError, ErrorDetail
from waypost.ids import utcnow
from waypost.pipeline.writer_decision import ActivityResult
from waypost.services.collectors import MARKETO_IDS
from waypost.transports.bodies import media_type
from waypost.transports.collected import CollectorTransport
from waypost.transports.frame import Answer, IngestRequest, KeyRule, bearer, query_key

JSON_TYPES = (b"application/json", b"")
# What the token answer says of its lifetime: Marketo's clients ask again before it ends.
TOKEN_SECONDS = 3599

# Marketo's error codes for Waypost's (docs/collectors.md): request-level first.
REQUEST_CODES = {
    "invalid_json": "609",
    "unsupported_media_type": "612",
    "unauthorized": "601",
    "forbidden": "603",
    "not_found": "610",
    "method_not_allowed": "610",
    "storage_unavailable": "608",
    "internal_error": "611",
    "rate_limited": "606",
}
RECORD_CODES = {
    "activity_type_not_found": "1013",
    "activity_type_disabled": "1013",
    "unknown_field": "1006",
    "field_type_mismatch": "1001",
    "invalid_field": "1001",
    "missing_field": "1003",
    "contact_not_found": "1004",
    "rate_limited": "606",
}
INVALID_DATA = "1003"
ALREADY_STORED = (
    "The same activity (lead, type, date, primary value and attributes) is stored already; "
    "it was not stored twice."
)


class MarketoReason(msgspec.Struct):
    """Why a record was skipped, or why the request failed."""

    code: str
    message: str


class MarketoResult(msgspec.Struct, omit_defaults=True):
    """One record's outcome: ``added`` with the activity's id, or ``skipped`` with reasons
    (the id of the activity stored before, for a record sent again)."""

    status: str
    id: str | None = None
    reasons: list[MarketoReason] | None = None


class MarketoAnswer(msgspec.Struct, rename="camel"):
    """Marketo's answer: one result per record, in order."""

    request_id: str
    success: bool
    result: list[MarketoResult]


class TokenQuery(msgspec.Struct):
    """``/identity/oauth/token``: Marketo's client credentials; the secret is a tracking key,
    the client id anything (it is not checked)."""

    grant_type: Literal["client_credentials"]
    client_secret: str
    client_id: str | None = None


class TokenAnswer(msgspec.Struct):
    """The access token is the tracking key itself: it lasts until the key is disabled."""

    access_token: str
    token_type: str
    expires_in: int
    scope: str


class MarketoFailure(msgspec.Struct, rename="camel"):
    """Marketo's error answer, with Waypost's one error shape beside it."""

    request_id: str
    success: bool
    errors: list[MarketoReason]
    error: ErrorDetail


_encode = msgspec.json.Encoder().encode


class MarketoApp(CollectorTransport):
    """``/rest/...``: Marketo's custom activities with a tracking key as the token."""

    keys = KeyRule(
        access="tracking",
        missing="Send a tracking key as the access token: Authorization: Bearer wpt_... "
        "or ?access_token=wpt_...",
        unknown="That access token is not known.",
        disabled="That access token is disabled.",
        wrong_access="{a_key} cannot log activities; the access token is a tracking key.",
        no_channel="The key's channel no longer exists.",
    )
    not_found = (
        "No such route; Waypost answers Marketo's POST /rest/v1/activities/external.json "
        "(see docs/collectors.md)."
    )
    kinds = MARKETO_IDS
    source = "marketo"

    async def external(self, request: IngestRequest) -> Answer:
        """``POST /rest/v1/activities/external.json``: up to 300 activities."""
        token = bearer(request) or query_key(request, "access_token")
        await self.authenticate(request, token)
        if media_type(request.headers) not in JSON_TYPES:
            raise ApiError(415, "unsupported_media_type", "Send JSON (application/json).")
        records = records_of(await self.body(request))
        snapshot = request.snapshot
        assert snapshot is not None  # authenticate() took it

        def types(number: int) -> TypeView | None:
            info = snapshot.numbers.get(number)
            return None if info is None else (info.code_name, info.fields)

        events = [map_record(record, types) for record in records]
        outcomes = await self.collect(request, token, events, utcnow())
        answer = MarketoAnswer(request_id(), True, [_result(o) for o in outcomes])
        return 200, _encode(answer), []

    async def token(self, request: IngestRequest) -> Answer:
        """``GET /identity/oauth/token``: the client credentials flow Marketo's clients start
        with; the access token is the tracking key sent as the client secret."""
        params = _params(request.scope.get("query_string", b""))
        grant = params.get("grant_type")
        if grant != "client_credentials":
            raise ApiError(
                400,
                "invalid_field",
                "grant_type must be client_credentials (unsupported_grant_type).",
                "grant_type",
            )
        secret = params.get("client_secret")
        channel = await self.authenticate(request, secret)
        assert secret is not None  # authenticate() refuses none
        answer = TokenAnswer(secret, "bearer", TOKEN_SECONDS, str(channel.id))
        return 200, _encode(answer), [(b"cache-control", b"no-store")]

    def error_body(self, error: ApiError) -> bytes:
        detail = error.detail
        code = REQUEST_CODES.get(detail.code, INVALID_DATA)
        failure = MarketoFailure(request_id(), False, [MarketoReason(code, detail.message)], detail)
        return _encode(failure)


def _result(outcome: ActivityResult | None) -> MarketoResult:
    if outcome is None:  # every record logs an activity; kept for the type checker
        return MarketoResult("skipped", reasons=[MarketoReason(INVALID_DATA, "Not stored.")])
    if outcome.status == 202:
        return MarketoResult("added", str(outcome.id))
    if outcome.status == 208:
        reason = MarketoReason("1017", ALREADY_STORED)
        return MarketoResult("skipped", str(outcome.id), [reason])
    error = outcome.error
    assert error is not None
    code = RECORD_CODES.get(error.code, INVALID_DATA)
    return MarketoResult("skipped", reasons=[MarketoReason(code, _message(error))])


def _message(error: ErrorDetail) -> str:
    if error.code == "activity_type_not_found" and error.message.startswith(
        "No activity type has the code name 'marketo:"
    ):
        return "No activity type has this number (activityTypeId); see /api/activity-types."
    return error.message


def _params(query: bytes) -> dict[str, str]:
    try:
        pairs = parse_qsl(query.decode("latin-1"), max_num_fields=20, errors="strict")
    except ValueError:
        raise ApiError(400, "invalid_field", "The parameters cannot be read.") from None
    return dict(pairs)


def request_id() -> str:
    """A request id in Marketo's form: ``<4 hex digits>#<milliseconds in hex>``."""
    return f"{secrets.token_hex(2)}#{int(time.time() * 1000):x}"

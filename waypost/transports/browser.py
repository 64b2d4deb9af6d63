"""The browser endpoints behind waypost.js, as bare ASGI under /browser.

Publishable keys only (in the ``key`` query parameter, so ``sendBeacon`` works), website
channels only, from the channel's allowed origins only. Activities: client-side types only,
cookie level ``visitor`` or ``all``, within the type's rate limits, and for contacts with a
current agreement to the channel's tracking consent; identify under the same two conditions.
A refused activity is kept as rejected within the address's hourly cap
(waypost/transports/rejected_cap.py). See docs/browser-tracking.md.
"""

from __future__ import annotations

import functools
import math
import uuid
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from anyio import to_thread

from waypost.domain.collected import activity_names
from waypost.domain.contact_fields import is_email
from waypost.domain.suppressions import CONTACT, EMAIL, contact_erased
from waypost.error_words import quoted
from waypost.errors import ApiError, ErrorBody, holds_nul, nul_refused
from waypost.ids import utcnow
from waypost.pipeline.catalog import ChannelInfo, Snapshot
from waypost.pipeline.prepare import Accepted, Rejected, prepare, reject
from waypost.pipeline.writer_decision import Job
from waypost.ratelimit import Decision, Limit, retry_after
from waypost.services.collectors import find_type
from waypost.transports.bodies import check_utf8, decode_json, media_type
from waypost.transports.contact_limits import contact_limit_key, follow_merges
from waypost.transports.frame import (
    Answer,
    Cors,
    Headers,
    IngestRequest,
    KeyRule,
    Transport,
    query_key,
)
from waypost.transports.rejected_cap import submit_capped

if TYPE_CHECKING:
    from waypost.hub import Hub

TRACKING_LEVELS = ("visitor", "all")
COOKIE_LEVELS = ("none", "essential", "visitor", "all")
BODY_TYPES = (b"text/plain", b"application/json", b"")
# An activity is at most 16 KB by default; past this, naming its type is not worth decoding it.
MAX_NAMED = 64 * 1024


class ConsentBody(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /browser/consent``: give or revoke a consent; the first agreement creates the
    contact, once per ``id`` (the request's own random id, for sending it again safely)."""

    consent: str
    agree: bool
    contact: uuid.UUID | None = None
    id: Annotated[str, msgspec.Meta(min_length=16, max_length=100)] | None = None


class ConsentAnswer(msgspec.Struct, rename="camel"):
    contact: uuid.UUID | None
    is_agreed: bool


class ActivityBody(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    """``POST /browser/activity``: one activity of the page's visitor."""

    contact: uuid.UUID
    cookie_level: str
    activity: msgspec.Raw


class ActivityAnswer(msgspec.Struct, omit_defaults=True):
    id: uuid.UUID | None = None
    status: int = 202


class IdentifyAnswer(msgspec.Struct):
    """The contact the browser is from now on, and whether the visitor's was merged into it."""

    contact: uuid.UUID
    merged: bool


class IdentifyBody(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    """``POST /browser/identify``: the visitor's email, names and the site's identity hash."""

    email: str
    cookie_level: str
    contact: uuid.UUID | None = None
    first: str | None = None
    last: str | None = None
    hash: str | None = None


_encode = msgspec.json.Encoder().encode
_decode_object = msgspec.json.Decoder(dict[str, Any]).decode


class BrowserApp(Transport):
    """The /browser endpoints: a publishable key in ``?key=``, pages of its website channel.
    Every request, whatever its route, needs the key and the origin."""

    keys = KeyRule(
        access="publishable",
        missing="Add the publishable key: ?key=wpp_...",
        unknown="That key is not known.",
        disabled="That key is disabled.",
        wrong_access="Browsers use a publishable key (wpp_...).",
        no_channel="Publishable keys work for website channels only.",
        channel_kind="website",
    )
    cors = Cors(
        methods=b"POST, OPTIONS",
        headers=b"Content-Type",
        foreign_origin="The origin {origin!r} is not an allowed origin of the channel.",
        origin_required=True,
    )
    not_found = "No such browser route."

    def __init__(self, hub: Hub) -> None:
        super().__init__(hub)
        self.limiter = hub.rate_limiter

    async def admit(self, request: IngestRequest) -> None:
        await self.authenticate(request, query_key(request))

    async def consent(self, request: IngestRequest) -> Answer:
        """``POST /browser/consent``."""
        body = decode_json(await self._body(request, nul_ok=False), ConsentBody)
        return await self._consent(body, _channel(request), self.hub.client_key(request.scope))

    async def identify(self, request: IngestRequest) -> Answer:
        """``POST /browser/identify``."""
        raw = await self._body(request, nul_ok=False)
        ip = self.hub.client_key(request.scope)
        body = decode_json(raw, IdentifyBody)
        return await self._identify(body, _channel(request), _snapshot(request), ip)

    async def activity(self, request: IngestRequest) -> Answer:
        """``POST /browser/activity``."""
        raw = await self._body(request, nul_ok=True)
        check_utf8(raw)
        ip = self.hub.client_key(request.scope)
        body = decode_json(raw, ActivityBody)
        return await self._activity(body, _channel(request), _snapshot(request), ip)

    async def _body(self, request: IngestRequest, *, nul_ok: bool) -> bytes:
        # sendBeacon posts text/plain, which needs no preflight.
        if media_type(request.headers) not in BODY_TYPES:
            raise ApiError(
                415, "unsupported_media_type", "Send JSON as text/plain or application/json."
            )
        raw = await self.body(request)
        if not nul_ok and holds_nul(raw):
            # Consent code names and names reach the database, whose text cannot hold NUL.
            # (An activity's NUL is refused with the activity, which is kept as rejected.)
            raise nul_refused("Text in the body")
        return raw

    async def _consent(self, body: ConsentBody, channel: ChannelInfo, ip: str) -> Answer:
        # Without a contact, a first agreement creates one, and a request with an id stores
        # that id (a revocation too, so that its agreement, coming later, makes no contact):
        # both count against the address's limit; what turns out to store nothing is given back.
        stores = body.contact is None and (body.agree or body.id is not None)
        decisions = await self._new_contact(ip) if stores else []
        try:
            given = await to_thread.run_sync(
                self.hub.browser_consents.give,
                channel.id,
                body.contact,
                body.consent,
                body.agree,
                body.id,
            )
        except Exception:
            await self.limiter.forget(decisions)
            raise
        if not given.created:
            await self.limiter.forget(decisions)
        answer = ConsentAnswer(given.contact, given.agreed)
        return 200, _encode(answer), _rate_headers(decisions)

    async def _new_contact(self, ip: str) -> list[Decision]:
        """Count a request that may create a contact against its address's hourly limit: a
        publishable key is public, and each contact costs storage and group evaluations."""
        per_hour = self.settings.new_contacts_per_ip_per_hour
        if not per_hour:
            return []
        decisions = await self.limiter.hit([Limit(f"contacts:ip:{ip}", per_hour, 3600)])
        if not all(d.allowed for d in decisions):
            wait = retry_after(decisions)
            headers = {k.decode(): v.decode() for k, v in _rate_headers(decisions)}
            raise ApiError(
                429,
                "rate_limited",
                f"Too many new contacts from this address; retry in {wait} s.",
                headers={**headers, "retry-after": str(wait)},
            )
        return decisions

    async def _identify(
        self, body: IdentifyBody, channel: ChannelInfo, snapshot: Snapshot, ip: str
    ) -> Answer:
        email = body.email.strip()
        if not is_email(email):
            raise ApiError(
                400, "invalid_field", f"{quoted(body.email)} is not an email address.", "email"
            )
        names: dict[str, object] = {}
        for name, column in (("first", "first_name"), ("last", "last_name")):
            value = getattr(body, name)
            if value is not None and value.strip():
                if len(value) > 100:
                    raise ApiError(400, "invalid_field", f"{name} is at most 100 characters.", name)
                names[column] = value.strip()
        # Naming a visitor is tracking them: the rules of activities apply
        # (docs/browser-tracking.md).
        refused = cookie_level_refusal(body.cookie_level)
        if refused is not None:
            raise refused
        if snapshot.suppressed.any_of([(EMAIL, email), (CONTACT, body.contact)]):
            raise contact_erased("The person this identify names")
        # Any identify may create a contact (an email new to this browser is another person).
        decisions = await self._new_contact(ip)
        try:
            identified = await to_thread.run_sync(
                functools.partial(
                    self.hub.contacts.identify,
                    channel.id,
                    channel.identity_secret,
                    body.contact,
                    email,
                    names,
                    body.hash,
                    tracking_consent=channel.tracking_consent,
                )
            )
        except Exception:
            await self.limiter.forget(decisions)
            raise
        if not identified.created:
            await self.limiter.forget(decisions)
        if identified.merged and body.contact is not None:
            await follow_merges(self.limiter, snapshot, [(body.contact, identified.contact)])
        answer = IdentifyAnswer(identified.contact, identified.merged)
        return 200, _encode(answer), _rate_headers(decisions)

    async def _activity(
        self, body: ActivityBody, channel: ChannelInfo, snapshot: Snapshot, ip: str
    ) -> Answer:
        now = utcnow()
        raw = named_type(bytes(body.activity), snapshot)
        item = prepare(raw, snapshot, now, self.settings.max_activity_bytes)
        headers: Headers = []
        item = _browser_rules(item, body.cookie_level, snapshot)
        if isinstance(item, Accepted):
            decisions = await self._limit(item, body.contact, ip)
            headers = _rate_headers(decisions)
            if not all(d.allowed for d in decisions):
                wait = retry_after(decisions)
                headers.append((b"retry-after", str(wait).encode()))
                item = reject(
                    ApiError(
                        429,
                        "rate_limited",
                        f"Over the rate limit of {item.type.code_name!r}; retry in {wait} s.",
                    ),
                    raw,
                    item.type.code_name,
                )
        job = Job(
            channel,
            body.contact,
            [item],
            now,
            "browser",
            require_consent=channel.tracking_consent is not None,
        )
        # Kept as rejected within the address's hourly cap; past it, a 429 and nothing kept.
        [[result]] = await submit_capped(self.hub, ip, [job])
        if result.error is not None:
            return result.status, _encode(ErrorBody(result.error)), headers
        return result.status, _encode(ActivityAnswer(result.id, result.status)), headers

    async def _limit(self, item: Accepted, contact: uuid.UUID, ip: str) -> list[Decision]:
        limits = []
        kind = item.type
        if kind.per_contact is not None:
            limits.append(
                Limit(
                    contact_limit_key(kind.id, contact),
                    kind.per_contact.limit,
                    kind.per_contact.window_seconds,
                )
            )
        if kind.per_ip is not None:
            limits.append(
                Limit(f"{kind.id}:ip:{ip}", kind.per_ip.limit, kind.per_ip.window_seconds)
            )
        if not limits:
            return []
        return await self.limiter.hit(limits)


def named_type(raw: bytes, snapshot: Snapshot) -> bytes:
    """The activity with its ``type`` as a code name, when it names its type otherwise: by
    alias, or as Ortto's snippet does (``act:cm:login``, see ``activity_names``)."""
    if len(raw) > MAX_NAMED or holds_nul(raw):
        return raw  # refused by prepare() anyway
    try:
        activity = _decode_object(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return raw
    key = next((k for k in activity if k.lower() == "type"), "type")
    name = activity.get(key)
    if not isinstance(name, str) or name in snapshot.types:
        return raw
    found = find_type(snapshot, activity_names(name))
    if found is None:
        return raw
    activity[key] = found.code_name
    return msgspec.json.encode(activity)


def _browser_rules(
    item: Accepted | Rejected, cookie_level: str, snapshot: Snapshot
) -> Accepted | Rejected:
    if isinstance(item, Rejected) and not item.keep:
        return item  # it names an erased person: refused as such, and kept nowhere
    # Unknown, disabled and server-side types are one and the same 404 to a page, whatever else
    # is wrong with the activity: a page learns nothing of the types it may not log.
    code = item.type.code_name if isinstance(item, Accepted) else item.type_code
    info = item.type if isinstance(item, Accepted) else snapshot.types.get(code or "")
    if code is not None and (info is None or not info.enabled or not info.client_side):
        return reject(
            ApiError(
                404,
                "activity_type_not_found",
                f"The activity type {quoted(code)} does not exist or is not enabled for "
                "client-side logging.",
                "type",
            ),
            item.payload,
            code,
        )
    if isinstance(item, Rejected):
        return item
    if item.contact_fields:
        return reject(
            ApiError(
                400,
                "invalid_field",
                "Browsers cannot set contact fields (nor str::email, str::first, str::last); "
                "use identify.",
                "contactFields",
            ),
            item.payload,
            code,
        )
    refused = cookie_level_refusal(cookie_level)
    if refused is not None:
        return reject(refused, item.payload, code)
    return item


def cookie_level_refusal(cookie_level: str) -> ApiError | None:
    """The 403 ``consent_required`` for a cookie level below ``visitor``, or None: the same
    rule for activities and identify."""
    if cookie_level in TRACKING_LEVELS:
        return None
    return ApiError(
        403,
        "consent_required",
        f"The cookie level is {quoted(cookie_level)}; tracking needs 'visitor' or 'all'.",
        "cookieLevel",
    )


def _channel(request: IngestRequest) -> ChannelInfo:
    # admit() authenticated the request, which set both.
    assert request.channel is not None
    return request.channel


def _snapshot(request: IngestRequest) -> Snapshot:
    assert request.snapshot is not None
    return request.snapshot


def _rate_headers(decisions: list[Decision]) -> Headers:
    if not decisions:
        return []
    tightest = min(decisions, key=lambda d: d.remaining)
    return [
        (b"ratelimit-limit", str(tightest.limit.limit).encode()),
        (b"ratelimit-remaining", str(max(0, tightest.remaining)).encode()),
        # Whole seconds rounded up, as Retry-After: never a moment too early.
        (b"ratelimit-reset", str(max(0, math.ceil(tightest.reset))).encode()),
    ]

"""The Segment-compatible HTTP tracking API, as bare ASGI under /v1.

``/v1/batch``, ``/v1/track``, ``/v1/identify``, ``/v1/page``, ``/v1/screen``, ``/v1/group``
and ``/v1/alias`` (and analytics.js's short forms ``/v1/b``, ``/v1/t``, ...), as Segment's
HTTP API defines them, so that Segment's and RudderStack's SDKs work pointed at Waypost: the
write key (a tracking key) is the Basic-auth user name or ``writeKey`` in the body; bodies may
be gzipped and may come under any content type; 32 KB per message and 500 KB per batch.
The answer is Segment's: 200 ``{"success": true}`` once every message is stored or kept as a
rejected activity, 400 for a body that is too large or not JSON, 401 for a bad write key.

Segment's analytics.js (``@segment/analytics-next``) sends from pages: its settings come from
``GET /v1/projects/<writeKey>/settings`` (its ``cdnURL`` pointed at Waypost), ``/v1/*``
answers CORS for the channel's origins, and its write key is a publishable key, which works
from the channel's pages only (a tracking key is refused from any page). What pages send
follows the browser rules (waypost/transports/page_rules.py, docs/collectors.md), and what it
leaves rejected is kept within the address's hourly cap (waypost/transports/rejected_cap.py).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from typing import Any

import msgspec

from waypost.domain.collected import readable
from waypost.domain.segment import Message
from waypost.domain.suppressions import contact_erased
from waypost.errors import ApiError, check_depth, too_deep
from waypost.ids import utcnow
from waypost.pipeline.catalog import ChannelInfo, Snapshot
from waypost.pipeline.prepare import Accepted, Rejected, prepare, reject
from waypost.pipeline.writer_decision import Job
from waypost.services.segment import names_erased
from waypost.transports.contact_limits import follow_merges
from waypost.transports.frame import Answer, Cors, IngestRequest, KeyRule, Transport, basic_user
from waypost.transports.page_rules import page_rules, plan_new_contacts
from waypost.transports.rejected_cap import submit_capped

MAX_MESSAGE = 32 * 1024
MAX_BATCH = 500 * 1024
SUCCESS = b'{"success":true}'


class BatchBody(msgspec.Struct, rename="camel"):
    """``/v1/batch``: messages, and defaults that apply to each of them."""

    batch: list[msgspec.Raw]
    sent_at: str | None = None
    write_key: str | None = None
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None


class KeyOnly(msgspec.Struct, rename="camel"):
    write_key: str | None = None
    sent_at: str | None = None


class SegmentIntegration(msgspec.Struct, rename="camel"):
    """analytics.js's own destination: where it sends, with which key."""

    api_key: str
    api_host: str
    protocol: str
    add_bundled_metadata: bool = True
    unbundled_integrations: list[str] = msgspec.field(default_factory=list)
    maybe_bundled_config_ids: dict[str, Any] = msgspec.field(default_factory=dict)


class CdnSettings(msgspec.Struct, rename="camel"):
    """The settings analytics.js loads: Segment's destination only, nothing else switched on
    (no remote plugins, no middleware, no metrics)."""

    integrations: dict[str, SegmentIntegration]
    analytics_next_enabled: bool = True
    middleware_settings: dict[str, Any] = msgspec.field(default_factory=dict)
    enabled_middleware: dict[str, bool] = msgspec.field(default_factory=dict)
    metrics: dict[str, Any] = msgspec.field(default_factory=lambda: {"sampleRate": 0})
    legacy_video_plugins_enabled: bool = False
    remote_plugins: list[Any] = msgspec.field(default_factory=list)
    edge_function: dict[str, Any] = msgspec.field(default_factory=dict)


def cdn_settings(write_key: str, api_host: str, protocol: str) -> CdnSettings:
    """analytics.js's settings for a write key, sending to ``protocol://api_host``."""
    integration = SegmentIntegration(write_key, api_host, protocol)
    return CdnSettings({"Segment.io": integration})


_encode = msgspec.json.Encoder().encode
_decode_batch = msgspec.json.Decoder(BatchBody).decode
_decode_message = msgspec.json.Decoder(Message).decode
_decode_key = msgspec.json.Decoder(KeyOnly).decode


class SegmentApp(Transport):
    """The /v1 endpoints: the write key as Basic-auth user name or ``writeKey``."""

    keys = KeyRule(
        access="tracking",
        missing="Send the write key (a tracking key) as the Basic-auth user name or as writeKey.",
        unknown="That write key is not known.",
        disabled="That write key is disabled.",
        wrong_access="The write key must be a tracking key (wpt_...).",
        no_channel="The key's channel no longer exists.",
    )
    browser_keys = KeyRule(
        access="publishable",
        missing="",
        unknown="",
        disabled="That write key is disabled.",
        wrong_access="",
        no_channel="Publishable keys work for website channels only.",
        channel_kind="website",
    )
    key_in_page = (
        "A tracking key is secret: a page ({origin}) must use a publishable key (wpp_...) "
        "as analytics.js's write key."
    )
    cors = Cors(
        methods=b"GET, POST, OPTIONS",
        # analytics.js sends its write key as Basic auth, and counts its retries.
        headers=b"Authorization, Content-Type, X-Retry-Count",
        foreign_origin="The origin {origin!r} is not an allowed origin of the key's channel.",
    )
    not_found = "No such route; see docs/segment.md."

    async def batch(self, request: IngestRequest) -> Answer:
        """``/v1/batch``: many messages."""
        raw = await self._body(request, MAX_BATCH, "A batch")
        batch = _parse(raw, _decode_batch)
        items = [bytes(item) for item in batch.batch]
        return await self._accept(request, batch.write_key, batch.sent_at, items, keep=True)

    async def call(self, request: IngestRequest, kind: str) -> Answer:
        """``/v1/track``, ``/v1/identify``, ...: one message of the route's ``kind``."""
        raw = await self._body(request, MAX_MESSAGE, "A single message")
        check_depth(raw)
        key_only = _parse(raw, _decode_key)
        items = [_with_type(raw, kind)]
        return await self._accept(request, key_only.write_key, key_only.sent_at, items)

    async def _body(self, request: IngestRequest, limit: int, what: str) -> bytes:
        try:
            return await self.body(request, limit)
        except ApiError as exc:
            if exc.status != 413:
                raise
            # Segment's API answers 400 beyond its limits (docs/segment.md), not the 413 of
            # the other ingest routes; the message names Segment's limit.
            raise ApiError(
                400,
                "payload_too_large",
                f"{what} is at most {limit // 1024} KB ({limit} bytes), as Segment's API allows.",
            ) from None

    async def _accept(
        self,
        request: IngestRequest,
        write_key: str | None,
        sent_at: str | None,
        items: list[bytes],
        *,
        keep: bool = False,
    ) -> Answer:
        """Apply and store ``items``; with ``keep`` (a batch) a message that is an object but
        not a Segment message (a field of the wrong type, a number out of range) is kept as a
        rejected activity and the others are stored, rather than the whole batch refused."""
        token = basic_user(request) or write_key
        channel = await self.authenticate(request, token)
        snapshot = request.snapshot
        assert snapshot is not None  # authenticate() took it
        messages: list[tuple[Message, bytes]] = []
        unread: list[Rejected] = []
        erased = 0
        for item in items:
            if len(item) > MAX_MESSAGE:
                raise ApiError(
                    400,
                    "payload_too_large",
                    f"A message is at most {MAX_MESSAGE} bytes (32 KB); one has {len(item)}.",
                )
            check_depth(item)
            try:
                messages.append((_parse(item, _decode_message), item))
            except ApiError as exc:
                if not keep or not item.lstrip().startswith(b"{"):
                    raise
                if snapshot.suppressed:
                    names = names_of(item)
                    if names is None:
                        # It might name an erased person, whom keeping it would keep.
                        raise
                    if names_erased(snapshot.suppressed, names):
                        erased += 1  # dropped, as any message naming an erased person
                        continue
                unread.append(reject(exc, item, None))
        received_at = utcnow()
        from_page = request.key is not None and request.key.access == "publishable"
        ip = self.hub.client_key(request.scope) if from_page else None
        # Each person the messages name may be new.
        people = len({(m.user_id, m.anonymous_id, m.previous_id) for m, _ in messages})
        plan_of = functools.partial(
            self.hub.segment.plan, channel, snapshot, messages, sent_at, received_at, page=from_page
        )
        plan = await plan_new_contacts(
            self.hub, ip, people, lambda may_create: plan_of(may_create=may_create)
        )
        if (plan.erased or erased) and plan.erased + erased == len(items):
            # Every message named an erased contact: nothing was stored, and the caller is
            # told why. (With other messages beside them, those are stored and it is 200.)
            raise contact_erased("The contact these messages name")
        if plan.drafts_created:
            self.catalog.invalidate()
            snapshot = await self.snapshot(request)
        await follow_merges(self.hub.rate_limiter, snapshot, plan.merges)
        rejected = [*unread, *plan.rejected]
        # A page's address (None for a server's request).
        await self._store(channel, snapshot, plan.activities, rejected, received_at, ip)
        return 200, SUCCESS, []

    async def project_settings(self, request: IngestRequest) -> Answer:
        """``GET /v1/projects/<writeKey>/settings``: what analytics.js loads before it sends
        (its ``cdnURL`` pointed at Waypost): Segment's own destination only, sending here."""
        await self.authenticate(request, request.params.get("write_key"))
        host = request.headers.get(b"host", b"").decode("latin-1")
        if not host or len(host) > 255 or not all(c.isalnum() or c in ".-:[]" for c in host):
            raise ApiError(400, "invalid_field", "The Host header is not a host name.")
        key = request.params["write_key"]
        answer = cdn_settings(key, f"{host}/v1", request.scope.get("scheme", "http"))
        return 200, _encode(answer), []

    async def _store(
        self,
        channel: ChannelInfo,
        snapshot: Snapshot,
        planned: list[Any],
        rejected: list[Rejected],
        received_at: Any,
        page: str | None,
    ) -> None:
        """Store the planned activities; ``page`` is a page's client address (its activities
        follow the browser rules), None for a server."""
        by_contact: dict[Any, list[Accepted | Rejected]] = defaultdict(list)
        # The messages that could not be mapped belong to no contact; submitted first, so
        # they are kept in the order they came.
        if rejected:
            by_contact[None] = list(rejected)
        limit = self.hub.settings.max_activity_bytes
        for item in planned:
            prepared = item.refused or prepare(item.activity, snapshot, received_at, limit)
            if page is not None:
                prepared = await page_rules(self.hub, prepared, snapshot, item.contact, page)
            by_contact[item.contact].append(prepared)
        consent = (channel.tracking_consent is not None) if page is not None else None
        jobs = [
            Job(channel, contact, items, received_at, "segment", require_consent=consent)
            for contact, items in by_contact.items()
        ]
        # A page's rejected activities are kept within its address's hourly cap.
        await submit_capped(self.hub, page, jobs)


def names_of(raw: bytes) -> Message | None:
    """What names a person in a message that could not be read as a Segment message: its
    ids and the emails of its traits and properties, each read on its own (a number out of
    range in one does not hide the others: ``readable``), as a message for ``names_erased``;
    None when the message is not a JSON object at all."""
    try:
        value, _ = readable(raw)
    except (msgspec.DecodeError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    kind = value.get("type")
    return Message(
        type=kind if isinstance(kind, str) else None,
        user_id=value.get("userId"),
        anonymous_id=value.get("anonymousId"),
        previous_id=value.get("previousId"),
        traits=_object(value.get("traits")),
        context=_object(value.get("context")),
        properties=_object(value.get("properties")),
    )


def _object(value: object) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _parse(raw: bytes, decode: Any) -> Any:
    try:
        return decode(raw)
    except msgspec.ValidationError as exc:
        raise ApiError(400, "invalid_field", f"Not a Segment message: {exc}.") from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, "invalid_json", f"The body is not valid JSON: {exc}.") from None
    except RecursionError:
        # A batch is checked message by message; only a body too deep to decode ends here.
        raise too_deep() from None


def _with_type(raw: bytes, route: str) -> bytes:
    """A single-call body gets its type from the route, as Segment does."""
    try:
        obj = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise ApiError(400, "invalid_json", f"The body is not valid JSON: {exc}.") from None
    if not isinstance(obj, dict):
        raise ApiError(400, "invalid_json", "The body must be a JSON object.")
    obj["type"] = route
    obj.pop("writeKey", None)
    return msgspec.json.encode(obj)

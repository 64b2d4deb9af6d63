"""The Segment-compatible HTTP tracking API, as bare ASGI under /v1.

``/v1/batch``, ``/v1/track``, ``/v1/identify``, ``/v1/page``, ``/v1/screen``, ``/v1/group``
and ``/v1/alias`` (and analytics.js's short forms ``/v1/b``, ``/v1/t``, ...), as Segment's
HTTP API defines them, so that Segment's and RudderStack's SDKs work pointed at Waypost: the
write key (a tracking key) is the Basic-auth user name or ``writeKey`` in the body; bodies may
be gzipped and may come under any content type; 32 KB per message and 500 KB per batch.
The answer is Segment's: 200 ``{"success": true}`` once every message is stored or kept as a
rejected activity, 400 for a body that is too large or not JSON, 401 for a bad write key.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections import defaultdict
from typing import Any

import msgspec
from anyio import to_thread

from waypost.domain.keys import hash_key
from waypost.domain.segment import Message
from waypost.errors import ApiError, check_depth, too_deep
from waypost.hub import Hub
from waypost.ids import utcnow
from waypost.ingest.activities import Accepted, Rejected, prepare
from waypost.ingest.asgi import (
    STORAGE_DOWN,
    Receive,
    Scope,
    Send,
    encode_headers,
    read_body,
    respond,
)
from waypost.ingest.catalog import ChannelInfo, KeyInfo, Snapshot
from waypost.ingest.contact_limits import follow_merges
from waypost.store import StorageUnavailable

MAX_MESSAGE = 32 * 1024
MAX_BATCH = 500 * 1024
ROUTES = {
    "batch": "batch",
    "b": "batch",
    "import": "batch",
    "track": "track",
    "t": "track",
    "identify": "identify",
    "i": "identify",
    "page": "page",
    "p": "page",
    "screen": "screen",
    "s": "screen",
    "group": "group",
    "g": "group",
    "alias": "alias",
    "a": "alias",
}
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


_decode_batch = msgspec.json.Decoder(BatchBody).decode
_decode_message = msgspec.json.Decoder(Message).decode
_decode_key = msgspec.json.Decoder(KeyOnly).decode


class SegmentApp:
    """The /v1 routes."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.catalog = hub.catalog
        self.writer = hub.writer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        try:
            status, body = await self._handle(scope, receive, headers)
            extra: dict[str, str] = {}
        except ApiError as exc:
            status, body, extra = exc.status, exc.body(), exc.headers
        except StorageUnavailable:
            status, body, extra = 503, STORAGE_DOWN.body(), STORAGE_DOWN.headers
        await respond(send, status, body, encode_headers(extra))

    async def _handle(
        self, scope: Scope, receive: Receive, headers: dict[bytes, bytes]
    ) -> tuple[int, bytes]:
        route = ROUTES.get(scope["path"][len("/v1/") :].strip("/"))
        if route is None:
            raise ApiError(404, "not_found", "No such route; see docs/segment.md.")
        if scope["method"] != "POST":
            raise ApiError(405, "method_not_allowed", "Use POST.", headers={"Allow": "POST"})
        limit = MAX_BATCH if route == "batch" else MAX_MESSAGE
        try:
            raw = await read_body(receive, headers, limit)
        except ApiError as exc:
            if exc.status != 413:
                raise
            # Segment's API answers 400 beyond its limits (docs/segment.md), not the 413 of
            # the other ingest routes; the message names Segment's limit.
            what = "A batch" if route == "batch" else "A single message"
            raise ApiError(
                400,
                "payload_too_large",
                f"{what} is at most {limit // 1024} KB ({limit} bytes), as Segment's API allows.",
            ) from None
        if route != "batch":
            check_depth(raw)
        if route == "batch":
            batch = _parse(raw, _decode_batch)
            write_key, sent_at = batch.write_key, batch.sent_at
            items = [bytes(item) for item in batch.batch]
        else:
            key_only = _parse(raw, _decode_key)
            write_key, sent_at = key_only.write_key, key_only.sent_at
            items = [_with_type(raw, route)]
        snapshot = await self._snapshot()
        key, channel = _authenticate(headers, write_key, snapshot)
        self.hub.keys.usage.note(key.id)
        messages: list[tuple[Message, bytes]] = []
        for item in items:
            if len(item) > MAX_MESSAGE:
                raise ApiError(
                    400,
                    "payload_too_large",
                    f"A message is at most {MAX_MESSAGE} bytes (32 KB); one has {len(item)}.",
                )
            check_depth(item)
            messages.append((_parse(item, _decode_message), item))
        received_at = utcnow()
        plan = await to_thread.run_sync(
            self.hub.segment.plan, channel, snapshot, messages, sent_at, received_at
        )
        if plan.drafts_created:
            self.catalog.invalidate()
            snapshot = await self._snapshot()
        await follow_merges(self.hub.rate_limiter, snapshot, plan.merges)
        await self._store(channel, snapshot, plan.activities, plan.rejected, received_at)
        return 200, SUCCESS

    async def _store(
        self,
        channel: ChannelInfo,
        snapshot: Snapshot,
        planned: list[Any],
        rejected: list[Rejected],
        received_at: Any,
    ) -> None:
        by_contact: dict[Any, list[Accepted | Rejected]] = defaultdict(list)
        # The messages that could not be mapped belong to no contact; submitted first, so
        # they are kept in the order they came.
        if rejected:
            by_contact[None] = list(rejected)
        limit = self.hub.settings.max_activity_bytes
        for item in planned:
            by_contact[item.contact].append(prepare(item.activity, snapshot, received_at, limit))
        await asyncio.gather(
            *(
                self.writer.submit(channel, contact, items, received_at, source="segment")
                for contact, items in by_contact.items()
            )
        )

    async def _snapshot(self) -> Snapshot:
        snapshot = self.catalog.fresh()
        if snapshot is None:
            snapshot = await to_thread.run_sync(self.catalog.get)
        return snapshot


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


def _authenticate(
    headers: dict[bytes, bytes], write_key: str | None, snapshot: Snapshot
) -> tuple[KeyInfo, ChannelInfo]:
    key = _basic_user(headers.get(b"authorization")) or write_key
    if not key:
        raise ApiError(
            401,
            "unauthorized",
            "Send the write key (a tracking key) as the Basic-auth user name or as writeKey.",
        )
    info = snapshot.keys.get(hash_key(key))
    if info is None:
        raise ApiError(401, "unauthorized", "That write key is not known.")
    if not info.enabled:
        raise ApiError(403, "forbidden", "That write key is disabled.")
    if info.access != "tracking" or info.channel_id is None:
        raise ApiError(403, "forbidden", "The write key must be a tracking key (wpt_...).")
    channel = snapshot.channels.get(info.channel_id)
    if channel is None:
        raise ApiError(403, "forbidden", "The key's channel no longer exists.")
    return info, channel


def _basic_user(header: bytes | None) -> str | None:
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

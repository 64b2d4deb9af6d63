"""Small pieces of bare ASGI shared by the ingest endpoints."""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from waypost.errors import ApiError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

Headers = list[tuple[bytes, bytes]]

STORAGE_DOWN = ApiError(
    503,
    "storage_unavailable",
    "The database cannot be reached; nothing was stored. Retry shortly.",
    headers={"Retry-After": "1"},
)


def too_large(limit: int) -> ApiError:
    return ApiError(
        413, "payload_too_large", f"The body is over the limit of {limit} bytes per request."
    )


async def read_body(receive: Receive, headers: dict[bytes, bytes], limit: int) -> bytes:
    """The whole request body, gunzipped if it says so; 413 as soon as it passes ``limit``
    bytes (counted after decompression, so a small bomb cannot get past the limit)."""
    raw = await _read_raw(receive, headers, limit)
    encoding = headers.get(b"content-encoding", b"identity").strip().lower()
    if encoding in (b"identity", b""):
        return raw
    if encoding != b"gzip":
        raise ApiError(
            415, "unsupported_media_type", "Content-Encoding may be gzip or identity only."
        )
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        body = inflater.decompress(raw, limit + 1)
    except zlib.error:
        raise ApiError(400, "invalid_json", "The body is not valid gzip.") from None
    if len(body) > limit or inflater.unconsumed_tail:
        raise too_large(limit)
    if not inflater.eof:
        raise ApiError(400, "invalid_json", "The gzip body is cut short.")
    return body


async def _read_raw(receive: Receive, headers: dict[bytes, bytes], limit: int) -> bytes:
    length = headers.get(b"content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ApiError(400, "invalid_json", "The client went away mid-body.")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def respond(send: Send, status: int, body: bytes, headers: Headers) -> None:
    """Send a JSON answer (or an empty one) with ``headers``."""
    response_headers = [(b"content-length", str(len(body)).encode()), *headers]
    if body:
        response_headers.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": response_headers})
    await send({"type": "http.response.body", "body": body})


def media_type(headers: dict[bytes, bytes]) -> bytes:
    return headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()


def encode_headers(extra: dict[str, str]) -> Headers:
    return [(k.lower().encode(), v.encode()) for k, v in extra.items()]

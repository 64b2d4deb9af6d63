"""Request bodies of the ingest routes: read within a limit, gunzipped, decoded.

What every transport's frame (waypost/transports/frame.py) uses to take a body in: the bytes
up to the limit (counted after decompression, so that a small gzip bomb cannot pass it), gzip
by header or, for clients that name it otherwise (posthog-js), by the caller, and JSON decoded
into a Struct with the stable 400s.
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeVar

import msgspec

from waypost.errors import ApiError, from_validation_error, too_deep

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
T = TypeVar("T")


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
    return gunzip(raw, limit)


def gunzip(raw: bytes, limit: int) -> bytes:
    """``raw`` gunzipped; 413 past ``limit`` bytes, 400 when it is not whole gzip."""
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


def check_utf8(raw: bytes) -> None:
    """400 ``invalid_json`` unless ``raw`` is UTF-8, as JSON must be. For bodies whose parts are
    kept undecoded (``msgspec.Raw``, an activity each): a part's bytes are checked only when it
    is decoded, and one that is not UTF-8 could not be kept as text with its rejection."""
    if raw.isascii():
        return  # nearly every body: checked without decoding it
    try:
        raw.decode()
    except UnicodeDecodeError as exc:
        raise ApiError(
            400,
            "invalid_json",
            f"The body is not UTF-8 text (the byte at {exc.start} is not); JSON is UTF-8.",
        ) from None


def decode_json(raw: bytes, kind: type[T]) -> T:
    """``raw`` decoded into ``kind``, with the stable 400s: malformed JSON before wrong fields,
    and a document too deep to decode at all (parts decoded later check their own depth)."""
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        # msgspec validates while it parses: '[1, 2' fails validation before its syntax does.
        try:
            msgspec.json.decode(raw)
        except msgspec.DecodeError as syntax:
            raise from_validation_error(syntax) from None
        except RecursionError:
            raise too_deep() from None
        raise from_validation_error(exc, kind) from None
    except msgspec.DecodeError as exc:
        raise from_validation_error(exc) from None
    except RecursionError:
        raise too_deep() from None


def media_type(headers: dict[bytes, bytes]) -> bytes:
    return headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()

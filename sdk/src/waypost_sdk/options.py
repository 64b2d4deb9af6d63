"""The client's options, checked once, and the JSON encoding of activities and batches."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from dataclasses import dataclass

# The server's defaults (WAYPOST_MAX_REQUEST_BYTES, _MAX_ACTIVITY_BYTES, _MAX_ACTIVITIES_...).
SERVER_MAX_REQUEST_BYTES = 2_000_000
SERVER_MAX_ACTIVITY_BYTES = 16_384
SERVER_MAX_ACTIVITIES = 1000


@dataclass(frozen=True, kw_only=True)
class ClientOptions:
    """How a :class:`~waypost_sdk.Client` batches, retries and shuts down.

    The defaults stay under the server's default limits (2,000,000 bytes and 1,000 activities
    per request, 16,384 bytes per activity); lower them if your server's are lower.
    """

    max_batch_size: int = 100
    """At most this many activities per request."""
    max_request_bytes: int = 1_900_000
    """At most this many bytes per request body (before compression)."""
    max_activity_bytes: int = SERVER_MAX_ACTIVITY_BYTES
    """An activity larger than this once encoded is dropped at once (reason ``too_large``)."""
    flush_interval: float = 0.5
    """Seconds an activity may wait for others to join its batch."""
    max_queue_size: int = 10_000
    """Activities waiting to be sent; beyond this, new ones are dropped (``queue_full``)."""
    max_retries: int = 10
    """Retries of one request after network errors, 429 and 5xx before giving up."""
    backoff_base: float = 0.5
    """The first retry waits up to this many seconds, doubling with each retry (full jitter)."""
    backoff_max: float = 30.0
    """No backoff wait is longer than this (a ``Retry-After`` can be, up to 300 s)."""
    timeout: float = 10.0
    """Seconds for each HTTP request (connect, read, write)."""
    gzip: bool = True
    """Compress request bodies of ``gzip_threshold`` bytes or more."""
    gzip_threshold: int = 1024
    flush_at_exit: bool = True
    """Flush the queue when the interpreter exits (``atexit``)."""
    shutdown_timeout: float | None = 10.0
    """How long the exit flush may take; what is still unsent then is dropped (``shutdown``).
    ``None`` waits until everything is delivered or given up."""

    def __post_init__(self) -> None:
        if not 1 <= self.max_batch_size <= SERVER_MAX_ACTIVITIES:
            raise ValueError(f"max_batch_size must be 1 to {SERVER_MAX_ACTIVITIES}")
        if self.max_activity_bytes < 1:
            raise ValueError("max_activity_bytes must be positive")
        if self.max_request_bytes < self.max_activity_bytes + ENVELOPE_BYTES:
            raise ValueError(
                f"max_request_bytes must hold at least one activity of max_activity_bytes: "
                f"at least {self.max_activity_bytes + ENVELOPE_BYTES}"
            )
        if self.max_queue_size < 1:
            raise ValueError("max_queue_size must be positive")
        if self.max_retries < 0:
            raise ValueError("max_retries must not be negative")
        for name in ("flush_interval", "backoff_base", "backoff_max", "timeout"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.shutdown_timeout is not None and self.shutdown_timeout < 0:
            raise ValueError("shutdown_timeout must not be negative")


def _default(value: object) -> object:
    if isinstance(value, decimal.Decimal):
        # Waypost takes decimals as strings so that no digit is lost, in plain notation
        # ("100", never str()'s "1E+2").
        return format(value, "f")
    if isinstance(value, dt.datetime):
        return iso_datetime(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} values cannot be sent to Waypost")


def iso_datetime(value: dt.datetime) -> str:
    """ISO 8601 with its offset; a naive datetime is refused, as its zone is unknown."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            "datetimes sent to Waypost need a time zone, e.g. datetime.now(timezone.utc)"
        )
    return value.isoformat()


def encode(obj: object) -> bytes:
    """Compact JSON, as the size limits count it. Decimals become strings, datetimes ISO 8601."""
    return json.dumps(
        obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_default
    ).encode()


def batch_body(channel: str, contact: str, activities: list[bytes]) -> bytes:
    """The body of ``POST /tracking/activities`` from activities already encoded."""
    return b'{"channel":"%s","contact":"%s","activities":[%s]}' % (
        channel.encode(),
        contact.encode(),
        b",".join(activities),
    )


_SAMPLE_ID = str(uuid.UUID(int=0))
# The bytes of a request around its activities (each activity adds its size plus a comma).
ENVELOPE_BYTES = len(batch_body(_SAMPLE_ID, _SAMPLE_ID, []))

"""Values in each database's storage form, for the writer's driver-level executemany.

The writer bypasses SQLAlchemy's per-row type processing on the hot path, so it must store
exactly what the column types in schema.py store: on SQLite a UUID is 32 hex digits, a
timestamp naive UTC text with microseconds, JSON text and booleans 0/1; PostgreSQL takes the
Python values as they are.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec

_encode = msgspec.json.encode


class Codec:
    """Storage forms for one dialect, and its parameter placeholder."""

    def __init__(self, dialect: str) -> None:
        self.sqlite = dialect == "sqlite"
        self.mark = "?" if self.sqlite else "%s"
        # Most activities of a batch share one timestamp (their received time), often as one
        # object, as equal ones once they came through the writer process's pipe.
        self._last_stamp: dt.datetime | None = None
        self._last_text = ""

    def ident(self, value: uuid.UUID | None) -> Any:
        if value is None or not self.sqlite:
            return value
        return value.hex

    def timestamp(self, value: dt.datetime) -> Any:
        """Not thread-safe on SQLite (it keeps the last result); one codec per thread."""
        if not self.sqlite:
            return value
        if value is not self._last_stamp and value != self._last_stamp:
            naive = value.astimezone(dt.UTC).replace(tzinfo=None)
            self._last_text = naive.isoformat(" ", "microseconds")
            self._last_stamp = value
        return self._last_text

    def read_uuid(self, value: Any) -> uuid.UUID | None:
        """A UUID as the driver returns it from a driver-level query."""
        if value is None or isinstance(value, uuid.UUID):
            return value
        return uuid.UUID(hex=value)

    def date(self, value: dt.date) -> Any:
        return value.isoformat() if self.sqlite else value

    def json(self, value: object) -> Any:
        if value is None:
            return None
        return _encode(value).decode()

    def json_bytes(self, raw: bytes) -> Any:
        """Already-encoded JSON (a payload kept as the client sent it)."""
        return raw.decode()

    def boolean(self, value: bool | None) -> Any:
        if value is None or not self.sqlite:
            return value
        return int(value)

    def placeholders(self, count: int) -> str:
        return ", ".join([self.mark] * count)

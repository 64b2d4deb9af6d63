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

# A Decimal (a number a float would change, kept as sent: waypost/domain/field_values.py) is
# written as the number it is, not as a string.
_encode = msgspec.json.Encoder(decimal_format="number").encode
# How many recurring ids a codec keeps the storage form of (then it starts again).
KNOWN_IDS = 4096


class Codec:
    """Storage forms for one dialect, and its parameter placeholder."""

    def __init__(self, dialect: str) -> None:
        self.sqlite = dialect == "sqlite"
        self.mark = "?" if self.sqlite else "%s"
        # Most activities of a batch share one timestamp (their received time), often as one
        # object, as equal ones once they came through the writer process's pipe.
        self._last_stamp: dt.datetime | None = None
        self._last_text = ""
        # id(object) -> (the object, its storage form), for known().
        self._known: dict[int, tuple[uuid.UUID, str]] = {}

    def ident(self, value: uuid.UUID | None) -> Any:
        if value is None or not self.sqlite:
            return value
        return value.hex

    def known(self, value: uuid.UUID) -> Any:
        """:meth:`ident` of an id that recurs in a batch's rows (its type, contact, channel),
        the same object each time: worked out once per object. Not thread-safe; one codec
        per thread."""
        if not self.sqlite:
            return value
        found = self._known.get(id(value))
        # The entry holds the object, so its id is not reused while it is there.
        if found is not None and found[0] is value:
            return found[1]
        if len(self._known) >= KNOWN_IDS:
            self._known.clear()
        text = value.hex
        self._known[id(value)] = (value, text)
        return text

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
        """Already-encoded JSON (a payload kept as the client sent it). The transports take
        only UTF-8 bodies; bytes that are not would fail the whole transaction, every other
        request's in it too, so they are replaced (U+FFFD) rather than raised on."""
        return raw.decode(errors="replace")

    def boolean(self, value: bool | None) -> Any:
        if value is None or not self.sqlite:
            return value
        return int(value)

    def placeholders(self, count: int) -> str:
        return ", ".join([self.mark] * count)

"""Lists answer ``{"data": [...], "next": cursor|null}`` and take ``limit`` and ``cursor``."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from collections.abc import Callable
from typing import Annotated, Any, Generic, TypeVar

import msgspec

from waypost.domain.field_values import in_utc
from waypost.errors import ApiError

T = TypeVar("T")

PageLimit = Annotated[
    int, msgspec.Meta(ge=1, le=1000, description="At most this many items (1 to 1,000).")
]


# The longest cursor taken. The longest this API gives out is the contact search's: the
# email it stopped at (254 characters, each at most 12 in JSON's ASCII escapes), its rank and
# an id, in base64 some 4,150 characters.
MAX_CURSOR_LENGTH = 8192
# Cursors are base64url text; the document says so, while a cursor this API did not give out
# still gets the friendlier answer of decode_cursor.
Cursor = Annotated[
    str,
    msgspec.Meta(
        max_length=MAX_CURSOR_LENGTH,
        extra_json_schema={
            "minLength": 1,
            "pattern": "^[A-Za-z0-9_-]+$",
            "description": "The next of the previous page.",
        },
    ),
]


class Page(msgspec.Struct, Generic[T]):
    """One page of a list; pass ``next`` back as ``cursor`` for the following page."""

    data: list[T]
    next: str | None


class ListQuery(msgspec.Struct, forbid_unknown_fields=True):
    """The paging parameters every list takes."""

    limit: PageLimit = 100
    cursor: Cursor | None = None


def encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _bad_cursor() from None


def cursor_id(cursor: str | None) -> uuid.UUID | None:
    """The last id of the previous page, from a cursor made by :func:`page_by_id`."""
    if cursor is None:
        return None
    try:
        return uuid.UUID(decode_cursor(cursor))
    except ValueError:
        raise _bad_cursor() from None


def page_by_id(items: list[T], limit: int, key: Callable[[T], uuid.UUID]) -> Page[T]:
    """Cut a list fetched with ``limit + 1`` rows into a page and its cursor."""
    more = len(items) > limit
    items = items[:limit]
    return Page(items, encode_cursor(str(key(items[-1]))) if more else None)


def after_cursor(cursor: str | None) -> tuple[dt.datetime, uuid.UUID] | None:
    """:func:`time_cursor` of a query's cursor; None for the first page."""
    return None if cursor is None else time_cursor(cursor)


def time_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    """The time and the id of a keyset cursor made of ``f"{time.isoformat()}|{id}"``; a 400 for
    one this API did not give out (a time without an offset, or with no UTC form, among
    them: every time it gives out is in UTC)."""
    stamp, _, ident = decode_cursor(cursor).partition("|")
    try:
        at = dt.datetime.fromisoformat(stamp)
        if at.tzinfo is None:
            raise ValueError(stamp)
        in_utc(at)  # 9999-12-31T23:59:59-23:59 has no UTC form
        return at, uuid.UUID(ident)
    except ValueError:
        raise _bad_cursor() from None


def _bad_cursor() -> ApiError:
    return ApiError(400, "invalid_field", "The cursor is not one this API gave out.", "cursor")


def every(fetch: Callable[[str | None], Any]) -> list[Any]:
    """Every item of a paged list: ``fetch(cursor)`` returns a page with ``data`` and ``next``."""
    items: list[Any] = []
    cursor: str | None = None
    while True:
        found = fetch(cursor)
        items.extend(found.data)
        cursor = found.next
        if cursor is None:
            return items

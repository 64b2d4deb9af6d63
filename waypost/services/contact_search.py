"""Contact search: by the start of an email, a first name or a last name, case-insensitively.

Why prefixes and not "contains": a prefix is one range of an index (``email_key``, and the
name indexes of migration 0008), so a page of results costs a few index reads on a million
contacts as on a hundred, and comes out in index order without sorting every match. A
"contains" match would read every contact on every keystroke.

What matches:

- one word: contacts whose email, first name or last name starts with it;
- several words (``Jane Doe``, ``Doe, Jane``): the first word starts the first name and the
  rest the last name, or the other way round;
- nothing: every contact, newest first.

Results are in the order of the text that matched (a contact found twice is listed once, at
its first match). Case folds as the database folds it: every letter on PostgreSQL, ASCII
letters on SQLite (where ``é`` and ``É`` differ). Merged contacts are found too: a merged
contact keeps its email, and its page leads to the contact it was merged into.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
import sqlalchemy as sa
from sqlalchemy import Connection

from waypost.domain.contact_fields import normalise_email
from waypost.errors import ApiError
from waypost.pagination import (
    Cursor,
    Page,
    PageLimit,
    cursor_id,
    decode_cursor,
    encode_cursor,
    page_by_id,
)
from waypost.store.schema import contacts

MAX_QUERY = 254
# Above every character but itself: ``p <= s < p + TOP`` holds for the strings s starting
# with p (in code point order, which is byte order in UTF-8, SQLite's and "C"'s order).
TOP = "\U0010ffff"
_WORDS = re.compile(r"[\s,]+")


# search_words holds every caller to MAX_QUERY; the type says so to the API's readers.
SearchText = Annotated[str, msgspec.Meta(max_length=MAX_QUERY)]


class ContactSearchQuery(msgspec.Struct, forbid_unknown_fields=True):
    """``q``: the start of an email, a first or a last name, or ``First Last``; empty lists
    every contact, newest first."""

    q: SearchText = ""
    limit: PageLimit = 100
    cursor: Cursor | None = None


class ContactSummary(msgspec.Struct):
    """A contact in a list: who it is, and whether it was merged into another."""

    id: uuid.UUID
    email: str | None
    first_name: str | None
    last_name: str | None
    company_name: str | None
    merged_into: uuid.UUID | None
    created_at: dt.datetime


def search_words(text: str) -> list[str]:
    """The words of a search: split at spaces and commas; a NUL or an overlong text is a 400."""
    if "\x00" in text:
        raise ApiError(400, "invalid_field", "The search cannot contain a NUL character.", "q")
    if len(text) > MAX_QUERY:
        raise ApiError(400, "invalid_field", f"Search for at most {MAX_QUERY} characters.", "q")
    return [word for word in _WORDS.split(text.strip()) if word]


@dataclass(frozen=True)
class Stream:
    """One way a contact can match, read in the order of one index: ``key`` is the indexed
    expression (range and order), ``value`` the same text as it compares across streams."""

    rank: int
    key: sa.ColumnElement[Any]
    value: sa.ColumnElement[Any]
    match: sa.ColumnElement[bool]
    unique: bool = False  # no two contacts share a key: no tie-break by id to sort for

    @property
    def order(self) -> tuple[sa.ColumnElement[Any], ...]:
        return (self.key,) if self.unique else (self.key, contacts.c.id)


def _name(column: sa.Column[Any], dialect: str) -> tuple[sa.ColumnElement[Any], ...]:
    if dialect == "postgresql":
        folded = sa.func.lower(column).collate("C")
        return folded, folded
    return column.collate("NOCASE"), sa.func.lower(column)


def _starts(
    key: sa.ColumnElement[Any], value: sa.ColumnElement[Any], low: sa.ColumnElement[Any]
) -> sa.ColumnElement[bool]:
    return sa.and_(value.is_not(None), key >= low, key < low.op("||")(sa.literal(TOP)))


def _folded(word: str, dialect: str) -> sa.ColumnElement[Any]:
    # The database lowers the word as it lowers the indexed names, so both fold alike.
    low = sa.func.lower(sa.literal(word, sa.String))
    return low.collate("C") if dialect == "postgresql" else low


def streams(words: Sequence[str], dialect: str) -> list[Stream]:
    """The ways ``words`` can match, each with its index."""
    first_key, first_value = _name(contacts.c.first_name, dialect)
    last_key, last_value = _name(contacts.c.last_name, dialect)
    email_key: sa.ColumnElement[Any] = contacts.c.email_key
    if dialect == "postgresql":
        email_key = email_key.collate("C")
    if len(words) == 1:
        word = words[0]
        email = normalise_email(word)
        found = [
            Stream(
                0,
                email_key,
                email_key,
                sa.and_(email_key.is_not(None), email_key >= email, email_key < email + TOP),
                unique=True,
            )
        ]
        if "@" not in word:
            low = _folded(word, dialect)
            found.append(Stream(1, first_key, first_value, _starts(first_key, first_value, low)))
            found.append(Stream(2, last_key, last_value, _starts(last_key, last_value, low)))
        return found
    head, rest = _folded(words[0], dialect), _folded(" ".join(words[1:]), dialect)
    return [
        Stream(
            1,
            first_key,
            first_value,
            sa.and_(_starts(first_key, first_value, head), _starts(last_key, last_value, rest)),
        ),
        Stream(
            2,
            last_key,
            last_value,
            sa.and_(_starts(last_key, last_value, head), _starts(first_key, first_value, rest)),
        ),
    ]


def _first_match(stream: Stream, others: Sequence[Stream]) -> sa.ColumnElement[bool]:
    """Whether ``stream`` is where a contact shows: no other stream matches it earlier."""
    # Ties go to the stream of lower rank, as the results are ordered.
    earlier = [
        sa.and_(
            other.match,
            other.value <= stream.value if other.rank < stream.rank else other.value < stream.value,
        )
        for other in others
    ]
    return sa.not_(sa.or_(*earlier)) if earlier else sa.true()


Position = tuple[str, int, uuid.UUID]


def _after(stream: Stream, position: Position | None) -> sa.ColumnElement[bool]:
    if position is None:
        return sa.true()
    value, rank, ident = position
    if stream.rank > rank:
        return stream.key >= value
    if stream.rank < rank:
        return stream.key > value
    return sa.or_(stream.key > value, sa.and_(stream.key == value, contacts.c.id > ident))


def _position(cursor: str | None) -> Position | None:
    if cursor is None:
        return None
    try:
        value, rank, ident = json.loads(decode_cursor(cursor))
        if not isinstance(value, str) or not isinstance(rank, int) or "\x00" in value:
            raise ValueError(value)
        value.encode()  # a lone surrogate would fail in the driver (a 500), not here
        return value, rank, uuid.UUID(ident)
    except (ValueError, TypeError, RecursionError):  # UnicodeEncodeError is a ValueError
        raise ApiError(
            400, "invalid_field", "The cursor is not one this API gave out.", "cursor"
        ) from None


COLUMNS = (
    contacts.c.id,
    contacts.c.email,
    contacts.c.first_name,
    contacts.c.last_name,
    contacts.c.company_name,
    contacts.c.merged_into,
    contacts.c.created_at,
)


def _summary(row: sa.RowMapping) -> ContactSummary:
    return ContactSummary(*(row[column.name] for column in COLUMNS))


def search(conn: Connection, text: str, limit: int, cursor: str | None) -> Page[ContactSummary]:
    """A page of the contacts ``text`` finds (see the module's docstring)."""
    words = search_words(text)
    if not words:
        return newest(conn, limit, cursor)
    position = _position(cursor)
    found: list[tuple[Position, ContactSummary]] = []
    every = streams(words, conn.dialect.name)
    for stream in every:
        others = [other for other in every if other is not stream]
        stmt = (
            sa.select(*COLUMNS, stream.value.label("matched"))
            .where(stream.match, _first_match(stream, others), _after(stream, position))
            .order_by(*stream.order)
            .limit(limit + 1)
        )
        for row in conn.execute(stmt):
            found.append(((row.matched, stream.rank, row.id), _summary(row._mapping)))
    # Each stream's first limit + 1 hold the first limit + 1 of all of them together.
    found.sort(key=lambda item: item[0])
    page = [summary for _, summary in found[:limit]]
    more = len(found) > limit
    last = found[limit - 1][0] if more else None
    return Page(page, encode_cursor(json.dumps([last[0], last[1], str(last[2])])) if last else None)


def newest(conn: Connection, limit: int, cursor: str | None) -> Page[ContactSummary]:
    """Every contact, newest first (ids are UUIDv7, so in creation order)."""
    stmt = sa.select(*COLUMNS).order_by(contacts.c.id.desc()).limit(limit + 1)
    if (before := cursor_id(cursor)) is not None:
        stmt = stmt.where(contacts.c.id < before)
    items = [_summary(row._mapping) for row in conn.execute(stmt)]
    return page_by_id(items, limit, lambda contact: contact.id)


def summaries(conn: Connection, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, ContactSummary]:
    """The contacts of ``ids`` that exist, by id (to name the contacts of a list of activities)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = conn.execute(sa.select(*COLUMNS).where(contacts.c.id.in_(wanted)))
    return {row.id: _summary(row._mapping) for row in rows}

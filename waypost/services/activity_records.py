"""Activities read for an export: the API's shape, built from the stored text.

The activity log builds each row into an :class:`~waypost.services.activities.Activity`
(UUIDs, aware datetimes, parsed JSON), which costs more than reading the row. An export of
millions does without: it selects each column as the text the API's JSON shows, made by the
database in SQL of each dialect, and embeds the fields as the JSON the writer stored, so that
:class:`ActivityRecord` encodes to the very bytes the API answers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec
import sqlalchemy as sa

from waypost.store.schema import activities


class ActivityRecord(msgspec.Struct):
    """An activity as :class:`~waypost.services.activities.Activity` encodes, from its stored
    text: ids and times as the API's JSON writes them, ``fields`` and ``flags`` as stored JSON
    (or, for a per-field export, the decoded fields)."""

    id: str
    type: str
    contact: str
    channel: str
    title: str
    value: str | None
    url: str | None
    referrer: str | None
    fields: Any
    flags: Any
    occurred_at: str
    received_at: str
    client_id: str | None
    consent_agreed: bool | None
    consent_version: int | None


def stored_text(column: Any, dialect: str) -> sa.ColumnElement[Any]:
    if dialect == "postgresql":
        return sa.cast(column, sa.Text)
    # Stored as text already (JSON as its text): no conversion.
    return sa.type_coerce(column, sa.String)


def uuid_text(column: Any, dialect: str) -> sa.ColumnElement[Any]:
    if dialect == "postgresql":
        return sa.cast(column, sa.Text)
    # 32 hex digits on SQLite: the canonical form, made by the database (faster than Python).
    parts = [sa.func.substr(column, start, length) for start, length in _UUID_PARTS]
    joined: sa.ColumnElement[Any] = parts[0]
    for part in parts[1:]:
        joined = joined.op("||")("-").op("||")(part)
    return sa.type_coerce(joined, sa.String)


_UUID_PARTS = ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))


def time_text(column: Any, dialect: str) -> sa.ColumnElement[Any]:
    """The time as msgspec encodes a UTC datetime: ISO 8601 with ``Z``, the microseconds left
    out when there are none."""
    if dialect == "postgresql":
        utc = sa.func.timezone("UTC", column)
        whole = sa.func.date_trunc("second", column) == column
        return sa.case(
            (whole, sa.func.to_char(utc, 'YYYY-MM-DD"T"HH24:MI:SS"Z"')),
            else_=sa.func.to_char(utc, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        )
    # Stored as naive UTC text with microseconds: "2026-01-31 12:00:00.000000".
    stored = sa.type_coerce(column, sa.String)
    whole = sa.func.substr(stored, 20) == ".000000"
    text = sa.case((whole, sa.func.substr(stored, 1, 19)), else_=stored)
    return sa.type_coerce(sa.func.replace(text, " ", "T").op("||")("Z"), sa.String)


def record_columns(dialect: str, a: Any = activities.c) -> list[sa.ColumnElement[Any]]:
    """The columns :func:`record_maker`'s function reads, as the text the API shows, of the
    activities' columns ``a`` (the table's, or a subquery's)."""
    return [
        uuid_text(a.id, dialect),
        stored_text(a.type_id, dialect),
        uuid_text(a.contact_id, dialect),
        uuid_text(a.channel_id, dialect),
        a.title,
        a.value,
        a.url,
        a.referrer,
        stored_text(a.fields, dialect),
        stored_text(a.flags, dialect),
        time_text(a.occurred_at, dialect),
        time_text(a.received_at, dialect),
        a.client_id,
        sa.type_coerce(a.consent_agreed, sa.Integer) if dialect == "sqlite" else a.consent_agreed,
        a.consent_version,
    ]


def record_maker(
    type_codes: Mapping[str, str], decode_fields: bool
) -> Callable[[Sequence[Any]], ActivityRecord]:
    """The function from a row of :func:`record_columns` to its record; ``type_codes`` maps
    the types' ids (in either text form) to their code names. ``decode_fields``: ``fields`` as
    a dict (for a column per field), rather than as the stored JSON."""
    raw = msgspec.Raw
    decode = msgspec.json.decode

    def make(r: Sequence[Any]) -> ActivityRecord:
        fields = r[8]
        if fields is not None:
            fields = decode(fields) if decode_fields else raw(fields)
        agreed = r[13]
        return ActivityRecord(
            r[0],
            type_codes[r[1]],
            r[2],
            r[3],
            r[4],
            r[5],
            r[6],
            r[7],
            fields,
            None if r[9] is None else raw(r[9]),
            r[10],
            r[11],
            r[12],
            None if agreed is None else bool(agreed),
            r[14],
        )

    return make

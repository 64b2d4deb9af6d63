"""Activities formatted by the database for an export (docs/data-lifecycle.md#exports).

An export of millions of activities spends its time making a Python object of every column of
every row and formatting them. Here the database does that work instead, in SQL of each
dialect, so that Python handles one value per activity:

- :func:`ndjson_line`: the activity's NDJSON line, the very bytes
  :class:`~waypost.services.activity_records.ActivityRecord` encodes to (the API's JSON);
- :func:`csv_line`: the activity's CSV line, quoted as Python's ``csv`` module quotes
  (RFC 4180, only the cells that need it), ending with CRLF;
- :func:`arrow_columns`: the columns of a Parquet export, as text and integers Arrow takes
  in bulk (times as stored, parsed by Arrow).

The columns are those of :data:`~waypost.services.exports.ACTIVITY_COLUMNS`; ``a`` is the
activities' columns (of a subquery), ``code`` the type's code name (of a join).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from waypost.services.activity_records import time_text
from waypost.services.activity_records import uuid_text as _uuid_text

# A piece of a line: literal text, an SQL expression whose value is text (never NULL), or on
# SQLite such an expression with the printf conversion that takes it ("%.8s": its first 8
# characters).
Part = str | sa.ColumnElement[Any] | tuple[str, sa.ColumnElement[Any]]

# What makes the csv module quote a cell (QUOTE_MINIMAL, lineterminator "\r\n").
_CSV_SPECIAL = '",\r\n'


def _joined(dialect: str, parts: list[Part]) -> sa.ColumnElement[str]:
    """The text of ``parts`` one after the other."""
    merged: list[Part] = []
    for part in parts:  # adjacent literals as one
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    if dialect == "sqlite":
        # One printf builds the line in one buffer; a chain of || copies it at each step.
        # Every value is text without NUL (JSON escapes it), so %s copies it whole.
        fmt = "".join(
            p.replace("%", "%%") if isinstance(p, str) else p[0] if isinstance(p, tuple) else "%s"
            for p in merged
        )
        values = [p[1] if isinstance(p, tuple) else p for p in merged if not isinstance(p, str)]
        return sa.type_coerce(sa.func.printf(sa.literal(fmt), *values), sa.String)
    return sa.type_coerce(
        sa.func.concat(*(sa.literal(p, sa.Text) if isinstance(p, str) else p for p in merged)),
        sa.String,
    )


def _uuid_parts(column: Any, dialect: str) -> list[Part]:
    """A UUID in its canonical text: on SQLite, the 32 hex digits stored, cut by printf."""
    if dialect != "sqlite":
        return [_uuid_text(column, dialect)]
    hexed = sa.type_coerce(column, sa.String)
    return [
        ("%.8s", hexed),
        "-",
        ("%.4s", sa.func.substr(hexed, 9)),
        "-",
        ("%.4s", sa.func.substr(hexed, 13)),
        "-",
        ("%.4s", sa.func.substr(hexed, 17)),
        "-",
        ("%s", sa.func.substr(hexed, 21)),
    ]


def _time_parts(column: Any, dialect: str) -> list[Part]:
    """A time as the API writes it (``time_text``): on SQLite, the stored text
    ``2026-01-31 12:00:00.000000`` cut by printf, without the fraction when it is zero."""
    if dialect != "sqlite":
        return [time_text(column, dialect)]
    stored = sa.type_coerce(column, sa.String)
    fraction = sa.func.substr(stored, 20)
    return [
        ("%.10s", stored),
        "T",
        ("%.8s", sa.func.substr(stored, 12)),
        sa.func.iif(fraction == ".000000", "", fraction),
        "Z",
    ]


def _json_text(column: Any, dialect: str) -> sa.ColumnElement[Any]:
    """A text column as a JSON string, or ``null``."""
    if dialect == "sqlite":
        return sa.func.json_quote(sa.type_coerce(column, sa.String))
    return sa.func.coalesce(sa.cast(sa.func.to_json(column), sa.Text), "null")


def _stored_json(column: Any, dialect: str) -> sa.ColumnElement[Any]:
    """A JSON column as the JSON text stored, or ``null``."""
    if dialect == "sqlite":
        return sa.func.coalesce(sa.type_coerce(column, sa.String), "null")
    return sa.func.coalesce(sa.cast(column, sa.Text), "null")


def _integer(column: Any, dialect: str, none: str) -> sa.ColumnElement[Any]:
    if dialect == "sqlite":
        return sa.func.coalesce(sa.type_coerce(column, sa.String), none)
    return sa.func.coalesce(sa.cast(column, sa.Text), none)


def _boolean(column: Any, dialect: str, none: str) -> sa.ColumnElement[Any]:
    value = sa.type_coerce(column, sa.Integer) if dialect == "sqlite" else column
    true = value == 1 if dialect == "sqlite" else value.is_(sa.true())
    return sa.case((column.is_(None), none), (true, "true"), else_="false")


def ndjson_line(dialect: str, a: Any, code: Any) -> sa.ColumnElement[str]:
    """The activity's line of an NDJSON export, without its line end."""
    return _joined(
        dialect,
        [
            '{"id":"',
            *_uuid_parts(a.id, dialect),
            '","type":',
            _json_text(code, dialect),
            ',"contact":"',
            *_uuid_parts(a.contact_id, dialect),
            '","channel":"',
            *_uuid_parts(a.channel_id, dialect),
            '","title":',
            _json_text(a.title, dialect),
            ',"value":',
            _json_text(a.value, dialect),
            ',"url":',
            _json_text(a.url, dialect),
            ',"referrer":',
            _json_text(a.referrer, dialect),
            ',"fields":',
            _stored_json(a.fields, dialect),
            ',"flags":',
            _stored_json(a.flags, dialect),
            ',"occurred_at":"',
            *_time_parts(a.occurred_at, dialect),
            '","received_at":"',
            *_time_parts(a.received_at, dialect),
            '","client_id":',
            _json_text(a.client_id, dialect),
            ',"consent_agreed":',
            _boolean(a.consent_agreed, dialect, "null"),
            ',"consent_version":',
            _integer(a.consent_version, dialect, "null"),
            "}",
        ],
    )


def _csv_cell(column: Any, dialect: str) -> sa.ColumnElement[Any]:
    """A text cell: as it is, or quoted with its quotes doubled when it holds a comma, a
    quote or a line break; empty for NULL."""
    text = sa.type_coerce(column, sa.String) if dialect == "sqlite" else sa.cast(column, sa.Text)
    if dialect == "sqlite":
        special = text.op("GLOB")(sa.literal(f"*[{_CSV_SPECIAL}]*"))
    else:
        special = text.op("~")(sa.literal(f"[{_CSV_SPECIAL}]", sa.Text))
    quoted = sa.literal('"', sa.Text).op("||")(sa.func.replace(text, '"', '""')).op("||")('"')
    return sa.case((special, quoted), else_=sa.func.coalesce(text, ""))


def csv_line(dialect: str, a: Any, code: Any, *, nul_free: bool = False) -> sa.ColumnElement[str]:
    """The activity's line of a CSV export, with its CRLF; the cells of ACTIVITY_COLUMNS.

    On SQLite, ``nul_free``: the line made by one printf, right only when no text holds a NUL
    (printf's %s stops at one; :func:`csv_nul` says whether one does); else made with ||,
    which keeps a NUL, but copies the line at each step."""
    one_printf = dialect == "sqlite" and nul_free
    if dialect == "sqlite" and not nul_free:

        def joined(parts: list[Part]) -> sa.ColumnElement[str]:
            line: Any = None
            for part in parts:
                value = sa.literal(part) if isinstance(part, str) else part
                line = value if line is None else line.op("||")(value)
            return sa.type_coerce(line, sa.String)
    else:

        def joined(parts: list[Part]) -> sa.ColumnElement[str]:
            return _joined(dialect, parts)

    def printed(parts: list[Part]) -> list[Part]:
        # Ids and times hold no NUL: a printf of their own at least.
        return parts if one_printf or dialect != "sqlite" else [_joined(dialect, parts)]

    cells: list[list[Part]] = [
        printed(_uuid_parts(a.id, dialect)),
        [_csv_cell(code, dialect)],
        printed(_uuid_parts(a.contact_id, dialect)),
        printed(_uuid_parts(a.channel_id, dialect)),
        [_csv_cell(a.title, dialect)],
        [_csv_cell(a.value, dialect)],
        [_csv_cell(a.url, dialect)],
        [_csv_cell(a.referrer, dialect)],
        [_csv_cell(a.fields, dialect)],
        [_csv_cell(a.flags, dialect)],
        printed(_time_parts(a.occurred_at, dialect)),
        printed(_time_parts(a.received_at, dialect)),
        [_csv_cell(a.client_id, dialect)],
        [_boolean(a.consent_agreed, dialect, "")],
        [_integer(a.consent_version, dialect, "")],
    ]
    parts: list[Part] = []
    for i, cell in enumerate(cells):
        if i:
            parts.append(",")
        parts.extend(cell)
    parts.append("\r\n")
    # Adjacent literals as one.
    merged: list[Part] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    return joined(merged)


def csv_nul(a: Any) -> sa.ColumnElement[Any]:
    """SQLite: true when a text cell of the activity's CSV line holds a NUL (JSON escapes it,
    and the type's code name is a name)."""
    found: Any = None
    for column in (a.title, a.value, a.url, a.referrer, a.client_id):
        here = sa.func.instr(sa.type_coerce(column, sa.String), sa.func.char(0))
        found = here if found is None else found.op("OR")(here)
    return sa.type_coerce(found, sa.Integer)


def _naive_time(column: Any, dialect: str) -> sa.ColumnElement[Any]:
    """A time as UTC text Arrow parses: ``2026-01-31 12:00:00.000000``."""
    if dialect == "sqlite":
        return sa.type_coerce(column, sa.String)  # stored so
    return sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM-DD HH24:MI:SS.US")


# The columns of arrow_columns that are ids: with ``hex_ids``, SQLite's 32 hex digits.
HEX_IDS = ("id", "contact", "channel")


def arrow_columns(
    dialect: str, a: Any, code: Any, *, hex_ids: bool = False
) -> list[sa.ColumnElement[Any]]:
    """The columns of a Parquet export (ACTIVITY_COLUMNS), as Arrow takes them: text, JSON as
    its stored text, times as UTC text, booleans as 0 and 1, integers. ``hex_ids`` (SQLite):
    the ids as stored, for Arrow to put the dashes in (a column at a time, faster)."""
    text = _as_text if dialect == "sqlite" else _cast_text

    def ident(column: Any) -> sa.ColumnElement[Any]:
        if hex_ids and dialect == "sqlite":
            return _as_text(column)
        return _uuid_text(column, dialect)

    agreed = (
        sa.type_coerce(a.consent_agreed, sa.Integer)
        if dialect == "sqlite"
        else sa.cast(a.consent_agreed, sa.Integer)
    )
    return [
        ident(a.id),
        code,
        ident(a.contact_id),
        ident(a.channel_id),
        a.title,
        a.value,
        a.url,
        a.referrer,
        text(a.fields),
        text(a.flags),
        _naive_time(a.occurred_at, dialect),
        _naive_time(a.received_at, dialect),
        a.client_id,
        agreed,
        a.consent_version,
    ]


# Which of the columns of arrow_columns may be NULL (those of ACTIVITY_COLUMNS).
ARROW_NULLABLE = (
    *(False,) * 5,  # id, type, contact, channel, title
    *(True,) * 5,  # value, url, referrer, fields, flags
    False,  # occurred_at
    False,  # received_at
    *(True,) * 3,  # client_id, consent_agreed, consent_version
)


def _as_text(column: Any) -> sa.ColumnElement[Any]:
    return sa.type_coerce(column, sa.String)


def _cast_text(column: Any) -> sa.ColumnElement[Any]:
    return sa.cast(column, sa.Text)

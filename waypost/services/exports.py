"""Exports of activities, contacts and a group's members (docs/data-lifecycle.md#exports).

An export reads its rows in keyset pages, each page a short read of its own in the list's own
order and index (the activity log's ``(occurred_at, id)``, the contact search's streams, the
members' contact ids), and encodes each page as it comes (:mod:`export_formats`): memory
holds a page, never the export, and no read transaction stays open for the whole of a long
export (which on SQLite would keep the write-ahead log from being checkpointed, and on
PostgreSQL hold back vacuum). Filters are checked, and the format's library found, before
the first byte, so that bad input is a 400 and not a broken download.

Activities, by far the most rows, are formatted by the database (:mod:`activity_lines`: a
line of text per activity, or Parquet's columns) and read a page of ``ACTIVITY_PAGE`` at a
time by several readers at once (:mod:`activity_pages`: on a SQLite file, this process and a
worker process in turn). Only a per-field CSV or Parquet export (``type`` given) builds each
activity in Python.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import msgspec
import sqlalchemy as sa

from waypost.domain.fields import FieldSpec
from waypost.error_words import quoted
from waypost.errors import ApiError, not_found
from waypost.pagination import Page
from waypost.services.activities import ActivityQuery, ActivityService, TypeFilter, before_in_log
from waypost.services.activity_pages import formatted_pages
from waypost.services.activity_records import record_columns, record_maker
from waypost.services.contact_search import SearchText, search, search_words
from waypost.services.contacts import contacts_of
from waypost.services.export_formats import (
    MEDIA_TYPES,
    Column,
    ColumnKind,
    ExportFormat,
    arrow_schema,
    attribute,
    csv_header,
    dictionary_columns,
    encode,
    parquet_file,
    pyarrow_modules,
)
from waypost.services.group_history import member_contacts
from waypost.store import Store
from waypost.store.schema import activities, activity_types, contact_groups, contacts
from waypost.store.type_fields import load_type_fields

ACTIVITY_PAGE = 5_000
CONTACT_PAGE = 1_000
MEMBER_PAGE = 5_000


class ActivityExportQuery(msgspec.Struct, forbid_unknown_fields=True):
    """The activity log's filters and the file format. With ``type``, parameters
    ``field.<name>``, ``field.<name>.gt|gte|lt|lte|contains`` filter on field values, and CSV
    and Parquet have one column per field of the type (``fields.<name>``)."""

    extra_prefix: ClassVar[str] = "field."

    format: ExportFormat = "ndjson"
    contact: uuid.UUID | None = None
    type: TypeFilter | None = None
    channel: uuid.UUID | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


class ContactExportQuery(msgspec.Struct, forbid_unknown_fields=True):
    """The contact list's search (``q``: the start of an email, a first or a last name) and
    the file format."""

    format: ExportFormat = "ndjson"
    q: SearchText = ""


class MemberExportQuery(msgspec.Struct, forbid_unknown_fields=True):
    """The file format of a group's members."""

    format: ExportFormat = "ndjson"


@dataclass
class Export:
    """An export ready to be written: :meth:`chunks` gives its bytes; ``rows`` counts the rows
    handed to the encoder so far; :meth:`count` counts them beforehand (for a progress bar)."""

    format: ExportFormat
    filename: str
    columns: Sequence[Column]
    pages: Callable[[], Iterator[Sequence[Any]]]
    count: Callable[[], int]
    rows: int = 0
    # Pages the database formatted: (rows, bytes) for NDJSON and CSV, (rows, an Arrow record
    # batch) for Parquet. When given, ``pages`` is the same export built in Python.
    formatted: Callable[[], Iterator[tuple[int, Any]]] | None = None

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]

    def chunks(self) -> Iterator[bytes]:
        if self.formatted is None:
            return encode(self.format, self.columns, self._counted())
        if self.format == "parquet":
            return parquet_file(
                arrow_schema(self.columns),
                self._counted_formatted(),
                dictionary_columns(self.columns),
            )
        return self._formatted_bytes()

    def _formatted_bytes(self) -> Iterator[bytes]:
        if self.format == "csv":
            yield csv_header(self.columns)
        for data in self._counted_formatted():
            if data:
                yield data

    def _counted_formatted(self) -> Iterator[Any]:
        assert self.formatted is not None
        for rows, data in self.formatted():
            self.rows += rows
            yield data

    def _counted(self) -> Iterator[Sequence[Any]]:
        for page in self.pages():
            self.rows += len(page)
            yield page


ACTIVITY_COLUMNS = [
    attribute("id", "text", repeats=False),
    attribute("type", "text"),
    attribute("contact", "text", repeats=False),
    attribute("channel", "text"),
    attribute("title", "text"),
    attribute("value", "text"),
    attribute("url", "text"),
    attribute("referrer", "text"),
    attribute("fields", "json", repeats=False),
    attribute("flags", "json"),
    attribute("occurred_at", "datetime", repeats=False),
    attribute("received_at", "datetime", repeats=False),
    attribute("client_id", "text", repeats=False),
    attribute("consent_agreed", "boolean"),
    attribute("consent_version", "integer"),
]
CONTACT_COLUMNS = [
    attribute("id", "text"),
    attribute("email", "text"),
    attribute("first_name", "text"),
    attribute("middle_name", "text"),
    attribute("last_name", "text"),
    attribute("birthday", "date"),
    attribute("mobile_phone", "text"),
    attribute("business_phone", "text"),
    attribute("company_name", "text"),
    attribute("job_title", "text"),
    attribute("address1", "text"),
    attribute("city", "text"),
    attribute("zip", "text"),
    attribute("country", "text"),
    attribute("state", "text"),
    attribute("notes", "text"),
    attribute("attributes", "json"),
    attribute("external_ids", "json"),
    attribute("created_at", "datetime"),
    attribute("updated_at", "datetime"),
    attribute("merged_into", "text"),
]
MEMBER_COLUMNS = [
    attribute("contact", "text"),
    attribute("since", "datetime"),
    attribute("email", "text"),
    attribute("first_name", "text"),
    attribute("last_name", "text"),
]
FIELD_KINDS: dict[str, ColumnKind] = {
    "integer": "integer",
    "boolean": "boolean",
    "datetime": "datetime",
}


def field_column(spec: FieldSpec) -> Column:
    """The column of one typed field: its values as stored (decimals as their exact text)."""
    name = spec.name

    def get(item: Any) -> Any:
        return item.fields.get(name) if item.fields else None

    return Column(f"fields.{name}", FIELD_KINDS.get(spec.type, "text"), get)


def activity_columns(specs: Sequence[FieldSpec] | None) -> list[Column]:
    """The activity columns; with the fields of one type, a column per field in place of the
    ``fields`` column."""
    if specs is None:
        return list(ACTIVITY_COLUMNS)
    at = [c.name for c in ACTIVITY_COLUMNS].index("fields")
    return [*ACTIVITY_COLUMNS[:at], *(field_column(s) for s in specs), *ACTIVITY_COLUMNS[at + 1 :]]


class ExportService:
    """Exports on the store; the activity log's filters are the activity service's."""

    def __init__(self, store: Store, activities: ActivityService) -> None:
        self.store = store
        self.activities = activities

    def activities_export(
        self, query: ActivityExportQuery, field_params: Mapping[str, str] | None = None
    ) -> Export:
        """The activities the log's filters select, newest first, as the API shows them."""
        _check_format(query.format)
        filters = ActivityQuery(
            contact=query.contact,
            type=query.type,
            channel=query.channel,
            since=query.since,
            until=query.until,
        )
        dialect = self.store.dialect
        stmt = self.activities.log_select(filters, field_params, [activities])
        specs = None if query.type is None else self._type_fields(query.type)
        decode_fields = specs is not None and query.format != "ndjson"

        def pages() -> Iterator[Sequence[Any]]:
            after: tuple[dt.datetime, uuid.UUID] | None = None
            while True:
                inner = stmt.limit(ACTIVITY_PAGE)
                if after is not None:
                    inner = inner.where(before_in_log(*after))
                # The text is made for the page's rows only, after the ORDER BY and LIMIT,
                # whatever plan the database picks.
                found = inner.subquery()
                page = sa.select(*record_columns(dialect, found.c)).order_by(
                    found.c.occurred_at.desc(), found.c.id.desc()
                )
                with self.store.read() as conn:
                    make = record_maker(self._type_codes(conn), decode_fields)
                    rows = conn.execute(page).all()
                if rows:
                    yield [make(row) for row in rows]
                if len(rows) < ACTIVITY_PAGE:
                    return
                last = rows[-1]
                after = (
                    dt.datetime.fromisoformat(last[10]).replace(tzinfo=dt.UTC),
                    uuid.UUID(last[0]),
                )

        def count() -> int:
            with self.store.read() as conn:
                counted = sa.select(sa.func.count()).select_from(stmt.order_by(None).subquery())
                return int(conn.execute(counted).scalar_one())

        name = "activities" if query.type is None else f"activities-{query.type}"
        export = Export(
            query.format, f"{name}.{query.format}", activity_columns(specs), pages, count
        )
        if query.format == "ndjson" or specs is None:
            export.formatted = lambda: formatted_pages(
                self.store, stmt, query.format, ACTIVITY_COLUMNS, ACTIVITY_PAGE
            )
        return export

    def contacts_export(self, query: ContactExportQuery) -> Export:
        """The contacts the list's search finds, in its order, each as ``GET
        /api/contacts/{id}`` shows it."""
        _check_format(query.format)
        search_words(query.q)  # a bad search is a 400 now, not a broken download

        def summaries() -> Iterator[list[uuid.UUID]]:
            cursor: str | None = None
            while True:
                with self.store.read() as conn:
                    found: Page[Any] = search(conn, query.q, CONTACT_PAGE, cursor)
                if found.data:
                    yield [c.id for c in found.data]
                if found.next is None:
                    return
                cursor = found.next

        def pages() -> Iterator[Sequence[Any]]:
            for ids in summaries():
                with self.store.read() as conn:
                    yield contacts_of(conn, ids)

        def count() -> int:
            if not search_words(query.q):
                with self.store.read() as conn:
                    total = conn.execute(sa.select(sa.func.count()).select_from(contacts))
                    return int(total.scalar_one())
            return sum(len(ids) for ids in summaries())

        return Export(query.format, f"contacts.{query.format}", CONTACT_COLUMNS, pages, count)

    def members_export(self, group_id: uuid.UUID, query: MemberExportQuery) -> Export:
        """A group's members in contact id order, with their emails and names."""
        _check_format(query.format)
        with self.store.read() as conn:
            exists = conn.execute(
                sa.select(contact_groups.c.id).where(contact_groups.c.id == group_id)
            ).first()
        if exists is None:
            raise not_found("group")

        def pages() -> Iterator[Sequence[Any]]:
            cursor: str | None = None
            while True:
                with self.store.read() as conn:
                    found = member_contacts(conn, group_id, MEMBER_PAGE, cursor)
                if found.data:
                    yield found.data
                if found.next is None:
                    return
                cursor = found.next

        def count() -> int:
            with self.store.read() as conn:
                total = conn.execute(
                    sa.select(contact_groups.c.member_count).where(contact_groups.c.id == group_id)
                )
                return int(total.scalar_one_or_none() or 0)

        name = f"group-{group_id}-members.{query.format}"
        return Export(query.format, name, MEMBER_COLUMNS, pages, count)

    def _type_codes(self, conn: sa.Connection) -> dict[str, str]:
        codes: dict[str, str] = {}
        for type_id, code in conn.execute(
            sa.select(activity_types.c.id, activity_types.c.code_name)
        ):
            codes[str(type_id)] = codes[type_id.hex] = code
        return codes

    def _type_fields(self, code: str) -> list[FieldSpec]:
        with self.store.read() as conn:
            type_id = conn.execute(
                sa.select(activity_types.c.id).where(activity_types.c.code_name == code)
            ).scalar_one_or_none()
            if type_id is None:
                raise ApiError(
                    400, "invalid_field", f"No activity type has code name {quoted(code)}.", "type"
                )
            return load_type_fields(conn, [type_id]).get(type_id, [])


def _check_format(fmt: ExportFormat) -> None:
    if fmt == "parquet":
        pyarrow_modules()

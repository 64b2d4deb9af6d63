"""The activity log and the rejected activities: filtered, newest first, cursor-paged."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar

import msgspec
import sqlalchemy as sa

from waypost.domain.activity import Activity
from waypost.domain.field_filters import FieldFilter, FilterError, parse_filters
from waypost.domain.field_values import format_datetime, primary_text
from waypost.error_words import quoted
from waypost.errors import ApiError, with_offset
from waypost.pagination import Cursor, Page, PageLimit, after_cursor, encode_cursor
from waypost.records.contacts import contact_not_found
from waypost.services.activity_type_shapes import MAX_CODE_NAME
from waypost.store import Store
from waypost.store.schema import (
    activities,
    activity_types,
    contacts,
    rejected_activities,
)
from waypost.store.type_fields import load_type_fields

PRIMARY_LENGTH: int = activities.c.primary_value.type.length  # type: ignore[attr-defined]
# A filter is no longer than what it is compared with: a type's code name, the type a rejected
# activity was sent with (kept to its column's length) and its reason (an error code).
MAX_REJECTED_TYPE: int = rejected_activities.c.type_code.type.length  # type: ignore[attr-defined]
MAX_REASON: int = rejected_activities.c.reason.type.length  # type: ignore[attr-defined]
TypeFilter = Annotated[str, msgspec.Meta(max_length=MAX_CODE_NAME)]
RejectedTypeFilter = Annotated[str, msgspec.Meta(max_length=MAX_REJECTED_TYPE)]
ReasonFilter = Annotated[str, msgspec.Meta(max_length=MAX_REASON)]


class ActivityQuery(msgspec.Struct, forbid_unknown_fields=True):
    """Filters of the activity log; ``since`` and ``until`` bound ``occurred_at``.

    With ``type``, parameters ``field.<name>``, ``field.<name>.gt|gte|lt|lte|contains``
    filter on field values (see docs/activity-fields.md).
    """

    extra_prefix: ClassVar[str] = "field."

    limit: PageLimit = 100
    cursor: Cursor | None = None
    contact: uuid.UUID | None = None
    type: TypeFilter | None = None
    channel: uuid.UUID | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


class RejectedActivity(msgspec.Struct):
    """An activity that was not stored, with the reason and the payload as it was sent."""

    id: uuid.UUID
    reason: str
    status: int
    message: str
    field: str | None
    type: str | None
    channel: uuid.UUID | None
    contact: uuid.UUID | None
    source: str
    payload: Any
    received_at: dt.datetime
    replayed_at: dt.datetime | None
    replay_outcome: str | None
    replayed_activity_id: uuid.UUID | None


# The error codes (docs/errors.md) an activity is rejected with: a rejected activity's reason
# is one of them.
REJECTION_REASONS: tuple[str, ...] = (
    "activity_type_not_found",
    "activity_type_disabled",
    "missing_field",
    "invalid_field",
    "unknown_field",
    "field_type_mismatch",
    "contact_not_found",
    "consent_required",
    "rate_limited",
    "payload_too_large",
)


class RejectedQuery(msgspec.Struct, forbid_unknown_fields=True):
    """Filters of the rejected activities; ``since`` and ``until`` bound ``received_at``."""

    limit: PageLimit = 100
    cursor: Cursor | None = None
    reason: ReasonFilter | None = None
    type: RejectedTypeFilter | None = None
    channel: uuid.UUID | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


def _next_cursor(stamp: dt.datetime, ident: uuid.UUID) -> str:
    return encode_cursor(f"{stamp.isoformat()}|{ident}")


class ActivityService:
    """Reading activities and rejected activities."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def log(
        self, query: ActivityQuery, field_params: Mapping[str, str] | None = None
    ) -> Page[Activity]:
        stmt = self.log_select(query, field_params).limit(query.limit + 1)
        if (after := after_cursor(query.cursor)) is not None:
            stmt = stmt.where(before_in_log(*after))
        with self.store.read() as conn:
            rows = conn.execute(stmt).all()
        items = [activity_of(r) for r in rows[: query.limit]]
        more = len(rows) > query.limit
        return Page(items, _next_cursor(items[-1].occurred_at, items[-1].id) if more else None)

    def log_select(
        self,
        query: ActivityQuery,
        field_params: Mapping[str, str] | None = None,
        columns: Sequence[Any] | None = None,
    ) -> sa.Select[Any]:
        """The activity log's SELECT for the filters of ``query`` (its limit and cursor left
        out), newest first: rows for :func:`activity_of`, or of ``columns`` (of the activities
        table, or the table itself) when given. Bad filters are a 400."""
        a = activities
        if columns is None:
            stmt = sa.select(a, activity_types.c.code_name).join(
                activity_types, activity_types.c.id == a.c.type_id
            )
        else:
            stmt = sa.select(*columns)
        stmt = stmt.order_by(a.c.occurred_at.desc(), a.c.id.desc())
        if query.contact is not None:
            stmt = stmt.where(a.c.contact_id == query.contact)
        if query.type is not None:
            # The type's id as a constant, not a subquery: PostgreSQL then plans with what it
            # knows of that type's rows (the primary-field index for a filter on it).
            with self.store.read() as conn:
                type_id = conn.execute(
                    sa.select(activity_types.c.id).where(activity_types.c.code_name == query.type)
                ).scalar_one_or_none()
            stmt = stmt.where(a.c.type_id == type_id if type_id is not None else sa.false())
        if field_params:
            filters = self._field_filters(query.type, field_params)
            stmt = stmt.where(*(field_condition(f, self.store.dialect) for f in filters))
        if query.channel is not None:
            stmt = stmt.where(a.c.channel_id == query.channel)
        if query.since is not None:
            stmt = stmt.where(a.c.occurred_at >= with_offset(query.since, "since"))
        if query.until is not None:
            stmt = stmt.where(a.c.occurred_at < with_offset(query.until, "until"))
        return stmt

    def _field_filters(self, type_code: str | None, params: Mapping[str, str]) -> list[FieldFilter]:
        if type_code is None:
            raise ApiError(
                400,
                "invalid_field",
                "Field filters need the activity type: add type=<code name>.",
                "type",
            )
        with self.store.read() as conn:
            type_id = conn.execute(
                sa.select(activity_types.c.id).where(activity_types.c.code_name == type_code)
            ).scalar_one_or_none()
            if type_id is None:
                message = f"No activity type has code name {quoted(type_code)}."
                raise ApiError(400, "invalid_field", message, "type")
            specs = load_type_fields(conn, [type_id]).get(type_id, [])
        try:
            return parse_filters(specs, params)
        except FilterError as exc:
            raise ApiError(400, "invalid_field", str(exc), exc.parameter) from None

    def contact_log(
        self,
        contact_id: uuid.UUID,
        query: ActivityQuery,
        field_params: Mapping[str, str] | None = None,
    ) -> Page[Activity]:
        with self.store.read() as conn:
            found = conn.execute(
                sa.select(contacts.c.id).where(contacts.c.id == contact_id)
            ).first()
        if found is None:
            raise contact_not_found(contact_id)
        return self.log(msgspec.structs.replace(query, contact=contact_id), field_params)

    def rejected_one(self, rejected_id: uuid.UUID) -> RejectedActivity:
        with self.store.read() as conn:
            row = conn.execute(
                sa.select(rejected_activities).where(rejected_activities.c.id == rejected_id)
            ).first()
        if row is None:
            raise ApiError(404, "not_found", "No rejected activity has that identifier.")
        return rejected_of(row)

    def rejected(self, query: RejectedQuery) -> Page[RejectedActivity]:
        r = rejected_activities
        stmt = sa.select(r).order_by(r.c.received_at.desc(), r.c.id.desc()).limit(query.limit + 1)
        if query.reason is not None:
            stmt = stmt.where(r.c.reason == query.reason)
        if query.type is not None:
            stmt = stmt.where(r.c.type_code == query.type)
        if query.channel is not None:
            stmt = stmt.where(r.c.channel_id == query.channel)
        if query.since is not None:
            stmt = stmt.where(r.c.received_at >= with_offset(query.since, "since"))
        if query.until is not None:
            stmt = stmt.where(r.c.received_at < with_offset(query.until, "until"))
        if (after := after_cursor(query.cursor)) is not None:
            stamp, ident = after
            stmt = stmt.where(
                sa.or_(r.c.received_at < stamp, sa.and_(r.c.received_at == stamp, r.c.id < ident))
            )
        with self.store.read() as conn:
            rows = conn.execute(stmt).all()
        items = [rejected_of(row) for row in rows[: query.limit]]
        more = len(rows) > query.limit
        return Page(items, _next_cursor(items[-1].received_at, items[-1].id) if more else None)


def before_in_log(
    stamp: dt.datetime | sa.BindParameter[Any], ident: uuid.UUID | sa.BindParameter[Any]
) -> sa.ColumnElement[bool]:
    """The activities after (older than) the one at ``stamp`` with id ``ident`` in the log's
    order: a keyset page's condition (values, or parameters bound at each run)."""
    a = activities
    # The first term bounds the index range; an OR alone would read the index from its start
    # on SQLite for every page.
    return sa.and_(a.c.occurred_at <= stamp, sa.or_(a.c.occurred_at < stamp, a.c.id < ident))


def activity_of(r: sa.Row[Any]) -> Activity:
    """A row of :meth:`ActivityService.log_select` as the API shows it."""
    return Activity(
        id=r.id,
        type=r.code_name,
        contact=r.contact_id,
        channel=r.channel_id,
        title=r.title,
        value=r.value,
        url=r.url,
        referrer=r.referrer,
        fields=r.fields,
        flags=r.flags,
        occurred_at=r.occurred_at,
        received_at=r.received_at,
        client_id=r.client_id,
        consent_agreed=r.consent_agreed,
        consent_version=r.consent_version,
    )


def rejected_of(row: sa.Row[Any]) -> RejectedActivity:
    return RejectedActivity(
        id=row.id,
        reason=row.reason,
        status=row.status,
        message=row.message,
        field=row.field,
        type=row.type_code,
        channel=row.channel_id,
        contact=row.contact_id,
        source=row.source,
        payload=row.payload,
        received_at=row.received_at,
        replayed_at=row.replayed_at,
        replay_outcome=row.replay_outcome,
        replayed_activity_id=row.replayed_activity_id,
    )


def _by_primary_value(f: FieldFilter) -> bool:
    # Decimals are compared as numbers ("50000.1" == "50000.10"), not as the indexed text;
    # their activities carry no primary_value (pipeline/prepare.py).
    return f.spec.primary and f.op == "eq" and f.spec.type != "decimal"


def field_condition(f: FieldFilter, dialect: str) -> sa.ColumnElement[bool]:
    """SQL for one field filter, on either database.

    Equality on the primary field uses the indexed ``primary_value`` column. Datetimes are
    stored as fixed-width UTC text, so comparing the text compares the times. Decimals are
    compared as NUMERIC (exact on PostgreSQL; SQLite compares them as 8-byte floats).
    """
    spec, op, value = f.spec, f.op, f.value
    column = activities.c.fields[spec.name]
    if _by_primary_value(f):
        text = primary_text(spec, value)
        indexed: sa.ColumnElement[Any] = activities.c.primary_value == text[:PRIMARY_LENGTH]
        if dialect == "sqlite":
            # Without statistics SQLite prefers the type's time index, which saves a sort but
            # reads every activity of the type; saying the value is rare makes it use this one.
            # (The probability must be a literal; untyped, so no "= 1" is added.)
            indexed = sa.func.likelihood(indexed, sa.literal_column("0.001"))
        if len(text) < PRIMARY_LENGTH:
            return indexed
        # The column holds the first characters of a long value: it narrows, the field decides.
        return sa.and_(indexed, column.as_string() == text)
    expr: sa.ColumnElement[Any]
    if spec.type == "integer":
        expr = sa.cast(column.as_string(), sa.BigInteger)
    elif spec.type == "decimal":
        if dialect == "sqlite":
            expr, value = sa.cast(column.as_string(), sa.Float), float(value)  # type: ignore[arg-type]
        else:
            expr = sa.cast(column.as_string(), sa.Numeric)
    elif spec.type == "datetime":
        expr, value = column.as_string(), format_datetime(value)  # type: ignore[arg-type]
    elif spec.type == "boolean":
        expr = column.as_boolean()
    else:
        expr = column.as_string()
    if op == "contains":
        escaped = str(value).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return expr.ilike(f"%{escaped}%", escape="\\")
    comparisons = {
        "eq": expr.__eq__,
        "gt": expr.__gt__,
        "gte": expr.__ge__,
        "lt": expr.__lt__,
        "lte": expr.__le__,
    }
    return comparisons[op](value)

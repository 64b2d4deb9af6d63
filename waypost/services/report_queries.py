"""The reports a marketer builds (docs/reports.md): counts, breakdowns, numeric summaries,
funnels and a group's membership, each over a range of days split into periods in a time zone.

Counts read the rollups (activities per contact, type and UTC day) when the question allows it:
UTC periods and no filter on channels or fields. Everything else reads the activities, through
the indexes on type and time (and contact and time for a funnel's later steps). Each result
names what it read.

Decimals stay exact: PostgreSQL adds them up as NUMERIC; on SQLite, whose arithmetic is 8-byte
floating point, each distinct stored value is counted per period and the sum is made here.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ColumnElement, Connection

from waypost.domain.field_filters import FieldFilter, FilterError, parse_filters
from waypost.domain.fields import FieldSpec
from waypost.domain.report_definitions import (
    ChartSeries,
    ChartStyle,
    Period,
    ReportChart,
    ReportDefinition,
    ReportResult,
    Source,
    average,
    bucket_labels,
    check_definition,
    parse_edges,
    periods,
    plain,
    time_zone,
)
from waypost.domain.value_counts import COUNTED_TYPES
from waypost.error_words import quoted
from waypost.errors import invalid
from waypost.services.activities import field_condition
from waypost.store.schema import (
    activities,
    activity_daily_counts,
    activity_rollups,
    activity_types,
    activity_value_counts,
    channels,
    contact_groups,
    group_members,
)
from waypost.store.type_fields import load_type_fields

NUMERIC_TYPES = frozenset({"integer", "decimal"})
UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/Universal", "Universal", "Zulu", "Etc/Zulu"})
OTHER = "other"
Cell = str | int | None


@dataclass(frozen=True)
class Scope:
    """A definition resolved against the data: ids for code names, fields parsed."""

    definition: ReportDefinition
    zone: dt.tzinfo
    periods: list[Period]
    types: dict[uuid.UUID, str]  # the types asked for, id -> code name (empty: every type)
    names: dict[uuid.UUID, str]  # every type's code name
    specs: list[FieldSpec]  # the fields of the one type asked for
    channel_ids: list[uuid.UUID]
    group_id: uuid.UUID | None
    filters: list[FieldFilter]

    @property
    def start(self) -> dt.datetime:
        return self.periods[0].start

    @property
    def end(self) -> dt.datetime:
        return self.periods[-1].end


def _lookup_uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text) if len(text) in (32, 36) else None
    except ValueError:
        return None


def type_ids(conn: Connection) -> dict[str, uuid.UUID]:
    t = activity_types
    return {code: ident for ident, code in conn.execute(sa.select(t.c.id, t.c.code_name))}


def resolve_type(codes: Mapping[str, uuid.UUID], code: str, where: str) -> uuid.UUID:
    ident = codes.get(code)
    if ident is None:
        raise invalid(f"No activity type has code name {quoted(code)}.", where)
    return ident


def parse_field_filters(
    specs: Sequence[FieldSpec], params: Mapping[str, str], where: str
) -> list[FieldFilter]:
    try:
        return parse_filters(specs, params)
    except FilterError as exc:
        raise invalid(str(exc), f"{where}.{exc.parameter.removeprefix('field.')}") from None


def _named(conn: Connection, table: sa.Table, text: str, where: str, what: str) -> uuid.UUID:
    ident = _lookup_uuid(text)
    condition = table.c.name == text
    if ident is not None:
        condition = sa.or_(condition, table.c.id == ident)
    found = conn.execute(sa.select(table.c.id).where(condition).limit(1)).scalar_one_or_none()
    if found is None:
        raise invalid(f"No {what} has the name or id {quoted(text)}.", where)
    return uuid.UUID(str(found))


def resolve(conn: Connection, d: ReportDefinition) -> Scope:
    """The definition checked against what exists; ApiError (400) naming what does not."""
    check_definition(d)
    zone = time_zone(d.time_zone)
    codes = type_ids(conn)
    chosen = {resolve_type(codes, code, f"types[{i}]"): code for i, code in enumerate(d.types)}
    fields = load_type_fields(conn, list(chosen)) if chosen else {}
    specs = fields.get(next(iter(chosen)), []) if len(chosen) == 1 else []
    if d.filters and len(chosen) != 1:
        raise invalid("Field filters need exactly one activity type in types.", "filters")
    filters = parse_field_filters(specs, d.filters, "filters")
    if d.field is not None:
        spec = next((s for s in specs if s.name == d.field), None)
        if spec is None:
            raise invalid(
                f"The activity type {quoted(d.types[0])} has no field {quoted(d.field)}.", "field"
            )
        if d.kind == "numeric" and spec.type not in NUMERIC_TYPES:
            raise invalid(
                f"{d.field} is a {spec.type} field; sums and averages take an integer or "
                "decimal field.",
                "field",
            )
        if d.buckets is not None and spec.type not in NUMERIC_TYPES:
            raise invalid(
                f"{d.field} is a {spec.type} field; buckets take an integer or decimal field.",
                "buckets",
            )
        if d.kind == "breakdown" and d.buckets is None and spec.type == "decimal":
            raise invalid(
                f"{d.field} is a decimal field; break it down by buckets (give their edges).",
                "buckets",
            )
    channel_ids = [
        _named(conn, channels, name, f"channels[{i}]", "channel")
        for i, name in enumerate(d.channels)
    ]
    group_id = None
    if d.group is not None:
        group_id = _named(conn, contact_groups, d.group, "group", "contact group")
    return Scope(
        definition=d,
        zone=zone,
        periods=periods(d.since, d.until, d.granularity, zone),
        types=chosen,
        names={ident: code for code, ident in codes.items()},
        specs=specs,
        channel_ids=channel_ids,
        group_id=group_id,
        filters=filters,
    )


def search_index(column: Any, bounds: Sequence[object]) -> ColumnElement[Any]:
    """Which of ``len(bounds) + 1`` consecutive ranges ``column`` is in (0 below
    ``bounds[0]``): a binary search written as nested CASE, so a row costs a few comparisons
    however many periods or buckets there are."""

    def part(low: int, high: int) -> ColumnElement[Any]:
        if low == high:
            return sa.literal_column(str(low), sa.Integer)
        mid = (low + high + 1) // 2
        return sa.case((column < bounds[mid - 1], part(low, mid - 1)), else_=part(mid, high))

    return part(0, len(bounds))


def in_group(contact: Any, group_id: uuid.UUID) -> ColumnElement[bool]:
    members = sa.select(group_members.c.contact_id).where(group_members.c.group_id == group_id)
    condition: ColumnElement[bool] = contact.in_(members)
    return condition


def activity_conditions(
    scope: Scope,
    dialect: str,
    type_id: uuid.UUID | None = None,
    filters: Sequence[FieldFilter] | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    group: bool = True,
    unindexed: bool = False,
) -> list[ColumnElement[bool]]:
    """The activities a report reads: its types (or ``type_id``), channels, group and field
    filters, from ``start`` (the range's start) to before ``end`` (the range's end).
    ``unindexed`` (SQLite): the time and the type written with a unary plus, which no index
    serves, so that SQLite reads the activities through another index (the contacts')."""
    a = activities.c
    occurred_at: ColumnElement[Any] = a.occurred_at
    type_column: ColumnElement[Any] = a.type_id
    if unindexed:
        occurred_at = sa.literal_column("+activities.occurred_at", a.occurred_at.type)
        type_column = sa.literal_column("+activities.type_id", a.type_id.type)
    where: list[ColumnElement[bool]] = [
        occurred_at >= (start or scope.start),
        occurred_at < (end or scope.end),
    ]
    ids = [type_id] if type_id is not None else list(scope.types)
    # SQLite tests the conditions no index serves in their order: the type, which most
    # activities read so fail, first.
    first = 0 if unindexed else len(where)
    if len(ids) == 1:
        where.insert(first, type_column == ids[0])
    elif ids:
        where.insert(first, type_column.in_(ids))
    if scope.channel_ids:
        where.append(a.channel_id.in_(scope.channel_ids))
    if group and scope.group_id is not None:
        where.append(in_group(a.contact_id, scope.group_id))
    where += [field_condition(f, dialect) for f in (scope.filters if filters is None else filters)]
    return where


def reads_rollups(scope: Scope) -> bool:
    """Counts come from the rollups when their UTC days make the periods and no filter needs
    an activity's channel or fields."""
    d = scope.definition
    return d.time_zone in UTC_NAMES and not d.channels and not d.filters


def reads_daily_counts(scope: Scope) -> bool:
    """Counts come from the counts per type and UTC day (activities and distinct contacts)
    when each period is a UTC day and the group does not pick contacts: distinct contacts of
    a week or a month are not the sum of its days'."""
    d = scope.definition
    return reads_rollups(scope) and d.granularity == "day" and scope.group_id is None


def reads_value_counts(scope: Scope) -> bool:
    """A numeric report comes from the counts per type, UTC day, field and value when its
    periods are made of UTC days and nothing picks activities by channel, group or field."""
    return reads_rollups(scope) and scope.group_id is None


def _as_int(value: object) -> int:
    return int(value) if value is not None else 0  # type: ignore[call-overload]


# -- counts ------------------------------------------------------------------------------


def counts(conn: Connection, scope: Scope) -> ReportResult:
    """Activities and unique contacts per period and type."""
    d = scope.definition
    starts = [p.start for p in scope.periods[1:]]
    if reads_daily_counts(scope):
        return _table(scope, "rollups", _daily_counts(conn, scope))
    if reads_rollups(scope):
        source: Source = "rollups"
        r = activity_rollups.c
        where: list[ColumnElement[bool]] = [r.day >= d.since, r.day <= d.until]
        if len(scope.types) == 1:
            where.append(r.type_id == next(iter(scope.types)))
        elif scope.types:
            where.append(r.type_id.in_(list(scope.types)))
        if scope.group_id is not None:
            where.append(in_group(r.contact_id, scope.group_id))
        inner = (
            sa.select(
                search_index(r.day, [p.first for p in scope.periods[1:]]).label("p"),
                r.type_id,
                r.contact_id,
                r["count"].label("n"),
            )
            .where(*where)
            .subquery()
        )
        total: ColumnElement[Any] = sa.func.sum(inner.c.n)
    else:
        source = "activities"
        a = activities.c
        inner = (
            sa.select(search_index(a.occurred_at, starts).label("p"), a.type_id, a.contact_id)
            .where(*activity_conditions(scope, conn.dialect.name))
            .subquery()
        )
        total = sa.func.count()
    stmt = sa.select(
        inner.c.p, inner.c.type_id, total, sa.func.count(sa.distinct(inner.c.contact_id))
    ).group_by(inner.c.p, inner.c.type_id)
    return _table(scope, source, conn.execute(stmt))


def _daily_counts(conn: Connection, scope: Scope) -> Iterable[Sequence[Any]]:
    """(period, type, activities, distinct contacts) from the counts per type and UTC day:
    the periods are the range's days."""
    d = scope.definition
    c = activity_daily_counts.c
    where: list[ColumnElement[bool]] = [c.day >= d.since, c.day <= d.until, c["count"] > 0]
    if len(scope.types) == 1:
        where.append(c.type_id == next(iter(scope.types)))
    elif scope.types:
        where.append(c.type_id.in_(list(scope.types)))
    rows = conn.execute(sa.select(c.day, c.type_id, c["count"], c.contacts).where(*where))
    return [((day - d.since).days, type_id, n, unique) for day, type_id, n, unique in rows]


def _table(scope: Scope, source: Source, counted: Iterable[Sequence[Any]]) -> ReportResult:
    """The counts report from (period, type, activities, distinct contacts) rows."""
    d = scope.definition
    found: dict[tuple[int, uuid.UUID], tuple[int, int]] = {}
    totals: dict[uuid.UUID, int] = {}
    for p, type_id, n, unique in counted:
        ident = uuid.UUID(str(type_id))
        found[(int(p), ident)] = (_as_int(n), _as_int(unique))
        totals[ident] = totals.get(ident, 0) + _as_int(n)
    if scope.types:
        order = list(scope.types)
    else:
        order = sorted(totals, key=lambda t: (-totals[t], scope.names[t]))
    codes = [scope.names[t] for t in order]
    columns = ["period", "activities"]
    for code in codes:
        columns += [f"{code} activities", f"{code} contacts"]
    rows: list[list[Cell]] = []
    series = [ChartSeries(code, []) for code in codes]
    for i, period in enumerate(scope.periods):
        cells = [found.get((i, t), (0, 0)) for t in order]
        row: list[Cell] = [period.label, sum(n for n, _ in cells)]
        for (n, unique), line in zip(cells, series, strict=True):
            row += [n, unique]
            line.values.append(float(n))
        rows.append(row)
    style: ChartStyle = "bars" if len(series) <= 1 else "stacked_bars"
    chart = ReportChart(style, [p.label for p in scope.periods], series)
    return ReportResult(d, source, columns, rows, chart)


# -- breakdown ---------------------------------------------------------------------------


def _field_spec(scope: Scope) -> FieldSpec:
    return next(s for s in scope.specs if s.name == scope.definition.field)


def _value_text(spec: FieldSpec, value: object) -> str:
    """A value as the database returned it, as shown: SQLite gives JSON true as 1."""
    if spec.type == "boolean":
        return "true" if str(value).lower() in ("1", "true") else "false"
    return str(value)


def breakdown(conn: Connection, scope: Scope) -> ReportResult:
    """Activities per value of a field (the top values, the rest as "other"), or per bucket of
    a numeric field, and with ``contacts`` the unique contacts of each. Without contacts, a
    numeric field's values are counted from their daily counts when the question allows it
    (:func:`reads_value_counts`); the contacts of a value need its activities."""
    d = scope.definition
    spec = _field_spec(scope)
    source: Source
    if not d.contacts and spec.type in COUNTED_TYPES and reads_value_counts(scope):
        source = "rollups"
        v = activity_value_counts.c
        text: ColumnElement[Any] = v.value
        weight: ColumnElement[Any] = v["count"]
        contact: ColumnElement[Any] = sa.null()
        where = [
            v.type_id == next(iter(scope.types)),
            v.field == spec.name,
            v.day >= d.since,
            v.day <= d.until,
        ]
    else:
        source = "activities"
        a = activities.c
        text = a.fields[spec.name].as_string()
        weight = sa.literal_column("1", sa.BigInteger)
        contact = a.contact_id if d.contacts else sa.null()
        where = [*activity_conditions(scope, conn.dialect.name), text.is_not(None)]
    if d.buckets is not None:
        edges = parse_edges(d.buckets)
        number: ColumnElement[Any]
        bounds: list[object]
        if conn.dialect.name == "sqlite":
            number, bounds = sa.cast(text, sa.Float), [float(edge) for edge in edges]
        else:
            number, bounds = sa.cast(text, sa.Numeric), list(edges)
        inner = (
            sa.select(
                search_index(number, bounds).label("v"), weight.label("n"), contact.label("c")
            )
            .where(*where)
            .subquery()
        )
        stmt = sa.select(
            inner.c.v, sa.func.sum(inner.c.n), sa.func.count(sa.distinct(inner.c.c))
        ).group_by(inner.c.v)
        got = {int(v): (_as_int(n), _as_int(u)) for v, n, u in conn.execute(stmt)}
        labels = bucket_labels(edges)
        rows: list[list[Cell]] = [[label, *got.get(i, (0, 0))] for i, label in enumerate(labels)]
    else:
        # Only the top values leave the database, however many distinct values there are:
        # the most frequent first, ties by their text in code point order (as in Python).
        inner = (
            sa.select(text.label("v"), weight.label("n"), contact.label("c"))
            .where(*where)
            .subquery()
        )
        by_text: ColumnElement[Any] = sa.cast(inner.c.v, sa.Text)
        if conn.dialect.name == "postgresql":
            by_text = by_text.collate("C")
        count = sa.func.sum(inner.c.n)
        stmt = (
            sa.select(inner.c.v, count, sa.func.count(sa.distinct(inner.c.c)))
            .group_by(inner.c.v)
            .order_by(count.desc(), by_text)
            .limit(d.top)
        )
        top = [(v, _as_int(n), _as_int(u)) for v, n, u in conn.execute(stmt)]
        rows = [[_value_text(spec, v), n, u] for v, n, u in top]
        # All the activities, and the contacts of the other values, in one more pass.
        other = sa.case((text.not_in([v for v, _, _ in top]), contact))
        total, others = conn.execute(
            sa.select(sa.func.sum(weight), sa.func.count(sa.distinct(other))).where(*where)
        ).one()
        rest = _as_int(total) - sum(n for _, n, _ in top)
        if rest > 0:
            rows.append([OTHER, rest, _as_int(others)])
    if not d.contacts:
        rows = [row[:2] for row in rows]
    columns = ["value", "activities", "contacts"][: 3 if d.contacts else 2]
    chart = ReportChart(
        "bars",
        [str(row[0]) for row in rows],
        [ChartSeries("activities", [float(row[1] or 0) for row in rows])],
    )
    return ReportResult(d, source, columns, rows, chart)


# -- numeric -----------------------------------------------------------------------------


def numeric(conn: Connection, scope: Scope) -> ReportResult:
    """Sum, average, minimum and maximum of a numeric field per period, exact: from the counts
    per field value when the question allows it (:func:`reads_value_counts`), else from the
    activities."""
    d = scope.definition
    spec = _field_spec(scope)
    inner: sa.Subquery
    source: Source
    if reads_value_counts(scope):
        source = "rollups"
        v = activity_value_counts.c
        inner = (
            sa.select(
                search_index(v.day, [p.first for p in scope.periods[1:]]).label("p"),
                v.value.label("v"),
                v["count"].label("n"),
            )
            .where(
                v.type_id == next(iter(scope.types)),
                v.field == spec.name,
                v.day >= d.since,
                v.day <= d.until,
            )
            .subquery()
        )
    else:
        source = "activities"
        a = activities.c
        text = a.fields[spec.name].as_string()
        starts = [p.start for p in scope.periods[1:]]
        inner = (
            sa.select(
                search_index(a.occurred_at, starts).label("p"),
                text.label("v"),
                sa.literal_column("1", sa.BigInteger).label("n"),
            )
            .where(*activity_conditions(scope, conn.dialect.name), text.is_not(None))
            .subquery()
        )
    found = _summaries(conn, inner)
    columns = ["period", "activities", "sum", "average", "min", "max"]
    rows: list[list[Cell]] = []
    sums: list[float | None] = []
    averages: list[float | None] = []
    for i, period in enumerate(scope.periods):
        if i not in found:
            rows.append([period.label, 0, None, None, None, None])
            sums.append(None)
            averages.append(None)
            continue
        count, total, low, high = found[i]
        mean = average(total, count)
        rows.append([period.label, count, plain(total), plain(mean), plain(low), plain(high)])
        sums.append(float(total))
        averages.append(float(mean))
    chart = ReportChart(
        "line",
        [p.label for p in scope.periods],
        [ChartSeries("sum", sums), ChartSeries("average", averages)],
    )
    return ReportResult(d, source, columns, rows, chart)


Summary = tuple[int, decimal.Decimal, decimal.Decimal, decimal.Decimal]


def _summaries(conn: Connection, inner: sa.Subquery) -> dict[int, Summary]:
    """(count, sum, min, max) per period of the values ``v`` of ``inner``, each counted ``n``
    times, exact."""
    found: dict[int, Summary] = {}
    if conn.dialect.name == "postgresql":
        # NUMERIC adds up exactly.
        number = sa.cast(inner.c.v, sa.Numeric)
        stmt = sa.select(
            inner.c.p,
            sa.func.sum(inner.c.n),
            sa.func.sum(number * inner.c.n),
            sa.func.min(number),
            sa.func.max(number),
        ).group_by(inner.c.p)
        for p, n, total, low, high in conn.execute(stmt):
            exact = [decimal.Decimal(str(x)) for x in (total, low, high)]
            found[int(p)] = (int(n), exact[0], exact[1], exact[2])
        return found
    # SQLite would add up 8-byte floats: it counts each distinct value instead, and the values
    # are added up here as decimals.
    per_value = sa.select(inner.c.p, inner.c.v, sa.func.sum(inner.c.n)).group_by(
        inner.c.p, inner.c.v
    )
    context = decimal.Context(prec=100)
    for p, v, n in conn.execute(per_value):
        value = decimal.Decimal(str(v))
        count, total, low, high = found.get(int(p), (0, decimal.Decimal(0), value, value))
        total = context.add(total, context.multiply(value, decimal.Decimal(int(n))))
        found[int(p)] = (count + int(n), total, min(low, value), max(high, value))
    return found

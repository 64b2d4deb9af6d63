"""What a report asks (its definition) and what it answers (its result), and the pure rules
around them: which definitions are acceptable, the periods a range splits into in a time zone,
the labels of a numeric field's buckets. See docs/reports.md.

A definition is checked in two steps: :func:`check_definition` here, for what needs no data
(the range, the time zone, which options a kind takes), then by the report service against the
activity types, fields, channels and groups that exist.
"""

from __future__ import annotations

import datetime as dt
import decimal
import fractions
import itertools
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec

from waypost.domain.field_filters import MAX_FILTER_LENGTH
from waypost.errors import invalid

MAX_RANGE_DAYS = 366
MIN_STEPS = 2
MAX_STEPS = 5
MAX_WINDOW_DAYS = 366
MAX_TOP = 100
MAX_BUCKETS = 50
MAX_LIST = 50  # types, channels
MAX_FILTERS = 20
MAX_TIME_ZONE_LENGTH = 64
# The days a report may cover: far enough from the ends of the calendar that a period's end,
# a time zone's offset and a funnel's window after ``until`` stay within it.
FIRST_DAY = dt.date(1900, 1, 1)
LAST_DAY = dt.date(9997, 12, 31)

ReportKind = Literal["counts", "breakdown", "numeric", "funnel", "group"]
Granularity = Literal["day", "week", "month"]
ChartStyle = Literal["bars", "stacked_bars", "line", "funnel"]
Source = Literal["rollups", "activities", "memberships"]
CodeName = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
FilterKey = Annotated[str, msgspec.Meta(min_length=1, max_length=120)]
FilterValue = Annotated[str, msgspec.Meta(max_length=MAX_FILTER_LENGTH)]
Filters = Annotated[dict[FilterKey, FilterValue], msgspec.Meta(max_length=MAX_FILTERS)]
BucketEdge = Annotated[str, msgspec.Meta(min_length=1, max_length=60)]
BucketEdges = Annotated[list[BucketEdge], msgspec.Meta(min_length=1, max_length=MAX_BUCKETS)]
TimeZoneName = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TIME_ZONE_LENGTH)]


class FunnelStep(msgspec.Struct, forbid_unknown_fields=True):
    """One step of a funnel: an activity type, and optionally conditions on its fields
    (``{"amount.gte": "1000"}``, as the activity log's ``field.`` parameters)."""

    type: CodeName
    filters: Filters = {}


class ReportDefinition(msgspec.Struct, forbid_unknown_fields=True):
    """A report: its kind, its days (``since`` to ``until``, both included, in ``time_zone``),
    its periods and its filters. Which options each kind takes is in docs/reports.md."""

    kind: ReportKind
    since: dt.date
    until: dt.date
    granularity: Granularity = "day"
    time_zone: TimeZoneName = "UTC"
    types: Annotated[list[CodeName], msgspec.Meta(max_length=MAX_LIST)] = []
    channels: Annotated[list[CodeName], msgspec.Meta(max_length=MAX_LIST)] = []
    group: CodeName | None = None
    filters: Filters = {}
    field: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None
    top: Annotated[int, msgspec.Meta(ge=1, le=MAX_TOP)] = 10
    # A breakdown's unique contacts per value: they need every activity read, while the
    # activities per value of a numeric field come from their daily counts (docs/reports.md).
    contacts: bool = False
    buckets: (
        Annotated[list[BucketEdge], msgspec.Meta(min_length=1, max_length=MAX_BUCKETS)] | None
    ) = None
    steps: Annotated[list[FunnelStep], msgspec.Meta(max_length=MAX_STEPS + 1)] = []
    window_days: Annotated[int, msgspec.Meta(ge=1, le=MAX_WINDOW_DAYS)] = 7


class ChartSeries(msgspec.Struct):
    """One series of a chart: a value per category (None where there is none)."""

    name: str
    values: list[float | None]


class ReportChart(msgspec.Struct):
    """What to draw: the style, the x labels and the series."""

    style: ChartStyle
    categories: list[str]
    series: list[ChartSeries]


class ReportResult(msgspec.Struct):
    """A report's answer: the definition it answers, what it read (``rollups``, ``activities``
    or ``memberships``), its numbers as a table (``columns`` and ``rows``; decimals as exact
    strings, counts as whole numbers) and its chart."""

    definition: ReportDefinition
    source: Source
    columns: list[str]
    rows: list[list[str | int | None]]
    chart: ReportChart


# What each kind takes besides the range, granularity, time zone and channels.
_TAKES: dict[str, frozenset[str]] = {
    "counts": frozenset({"types", "group", "filters"}),
    "breakdown": frozenset({"types", "group", "filters", "field", "top", "buckets", "contacts"}),
    "numeric": frozenset({"types", "group", "filters", "field"}),
    "funnel": frozenset({"group", "steps", "window_days"}),
    "group": frozenset({"group"}),
}
_DEFAULTS = ReportDefinition(kind="counts", since=dt.date(2000, 1, 1), until=dt.date(2000, 1, 1))
_OPTIONAL = ("types", "group", "filters", "field", "top", "buckets", "steps", "window_days")


def time_zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA time zone ``name``; ApiError (400, field ``time_zone``) if there is none."""
    if not 1 <= len(name) <= MAX_TIME_ZONE_LENGTH or "\x00" in name:
        raise invalid(
            "time_zone must be an IANA time zone name such as Europe/Prague.", "time_zone"
        )
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise invalid(
            f"{name!r} is not an IANA time zone name; use one such as UTC or Europe/Prague.",
            "time_zone",
        ) from None


def parse_edges(edges: list[str]) -> list[decimal.Decimal]:
    """Bucket edges as decimals, strictly increasing; ApiError (400) otherwise."""
    parsed: list[decimal.Decimal] = []
    for i, raw in enumerate(edges):
        where = f"buckets[{i}]"
        try:
            value = decimal.Decimal(raw)
        except decimal.InvalidOperation:
            raise invalid(f"{raw!r} is not a number; write it as 1000 or 12.5.", where) from None
        exponent = value.as_tuple().exponent
        if not isinstance(exponent, int) or value.adjusted() > 30 or exponent < -12:
            raise invalid(f"{raw!r} is out of range for a bucket edge.", where)
        if parsed and value <= parsed[-1]:
            raise invalid("Bucket edges must be in increasing order, each once.", where)
        parsed.append(value)
    return parsed


def check_definition(definition: ReportDefinition) -> None:
    """What can be checked without the data: the range, the time zone, the options the kind
    takes and needs. ApiError (400, ``invalid_field``) naming the field at fault."""
    d = definition
    if d.since < FIRST_DAY:
        raise invalid(f"since must be on or after {FIRST_DAY.isoformat()}.", "since")
    if d.until > LAST_DAY:
        raise invalid(f"until must be on or before {LAST_DAY.isoformat()}.", "until")
    if d.until < d.since:
        raise invalid("until must be on or after since.", "until")
    days = (d.until - d.since).days + 1
    if days > MAX_RANGE_DAYS:
        raise invalid(
            f"A report covers at most {MAX_RANGE_DAYS} days; this range has {days}.", "until"
        )
    time_zone(d.time_zone)
    takes = _TAKES[d.kind]
    for name in _OPTIONAL:
        if name not in takes and getattr(d, name) != getattr(_DEFAULTS, name):
            raise invalid(f"A {d.kind} report does not take {name}; leave it out.", name)
    if d.kind in ("breakdown", "numeric"):
        if len(d.types) != 1:
            raise invalid(f"A {d.kind} report is of exactly one activity type.", "types")
        if d.field is None:
            raise invalid(f"A {d.kind} report needs the field to report on.", "field")
    if d.buckets is not None:
        parse_edges(d.buckets)
    if d.kind == "funnel" and not MIN_STEPS <= len(d.steps) <= MAX_STEPS:
        raise invalid(
            f"A funnel has {MIN_STEPS} to {MAX_STEPS} steps; this one has {len(d.steps)}.",
            "steps",
        )
    if d.kind == "group" and d.group is None:
        raise invalid("A group report needs the group's code name.", "group")


def checked(definition: ReportDefinition) -> ReportDefinition:
    check_definition(definition)
    return definition


@dataclass(frozen=True)
class Period:
    """Days ``first`` to ``last`` (included) of a report, the part of one day, week (Monday
    to Sunday) or month within the report's range; ``start`` and ``end`` are the instants
    they span in the report's time zone, as UTC (end excluded)."""

    label: str
    first: dt.date
    last: dt.date
    start: dt.datetime
    end: dt.datetime


def period_start(day: dt.date, granularity: Granularity) -> dt.date:
    """The first day of the calendar period (day, ISO week, month) ``day`` is in."""
    if granularity == "week":
        return day - dt.timedelta(days=day.weekday())
    if granularity == "month":
        return day.replace(day=1)
    return day


def _next_start(start: dt.date, granularity: Granularity) -> dt.date:
    if granularity == "week":
        return start + dt.timedelta(days=7)
    if granularity == "month":
        return dt.date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return start + dt.timedelta(days=1)


def period_label(start: dt.date, granularity: Granularity) -> str:
    """``2026-03-01`` for a day, the Monday (``2026-02-23``) for a week, ``2026-03`` for a
    month."""
    return start.strftime("%Y-%m") if granularity == "month" else start.isoformat()


def midnight(day: dt.date, zone: dt.tzinfo) -> dt.datetime:
    """The instant ``day`` begins in ``zone``, in UTC. A day that begins in a DST gap begins
    at the first instant that exists (zoneinfo maps a missing wall time forward)."""
    local = dt.datetime(day.year, day.month, day.day, tzinfo=zone)
    return local.astimezone(dt.UTC)


def periods(
    since: dt.date, until: dt.date, granularity: Granularity, zone: dt.tzinfo
) -> list[Period]:
    """The periods of the range, in order; the first and last are cut to the range."""
    out: list[Period] = []
    start = period_start(since, granularity)
    while start <= until:
        nxt = _next_start(start, granularity)
        first = max(start, since)
        last = min(nxt - dt.timedelta(days=1), until)
        out.append(
            Period(
                period_label(start, granularity),
                first,
                last,
                midnight(first, zone),
                midnight(last + dt.timedelta(days=1), zone),
            )
        )
        start = nxt
    return out


def local_day(instant: dt.datetime, zone: dt.tzinfo) -> dt.date:
    """The day an instant falls on in ``zone``."""
    return instant.astimezone(zone).date()


def bucket_labels(edges: list[decimal.Decimal]) -> list[str]:
    """``[100, 500]`` -> ``under 100``, ``100 to under 500``, ``500 or more``."""
    text = [plain(edge) for edge in edges]
    labels = [f"under {text[0]}"]
    labels += [f"{low} to under {high}" for low, high in itertools.pairwise(text)]
    labels.append(f"{text[-1]} or more")
    return labels


def bucket_index(value: decimal.Decimal, edges: list[decimal.Decimal]) -> int:
    """Which bucket a value is in: 0 below the first edge, len(edges) at or above the last."""
    low, high = 0, len(edges)
    while low < high:
        mid = (low + high) // 2
        if value >= edges[mid]:
            low = mid + 1
        else:
            high = mid
    return low


def plain(value: decimal.Decimal) -> str:
    """A decimal in plain notation, without an exponent or trailing zeros after the point:
    ``Decimal("1.50E+3")`` -> ``1500``, ``Decimal("2.500")`` -> ``2.5``."""
    if value == 0:
        return "0"
    text = f"{value:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


AVERAGE_PLACES = 6
_CONTEXT = decimal.Context(prec=80, rounding=decimal.ROUND_HALF_EVEN)


def average(total: decimal.Decimal, count: int) -> decimal.Decimal:
    """``total / count`` rounded half to even to six places after the point."""
    quotient = _CONTEXT.divide(total, decimal.Decimal(count))
    return quotient.quantize(decimal.Decimal(1).scaleb(-AVERAGE_PLACES), context=_CONTEXT)


def median_microseconds(values: Sequence[int]) -> fractions.Fraction | None:
    """The median of whole microseconds (the mean of the middle two for an even count),
    exactly; None for none."""
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return fractions.Fraction(ordered[mid])
    return fractions.Fraction(ordered[mid - 1] + ordered[mid], 2)


def whole_seconds(microseconds: fractions.Fraction) -> int:
    """Microseconds as whole seconds, rounded half to even (exactly: 2.5 s is 2 s)."""
    return round(microseconds / 1_000_000)


def median_seconds(microseconds: Sequence[int]) -> int | None:
    """The median of durations given in whole microseconds, in whole seconds (the mean of
    the middle two for an even count, rounded half to even); None for none."""
    median = median_microseconds(microseconds)
    return None if median is None else whole_seconds(median)

"""Reports for the dashboard: activities per day and type, new contacts, rejected activities.

Every report covers the last ``days`` UTC days, today included (``days=1`` is today only), the
way a group's ``within_days`` does. Activity counts come from the counts per type and day,
never from the activities themselves, so a report over millions of activities reads a row per
type and day. Days
without anything are in the answer with zeros, so a chart has one bar per day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Annotated, Any

import msgspec
import sqlalchemy as sa
from sqlalchemy import ColumnElement, Connection

from waypost.clock import Clock, SystemClock
from waypost.domain.report_definitions import ReportDefinition, ReportResult
from waypost.services.report_funnels import funnel, group_report
from waypost.services.report_queries import breakdown, counts, numeric, resolve
from waypost.store import Store
from waypost.store.schema import (
    activity_daily_counts,
    activity_types,
    contacts,
    rejected_activities,
)

MAX_DAYS = 366
Days = Annotated[int, msgspec.Meta(ge=1, le=MAX_DAYS)]


class ReportQuery(msgspec.Struct, forbid_unknown_fields=True):
    """``days``: how many UTC days the report covers, today included."""

    days: Days = 30


class TypeTotal(msgspec.Struct):
    """An activity type and how many activities of it the report's days hold."""

    type: str
    name: str
    total: int


class DayTypes(msgspec.Struct):
    """One day's activities, per type code name (types without any are left out)."""

    day: dt.date
    total: int
    by_type: dict[str, int]


class ActivityReport(msgspec.Struct):
    """Activities per day and type; ``types`` from the most to the fewest activities."""

    since: dt.date
    until: dt.date
    total: int
    types: list[TypeTotal]
    days: list[DayTypes]


class DayCount(msgspec.Struct):
    day: dt.date
    count: int


class NewContactsReport(msgspec.Struct):
    """Contacts created per day (those later merged into another contact are left out)."""

    since: dt.date
    until: dt.date
    total: int
    days: list[DayCount]


class ReasonCount(msgspec.Struct):
    """``count`` rejected activities of one reason; ``replayed`` of them were stored since by a
    replay, the others are still waiting for theirs."""

    reason: str
    count: int
    replayed: int = 0


class RejectedReport(msgspec.Struct):
    """Rejected activities per reason, the most frequent first; ``replayed`` of the ``total``
    were stored since by a replay."""

    since: dt.date
    until: dt.date
    total: int
    reasons: list[ReasonCount]
    replayed: int = 0


def window(days: int, today: dt.date) -> tuple[dt.date, dt.date]:
    """The first and last day of a report over ``days`` days ending ``today`` (UTC)."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be from 1 to {MAX_DAYS}")
    return today - dt.timedelta(days=days - 1), today


def every_day(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def utc_day(conn: Connection, column: Any) -> ColumnElement[Any]:
    """The UTC day of a timestamp column, for GROUP BY; read it back with :func:`as_date`.

    SQLite keeps timestamps as naive UTC text, so ``date()`` is already the UTC day;
    PostgreSQL keeps ``timestamptz``, whose date depends on the session's time zone unless
    converted to UTC first.
    """
    if conn.dialect.name == "postgresql":
        return sa.cast(sa.func.timezone("UTC", column), sa.Date)
    return sa.func.date(column)


def as_date(value: object) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


def _between(column: Any, first: dt.date, last: dt.date) -> ColumnElement[bool]:
    return sa.and_(column >= day_start(first), column < day_start(last + dt.timedelta(days=1)))


def _per_day(rows: Iterable[Any], first: dt.date, last: dt.date) -> list[DayCount]:
    counts = {as_date(day): int(count) for day, count in rows}
    return [DayCount(day, counts.get(day, 0)) for day in every_day(first, last)]


class ReportService:
    """The dashboard's reports, read from the store."""

    def __init__(self, store: Store, clock: Clock | None = None) -> None:
        self.store = store
        self.clock = clock if clock is not None else SystemClock()

    def _window(self, days: int, today: dt.date | None) -> tuple[dt.date, dt.date]:
        return window(days, today or self.clock.now().date())

    def activities(self, days: int = 30, today: dt.date | None = None) -> ActivityReport:
        """Activities per day and type, from the counts per type and day."""
        first, last = self._window(days, today)
        r = activity_daily_counts
        stmt = (
            sa.select(r.c.day, r.c.type_id, sa.func.sum(r.c.count))
            .where(r.c.day >= first, r.c.day <= last)
            .group_by(r.c.day, r.c.type_id)
        )
        with self.store.read() as conn:
            rows = conn.execute(stmt).all()
            names = {
                row.id: (row.code_name, row.name)
                for row in conn.execute(
                    sa.select(
                        activity_types.c.id, activity_types.c.code_name, activity_types.c.name
                    )
                )
            }
        per_day: dict[dt.date, dict[str, int]] = {}
        totals: dict[str, int] = {}
        for day, type_id, count in rows:
            # A deleted type takes its counts with it; the lookup cannot miss.
            code, _ = names[type_id]
            by_type = per_day.setdefault(as_date(day), {})
            by_type[code] = by_type.get(code, 0) + int(count)
            totals[code] = totals.get(code, 0) + int(count)
        name_of = dict(names.values())
        types = [TypeTotal(code, name_of[code], total) for code, total in totals.items()]
        types.sort(key=lambda t: (-t.total, t.name.lower()))
        day_list = [
            DayTypes(day, sum(per_day.get(day, {}).values()), per_day.get(day, {}))
            for day in every_day(first, last)
        ]
        return ActivityReport(first, last, sum(totals.values()), types, day_list)

    def run(self, definition: ReportDefinition) -> ReportResult:
        """Any report a marketer builds (docs/reports.md); ApiError (400) for a definition
        that asks what cannot be answered."""
        kinds = {
            "counts": counts,
            "breakdown": breakdown,
            "numeric": numeric,
            "funnel": funnel,
            "group": group_report,
        }
        with self.store.read() as conn:
            return kinds[definition.kind](conn, resolve(conn, definition))

    def new_contacts(self, days: int = 30, today: dt.date | None = None) -> NewContactsReport:
        """Contacts created per day; a contact merged into another was the same person."""
        first, last = self._window(days, today)
        with self.store.read() as conn:
            day = utc_day(conn, contacts.c.created_at)
            rows = conn.execute(
                sa.select(day, sa.func.count())
                .where(_between(contacts.c.created_at, first, last))
                .where(contacts.c.merged_into.is_(None))
                .group_by(day)
            ).all()
        per_day = _per_day(rows, first, last)
        return NewContactsReport(first, last, sum(d.count for d in per_day), per_day)

    def rejected(self, days: int = 30, today: dt.date | None = None) -> RejectedReport:
        """Rejected activities received in the window, per reason."""
        first, last = self._window(days, today)
        ra = rejected_activities
        stmt = (
            sa.select(ra.c.reason, sa.func.count(), sa.func.count(ra.c.replayed_activity_id))
            .where(_between(ra.c.received_at, first, last))
            .group_by(ra.c.reason)
        )
        with self.store.read() as conn:
            reasons = [
                ReasonCount(reason, int(count), int(replayed))
                for reason, count, replayed in conn.execute(stmt)
            ]
        reasons.sort(key=lambda r: (-r.count, r.reason))
        total = sum(r.count for r in reasons)
        return RejectedReport(first, last, total, reasons, sum(r.replayed for r in reasons))

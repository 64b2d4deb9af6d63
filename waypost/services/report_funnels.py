"""Funnels and a group's membership over time (docs/reports.md).

A funnel starts, for each contact, at its first activity of step 1 in the range; each next
step is the contact's first activity of that step's type (and field filters) later than the
previous step's, and at most ``window_days`` after step 1 (it may fall after the range). A
step repeated is a second, later activity. The median time between steps is over the
contacts that reached the step.

A group's size at the end of each period is worked back from its kept member count and the
entries and exits recorded since (as services/group_history.py does per UTC day).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ColumnElement, Connection

from waypost.domain.field_filters import FieldFilter
from waypost.domain.report_definitions import (
    ChartSeries,
    ReportChart,
    ReportResult,
    median_seconds,
)
from waypost.services.report_queries import (
    Cell,
    Scope,
    activity_conditions,
    parse_field_filters,
    resolve_type,
    search_index,
    type_ids,
)
from waypost.store.schema import activities, contact_groups, group_membership_events
from waypost.store.type_fields import load_type_fields


def _window_end(first: Any, days: int, dialect: str) -> ColumnElement[Any]:
    """``first`` plus ``days`` days, in SQL. SQLite keeps times as fixed-width UTC text
    (``YYYY-MM-DD HH:MM:SS.ffffff``): the date and time moved on, the fraction kept."""
    if dialect == "sqlite":
        moved = sa.func.datetime(first, f"+{int(days)} days")
        return moved.op("||")(sa.func.substr(first, 20))
    interval = sa.literal(dt.timedelta(days=days), sa.Interval())
    return first + interval  # type: ignore[no-any-return]


def _of_type(type_id: uuid.UUID, dialect: str) -> ColumnElement[bool]:
    """An activity of the type, for a contact's next step. On SQLite the column is written
    ``+type_id``, which no index serves: without statistics SQLite may otherwise search the
    type's time index for every contact, reading the whole range each time, instead of the
    contact's own activities."""
    if dialect == "sqlite":
        column = sa.literal_column("+activities.type_id", activities.c.type_id.type)
        return column == type_id
    return activities.c.type_id == type_id


def _step_label(i: int, code: str, filters: dict[str, str]) -> str:
    conditions = ", ".join(f"{key}={value}" for key, value in filters.items())
    return f"{i + 1}. {code}" + (f" ({conditions})" if conditions else "")


def funnel(conn: Connection, scope: Scope) -> ReportResult:
    """Contacts per step, the share of step 1's, and the median seconds from the step before."""
    d = scope.definition
    dialect = conn.dialect.name
    codes = type_ids(conn)
    steps: list[tuple[uuid.UUID, list[FieldFilter]]] = []
    for i, step in enumerate(d.steps):
        ident = resolve_type(codes, step.type, f"steps[{i}].type")
        specs = load_type_fields(conn, [ident]).get(ident, [])
        steps.append((ident, parse_field_filters(specs, step.filters, f"steps[{i}].filters")))
    a = activities.c
    latest = scope.end + dt.timedelta(days=d.window_days)
    first_type, first_filters = steps[0]
    started = activity_conditions(scope, dialect, type_id=first_type, filters=first_filters)
    chain = [
        sa.select(a.contact_id.label("c"), sa.func.min(a.occurred_at).label("t0"))
        .where(*started)
        .group_by(a.contact_id)
        .cte("s0")
    ]
    for k, (ident, filters) in enumerate(steps[1:], start=1):
        prev = chain[-1]
        earlier = [prev.c[f"t{j}"] for j in range(k)]
        # The funnel's types are its steps' (it takes no ``types``): this step's type is added.
        later = activity_conditions(scope, dialect, filters=filters, end=latest, group=False)
        later.append(_of_type(ident, dialect))
        chain.append(
            sa.select(prev.c.c, *earlier, sa.func.min(a.occurred_at).label(f"t{k}"))
            .select_from(prev.join(activities, a.contact_id == prev.c.c))
            .where(
                *later,
                a.occurred_at > prev.c[f"t{k - 1}"],
                a.occurred_at <= _window_end(prev.c.t0, d.window_days, dialect),
            )
            .group_by(prev.c.c, *earlier)
            .cte(f"s{k}")
        )
    first_count = int(
        conn.execute(
            sa.select(sa.func.count(sa.distinct(a.contact_id))).where(*started)
        ).scalar_one()
    )
    reached = chain[1]
    joined: Any = reached
    times = [reached.c.t0, reached.c.t1]
    for cte in chain[2:]:
        joined = joined.outerjoin(cte, cte.c.c == reached.c.c)
        times.append(cte.c[f"t{len(times)}"])
    counts = [first_count] + [0] * (len(steps) - 1)
    gaps: list[list[float]] = [[] for _ in steps]
    for row in conn.execute(sa.select(*times).select_from(joined)):
        for k in range(1, len(steps)):
            if row[k] is None:
                break
            counts[k] += 1
            gaps[k].append((row[k] - row[k - 1]).total_seconds())
    labels = [_step_label(i, step.type, step.filters) for i, step in enumerate(d.steps)]
    columns = ["step", "contacts", "% of step 1", "median seconds from the step before"]
    rows: list[list[Cell]] = []
    for k, label in enumerate(labels):
        share = f"{100 * counts[k] / first_count:.1f}" if first_count else None
        rows.append([label, counts[k], share, median_seconds(gaps[k]) if k else None])
    chart = ReportChart("funnel", labels, [ChartSeries("contacts", [float(n) for n in counts])])
    return ReportResult(d, "activities", columns, rows, chart)


def group_report(conn: Connection, scope: Scope) -> ReportResult:
    """A group's members at the end of each period, and how many entered and left in it."""
    d = scope.definition
    assert scope.group_id is not None  # a group report names its group (checked)
    e = group_membership_events.c
    starts = [p.start for p in scope.periods[1:]]
    inner = (
        sa.select(search_index(e.at, [*starts, scope.end]).label("p"), e.entered)
        .where(e.group_id == scope.group_id, e.at >= scope.start)
        .subquery()
    )
    entered = sa.func.sum(sa.case((inner.c.entered, 1), else_=0))
    left = sa.func.sum(sa.case((inner.c.entered, 0), else_=1))
    rows_found = conn.execute(sa.select(inner.c.p, entered, left).group_by(inner.c.p)).all()
    current = conn.execute(
        sa.select(contact_groups.c.member_count).where(contact_groups.c.id == scope.group_id)
    ).scalar_one()
    moves = {int(p): (int(i or 0), int(o or 0)) for p, i, o in rows_found}
    # Index len(periods) holds what happened after the range.
    came, went = moves.get(len(scope.periods), (0, 0))
    members = int(current) - came + went
    sizes: list[int] = []
    for i in reversed(range(len(scope.periods))):
        # Two statements read the count and the events; a change committed between them
        # must not show as a negative count.
        sizes.append(max(members, 0))
        came, went = moves.get(i, (0, 0))
        members = members - came + went
    sizes.reverse()
    columns = ["period", "members", "entered", "left"]
    rows: list[list[Cell]] = []
    for i, period in enumerate(scope.periods):
        came, went = moves.get(i, (0, 0))
        rows.append([period.label, sizes[i], came, went])
    chart = ReportChart(
        "line",
        [p.label for p in scope.periods],
        [
            ChartSeries("members", [float(n) for n in sizes]),
            ChartSeries("entered", [float(r[2] or 0) for r in rows]),
            ChartSeries("left", [float(r[3] or 0) for r in rows]),
        ],
    )
    return ReportResult(d, "memberships", columns, rows, chart)

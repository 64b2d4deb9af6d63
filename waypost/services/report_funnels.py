"""Funnels and a group's membership over time (docs/reports.md).

A funnel starts, for each contact, at its first activity of step 1 in the range; each next
step is the contact's first activity of that step's type (and field filters) later than the
previous step's, and at most ``window_days`` after step 1 (it may fall after the range). A
step repeated is a second, later activity. The median time between steps is over the
contacts that reached the step.

The whole funnel is one statement, and the times between steps are worked out in it, in
whole microseconds. Step 1 is each contact's first activity of its type in the range. On
SQLite it is one pass over the contacts (read in contact order from the index on contact and
time when step 1's type is a large share of the activities, else from the index on type and
time and sorted): right after a contact's step 1, one search of its own activities finds step
2, and within it one finds step 3, and so on; the statement answers one row, the step-1 count
and a JSON array of the gaps of the contacts that reached step 2. A funnel whose step 1 has
many activities is read in two parts at once, the contacts below and above a contact id, one
in a second process (waypost/store/sqlite_reader.py), and the counts and gaps of both make the
answer. On PostgreSQL step 1 comes from the index on type and time, the next steps are joins,
and the counts and medians come from the database.

A group's size at the end of each period is worked back from its kept member count and the
entries and exits recorded since (as services/group_history.py does per UTC day).
"""

from __future__ import annotations

import datetime as dt
import fractions
import logging
import uuid
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy import ColumnElement, Connection
from sqlalchemy.sql.util import ClauseAdapter

from waypost.domain.field_filters import FieldFilter
from waypost.domain.report_definitions import (
    ChartSeries,
    ReportChart,
    ReportResult,
    median_microseconds,
    whole_seconds,
)
from waypost.services.activities import field_condition
from waypost.services.report_queries import (
    Cell,
    Scope,
    activity_conditions,
    parse_field_filters,
    resolve_type,
    search_index,
    type_ids,
)
from waypost.store.schema import (
    activities,
    activity_daily_counts,
    contact_groups,
    group_membership_events,
)
from waypost.store.sqlite_reader import SecondReader, WorkerError, driver_statement, sqlite_file
from waypost.store.type_fields import load_type_fields

log = logging.getLogger(__name__)

# From how many step-1 activities in the range a funnel on SQLite is read in two parts at once:
# below, starting the second process costs more than it saves (a few tens of milliseconds).
SPLIT_FROM = 100_000
# Where the contacts are split: the median contact of step-1 activities read at this many
# instants spread over the range, this many at each.
SAMPLE_INSTANTS = 16
SAMPLE_SIZE = 64
# On SQLite, step 1 is read in contact order, from the contacts' index, when its type has at
# least this share of all activities: that reads every activity of the contacts (about
# 0.17 µs an index entry), against about 0.5 µs a step-1 activity for reading the type's
# index and sorting by contact, measured on 10M activities (docs/performance.md).
CONTACT_ORDER_SHARE = fractions.Fraction(1, 6)
# A part's gaps: per contact that reached step 2, the microseconds between its steps, one
# contact after the other in one flat array.
_GAPS = msgspec.json.Decoder(list[int | None])

Step = tuple[uuid.UUID, list[FieldFilter]]


def _window_end(first: Any, days: int, dialect: str) -> ColumnElement[Any]:
    """``first`` plus ``days`` days, in SQL. SQLite keeps times as fixed-width UTC text
    (``YYYY-MM-DD HH:MM:SS.ffffff``): the date and time moved on, the fraction kept."""
    if dialect == "sqlite":
        moved = sa.func.datetime(first, f"+{int(days)} days")
        return moved.op("||")(sa.func.substr(first, 20))
    interval = sa.literal(dt.timedelta(days=days), sa.Interval())
    return first + interval  # type: ignore[no-any-return]


# The Julian day of 1970-01-01 00:00 UTC.
UNIX_EPOCH_JULIAN_DAY = 2440587.5


def _microseconds(time: Any) -> ColumnElement[int]:
    """A SQLite time (fixed-width UTC text) as whole microseconds since 1970, exactly: the
    whole seconds from julianday() of the text without its fraction (a float within 0.0001 s
    of a whole second for any year, so rounding makes it exact; julianday() would round the
    fraction to the millisecond), the microseconds from the text. julianday() rather than
    strftime('%s'), which formats text to be read back: a quarter less work per time."""
    days = sa.func.julianday(sa.func.substr(time, 1, 19)) - UNIX_EPOCH_JULIAN_DAY
    seconds = sa.cast(sa.func.round(days * 86400), sa.BigInteger)
    return seconds * 1_000_000 + sa.cast(sa.func.substr(time, 21, 6), sa.BigInteger)


def _gap(later: Any, earlier: Any, dialect: str) -> ColumnElement[int]:
    """The whole microseconds from ``earlier`` to ``later``, in SQL (NULL if either is)."""
    if dialect == "sqlite":
        return _microseconds(later) - _microseconds(earlier)
    seconds = sa.extract("epoch", later - earlier)  # NUMERIC since PostgreSQL 14: exact
    return sa.cast(seconds * 1_000_000, sa.BigInteger)


def _of_type(type_id: uuid.UUID, dialect: str, table: Any = activities) -> ColumnElement[bool]:
    """An activity of the type, for a contact's next step. On SQLite the column is written
    ``+type_id``, which no index serves: without statistics SQLite may otherwise search the
    type's time index for every contact, reading the whole range each time, instead of the
    contact's own activities."""
    if dialect == "sqlite":
        column = sa.literal_column(f"+{table.name}.type_id", activities.c.type_id.type)
        return column == type_id
    return table.c.type_id == type_id  # type: ignore[no-any-return]


def _step_label(i: int, code: str, filters: dict[str, str]) -> str:
    conditions = ", ".join(f"{key}={value}" for key, value in filters.items())
    return f"{i + 1}. {code}" + (f" ({conditions})" if conditions else "")


def _started(
    scope: Scope,
    dialect: str,
    step: Step,
    low: uuid.UUID | None,
    high: uuid.UUID | None,
    since: dt.datetime | None = None,
    by_contact: bool = False,
) -> list[ColumnElement[bool]]:
    """The step-1 activities of the range (from ``since`` if given), of the contacts from
    ``low`` to before ``high``; ``by_contact``: found through the contacts' index."""
    a = activities.c
    where = activity_conditions(
        scope, dialect, type_id=step[0], filters=step[1], start=since, unindexed=by_contact
    )
    if low is not None:
        where.append(a.contact_id >= low)
    if high is not None:
        where.append(a.contact_id < high)
    return where


def _next_steps(
    scope: Scope, steps: list[Step], s0: Any, k: int, previous: Any
) -> sa.ScalarSelect[Any]:
    """SQLite: step ``k`` of the contact of ``s0``, one search of the contact's activities
    (ordered by time, the first that fits ends it) later than ``previous`` (the step before's
    time), within the window of step 1. Its value is text: the microseconds from the step
    before, then, after a comma, those of the next steps (``null`` for a step not reached);
    NULL if the contact did not reach step ``k``. The next step's search is within this one,
    so that it reads the contact's index entries this one has just read."""
    ident, filters = steps[k]
    x = activities.alias(f"x{k}")
    on_x = ClauseAdapter(x).traverse
    where: list[ColumnElement[bool]] = [
        x.c.contact_id == s0.c.c,
        _of_type(ident, "sqlite", x),
        x.c.occurred_at > previous,
        x.c.occurred_at <= _window_end(s0.c.t0, scope.definition.window_days, "sqlite"),
    ]
    if scope.channel_ids:
        where.append(x.c.channel_id.in_(scope.channel_ids))
    where += [on_x(field_condition(f, "sqlite")) for f in filters]
    value: Any = sa.cast(_gap(x.c.occurred_at, previous, "sqlite"), sa.Text)
    if k + 1 < len(steps):
        later = _next_steps(scope, steps, s0, k + 1, x.c.occurred_at)
        missed = ",".join(["null"] * (len(steps) - k - 1))
        value = value.op("||")(",").op("||")(sa.func.coalesce(later, missed))
    return (
        sa.select(sa.type_coerce(value, sa.String))
        .where(*where)
        .correlate(s0, *([] if k == 1 else [previous.table]))
        .order_by(x.c.occurred_at)
        .limit(1)
        .scalar_subquery()
    )


def _sqlite_statement(
    scope: Scope,
    steps: list[Step],
    low: uuid.UUID | None = None,
    high: uuid.UUID | None = None,
    *,
    by_contact: bool = False,
) -> sa.Select[Any]:
    """The funnel of the contacts from ``low`` to before ``high`` (all without them), as one
    row: the step-1 count, and a JSON array with, per contact that reached step 2, the
    microseconds from each step to the next (``null`` from a step it did not reach), one
    contact after the other (as many numbers each as the funnel has steps after the first);
    NULL for none.

    Step 1 is read from the type's time index and grouped by contact (a sort), or, with
    ``by_contact``, from the contacts' own index in contact order (every activity of the
    contacts read, no sort): then each contact's next steps are searched right after its
    step 1, in index pages just read. One pass either way: nothing is kept in between."""
    a = activities
    started = (
        sa.select(a.c.contact_id.label("c"), sa.func.min(a.c.occurred_at).label("t0"))
        .where(*_started(scope, "sqlite", steps[0], low, high, by_contact=by_contact))
        .group_by(a.c.contact_id)
    )
    s0 = started.cte("s0")
    joined = sa.func.group_concat(_next_steps(scope, steps, s0, 1, s0.c.t0), ",")
    return sa.select(sa.func.count(), sa.literal("[").op("||")(joined).op("||")("]")).select_from(
        s0
    )


def _by_contact(conn: Connection, scope: Scope, step: Step) -> bool:
    """Whether step 1 is read in contact order: when it filters on no field (a filter on the
    primary field has an index of its own) and its type had, by the counts per type and UTC
    day, at least ``CONTACT_ORDER_SHARE`` of all activities in the range's days."""
    if step[1]:
        return False
    d = activity_daily_counts.c
    days = [d.day >= scope.start.date(), d.day <= scope.end.date()]
    of_type = sa.select(sa.func.coalesce(sa.func.sum(d.count), 0)).where(
        d.type_id == step[0], *days
    )
    every = sa.select(sa.func.coalesce(sa.func.sum(d.count), 0))
    found, total = conn.execute(sa.select(of_type.scalar_subquery(), every.scalar_subquery())).one()
    return bool(total) and fractions.Fraction(int(found), int(total)) >= CONTACT_ORDER_SHARE


def _split_point(conn: Connection, scope: Scope, step: Step, split_from: int) -> uuid.UUID | None:
    """Where to split the contacts of a funnel in two about equal parts; None if step 1 has
    fewer than ``split_from`` activities in the range (one reader is then quicker)."""
    a = activities.c
    started = _started(scope, "sqlite", step, None, None)
    probe = sa.select(sa.literal(1)).where(*started).limit(split_from).subquery()
    if conn.execute(sa.select(sa.func.count()).select_from(probe)).scalar_one() < split_from:
        return None
    span = scope.end - scope.start
    sampled: list[uuid.UUID] = []
    for i in range(SAMPLE_INSTANTS):
        at = scope.start + span * i / SAMPLE_INSTANTS
        sampled += conn.execute(
            sa.select(a.contact_id)
            .where(*_started(scope, "sqlite", step, None, None, since=at))
            .order_by(a.occurred_at)
            .limit(SAMPLE_SIZE)
        ).scalars()
    sampled.sort()
    return sampled[len(sampled) // 2] if sampled else None


def _read_here(conn: Connection, statement: sa.Select[Any]) -> list[Any]:
    # The driver's statement, as the second reader runs it: the same SQL and values.
    sql, params = driver_statement(statement, conn.dialect)
    return list(conn.exec_driver_sql(sql, tuple(params)))


def _read_in_two(
    conn: Connection, path: str, below: sa.Select[Any], above: sa.Select[Any]
) -> list[Any]:
    """The rows of ``below``, read by a second process, and of ``above``, read here, at the
    same time. Should the second process fail, its part is read here after this one: the
    report is slower, not wrong."""
    try:
        reader = SecondReader(path)
    except OSError as exc:
        log.warning("funnel: no second reader (%s); reading both parts here", exc)
        return _read_here(conn, above) + _read_here(conn, below)
    with reader:
        try:
            reader.start(*driver_statement(below, conn.dialect))
        except WorkerError as exc:
            log.warning("funnel: the second reader did not start (%s); reading here", exc)
            return _read_here(conn, above) + _read_here(conn, below)
        rows = _read_here(conn, above)
        try:
            return rows + reader.rows()
        except WorkerError as exc:
            log.warning("funnel: the second reader failed (%s); reading its part here", exc)
    return rows + _read_here(conn, below)


def _sqlite_funnel(
    conn: Connection, scope: Scope, steps: list[Step], split_from: int
) -> tuple[list[int], list[fractions.Fraction | None]]:
    """Contacts per step and the median microseconds from the step before, read in one part,
    or in two at once (the contacts below the split point in a second process)."""
    path = sqlite_file(conn.engine.url)
    middle = _split_point(conn, scope, steps[0], split_from) if path is not None else None
    by_contact = _by_contact(conn, scope, steps[0])
    if path is None or middle is None:
        rows = _read_here(conn, _sqlite_statement(scope, steps, by_contact=by_contact))
    else:
        below = _sqlite_statement(scope, steps, high=middle, by_contact=by_contact)
        above = _sqlite_statement(scope, steps, low=middle, by_contact=by_contact)
        rows = _read_in_two(conn, path, below, above)
    counts = [sum(int(row[0]) for row in rows)]
    reached: list[int | None] = []
    for row in rows:
        if row[1] is not None:
            reached += _GAPS.decode(row[1])
    after = len(steps) - 1  # numbers per contact
    medians: list[fractions.Fraction | None] = [None]
    for k in range(1, len(steps)):
        gaps = [gap for gap in reached[k - 1 :: after] if gap is not None]
        counts.append(len(gaps))
        medians.append(median_microseconds(gaps))
    return counts, medians


def _postgres_funnel(
    conn: Connection, scope: Scope, steps: list[Step]
) -> tuple[list[int], list[fractions.Fraction | None]]:
    """Contacts per step and the median microseconds from the step before, all counted by the
    database: each next step a join of the contacts that reached the step before with the
    activities of the step's type within the range and the window (a hash join)."""
    a = activities.c
    d = scope.definition
    latest = scope.end + dt.timedelta(days=d.window_days)
    s0 = (
        sa.select(a.contact_id.label("c"), sa.func.min(a.occurred_at).label("t0"))
        .where(*_started(scope, "postgresql", steps[0], None, None))
        .group_by(a.contact_id)
        .cte("s0")
    )
    chain = [s0]
    for k, (ident, filters) in enumerate(steps[1:], start=1):
        prev = chain[-1]
        earlier = [prev.c[f"t{j}"] for j in range(k)]
        # The funnel's types are its steps' (it takes no ``types``): this step's type is added.
        later = activity_conditions(scope, "postgresql", filters=filters, end=latest, group=False)
        later.append(_of_type(ident, "postgresql"))
        chain.append(
            sa.select(prev.c.c, *earlier, sa.func.min(a.occurred_at).label(f"t{k}"))
            .select_from(prev.join(activities, a.contact_id == prev.c.c))
            .where(
                *later,
                a.occurred_at > prev.c[f"t{k - 1}"],
                a.occurred_at <= _window_end(prev.c.t0, d.window_days, "postgresql"),
            )
            .group_by(prev.c.c, *earlier)
            .cte(f"s{k}")
        )
    reached = chain[1]
    joined: Any = reached
    times = [reached.c.t0, reached.c.t1]
    for cte in chain[2:]:
        joined = joined.outerjoin(cte, cte.c.c == reached.c.c)
        times.append(cte.c[f"t{len(times)}"])
    gaps = (
        sa.select(
            *[
                _gap(times[k], times[k - 1], "postgresql").label(f"g{k}")
                for k in range(1, len(steps))
            ]
        )
        .select_from(joined)
        .subquery()
    )
    columns: list[Any] = [sa.select(sa.func.count()).select_from(s0).scalar_subquery()]
    for k in range(1, len(steps)):
        gap = gaps.c[f"g{k}"]
        # In float8, exact: the gaps are whole microseconds (far below 2**53) and the mean of
        # the middle two is a multiple of a half.
        columns += [sa.func.count(gap), sa.func.percentile_cont(0.5).within_group(gap)]
    # The planner's cost makes PostgreSQL compile this statement (JIT): half a second on a
    # month of 10M activities, for a statement that runs once. For this transaction only.
    conn.exec_driver_sql("SET LOCAL jit = off")
    row = conn.execute(sa.select(*columns).select_from(gaps)).one()
    counts = [int(row[0])] + [int(row[2 * k - 1]) for k in range(1, len(steps))]
    medians: list[fractions.Fraction | None] = [None]
    for k in range(1, len(steps)):
        value = row[2 * k]
        medians.append(None if value is None else fractions.Fraction(value))
    return counts, medians


def funnel(conn: Connection, scope: Scope, *, split_from: int = SPLIT_FROM) -> ReportResult:
    """Contacts per step, the share of step 1's, and the median seconds from the step before.
    ``split_from``: from how many step-1 activities a funnel on SQLite is read in two parts."""
    d = scope.definition
    dialect = conn.dialect.name
    codes = type_ids(conn)
    steps: list[Step] = []
    for i, step in enumerate(d.steps):
        ident = resolve_type(codes, step.type, f"steps[{i}].type")
        specs = load_type_fields(conn, [ident]).get(ident, [])
        steps.append((ident, parse_field_filters(specs, step.filters, f"steps[{i}].filters")))
    if dialect == "sqlite":
        counts, medians = _sqlite_funnel(conn, scope, steps, split_from)
    else:
        counts, medians = _postgres_funnel(conn, scope, steps)
    labels = [_step_label(i, step.type, step.filters) for i, step in enumerate(d.steps)]
    columns = ["step", "contacts", "% of step 1", "median seconds from the step before"]
    rows: list[list[Cell]] = []
    for k, label in enumerate(labels):
        share = f"{100 * counts[k] / counts[0]:.1f}" if counts[0] else None
        median = medians[k]
        rows.append([label, counts[k], share, None if median is None else whole_seconds(median)])
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

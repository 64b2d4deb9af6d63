"""Writing group membership: the full computation of a group and the incremental update of
some contacts, with every entry and exit recorded.

A full computation keeps the work in the database: the members the condition selects go to a
temporary table, and entries, exits and their events are each one INSERT ... SELECT or DELETE
against it, so a group of a million contacts never travels through Python. An incremental
update evaluates the groups for a few contacts, and only the groups the change concerns
(see ``PlannedGroup.affected``).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from graphlib import TopologicalSorter
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from waypost.domain.conditions import Changes, Condition, dependencies, parse_condition
from waypost.domain.triggers import MembershipChanged
from waypost.services.group_sql import (
    CompileError,
    ConditionCatalog,
    Context,
    catalog_version,
    load_condition_catalog,
    members_select,
)
from waypost.store import Change, emit
from waypost.store.schema import contact_groups, group_members, group_membership_events

log = logging.getLogger("waypost.groups")

# The members a full computation selects, before they are compared with the kept ones.
_selected = sa.Table(
    "waypost_group_selected",
    sa.MetaData(),
    sa.Column("contact_id", sa.Uuid(), primary_key=True),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)


# The contacts an incremental update evaluates: statements are built once per plan with it,
# so that each update only binds its contacts to an already compiled statement.
SOME = sa.bindparam("some", expanding=True, type_=sa.Uuid())

_kept_some = sa.select(group_members.c.contact_id).where(
    group_members.c.group_id == sa.bindparam("group", type_=sa.Uuid()),
    group_members.c.contact_id.in_(SOME),
)


@dataclass(frozen=True)
class PlannedGroup:
    """A group, its parsed condition, what the condition reads, and the statement that
    evaluates it for some contacts (None if it cannot be compiled any more)."""

    id: uuid.UUID
    condition: Condition
    type_ids: frozenset[uuid.UUID]
    contact_fields: bool
    consents: bool
    groups: frozenset[uuid.UUID]
    some: sa.Select[Any] | None

    def affected(self, changes: Changes, changed_groups: set[uuid.UUID]) -> bool:
        """Whether ``changes`` (and the groups whose members changed so far) can change this
        group's members."""
        return (
            changes.everything
            or bool(self.type_ids & changes.types)
            or (self.contact_fields and changes.contact_fields)
            or (self.consents and changes.consents)
            or bool(self.groups & changed_groups)
        )


@dataclass(frozen=True)
class GroupPlan:
    """Every group, those another group refers to first, compiled for one day's windows."""

    version: tuple[object, ...]
    today: dt.date
    catalog: ConditionCatalog
    groups: tuple[PlannedGroup, ...]


def build_plan(conn: Connection, version: tuple[object, ...], today: dt.date) -> GroupPlan:
    catalog = load_condition_catalog(conn)
    ctx = catalog.context(today, conn.dialect.name, SOME)
    # In the order of their ids, not as the database lists them (on PostgreSQL, a written
    # count moves a row): every node then writes the groups' counts in one order, and two
    # nodes' updates never each hold a group's row the other waits for.
    rows = {
        r.id: parse_condition(r.condition)
        for r in conn.execute(
            sa.select(contact_groups.c.id, contact_groups.c.condition).order_by(contact_groups.c.id)
        )
    }
    deps = {gid: dependencies(cond) for gid, cond in rows.items()}
    order = TopologicalSorter({gid: d.groups for gid, d in deps.items()}).static_order()
    planned = []
    for gid in order:
        if gid not in rows:
            continue
        d = deps[gid]
        type_ids = frozenset(
            ref.id
            for code in d.types
            if (ref := catalog.types.get(code)) is not None and ref.id is not None
        )
        try:
            some: sa.Select[Any] | None = members_select(rows[gid], ctx)
        except CompileError as exc:
            # E.g. a filter on a field its type no longer has; the group keeps its members
            # until its condition is changed.
            log.warning("group %s cannot be evaluated: %s", gid, exc)
            some = None
        planned.append(
            PlannedGroup(gid, rows[gid], type_ids, d.contact_fields, d.consents, d.groups, some)
        )
    return GroupPlan(version, today, catalog, tuple(planned))


# What a plan is compiled from.
PLANNED_KINDS = frozenset({"activity_type", "consent", "group"})


class GroupPlanCache:
    """The plan of one process, rebuilt only when a type, consent or group changed."""

    def __init__(self) -> None:
        self._plan: GroupPlan | None = None
        self._lock = threading.Lock()

    def changed(self, change: Change) -> None:
        """A change feed's subscriber: drop the plan when what it is compiled from changed."""
        if change.kind in PLANNED_KINDS:
            with self._lock:
                self._plan = None

    def get(self, conn: Connection, today: dt.date) -> GroupPlan:
        # The version is still checked: a change the feed did not carry (one made in another
        # process on the same database) must not leave a stale plan evaluating groups.
        version = catalog_version(conn)
        with self._lock:
            plan = self._plan
        if plan is None or plan.version != version or plan.today != today:
            plan = build_plan(conn, version, today)
            with self._lock:
                self._plan = plan
        return plan


def evaluate(
    conn: Connection, group: PlannedGroup, contact_ids: list[uuid.UUID]
) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
    """The contacts of ``contact_ids`` that would enter and leave the group."""
    if group.some is None:
        return set(), set()
    new = set(conn.execute(group.some, {"some": contact_ids}).scalars())
    current = set(conn.execute(_kept_some, {"group": group.id, "some": contact_ids}).scalars())
    return new - current, current - new


def apply_some(
    conn: Connection,
    group_id: uuid.UUID,
    entered: set[uuid.UUID],
    left: set[uuid.UUID],
    now: dt.datetime,
) -> int:
    """Write entries and exits found by ``evaluate``, as of ``now``, and emit them as
    MembershipChanged events; the number of changes."""
    if not entered and not left:
        return 0
    _emit_moves(conn, group_id, entered, left, now)
    if entered:
        conn.execute(
            group_members.insert(),
            [{"group_id": group_id, "contact_id": c, "since": now} for c in sorted(entered)],
        )
    if left:
        conn.execute(
            group_members.delete().where(
                group_members.c.group_id == group_id, group_members.c.contact_id.in_(left)
            )
        )
    conn.execute(
        group_membership_events.insert(),
        [
            {"group_id": group_id, "contact_id": c, "entered": c in entered, "at": now}
            for c in sorted(entered | left)
        ],
    )
    conn.execute(
        contact_groups.update()
        .where(contact_groups.c.id == group_id)
        .values(member_count=contact_groups.c.member_count + len(entered) - len(left))
    )
    return len(entered) + len(left)


def _emit_moves(
    conn: Connection,
    group_id: uuid.UUID,
    entered: Iterable[uuid.UUID],
    left: Iterable[uuid.UUID],
    now: dt.datetime,
) -> None:
    if came := frozenset(entered):
        emit(conn, MembershipChanged(group_id, came, True, now))
    if went := frozenset(left):
        emit(conn, MembershipChanged(group_id, went, False, now))


def recompute_all(
    conn: Connection,
    group_id: uuid.UUID,
    condition: Condition,
    ctx: Context,
    now: dt.datetime,
    listened: bool = False,
) -> int:
    """Compute the group in full and write the difference, as of ``now``; the number of
    changes. With ``listened`` (a playbook fires on the group's entries or exits), the
    contacts that entered and left are read back and emitted as MembershipChanged events;
    without, they never leave the database."""
    assert ctx.only is None
    schema = "temp" if conn.dialect.name == "sqlite" else "pg_temp"
    # A recomputation earlier in the same transaction left it (PostgreSQL drops it at commit).
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {schema}.{_selected.name}")
    _selected.create(conn)
    try:
        conn.execute(_selected.insert().from_select(["contact_id"], members_select(condition, ctx)))
        if listened:
            _emit_moves(conn, group_id, *_difference(conn, group_id), now)
        return _write_difference(conn, group_id, now)
    finally:
        if conn.dialect.name == "sqlite":
            _selected.drop(conn)


def _difference(conn: Connection, group_id: uuid.UUID) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """The contacts a full computation is about to add and remove, before it writes."""
    m, s = group_members, _selected
    kept = sa.exists().where(m.c.group_id == group_id, m.c.contact_id == s.c.contact_id)
    gone = ~sa.exists().where(s.c.contact_id == m.c.contact_id)
    entered = conn.execute(sa.select(s.c.contact_id).where(~kept)).scalars().all()
    left = (
        conn.execute(sa.select(m.c.contact_id).where(m.c.group_id == group_id, gone))
        .scalars()
        .all()
    )
    return list(entered), list(left)


def _write_difference(conn: Connection, group_id: uuid.UUID, now: dt.datetime) -> int:
    m, s, e = group_members, _selected, group_membership_events
    group = sa.literal(group_id, sa.Uuid())
    kept = sa.exists().where(m.c.group_id == group_id, m.c.contact_id == s.c.contact_id)
    gone = ~sa.exists().where(s.c.contact_id == m.c.contact_id)
    columns = ["group_id", "contact_id", "entered", "at"]
    at = sa.literal(now, e.c.at.type)
    entered = conn.execute(
        e.insert().from_select(
            columns,
            sa.select(group, s.c.contact_id, sa.true(), at).where(~kept).order_by(s.c.contact_id),
        )
    ).rowcount
    left = conn.execute(
        e.insert().from_select(
            columns,
            sa.select(group, m.c.contact_id, sa.false(), at)
            .where(m.c.group_id == group_id, gone)
            .order_by(m.c.contact_id),
        )
    ).rowcount
    if left:
        conn.execute(m.delete().where(m.c.group_id == group_id, gone))
    if entered:
        conn.execute(
            m.insert().from_select(
                ["group_id", "contact_id", "since"],
                sa.select(group, s.c.contact_id, sa.literal(now, m.c.since.type)).where(~kept),
            )
        )
    return int(entered) + int(left)

"""One contact against one group: the kept membership now or at a past moment (a check), and
which parts of the condition hold for the contact and which activities counted (an
explanation).

A check reads what was recorded and recomputes nothing: the kept members for now, the entries
and exits for a past moment. An explanation evaluates every node of the condition for the
contact, against the activity types of today.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy import Connection

from waypost.domain.conditions import ActivityCondition, All, AnyOf, Condition, Not
from waypost.services.group_sql import Context, day_start, field_conditions, members_select
from waypost.store.schema import activities, group_members, group_membership_events

# Enough to see why a count was reached, few enough for one answer.
NEWEST = 100


class CheckQuery(msgspec.Struct, forbid_unknown_fields=True):
    """``at``: answer for that moment (ISO 8601 with an offset) instead of now."""

    at: dt.datetime | None = None


class Membership(msgspec.Struct):
    """A contact's membership of a group, now or at ``at``."""

    group: uuid.UUID
    contact: uuid.UUID
    member: bool
    since: dt.datetime | None
    at: dt.datetime | None = None


class Explanation(msgspec.Struct):
    """One node of a condition and whether it held for the contact; activity conditions also
    give the count and the activities that counted (at most 100, newest first)."""

    condition: dict[str, Any]
    held: bool
    count: int | None = None
    activities: list[uuid.UUID] | None = None
    children: list[Explanation] | None = None


class Explained(msgspec.Struct):
    """A contact's membership of a group, worked out node by node."""

    group: uuid.UUID
    contact: uuid.UUID
    member: bool
    explanation: Explanation


def membership(
    conn: Connection, group_id: uuid.UUID, contact_id: uuid.UUID, at: dt.datetime | None
) -> Membership:
    """The kept membership now (``at`` None), or the last entry or exit up to ``at``."""
    if at is None:
        since = conn.execute(
            sa.select(group_members.c.since).where(
                group_members.c.group_id == group_id,
                group_members.c.contact_id == contact_id,
            )
        ).scalar_one_or_none()
        return Membership(group_id, contact_id, since is not None, since)
    e = group_membership_events
    last = conn.execute(
        sa.select(e.c.entered, e.c.at)
        .where(e.c.group_id == group_id, e.c.contact_id == contact_id, e.c.at <= at)
        .order_by(e.c.at.desc(), e.c.seq.desc())
        .limit(1)
    ).first()
    member = last is not None and bool(last.entered)
    return Membership(group_id, contact_id, member, last.at if member and last else None, at)


def explain(
    conn: Connection,
    condition: Condition,
    raw: dict[str, Any],
    ctx: Context,
    contact_id: uuid.UUID,
) -> Explanation:
    """Whether ``condition`` (parsed from ``raw``) holds for the contact, and each of its
    parts, with ``ctx`` checked for the condition already."""
    held = conn.execute(members_select(condition, ctx)).first() is not None
    node = Explanation(condition=raw, held=held)
    if isinstance(condition, All | AnyOf):
        key = "all" if isinstance(condition, All) else "any"
        node.children = [
            explain(conn, item, item_raw, ctx, contact_id)
            for item, item_raw in zip(condition.items, raw[key], strict=True)
        ]
    elif isinstance(condition, Not):
        node.children = [explain(conn, condition.item, raw["not"], ctx, contact_id)]
    elif isinstance(condition, ActivityCondition):
        node.count, node.activities = _counted(conn, condition, ctx, contact_id)
    return node


def _counted(
    conn: Connection, condition: ActivityCondition, ctx: Context, contact_id: uuid.UUID
) -> tuple[int, list[uuid.UUID]]:
    """How many activities counted, and the newest of them."""
    ref = ctx.types.get(condition.type)
    if ref is None or ref.id is None:
        return 0, []
    first, last = condition.window(ctx.today)
    stmt = sa.select(activities.c.id).where(
        activities.c.contact_id == contact_id, activities.c.type_id == ref.id
    )
    if first is not None:
        stmt = stmt.where(activities.c.occurred_at >= day_start(first))
    if last is not None:
        stmt = stmt.where(activities.c.occurred_at < day_start(last + dt.timedelta(days=1)))
    if condition.fields:
        stmt = stmt.where(*field_conditions(condition, ref, ctx))
    count = conn.execute(sa.select(sa.func.count()).select_from(stmt.subquery())).scalar_one()
    newest = stmt.order_by(activities.c.occurred_at.desc()).limit(NEWEST)
    return int(count), list(conn.execute(newest).scalars())

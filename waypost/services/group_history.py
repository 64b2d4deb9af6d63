"""Reading a group's past and its members for people: membership per day, members with names.

The member count of each day is worked back from the kept count and the entries and exits
recorded in ``group_membership_events``: the count at the end of a day is the count at the end
of the next day, less that day's entries, plus its exits. Only the events of the days asked
for are read, however old and large the group is.
"""

from __future__ import annotations

import datetime as dt
import uuid

import msgspec
import sqlalchemy as sa
from sqlalchemy import Connection

from waypost.pagination import Page, cursor_id, page_by_id
from waypost.services.reports import Days, as_date, day_start, every_day, utc_day
from waypost.store.schema import contact_groups, contacts, group_members, group_membership_events


class HistoryQuery(msgspec.Struct, forbid_unknown_fields=True):
    """``days``: how many UTC days, today included."""

    days: Days = 30


class HistoryDay(msgspec.Struct):
    """A day: the members at its end, and how many entered and left during it."""

    day: dt.date
    members: int
    entered: int
    left: int


class GroupHistory(msgspec.Struct):
    group: uuid.UUID
    since: dt.date
    until: dt.date
    days: list[HistoryDay]


class MemberContact(msgspec.Struct):
    """A member with what identifies the contact to a person."""

    contact: uuid.UUID
    since: dt.datetime
    email: str | None
    first_name: str | None
    last_name: str | None


def membership_history(
    conn: Connection, group_id: uuid.UUID, first: dt.date, last: dt.date
) -> list[HistoryDay]:
    """Members at the end of each day from ``first`` to ``last``, from the kept count back."""
    e = group_membership_events
    day = utc_day(conn, e.c.at)
    entered = sa.func.sum(sa.case((e.c.entered, 1), else_=0))
    left = sa.func.sum(sa.case((e.c.entered, 0), else_=1))
    rows = conn.execute(
        sa.select(day, entered, left)
        .where(e.c.group_id == group_id, e.c.at >= day_start(first))
        .group_by(day)
    ).all()
    current = conn.execute(
        sa.select(contact_groups.c.member_count).where(contact_groups.c.id == group_id)
    ).scalar_one()
    moves = {as_date(d): (int(i), int(o)) for d, i, o in rows}
    result: list[HistoryDay] = []
    members = int(current)
    # Walk back from the newest event, which is after ``last`` when ``last`` is not today.
    for d in reversed(every_day(first, max([last, *moves]))):
        came, went = moves.get(d, (0, 0))
        if d <= last:
            # The kept count and the events are read by two statements; a change committed
            # between them must not show as a negative count.
            result.append(HistoryDay(d, max(members, 0), came, went))
        members = members - came + went
    result.reverse()
    return result


def member_contacts(
    conn: Connection, group_id: uuid.UUID, limit: int, cursor: str | None
) -> Page[MemberContact]:
    """A page of members in contact id order, with their email and names."""
    m, c = group_members, contacts
    stmt = (
        sa.select(m.c.contact_id, m.c.since, c.c.email, c.c.first_name, c.c.last_name)
        .select_from(m.outerjoin(c, c.c.id == m.c.contact_id))
        .where(m.c.group_id == group_id)
        .order_by(m.c.contact_id)
        .limit(limit + 1)
    )
    if (after := cursor_id(cursor)) is not None:
        stmt = stmt.where(m.c.contact_id > after)
    items = [MemberContact(*row) for row in conn.execute(stmt)]
    return page_by_id(items, limit, lambda member: member.contact)

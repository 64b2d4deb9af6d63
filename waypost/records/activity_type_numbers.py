"""Activity type numbers: the stable integer of each type (Marketo's ``activityTypeId``).

A number is given when a type is made, inside the transaction that makes it, and never given
again: every number ever given is kept in ``activity_type_numbers``, which a deleted type's
number outlives. Types made by Waypost get the next number after the highest given (custom
types start at 100001, as Marketo numbers its custom activity types); a person may ask for a
number of their own (the ``activityTypeId`` an existing Marketo integration sends), once.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import Connection

from waypost.errors import conflict
from waypost.ids import utcnow
from waypost.store.schema import activity_type_numbers, activity_types

FIRST_CUSTOM = 100001
MAX_NUMBER = 2**31 - 1  # the column is a 32-bit integer on PostgreSQL


def hold_numbers(conn: Connection) -> None:
    """Make types one transaction at a time, from here to this transaction's end: another
    that makes one waits for it (PostgreSQL; SQLite has one writer already). Taken again in
    the same transaction, it is held already."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("LOCK TABLE activity_type_numbers IN SHARE ROW EXCLUSIVE MODE"))


def issue_number(conn: Connection, wanted: int | None = None) -> int:
    """A number no type has ever had: ``wanted`` (409 ``conflict`` if it was given before), or
    the next one. Records it as given."""
    # Two transactions making types at once would both read the same highest number.
    hold_numbers(conn)
    n = activity_type_numbers.c.number
    if wanted is not None:
        taken = (
            conn.execute(sa.select(n).where(n == wanted)).first()
            or conn.execute(
                sa.select(activity_types.c.id).where(activity_types.c.number == wanted)
            ).first()
        )
        if taken is not None:
            raise conflict(
                f"The number {wanted} was given to an activity type before; numbers are never "
                "given twice.",
                "number",
            )
        number = wanted
    else:
        highest = max(
            conn.execute(sa.select(sa.func.max(n))).scalar_one_or_none() or 0,
            conn.execute(sa.select(sa.func.max(activity_types.c.number))).scalar_one_or_none() or 0,
        )
        number = max(FIRST_CUSTOM, highest + 1)
        if number > MAX_NUMBER:
            raise conflict("Every activity type number has been given.", "number")
    conn.execute(activity_type_numbers.insert().values(number=number, issued_at=utcnow()))
    return number

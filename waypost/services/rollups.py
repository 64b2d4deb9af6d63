"""Counts read from the daily counts per type, never from activities.

The counts are written in the same transaction as the activities, so they are exact, and
summing them is cheap however many activities and contacts there are.
"""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa

from waypost.store import Store
from waypost.store.schema import activity_daily_counts


class RollupService:
    """Reports over ``activity_daily_counts``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def totals_by_type(self, since: dt.date | None = None) -> dict[uuid.UUID, int]:
        """Activities stored per type (ids of types without any are absent), optionally from
        the UTC day ``since`` on."""
        d = activity_daily_counts
        stmt = sa.select(d.c.type_id, sa.func.sum(d.c.count)).group_by(d.c.type_id)
        if since is not None:
            stmt = stmt.where(d.c.day >= since)
        with self.store.read() as conn:
            return {row[0]: int(row[1] or 0) for row in conn.execute(stmt)}

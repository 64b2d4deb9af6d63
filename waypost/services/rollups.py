"""Counts read from the daily rollups (per contact, type and day), never from activities.

The rollups are written in the same transaction as the activities, so they are exact, and
summing them is cheap however many activities there are.
"""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa

from waypost.store import Store
from waypost.store.schema import activity_rollups


class RollupService:
    """Reports over ``activity_rollups``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def totals_by_type(self, since: dt.date | None = None) -> dict[uuid.UUID, int]:
        """Activities stored per type (ids of types without any are absent), optionally from
        the UTC day ``since`` on."""
        total = sa.func.sum(activity_rollups.c.count)
        stmt = sa.select(activity_rollups.c.type_id, total).group_by(activity_rollups.c.type_id)
        if since is not None:
            stmt = stmt.where(activity_rollups.c.day >= since)
        with self.store.read() as conn:
            return {row[0]: int(row[1] or 0) for row in conn.execute(stmt)}

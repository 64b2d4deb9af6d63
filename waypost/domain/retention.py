"""Retention rules: what a purge deletes, decided from the clock and the settings alone.

- An activity of a type with ``retention_days`` N is expired once it occurred more than N
  days ago (``occurred_at`` before now minus N days); a type without one keeps everything.
- A rejected activity is expired once it was received more than
  ``WAYPOST_REJECTED_RETENTION_DAYS`` ago.
- A daily rollup or daily count is expired once its UTC day is more than
  ``WAYPOST_ROLLUP_RETENTION_DAYS`` days before today: the days kept are today and the N
  before it. Rollups outlive the activities they count, so groups and reports keep counting
  purged activities until then.

A purge deletes in batches sized to hold the database's write lock for about
``TARGET_BATCH_SECONDS`` (at most ``WAYPOST_PURGE_BATCH_SIZE`` rows: a batch that took longer
halves the next, one that took less than half of it doubles it), and between two batches it
pauses ``PAUSE_FACTOR`` times as long as the batch took, so it holds the write lock at most
about a third of the time (docs/data-lifecycle.md#batches).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

# How long a batch of deletes should hold the write lock: a durable commit or two of the
# writer's. A writer that finds the lock taken waits in SQLite's busy handler, which tries
# again after 1, 3 and 8 ms: a batch ended by its second try delays an activity by at most
# 3 ms (docs/data-lifecycle.md#batches).
TARGET_BATCH_SECONDS = 0.002
# On PostgreSQL no insert waits for a delete: a batch may hold its rows longer, and fewer
# commits purge the same rows (the pause after it keeps the purge to about a third of the disk).
POSTGRES_TARGET_BATCH_SECONDS = 0.005
# The fewest rows a batch deletes, however slow deleting is.
MIN_BATCH = 10
# The first batch's size, before the purge knows how long a batch takes.
FIRST_BATCH = 100
# The pause after a batch, in times the batch took.
PAUSE_FACTOR = 2.0
# The shortest pause between two batches, however quick the batch was: longer than the busy
# handler's waits between tries, so that a writer kept waiting tries again within it.
MIN_PAUSE_SECONDS = 0.012
# The longest: a batch slowed by something else must not stall the purge for long.
MAX_PAUSE_SECONDS = 1.0


@dataclass(frozen=True)
class TypeRetention:
    """One activity type's retention: activities that occurred before ``cutoff`` expire."""

    type_id: uuid.UUID
    code_name: str
    days: int
    cutoff: dt.datetime


@dataclass(frozen=True)
class PurgePlan:
    """What a purge at one moment deletes: the types with a retention (in code name order),
    rejected activities received before ``rejected_cutoff``, rollups and daily counts of days
    before ``rollup_cutoff``."""

    now: dt.datetime
    types: tuple[TypeRetention, ...]
    rejected_cutoff: dt.datetime
    rollup_cutoff: dt.date


def activity_cutoff(now: dt.datetime, days: int) -> dt.datetime:
    """Activities that occurred before this moment are older than ``days`` days."""
    if now.tzinfo is None:
        raise ValueError("now needs a time zone")
    if days < 1:
        raise ValueError("a retention is at least one day")
    return now.astimezone(dt.UTC) - dt.timedelta(days=days)


def rollup_cutoff(now: dt.datetime, days: int) -> dt.date:
    """Rollups of UTC days before this one are older than ``days`` days."""
    if days < 1:
        raise ValueError("a retention is at least one day")
    return now.astimezone(dt.UTC).date() - dt.timedelta(days=days)


def plan_purge(
    now: dt.datetime,
    types: Iterable[tuple[uuid.UUID, str, int | None]],
    rejected_days: int,
    rollup_days: int,
) -> PurgePlan:
    """The purge at ``now`` of ``types`` (id, code name, retention days or None)."""
    kept = sorted(
        (
            TypeRetention(type_id, code, days, activity_cutoff(now, days))
            for type_id, code, days in types
            if days is not None
        ),
        key=lambda t: t.code_name,
    )
    return PurgePlan(
        now=now,
        types=tuple(kept),
        rejected_cutoff=activity_cutoff(now, rejected_days),
        rollup_cutoff=rollup_cutoff(now, rollup_days),
    )


def pause_after(batch_seconds: float) -> float:
    """How long to wait after a batch of deletes that took ``batch_seconds``, so that the
    writer, which waits for the write lock, gets it between two batches."""
    return min(max(batch_seconds * PAUSE_FACTOR, MIN_PAUSE_SECONDS), MAX_PAUSE_SECONDS)


def first_batch_size(maximum: int) -> int:
    """The size of a purge's first batch, within ``maximum`` (WAYPOST_PURGE_BATCH_SIZE)."""
    return max(1, min(FIRST_BATCH, maximum))


def target_batch_seconds(dialect: str) -> float:
    """How long a batch should take on the database ``dialect`` names."""
    return TARGET_BATCH_SECONDS if dialect == "sqlite" else POSTGRES_TARGET_BATCH_SECONDS


def next_batch_size(
    size: int, batch_seconds: float, maximum: int, target: float = TARGET_BATCH_SECONDS
) -> int:
    """The size of the batch after one of ``size`` rows that took ``batch_seconds``, for
    batches aimed at ``target`` seconds."""
    if batch_seconds > target:
        return max(min(MIN_BATCH, maximum), size // 2)
    if batch_seconds < target / 2:
        return min(maximum, size * 2)
    return size


def retention_text(days: int | None) -> str:
    """A type's retention as people read it."""
    if days is None:
        return "kept forever"
    if days % 365 == 0:
        years = days // 365
        return f"{years} year" if years == 1 else f"{years} years"
    return "1 day" if days == 1 else f"{days:,} days"

"""What expires when (waypost/domain/retention.py): pure rules, no database."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from waypost.domain.retention import (
    FIRST_BATCH,
    MAX_PAUSE_SECONDS,
    MIN_BATCH,
    MIN_PAUSE_SECONDS,
    POSTGRES_TARGET_BATCH_SECONDS,
    TARGET_BATCH_SECONDS,
    activity_cutoff,
    first_batch_size,
    next_batch_size,
    pause_after,
    plan_purge,
    retention_text,
    rollup_cutoff,
    target_batch_seconds,
)

NOW = dt.datetime(2026, 6, 15, 10, 30, tzinfo=dt.UTC)


def test_an_activity_expires_once_older_than_its_types_retention() -> None:
    assert activity_cutoff(NOW, 30) == dt.datetime(2026, 5, 16, 10, 30, tzinfo=dt.UTC)
    paris = NOW.astimezone(dt.timezone(dt.timedelta(hours=2)))
    assert activity_cutoff(paris, 1) == NOW - dt.timedelta(days=1)


@pytest.mark.parametrize("days", [0, -1])
def test_a_retention_is_at_least_a_day(days: int) -> None:
    with pytest.raises(ValueError, match="at least one day"):
        activity_cutoff(NOW, days)
    with pytest.raises(ValueError, match="at least one day"):
        rollup_cutoff(NOW, days)


def test_a_naive_moment_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        activity_cutoff(NOW.replace(tzinfo=None), 3)


def test_rollups_keep_today_and_the_days_of_their_retention() -> None:
    assert rollup_cutoff(NOW, 1095) == dt.date(2023, 6, 16)
    assert rollup_cutoff(NOW, 1) == dt.date(2026, 6, 14)


def test_a_plan_covers_the_types_with_a_retention_in_code_name_order() -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    plan = plan_purge(NOW, [(a, "zeta", 10), (b, "alpha", 400), (c, "kept", None)], 30, 1095)
    assert [(t.type_id, t.code_name, t.days) for t in plan.types] == [
        (b, "alpha", 400),
        (a, "zeta", 10),
    ]
    assert plan.types[1].cutoff == NOW - dt.timedelta(days=10)
    assert plan.rejected_cutoff == NOW - dt.timedelta(days=30)
    assert plan.rollup_cutoff == dt.date(2023, 6, 16)


def test_the_pause_after_a_batch_is_twice_the_batch_within_bounds() -> None:
    assert pause_after(0.0) == MIN_PAUSE_SECONDS
    assert pause_after(0.02) == 0.04
    assert pause_after(30.0) == MAX_PAUSE_SECONDS


@pytest.mark.parametrize(
    ("days", "text"),
    [(None, "kept forever"), (1, "1 day"), (90, "90 days"), (365, "1 year"), (1095, "3 years")],
)
def test_retention_text(days: int | None, text: str) -> None:
    assert retention_text(days) == text


def test_batches_shrink_when_slow_and_grow_when_quick_within_the_maximum() -> None:
    assert first_batch_size(2000) == FIRST_BATCH
    assert first_batch_size(3) == 3
    slow, quick = TARGET_BATCH_SECONDS * 2, TARGET_BATCH_SECONDS / 4
    assert next_batch_size(400, slow, 2000) == 200
    assert next_batch_size(MIN_BATCH, slow, 2000) == MIN_BATCH
    assert next_batch_size(400, quick, 2000) == 800
    assert next_batch_size(1500, quick, 2000) == 2000
    assert next_batch_size(400, TARGET_BATCH_SECONDS * 0.75, 2000) == 400
    assert next_batch_size(3, slow, 3) == 3
    # On PostgreSQL, where no insert waits for a delete, batches are aimed longer.
    assert target_batch_seconds("sqlite") == TARGET_BATCH_SECONDS
    assert target_batch_seconds("postgresql") == POSTGRES_TARGET_BATCH_SECONDS
    between = (TARGET_BATCH_SECONDS + POSTGRES_TARGET_BATCH_SECONDS) / 2
    assert next_batch_size(400, between, 2000) == 200
    assert next_batch_size(400, between, 2000, POSTGRES_TARGET_BATCH_SECONDS) == 400

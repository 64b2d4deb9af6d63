"""The clock: the system's, and the fake one tests move by hand."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from waypost.clock import Clock, FakeClock, SystemClock

MOMENT = dt.datetime(2026, 3, 15, 23, 59, 59, 123456, tzinfo=dt.UTC)


def test_the_system_clock_tells_the_time_in_utc() -> None:
    clock: Clock = SystemClock()
    before = dt.datetime.now(dt.UTC)
    now = clock.now()
    assert now.tzinfo is dt.UTC
    assert before <= now <= dt.datetime.now(dt.UTC)
    assert abs(clock.time() - time.time()) < 1
    first = clock.monotonic()
    assert clock.monotonic() >= first


def test_a_fake_clock_starts_now_unless_told() -> None:
    clock: Clock = FakeClock()
    assert abs(clock.time() - time.time()) < 1
    assert FakeClock(MOMENT).now() == MOMENT
    assert FakeClock(MOMENT.timestamp()).now() == MOMENT


def test_a_fake_clock_stands_still_until_advanced() -> None:
    clock = FakeClock(MOMENT)
    start = clock.monotonic()
    assert clock.now() == clock.now() == MOMENT
    clock.advance(0.876544)
    assert clock.now() == dt.datetime(2026, 3, 16, tzinfo=dt.UTC)
    assert clock.now().tzinfo is dt.UTC
    assert clock.time() == pytest.approx(MOMENT.timestamp() + 0.876544)
    assert clock.monotonic() == pytest.approx(start + 0.876544)
    clock.advance(2 * 86400)
    assert clock.now().date() == dt.date(2026, 3, 18)


def test_setting_a_fake_clock_moves_the_wall_clock_only() -> None:
    clock = FakeClock(MOMENT)
    clock.advance(10)
    ticks = clock.monotonic()
    behind = MOMENT - dt.timedelta(milliseconds=1)
    clock.set(behind)
    assert clock.now() == behind
    assert clock.monotonic() == ticks
    clock.set(1_800_000_000.5)
    assert clock.time() == 1_800_000_000.5


def test_a_fake_clock_refuses_to_go_back_or_to_guess_a_zone() -> None:
    clock = FakeClock(MOMENT)
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="time zone"):
        clock.set(dt.datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="time zone"):
        FakeClock(dt.datetime(2026, 1, 1))
    assert clock.now() == MOMENT

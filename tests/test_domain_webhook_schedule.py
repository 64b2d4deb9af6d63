"""The retry schedule: parsing WAYPOST_WEBHOOK_RETRY_SCHEDULE, jitter, Retry-After."""

from __future__ import annotations

import datetime as dt
import email.utils

import pytest
from hypothesis import given
from hypothesis import strategies as st

from waypost.domain.webhook_schedule import (
    DEFAULT_SCHEDULE,
    BadSchedule,
    jittered,
    next_wait,
    parse_duration,
    parse_retry_after,
    parse_schedule,
    retry_after_cap,
)
from waypost.settings import Settings, SettingsError, load_settings

NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)


def test_the_default_schedule() -> None:
    assert parse_schedule(DEFAULT_SCHEDULE) == (5, 300, 1800, 7200, 18000, 36000, 36000)
    assert Settings().webhook_retry_schedule == DEFAULT_SCHEDULE


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5s", 5), ("0.2s", 0.2), ("250ms", 0.25), ("5m", 300), ("2h", 7200), ("1d", 86400)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_spaces_and_case_do_not_matter() -> None:
    assert parse_schedule(" 0.1S , 0.2s ") == pytest.approx((0.1, 0.2))


@pytest.mark.parametrize(
    "text",
    ["", " ", "5", "5x", "s", "-5s", "0s", "1e3s", "nans", "5s,,5s", "8d", "1.2.3s", "\uff15s"],
)
def test_bad_schedules_are_refused(text: str) -> None:
    with pytest.raises(BadSchedule):
        parse_schedule(text)


def test_a_schedule_is_bounded() -> None:
    with pytest.raises(BadSchedule):
        parse_schedule(",".join(["1s"] * 51))
    with pytest.raises(BadSchedule):
        parse_schedule("1s," * 400)


def test_the_setting_is_checked_when_settings_load() -> None:
    assert load_settings({"WAYPOST_WEBHOOK_RETRY_SCHEDULE": "0.1s,0.2s"})
    with pytest.raises(SettingsError, match="WAYPOST_WEBHOOK_RETRY_SCHEDULE"):
        load_settings({"WAYPOST_WEBHOOK_RETRY_SCHEDULE": "5 minutes"})


@given(st.floats(0.0, 1.0, exclude_max=True))
def test_jitter_is_within_twenty_percent(unit: float) -> None:
    assert 8.0 <= jittered(10.0, unit) <= 12.0


def test_jitter_spans_both_ways() -> None:
    assert jittered(10.0, 0.0) == pytest.approx(8.0)
    assert jittered(10.0, 0.5) == pytest.approx(10.0)
    assert jittered(10.0, 0.9999999) == pytest.approx(12.0)


def test_each_failed_attempt_waits_its_step_then_gives_up() -> None:
    schedule = parse_schedule("5s,5m")
    assert next_wait(schedule, 1, 0.5) == pytest.approx(5)
    assert next_wait(schedule, 2, 0.5) == pytest.approx(300)
    assert next_wait(schedule, 3, 0.5) is None
    assert next_wait(schedule, 0, 0.5) is None


def test_retry_after_as_seconds_or_a_date() -> None:
    assert parse_retry_after("120", NOW) == 120
    assert parse_retry_after(" 0 ", NOW) == 0
    date = email.utils.format_datetime(NOW + dt.timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(date, NOW) == pytest.approx(90)
    past = email.utils.format_datetime(NOW - dt.timedelta(hours=1), usegmt=True)
    assert parse_retry_after(past, NOW) == 0


@pytest.mark.parametrize(
    "value", [None, "", "soon", "-5", "1.5", "9" * 200, "Mon, 99 Foo 2026 00:00:00 GMT", "٣"]
)
def test_unusable_retry_after_is_ignored(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


def test_a_huge_retry_after_does_not_overflow() -> None:
    assert parse_retry_after("9" * 50, NOW) == 10**12


def test_retry_after_lengthens_the_wait_up_to_a_cap() -> None:
    schedule = parse_schedule("0.1s,0.1s")
    assert next_wait(schedule, 1, 0.5, retry_after=1.0) == pytest.approx(1.0)
    # Shorter than the step: the step's wait stands.
    assert next_wait(schedule, 1, 0.5, retry_after=0.01) == pytest.approx(0.1)
    # Capped at an hour when every step is shorter, else at the longest step.
    assert retry_after_cap(schedule) == 3600
    assert next_wait(schedule, 1, 0.5, retry_after=10**9) == 3600
    default = parse_schedule(DEFAULT_SCHEDULE)
    assert next_wait(default, 1, 0.5, retry_after=10**9) == 36000
    # No step left: Retry-After does not bring one back.
    assert next_wait(schedule, 3, 0.5, retry_after=1.0) is None

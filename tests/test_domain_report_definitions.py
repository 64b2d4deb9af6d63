"""Report definitions: what is refused before any data is read, periods in a time zone, the
buckets, averages and medians (waypost/domain/report_definitions.py)."""

from __future__ import annotations

import datetime as dt
import decimal
import fractions
import zoneinfo
from typing import Any

import msgspec
import pytest

from waypost.domain.report_definitions import (
    FunnelStep,
    ReportDefinition,
    average,
    bucket_index,
    bucket_labels,
    check_definition,
    median_microseconds,
    median_seconds,
    parse_edges,
    periods,
    plain,
    whole_seconds,
)
from waypost.errors import ApiError

D = dt.date


def definition(**fields: Any) -> ReportDefinition:
    fields.setdefault("kind", "counts")
    fields.setdefault("since", D(2026, 3, 1))
    fields.setdefault("until", D(2026, 3, 31))
    return ReportDefinition(**fields)


def refused(d: ReportDefinition) -> ApiError:
    with pytest.raises(ApiError) as caught:
        check_definition(d)
    assert caught.value.status == 400
    assert caught.value.code == "invalid_field"
    return caught.value


def test_a_plain_counts_definition_passes() -> None:
    check_definition(definition())


def test_a_range_of_366_days_passes_and_367_is_refused() -> None:
    check_definition(definition(since=D(2024, 1, 1), until=D(2024, 12, 31)))  # leap year, 366
    error = refused(definition(since=D(2024, 1, 1), until=D(2025, 1, 1)))
    assert error.field == "until"
    assert "367" in error.message


def test_until_before_since_is_refused() -> None:
    assert refused(definition(since=D(2026, 3, 2), until=D(2026, 3, 1))).field == "until"


@pytest.mark.parametrize("zone", ["Mars/Olympus", "../etc/passwd", "", "Europe/Prague\x00"])
def test_a_bad_time_zone_is_refused(zone: str) -> None:
    assert refused(definition(time_zone=zone)).field == "time_zone"


def test_six_funnel_steps_or_one_are_refused() -> None:
    steps = [FunnelStep(type=f"t{i}") for i in range(6)]
    assert refused(definition(kind="funnel", steps=steps)).field == "steps"
    assert refused(definition(kind="funnel", steps=steps[:1])).field == "steps"
    check_definition(definition(kind="funnel", steps=steps[:5]))
    check_definition(definition(kind="funnel", steps=[FunnelStep("a"), FunnelStep("a")]))


def test_options_a_kind_does_not_take_are_refused() -> None:
    assert refused(definition(field="amount")).field == "field"
    assert refused(definition(kind="funnel", types=["a"], steps=[FunnelStep("a")] * 2)).field == (
        "types"
    )
    assert refused(definition(kind="group", group="g", top=5)).field == "top"


def test_breakdown_and_numeric_need_one_type_and_a_field() -> None:
    for kind in ("breakdown", "numeric"):
        assert refused(definition(kind=kind, field="amount")).field == "types"
        assert refused(definition(kind=kind, types=["a", "b"], field="amount")).field == "types"
        assert refused(definition(kind=kind, types=["a"])).field == "field"
        check_definition(definition(kind=kind, types=["a"], field="amount"))


def test_a_group_report_needs_its_group() -> None:
    assert refused(definition(kind="group")).field == "group"


def test_bucket_edges_must_be_increasing_numbers() -> None:
    assert parse_edges(["10", "100.5"]) == [decimal.Decimal(10), decimal.Decimal("100.5")]
    for edges, where in (
        (["10", "10"], "buckets[1]"),
        (["abc"], "buckets[0]"),
        (["NaN"], "buckets[0]"),
        (["Infinity"], "buckets[0]"),
        (["1e999"], "buckets[0]"),
    ):
        d = definition(kind="breakdown", types=["a"], field="x", buckets=edges)
        assert refused(d).field == where


def test_the_decoder_bounds_what_is_sent() -> None:
    body = {"kind": "counts", "since": "2026-03-01", "until": "2026-03-02"}
    for extra in ({"top": 0}, {"types": ["a"] * 51}, {"window_days": 0}, {"nope": 1}):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert({**body, **extra}, ReportDefinition)


def test_day_periods_in_a_zone_start_at_local_midnight() -> None:
    prague = zoneinfo.ZoneInfo("Europe/Prague")
    got = periods(D(2026, 3, 28), D(2026, 3, 30), "day", prague)
    assert [p.label for p in got] == ["2026-03-28", "2026-03-29", "2026-03-30"]
    utc = dt.UTC
    assert [p.start for p in got] == [
        dt.datetime(2026, 3, 27, 23, tzinfo=utc),
        dt.datetime(2026, 3, 28, 23, tzinfo=utc),
        dt.datetime(2026, 3, 29, 22, tzinfo=utc),  # summer time from 29 March
    ]
    # The day clocks go forward has 23 hours.
    assert got[1].end - got[1].start == dt.timedelta(hours=23)


def test_weeks_and_months_are_cut_to_the_range() -> None:
    weeks = periods(D(2026, 3, 4), D(2026, 3, 17), "week", dt.UTC)
    assert [(p.label, p.first, p.last) for p in weeks] == [
        ("2026-03-02", D(2026, 3, 4), D(2026, 3, 8)),
        ("2026-03-09", D(2026, 3, 9), D(2026, 3, 15)),
        ("2026-03-16", D(2026, 3, 16), D(2026, 3, 17)),
    ]
    months = periods(D(2025, 12, 20), D(2026, 2, 3), "month", dt.UTC)
    assert [(p.label, p.first, p.last) for p in months] == [
        ("2025-12", D(2025, 12, 20), D(2025, 12, 31)),
        ("2026-01", D(2026, 1, 1), D(2026, 1, 31)),
        ("2026-02", D(2026, 2, 1), D(2026, 2, 3)),
    ]


def test_buckets_and_their_labels() -> None:
    edges = [decimal.Decimal(100), decimal.Decimal("500.50")]
    assert bucket_labels(edges) == ["under 100", "100 to under 500.5", "500.5 or more"]
    assert [bucket_index(decimal.Decimal(v), edges) for v in ("-1", "100", "500.49", "500.5")] == [
        0,
        1,
        1,
        2,
    ]


def test_plain_average_and_median() -> None:
    assert plain(decimal.Decimal("1.50E+3")) == "1500"
    assert plain(decimal.Decimal("2.500")) == "2.5"
    assert plain(decimal.Decimal("-0.00")) == "0"
    assert average(decimal.Decimal(10), 3) == decimal.Decimal("3.333333")
    assert average(decimal.Decimal("0.0000005"), 1) == decimal.Decimal("0.000000")  # half even
    assert median_seconds([]) is None
    assert median_seconds([5_000_000, 1_000_000, 3_000_000]) == 3
    assert median_seconds([1_000_000, 4_000_000]) == 2  # 2.5, half to even
    assert median_seconds([3_000_000, 4_000_000]) == 4  # 3.5, half to even
    # Exact: a float sum of these seconds would land a hair below 2.5 or above it.
    assert median_seconds([2_499_999, 2_500_001]) == 2
    assert median_seconds([2_500_000, 2_500_001]) == 3
    assert median_microseconds([7, 1, 4, 2]) == fractions.Fraction(3)
    assert median_microseconds([1, 2]) == fractions.Fraction(3, 2)
    assert median_microseconds([]) is None
    assert whole_seconds(fractions.Fraction(1_500_000)) == 2
    assert whole_seconds(fractions.Fraction(-1_500_000)) == -2

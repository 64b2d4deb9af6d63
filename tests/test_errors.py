"""The helpers of the error shape that the layers below the admin API share."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from waypost.errors import ApiError, with_offset


@pytest.mark.parametrize(
    "moment",
    [
        dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        dt.datetime(2026, 1, 1, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    ],
)
def test_a_date_and_time_with_an_offset_is_given_back(moment: dt.datetime) -> None:
    assert with_offset(moment, "since") is moment


def test_a_date_and_time_without_an_offset_is_a_400_naming_it() -> None:
    with pytest.raises(ApiError) as raised:
        with_offset(dt.datetime(2026, 1, 1), "until")
    error = raised.value
    assert (error.status, error.code, error.field) == (400, "invalid_field", "until")
    assert error.message == "until needs an offset, e.g. Z."


def test_the_offset_is_checked_in_one_place() -> None:
    """Every service that takes a time from a request uses with_offset, not a copy of it."""
    root = Path(__file__).resolve().parent.parent / "waypost"
    holders = sorted(
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "needs an offset, e.g. Z" in path.read_text(encoding="utf-8")
    )
    assert holders == ["errors.py"]

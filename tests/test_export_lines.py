"""Exports of activities formatted by the database (waypost/services/activity_lines.py) are the
very bytes of the same export built in Python from each activity (ActivityRecord, msgspec, the
csv module, Arrow from Python values), on SQLite and PostgreSQL, for random activities: any
text (quotes, commas, line breaks, backslashes, percent signs, control characters, any
Unicode), fields with decimals as text, times with and without microseconds, and many
activities at the same moment across the bounds of pages."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import hypothesis
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck
from hypothesis import strategies as st

from waypost.hub import Hub
from waypost.services import exports
from waypost.services.exports import ActivityExportQuery
from waypost.store.schema import activities, activity_types

# Text as people send it, and what a CSV or JSON writer must escape, more often than chance.
SPECIAL = st.sampled_from(['"', ",", "\r", "\n", "\r\n", "\\", "'", "%", "%s", "\t", "\x01", "é"])
CHARACTERS = st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")
TEXT = st.lists(st.one_of(SPECIAL, CHARACTERS), max_size=12).map("".join)
DECIMAL = st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str)
JSON_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), TEXT, DECIMAL),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=6,
)
BASE = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)
# Few moments, so that activities share them, and pages end in the middle of such a run.
MOMENT = st.builds(
    lambda seconds, micro: BASE - dt.timedelta(seconds=seconds, microseconds=micro),
    st.integers(0, 3),
    st.sampled_from([0, 0, 1, 500_000, 999_999]),
)
ACTIVITY = st.fixed_dictionaries(
    {
        "title": TEXT,
        "value": st.none() | TEXT,
        "url": st.none() | TEXT,
        "referrer": st.none() | TEXT,
        "fields": st.none() | st.dictionaries(TEXT, JSON_VALUE, max_size=4),
        "flags": st.none() | st.lists(TEXT, max_size=2),
        "occurred_at": MOMENT,
        "received_at": MOMENT,
        "client_id": st.none() | TEXT,
        "consent_agreed": st.none() | st.booleans(),
        "consent_version": st.none() | st.integers(-(2**31), 2**31 - 1),
    }
)


@pytest.fixture
def store_activities(hub: Hub, make_channel: Callable[..., Any]) -> Callable[[list[Any]], None]:
    """Replace every activity by these, of two types, two contacts, two channels."""
    channels = [make_channel().id, make_channel().id]
    contacts = [hub.contacts.create_anonymous().contact for _ in range(2)]
    with hub.store.read() as conn:
        types = list(
            conn.execute(
                sa.select(activity_types.c.id)
                .where(activity_types.c.code_name.in_(["click", "pagevisit"]))
                .order_by(activity_types.c.code_name)
            ).scalars()
        )

    def store(items: list[Any]) -> None:
        rows = [
            {
                **item,
                "id": uuid.uuid4(),
                "type_id": types[i % 2],
                "contact_id": contacts[i % 2],
                "channel_id": channels[i // 2 % 2],
                # Unique in a channel when given.
                "client_id": None if item["client_id"] is None else f"{i}:{item['client_id']}",
            }
            for i, item in enumerate(items)
        ]
        with hub.store.write() as conn:
            conn.execute(activities.delete())
            if rows:
                conn.execute(activities.insert(), rows)

    return store


def both_ways(hub: Hub, fmt: str, **query: Any) -> tuple[bytes, bytes, int]:
    """The export formatted by the database, and built in Python; the rows counted."""
    export = hub.exports.activities_export(ActivityExportQuery(format=fmt, **query))  # type: ignore[arg-type]
    assert export.formatted is not None
    fast = b"".join(export.chunks())
    rows = export.rows
    export.formatted, export.rows = None, 0
    straightforward = b"".join(export.chunks())
    assert export.rows == rows
    return fast, straightforward, rows


@hypothesis.settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@hypothesis.given(items=st.lists(ACTIVITY, max_size=14), page=st.integers(1, 5))
def test_the_database_formats_the_bytes_python_would(
    hub: Hub,
    store_activities: Callable[[list[Any]], None],
    monkeypatch: pytest.MonkeyPatch,
    items: list[Any],
    page: int,
) -> None:
    monkeypatch.setattr(exports, "ACTIVITY_PAGE", page)
    store_activities(items)
    for fmt in ("ndjson", "csv", "parquet"):
        fast, straightforward, rows = both_ways(hub, fmt)
        assert rows == len(items)
        assert fast == straightforward, fmt


def test_filters_and_a_type_select_the_same_activities(
    hub: Hub, store_activities: Callable[[list[Any]], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exports, "ACTIVITY_PAGE", 2)
    items = [
        {
            "title": f'"{n}", a title\r\nover lines',
            "value": None if n % 3 else f"{n}.50",
            "url": "https://example.com/?a=1,b=2",
            "referrer": None,
            "fields": {"amount": f"{n}00.25", "note": 'say "hi"'},
            "flags": None,
            "occurred_at": BASE - dt.timedelta(seconds=n // 3, microseconds=n % 2),
            "received_at": BASE,
            "client_id": None,
            "consent_agreed": [None, True, False][n % 3],
            "consent_version": n,
        }
        for n in range(20)
    ]
    store_activities(items)
    since = BASE - dt.timedelta(seconds=4)
    queries: list[dict[str, Any]] = [{}, {"type": "click"}, {"since": since, "until": BASE}]
    for query in queries:
        fast, straightforward, rows = both_ways(hub, "ndjson", **query)
        assert fast == straightforward
        assert rows == len(fast.splitlines()) > 0
    # A per-field CSV or Parquet export (a type's fields as columns) is built in Python.
    export = hub.exports.activities_export(ActivityExportQuery(format="csv", type="click"))
    assert export.formatted is None


def test_a_value_with_a_nul_reads_its_page_again_row_by_row(
    hub: Hub, store_activities: Callable[[list[Any]], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite a page's lines come joined by NUL: a NUL of a value's own (PostgreSQL's text
    cannot hold one) must not split its line."""
    if hub.store.dialect != "sqlite":
        pytest.skip("PostgreSQL's text holds no NUL")
    monkeypatch.setattr(exports, "ACTIVITY_PAGE", 3)
    items = [
        {
            "title": f"title {n}\x00with a NUL" if n in (1, 7) else f"title {n}",
            "value": "a\x00b" if n == 4 else None,
            "url": None,
            "referrer": None,
            "fields": None,
            "flags": None,
            "occurred_at": BASE - dt.timedelta(seconds=n),
            "received_at": BASE,
            "client_id": None,
            "consent_agreed": None,
            "consent_version": None,
        }
        for n in range(10)
    ]
    store_activities(items)
    for fmt in ("ndjson", "csv", "parquet"):
        fast, straightforward, rows = both_ways(hub, fmt)
        assert rows == 10
        assert fast == straightforward, fmt
    assert b"title 7\x00with a NUL" in both_ways(hub, "csv")[0]

"""The dashboard's reports: activities per day and type, new contacts, rejected activities."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from waypost.clock import FakeClock
from waypost.hub import Hub
from waypost.ids import new_id
from waypost.services.activity_types import ActivityType
from waypost.services.reports import DayCount, ReasonCount, TypeTotal, window
from waypost.settings import Settings
from waypost.store import Store, make_engine
from waypost.store.schema import (
    activity_daily_counts,
    activity_rollups,
    contacts,
    rejected_activities,
)

TODAY = dt.date(2026, 3, 15)
UTC = dt.UTC


def at(day: dt.date, hour: int = 12, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC)


def add_contact(hub: Hub, created: dt.datetime, **fields: Any) -> uuid.UUID:
    contact_id = new_id()
    with hub.store.write() as conn:
        conn.execute(
            contacts.insert().values(
                id=contact_id, attributes={}, created_at=created, updated_at=created, **fields
            )
        )
    return contact_id


def add_rollups(hub: Hub, rows: list[tuple[uuid.UUID, uuid.UUID, dt.date, int]]) -> None:
    """Rollups and the counts per type and day, as the writer keeps them."""
    daily: Counter[tuple[uuid.UUID, dt.date]] = Counter()
    for _, type_id, day, count in rows:
        daily[(type_id, day)] += count
    with hub.store.write() as conn:
        conn.execute(
            activity_rollups.insert(),
            [{"contact_id": c, "type_id": t, "day": d, "count": n} for c, t, d, n in rows],
        )
        conn.execute(
            activity_daily_counts.insert(),
            [{"type_id": t, "day": d, "count": n} for (t, d), n in daily.items()],
        )


def add_rejected(hub: Hub, reason: str, received: dt.datetime, replayed: bool = False) -> None:
    with hub.store.write() as conn:
        conn.execute(
            rejected_activities.insert().values(
                id=new_id(),
                reason=reason,
                status=400,
                message="refused",
                source="tracking",
                payload={},
                received_at=received,
                replayed_at=received if replayed else None,
                replay_outcome="stored" if replayed else None,
                replayed_activity_id=new_id() if replayed else None,
            )
        )


def test_the_window_is_today_and_the_days_before_it() -> None:
    assert window(1, TODAY) == (TODAY, TODAY)
    assert window(30, TODAY) == (dt.date(2026, 2, 14), TODAY)
    with pytest.raises(ValueError, match="days"):
        window(0, TODAY)
    with pytest.raises(ValueError, match="days"):
        window(367, TODAY)


def test_activities_per_day_and_type_come_from_the_rollups(
    hub: Hub, make_type: Callable[..., ActivityType]
) -> None:
    loans = make_type(name="Loan calculator")
    deposits = make_type(name="Deposit")
    make_type(name="Never used")
    click = hub.types.get_by_code("click")
    ann = add_contact(hub, at(TODAY))
    bob = add_contact(hub, at(TODAY))
    first = TODAY - dt.timedelta(days=6)
    add_rollups(
        hub,
        [
            (ann, loans.id, TODAY, 3),
            (bob, loans.id, TODAY, 2),
            (ann, deposits.id, TODAY, 1),
            (ann, loans.id, first, 4),
            (bob, click.id, first, 5),
            # outside the seven days: the day before the first, and an older one
            (ann, loans.id, first - dt.timedelta(days=1), 100),
            (bob, deposits.id, dt.date(2020, 1, 1), 100),
        ],
    )
    report = hub.reports.activities(7, today=TODAY)
    assert (report.since, report.until) == (first, TODAY)
    assert report.total == 15
    assert report.types == [
        TypeTotal("loan_calculator", "Loan calculator", 9),
        TypeTotal("click", "Click", 5),
        TypeTotal("deposit", "Deposit", 1),
    ]
    assert [d.day for d in report.days] == [first + dt.timedelta(days=i) for i in range(7)]
    assert report.days[0].by_type == {"loan_calculator": 4, "click": 5}
    assert report.days[0].total == 9
    assert all(d.by_type == {} and d.total == 0 for d in report.days[1:6])
    assert report.days[6].by_type == {"loan_calculator": 5, "deposit": 1}


def test_types_with_as_many_activities_are_ordered_by_name(
    hub: Hub, make_type: Callable[..., ActivityType]
) -> None:
    contact = add_contact(hub, at(TODAY))
    zebra = make_type(name="zebra")
    apple = make_type(name="Apple")
    add_rollups(hub, [(contact, zebra.id, TODAY, 2), (contact, apple.id, TODAY, 2)])
    names = [t.name for t in hub.reports.activities(1, today=TODAY).types]
    assert names == ["Apple", "zebra"]


def test_an_empty_database_reports_zeros_for_every_day(hub: Hub) -> None:
    activity = hub.reports.activities(30, today=TODAY)
    assert activity.total == 0
    assert activity.types == []
    assert len(activity.days) == 30
    new = hub.reports.new_contacts(30, today=TODAY)
    assert new.total == 0
    assert len(new.days) == 30
    assert {d.count for d in new.days} == {0}
    rejected = hub.reports.rejected(30, today=TODAY)
    assert (rejected.total, rejected.reasons) == (0, [])


def test_new_contacts_per_utc_day_without_merged_ones(hub: Hub) -> None:
    yesterday = TODAY - dt.timedelta(days=1)
    add_contact(hub, at(yesterday, 0, 0, 0))  # the first moment of the day
    add_contact(hub, at(yesterday, 23, 59, 59))  # and its last
    add_contact(hub, at(TODAY, 0, 0, 0))
    target = add_contact(hub, at(TODAY, 8))
    add_contact(hub, at(TODAY, 9), merged_into=target)  # the same person as target
    add_contact(hub, at(TODAY - dt.timedelta(days=2), 23, 59, 59))  # before the window
    # A contact created in another time zone's evening is counted on its UTC day.
    eastern = dt.timezone(dt.timedelta(hours=-5))
    add_contact(hub, dt.datetime(2026, 3, 13, 20, 30, tzinfo=eastern))  # 01:30 UTC on the 14th
    report = hub.reports.new_contacts(2, today=TODAY)
    assert report.days == [DayCount(yesterday, 3), DayCount(TODAY, 2)]
    assert report.total == 5


def test_days_are_utc_whatever_the_database_sessions_time_zone(settings: Settings) -> None:
    engine = make_engine(settings, poolclass=sa.NullPool)
    if engine.dialect.name == "postgresql":

        @sa.event.listens_for(engine, "connect")
        def far_east(dbapi_connection: Any, _: Any) -> None:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET TIME ZONE 'Pacific/Auckland'")
            dbapi_connection.commit()

    hub = Hub(settings, Store(engine))
    try:
        add_contact(hub, at(TODAY, 23, 0))  # the 16th in Auckland
        add_contact(hub, at(TODAY - dt.timedelta(days=1), 13, 0))  # the 15th in Auckland
        report = hub.reports.new_contacts(2, today=TODAY)
        assert [d.count for d in report.days] == [1, 1]
    finally:
        hub.close()


def test_rejected_activities_per_reason_most_frequent_first(hub: Hub) -> None:
    for _ in range(3):
        add_rejected(hub, "unknown_type", at(TODAY, 1))
    add_rejected(hub, "rate_limited", at(TODAY - dt.timedelta(days=29), 0, 0, 0))
    add_rejected(hub, "invalid_field", at(TODAY, 23, 59, 59))
    add_rejected(hub, "invalid_field", at(TODAY, 2))
    add_rejected(hub, "too_old", at(TODAY - dt.timedelta(days=30), 23, 59, 59))  # outside
    report = hub.reports.rejected(30, today=TODAY)
    assert report.reasons == [
        ReasonCount("unknown_type", 3),
        ReasonCount("invalid_field", 2),
        ReasonCount("rate_limited", 1),
    ]
    assert report.total == 6
    assert report.since == TODAY - dt.timedelta(days=29)


def test_rejected_activities_stored_by_a_replay_are_counted_apart(hub: Hub) -> None:
    add_rejected(hub, "invalid_field", at(TODAY, 1), replayed=True)
    add_rejected(hub, "invalid_field", at(TODAY, 2))
    add_rejected(hub, "invalid_field", at(TODAY, 3), replayed=True)
    add_rejected(hub, "rate_limited", at(TODAY, 4))
    report = hub.reports.rejected(30, today=TODAY)
    assert report.reasons == [
        ReasonCount("invalid_field", 3, replayed=2),
        ReasonCount("rate_limited", 1, replayed=0),
    ]
    assert (report.total, report.replayed) == (4, 2)


def test_reports_default_to_the_last_30_days_until_today(hub: Hub) -> None:
    report = hub.reports.activities()
    assert report.until == dt.datetime.now(UTC).date()
    assert len(report.days) == 30


def test_reports_default_to_the_days_of_the_hub_s_clock(settings: Settings) -> None:
    clock = FakeClock(dt.datetime(2026, 3, 15, 23, 59, 59, tzinfo=dt.UTC))
    node = Hub(settings, Store(make_engine(settings)), clock=clock)
    try:
        assert node.reports.activities(2).since == dt.date(2026, 3, 14)
        clock.advance(1)
        assert (node.reports.new_contacts(2).since, node.reports.rejected(2).until) == (
            dt.date(2026, 3, 15),
            dt.date(2026, 3, 16),
        )
    finally:
        node.close()

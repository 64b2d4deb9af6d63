"""A group's membership per day, worked back from its events, and its members with names."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from waypost.errors import ApiError
from waypost.hub import Hub
from waypost.ids import new_id, utcnow
from waypost.services.group_history import HistoryDay
from waypost.services.groups import Group, GroupCreate, MemberQuery
from waypost.store.schema import (
    activity_rollups,
    contact_groups,
    contacts,
    group_members,
    group_membership_events,
)

TODAY = dt.date(2026, 3, 15)


def at(days_ago: int, hour: int = 12, minute: int = 0, second: int = 0) -> dt.datetime:
    day = TODAY - dt.timedelta(days=days_ago)
    return dt.datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=dt.UTC)


def empty_group(hub: Hub, name: str = "Clickers") -> Group:
    """A group no contact is in yet (nobody clicked)."""
    condition = {"activity": {"type": "click", "at_least": 1}}
    return hub.groups.create(GroupCreate(name=name, condition=condition))


def record(hub: Hub, group: Group, events: list[tuple[str, bool, dt.datetime]], count: int) -> None:
    """Entries and exits of made-up contacts, and the member count they leave."""
    ids: dict[str, uuid.UUID] = {}
    with hub.store.write() as conn:
        conn.execute(
            group_membership_events.insert(),
            [
                {
                    "group_id": group.id,
                    "contact_id": ids.setdefault(name, new_id()),
                    "entered": entered,
                    "at": moment,
                }
                for name, entered, moment in events
            ],
        )
        conn.execute(
            contact_groups.update()
            .where(contact_groups.c.id == group.id)
            .values(member_count=count)
        )


def test_members_per_day_are_worked_back_from_the_events(hub: Hub) -> None:
    group = empty_group(hub)
    record(
        hub,
        group,
        [
            ("ann", True, at(40)),  # before the window: a member all along
            ("bob", True, at(5, 0, 0, 0)),
            ("cid", True, at(5, 23, 59, 59)),
            ("bob", False, at(3)),
            ("bob", True, at(3, 13)),  # back the same day
            ("bob", False, at(3, 14)),
            ("dan", True, at(0, 0, 0, 0)),
            ("cid", False, at(0, 23, 59, 59)),
        ],
        count=2,  # ann and dan
    )
    history = hub.groups.history(group.id, 7, today=TODAY)
    assert (history.group, history.since, history.until) == (group.id, at(6).date(), TODAY)
    assert history.days == [
        HistoryDay(at(6).date(), 1, 0, 0),
        HistoryDay(at(5).date(), 3, 2, 0),
        HistoryDay(at(4).date(), 3, 0, 0),
        HistoryDay(at(3).date(), 2, 1, 2),
        HistoryDay(at(2).date(), 2, 0, 0),
        HistoryDay(at(1).date(), 2, 0, 0),
        HistoryDay(TODAY, 2, 1, 1),
    ]


def test_a_past_window_discounts_the_events_after_it(hub: Hub) -> None:
    group = empty_group(hub)
    record(hub, group, [("ann", True, at(10)), ("bob", True, at(2)), ("ann", False, at(1))], 1)
    history = hub.groups.history(group.id, 3, today=TODAY - dt.timedelta(days=3))
    assert [(d.day, d.members) for d in history.days] == [
        (at(5).date(), 1),
        (at(4).date(), 1),
        (at(3).date(), 1),
    ]


def test_a_new_group_has_its_members_from_today(hub: Hub) -> None:
    with hub.store.write() as conn:
        for n in range(3):
            contact = new_id()
            now = utcnow()
            conn.execute(
                contacts.insert().values(
                    id=contact, attributes={}, created_at=now, updated_at=now, email=f"c{n}@x.io"
                )
            )
            click = hub.types.get_by_code("click").id
            conn.execute(
                activity_rollups.insert().values(
                    contact_id=contact, type_id=click, day=now.date(), count=1
                )
            )
    group = empty_group(hub)
    assert group.member_count == 3
    history = hub.groups.history(group.id, 30)
    assert len(history.days) == 30
    assert history.days[-1] == HistoryDay(utcnow().date(), 3, 3, 0)
    assert {d.members for d in history.days[:-1]} == {0}


def test_the_history_of_a_group_that_does_not_exist_is_a_404(hub: Hub) -> None:
    with pytest.raises(ApiError) as raised:
        hub.groups.history(new_id(), 30)
    assert raised.value.status == 404


def test_members_come_with_their_email_and_names_a_page_at_a_time(hub: Hub) -> None:
    group = empty_group(hub)
    now = utcnow()
    made = sorted(new_id() for _ in range(3))
    with hub.store.write() as conn:
        for n, contact in enumerate(made):
            conn.execute(
                contacts.insert().values(
                    id=contact,
                    attributes={},
                    created_at=now,
                    updated_at=now,
                    email=f"c{n}@example.com" if n else None,
                    first_name="Ann" if n == 0 else None,
                    last_name="Lee" if n == 0 else None,
                )
            )
            conn.execute(
                group_members.insert().values(group_id=group.id, contact_id=contact, since=now)
            )
    first = hub.groups.member_contacts(group.id, MemberQuery(limit=2))
    assert [m.contact for m in first.data] == made[:2]
    assert (first.data[0].first_name, first.data[0].last_name, first.data[0].email) == (
        "Ann",
        "Lee",
        None,
    )
    assert first.data[1].email == "c1@example.com"
    assert first.next is not None
    rest = hub.groups.member_contacts(group.id, MemberQuery(limit=2, cursor=first.next))
    assert [m.contact for m in rest.data] == made[2:]
    assert rest.next is None
    with pytest.raises(ApiError) as raised:
        hub.groups.member_contacts(new_id(), MemberQuery())
    assert raised.value.status == 404

"""Computing group membership: a group in full with the groups built on it, the groups of some
contacts after they changed, and the daily refresh of sliding windows, each claimed once."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable

import pytest

from waypost.clock import FakeClock
from waypost.domain.conditions import CONSENTS_CHANGED, parse_condition
from waypost.hub import Hub
from waypost.services.activity_types import ActivityType
from waypost.services.consents import ConsentCreate
from waypost.services.group_computing import GroupComputer
from waypost.services.group_membership import GroupPlanCache
from waypost.services.groups import GroupCreate, MemberQuery

LATER = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)


@pytest.fixture
def hub(hub: Hub) -> Hub:
    """A hub that keeps no membership current by itself: the computer under test does."""
    hub.store.on_commit = None
    return hub


@pytest.fixture
def computer(hub: Hub) -> GroupComputer:
    return GroupComputer(hub.store, FakeClock(LATER), GroupPlanCache())


def members(hub: Hub, group: uuid.UUID) -> set[uuid.UUID]:
    return {m.contact for m in hub.groups.members(group, MemberQuery(limit=1000)).data}


def chain(hub: Hub) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """Three groups, each built on the one before: agreed to A, and so on."""
    hub.consents.create(ConsentCreate(code_name="A", display_name="A"))
    first = hub.groups.create(GroupCreate(name="First", condition={"consent": "A"})).id
    second = hub.groups.create(GroupCreate(name="Second", condition={"group": str(first)})).id
    third = hub.groups.create(GroupCreate(name="Third", condition={"group": str(second)})).id
    return first, second, third


def compute(
    hub: Hub, computer: GroupComputer, group: uuid.UUID, *, condition_changed: bool = False
) -> None:
    with hub.store.write() as conn:
        condition = parse_condition(hub.groups.get(group).condition)
        computer.compute_with_dependents(
            conn, group, condition, LATER.date(), condition_changed=condition_changed
        )


def test_a_group_alone_leaves_the_groups_built_on_it_behind(
    hub: Hub, computer: GroupComputer
) -> None:
    first, second, _ = chain(hub)
    ann = hub.contacts.create_anonymous().contact
    hub.consents.agree(ann, "A", True, None)
    with hub.store.write() as conn:
        computer.compute(conn, first, parse_condition({"consent": "A"}), LATER.date())
    assert members(hub, first) == {ann}
    assert members(hub, second) == set()
    assert hub.groups.get(first).computed_at == LATER


def test_the_groups_built_on_a_changed_one_follow_it_in_order(
    hub: Hub, computer: GroupComputer
) -> None:
    first, second, third = chain(hub)
    ann = hub.contacts.create_anonymous().contact
    hub.consents.agree(ann, "A", True, None)
    compute(hub, computer, first)
    assert members(hub, first) == members(hub, second) == members(hub, third) == {ann}
    assert hub.groups.get(third).member_count == 1


def test_a_changed_condition_recomputes_the_groups_built_on_it_even_if_no_member_moved(
    hub: Hub, computer: GroupComputer
) -> None:
    first, second, third = chain(hub)
    compute(hub, computer, first, condition_changed=True)
    for group in (first, second, third):
        assert hub.groups.get(group).computed_at == LATER


def test_an_update_writes_only_what_changed(hub: Hub, computer: GroupComputer) -> None:
    *_, third = chain(hub)
    ann, bob = (hub.contacts.create_anonymous().contact for _ in range(2))
    hub.consents.agree(ann, "A", True, None)
    assert computer.update_contacts([ann, bob], CONSENTS_CHANGED) == 3
    assert members(hub, third) == {ann}
    assert computer.update_contacts([ann, bob], CONSENTS_CHANGED) == 0
    assert computer.update_contacts([]) == 0


def test_a_sliding_window_is_refreshed_once_a_day(
    hub: Hub, computer: GroupComputer, make_type: Callable[..., ActivityType]
) -> None:
    make_type(name="Loans", code_name="custom_loans")
    recent = hub.groups.create(
        GroupCreate(
            name="Recent", condition={"activity": {"type": "custom_loans", "within_days": 7}}
        )
    ).id
    hub.consents.create(ConsentCreate(code_name="A", display_name="A"))
    hub.groups.create(GroupCreate(name="Plain", condition={"consent": "A"}))
    tomorrow = LATER.date() + dt.timedelta(days=1)
    assert computer.refresh_windows(tomorrow) == [recent]
    assert computer.refresh_windows(tomorrow) == []

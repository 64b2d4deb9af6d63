"""Contact group semantics and membership kept current, on both databases.

Every condition is checked against a hand-computed set of contacts, through the dry run (the
count) and a created group (its members); then memberships follow activities, field changes,
consent changes and merges as they are stored, entries and exits answer "was the contact in
the group at T", and windows that slide past a contact are re-evaluated once a day.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest
from starlette.testclient import TestClient

from waypost.clock import FakeClock
from waypost.domain.conditions import CONSENTS_CHANGED
from waypost.hub import Hub
from waypost.services import group_computing as computing
from waypost.services import group_membership as membership
from waypost.services.activity_types import ActivityType
from waypost.services.channels import Channel
from waypost.services.consents import ConsentCreate
from waypost.services.groups import GroupCreate, GroupUpdate, MemberQuery
from waypost.services.keys import CreatedKey
from waypost.settings import Settings
from waypost.store import Change, ChangeKind, Store, make_engine
from waypost.store.schema import contact_groups, group_members

if TYPE_CHECKING:
    from tests.conftest import ErrorCheck, Tracker
    from tests.group_support import Groups, make_groups, parse_time
else:
    from group_support import Groups, make_groups, parse_time

LOANS = "custom_loan_calculator"
OTHER = "custom_other"


@pytest.fixture
def groups(client: TestClient, admin_headers: dict[str, str], tracker: Tracker) -> Groups:
    return make_groups(client, admin_headers, tracker)


@pytest.fixture
def loans(make_type: Callable[..., ActivityType]) -> ActivityType:
    make_type(name="Other", code_name=OTHER)
    return make_type(
        name="Loan calculator usage",
        code_name=LOANS,
        fields=[
            {"name": "amount", "type": "decimal"},
            {"name": "product", "type": "text"},
            {"name": "years", "type": "integer"},
        ],
    )


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def on_day(days_ago: int, clock: str = "12:00:00") -> str:
    """An ``occurredAt`` on the UTC day this many days before today, at this time of day."""
    return f"{today() - dt.timedelta(days=days_ago)}T{clock}Z"


def holds(groups: Groups, condition: Any, expected: set[str]) -> None:
    """The condition holds for exactly these contacts: counted by the dry run, and as the
    members of a group made of it."""
    assert groups.count(condition) == len(expected), condition
    group = groups.create(condition)
    assert groups.members(group["id"]) == expected, condition
    assert group["member_count"] == len(expected)


# -- activity conditions --------------------------------------------------------------------------


def test_counts(groups: Groups, loans: ActivityType) -> None:
    never, once, twice, thrice = (groups.new_contact() for _ in range(4))
    groups.log(once, {"type": LOANS})
    groups.log(twice, {"type": LOANS}, {"type": OTHER}, {"type": LOANS})
    groups.log(thrice, *[{"type": LOANS}] * 3)
    groups.log(never, *[{"type": OTHER}] * 3)
    everyone = {never, once, twice, thrice}
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({}, {once, twice, thrice}),
        ({"at_least": 1}, {once, twice, thrice}),
        ({"at_least": 2}, {twice, thrice}),
        ({"at_least": 3}, {thrice}),
        ({"at_least": 4}, set()),
        ({"at_least": 0}, everyone),
        ({"at_most": 0}, {never}),
        ({"at_most": 1}, {never, once}),
        ({"at_most": 2}, {never, once, twice}),
        ({"at_most": 3}, everyone),
        ({"exactly": 0}, {never}),
        ({"exactly": 1}, {once}),
        ({"exactly": 2}, {twice}),
        ({"exactly": 3}, {thrice}),
    ]
    for count, expected in cases:
        holds(groups, {"activity": {"type": LOANS, **count}}, expected)
    holds(groups, {"activity": {"type": OTHER, "exactly": 3}}, {never})
    holds(groups, {"activity": {"type": "pagevisit"}}, set())
    holds(groups, {"activity": {"type": "pagevisit", "at_most": 0}}, everyone)


def test_within_days_is_today_and_the_days_before(groups: Groups, loans: ActivityType) -> None:
    days = [0, 1, 6, 7, 29, 30, 400]
    contact = {d: groups.new_contact() for d in days}
    for d, who in contact.items():
        groups.log(who, {"type": LOANS, "occurredAt": on_day(d), "fields": {"years": 1}})
    # The first minute and the last of a day count on that day.
    edge_early, edge_late = groups.new_contact(), groups.new_contact()
    groups.log(
        edge_early, {"type": LOANS, "occurredAt": on_day(6, "00:00:00"), "fields": {"years": 1}}
    )
    groups.log(
        edge_late, {"type": LOANS, "occurredAt": on_day(7, "23:59:59.999"), "fields": {"years": 1}}
    )
    for within, expected in {
        1: {contact[0]},
        2: {contact[0], contact[1]},
        7: {contact[0], contact[1], contact[6], edge_early},
        8: {contact[0], contact[1], contact[6], contact[7], edge_early, edge_late},
        30: {contact[d] for d in (0, 1, 6, 7, 29)} | {edge_early, edge_late},
    }.items():
        holds(groups, {"activity": {"type": LOANS, "within_days": within}}, expected)
        # The same window on the activities themselves (a field filter every one passes).
        filtered = {"type": LOANS, "within_days": within, "fields": {"years": {"gte": 0}}}
        holds(groups, {"activity": filtered}, expected)
    recent = {contact[0], contact[1]}
    holds(
        groups,
        {"not": {"activity": {"type": LOANS, "within_days": 2}}},
        (set(contact.values()) | {edge_early, edge_late}) - recent,
    )


def test_a_window_counts_only_what_is_inside_it(groups: Groups, loans: ActivityType) -> None:
    inside_twice, split, outside_twice = (groups.new_contact() for _ in range(3))
    groups.log(
        inside_twice,
        {"type": LOANS, "occurredAt": on_day(0)},
        {"type": LOANS, "occurredAt": on_day(3)},
    )
    groups.log(
        split, {"type": LOANS, "occurredAt": on_day(1)}, {"type": LOANS, "occurredAt": on_day(10)}
    )
    groups.log(outside_twice, *[{"type": LOANS, "occurredAt": on_day(9)}] * 2)
    holds(groups, {"activity": {"type": LOANS, "at_least": 2, "within_days": 7}}, {inside_twice})
    holds(groups, {"activity": {"type": LOANS, "exactly": 1, "within_days": 7}}, {split})
    holds(
        groups,
        {"activity": {"type": LOANS, "at_most": 1, "within_days": 7}},
        {split, outside_twice},
    )
    holds(
        groups, {"activity": {"type": LOANS, "at_least": 2}}, {inside_twice, split, outside_twice}
    )


def test_between_is_whole_utc_days_both_ends_included(groups: Groups, loans: ActivityType) -> None:
    at = {
        "day before": "2026-01-09T23:59:59.999Z",
        "first instant": "2026-01-10T00:00:00Z",
        "offset, day before in UTC": "2026-01-10T01:30:00+02:00",
        "offset, first day in UTC": "2026-01-09T23:30:00-01:00",
        "offset, last day in UTC": "2026-01-21T00:30:00+01:00",
        "last instant": "2026-01-20T23:59:59.999Z",
        "day after": "2026-01-21T00:00:00Z",
        "offset, day after in UTC": "2026-01-20T23:30:00-01:00",
    }
    contact = {name: groups.new_contact() for name in at}
    for name, occurred in at.items():
        groups.log(contact[name], {"type": LOANS, "occurredAt": occurred, "fields": {"years": 5}})
    inside = {
        contact[n]
        for n in (
            "first instant",
            "offset, first day in UTC",
            "offset, last day in UTC",
            "last instant",
        )
    }
    between = {"from": "2026-01-10", "to": "2026-01-20"}
    holds(groups, {"activity": {"type": LOANS, "between": between}}, inside)
    holds(
        groups,
        {"activity": {"type": LOANS, "between": between, "fields": {"years": {"eq": 5}}}},
        inside,
    )
    holds(
        groups,
        {"activity": {"type": LOANS, "between": between, "exactly": 0}},
        set(contact.values()) - inside,
    )
    one_day = {"from": "2026-01-21", "to": "2026-01-21"}
    holds(
        groups,
        {"activity": {"type": LOANS, "between": one_day}},
        {contact["day after"], contact["offset, day after in UTC"]},
    )


def test_field_filters(groups: Groups, loans: ActivityType) -> None:
    ann, bob, cid, dan = (groups.new_contact() for _ in range(4))
    groups.log(
        ann,
        {"type": LOANS, "fields": {"amount": "50000.00", "product": "Mortgage", "years": 30}},
        {"type": LOANS, "fields": {"amount": "75000", "product": "mortgage", "years": 20}},
    )
    groups.log(bob, {"type": LOANS, "fields": {"amount": "49999.99", "product": "Car loan"}})
    groups.log(cid, {"type": LOANS, "fields": {"years": 5}}, {"type": LOANS})
    groups.log(dan, {"type": OTHER})
    amount = {"type": LOANS, "fields": {"amount": {"gte": "50000"}}}
    holds(groups, {"activity": amount}, {ann})
    holds(groups, {"activity": {**amount, "at_least": 2}}, {ann})
    holds(groups, {"activity": {**amount, "exactly": 1}}, set())
    holds(groups, {"activity": {**amount, "at_most": 0}}, {bob, cid, dan})
    holds(groups, {"activity": {"type": LOANS, "fields": {"amount": {"lt": "50000"}}}}, {bob})
    holds(groups, {"activity": {"type": LOANS, "fields": {"amount": {"eq": "50000"}}}}, {ann})
    holds(
        groups,
        {"activity": {"type": LOANS, "fields": {"amount": {"gt": "50000", "lte": "75000"}}}},
        {ann},
    )
    holds(
        groups,
        {"activity": {"type": LOANS, "fields": {"product": {"contains": "LOAN"}}}},
        {bob},
    )
    holds(groups, {"activity": {"type": LOANS, "fields": {"product": {"eq": "Mortgage"}}}}, {ann})
    holds(
        groups,
        {"activity": {"type": LOANS, "exactly": 1, "fields": {"years": {"gte": 20}}}},
        set(),
    )
    holds(
        groups,
        {"activity": {"type": LOANS, "fields": {"years": {"lt": 10}, "amount": {"lt": "1"}}}},
        set(),
    )
    holds(groups, {"activity": {"type": LOANS, "fields": {"years": {"lt": 10}}}}, {cid})
    holds(groups, {"activity": {"type": LOANS, "fields": {"years": {"lt": "10"}}}}, {cid})
    # Filters and counts: cid's unfiltered activity counts without a filter only.
    holds(groups, {"activity": {"type": LOANS, "exactly": 2}}, {ann, cid})


# -- contact field conditions -------------------------------------------------------------


@pytest.fixture
def people(groups: Groups, loans: ActivityType) -> dict[str, str]:
    ann, bob, cid = (groups.new_contact() for _ in range(3))
    groups.data_input(
        ann,
        Email="Ann.Smith@Bank.example",
        FirstName="Ann",
        City="Brno",
        Country="CZE",
        Birthday="1985-05-01",
        ZIP="60200",
    )
    groups.data_input(
        bob,
        FirstName="Bob",
        City="Praha",
        Country="USA",
        State="CA",
        Birthday="1995-01-01",
        CompanyName="Loan_Co 100%",
        ZIP="12345",
    )
    return {"ann": ann, "bob": bob, "cid": cid}


def field_cases(p: dict[str, str]) -> list[tuple[dict[str, Any], set[str]]]:
    ann, bob, cid = p["ann"], p["bob"], p["cid"]
    everyone = {ann, bob, cid}
    yesterday = str(today() - dt.timedelta(days=1))
    tomorrow = str(today() + dt.timedelta(days=1))
    return [
        ({"field": "city", "equals": "Brno"}, {ann}),
        ({"field": "city", "equals": "brno"}, set()),
        ({"field": "country", "equals": "usa"}, {bob}),
        ({"field": "state", "equals": "ca"}, {bob}),
        ({"field": "email", "equals": "ann.smith@bank.example"}, {ann}),
        ({"field": "email", "equals": "ANN.SMITH@BANK.EXAMPLE"}, {ann}),
        ({"field": "zip", "equals": 12345}, {bob}),
        ({"field": "zip", "equals": "12345"}, {bob}),
        ({"field": "city", "not_equals": "Brno"}, {bob, cid}),
        ({"field": "email", "not_equals": "ann.smith@BANK.example"}, {bob, cid}),
        ({"field": "city", "contains": "rn"}, {ann}),
        ({"field": "first_name", "contains": "B"}, {bob}),
        ({"field": "company_name", "contains": "loan_co"}, {bob}),
        ({"field": "company_name", "contains": "n_C"}, {bob}),
        ({"field": "company_name", "contains": "100%"}, {bob}),
        ({"field": "company_name", "contains": "n%C"}, set()),
        ({"field": "email", "contains": "@bank."}, {ann}),
        ({"field": "city", "in": ["Brno", "Praha", "Wien"]}, {ann, bob}),
        ({"field": "country", "in": ["cze"]}, {ann}),
        ({"field": "email", "in": ["ANN.smith@bank.example", "x@y.example"]}, {ann}),
        ({"field": "zip", "in": [60200, "12345"]}, {ann, bob}),
        ({"field": "email", "exists": True}, {ann}),
        ({"field": "email", "exists": False}, {bob, cid}),
        ({"field": "state", "exists": True}, {bob}),
        ({"field": "birthday", "exists": True}, {ann, bob}),
        ({"field": "birthday", "before": "1990-01-01"}, {ann}),
        ({"field": "birthday", "before": "1985-05-01"}, set()),
        ({"field": "birthday", "after": "1985-05-01"}, {ann, bob}),
        ({"field": "birthday", "after": "1990-01-01"}, {bob}),
        ({"field": "created_at", "after": yesterday}, everyone),
        ({"field": "created_at", "after": tomorrow}, set()),
        ({"field": "created_at", "before": tomorrow}, everyone),
        ({"field": "created_at", "before": str(today())}, set()),
        ({"field": "updated_at", "after": str(today())}, everyone),
        ({"field": "notes", "exists": False}, everyone),
        ({"field": "attributes.plan", "exists": False}, everyone),
    ]


def test_contact_field_conditions(groups: Groups, people: dict[str, str]) -> None:
    for contact, expected in field_cases(people):
        holds(groups, {"contact": contact}, expected)


@pytest.mark.parametrize(
    "contact",
    [
        {"field": "birthday", "equals": "1985-05-01"},
        {"field": "birthday", "contains": "1985"},
        {"field": "birthday", "in": ["1985-05-01"]},
        {"field": "created_at", "equals": "2026-01-01"},
        {"field": "created_at", "contains": "2026"},
        {"field": "city", "equals": True},
        {"field": "city", "in": [{"a": 1}]},
        {"field": "city", "in": [None]},
        {"field": "city", "in": [["Brno"]]},
    ],
)
def test_comparisons_that_do_not_fit_the_field_are_refused(
    groups: Groups, people: dict[str, str], contact: dict[str, Any], expect_error: ErrorCheck
) -> None:
    expect_error(groups.validate({"contact": contact}), 400, "invalid_field", "condition")
    expect_error(groups.post({"contact": contact}), 400, "invalid_field", "condition")


def test_custom_attributes_from_segment_traits(
    groups: Groups, client: TestClient, hub: Hub, loans: ActivityType
) -> None:
    assert groups.tracking_headers is not None
    key = groups.tracking_headers["Authorization"].removeprefix("Bearer ")
    auth = {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}

    def identify(user: str, **traits: Any) -> None:
        answer = client.post("/v1/identify", json={"userId": user, "traits": traits}, headers=auth)
        assert answer.status_code == 200, answer.text

    identify("u-pro", plan="pro", seats=5)
    identify("u-team", plan="team", seats=12)
    identify("u-none", firstName="Nina")
    pro = groups.create({"contact": {"field": "attributes.plan", "equals": "pro"}})
    (pro_member,) = groups.members(pro["id"])
    contact = client.get(f"/api/contacts/{pro_member}", headers=groups.headers).json()
    assert contact["attributes"]["plan"] == "pro"
    paid = groups.create({"contact": {"field": "attributes.plan", "in": ["pro", "team"]}})
    assert len(groups.members(paid["id"])) == 2
    assert groups.count({"contact": {"field": "attributes.plan", "exists": True}}) == 2
    assert groups.count({"contact": {"field": "attributes.plan", "exists": False}}) == 1
    assert groups.count({"contact": {"field": "attributes.plan", "contains": "EA"}}) == 1
    assert groups.count({"contact": {"field": "attributes.plan", "not_equals": "pro"}}) == 2
    seats = groups.validate({"contact": {"field": "attributes.seats", "equals": 12}})
    assert seats.status_code in (200, 400), seats.text
    if seats.status_code == 200:
        assert seats.json()["count"] == 1
    assert groups.count({"contact": {"field": "attributes.seats", "equals": "12"}}) == 1
    # Traits change memberships as they are stored.
    identify("u-pro", plan="free")
    groups.wait_member(pro["id"], pro_member, member=False)
    assert groups.members(paid["id"]) - {pro_member} == groups.members(paid["id"])


# -- consent and group conditions ---------------------------------------------------------


def test_consent_conditions_follow_the_newest_agreement(
    groups: Groups, loans: ActivityType
) -> None:
    groups.create_consent("Marketing")
    groups.create_consent("Tracking")
    agreed, revoked, again, other, never = (groups.new_contact() for _ in range(5))
    groups.agree(agreed, "Marketing")
    groups.agree(revoked, "Marketing")
    groups.agree(revoked, "Marketing", agree=False)
    groups.agree(again, "Marketing", agree=False)
    groups.agree(again, "Marketing")
    groups.agree(other, "Tracking")
    holds(groups, {"consent": "Marketing"}, {agreed, again})
    holds(groups, {"consent": "Tracking"}, {other})
    holds(groups, {"not": {"consent": "Marketing"}}, {revoked, other, never})
    holds(
        groups,
        {"all": [{"consent": "Marketing"}, {"consent": "Tracking"}]},
        set(),
    )
    group = groups.create({"consent": "Marketing"})
    groups.agree(agreed, "Marketing", agree=False)
    groups.wait_member(group["id"], agreed, member=False)
    groups.agree(never, "Marketing")
    groups.wait_member(group["id"], never)
    assert groups.members(group["id"]) == {again, never}


def test_group_conditions_read_the_other_groups_members(
    groups: Groups, loans: ActivityType
) -> None:
    ann, bob, cid = (groups.new_contact() for _ in range(3))
    groups.log(ann, {"type": LOANS})
    groups.log(bob, {"type": OTHER})
    used = groups.create({"activity": {"type": LOANS}}, "Used")
    other = groups.create({"activity": {"type": OTHER}}, "Other")
    holds(groups, {"group": used["id"]}, {ann})
    holds(groups, {"not": {"group": used["id"]}}, {bob, cid})
    holds(groups, {"any": [{"group": used["id"]}, {"group": other["id"]}]}, {ann, bob})
    holds(groups, {"all": [{"group": used["id"]}, {"group": other["id"]}]}, set())
    chained = groups.create({"not": {"group": used["id"]}}, "Not used")
    twice = groups.create({"all": [{"group": chained["id"]}, {"not": {"group": other["id"]}}]})
    assert groups.members(twice["id"]) == {cid}
    # A change flows through the chain: cid uses the calculator.
    groups.log(cid, {"type": LOANS})
    groups.wait_member(twice["id"], cid, member=False)
    assert groups.members(used["id"]) == {ann, cid}
    assert groups.members(chained["id"]) == {bob}


def test_all_any_not(groups: Groups, loans: ActivityType) -> None:
    # Every combination of (used loans, used other) for four contacts.
    both, only_loans, only_other, neither = (groups.new_contact() for _ in range(4))
    groups.log(both, {"type": LOANS}, {"type": OTHER})
    groups.log(only_loans, {"type": LOANS})
    groups.log(only_other, {"type": OTHER})
    loans_, other = {"activity": {"type": LOANS}}, {"activity": {"type": OTHER}}
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"all": [loans_]}, {both, only_loans}),
        ({"all": [loans_, other]}, {both}),
        ({"any": [loans_, other]}, {both, only_loans, only_other}),
        ({"not": loans_}, {only_other, neither}),
        ({"not": {"not": loans_}}, {both, only_loans}),
        ({"all": [loans_, {"not": other}]}, {only_loans}),
        ({"all": [{"not": loans_}, {"not": other}]}, {neither}),
        ({"any": [{"not": loans_}, {"not": other}]}, {only_loans, only_other, neither}),
        ({"any": [loans_, {"not": other}]}, {both, only_loans, neither}),
        ({"not": {"any": [loans_, other]}}, {neither}),
        ({"not": {"all": [loans_, other]}}, {only_loans, only_other, neither}),
        (
            {"any": [{"all": [loans_, {"not": other}]}, {"all": [other, {"not": loans_}]}]},
            {only_loans, only_other},
        ),
        (
            {"all": [{"any": [loans_, other]}, {"not": {"all": [loans_, other]}}]},
            {only_loans, only_other},
        ),
        ({"any": [{"not": {"any": [loans_, other]}}, {"all": [loans_, other]}]}, {both, neither}),
        (
            {"all": [{"activity": {"type": LOANS, "at_least": 0}}, {"not": loans_}]},
            {only_other, neither},
        ),
    ]
    for condition, expected in cases:
        holds(groups, condition, expected)


def test_a_group_its_type_no_longer_fits_keeps_its_members_and_others_keep_working(
    groups: Groups, make_type: Callable[..., ActivityType], admin_headers: dict[str, str]
) -> None:
    draft = make_type(
        name="Draft", code_name="custom_draft", fields=[{"name": "amount", "type": "decimal"}]
    )
    make_type(name="Other", code_name=OTHER)
    ann = groups.new_contact()
    groups.log(ann, {"type": OTHER})
    broken = groups.create(
        {
            "any": [
                {"activity": {"type": "custom_draft", "fields": {"amount": {"gte": "5"}}}},
                {"activity": {"type": OTHER}},
            ]
        }
    )
    other = groups.create({"activity": {"type": OTHER, "at_least": 2}})
    # Before its first activity a type's fields may still change: the filter names nothing now.
    renamed = groups.client.patch(
        f"/api/activity-types/{draft.id}",
        json={"fields": [{"name": "sum", "type": "decimal"}]},
        headers=admin_headers,
    )
    assert renamed.status_code == 200, renamed.text
    groups.log(ann, {"type": OTHER})
    groups.wait_member(other["id"], ann)
    assert groups.members(broken["id"]) == {ann}
    bob = groups.new_contact()
    groups.log(bob, {"type": OTHER}, {"type": OTHER})
    groups.wait_member(other["id"], bob)
    # Changing it to a condition that fits again recomputes it.
    fixed = groups.patch(broken["id"], condition={"activity": {"type": OTHER}})
    assert fixed.status_code == 200, fixed.text
    assert groups.members(broken["id"]) == {ann, bob}


# -- membership kept current --------------------------------------------------------------


def test_an_activity_moves_a_contact_within_a_second(groups: Groups, loans: ActivityType) -> None:
    ann = groups.new_contact()
    group = groups.create({"activity": {"type": LOANS, "at_least": 2}})
    at_most = groups.create({"activity": {"type": LOANS, "at_most": 1}})
    assert groups.check(at_most["id"], ann)["member"] is True
    groups.log(ann, {"type": LOANS})
    time.sleep(0.3)
    assert groups.check(group["id"], ann)["member"] is False
    groups.log(ann, {"type": LOANS})
    assert groups.wait_member(group["id"], ann) < 1.0
    assert groups.wait_member(at_most["id"], ann, member=False) < 1.0
    assert groups.get(group["id"])["member_count"] == 1
    assert groups.get(at_most["id"])["member_count"] == 0
    assert [g["id"] for g in groups.contact_groups(ann)] == [group["id"]]


def test_a_replayed_activity_moves_a_contact(
    groups: Groups, make_type: Callable[..., ActivityType]
) -> None:
    make_type(name="Other", code_name=OTHER)
    ann = groups.new_contact()
    answer = groups.client.post(
        "/tracking/activities",
        json={"channel": groups.channel, "contact": ann, "activities": [{"type": LOANS}]},
        headers=groups.tracking_headers,
    )
    assert answer.json()["results"][0]["status"] == 404, answer.text
    make_type(name="Loan calculator usage", code_name=LOANS)
    group = groups.create({"activity": {"type": LOANS}})
    assert groups.members(group["id"]) == set()
    (rejected,) = groups.walk("/api/rejected-activities")
    replayed = groups.client.post(
        f"/api/rejected-activities/{rejected['id']}/replay", headers=groups.headers
    )
    assert replayed.status_code == 200, replayed.text
    groups.wait_member(group["id"], ann)


def test_field_changes_move_contacts(groups: Groups, loans: ActivityType) -> None:
    ann = groups.new_contact()
    brno = groups.create({"contact": {"field": "city", "equals": "Brno"}})
    groups.data_input(ann, City="Brno")
    groups.wait_member(brno["id"], ann)
    groups.data_input(ann, City="Praha")
    groups.wait_member(brno["id"], ann, member=False)
    groups.data_input(ann, City="Brno")
    groups.wait_member(brno["id"], ann)
    groups.data_input(ann, City="")
    groups.wait_member(brno["id"], ann, member=False)


@pytest.fixture
def site(
    client: TestClient, make_channel: Callable[..., Channel], make_key: Callable[..., CreatedKey]
) -> dict[str, Any]:
    channel = make_channel(kind="website", allowed_origins=["https://bank.example"])
    return {"key": make_key("publishable", channel.id).key}


def browser(client: TestClient, site: dict[str, Any], route: str, body: dict[str, Any]) -> Any:
    answer = client.post(
        f"/browser/{route}",
        params={"key": site["key"]},
        json=body,
        headers={"Origin": "https://bank.example"},
    )
    assert answer.status_code in (200, 202), answer.text
    return answer.json()


def test_identify_moves_contacts_and_a_merge_leaves_the_merged_one_out(
    groups: Groups, client: TestClient, site: dict[str, Any], loans: ActivityType
) -> None:
    known = groups.create({"contact": {"field": "email", "exists": True}}, "Known")
    used = groups.create({"activity": {"type": LOANS}}, "Used")
    anonymous = groups.create({"contact": {"field": "email", "exists": False}}, "Anonymous")
    visitor = groups.new_contact()
    groups.wait_member(anonymous["id"], visitor)
    answer = browser(
        client,
        site,
        "identify",
        {"contact": visitor, "email": "ann@bank.example", "cookieLevel": "visitor"},
    )
    assert answer == {"contact": visitor, "merged": False}
    groups.wait_member(known["id"], visitor)
    groups.wait_member(anonymous["id"], visitor, member=False)

    # Another visitor uses the calculator, then proves to be Ann (a signed identify merges).
    second = groups.new_contact()
    groups.log(second, {"type": LOANS})
    groups.wait_member(used["id"], second)
    groups.wait_member(anonymous["id"], second)
    channel = groups.client.get("/api/channels", headers=groups.headers).json()["data"]
    secret = next(c["identity_secret"] for c in channel if c["kind"] == "website")
    signed = hmac.new(secret.encode(), b"ann@bank.example", hashlib.sha256).hexdigest()
    answer = browser(
        client,
        site,
        "identify",
        {"contact": second, "email": "ann@bank.example", "cookieLevel": "visitor", "hash": signed},
    )
    assert answer == {"contact": visitor, "merged": True}
    groups.wait_member(used["id"], visitor)
    # The merged contact leaves its groups (a check of its id answers for the survivor).
    deadline = time.monotonic() + 2
    while groups.members(used["id"]) != {visitor} and time.monotonic() < deadline:
        time.sleep(0.02)
    assert groups.members(used["id"]) == {visitor}
    assert groups.members(anonymous["id"]) == set()
    assert groups.check(used["id"], second)["contact"] == visitor
    assert [g["id"] for g in groups.contact_groups(second)] == [known["id"], used["id"]]


def test_browser_consents_move_contacts(
    groups: Groups, client: TestClient, site: dict[str, Any], loans: ActivityType
) -> None:
    groups.create_consent("Marketing")
    group = groups.create({"consent": "Marketing"})
    created = browser(client, site, "consent", {"consent": "Marketing", "agree": True})
    visitor = created["contact"]
    groups.wait_member(group["id"], visitor)
    browser(client, site, "consent", {"consent": "Marketing", "agree": False, "contact": visitor})
    groups.wait_member(group["id"], visitor, member=False)


def test_entries_and_exits_answer_was_the_contact_in_the_group_at_t(
    groups: Groups, loans: ActivityType
) -> None:
    groups.create_consent("Marketing")
    ann = groups.new_contact()
    group = groups.create({"consent": "Marketing"})
    moments: list[tuple[dt.datetime, bool]] = []
    for agree in (True, False, True, False):
        groups.agree(ann, "Marketing", agree=agree)
        groups.wait_member(group["id"], ann, member=agree)
        time.sleep(0.01)
        moments.append((dt.datetime.now(dt.UTC), agree))
        time.sleep(0.01)
    start = parse_time(group["created_at"])
    assert groups.check(group["id"], ann, at=start.isoformat())["member"] is False
    for moment, member in moments:
        answer = groups.check(group["id"], ann, at=moment.isoformat())
        assert answer["member"] is member, moment
        assert answer["at"] == moment.isoformat().replace("+00:00", "Z")
        if member:
            assert parse_time(answer["since"]) <= moment
            assert parse_time(answer["since"]) > start
    # The two stays are told apart: the second began after the first ended.
    first = parse_time(groups.check(group["id"], ann, at=moments[0][0].isoformat())["since"])
    second = parse_time(groups.check(group["id"], ann, at=moments[2][0].isoformat())["since"])
    assert first < moments[1][0] < second < moments[2][0]


def test_a_recomputation_carries_on_to_the_groups_built_on_it(
    groups: Groups, hub: Hub, loans: ActivityType
) -> None:
    ann = groups.new_contact()
    groups.log(ann, {"type": LOANS})
    used = groups.create({"activity": {"type": LOANS}}, "Used")
    follows = groups.create({"group": used["id"]}, "Follows used")
    assert hub.group_updates.wait_idle()
    assert groups.members(follows["id"]) == {ann}
    with hub.store.write() as conn:  # memberships lost, as after a restore from a backup
        conn.execute(group_members.delete())
    hub.groups.recompute(uuid.UUID(used["id"]))
    assert groups.members(used["id"]) == {ann}
    assert groups.members(follows["id"]) == {ann}


def test_windows_slide_once_a_day(groups: Groups, hub: Hub, loans: ActivityType) -> None:
    ann, bob = groups.new_contact(), groups.new_contact()
    groups.log(ann, {"type": LOANS, "occurredAt": on_day(5)})
    groups.log(bob, {"type": LOANS, "occurredAt": on_day(1)})
    recent = groups.create({"activity": {"type": LOANS, "within_days": 7}}, "Recent")
    lapsed = groups.create({"not": {"activity": {"type": LOANS, "within_days": 7}}}, "Lapsed")
    follows = groups.create({"group": recent["id"]}, "Follows recent")
    plain = groups.create({"activity": {"type": LOANS}}, "Ever")
    assert groups.members(recent["id"]) == {ann, bob}
    # The background updates of the activities above work with the real date: let them finish
    # before pretending it is three days later.
    assert hub.group_updates.wait_idle()
    # Today was computed at creation: nothing to do today.
    assert hub.groups.refresh_windows(today()) == []
    in_three_days = today() + dt.timedelta(days=3)
    refreshed = hub.groups.refresh_windows(in_three_days)
    assert set(refreshed) >= {uuid.UUID(recent["id"]), uuid.UUID(lapsed["id"])}
    assert uuid.UUID(plain["id"]) not in refreshed
    assert groups.members(recent["id"]) == {bob}
    assert groups.members(lapsed["id"]) == {ann}
    assert groups.members(follows["id"]) == {bob}
    assert groups.members(plain["id"]) == {ann, bob}
    assert groups.get(recent["id"])["member_count"] == 1
    # Once per day: the day is claimed.
    assert hub.groups.refresh_windows(in_three_days) == []
    assert groups.check(recent["id"], ann)["member"] is False
    assert groups.check(lapsed["id"], ann)["member"] is True


def test_a_hub_on_a_fake_clock_slides_windows_by_its_days(
    settings: Settings, loans: ActivityType
) -> None:
    clock = FakeClock(dt.datetime(2026, 3, 15, 23, 59, tzinfo=dt.UTC))
    node = Hub(settings, Store(make_engine(settings)), clock=clock)
    node.store.on_commit = None
    try:
        window = {"activity": {"type": LOANS, "within_days": 7}}
        recent = node.groups.create(GroupCreate(name="Recent", condition=window))
        plain = node.groups.create(
            GroupCreate(name="Ever", condition={"activity": {"type": LOANS}})
        )
        assert recent.computed_at == clock.now()
        assert node.groups.refresh_windows() == []
        clock.advance(59)  # still the same UTC day
        assert node.groups.refresh_windows() == []
        clock.advance(1)
        assert node.groups.refresh_windows() == [recent.id]
        assert node.groups.refresh_windows() == []
        assert node.groups.get(recent.id).computed_at == clock.now()
        assert node.groups.get(plain.id).computed_at == clock.now() - dt.timedelta(seconds=60)
        history = node.groups.history(recent.id, 3)
        assert (history.since, history.until) == (dt.date(2026, 3, 14), dt.date(2026, 3, 16))
    finally:
        node.close()


# -- changes that race ----------------------------------------------------------------------
# Through the services, with the background updates off (``hub.store.on_commit = None``), so
# that each test runs the incremental updates itself, in the order it wants.

POSTGRESQL_ONLY = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def member_ids(hub: Hub, group: uuid.UUID) -> set[uuid.UUID]:
    return {m.contact for m in hub.groups.members(group, MemberQuery(limit=1000)).data}


def consent_contact(hub: Hub, agreed: str, *codes: str) -> uuid.UUID:
    """A new contact who agreed to ``agreed``, after making the consents ``codes``."""
    for code in codes:
        hub.consents.create(ConsentCreate(code_name=code, display_name=code))
    contact = hub.contacts.create_anonymous().contact
    hub.consents.agree(contact, agreed, True, None)
    return contact


@contextmanager
def paused(
    monkeypatch: pytest.MonkeyPatch, module: Any, name: str, when: Callable[..., bool]
) -> Iterator[tuple[threading.Event, threading.Event]]:
    """Make ``module.name`` wait, when ``when(*args)`` holds, until the second event is set,
    setting the first once it waits."""
    real = getattr(module, name)
    waiting, go = threading.Event(), threading.Event()

    def wait_then_call(*args: Any) -> Any:
        if when(*args):
            waiting.set()
            assert go.wait(10)
        return real(*args)

    monkeypatch.setattr(module, name, wait_then_call)
    try:
        yield waiting, go
    finally:
        go.set()
        monkeypatch.setattr(module, name, real)


def in_thread(work: Callable[[], object], name: str | None = None) -> Callable[[], None]:
    """Start ``work`` in a thread; the function returned joins it and raises what it raised."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=run, name=name)
    thread.start()

    def join() -> None:
        thread.join(20)
        assert not thread.is_alive()
        if failed:
            raise failed[0]

    return join


def test_a_condition_changed_by_a_node_whose_clock_is_behind_is_the_one_evaluated(
    hub: Hub, settings: Settings
) -> None:
    hub.store.on_commit = None
    ann = consent_contact(hub, "A", "A", "B", "Z")
    first = hub.groups.create(GroupCreate(name="First", condition={"consent": "A"}))
    second = hub.groups.create(GroupCreate(name="Second", condition={"consent": "Z"}))
    hub.groups.update_contacts([ann], CONSENTS_CHANGED)
    # The first group's condition changes on a node whose clock is behind the one that
    # made the second group.
    behind = FakeClock(second.updated_at - dt.timedelta(milliseconds=1))
    other = Hub(settings, Store(make_engine(settings)), clock=behind)
    other.store.on_commit = None
    try:
        changed = other.groups.update(first.id, GroupUpdate(condition={"consent": "B"}))
    finally:
        other.close()
    assert changed.updated_at < second.updated_at
    assert member_ids(hub, first.id) == set()
    # Ann agrees to Z: evaluated with the first group's new condition, she stays out of it.
    hub.consents.agree(ann, "Z", True, None)
    hub.groups.update_contacts([ann], CONSENTS_CHANGED)
    assert member_ids(hub, second.id) == {ann}
    assert member_ids(hub, first.id) == set()


@POSTGRESQL_ONLY
def test_a_condition_committed_after_a_later_change_is_the_one_evaluated(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.store.on_commit = None
    ann = consent_contact(hub, "A", "A", "B", "Z")
    first = hub.groups.create(GroupCreate(name="First", condition={"consent": "A"}))
    second = hub.groups.create(GroupCreate(name="Second", condition={"consent": "Z"}))
    # The first group's new condition takes long to compute; meanwhile the second group is
    # renamed and an update reads the groups.
    with paused(
        monkeypatch, computing, "recompute_all", lambda _c, group, *_: group == first.id
    ) as (waiting, go):
        join_change = in_thread(
            lambda: hub.groups.update(first.id, GroupUpdate(condition={"consent": "B"}))
        )
        assert waiting.wait(10)
        hub.groups.update(second.id, GroupUpdate(name="Second, renamed"))
        join_update = in_thread(lambda: hub.groups.update_contacts([ann], CONSENTS_CHANGED))
        time.sleep(0.3)
        go.set()
        join_change()
        join_update()
    assert member_ids(hub, first.id) == set()
    hub.consents.agree(ann, "Z", True, None)
    hub.groups.update_contacts([ann], CONSENTS_CHANGED)
    assert member_ids(hub, first.id) == set()


@POSTGRESQL_ONLY
def test_an_update_that_reads_while_another_writes_the_same_contact_waits_for_it(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.store.on_commit = None
    hub.consents.create(ConsentCreate(code_name="A", display_name="A"))
    ann = hub.contacts.create_anonymous().contact
    group = hub.groups.create(GroupCreate(name="Agreed", condition={"consent": "A"}))
    hub.consents.agree(ann, "A", True, None)
    # The update for the agreement finds that Ann enters, and takes long to write it; she
    # revokes meanwhile, and the update for the revocation runs before the first commits.
    with paused(monkeypatch, computing, "apply_some", lambda *_: True) as (waiting, go):
        join_first = in_thread(lambda: hub.groups.update_contacts([ann], CONSENTS_CHANGED))
        assert waiting.wait(10)
        monkeypatch.setattr(computing, "apply_some", membership.apply_some)
        hub.consents.agree(ann, "A", False, None)
        join_second = in_thread(lambda: hub.groups.update_contacts([ann], CONSENTS_CHANGED))
        time.sleep(0.3)
        go.set()
        join_first()
        join_second()
    assert member_ids(hub, group.id) == set()


@POSTGRESQL_ONLY
@pytest.mark.parametrize("how", ["create", "update"])
def test_an_update_waits_for_a_full_computation_under_way(
    hub: Hub, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    hub.store.on_commit = None
    ann = consent_contact(hub, "A", "A", "B")
    anyone = hub.groups.create(GroupCreate(name="Anyone", condition={"consent": "B"}))
    # The group is computed in full (Ann agreed), and takes long to write it; she revokes
    # meanwhile, and the update for the revocation runs before the computation commits.
    with paused(monkeypatch, membership, "_write_difference", lambda *_: True) as (waiting, go):
        if how == "create":
            body = GroupCreate(name="Agreed", condition={"consent": "A"})
            join_computation = in_thread(lambda: hub.groups.create(body))
        else:
            change = GroupUpdate(condition={"consent": "A"})
            join_computation = in_thread(lambda: hub.groups.update(anyone.id, change))
        assert waiting.wait(10)
        hub.consents.agree(ann, "A", False, None)
        join_update = in_thread(lambda: hub.groups.update_contacts([ann], CONSENTS_CHANGED))
        time.sleep(0.3)
        go.set()
        join_computation()
        join_update()
    for group in hub.groups.list_page(MemberQuery(limit=10)).data:
        assert member_ids(hub, group.id) == set(), group.name
        assert group.member_count == 0


@POSTGRESQL_ONLY
def test_a_full_computation_waits_for_an_update_under_way_without_a_deadlock(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.store.on_commit = None
    hub.consents.create(ConsentCreate(code_name="A", display_name="A"))
    ann = hub.contacts.create_anonymous().contact
    group = hub.groups.create(GroupCreate(name="Agreed", condition={"consent": "A"}))
    hub.consents.agree(ann, "A", True, None)
    # The update writing Ann's entry holds its locks while the group's condition is changed
    # (which writes the group's row, then computes it in full).
    with paused(monkeypatch, computing, "apply_some", lambda *_: True) as (waiting, go):
        join_update = in_thread(lambda: hub.groups.update_contacts([ann], CONSENTS_CHANGED))
        assert waiting.wait(10)
        change = GroupUpdate(condition={"consent": "A"})
        join_change = in_thread(lambda: hub.groups.update(group.id, change))
        time.sleep(0.3)
        go.set()
        join_update()
        join_change()
    assert member_ids(hub, group.id) == {ann}
    assert hub.groups.get(group.id).member_count == 1


@POSTGRESQL_ONLY
def test_two_nodes_write_member_counts_in_one_order(
    hub: Hub, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.store.on_commit = None
    hub.consents.create(ConsentCreate(code_name="A", display_name="A"))
    first, second = (
        hub.groups.create(GroupCreate(name=name, condition={"consent": "A"}))
        for name in ("First", "Second")
    )
    ann, bob = (hub.contacts.create_anonymous().contact for _ in range(2))
    for contact in (ann, bob):
        hub.consents.agree(contact, "A", True, None)
    other = Hub(settings, Store(make_engine(settings)))
    other.store.on_commit = None
    try:
        # Each node reads the groups at another moment; a count written in between moves a
        # group's row, and PostgreSQL then lists the groups in another order.
        with hub.store.read() as conn:
            one_order = [g.id for g in hub.groups.plans.get(conn, today()).groups]
        with hub.store.write() as conn:
            conn.execute(
                contact_groups.update()
                .where(contact_groups.c.id == one_order[0])
                .values(member_count=contact_groups.c.member_count)
            )
        with other.store.read() as conn:
            other.groups.plans.get(conn, today())
        # Ann's update has written one group's count and waits; Bob's, on the other node,
        # writes both.
        real = membership.apply_some
        wrote_one, go = threading.Event(), threading.Event()

        def apply_then_wait(*args: Any) -> int:
            made = real(*args)
            if threading.current_thread().name == "ann" and not wrote_one.is_set():
                wrote_one.set()
                assert go.wait(10)
            return made

        monkeypatch.setattr(computing, "apply_some", apply_then_wait)
        join_ann = in_thread(lambda: hub.groups.update_contacts([ann], CONSENTS_CHANGED), "ann")
        assert wrote_one.wait(10)
        join_bob = in_thread(lambda: other.groups.update_contacts([bob], CONSENTS_CHANGED))
        time.sleep(0.3)
        go.set()
        join_ann()
        join_bob()
    finally:
        other.close()
    for group in (first, second):
        assert member_ids(hub, group.id) == {ann, bob}
        assert hub.groups.get(group.id).member_count == 2


def test_the_plan_cache_drops_its_plan_when_a_type_consent_or_group_changes(hub: Hub) -> None:
    cache = membership.GroupPlanCache()
    with hub.store.read() as conn:
        plan = cache.get(conn, today())
        for kind in ("channel", "key"):
            cache.changed(Change(kind, uuid.uuid4()))
        assert cache.get(conn, today()) is plan
        planned: tuple[ChangeKind, ...] = ("activity_type", "consent", "group")
        for kind in planned:
            cache.changed(Change(kind, uuid.uuid4()))
            rebuilt = cache.get(conn, today())
            assert rebuilt is not plan
            plan = rebuilt

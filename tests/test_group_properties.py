"""Contact groups, property-based, on both databases: after any sequence of activities (several
types, in and out of windows), contact field changes and consent changes, the membership kept
incrementally equals both a model of the condition language in Python and a full
recomputation."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import hypothesis
import pytest
from hypothesis import HealthCheck
from hypothesis import strategies as st
from starlette.testclient import TestClient

from waypost.hub import Hub
from waypost.services.activity_types import ActivityType

if TYPE_CHECKING:
    from tests.conftest import Tracker
    from tests.group_support import Groups, make_groups
else:
    from group_support import Groups, make_groups

TYPES = ["custom_a", "custom_b", "datainput"]
CITIES = ["Brno", "Praha", ""]
CONSENT = "Marketing"
CONTACTS = 2
DAYS_AGO = [0, 1, 2, 5, 15, 40]


@pytest.fixture
def groups(
    client: TestClient,
    admin_headers: dict[str, str],
    tracker: Tracker,
    make_type: Callable[..., ActivityType],
) -> Groups:
    made = make_groups(client, admin_headers, tracker)
    make_type(name="A", code_name="custom_a", fields=[{"name": "n", "type": "integer"}])
    make_type(name="B", code_name="custom_b")
    made.create_consent(CONSENT)
    made.create_consent("Other")
    return made


# -- a model of the condition language ----------------------------------------------------------


@dataclass
class Person:
    """What one contact did and is, as the test sent it."""

    activities: list[tuple[str, dt.date, int | None]] = field(default_factory=list)
    city: str | None = None
    agreed: bool = False


def holds(condition: dict[str, Any], person: Person, today: dt.date) -> bool:
    ((key, value),) = condition.items()
    if key == "all":
        return all(holds(c, person, today) for c in value)
    if key == "any":
        return any(holds(c, person, today) for c in value)
    if key == "not":
        return not holds(value, person, today)
    if key == "consent":
        return value == CONSENT and person.agreed
    if key == "contact":
        city = person.city
        if "equals" in value:
            return bool(city == value["equals"])
        if "not_equals" in value:
            return bool(city != value["not_equals"])
        if "in" in value:
            return city in value["in"]
        return (city is not None) is value["exists"]
    assert key == "activity"
    first: dt.date | None = None
    last: dt.date | None = None
    if "within_days" in value:
        first = today - dt.timedelta(days=value["within_days"] - 1)
    if "between" in value:
        first = dt.date.fromisoformat(value["between"]["from"])
        last = dt.date.fromisoformat(value["between"]["to"])
    least = value.get("fields", {}).get("n", {}).get("gte")
    count = sum(
        1
        for kind, day, n in person.activities
        if kind == value["type"]
        and (first is None or day >= first)
        and (last is None or day <= last)
        and (least is None or (n is not None and n >= least))
    )
    if "at_most" in value:
        return bool(count <= value["at_most"])
    if "exactly" in value:
        return bool(count == value["exactly"])
    return bool(count >= value.get("at_least", 1))


# -- strategies ------------------------------------------------------------------------------

TODAY = dt.datetime.now(dt.UTC).date()


def _activity(kind: str, count: tuple[str, int], window: dict[str, Any], n: int | None) -> Any:
    body: dict[str, Any] = {"type": kind, count[0]: count[1], **window}
    if n is not None and kind == "custom_a":
        body["fields"] = {"n": {"gte": n}}
    return {"activity": body}


WINDOWS = st.sampled_from(
    [
        {},
        {"within_days": 1},
        {"within_days": 3},
        {"within_days": 10},
        {
            "between": {
                "from": str(TODAY - dt.timedelta(days=20)),
                "to": str(TODAY - dt.timedelta(days=2)),
            }
        },
    ]
)
COUNTS = st.tuples(st.sampled_from(["at_least", "at_most", "exactly"]), st.integers(0, 3))
LEAVES = st.one_of(
    st.builds(_activity, st.sampled_from(TYPES), COUNTS, WINDOWS, st.none() | st.integers(0, 5)),
    st.sampled_from(
        [
            {"contact": {"field": "city", "equals": "Brno"}},
            {"contact": {"field": "city", "not_equals": "Brno"}},
            {"contact": {"field": "city", "in": ["Brno", "Praha"]}},
            {"contact": {"field": "city", "exists": True}},
            {"contact": {"field": "city", "exists": False}},
            {"consent": CONSENT},
            {"consent": "Other"},
        ]
    ),
)
CONDITIONS = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda items: {"all": items}),
        st.lists(inner, min_size=1, max_size=3).map(lambda items: {"any": items}),
        inner.map(lambda item: {"not": item}),
    ),
    max_leaves=4,
)
WHO = st.integers(0, CONTACTS - 1)
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(
            st.just("activity"),
            WHO,
            st.sampled_from(["custom_a", "custom_b"]),
            st.sampled_from(DAYS_AGO),
            st.integers(0, 5),
        ),
        st.tuples(st.just("city"), WHO, st.sampled_from(CITIES)),
        st.tuples(st.just("consent"), WHO, st.booleans()),
    ),
    min_size=1,
    max_size=10,
)


# -- the property ---------------------------------------------------------------------------


def apply(
    groups: Groups, people: dict[str, Person], contacts: list[str], op: tuple[Any, ...]
) -> None:
    now = dt.datetime.now(dt.UTC)
    contact = contacts[op[1]]
    person = people[contact]
    if op[0] == "activity":
        _, _, kind, days, n = op
        occurred = now - dt.timedelta(days=days)
        activity: dict[str, Any] = {"type": kind, "occurredAt": occurred.isoformat()}
        if kind == "custom_a":
            activity["fields"] = {"n": n}
        groups.log(contact, activity)
        person.activities.append((kind, occurred.date(), n if kind == "custom_a" else None))
    elif op[0] == "city":
        groups.data_input(contact, City=op[2])
        person.city = op[2] or None
        person.activities.append(("datainput", now.date(), None))
    else:
        groups.agree(contact, CONSENT, agree=op[2])
        person.agreed = op[2]


def kept(groups: Groups, group: str, contacts: list[str]) -> set[str]:
    return groups.members(group) & set(contacts)


def expected(condition: Any, people: dict[str, Person]) -> set[str]:
    today = dt.datetime.now(dt.UTC).date()
    return {c for c, person in people.items() if holds(condition, person, today)}


def settle(groups: Groups, wanted: dict[str, set[str]], contacts: list[str]) -> dict[str, set[str]]:
    """The kept memberships once they reach what the model says (or after 1.5 seconds)."""
    deadline = time.monotonic() + 1.5
    while True:
        found = {g: kept(groups, g, contacts) for g in wanted}
        if found == wanted or time.monotonic() > deadline:
            return found
        time.sleep(0.03)


@hypothesis.settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@hypothesis.given(
    first=CONDITIONS,
    second=CONDITIONS,
    before=OPERATIONS,
    after=OPERATIONS,
)
def test_incremental_membership_equals_a_full_recomputation(
    groups: Groups,
    hub: Hub,
    first: dict[str, Any],
    second: dict[str, Any],
    before: list[tuple[Any, ...]],
    after: list[tuple[Any, ...]],
) -> None:
    contacts = [groups.new_contact() for _ in range(CONTACTS)]
    people = {c: Person() for c in contacts}
    for op in before:
        apply(groups, people, contacts, op)
    # Created after some history (computed in full), the second one built on the first.
    a = groups.create(first)
    combined = {"any": [{"group": a["id"]}, second]}
    answer = groups.post(
        {"all": [combined, {"not": {"all": [first, second]}}]}, f"Group {time.monotonic_ns()}"
    )
    if answer.status_code == 400 and "too complex" in answer.text:
        # Nested this deep, the SQL is beyond SQLite's parser: refused (a 400), not judged here.
        hypothesis.reject()
    assert answer.status_code == 201, answer.text
    b = answer.json()
    conditions = {a["id"]: first, b["id"]: b["condition"]}
    either = {"all": [{"any": [first, second]}, {"not": {"all": [first, second]}}]}
    model = {a["id"]: expected(first, people), b["id"]: expected(either, people)}
    assert {g: kept(groups, g, contacts) for g in model} == model, conditions
    for op in after:
        apply(groups, people, contacts, op)
    model = {a["id"]: expected(first, people), b["id"]: expected(either, people)}
    incremental = settle(groups, model, contacts)
    assert incremental == model, conditions
    for group in (a["id"], b["id"]):
        hub.groups.recompute(uuid.UUID(group))
    assert {g: kept(groups, g, contacts) for g in model} == incremental, conditions
    for group in (b["id"], a["id"]):
        answer = groups.client.delete(f"/api/groups/{group}", headers=groups.headers)
        assert answer.status_code == 204, answer.text

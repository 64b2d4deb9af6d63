"""One contact against one group: the kept membership now and at past moments, and the
explanation of a condition node by node."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from waypost.domain.conditions import parse_condition
from waypost.hub import Hub
from waypost.services.activity_types import ActivityType
from waypost.services.consents import ConsentCreate
from waypost.services.group_checks import Explanation, Membership, explain, membership
from waypost.services.group_rules import checked
from waypost.services.group_sql import load_context
from waypost.services.groups import GroupCreate


def test_membership_now_and_at_moments_before_and_after_the_entry(hub: Hub) -> None:
    hub.store.on_commit = None
    hub.consents.create(ConsentCreate(code_name="A", display_name="A"))
    ann, bob = (hub.contacts.create_anonymous().contact for _ in range(2))
    hub.consents.agree(ann, "A", True, None)
    before = dt.datetime.now(dt.UTC)
    group = hub.groups.create(GroupCreate(name="Agreed", condition={"consent": "A"})).id
    after = dt.datetime.now(dt.UTC)
    with hub.store.read() as conn:
        now = membership(conn, group, ann, None)
        assert now.member
        assert now.since is not None
        assert before <= now.since <= after
        assert membership(conn, group, bob, None) == Membership(group, bob, False, None)
        assert membership(conn, group, ann, before) == Membership(group, ann, False, None, before)
        assert membership(conn, group, ann, after) == Membership(group, ann, True, now.since, after)


def test_an_explanation_follows_the_condition_node_by_node(
    hub: Hub, make_type: Callable[..., ActivityType]
) -> None:
    hub.store.on_commit = None
    make_type(name="Loans", code_name="custom_loans")
    for code in "AB":
        hub.consents.create(ConsentCreate(code_name=code, display_name=code))
    ann = hub.contacts.create_anonymous().contact
    hub.consents.agree(ann, "A", True, None)
    raw: dict[str, Any] = {
        "all": [
            {"consent": "A"},
            {"not": {"consent": "B"}},
            {"activity": {"type": "custom_loans"}},
        ]
    }
    condition = parse_condition(raw)
    with hub.store.read() as conn:
        ctx = checked(load_context(conn, dt.datetime.now(dt.UTC).date(), [ann]), condition)
        found = explain(conn, condition, raw, ctx, ann)
    agreed, not_b, loans = raw["all"]
    assert found == Explanation(
        raw,
        held=False,
        children=[
            Explanation(agreed, held=True),
            Explanation(not_b, held=True, children=[Explanation({"consent": "B"}, held=False)]),
            Explanation(loans, held=False, count=0, activities=[]),
        ],
    )

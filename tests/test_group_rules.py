"""The rules of a group's condition: each refusal is a 400 invalid_field on ``condition``."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from waypost.domain.conditions import parse_condition
from waypost.errors import ApiError
from waypost.hub import Hub
from waypost.services.activity_types import ActivityType
from waypost.services.consents import ConsentCreate
from waypost.services.group_rules import check_references, checked, parsed
from waypost.services.group_sql import load_context
from waypost.services.groups import GroupCreate


def refused(call: Callable[[], Any], words: str) -> None:
    with pytest.raises(ApiError) as caught:
        call()
    assert (caught.value.status, caught.value.code, caught.value.field) == (
        400,
        "invalid_field",
        "condition",
    )
    assert words in caught.value.message


def test_a_condition_that_does_not_parse_is_refused() -> None:
    assert parsed({"consent": "A"}) == parse_condition({"consent": "A"})
    refused(lambda: parsed({"all": []}), "non-empty list")
    refused(lambda: parsed({"sometimes": 1}), "")


def test_a_condition_names_only_what_exists(hub: Hub) -> None:
    hub.consents.create(ConsentCreate(code_name="A", display_name="A"))
    with hub.store.read() as conn:
        check_references(conn, None, parse_condition({"consent": "A"}))
        missing = uuid.uuid4()
        refused(
            lambda: check_references(conn, None, parse_condition({"group": str(missing)})),
            f"no group {missing}",
        )
        refused(
            lambda: check_references(conn, None, parse_condition({"consent": "B"})),
            "no consent 'B'",
        )
        refused(
            lambda: check_references(
                conn, None, parse_condition({"activity": {"type": "custom_nothing"}})
            ),
            "no activity type 'custom_nothing'",
        )


def test_groups_may_not_refer_to_each_other_in_a_cycle(hub: Hub) -> None:
    hub.consents.create(ConsentCreate(code_name="A", display_name="A"))
    first = hub.groups.create(GroupCreate(name="First", condition={"consent": "A"})).id
    second = hub.groups.create(GroupCreate(name="Second", condition={"group": str(first)})).id
    with hub.store.read() as conn:
        refused(
            lambda: check_references(conn, first, parse_condition({"group": str(second)})),
            "cycle",
        )
        refused(
            lambda: check_references(conn, first, parse_condition({"group": str(first)})),
            "cycle",
        )


def test_a_field_filter_must_compile_against_its_type(
    hub: Hub, make_type: Callable[..., ActivityType]
) -> None:
    make_type(name="Loans", code_name="custom_loans", fields=[{"name": "years", "type": "integer"}])
    today = dt.datetime.now(dt.UTC).date()
    good = parse_condition({"activity": {"type": "custom_loans", "fields": {"years": {"gte": 1}}}})
    bad = parse_condition({"activity": {"type": "custom_loans", "fields": {"colour": {"eq": 1}}}})
    with hub.store.read() as conn:
        ctx = load_context(conn, today, None)
        assert checked(ctx, good) is ctx
        refused(lambda: checked(ctx, bad), "colour")

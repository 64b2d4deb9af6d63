"""The pure rules of playbooks: their shapes, field filters matched against canonical values,
cadences, and the webhook body of each event."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from waypost.domain.fields import FieldSpec
from waypost.domain.playbooks import (
    Actions,
    ActivityTrigger,
    Cadence,
    ConsentAgreedTrigger,
    ConsentRef,
    ConsentRevokedTrigger,
    ContactData,
    EveryTime,
    GroupEnteredTrigger,
    GroupExitedTrigger,
    GroupRef,
    Once,
    OncePer,
    PlaybookError,
    PlaybookRef,
    Subject,
    Trigger,
    WebhookAction,
    activity_data,
    activity_matches,
    cadence_allows,
    check_actions,
    compile_filters,
    event_of,
    message_body,
    parse_audience,
)
from waypost.domain.triggers import ActivityStored

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
SPECS = (
    FieldSpec("amount", "decimal"),
    FieldSpec("count", "integer"),
    FieldSpec("product", "text"),
    FieldSpec("approved", "boolean"),
    FieldSpec("due", "datetime"),
)


class Body(msgspec.Struct, forbid_unknown_fields=True):
    trigger: Trigger
    cadence: Cadence
    actions: Actions


def decode(body: dict[str, Any]) -> Body:
    return msgspec.convert(body, Body)


def stored(**fields: object) -> ActivityStored:
    return ActivityStored(
        id=uuid.uuid4(),
        type_id=uuid.uuid4(),
        type_code="custom_loan",
        contact_id=uuid.uuid4(),
        channel_id=uuid.uuid4(),
        title="Loan 'x'",
        value="x",
        url="https://bank.example/loans",
        referrer=None,
        fields=dict(fields),
        occurred_at=NOW,
        received_at=NOW,
    )


# -- shapes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trigger", "kind"),
    [
        ({"event": "activity", "type": "loan"}, ActivityTrigger),
        ({"event": "activity", "type": "loan", "fields": {"n": {"eq": 1}}}, ActivityTrigger),
        ({"event": "group_entered", "group": str(uuid.uuid4())}, GroupEnteredTrigger),
        ({"event": "group_exited", "group": str(uuid.uuid4())}, GroupExitedTrigger),
        ({"event": "consent_agreed", "consent": "Newsletter"}, ConsentAgreedTrigger),
        ({"event": "consent_revoked", "consent": "Newsletter"}, ConsentRevokedTrigger),
    ],
)
def test_each_trigger_kind_decodes_by_its_event(trigger: dict[str, Any], kind: type) -> None:
    body = decode(
        {
            "trigger": trigger,
            "cadence": {"mode": "once"},
            "actions": [{"kind": "webhook", "endpoint": str(uuid.uuid4())}],
        }
    )
    assert isinstance(body.trigger, kind)
    assert event_of(body.trigger) == trigger["event"]
    assert msgspec.to_builtins(body.trigger) == trigger


@pytest.mark.parametrize(
    "bad",
    [
        {"trigger": {"event": "clicked", "type": "x"}},
        {"trigger": {"event": "activity"}},
        {"trigger": {"event": "activity", "type": "x", "group": "y"}},
        {"trigger": {"event": "group_entered", "group": "not a uuid"}},
        {"cadence": {"mode": "sometimes"}},
        {"cadence": {"mode": "once_per"}},
        {"cadence": {"mode": "once_per", "days": 0}},
        {"cadence": {"mode": "once_per", "days": 3651}},
        {"cadence": {"mode": "once", "days": 3}},
        {"actions": []},
        {"actions": [{"kind": "email", "endpoint": str(uuid.uuid4())}]},
        {"actions": [{"kind": "webhook", "endpoint": str(uuid.uuid4())}] * 11},
    ],
)
def test_shapes_refuse_what_they_do_not_take(bad: dict[str, Any]) -> None:
    body = {
        "trigger": {"event": "activity", "type": "loan"},
        "cadence": {"mode": "every_time"},
        "actions": [{"kind": "webhook", "endpoint": str(uuid.uuid4())}],
        **bad,
    }
    with pytest.raises(msgspec.ValidationError):
        decode(body)


def test_once_per_takes_one_to_3650_days() -> None:
    for days in (1, 7, 3650):
        body = decode(
            {
                "trigger": {"event": "activity", "type": "loan"},
                "cadence": {"mode": "once_per", "days": days},
                "actions": [{"kind": "webhook", "endpoint": str(uuid.uuid4())}],
            }
        )
        assert body.cadence == OncePer(days)


def test_an_endpoint_is_called_once_per_run() -> None:
    one, two = uuid.uuid4(), uuid.uuid4()
    check_actions([WebhookAction(one), WebhookAction(two)])
    with pytest.raises(PlaybookError) as caught:
        check_actions([WebhookAction(one), WebhookAction(two), WebhookAction(one)])
    assert caught.value.field == "actions[2].endpoint"


# -- audience --------------------------------------------------------------------------------


def test_no_audience_is_everyone_and_one_parses_as_a_group_condition() -> None:
    assert parse_audience(None) is None
    assert parse_audience({"all": [{"consent": "Newsletter"}]}) is not None


@pytest.mark.parametrize(
    ("audience", "field"),
    [
        ({}, "audience"),
        ({"every": []}, "audience.every"),
        ({"all": [{"activity": {"type": "x", "at_least": -1}}]}, "audience.all[0].activity"),
        ({"any": [{"consent": "a"}, {"group": "not an id"}]}, "audience.any[1].group"),
    ],
)
def test_an_audience_that_does_not_parse_names_where(audience: Any, field: str) -> None:
    with pytest.raises(PlaybookError) as caught:
        parse_audience(audience)
    assert caught.value.field == field
    assert str(caught.value)[0].isupper()


# -- field filters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"missing": {"eq": "x"}}, "trigger.fields.missing"),
        ({"amount": {}}, "trigger.fields.amount"),
        ({"amount": {"above": "1"}}, "trigger.fields.amount"),
        ({"amount": {"gte": "lots"}}, "trigger.fields.amount"),
        ({"amount": {"gte": True}}, "trigger.fields.amount"),
        ({"count": {"gt": "1.5"}}, "trigger.fields.count"),
        ({"product": {"gt": "a"}}, "trigger.fields.product"),
        ({"approved": {"eq": "maybe"}}, "trigger.fields.approved"),
        ({"approved": {"contains": "t"}}, "trigger.fields.approved"),
        ({"due": {"lt": "yesterday"}}, "trigger.fields.due"),
    ],
)
def test_a_filter_the_type_cannot_take_names_its_field(
    fields: dict[str, dict[str, object]], field: str
) -> None:
    with pytest.raises(PlaybookError) as caught:
        compile_filters(SPECS, fields)
    assert caught.value.field == field


def test_filters_take_values_as_group_conditions_do() -> None:
    filters = compile_filters(
        SPECS,
        {
            "amount": {"gte": 10000, "lt": "50000.5"},
            "count": {"eq": "3"},
            "approved": {"eq": True},
            "due": {"lt": "2026-04-01T00:00:00+02:00"},
        },
    )
    values = {(f.spec.name, f.op): f.value for f in filters}
    assert values[("amount", "gte")] == decimal.Decimal("10000")
    assert values[("amount", "lt")] == decimal.Decimal("50000.5")
    assert values[("count", "eq")] == 3
    assert values[("approved", "eq")] is True
    assert values[("due", "lt")] == dt.datetime(2026, 3, 31, 22, 0, tzinfo=dt.UTC)


def test_decimals_compare_as_numbers_not_as_text() -> None:
    filters = compile_filters(SPECS, {"amount": {"eq": "50000.1"}})
    assert activity_matches(filters, stored(amount="50000.10"))
    assert not activity_matches(filters, stored(amount="50000.11"))
    at_least = compile_filters(SPECS, {"amount": {"gte": "9"}})
    assert activity_matches(at_least, stored(amount="10"))  # as text, "10" < "9"
    assert not activity_matches(at_least, stored(amount="8.99"))


@given(
    st.decimals(
        allow_nan=False, allow_infinity=False, places=2, min_value=-(10**9), max_value=10**9
    ),
    st.decimals(
        allow_nan=False, allow_infinity=False, places=2, min_value=-(10**9), max_value=10**9
    ),
)
def test_every_decimal_operator_agrees_with_decimal_arithmetic(
    value: decimal.Decimal, bound: decimal.Decimal
) -> None:
    text = f"{value:f}"
    for op, holds in (
        ("eq", value == bound),
        ("gt", value > bound),
        ("gte", value >= bound),
        ("lt", value < bound),
        ("lte", value <= bound),
    ):
        filters = compile_filters(SPECS, {"amount": {op: f"{bound:f}"}})
        assert activity_matches(filters, stored(amount=text)) is holds, (op, text, bound)


@given(st.integers(-(2**63), 2**63 - 1), st.integers(-(2**63), 2**63 - 1))
def test_integer_ranges_agree_with_integer_comparison(value: int, bound: int) -> None:
    filters = compile_filters(SPECS, {"count": {"gt": bound}})
    assert activity_matches(filters, stored(count=value)) is (value > bound)


def test_datetimes_compare_as_moments() -> None:
    filters = compile_filters(SPECS, {"due": {"gte": "2026-03-01T13:00:00+01:00"}})
    assert activity_matches(filters, stored(due="2026-03-01T12:00:00.000000Z"))
    assert not activity_matches(filters, stored(due="2026-03-01T11:59:59.999999Z"))


def test_text_equals_exactly_and_contains_in_any_case() -> None:
    exact = compile_filters(SPECS, {"product": {"eq": "Mortgage"}})
    assert activity_matches(exact, stored(product="Mortgage"))
    assert not activity_matches(exact, stored(product="mortgage"))
    part = compile_filters(SPECS, {"product": {"contains": "GAGE"}})
    assert activity_matches(part, stored(product="Mortgage"))
    assert not activity_matches(part, stored(product="Car loan"))


def test_booleans_and_every_filter_of_a_trigger_must_hold() -> None:
    filters = compile_filters(SPECS, {"approved": {"eq": False}, "count": {"gte": 2}})
    assert activity_matches(filters, stored(approved=False, count=2))
    assert not activity_matches(filters, stored(approved=True, count=2))
    assert not activity_matches(filters, stored(approved=False, count=1))


def test_an_absent_or_unreadable_value_matches_no_filter() -> None:
    filters = compile_filters(SPECS, {"amount": {"lt": "1"}})
    assert not activity_matches(filters, stored())
    assert not activity_matches(filters, stored(amount="not a number"))
    assert activity_matches((), stored())


# -- cadence -----------------------------------------------------------------------------------


def test_every_time_always_runs() -> None:
    assert cadence_allows(EveryTime(), None, NOW)
    assert cadence_allows(EveryTime(), NOW, NOW)


def test_once_runs_only_for_a_contact_it_never_ran_for() -> None:
    assert cadence_allows(Once(), None, NOW)
    assert not cadence_allows(Once(), NOW - dt.timedelta(days=10_000), NOW)


def test_once_per_runs_again_when_the_days_have_passed() -> None:
    week = OncePer(7)
    assert cadence_allows(week, None, NOW)
    assert not cadence_allows(week, NOW - dt.timedelta(days=7) + dt.timedelta(seconds=1), NOW)
    assert cadence_allows(week, NOW - dt.timedelta(days=7), NOW)


# -- the webhook body --------------------------------------------------------------------------


def test_an_activity_message_carries_the_activity_as_the_admin_api_shows_it() -> None:
    event = stored(amount="50000.10")
    playbook = PlaybookRef(uuid.uuid4(), "Big loans")
    contact = ContactData(event.contact_id, email="ann@example.com", first_name="Ann")
    body = json.loads(
        message_body("activity", NOW, playbook, contact, Subject(activity=activity_data(event)))
    )
    assert body["type"] == "activity.performed"
    assert body["timestamp"] == "2026-03-01T12:00:00Z"
    data = body["data"]
    assert set(data) == {"playbook", "contact", "activity"}
    assert data["playbook"] == {"id": str(playbook.id), "name": "Big loans"}
    assert data["contact"]["id"] == str(event.contact_id)
    assert data["contact"]["email"] == "ann@example.com"
    assert data["contact"]["first_name"] == "Ann"
    assert data["contact"]["last_name"] is None
    assert data["activity"] == {
        "id": str(event.id),
        "type": "custom_loan",
        "contact": str(event.contact_id),
        "channel": str(event.channel_id),
        "title": "Loan 'x'",
        "value": "x",
        "url": "https://bank.example/loans",
        "referrer": None,
        "fields": {"amount": "50000.10"},
        "flags": None,
        "occurred_at": "2026-03-01T12:00:00Z",
        "received_at": "2026-03-01T12:00:00Z",
        "client_id": None,
        "consent_agreed": None,
        "consent_version": None,
    }


@pytest.mark.parametrize(
    ("event", "subject", "kind", "key", "expected"),
    [
        (
            "group_entered",
            Subject(group=GroupRef(uuid.UUID(int=7), "Loan shoppers")),
            "group.entered",
            "group",
            {"id": str(uuid.UUID(int=7)), "name": "Loan shoppers"},
        ),
        (
            "group_exited",
            Subject(group=GroupRef(uuid.UUID(int=7), "Loan shoppers")),
            "group.exited",
            "group",
            {"id": str(uuid.UUID(int=7)), "name": "Loan shoppers"},
        ),
        (
            "consent_agreed",
            Subject(consent=ConsentRef("Newsletter", 3)),
            "consent.agreed",
            "consent",
            {"code_name": "Newsletter", "version": 3},
        ),
        (
            "consent_revoked",
            Subject(consent=ConsentRef("Newsletter", 3)),
            "consent.revoked",
            "consent",
            {"code_name": "Newsletter", "version": 3},
        ),
    ],
)
def test_group_and_consent_messages_name_what_changed(
    event: Any, subject: Subject, kind: str, key: str, expected: dict[str, Any]
) -> None:
    contact = ContactData(uuid.uuid4())
    body = json.loads(message_body(event, NOW, PlaybookRef(uuid.uuid4(), "P"), contact, subject))
    assert body["type"] == kind
    assert set(body["data"]) == {"playbook", "contact", key}
    assert body["data"][key] == expected

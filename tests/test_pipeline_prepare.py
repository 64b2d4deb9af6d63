"""Decoding and validation of one activity against docs/tracking-api.md's rules, with a
hand-built catalog."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec
import pytest

from waypost.domain.fields import FieldSpec
from waypost.domain.suppressions import EMAIL, Suppressed, identity_digest
from waypost.pipeline.catalog import Snapshot, TypeInfo
from waypost.pipeline.prepare import Accepted, Rejected, decode_activity, prepare

NOW = dt.datetime(2026, 1, 31, 12, 0, tzinfo=dt.UTC)
LIMIT = 16_384


def make_type(code: str, name: str, *fields: FieldSpec, enabled: bool = True) -> TypeInfo:
    return TypeInfo(
        id=uuid.uuid4(),
        code_name=code,
        name=name,
        enabled=enabled,
        client_side=False,
        fields=tuple(fields),
        unknown_fields="reject",
        per_contact=None,
        per_ip=None,
    )


def field(name: str, type_: str, **flags: object) -> FieldSpec:
    return msgspec.convert({"name": name, "type": type_, **flags}, FieldSpec)


TYPES = [
    make_type("pagevisit", "Page visit"),
    make_type("click", "Click"),
    make_type("datainput", "Data input"),
    make_type("custom_loan_calculator", "Loan calculator usage"),
    make_type("custom_cta", "Custom CTA"),
    make_type("old_type", "Old type", enabled=False),
    make_type(
        "loan_request",
        "Loan request",
        field("amount", "decimal", required=True, primary=True),
        field("months", "integer"),
        field("approved", "boolean"),
        field("decided_at", "datetime"),
        field("site", "url"),
    ),
    make_type("plan_chosen", "Plan chosen", field("plan", "text", primary=True)),
]
SNAPSHOT = Snapshot(types={t.code_name: t for t in TYPES})


def run(activity: Any, now: dt.datetime = NOW, limit: int = LIMIT) -> Accepted | Rejected:
    raw = activity if isinstance(activity, bytes) else msgspec.json.encode(activity)
    return prepare(raw, SNAPSHOT, now, limit)


def accepted(activity: Any) -> Accepted:
    result = run(activity)
    assert isinstance(result, Accepted), result
    return result


def rejected(activity: Any, status: int, code: str, field: str | None = None) -> Rejected:
    result = run(activity)
    assert isinstance(result, Rejected), result
    assert result.status == status, result
    assert result.error.code == code, result
    assert result.error.message
    if field is not None:
        assert result.error.field == field, result
    return result


# -- the reference's examples ------------------------------------------------------------


def test_the_reference_activities_and_their_titles() -> None:
    visit = accepted({"type": "pagevisit", "url": "https://example.com/mypage"})
    assert visit.title == "Page visit 'https://example.com/mypage'"
    assert visit.url == "https://example.com/mypage"
    assert visit.value is None
    click = accepted({"type": "click", "value": "MyClickableElement"})
    assert click.title == "Clicked 'MyClickableElement'"
    data = accepted(
        {
            "type": "datainput",
            "value": "Registration form",
            "contactFields": {
                "ContactFirstName": "Luke",
                "ContactLastName": "Smith",
                "ContactEmail": "lsmith@domain.com",
            },
        }
    )
    assert data.title == "Data input 'Registration form'"
    assert data.contact_fields == {
        "first_name": "Luke",
        "last_name": "Smith",
        "email": "lsmith@domain.com",
    }
    custom = accepted({"type": "custom_loan_calculator", "value": "5000"})
    assert custom.title == "Loan calculator usage '5000'"
    assert custom.value == "5000"


def test_the_capitalised_reference_activity() -> None:
    custom = accepted({"Type": "custom_loan_calculator", "Value": "5000"})
    assert custom.title == "Loan calculator usage '5000'"
    assert custom.type.code_name == "custom_loan_calculator"


def test_a_page_visit_with_a_value_is_titled_by_it() -> None:
    visit = accepted({"type": "pagevisit", "url": "https://example.com/", "value": "Home"})
    assert visit.title == "Page visit 'Home'"


def test_a_custom_activity_without_a_value_is_titled_by_its_type_name() -> None:
    assert accepted({"type": "custom_loan_calculator"}).title == "Loan calculator usage"


def test_a_custom_title_replaces_the_generated_one() -> None:
    custom = accepted({"type": "custom_cta", "value": "btnCTA", "title": "Custom CTA click"})
    assert custom.title == "Custom CTA click"
    assert custom.value == "btnCTA"


@pytest.mark.parametrize(
    "activity",
    [
        {"type": "pagevisit", "url": "https://example.com/", "title": "Home"},
        {"type": "click", "value": "b", "title": "Big button"},
        {"type": "datainput", "value": "form", "title": "Form"},
    ],
)
def test_a_title_is_refused_on_builtin_types(activity: dict[str, str]) -> None:
    rejected(activity, 400, "invalid_field", "title")


def test_a_title_longer_than_the_column_is_refused() -> None:
    accepted({"type": "custom_cta", "title": "t" * 600})
    rejected({"type": "custom_cta", "title": "t" * 601}, 400, "invalid_field", "title")


def test_the_accepted_activity_keeps_its_payload_and_gets_a_fresh_uuid7() -> None:
    raw = b'{"type": "click", "value": "x", "referrer": "https://ref.example/"}'
    first, second = run(raw), run(raw)
    assert isinstance(first, Accepted)
    assert isinstance(second, Accepted)
    assert first.payload == raw
    assert first.referrer == "https://ref.example/"
    assert first.id.version == 7
    assert first.id != second.id
    assert first.occurred_at == NOW
    assert first.client_id is None


# -- property names ----------------------------------------------------------------------


def test_property_names_match_whatever_their_case() -> None:
    activity = decode_activity(
        b'{"TYPE": "datainput", "VALUE": "v", "Url": "https://e.example/", '
        b'"REFERRER": "https://r.example/", "contactfields": {"contactcity": "Brno"}, '
        b'"Fields": {}, "ID": "a1", "OCCURREDAT": "2026-01-31T10:00:00Z", "Title": null}'
    )
    assert activity.type == "datainput"
    assert activity.value == "v"
    assert activity.url == "https://e.example/"
    assert activity.referrer == "https://r.example/"
    assert activity.contact_fields == {"contactcity": "Brno"}
    assert activity.fields == {}
    assert activity.id == "a1"
    assert activity.occurred_at == "2026-01-31T10:00:00Z"


@pytest.mark.parametrize("name", ["color", "contact", "channel", "contact_fields", "occurred_at"])
def test_any_other_property_is_unknown(name: str) -> None:
    result = rejected({"Type": "click", "value": "x", name: "y"}, 400, "unknown_field", name)
    assert result.type_code == "click"


def test_a_property_given_twice_in_different_cases_is_refused() -> None:
    rejected(b'{"type": "click", "Type": "click", "value": "x"}', 400, "invalid_field")


@pytest.mark.parametrize("raw", [b"42", b'"click"', b"[]", b"null", b"true"])
def test_an_activity_must_be_an_object(raw: bytes) -> None:
    rejected(raw, 400, "invalid_field")


def test_type_is_required_and_a_string() -> None:
    rejected({"value": "x"}, 400, "missing_field", "type")
    rejected({"type": 5}, 400, "invalid_field", "type")


@pytest.mark.parametrize(
    ("name", "value"),
    [("value", 5000), ("url", 1), ("referrer", True), ("title", ["t"]), ("contactFields", "x")],
)
def test_wrong_json_types_are_invalid(name: str, value: object) -> None:
    rejected({"type": "datainput", "value": "v", name: value}, 400, "invalid_field", name)


# -- the rules of each type --------------------------------------------------------------


def test_a_page_visit_needs_a_url() -> None:
    rejected({"type": "pagevisit", "value": "Home"}, 400, "missing_field", "url")


@pytest.mark.parametrize("code", ["click", "datainput"])
@pytest.mark.parametrize("extra", [{}, {"value": ""}, {"value": None}])
def test_click_and_data_input_need_a_value(code: str, extra: dict[str, object]) -> None:
    rejected({"type": code, **extra}, 400, "missing_field", "value")


@pytest.mark.parametrize("name", ["url", "referrer"])
@pytest.mark.parametrize(
    "link",
    ["/mypage", "example.com/mypage", "ftp://example.com/", "javascript:alert(1)", "https://"],
)
def test_urls_are_absolute_http_or_https(name: str, link: str) -> None:
    rejected({"type": "click", "value": "x", name: link}, 400, "invalid_field", name)


def test_a_value_is_at_most_2000_characters() -> None:
    accepted({"type": "click", "value": "v" * 2000})
    rejected({"type": "click", "value": "v" * 2001}, 400, "invalid_field", "value")


def test_an_unknown_type_is_404() -> None:
    result = rejected({"type": "custom_nothing", "value": "x"}, 404, "activity_type_not_found")
    assert result.error.field == "type"
    assert result.type_code == "custom_nothing"


def test_type_code_names_are_exact() -> None:
    rejected({"type": "Custom_Loan_Calculator"}, 404, "activity_type_not_found", "type")
    rejected({"type": "PageVisit", "url": "https://e.example/"}, 404, "activity_type_not_found")


def test_a_disabled_type_is_404() -> None:
    result = rejected({"type": "old_type"}, 404, "activity_type_disabled", "type")
    assert result.type_code == "old_type"


def test_a_very_long_unknown_type_is_kept_short_enough_to_store() -> None:
    result = rejected({"type": "x" * 5000}, 404, "activity_type_not_found")
    assert result.type_code is not None
    assert len(result.type_code) <= 200


def test_a_very_long_unknown_property_names_a_field_short_enough_to_store() -> None:
    result = rejected({"type": "click", "value": "x", "y" * 5000: 1}, 400, "unknown_field")
    assert result.error.field is not None
    assert len(result.error.field) <= 200


# -- contact fields ----------------------------------------------------------------------


@pytest.mark.parametrize("code", ["pagevisit", "click", "custom_cta"])
def test_contact_fields_only_on_data_input(code: str) -> None:
    activity = {
        "type": code,
        "value": "v",
        "url": "https://e.example/",
        "contactFields": {"ContactFirstName": "Ann"},
    }
    rejected(activity, 400, "invalid_field", "contactFields")


def test_contact_fields_outside_the_list_are_unknown() -> None:
    activity = {"type": "datainput", "value": "v", "contactFields": {"ContactShoeSize": "42"}}
    rejected(activity, 400, "unknown_field", "contactFields.ContactShoeSize")


@pytest.mark.parametrize("value", [42, True, None, {"a": "b"}, ["Ann"]])
def test_contact_fields_take_strings_only(value: object) -> None:
    activity = {"type": "datainput", "value": "v", "contactFields": {"ContactFirstName": value}}
    rejected(activity, 400, "invalid_field", "contactFields.ContactFirstName")


@pytest.mark.parametrize(
    ("fields", "ok"),
    [
        ({"ContactCountry": "CZE"}, True),
        ({"ContactCountry": "USA", "ContactState": "CA"}, True),
        ({"ContactState": "NY"}, True),
        ({"ContactCountry": "CZ"}, False),
        ({"ContactCountry": "Czech Republic"}, False),
        ({"ContactState": "California"}, False),
        ({"ContactState": "XX"}, False),
        ({"ContactCountry": "CAN", "ContactState": "ON"}, False),
    ],
)
def test_country_and_state_codes(fields: dict[str, str], ok: bool) -> None:
    result = run({"type": "datainput", "value": "v", "contactFields": fields})
    assert isinstance(result, Accepted) is ok, result
    if not ok:
        assert isinstance(result, Rejected)
        assert result.error.code == "invalid_field"
        assert result.error.field is not None
        assert result.error.field.startswith("contactFields.")


def test_empty_contact_fields_are_allowed() -> None:
    assert accepted({"type": "datainput", "value": "v", "contactFields": {}}).contact_fields == {}


# -- fields of the type ------------------------------------------------------------------


def test_fields_are_validated_and_stored_canonically() -> None:
    loan = accepted(
        {
            "type": "loan_request",
            "fields": {
                "amount": "50000.10",
                "months": 12,
                "approved": False,
                "decided_at": "2026-01-31T14:00:00+02:00",
                "site": "https://bank.example/loans",
            },
        }
    )
    assert loan.fields == {
        "amount": "50000.10",
        "months": 12,
        "approved": False,
        "decided_at": "2026-01-31T12:00:00.000000Z",
        "site": "https://bank.example/loans",
    }
    # Filters compare a decimal as a number from the fields: nothing reads it from the index.
    assert loan.primary_value is None
    assert loan.value == "50000.10"
    assert loan.title == "Loan request '50000.10'"


def test_a_given_value_wins_over_the_primary_field() -> None:
    loan = accepted({"type": "loan_request", "value": "web", "fields": {"amount": "1"}})
    assert loan.value == "web"
    assert loan.primary_value is None


def test_a_primary_field_other_than_a_decimal_is_indexed_by_its_first_characters() -> None:
    chosen = accepted({"type": "plan_chosen", "fields": {"plan": "Gold"}})
    assert chosen.primary_value == "Gold"
    long = accepted({"type": "plan_chosen", "fields": {"plan": "x" * 250}})
    assert long.primary_value == "x" * 200
    assert accepted({"type": "plan_chosen"}).primary_value is None


@pytest.mark.parametrize(
    ("fields", "code", "where"),
    [
        ({}, "missing_field", "fields.amount"),
        ({"months": 3}, "missing_field", "fields.amount"),
        ({"amount": "1", "colour": "red"}, "unknown_field", "fields.colour"),
        ({"amount": False}, "field_type_mismatch", "fields.amount"),
        ({"amount": "1.5E2"}, "invalid_field", "fields.amount"),
        ({"amount": "1", "months": "12"}, "field_type_mismatch", "fields.months"),
        ({"amount": "1", "approved": "yes"}, "field_type_mismatch", "fields.approved"),
        ({"amount": "lots"}, "invalid_field", "fields.amount"),
        ({"amount": "1", "decided_at": "2026-01-31"}, "invalid_field", "fields.decided_at"),
        ({"amount": "1", "site": "bank.example"}, "invalid_field", "fields.site"),
    ],
)
def test_fields_breaking_the_types_rules(fields: dict[str, object], code: str, where: str) -> None:
    rejected({"type": "loan_request", "fields": fields}, 400, code, where)


def test_a_required_field_is_required_even_without_fields() -> None:
    rejected({"type": "loan_request"}, 400, "missing_field", "fields.amount")


def test_fields_on_a_type_without_fields_are_unknown() -> None:
    rejected({"type": "click", "value": "x", "fields": {"a": 1}}, 400, "unknown_field", "fields.a")
    assert accepted({"type": "click", "value": "x", "fields": {}}).fields is None


# -- occurredAt and id -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2026-01-31T10:00:00Z", dt.datetime(2026, 1, 31, 10, tzinfo=dt.UTC)),
        ("2026-01-31T10:00:00+02:00", dt.datetime(2026, 1, 31, 8, tzinfo=dt.UTC)),
        ("2020-02-29T23:59:59.123456-05:00", dt.datetime(2020, 3, 1, 4, 59, 59, 123456, dt.UTC)),
        ("2026-02-01T11:59:59Z", dt.datetime(2026, 2, 1, 11, 59, 59, tzinfo=dt.UTC)),
    ],
)
def test_occurred_at_with_an_offset(given: str, expected: dt.datetime) -> None:
    activity = accepted({"type": "click", "value": "x", "occurredAt": given})
    assert activity.occurred_at == expected
    assert activity.occurred_at.tzinfo is not None


@pytest.mark.parametrize(
    "given", ["2026-01-31T10:00:00", "2026-01-31", "yesterday", "2026-02-01T12:00:01Z"]
)
def test_occurred_at_without_an_offset_or_over_24_hours_ahead(given: str) -> None:
    rejected({"type": "click", "value": "x", "occurredAt": given}, 400, "invalid_field")


def test_occurred_at_must_be_a_string() -> None:
    rejected({"type": "click", "value": "x", "occurredAt": 1769860800}, 400, "invalid_field")


def test_an_id_is_1_to_100_characters() -> None:
    assert accepted({"type": "click", "value": "x", "id": "i" * 100}).client_id == "i" * 100
    rejected({"type": "click", "value": "x", "id": "i" * 101}, 400, "invalid_field", "id")
    rejected({"type": "click", "value": "x", "id": ""}, 400, "invalid_field", "id")
    rejected({"type": "click", "value": "x", "id": 7}, 400, "invalid_field", "id")


# -- size --------------------------------------------------------------------------------


def test_an_activity_over_the_byte_limit_is_413() -> None:
    activity = {"type": "click", "value": "x", "id": "a" * 50}
    raw = msgspec.json.encode(activity)
    assert isinstance(run(raw, limit=len(raw)), Accepted)
    result = run(raw, limit=len(raw) - 1)
    assert isinstance(result, Rejected)
    assert result.status == 413
    assert result.error.code == "payload_too_large"
    assert str(len(raw) - 1) in result.error.message
    assert result.payload == raw


def test_a_data_input_naming_an_erased_email_is_refused_and_not_kept() -> None:
    secret = b"k" * 32
    erased = Suppressed(secret, frozenset({identity_digest(secret, EMAIL, "gone@example.com")}))
    snapshot = Snapshot(types=SNAPSHOT.types, suppressed=erased)
    activity = {
        "type": "datainput",
        "value": "f",
        "contactFields": {"ContactEmail": "Gone@example.com"},
    }
    result = prepare(msgspec.json.encode(activity), snapshot, NOW, LIMIT)
    assert isinstance(result, Rejected)
    assert (result.status, result.error.code, result.keep) == (403, "contact_erased", False)
    assert result.type_code == "datainput"
    other = {**activity, "contactFields": {"ContactEmail": "kept@example.com"}}
    assert isinstance(prepare(msgspec.json.encode(other), snapshot, NOW, LIMIT), Accepted)
    # Without suppressions the same data input is accepted.
    assert isinstance(run(activity), Accepted)


ERASED_EMAIL = "gone@example.com"


def erased_snapshot() -> Snapshot:
    secret = b"k" * 32
    digests = frozenset({identity_digest(secret, EMAIL, ERASED_EMAIL)})
    return Snapshot(types=SNAPSHOT.types, suppressed=Suppressed(secret, digests))


@pytest.mark.parametrize(
    "raw",
    [
        # An unknown property, a bad time, an unknown type, a contact field that is none.
        b'{"type": "datainput", "value": "f", "colour": 1, '
        b'"contactFields": {"ContactEmail": "Gone@Example.com"}}',
        b'{"TYPE": "datainput", "value": "f", "occurredAt": "yesterday", '
        b'"CONTACTFIELDS": {"contactemail": " gone@example.com "}}',
        b'{"type": "nope", "value": "f", "contactFields": {"ContactEmail": "gone@example.com"}}',
        b'{"type": "datainput", "value": "f", '
        b'"contactFields": {"ContactEmail": "gone@example.com", "Shoe": "x"}}',
        # Ortto's str::email in fields, beside a field the type does not have.
        b'{"type": "click", "value": "x", "fields": {"str::email": "gone@example.com", "nope": 1}}',
        # A number no reader takes, and the NUL character.
        b'{"type": "datainput", "value": 1e400, "contactFields": {"ContactEmail": '
        b'"gone@example.com"}}',
        b'{"type": "datainput", "value": "\\u0000", "contactFields": {"ContactEmail": '
        b'"gone@example.com"}}',
    ],
    ids=["unknown-property", "time", "type", "contact-field", "str-email", "number", "nul"],
)
def test_an_activity_refused_for_another_reason_naming_an_erased_email_is_kept_nowhere(
    raw: bytes,
) -> None:
    # It was kept as rejected with the erased person's email in its payload.
    result = prepare(raw, erased_snapshot(), NOW, LIMIT)
    assert isinstance(result, Rejected)
    assert (result.status, result.error.code, result.keep) == (403, "contact_erased", False)
    # Naming someone else, it is kept as rejected for its own reason.
    other = prepare(raw.replace(b"one@", b"two@"), erased_snapshot(), NOW, LIMIT)
    assert isinstance(other, Rejected)
    assert other.keep
    assert other.error.code != "contact_erased"


def test_an_activity_over_the_byte_limit_naming_an_erased_email_is_kept_nowhere() -> None:
    activity = {"type": "datainput", "value": "f", "contactFields": {"ContactEmail": ERASED_EMAIL}}
    raw = msgspec.json.encode(activity)
    result = prepare(raw, erased_snapshot(), NOW, len(raw) - 1)
    assert isinstance(result, Rejected)
    assert (result.error.code, result.keep) == ("contact_erased", False)

"""The contact fields a data input may set, and their rules (Kentico's list)."""

from __future__ import annotations

import datetime as dt

import pycountry
import pytest

from waypost.domain.contact_fields import (
    CONTACT_FIELDS,
    ContactFieldError,
    is_country,
    is_us_state,
    normalise_email,
    normalise_phone,
    parse_contact_fields,
)

KENTICO_FIELDS = [
    "ContactEmail",
    "ContactFirstName",
    "ContactMiddleName",
    "ContactLastName",
    "ContactBirthday",
    "ContactMobilePhone",
    "ContactBusinessPhone",
    "ContactCompanyName",
    "ContactJobTitle",
    "ContactAddress1",
    "ContactCity",
    "ContactZIP",
    "ContactCountry",
    "ContactState",
    "ContactNotes",
]


def test_the_allowed_list_is_exactly_kenticos() -> None:
    assert list(CONTACT_FIELDS) == KENTICO_FIELDS


def test_the_reference_example_maps_to_columns() -> None:
    fields = parse_contact_fields(
        {
            "ContactFirstName": "Luke",
            "ContactLastName": "Smith",
            "ContactEmail": "lsmith@domain.com",
        }
    )
    assert fields == {"first_name": "Luke", "last_name": "Smith", "email": "lsmith@domain.com"}


def test_every_field_with_a_valid_value() -> None:
    fields = parse_contact_fields(
        {
            "ContactEmail": "ann@example.com",
            "ContactFirstName": "Ann",
            "ContactMiddleName": "B.",
            "ContactLastName": "Cole",
            "ContactBirthday": "1990-12-31",
            "ContactMobilePhone": "+420 601 123 456",
            "ContactBusinessPhone": "+1 650-253-0000",
            "ContactCompanyName": "Bank",
            "ContactJobTitle": "Analyst",
            "ContactAddress1": "1 Main St",
            "ContactCity": "Springfield",
            "ContactZIP": "12345",
            "ContactCountry": "USA",
            "ContactState": "IL",
            "ContactNotes": "<p>met at a fair</p>",
        }
    )
    assert fields == {
        "email": "ann@example.com",
        "first_name": "Ann",
        "middle_name": "B.",
        "last_name": "Cole",
        "birthday": dt.date(1990, 12, 31),
        "mobile_phone": "+420601123456",
        "business_phone": "+16502530000",
        "company_name": "Bank",
        "job_title": "Analyst",
        "address1": "1 Main St",
        "city": "Springfield",
        "zip": "12345",
        "country": "USA",
        "state": "IL",
        "notes": "<p>met at a fair</p>",
    }


def test_names_match_whatever_their_case() -> None:
    assert parse_contact_fields({"contactfirstname": "Ann", "CONTACTCITY": "Brno"}) == {
        "first_name": "Ann",
        "city": "Brno",
    }


@pytest.mark.parametrize("name", ["ContactGender", "Email", "first_name", "ContactAddress2"])
def test_fields_outside_the_list_are_refused(name: str) -> None:
    with pytest.raises(ContactFieldError) as caught:
        parse_contact_fields({name: "x"})
    assert caught.value.code == "unknown_field"
    assert caught.value.field == f"contactFields.{name}"


@pytest.mark.parametrize("value", [1, 1.5, True, None, ["Ann"], {"first": "Ann"}])
def test_only_strings_are_accepted(value: object) -> None:
    with pytest.raises(ContactFieldError) as caught:
        parse_contact_fields({"ContactFirstName": value})
    assert caught.value.field == "contactFields.ContactFirstName"
    assert caught.value.code == "invalid_field"


def test_every_iso_alpha3_code_from_pycountry_is_a_country() -> None:
    codes = [country.alpha_3 for country in pycountry.countries]
    assert len(codes) > 240
    assert all(is_country(code) for code in codes)
    for code in ("CZE", "USA", "DEU", "GBR"):
        assert parse_contact_fields({"ContactCountry": code}) == {"country": code}


def test_a_country_code_is_upper_cased() -> None:
    assert parse_contact_fields({"ContactCountry": "cze"}) == {"country": "CZE"}


@pytest.mark.parametrize("code", ["US", "CZ", "XXX", "Czechia", "U.S.A.", "840", "USAA"])
def test_other_country_values_are_refused(code: str) -> None:
    assert not is_country(code.upper())
    with pytest.raises(ContactFieldError) as caught:
        parse_contact_fields({"ContactCountry": code})
    assert caught.value.field == "contactFields.ContactCountry"


@pytest.mark.parametrize("code", ["CA", "NY", "DC", "PR", "WY", "tx"])
def test_us_state_codes_are_accepted(code: str) -> None:
    assert parse_contact_fields({"ContactState": code}) == {"state": code.upper()}


def test_every_us_subdivision_of_pycountry_is_a_state_code() -> None:
    subdivisions = pycountry.subdivisions.get(country_code="US")  # type: ignore[no-untyped-call]
    codes = [s.code.split("-")[1] for s in subdivisions]
    assert len(codes) >= 51
    assert all(is_us_state(code) for code in codes)


@pytest.mark.parametrize("code", ["ZZ", "California", "CAL", "ON", "BC", "US-CA", "1"])
def test_other_state_values_are_refused(code: str) -> None:
    with pytest.raises(ContactFieldError) as caught:
        parse_contact_fields({"ContactState": code})
    assert caught.value.field == "contactFields.ContactState"


def test_a_state_needs_the_country_usa_or_none() -> None:
    assert parse_contact_fields({"ContactState": "CA", "ContactCountry": "USA"})["state"] == "CA"
    assert parse_contact_fields({"ContactState": "CA"}, country_now="USA")["state"] == "CA"
    with pytest.raises(ContactFieldError) as caught:
        parse_contact_fields({"ContactState": "CA", "ContactCountry": "CAN"})
    assert caught.value.field == "contactFields.ContactState"
    with pytest.raises(ContactFieldError):
        parse_contact_fields({"ContactState": "CA"}, country_now="CZE")


@pytest.mark.parametrize("value", ["not-an-email", "a@b", "two@@example.com", "a b@example.com"])
def test_emails_are_checked(value: str) -> None:
    with pytest.raises(ContactFieldError) as caught:
        parse_contact_fields({"ContactEmail": value})
    assert caught.value.field == "contactFields.ContactEmail"


def test_an_email_cannot_be_cleared_but_other_fields_can() -> None:
    assert parse_contact_fields({"ContactCity": "", "ContactNotes": "  "}) == {
        "city": None,
        "notes": None,
    }
    with pytest.raises(ContactFieldError):
        parse_contact_fields({"ContactEmail": ""})


def test_values_are_trimmed() -> None:
    assert parse_contact_fields({"ContactFirstName": "  Ann "}) == {"first_name": "Ann"}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ContactBirthday", "31/12/1990"),
        ("ContactBirthday", "1990-02-30"),
        ("ContactMobilePhone", "601 123 456"),
        ("ContactBusinessPhone", "+1 000"),
        ("ContactFirstName", "x" * 101),
        ("ContactZIP", "1" * 21),
        ("ContactEmail", "a" * 250 + "@example.com"),
        # 212 characters, but 412 once lower-cased (İ is i and a combining dot): its key
        # would not fit the column.
        ("ContactEmail", "\u0130" * 200 + "@example.com"),
    ],
)
def test_values_breaking_their_rule_are_refused(name: str, value: str) -> None:
    with pytest.raises(ContactFieldError) as caught:
        parse_contact_fields({name: value})
    assert caught.value.field == f"contactFields.{name}"
    assert caught.value.code == "invalid_field"
    assert str(caught.value)


def test_emails_are_keyed_lower_case_and_trimmed() -> None:
    assert normalise_email(" LSmith@Domain.COM ") == "lsmith@domain.com"


def test_phones_become_e164() -> None:
    assert normalise_phone("+44 20 7946 0958") == "+442079460958"
    with pytest.raises(ValueError, match="international"):
        normalise_phone("020 7946 0958")

"""The contact fields a data input activity may set (Kentico's list), and their rules."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from functools import cache

import msgspec
import phonenumbers
import pycountry

from waypost.error_words import quoted

# Kentico's name -> Waypost's column. Only these may be set, and only with strings.
CONTACT_FIELDS: dict[str, str] = {
    "ContactEmail": "email",
    "ContactFirstName": "first_name",
    "ContactMiddleName": "middle_name",
    "ContactLastName": "last_name",
    "ContactBirthday": "birthday",
    "ContactMobilePhone": "mobile_phone",
    "ContactBusinessPhone": "business_phone",
    "ContactCompanyName": "company_name",
    "ContactJobTitle": "job_title",
    "ContactAddress1": "address1",
    "ContactCity": "city",
    "ContactZIP": "zip",
    "ContactCountry": "country",
    "ContactState": "state",
    "ContactNotes": "notes",
}
_BY_LOWER = {name.lower(): name for name in CONTACT_FIELDS}

MAX_LENGTHS = {
    "email": 254,
    "first_name": 100,
    "middle_name": 100,
    "last_name": 100,
    "company_name": 200,
    "job_title": 200,
    "address1": 200,
    "city": 100,
    "zip": 20,
    "notes": 10_000,
}

MAX_EMAIL = MAX_LENGTHS["email"]
# The most a contact's custom attributes take, as JSON. Identify traits and person properties
# add to them from any client, a page's publishable key included, and every change rewrites
# them whole: without a bound, one contact grew by each request and each request took longer.
MAX_ATTRIBUTES_BYTES = 64 * 1024


def attributes_size(attributes: Mapping[str, object]) -> int:
    """How many bytes ``attributes`` take as JSON, as :data:`MAX_ATTRIBUTES_BYTES` counts."""
    return len(msgspec.json.encode(attributes))


# One way to match any text: the domain's labels are split at each dot, so a failing match
# gives up in linear time (a pattern such as "[^@]+\.[^@]+" tries every dot of a long run).
EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+\Z")


def is_email(text: str) -> bool:
    """An email address of at most 254 characters, the length checked before the pattern, and
    as many once lower-cased (its key, :func:`normalise_email`): ``İ`` lower-cases to two
    characters, so 200 of them made a key the column (254) cannot hold."""
    return (
        len(text) <= MAX_EMAIL
        and EMAIL.match(text) is not None
        and len(normalise_email(text)) <= MAX_EMAIL
    )


class ContactFieldError(ValueError):
    """A contact field value breaks a rule; ``field`` is the Kentico name."""

    def __init__(self, message: str, field: str, code: str = "invalid_field") -> None:
        super().__init__(message)
        self.field = field
        self.code = code


@cache
def _countries() -> frozenset[str]:
    return frozenset(country.alpha_3 for country in pycountry.countries)


@cache
def _us_states() -> frozenset[str]:
    subdivisions = pycountry.subdivisions.get(country_code="US")  # type: ignore[no-untyped-call]
    return frozenset(s.code.split("-", 1)[1] for s in subdivisions)


def is_country(code: str) -> bool:
    """An ISO 3166-1 alpha-3 code, such as USA or CZE."""
    return code in _countries()


def is_us_state(code: str) -> bool:
    """A US state, district or territory code (ANSI), such as CA or DC."""
    return code in _us_states()


def normalise_email(email: str) -> str:
    """The key an email identifies a contact by: trimmed and lower-cased."""
    return email.strip().lower()


def normalise_phone(value: str) -> str:
    """E.164 (``+420601123456``); ValueError if it is not a valid international number."""
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValueError(
            "not an international phone number; start with + and the country code"
        ) from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_contact_fields(
    values: Mapping[str, object], country_now: str | None = None
) -> dict[str, object]:
    """Check ``contactFields`` and map them to contact columns.

    Names are matched case-insensitively; values must be strings; an empty string clears a
    field. ``country_now`` is the contact's stored country, for the state rule: state codes
    are US codes, so they need the country to be USA or unset.
    """
    result: dict[str, object] = {}
    for given_name, value in values.items():
        name = _BY_LOWER.get(given_name.lower())
        where = f"contactFields.{given_name}"
        if name is None:
            raise ContactFieldError(
                f"{given_name!r} is not a contact field a data input can set; "
                f"use one of {', '.join(CONTACT_FIELDS)}.",
                where,
                "unknown_field",
            )
        if not isinstance(value, str):
            raise ContactFieldError(f"{name} takes a string value.", where)
        column = CONTACT_FIELDS[name]
        text = value.strip()
        if text == "":
            if column == "email":
                raise ContactFieldError("ContactEmail cannot be cleared.", where)
            result[column] = None
            continue
        result[column] = _parse_value(name, column, text, where)
    country = result.get("country", country_now)
    if result.get("state") is not None and country not in (None, "USA"):
        raise ContactFieldError(
            "ContactState holds US state codes; the contact's country is not USA.",
            "contactFields.ContactState",
        )
    return result


def _parse_value(name: str, column: str, text: str, where: str) -> object:
    limit = MAX_LENGTHS.get(column)
    if limit is not None and len(text) > limit:
        raise ContactFieldError(f"{name} is at most {limit} characters.", where)
    if column == "email":
        if not is_email(text):
            raise ContactFieldError(f"{quoted(text)} is not an email address.", where)
        return text
    if column == "country":
        code = text.upper()
        if not is_country(code):
            raise ContactFieldError(
                f"{text!r} is not a 3-letter ISO 3166-1 country code such as USA or CZE.", where
            )
        return code
    if column == "state":
        code = text.upper()
        if not is_us_state(code):
            raise ContactFieldError(f"{text!r} is not a US state code such as CA or NY.", where)
        return code
    if column == "birthday":
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            raise ContactFieldError(f"{name} is a date like 1990-12-31.", where) from None
    if column in ("mobile_phone", "business_phone"):
        try:
            return normalise_phone(text)
        except ValueError as exc:
            raise ContactFieldError(f"{name}: {exc}.", where) from None
    return text

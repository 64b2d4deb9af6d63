"""Validation of activity field values against their declared types. Nothing is inferred.

Values are stored in a canonical JSON form: text, url, email as strings; integer as a JSON
integer (64-bit); decimal as a string (``"50000.10"``) so no digit is lost; boolean as a JSON
boolean; datetime as an ISO 8601 string in UTC; phone in E.164.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from waypost.domain.contact_fields import EMAIL, normalise_phone
from waypost.domain.fields import FieldSpec

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
DEFAULT_TEXT_LENGTH = 2000
MAX_DECIMAL_DIGITS = 38


class FieldValueError(ValueError):
    """A value breaks its field's rule; ``field`` is the path, ``code`` the error code."""

    def __init__(self, message: str, field: str, code: str = "invalid_field") -> None:
        super().__init__(message)
        self.field = field
        self.code = code


def is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def parse_datetime(value: str) -> dt.datetime:
    """ISO 8601 with an offset (``Z`` or ``+02:00``), as UTC; ValueError otherwise."""
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("a datetime needs an offset, such as Z or +02:00")
    return parsed.astimezone(dt.UTC)


def format_datetime(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def canonical_value(spec: FieldSpec, value: object, where: str) -> object:
    """The stored form of ``value`` for ``spec``, or FieldValueError."""
    kind = spec.type
    if kind in ("text", "url", "email", "phone", "datetime") and not isinstance(value, str):
        raise FieldValueError(f"{spec.name} is a {kind} field and takes a string.", where)
    if kind == "text":
        assert isinstance(value, str)
        limit = spec.max_length or DEFAULT_TEXT_LENGTH
        if len(value) > limit:
            raise FieldValueError(f"{spec.name} is at most {limit} characters.", where)
        return value
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldValueError(f"{spec.name} is an integer field; send a JSON integer.", where)
        if not INT64_MIN <= value <= INT64_MAX:
            raise FieldValueError(f"{spec.name} does not fit in 64 bits.", where)
        return value
    if kind == "decimal":
        return _decimal(spec, value, where)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise FieldValueError(f"{spec.name} is a boolean field; send true or false.", where)
        return value
    assert isinstance(value, str)
    if kind == "datetime":
        try:
            return format_datetime(parse_datetime(value))
        except ValueError:
            raise FieldValueError(
                f"{spec.name} is a datetime; send ISO 8601 with an offset, e.g. "
                "2026-01-31T12:00:00Z.",
                where,
            ) from None
    if kind == "url":
        if len(value) > 2048 or not is_http_url(value):
            raise FieldValueError(f"{spec.name} is an absolute http or https URL.", where)
        return value
    if kind == "email":
        if len(value) > 254 or not EMAIL.match(value):
            raise FieldValueError(f"{spec.name} is an email address.", where)
        return value
    try:
        return normalise_phone(value)
    except ValueError as exc:
        raise FieldValueError(f"{spec.name}: {exc}.", where) from None


def _decimal(spec: FieldSpec, value: object, where: str) -> str:
    if isinstance(value, (bool, float)):
        raise FieldValueError(
            f'{spec.name} is a decimal field; send it as a string such as "50000.10" so no '
            "digit is lost.",
            where,
        )
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, str):
        raise FieldValueError(f"{spec.name} is a decimal field; send a string.", where)
    try:
        number = decimal.Decimal(value.strip())
    except decimal.InvalidOperation:
        raise FieldValueError(f"{value!r} is not a decimal number.", where) from None
    if not number.is_finite():
        raise FieldValueError(f"{spec.name} must be a finite number.", where)
    if len(number.as_tuple().digits) > MAX_DECIMAL_DIGITS:
        raise FieldValueError(f"{spec.name} has more than {MAX_DECIMAL_DIGITS} digits.", where)
    return str(number) if "e" not in str(number).lower() else f"{number:f}"


def validate_fields(
    specs: Sequence[FieldSpec], values: Mapping[str, object]
) -> tuple[dict[str, object], str | None]:
    """Check ``values`` against ``specs``: the canonical values and the primary value as text.

    Unknown names are ``unknown_field``; absent required fields ``missing_field``.
    """
    by_name = {spec.name: spec for spec in specs}
    result: dict[str, object] = {}
    for name, value in values.items():
        where = f"fields.{name}"
        spec = by_name.get(name)
        if spec is None:
            raise FieldValueError(
                f"The activity type has no field {name!r}.", where, "unknown_field"
            )
        if value is None:
            continue
        result[name] = canonical_value(spec, value, where)
    primary: str | None = None
    for spec in specs:
        if spec.required and spec.name not in result:
            raise FieldValueError(
                f"The field {spec.name!r} is required.", f"fields.{spec.name}", "missing_field"
            )
        if spec.primary and spec.name in result:
            stored = result[spec.name]
            primary = _as_text(stored)
    return result, primary


def _as_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)

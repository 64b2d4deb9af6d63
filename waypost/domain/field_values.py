"""Validation of activity field values against their declared types. Nothing is inferred.

Values are stored in a canonical JSON form: text, url, email as strings; integer as a JSON
integer (64-bit); decimal as a string in plain notation (``"50000.10"``), exactly as given, so
no digit is lost (a JSON number: the shortest decimal that reads back as it); boolean as a JSON
boolean; datetime as an ISO 8601 string in UTC with microseconds (``2026-01-31T12:00:00.000000Z``);
phone in E.164.

Field names may also be given as Ortto's typed attribute keys, ``<prefix>:cm:<name>``: the
prefix must agree with the field's declared type, and ``-`` and ``_`` in the name are alike
(``str:cm:payment-plan`` names the field ``payment_plan``). The system key ``str::email`` names the
contact's email instead of a field.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from waypost.domain.contact_fields import is_email, normalise_phone
from waypost.domain.fields import FieldSpec

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
DEFAULT_TEXT_LENGTH = 2000
# A value of another JSON type than the declared field type takes (no type is ever inferred).
MISMATCH = "field_type_mismatch"
MAX_DECIMAL_DIGITS = 38
# Decimals are stored as given, so they must be given in one notation: an optional minus,
# digits without a leading zero, an optional fraction; no exponent, no spaces, no plus sign.
PLAIN_DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")


class FieldValueError(ValueError):
    """A value breaks its field's rule; ``field`` is the path, ``code`` the error code."""

    def __init__(self, message: str, field: str, code: str = "invalid_field") -> None:
        super().__init__(message)
        self.field = field
        self.code = code


def is_http_url(value: str) -> bool:
    """Whether ``value`` is an absolute http or https URL with a host, as ``urlsplit`` reads
    it. A plain ASCII address (the usual one) is read here without it, at a fifth of the cost:
    the scheme, then a host up to the first ``/``, ``?`` or ``#``."""
    if value.isascii() and value.isprintable() and " " not in value:
        head = value[:8].lower()
        if head.startswith("https://"):
            rest = value[8:]
        elif head.startswith("http://"):
            rest = value[7:]
        else:
            return False
        end = len(rest)
        for mark in "/?#":
            found = rest.find(mark, 0, end)
            if found >= 0:
                end = found
        if "[" not in rest and "]" not in rest:
            return end > 0
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. "http://[" (an unclosed IPv6 host)
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def parse_datetime(value: str) -> dt.datetime:
    """ISO 8601 with an offset (``Z`` or ``+02:00``), as UTC; ValueError otherwise."""
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("a datetime needs an offset, such as Z or +02:00")
    return in_utc(parsed)


def in_utc(value: dt.datetime) -> dt.datetime:
    """An aware datetime in UTC; ValueError for one with no UTC form: Python's datetime ends
    at the years 1 and 9999, so ``0001-01-01T00:00:00+01:00`` has none."""
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError("the datetime is out of range in UTC") from None


def format_datetime(value: dt.datetime) -> str:
    """Always microseconds and ``Z``, so that comparing the text compares the times."""
    naive = value.astimezone(dt.UTC).replace(tzinfo=None)
    return naive.isoformat("T", "microseconds") + "Z"


def canonical_value(spec: FieldSpec, value: object, where: str) -> object:
    """The stored form of ``value`` for ``spec``, or FieldValueError."""
    kind = spec.type
    if kind in ("text", "url", "email", "phone", "datetime") and not isinstance(value, str):
        raise FieldValueError(f"{spec.name} is a {kind} field and takes a string.", where, MISMATCH)
    if kind == "text":
        assert isinstance(value, str)
        limit = spec.max_length or DEFAULT_TEXT_LENGTH
        if len(value) > limit:
            raise FieldValueError(
                f"{spec.name} holds at most {limit} characters; shorten it.", where
            )
        return value
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldValueError(
                f"{spec.name} is an integer field; send a JSON integer.", where, MISMATCH
            )
        if not INT64_MIN <= value <= INT64_MAX:
            raise FieldValueError(f"{spec.name} does not fit in 64 bits.", where)
        return value
    if kind == "decimal":
        return _decimal(spec, value, where)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise FieldValueError(
                f"{spec.name} is a boolean field; send true or false.", where, MISMATCH
            )
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
            raise FieldValueError(
                f"{spec.name} must be an absolute http or https URL, such as "
                "https://example.com/page.",
                where,
            )
        return value
    if kind == "email":
        if not is_email(value):
            raise FieldValueError(
                f"{spec.name} must be an email address, such as jane@example.com.", where
            )
        return value
    try:
        return normalise_phone(value)
    except ValueError as exc:
        raise FieldValueError(f"{spec.name}: {exc}.", where) from None


def json_number(text: str) -> float | decimal.Decimal:
    """A JSON number with a fraction or an exponent, as the ingest decoders read it (msgspec's
    ``float_hook``): a float when the float says what was written (``19.99``, ``1e5``), else the
    number exactly as written (more significant digits than a float holds, or past its range),
    which a decimal field stores as sent and any other field refuses, instead of a float that
    silently says something else. ValueError for an exponent past what a Decimal holds
    (``1e9999999999999999999``): msgspec then refuses the document as it refuses an integer
    of more digits than Python reads, so the activity is refused saying so, never a 500."""
    if len(text) <= 16 and "e" not in text and "E" not in text:
        return float(text)  # at most 15 significant digits: a float holds them exactly
    value = float(text)
    try:
        written = decimal.Decimal(text)
    except decimal.InvalidOperation:
        raise ValueError("Number out of range") from None
    if math.isfinite(value) and decimal.Decimal(repr(value)) == written:
        return value
    return written


def _decimal(spec: FieldSpec, value: object, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float | decimal.Decimal):
        raise FieldValueError(
            f'{spec.name} is a decimal field; send it as a string such as "50000.10".',
            where,
            MISMATCH,
        )
    if isinstance(value, str):
        if PLAIN_DECIMAL.fullmatch(value) is None:
            raise FieldValueError(
                f'{spec.name} is a decimal field; send it in plain notation, such as "50000.10" '
                'or "-0.5": digits with an optional minus sign and decimal point, without '
                "exponent, spaces or leading zeros.",
                where,
            )
        text = value
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, decimal.Decimal):
        # A number json_number kept as written: its size is checked before it is written
        # out in plain notation (1e999999 would be a million digits).
        largest = value.adjusted()  # the power of ten of its first digit
        if len(value.as_tuple().digits) > MAX_DECIMAL_DIGITS or not (
            -MAX_DECIMAL_DIGITS <= largest < MAX_DECIMAL_DIGITS
        ):
            raise _too_many_digits(spec, where)
        text = format(value, "f")
    else:
        if not math.isfinite(value):
            raise FieldValueError(f"{spec.name} must be a finite number.", where)
        text = number_text(value)
    if len(text) > MAX_DECIMAL_DIGITS and sum(ch.isdigit() for ch in text) > MAX_DECIMAL_DIGITS:
        raise _too_many_digits(spec, where)
    return text


def _too_many_digits(spec: FieldSpec, where: str) -> FieldValueError:
    return FieldValueError(
        f"{spec.name} has more than {MAX_DECIMAL_DIGITS} digits; send at most "
        f"{MAX_DECIMAL_DIGITS}.",
        where,
    )


def number_text(value: float) -> str:
    """A JSON number (a binary float) in plain decimal notation: the shortest decimal that
    reads back as it, which is what JSON encoders write (19.99 stays ``19.99``)."""
    return f"{decimal.Decimal(repr(value)):f}"


# Ortto's attribute prefixes and the field types each may name.
ORTTO_PREFIXES: dict[str, frozenset[str]] = {
    "str": frozenset({"text", "url", "email"}),
    "txt": frozenset({"text"}),
    "int": frozenset({"integer", "decimal"}),
    "dec": frozenset({"decimal"}),
    "bol": frozenset({"boolean"}),
    "dtz": frozenset({"datetime"}),
    "phn": frozenset({"phone"}),
}
# Ortto system keys (empty namespace) and the contact columns they set.
ORTTO_EMAIL = "str::email"
ORTTO_SYSTEM_KEYS = {ORTTO_EMAIL: "email", "str::first": "first_name", "str::last": "last_name"}
ORTTO_KEY = re.compile(r"^(?P<prefix>[a-z]{3}):(?P<namespace>[a-z]*):(?P<name>.+)\Z")


@dataclass
class FieldValues:
    """The outcome of validating an activity's ``fields``."""

    values: dict[str, object] = field(default_factory=dict)
    primary: str | None = None
    contact: dict[str, object] = field(default_factory=dict)
    violations: list[dict[str, object]] = field(default_factory=list)


def validate_fields(
    specs: Sequence[FieldSpec], values: Mapping[str, object], flag: bool = False
) -> FieldValues:
    """Check ``values`` against ``specs``: canonical values, the primary value as text, contact
    fields named by Ortto system keys.

    Unknown names are ``unknown_field``, a key whose Ortto prefix disagrees with the declared
    type ``field_type_mismatch``, a bad value ``invalid_field``. With ``flag`` (a type's
    ``accept_and_flag`` mode) those three are recorded as violations instead of raised; an
    absent required field is always ``missing_field``.
    """
    by_name = {spec.name: spec for spec in specs}
    out = FieldValues()
    for key, value in values.items():
        where = f"fields.{key}"
        try:
            name = _field_name(key, value, by_name, out, where)
            if name is None or value is None:
                continue
            if name in out.values:
                raise FieldValueError(f"The field {name!r} is given twice.", where)
            out.values[name] = canonical_value(by_name[name], value, where)
        except FieldValueError as exc:
            if not flag:
                raise
            out.violations.append(
                {"field": key, "code": exc.code, "message": str(exc), "value": value}
            )
    for spec in specs:
        if spec.required and spec.name not in out.values:
            raise FieldValueError(
                f"The field {spec.name!r} is required.", f"fields.{spec.name}", "missing_field"
            )
        if spec.primary and spec.name in out.values:
            out.primary = _as_text(out.values[spec.name])
    return out


def _field_name(
    key: str,
    value: object,
    by_name: Mapping[str, FieldSpec],
    out: FieldValues,
    where: str,
) -> str | None:
    """The declared field a key names, or None when it named a contact field (handled)."""
    if key in by_name:
        return key
    match = ORTTO_KEY.match(key)
    if match is None:
        raise FieldValueError(f"The activity type has no field {key!r}.", where, "unknown_field")
    if key in ORTTO_SYSTEM_KEYS:
        if not isinstance(value, str) or not value.strip():
            raise FieldValueError(f"{key} takes a non-empty string.", where)
        if key == ORTTO_EMAIL and not is_email(value):
            raise FieldValueError(
                f"{key} must be an email address, such as jane@example.com.", where
            )
        out.contact[ORTTO_SYSTEM_KEYS[key]] = value
        return None
    prefix, namespace, name = match["prefix"], match["namespace"], match["name"]
    spec = by_name.get(name) or _by_plain_name(by_name, name)
    if namespace != "cm" or spec is None:
        raise FieldValueError(f"The activity type has no field {key!r}.", where, "unknown_field")
    allowed = ORTTO_PREFIXES.get(prefix, frozenset())
    if spec.type not in allowed:
        raise FieldValueError(
            f"{key!r} names {name!r} as {prefix}, but it is declared {spec.type}.",
            where,
            "field_type_mismatch",
        )
    return spec.name


def plain_name(name: str) -> str:
    """A field name as Ortto's keys name it: ``-`` and ``_`` alike (``payment-plan`` is
    ``payment_plan``)."""
    return name.replace("-", "_")


def _by_plain_name(by_name: Mapping[str, FieldSpec], name: str) -> FieldSpec | None:
    wanted = plain_name(name)
    for spec in by_name.values():
        if plain_name(spec.name) == wanted:
            return spec
    return None


def primary_text(spec: FieldSpec, value: object) -> str:
    """The text a primary field's value is indexed by (``primary_value``)."""
    if isinstance(value, dt.datetime):
        return format_datetime(value)
    if isinstance(value, decimal.Decimal):
        value = f"{value:f}"
    return _as_text(canonical_value(spec, value, spec.name))


def _as_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)

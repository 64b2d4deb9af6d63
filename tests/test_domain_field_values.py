"""Field values checked against their declared types; nothing is inferred."""

from __future__ import annotations

import datetime as dt
import decimal
from urllib.parse import urlsplit

import hypothesis
import msgspec
import pytest
from hypothesis import strategies as st

from waypost.domain.field_values import (
    FieldValueError,
    canonical_value,
    format_datetime,
    is_http_url,
    json_number,
    parse_datetime,
    validate_fields,
)
from waypost.domain.fields import FieldSpec

LONG_DECIMAL = "12345678901234567890.123456789012345678"  # 38 digits, none lost


def spec(name: str, type_: str = "text", **flags: object) -> FieldSpec:
    return msgspec.convert({"name": name, "type": type_, **flags}, FieldSpec)


@pytest.mark.parametrize(
    ("type_", "value", "stored"),
    [
        ("text", "hello", "hello"),
        ("text", "", ""),
        ("integer", 42, 42),
        ("integer", -(2**63), -(2**63)),
        ("integer", 2**63 - 1, 2**63 - 1),
        ("decimal", "50000.10", "50000.10"),
        ("decimal", 7, "7"),
        (
            "decimal",
            "12345678901234567890.123456789012345678",
            "12345678901234567890.123456789012345678",
        ),
        ("boolean", True, True),
        ("boolean", False, False),
        ("datetime", "2026-01-31T12:00:00Z", "2026-01-31T12:00:00.000000Z"),
        ("datetime", "2026-01-31T14:00:00.5+02:00", "2026-01-31T12:00:00.500000Z"),
        ("url", "https://example.com/a?b=c", "https://example.com/a?b=c"),
        ("url", "http://localhost:8000", "http://localhost:8000"),
        ("email", "ann@example.com", "ann@example.com"),
        ("phone", "+420 601 123 456", "+420601123456"),
    ],
)
def test_valid_values_get_their_canonical_form(type_: str, value: object, stored: object) -> None:
    result = canonical_value(spec("f", type_), value, "fields.f")
    assert result == stored
    assert type(result) is type(stored)


# A decimal string is stored exactly as given, so it must be in plain notation; a JSON number
# (Segment's SDKs send numbers) is stored in the plain notation of the shortest decimal that
# reads back as the same number.
@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("50000.10", "50000.10"),
        ("0", "0"),
        ("-0.50", "-0.50"),
        ("0.000000000000000001", "0.000000000000000001"),
        ("007.50", None),
        ("00", None),
        ("-01", None),
        ("1.5E2", None),
        ("1e3", None),
        (" 12 ", None),
        ("12 ", None),
        ("+5", None),
        (".5", None),
        ("5.", None),
        ("1,5", None),
        ("١٢", None),  # digits of another script
        ("", None),
        ("1" * 38, "1" * 38),
        ("1" * 39, None),
        ("0." + "0" * 36 + "1", "0." + "0" * 36 + "1"),
        ("0." + "0" * 37 + "1", None),
        (7, "7"),
        (-12, "-12"),
        (10**38, None),
        (12.5, "12.5"),
        (0.1, "0.1"),
        (-0.0, "-0.0"),
        (1.5e2, "150.0"),
        (1e20, "100000000000000000000"),
        (1.5e-7, "0.00000015"),
        (1e300, None),
        (float("nan"), None),
        (float("inf"), None),
    ],
)
def test_decimals_in_plain_notation_are_stored_as_given_and_others_refused(
    sent: object, stored: str | None
) -> None:
    field = spec("amount", "decimal")
    if stored is None:
        with pytest.raises(FieldValueError) as caught:
            canonical_value(field, sent, "fields.amount")
        assert caught.value.code == "invalid_field"
        assert caught.value.field == "fields.amount"
        assert "amount" in str(caught.value)
    else:
        assert canonical_value(field, sent, "fields.amount") == stored


@pytest.mark.parametrize(
    ("type_", "value"),
    [
        ("text", 5),
        ("text", True),
        ("text", ["a"]),
        ("integer", "5"),
        ("integer", 5.0),
        ("integer", True),
        ("decimal", True),
        ("decimal", {"v": 1}),
        ("boolean", "true"),
        ("boolean", 1),
        ("datetime", 1767225600),
        ("url", 5),
        ("email", False),
        ("phone", 420601123456),
    ],
)
def test_a_value_of_another_json_type_is_a_type_mismatch(type_: str, value: object) -> None:
    with pytest.raises(FieldValueError) as caught:
        canonical_value(spec("f", type_), value, "fields.f")
    assert caught.value.code == "field_type_mismatch"
    assert caught.value.field == "fields.f"


@pytest.mark.parametrize(
    ("type_", "value"),
    [
        ("integer", 2**63),
        ("integer", -(2**63) - 1),
        ("decimal", "abc"),
        ("decimal", "NaN"),
        ("decimal", "Infinity"),
        ("decimal", "1" * 39),
        ("datetime", "2026-01-31T12:00:00"),
        ("datetime", "yesterday"),
        ("url", "example.com"),
        ("url", "ftp://example.com/"),
        ("url", "/relative"),
        ("url", "https://" + "a" * 2050),
        ("email", "nobody"),
        ("phone", "601 123 456"),
        ("text", "x" * 2001),
    ],
)
def test_a_value_of_the_right_json_type_breaking_its_rule_is_invalid(
    type_: str, value: object
) -> None:
    with pytest.raises(FieldValueError) as caught:
        canonical_value(spec("f", type_), value, "fields.f")
    assert caught.value.code == "invalid_field"
    assert caught.value.field == "fields.f"


def test_text_max_length_is_the_declared_one() -> None:
    short = spec("code", "text", max_length=3)
    assert canonical_value(short, "abc", "fields.code") == "abc"
    with pytest.raises(FieldValueError):
        canonical_value(short, "abcd", "fields.code")


def test_validate_fields_returns_canonical_values_and_the_primary_as_text() -> None:
    specs = [
        spec("amount", "decimal", primary=True, required=True),
        spec("months", "integer"),
        spec("approved", "boolean"),
    ]
    checked = validate_fields(specs, {"amount": "5000.00", "months": 12})
    assert checked.values == {"amount": "5000.00", "months": 12}
    assert checked.primary == "5000.00"
    assert validate_fields([spec("ok", "boolean", primary=True)], {"ok": False}).primary == "false"


def test_validate_fields_without_a_primary_value() -> None:
    checked = validate_fields([spec("a"), spec("b", primary=True)], {"a": "x"})
    assert (checked.values, checked.primary) == ({"a": "x"}, None)


def test_an_undeclared_field_is_unknown() -> None:
    with pytest.raises(FieldValueError) as caught:
        validate_fields([spec("amount", "decimal")], {"amount": "1", "Amount": "2"})
    assert caught.value.code == "unknown_field"
    assert caught.value.field == "fields.Amount"


def test_a_required_field_must_be_given() -> None:
    specs = [spec("amount", "decimal", required=True)]
    for values in ({}, {"amount": None}):
        with pytest.raises(FieldValueError) as caught:
            validate_fields(specs, values)
        assert caught.value.code == "missing_field"
        assert caught.value.field == "fields.amount"


def test_null_means_absent_for_an_optional_field() -> None:
    checked = validate_fields([spec("note")], {"note": None})
    assert (checked.values, checked.primary) == ({}, None)


def test_datetimes_need_an_offset() -> None:
    assert parse_datetime("2026-01-31T12:00:00Z") == dt.datetime(2026, 1, 31, 12, tzinfo=dt.UTC)
    assert parse_datetime("2026-01-31T13:30:00+01:30").hour == 12
    with pytest.raises(ValueError, match="offset"):
        parse_datetime("2026-01-31T12:00:00")
    stamp = dt.datetime(2026, 1, 31, 12, 0, 0, 5, tzinfo=dt.UTC)
    assert format_datetime(stamp) == "2026-01-31T12:00:00.000005Z"
    assert format_datetime(stamp.replace(microsecond=0)) == "2026-01-31T12:00:00.000000Z"


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://example.com/mypage", True),
        ("http://example.com", True),
        ("HTTPS://EXAMPLE.COM/", True),
        ("https:///nohost", False),
        ("mailto:a@example.com", False),
        ("javascript:alert(1)", False),
        ("//example.com/x", False),
        ("", False),
    ],
)
def test_http_urls(url: str, ok: bool) -> None:
    assert is_http_url(url) is ok


def _split_url_says(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


URL_PIECES = st.sampled_from(
    [*"hHtTpPsS:/?#[]@.-_aZ09 %\t\n\x00", "http://", "https://", "HTTP://", "é", "[::1]"]
)


@hypothesis.settings(max_examples=3000, deadline=None)
@hypothesis.given(st.lists(URL_PIECES, max_size=14).map("".join))
def test_http_urls_as_urlsplit_reads_them(value: str) -> None:
    # The plain-ASCII fast path answers as urlsplit does, for any string.
    assert is_http_url(value) is _split_url_says(value)


@pytest.mark.parametrize(
    ("literal", "stored"),
    [
        ("19.99", "19.99"),
        ("1e5", "100000.0"),
        ("12.50", "12.5"),
        # More significant digits than a float holds: stored as written, not as a float says.
        ("12345678901234567.89", "12345678901234567.89"),
        ("19.999999999999999999", "19.999999999999999999"),
        ("0.1111111111111111111111", "0.1111111111111111111111"),
        # The same number as the float's: as any float is (trailing zeros are not kept).
        ("1.0000000000000000000000000000000000000", "1.0"),
        # Past the 38 digits, or past a float's range: refused, however they are written.
        ("0." + "1" * 4000, None),
        ("1" * 39 + ".5", None),
        ("1e999", None),
        ("1e-999", None),
        ("1e999999999", None),
    ],
)
def test_json_numbers_in_a_decimal_field_are_stored_as_they_were_written(
    literal: str, stored: str | None
) -> None:
    """What a decoder with ``float_hook=json_number`` hands a decimal field: a float when the
    float says what was written, else the number exactly as written."""
    decode = msgspec.json.Decoder(float_hook=json_number).decode
    number = decode(f'{{"n": {literal}}}')["n"]
    field = spec("amount", "decimal")
    if stored is None:
        with pytest.raises(FieldValueError, match="more than 38 digits"):
            canonical_value(field, number, "fields.amount")
    else:
        assert canonical_value(field, number, "fields.amount") == stored


def test_a_number_a_float_would_change_is_refused_by_other_numeric_fields() -> None:
    exact = json_number("12345678901234567.89")
    assert isinstance(exact, decimal.Decimal)
    with pytest.raises(FieldValueError, match="send a JSON integer"):
        canonical_value(spec("count", "integer"), exact, "fields.count")
    assert isinstance(json_number("19.99"), float)


@pytest.mark.parametrize("literal", ["1e9999999999999999999", "-0.0e-99999999999999999999999"])
def test_a_number_whose_exponent_no_decimal_holds_is_refused_by_the_decoder(literal: str) -> None:
    """Past Decimal's exponents (about 10**18) the number cannot be kept as written: the
    decoder refuses the document (as an integer of too many digits), not a 500 later."""
    decode = msgspec.json.Decoder(float_hook=json_number).decode
    with pytest.raises(msgspec.ValidationError, match="Number out of range"):
        decode(f'{{"n": {literal}}}')

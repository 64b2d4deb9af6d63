"""Field filters of the activity log, as query parameters: parsed by the field's declared type."""

from __future__ import annotations

import datetime as dt
import decimal

import hypothesis
import msgspec
import pytest
from hypothesis import strategies as st

from waypost.domain.field_filters import MAX_FILTER_LENGTH, FieldFilter, FilterError, parse_filters
from waypost.domain.fields import FieldSpec

TYPES = ["text", "integer", "decimal", "boolean", "datetime", "url", "email", "phone"]


def spec(name: str, type_: str = "text", **flags: object) -> FieldSpec:
    return msgspec.convert({"name": name, "type": type_, **flags}, FieldSpec)


SPECS = [spec(f"f_{type_}", type_) for type_ in TYPES]


def parse_one(type_: str, key: str, raw: str) -> FieldFilter:
    [found] = parse_filters(SPECS, {f"f_{type_}{key}": raw})
    return found


def refused(params: dict[str, str]) -> FilterError:
    with pytest.raises(FilterError) as caught:
        parse_filters(SPECS, params)
    return caught.value


@pytest.mark.parametrize(
    ("type_", "raw", "parsed"),
    [
        ("text", "Gold plan", "Gold plan"),
        ("text", "", ""),
        ("integer", "42", 42),
        ("integer", "-9223372036854775808", -(2**63)),
        ("integer", "9223372036854775807", 2**63 - 1),
        ("decimal", "50000.10", decimal.Decimal("50000.10")),
        ("decimal", "0.000000000000000001", decimal.Decimal("1E-18")),
        ("decimal", "-3", decimal.Decimal(-3)),
        ("boolean", "true", True),
        ("boolean", "false", False),
        ("boolean", "True", True),
        ("boolean", "FALSE", False),
        (
            "datetime",
            "2026-01-31T14:00:00+02:00",
            dt.datetime(2026, 1, 31, 12, tzinfo=dt.UTC),
        ),
        ("datetime", "2026-01-31T12:00:00Z", dt.datetime(2026, 1, 31, 12, tzinfo=dt.UTC)),
        ("url", "https://example.com/a", "https://example.com/a"),
        ("email", "ann@example.com", "ann@example.com"),
        # A phone number is compared in its stored form, E.164.
        ("phone", "+1 415 555 0123", "+14155550123"),
    ],
)
def test_equality_is_the_default_and_values_are_parsed_by_type(
    type_: str, raw: str, parsed: object
) -> None:
    found = parse_one(type_, "", raw)
    assert found.op == "eq"
    assert found.spec.name == f"f_{type_}"
    assert found.value == parsed
    assert type(found.value) is type(parsed)
    if isinstance(parsed, dt.datetime):
        assert isinstance(found.value, dt.datetime)
        assert found.value.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize("type_", ["integer", "decimal", "datetime"])
@pytest.mark.parametrize("op", ["gt", "gte", "lt", "lte"])
def test_ranges_apply_to_integers_decimals_and_datetimes(type_: str, op: str) -> None:
    raw = {"integer": "10", "decimal": "10.5", "datetime": "2026-01-01T00:00:00Z"}[type_]
    found = parse_one(type_, f".{op}", raw)
    assert found.op == op
    assert found.value == parse_one(type_, "", raw).value


@pytest.mark.parametrize("type_", ["text", "boolean", "url", "email", "phone"])
@pytest.mark.parametrize("op", ["gt", "gte", "lt", "lte"])
def test_ranges_on_other_types_are_refused(type_: str, op: str) -> None:
    error = refused({f"f_{type_}.{op}": "1"})
    assert error.parameter == f"field.f_{type_}.{op}"
    assert "ranges apply to integer, decimal and datetime" in str(error)


@pytest.mark.parametrize("type_", ["text", "url", "email", "phone"])
def test_contains_applies_to_text_types_and_keeps_the_needle_as_given(type_: str) -> None:
    # Not normalised, not validated: a part of an email or a phone number is no email or phone.
    found = parse_one(type_, ".contains", " 50%_off\\ ")
    assert found.op == "contains"
    assert found.value == " 50%_off\\ "


@pytest.mark.parametrize("type_", ["integer", "decimal", "boolean", "datetime"])
def test_contains_on_other_types_is_refused(type_: str) -> None:
    error = refused({f"f_{type_}.contains": "1"})
    assert error.parameter == f"field.f_{type_}.contains"
    assert "contains applies to text fields" in str(error)


@pytest.mark.parametrize(
    ("key", "raw"),
    [
        ("f_integer", "abc"),
        ("f_integer", ""),
        ("f_integer", "1.5"),
        ("f_integer", "1e3"),
        ("f_integer.gt", "9223372036854775808"),
        ("f_integer", "-9223372036854775809"),
        ("f_decimal", "abc"),
        ("f_decimal", ""),
        ("f_decimal", "NaN"),
        ("f_decimal.lt", "Infinity"),
        ("f_decimal.gte", "-inf"),
        ("f_decimal", "007.50"),
        ("f_decimal.gt", "1.5E2"),
        ("f_decimal", " 12 "),
        ("f_boolean", "yes"),
        ("f_boolean", "Truth"),
        ("f_boolean", "1"),
        ("f_datetime", "2026-01-31T12:00:00"),
        ("f_datetime.gte", "2026-01-31"),
        ("f_datetime", "yesterday"),
        ("f_datetime", "0001-01-01T00:00:00+01:00"),
        ("f_url", "example.com"),
        ("f_url", "ftp://example.com/"),
        ("f_url", "http://[::1"),
        ("f_email", "ann"),
        ("f_phone", "555 0123"),
    ],
)
def test_values_that_are_not_of_the_fields_type_are_refused(key: str, raw: str) -> None:
    error = refused({key: raw})
    assert error.parameter == f"field.{key}"
    assert "is not a" in str(error)


@pytest.mark.parametrize("key", ["f_text", "f_text.contains", "f_url.contains", "f_integer"])
def test_a_value_is_at_most_so_many_characters(key: str) -> None:
    # A contains filter becomes a LIKE pattern, whose length the database limits.
    assert parse_filters(SPECS, {"f_text.contains": "x" * MAX_FILTER_LENGTH})
    error = refused({key: "1" * (MAX_FILTER_LENGTH + 1)})
    assert error.parameter == f"field.{key}"
    assert f"at most {MAX_FILTER_LENGTH} characters" in str(error)
    # A group's saved filters (held to the limit when saved) and a playbook trigger's
    # (compared in Python) are read without it.
    if "text" in key or "url" in key:
        assert parse_filters(SPECS, {key: "1" * (MAX_FILTER_LENGTH + 1)}, max_length=None)


@pytest.mark.parametrize(
    ("type_", "key"),
    [*((t, "") for t in TYPES), *((t, ".contains") for t in ("text", "url", "email", "phone"))],
)
def test_a_nul_character_is_refused(type_: str, key: str) -> None:
    # PostgreSQL cannot compare text with NUL; no stored value holds one.
    error = refused({f"f_{type_}{key}": "a\x00b"})
    assert error.parameter == f"field.f_{type_}{key}"
    assert "NUL" in str(error)


def test_an_unknown_field_is_refused() -> None:
    error = refused({"f_integer": "1", "nope": "1"})
    assert error.parameter == "field.nope"
    assert "no field 'nope'" in str(error)


def test_field_names_are_exact() -> None:
    assert refused({"F_INTEGER": "1"}).parameter == "field.F_INTEGER"


@pytest.mark.parametrize("op", ["eq", "ne", "like", "gte.x", "GT", ""])
def test_an_unknown_operator_is_refused(op: str) -> None:
    if op in ("eq", ""):
        # Spelled out or left off, equality is the same filter.
        key = f"f_integer.{op}" if op else "f_integer"
        assert parse_filters(SPECS, {key: "1"})[0].op == "eq"
        return
    error = refused({f"f_integer.{op}": "1"})
    assert error.parameter == f"field.f_integer.{op}"
    assert "Unknown operator" in str(error)


def test_several_filters_on_one_field_make_a_range() -> None:
    found = parse_filters(SPECS, {"f_integer.gte": "10", "f_integer.lt": "20", "f_text": "a"})
    assert [(f.spec.name, f.op, f.value) for f in found] == [
        ("f_integer", "gte", 10),
        ("f_integer", "lt", 20),
        ("f_text", "eq", "a"),
    ]


def test_no_parameters_no_filters() -> None:
    assert parse_filters(SPECS, {}) == []
    assert parse_filters([], {}) == []


@hypothesis.given(
    params=st.dictionaries(
        st.one_of(
            st.text(max_size=20),
            st.builds(
                lambda name, op: f"{name}{op}",
                st.sampled_from([s.name for s in SPECS]),
                st.sampled_from(["", ".eq", ".gt", ".gte", ".lt", ".lte", ".contains", ".x"]),
            ),
        ),
        st.one_of(
            st.text(max_size=30),
            st.integers().map(str),
            st.decimals(allow_nan=True, allow_infinity=True).map(str),
            st.datetimes(timezones=st.just(dt.UTC)).map(dt.datetime.isoformat),
            st.sampled_from(["true", "false", "+14155550123", "a@b.co", "http://x.y/"]),
        ),
        max_size=4,
    )
)
def test_any_parameters_parse_or_are_a_filter_error(params: dict[str, str]) -> None:
    try:
        found = parse_filters(SPECS, params)
    except FilterError as exc:
        error = exc
    else:
        assert len(found) == len(params)
        check_parsed(found)
        return
    assert error.parameter.startswith("field.")
    assert error.parameter[len("field.") :] in params


def check_parsed(found: list[FieldFilter]) -> None:
    for f in found:
        if f.spec.type == "integer":
            assert isinstance(f.value, int)
            assert -(2**63) <= f.value < 2**63
        if f.spec.type == "decimal" and f.op != "contains":
            assert isinstance(f.value, decimal.Decimal)
            assert f.value.is_finite()
        if f.spec.type == "datetime":
            assert isinstance(f.value, dt.datetime)
            assert f.value.utcoffset() == dt.timedelta(0)

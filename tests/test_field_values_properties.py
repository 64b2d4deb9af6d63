"""Field values, property-based: any value either validates to its canonical form or is refused
as the client's fault, in the pure validator and through the HTTP API on both databases."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import hypothesis
import msgspec
import phonenumbers
import pytest
from hypothesis import HealthCheck
from hypothesis import strategies as st
from starlette.testclient import TestClient

from waypost.domain.field_values import (
    INT64_MAX,
    INT64_MIN,
    ORTTO_PREFIXES,
    FieldValueError,
    canonical_value,
    validate_fields,
)
from waypost.domain.fields import FieldSpec

if TYPE_CHECKING:
    from tests.conftest import Tracker

TYPES = ["text", "integer", "decimal", "boolean", "datetime", "url", "email", "phone"]
TEXT_LIMIT = 40
REFUSALS = {"invalid_field", "field_type_mismatch"}


def spec(name: str, type_: str = "text", **flags: object) -> FieldSpec:
    return msgspec.convert({"name": name, "type": type_, **flags}, FieldSpec)


def field_spec(type_: str) -> FieldSpec:
    return spec(f"f_{type_}", type_, max_length=TEXT_LIMIT if type_ == "text" else None)


SPECS = {type_: field_spec(type_) for type_ in TYPES}

# -- strategies ----------------------------------------------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=60)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
OFFSETS = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(
    lambda m: dt.timezone(dt.timedelta(minutes=m))
)
AWARE = st.datetimes(timezones=OFFSETS)
REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)


# Every region's example number, valid by the library's own metadata.
PHONES = st.sampled_from(
    [
        number
        for number in map(phonenumbers.example_number, REGIONS)
        if number is not None and phonenumbers.is_valid_number(number)
    ]
)
HOSTS = st.from_regex(r"[a-z0-9]{1,12}(\.[a-z0-9]{1,12}){0,2}\.[a-z]{2,6}", fullmatch=True)
URLS = st.builds(
    lambda scheme, host, path: f"{scheme}://{host}{path}",
    st.sampled_from(["http", "https"]),
    HOSTS,
    st.from_regex(
        r"(/[A-Za-z0-9._~%!$&'()*+,;=:@-]{0,12}){0,3}(\?[a-z0-9=&]{0,12})?", fullmatch=True
    ),
)
EMAILS = st.builds(
    lambda local, host: f"{local}@{host}",
    st.from_regex(r"[A-Za-z0-9._%+-]{1,20}", fullmatch=True),
    HOSTS,
)


def plain(number: decimal.Decimal) -> str:
    return f"{number:f}"


# Plain decimal notation: an optional minus, no leading zero, no exponent, no spaces.
PLAIN_NOTATION = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?")


def digits_of(text: str) -> int:
    return sum(ch.isdigit() for ch in text)


# Decimals as their exact plain text, at most 38 digits: these must come back character for
# character.
PLAIN_DECIMALS = (
    st.decimals(allow_nan=False, allow_infinity=False, places=None)
    .map(plain)
    .filter(lambda text: digits_of(text) <= 38)
) | st.sampled_from(
    ["50000.10", "0.000000000000000001", "-0.50", "12345678901234567890.123456789012345678"]
)


def canonical_values(type_: str) -> st.SearchStrategy[tuple[object, object]]:
    """(value to send, value stored) pairs of valid values of ``type_``."""
    same: Callable[[object], tuple[object, object]] = lambda value: (value, value)  # noqa: E731
    if type_ == "text":
        return st.text(max_size=TEXT_LIMIT).filter(lambda t: "\x00" not in t).map(same)
    if type_ == "integer":
        return st.integers(INT64_MIN, INT64_MAX).map(same)
    if type_ == "decimal":
        return PLAIN_DECIMALS.map(same)
    if type_ == "boolean":
        return st.booleans().map(same)
    if type_ == "datetime":
        return AWARE.filter(_fits_in_utc).map(
            lambda moment: (
                moment.isoformat(),
                moment.astimezone(dt.UTC).replace(tzinfo=None).isoformat("T", "microseconds") + "Z",
            )
        )
    if type_ == "url":
        return URLS.map(same)
    if type_ == "email":
        return EMAILS.map(same)
    assert type_ == "phone"
    return PHONES.flatmap(
        lambda number: st.sampled_from(
            [phonenumbers.PhoneNumberFormat.E164, phonenumbers.PhoneNumberFormat.INTERNATIONAL]
        ).map(
            lambda style: (
                phonenumbers.format_number(number, style),
                phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
            )
        )
    )


def _fits_in_utc(moment: dt.datetime) -> bool:
    try:
        moment.astimezone(dt.UTC)
    except OverflowError:
        return False
    return True


# Strings that look like values of some type, valid or nearly so: they reach the parsers.
PLAUSIBLE_STRINGS = st.one_of(
    st.text(max_size=60),
    st.text(alphabet=st.sampled_from("a\x00\\u0 "), max_size=8),
    AWARE.map(dt.datetime.isoformat),
    st.datetimes().map(dt.datetime.isoformat),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.builds(lambda m, e: f"{m}e{e}", st.integers(-99, 99), st.integers(-(10**9), 10**9)),
    st.from_regex(r"\+?[0-9 ()-]{0,25}", fullmatch=True),
    URLS,
    st.builds(
        lambda s, t: f"{s}://{t}", st.sampled_from(["http", "https", "ftp"]), st.text(max_size=20)
    ),
    EMAILS,
    st.builds(lambda a, b: f"{a}@{b}", st.text(max_size=10), st.text(max_size=10)),
)
ANY_VALUES = st.one_of(JSON_VALUES, PLAUSIBLE_STRINGS, st.integers(INT64_MIN - 5, INT64_MAX + 5))


T = TypeVar("T")


def attempt(call: Callable[[], T]) -> T | FieldValueError:
    """The result, or the FieldValueError raised: a refusal is an outcome to check."""
    try:
        return call()
    except FieldValueError as exc:
        return exc


def holds_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(holds_nul(k) or holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(holds_nul(v) for v in value)
    return False


def json_round_trip(value: object) -> object:
    return msgspec.json.decode(msgspec.json.encode(value))


# -- the pure validator --------------------------------------------------------------------

VALID = st.sampled_from(TYPES).flatmap(
    lambda type_: st.tuples(st.just(type_), canonical_values(type_))
)


@hypothesis.given(case=VALID)
def test_valid_values_are_stored_in_their_canonical_form(
    case: tuple[str, tuple[object, object]],
) -> None:
    type_, (sent, stored) = case
    field = SPECS[type_]
    result = canonical_value(field, sent, "fields.f")
    assert result == stored
    assert type(result) is type(stored)
    # Canonical forms are fixed points, and survive JSON unchanged.
    assert canonical_value(field, result, "fields.f") == result
    assert json_round_trip(result) == result


@hypothesis.given(type_=st.sampled_from(TYPES), value=ANY_VALUES)
def test_any_value_is_canonical_or_refused_as_the_clients_fault(type_: str, value: object) -> None:
    field = SPECS[type_]
    result = attempt(lambda: canonical_value(field, value, "fields.f"))
    if isinstance(result, FieldValueError):
        assert result.code in REFUSALS
        assert result.field == "fields.f"
        assert str(result)
        return
    expected_type = {"integer": int, "boolean": bool}.get(type_, str)
    assert type(result) is expected_type
    assert canonical_value(field, result, "fields.f") == result
    assert json_round_trip(result) == result
    if type_ == "text":
        assert result == value
        assert isinstance(result, str)
        assert len(result) <= TEXT_LIMIT


@hypothesis.given(value=st.integers())
def test_integers_are_exactly_the_64_bit_ones(value: int) -> None:
    result = attempt(lambda: canonical_value(SPECS["integer"], value, "f"))
    if isinstance(result, FieldValueError):
        assert result.code == "invalid_field"
        assert not INT64_MIN <= value <= INT64_MAX
    else:
        assert result == value
        assert INT64_MIN <= value <= INT64_MAX


@hypothesis.given(value=st.decimals(allow_nan=False, allow_infinity=False).map(str))
def test_decimals_are_stored_as_given_or_refused(value: str) -> None:
    stored = attempt(lambda: canonical_value(SPECS["decimal"], value, "f"))
    plain_notation = PLAIN_NOTATION.fullmatch(value) is not None
    if isinstance(stored, FieldValueError):
        assert stored.code == "invalid_field"
        # Refused only when not in plain notation, or for too many digits.
        assert not plain_notation or digits_of(value) > 38
        return
    assert plain_notation
    assert stored == value
    assert digits_of(stored) <= 38


@hypothesis.given(value=st.floats())
def test_decimals_from_json_numbers_lose_no_digit_of_the_number(value: float) -> None:
    stored = attempt(lambda: canonical_value(SPECS["decimal"], value, "f"))
    if isinstance(stored, FieldValueError):
        assert stored.code == "invalid_field"
        assert not math.isfinite(value) or digits_of(plain(decimal.Decimal(repr(value)))) > 38
        return
    assert isinstance(stored, str)
    assert PLAIN_NOTATION.fullmatch(stored)
    assert float(stored) == value
    assert decimal.Decimal(stored) == decimal.Decimal(repr(value))


@hypothesis.given(value=st.booleans())
def test_decimals_refuse_booleans(value: bool) -> None:
    with pytest.raises(FieldValueError) as caught:
        canonical_value(SPECS["decimal"], value, "f")
    assert caught.value.code == "field_type_mismatch"


@hypothesis.given(moment=AWARE)
@hypothesis.example(moment=dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))))
@hypothesis.example(
    moment=dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone(-dt.timedelta(hours=5)))
)
@hypothesis.example(moment=dt.datetime(1, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))))
def test_datetimes_are_the_same_instant_in_utc_or_refused(moment: dt.datetime) -> None:
    stored = attempt(lambda: canonical_value(SPECS["datetime"], moment.isoformat(), "f"))
    if isinstance(stored, FieldValueError):
        assert stored.code == "invalid_field"
        assert not _fits_in_utc(moment)
        return
    assert isinstance(stored, str)
    assert stored.endswith("Z")
    assert dt.datetime.fromisoformat(stored) == moment


@hypothesis.given(moment=st.datetimes())
def test_datetimes_without_an_offset_are_refused(moment: dt.datetime) -> None:
    with pytest.raises(FieldValueError) as caught:
        canonical_value(SPECS["datetime"], moment.isoformat(), "f")
    assert caught.value.code == "invalid_field"


@hypothesis.given(text=st.text(), limit=st.integers(1, 50))
def test_text_is_at_most_max_length(text: str, limit: int) -> None:
    field = spec("t", "text", max_length=limit)
    result = attempt(lambda: canonical_value(field, text, "f"))
    if isinstance(result, FieldValueError):
        assert result.code == "invalid_field"
        assert len(text) > limit
    else:
        assert result == text
        assert len(text) <= limit


@hypothesis.given(
    type_=st.sampled_from(TYPES),
    prefix=st.sampled_from([*ORTTO_PREFIXES, "xyz", "STR"]),
    case=st.data(),
)
def test_ortto_keys_are_accepted_exactly_when_the_prefix_agrees(
    type_: str, prefix: str, case: st.DataObject
) -> None:
    sent, stored = case.draw(canonical_values(type_))
    key = f"{prefix}:cm:f_{type_}"
    checked = attempt(lambda: validate_fields([SPECS[type_]], {key: sent}))
    if isinstance(checked, FieldValueError):
        assert type_ not in ORTTO_PREFIXES.get(prefix, frozenset())
        # An upper-case prefix makes no typed key at all, so the key names no field.
        assert checked.code == ("unknown_field" if prefix == "STR" else "field_type_mismatch")
        assert checked.field == f"fields.{key}"
        return
    assert type_ in ORTTO_PREFIXES[prefix]
    assert checked.values == {f"f_{type_}": stored}


FIELD_KEYS = st.one_of(
    st.sampled_from([s.name for s in SPECS.values()]),
    st.builds(
        lambda prefix, name: f"{prefix}:cm:{name}",
        st.sampled_from([*ORTTO_PREFIXES, "abc"]),
        st.sampled_from([*(s.name for s in SPECS.values()), "nope"]),
    ),
    st.sampled_from(["str::email", "str::first", "str::last", "str::phone", "int::x"]),
    st.text(max_size=12),
)


@hypothesis.given(
    values=st.dictionaries(FIELD_KEYS, ANY_VALUES, max_size=6),
    required=st.sampled_from([None, *TYPES]),
    primary=st.sampled_from([None, *TYPES]),
    flag=st.booleans(),
)
def test_validate_fields_never_fails_otherwise(
    values: dict[str, object], required: str | None, primary: str | None, flag: bool
) -> None:
    specs = [
        msgspec.structs.replace(s, required=s.type == required, primary=s.type == primary)
        for s in SPECS.values()
    ]
    checked = attempt(lambda: validate_fields(specs, values, flag=flag))
    if isinstance(checked, FieldValueError):
        assert checked.field.startswith("fields.")
        if flag:
            # Accept-and-flag stores what it can; only an absent required field refuses.
            assert checked.code == "missing_field"
        else:
            assert checked.code in {*REFUSALS, "unknown_field", "missing_field"}
        return
    assert set(checked.values) <= {s.name for s in specs}
    assert all(value is not None for value in checked.values.values())
    if required is not None:
        assert f"f_{required}" in checked.values
    if primary is not None and f"f_{primary}" in checked.values:
        assert isinstance(checked.primary, str)
    else:
        assert checked.primary is None
    assert set(checked.contact) <= {"email", "first_name", "last_name"}
    if not flag:
        assert checked.violations == []
    for violation in checked.violations:
        assert violation["field"] in values
        assert violation["code"] in {*REFUSALS, "unknown_field"}
        msgspec.json.encode(violation)


# -- through the HTTP API, on both databases -------------------------------------------------

HTTP = hypothesis.settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def typed(client: TestClient, admin_headers: dict[str, str]) -> str:
    """An activity type with one field of each type; its code name."""
    fields = [msgspec.to_builtins(s) for s in SPECS.values()]
    answer = client.post(
        "/api/activity-types",
        json={"name": "Every field type", "code_name": "custom_every", "fields": fields},
        headers=admin_headers,
    )
    assert answer.status_code == 201, answer.text
    code: str = answer.json()["code_name"]
    return code


def stored_fields(
    client: TestClient, headers: dict[str, str], contact: str, activity_id: str
) -> Any:
    answer = client.get("/api/activities", params={"contact": contact}, headers=headers)
    assert answer.status_code == 200, answer.text
    [activity] = answer.json()["data"]
    assert activity["id"] == activity_id
    return activity["fields"]


@HTTP
@hypothesis.given(
    case=st.one_of(
        VALID.map(lambda case: (case[0], case[1][0], case[1][1])),
        st.tuples(st.sampled_from(TYPES), ANY_VALUES, st.none()),
    )
)
def test_http_any_value_round_trips_exactly_or_is_a_400(
    case: tuple[str, object, object],
    tracker: Tracker,
    typed: str,
    admin_headers: dict[str, str],
) -> None:
    type_, sent, stored = case
    name = f"f_{type_}"
    contact = tracker.new_contact()
    [result] = tracker.log([{"type": typed, "fields": {name: sent}}], contact)
    if holds_nul(sent):
        # No database column can hold it; refused before any field is looked at.
        assert (result["status"], result["error"]["code"]) == (400, "invalid_field"), result
        assert "NUL" in result["error"]["message"]
        return
    expected = attempt(lambda: None if sent is None else canonical_value(SPECS[type_], sent, name))
    if isinstance(expected, FieldValueError):
        assert result["status"] == 400, result
        assert result["error"]["code"] == expected.code
        assert result["error"]["field"] == f"fields.{name}"
        return
    assert result["status"] == 202, result
    if stored is not None:
        assert expected == stored
    fields = stored_fields(tracker.client, admin_headers, contact, result["id"])
    assert fields == (None if expected is None else {name: expected})


ACTIVITY_KEYS = st.sampled_from(
    [
        *("type", "Type", "value", "title", "url", "referrer", "contactFields", "fields"),
        *("id", "occurredAt", "OCCURREDAT", "other"),
    ]
)


@st.composite
def activities(draw: st.DrawFn, code: str) -> object:
    """Activity objects close enough to valid ones to reach every rule, and anything else."""
    if draw(st.integers(0, 9)) == 0:
        return draw(JSON_VALUES)
    activity: dict[str, object] = {
        "type": draw(st.sampled_from([code, "pagevisit", "click", "datainput", "nope"]) | st.text())
    }
    for key in draw(st.lists(ACTIVITY_KEYS, max_size=4, unique=True)):
        if key == "fields":
            activity[key] = draw(st.dictionaries(FIELD_KEYS, ANY_VALUES, max_size=4) | JSON_VALUES)
        elif key == "contactFields":
            activity[key] = draw(
                st.dictionaries(
                    st.sampled_from(["ContactEmail", "ContactCountry", "ContactFirstName", "x"]),
                    ANY_VALUES,
                    max_size=3,
                )
            )
        elif key in ("url", "referrer"):
            activity[key] = draw(URLS | ANY_VALUES)
        else:
            activity[key] = draw(ANY_VALUES)
    return activity


@HTTP
@hypothesis.given(case=st.data())
def test_http_generated_activities_never_get_a_5xx(
    case: st.DataObject, tracker: Tracker, typed: str
) -> None:
    batch = case.draw(st.lists(activities(typed), min_size=0, max_size=4))
    answer = tracker.post(batch)
    assert answer.status_code < 500, answer.text
    if answer.status_code != 207:
        assert answer.status_code == 400, answer.text
        assert not batch or any(not isinstance(a, dict) for a in batch) or answer.json()
        return
    results = answer.json()["results"]
    assert len(results) == len(batch)
    for result in results:
        assert result["status"] in {202, 208, 400, 404, 413}, result
        if result["status"] >= 400:
            assert result["error"]["code"]
        else:
            uuid.UUID(result["id"])

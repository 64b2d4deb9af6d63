"""Segment messages mapped onto Waypost, as pure functions: docs/segment.md, "How messages map"."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import pytest

from waypost.domain.segment import (
    MappingError,
    Message,
    activity_object,
    check_text,
    country_code,
    ident,
    map_traits,
    occurred_at,
    traits_of,
)

RECEIVED = dt.datetime(2025, 3, 14, 12, 0, 10, tzinfo=dt.UTC)


def message(**fields: Any) -> Message:
    """A message as it arrives: decoded from JSON with Segment's camelCase names."""
    return msgspec.json.decode(msgspec.json.encode(fields), type=Message)


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC)


# -- ids ---------------------------------------------------------------------------------------


def test_numeric_user_ids_decode_and_become_text() -> None:
    decoded = message(userId=42, anonymousId=7, groupId=3, previousId=9)
    assert (decoded.user_id, decoded.anonymous_id) == (42, 7)
    assert [ident(v) for v in (42, 7, 0)] == ["42", "7", "0"]
    assert ident(decoded.group_id) == "3"
    assert ident(decoded.previous_id) == "9"


@pytest.mark.parametrize("value", [None, "", "   "])
def test_absent_or_blank_ids_are_none(value: str | None) -> None:
    assert ident(value) is None


def test_ids_are_trimmed() -> None:
    assert ident("  user-1 ") == "user-1"


def test_camel_case_names_are_read() -> None:
    decoded = message(
        type="track",
        userId="u",
        anonymousId="a",
        messageId="m",
        originalTimestamp="2025-01-01T00:00:00Z",
        sentAt="2025-01-01T00:00:01Z",
        event="Order Completed",
        properties={"revenue": "1"},
        integrations={"All": True},
        channel="server",
    )
    assert decoded.message_id == "m"
    assert decoded.original_timestamp == "2025-01-01T00:00:00Z"
    assert decoded.sent_at == "2025-01-01T00:00:01Z"
    assert decoded.anonymous_id == "a"


@pytest.mark.parametrize(
    "raw", [rb'{"a": "\u0000"}', rb'{"\u0000": 1}', rb'{"a": "x\\\u0000"}', rb'{"u": "\u0000x"}']
)
def test_the_nul_character_anywhere_is_a_mapping_error(raw: bytes) -> None:
    with pytest.raises(MappingError):
        check_text(raw)


@pytest.mark.parametrize("raw", [rb'{"a": "\\u0000"}', rb'{"a": "\\\\u0000"}', b'{"a": "u0000"}'])
def test_an_escaped_backslash_before_u0000_is_no_nul(raw: bytes) -> None:
    check_text(raw)


# -- occurred_at: Segment's clock-skew correction ----------------------------------------------


def test_without_a_timestamp_it_is_when_received() -> None:
    assert occurred_at(message(type="track"), None, RECEIVED) == RECEIVED
    # sentAt alone corrects nothing.
    assert occurred_at(message(sentAt="2030-01-01T00:00:00Z"), None, RECEIVED) == RECEIVED


def test_a_timestamp_without_sent_at_is_taken_as_sent() -> None:
    got = occurred_at(message(timestamp="2025-03-01T09:30:00+02:00"), None, RECEIVED)
    assert got == dt.datetime(2025, 3, 1, 7, 30, tzinfo=dt.UTC)
    assert got.tzinfo is not None
    assert got.utcoffset() == dt.timedelta(0)


def test_sent_at_corrects_a_fast_client_clock() -> None:
    """timestamp = receivedAt - (sentAt - timestamp): a clock one hour fast, an event that
    happened 65 seconds before the batch was sent, lands 65 seconds before it was received."""
    sent = message(timestamp="2025-03-14T12:59:05Z", sentAt="2025-03-14T13:00:10Z")
    assert occurred_at(sent, None, RECEIVED) == RECEIVED - dt.timedelta(seconds=65)


def test_sent_at_corrects_a_slow_client_clock_across_offsets() -> None:
    # The client's clock is a day behind and speaks +05:30; the event was 2.5 s before sending.
    sent = message(timestamp="2025-03-13T17:30:07.500+05:30", sentAt="2025-03-13T17:30:10+05:30")
    assert occurred_at(sent, None, RECEIVED) == RECEIVED - dt.timedelta(seconds=2.5)


def test_the_batch_sent_at_applies_when_the_message_has_none() -> None:
    sent = message(timestamp="2025-03-14T11:00:00Z")
    got = occurred_at(sent, "2025-03-14T11:00:30Z", RECEIVED)
    assert got == RECEIVED - dt.timedelta(seconds=30)


def test_the_messages_own_sent_at_wins_over_the_batchs() -> None:
    sent = message(timestamp="2025-03-14T11:00:00Z", sentAt="2025-03-14T11:00:05Z")
    got = occurred_at(sent, "2025-03-14T11:00:30Z", RECEIVED)
    assert got == RECEIVED - dt.timedelta(seconds=5)


def test_original_timestamp_is_used_without_a_timestamp() -> None:
    plain = message(originalTimestamp="2025-02-01T08:00:00Z")
    assert occurred_at(plain, None, RECEIVED) == utc("2025-02-01T08:00:00+00:00")
    corrected = message(originalTimestamp="2025-02-01T08:00:00Z", sentAt="2025-02-01T08:00:40Z")
    assert occurred_at(corrected, None, RECEIVED) == RECEIVED - dt.timedelta(seconds=40)


def test_historical_imports_keep_their_distance_from_sending() -> None:
    # A server library importing last year's event sends sentAt now: the correction keeps it
    # a year back on the server's clock.
    sent = message(timestamp="2024-03-14T12:00:10Z", sentAt="2025-03-14T12:00:10Z")
    assert occurred_at(sent, None, RECEIVED) == RECEIVED - dt.timedelta(days=365)


@pytest.mark.parametrize(
    ("fields", "batch_sent_at", "field"),
    [
        ({"timestamp": "yesterday"}, None, "timestamp"),
        ({"timestamp": "2025-03-14T12:00:00"}, None, "timestamp"),  # no offset
        ({"originalTimestamp": "14/03/2025"}, None, "timestamp"),
        ({"timestamp": "2025-03-14T12:00:00Z", "sentAt": "now"}, None, "sentAt"),
        ({"timestamp": "2025-03-14T12:00:00Z"}, "2025-03-14T12:00:00", "sentAt"),
    ],
)
def test_times_that_are_not_iso_8601_with_an_offset_are_mapping_errors(
    fields: dict[str, str], batch_sent_at: str | None, field: str
) -> None:
    with pytest.raises(MappingError) as raised:
        occurred_at(message(**fields), batch_sent_at, RECEIVED)
    assert raised.value.field == field
    assert raised.value.code == "invalid_field"


@pytest.mark.parametrize(
    ("timestamp", "sent_at"),
    [
        ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"),
        ("9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"),
    ],
)
def test_a_correction_beyond_the_calendar_is_a_mapping_error(timestamp: str, sent_at: str) -> None:
    """Nothing the client sends may become a 500: a skew of ten thousand years is refused."""
    with pytest.raises(MappingError):
        occurred_at(message(timestamp=timestamp, sentAt=sent_at), None, RECEIVED)


# -- traits ------------------------------------------------------------------------------------


def test_top_level_traits_win_over_context_traits() -> None:
    sent = message(
        traits={"email": "top@example.com", "plan": "pro"},
        context={"traits": {"email": "nested@example.com", "firstName": "Ann"}},
    )
    assert traits_of(sent) == {"email": "top@example.com", "plan": "pro", "firstName": "Ann"}


def test_context_traits_alone_are_read() -> None:
    # RudderStack's Python SDK sends identify traits only in context.traits.
    sent = message(context={"traits": {"email": "ann@example.com"}})
    assert traits_of(sent) == {"email": "ann@example.com"}


@pytest.mark.parametrize("context", [None, {}, {"traits": None}, {"traits": ["x"]}])
def test_missing_or_odd_context_traits_are_ignored(context: dict[str, Any] | None) -> None:
    assert traits_of(message(traits={"a": 1}, context=context)) == {"a": 1}


@pytest.mark.parametrize(
    ("trait", "value", "column", "stored"),
    [
        ("email", " ann@example.com ", "email", "ann@example.com"),
        ("firstName", "Ann", "first_name", "Ann"),
        ("first_name", "Ann", "first_name", "Ann"),
        ("lastName", "Cole", "last_name", "Cole"),
        ("last_name", "Cole", "last_name", "Cole"),
        ("title", "CTO", "job_title", "CTO"),
        ("phone", "+1 (415) 555-2671", "mobile_phone", "+14155552671"),
        ("phone", "+420 601 123 456", "mobile_phone", "+420601123456"),
        ("birthday", "1990-05-17", "birthday", dt.date(1990, 5, 17)),
        ("birthday", "1990-05-17T00:00:00.000Z", "birthday", dt.date(1990, 5, 17)),
        ("description", "Met at the fair", "notes", "Met at the fair"),
        ("company", "Acme", "company_name", "Acme"),
    ],
)
def test_each_reserved_trait_sets_its_contact_field(
    trait: str, value: str, column: str, stored: object
) -> None:
    assert map_traits({trait: value}) == ({column: stored}, {})


@pytest.mark.parametrize(
    ("trait", "value"),
    [
        ("phone", "555-1234"),  # no country code
        ("phone", "+1 000 000 0000"),  # not a valid number
        ("phone", 4155552671),  # not a string
        ("email", "not an email"),
        ("email", "a" * 250 + "@example.com"),
        ("birthday", "17/05/1990"),
        ("birthday", 642902400),
        ("firstName", 42),
        ("lastName", ""),
        ("title", None),
        ("firstName", "A" * 101),  # longer than the contact field
        ("lastName", "C" * 101),
        ("title", "T" * 201),
    ],
)
def test_a_value_that_does_not_fit_its_field_is_kept_as_an_attribute(
    trait: str, value: object
) -> None:
    assert map_traits({trait: value}) == ({}, {trait: value})


def test_unreserved_traits_are_attributes_as_sent() -> None:
    traits = {
        "plan": "pro",
        "age": 41,
        "name": "Ann Cole",
        "createdAt": "2020-01-01T00:00:00Z",
        "tags": ["a", "b"],
        "nested": {"x": {"y": 1}},
        "verified": True,
    }
    assert map_traits(traits) == ({}, traits)


def test_company_as_an_object() -> None:
    fields, attributes = map_traits(
        {"company": {"name": " Acme Inc. ", "id": 7, "industry": "Rockets", "employee_count": 120}}
    )
    assert fields == {"company_name": "Acme Inc."}
    assert attributes == {"company": {"id": 7, "industry": "Rockets", "employee_count": 120}}


def test_company_without_a_name_is_an_attribute() -> None:
    fields, attributes = map_traits({"company": {"id": 7}})
    assert fields == {}
    assert attributes == {"company": {"id": 7}}


def test_a_company_name_longer_than_its_field_is_an_attribute() -> None:
    long_name = "N" * 201
    assert map_traits({"company": long_name}) == ({}, {"company": long_name})
    fields, attributes = map_traits({"company": {"name": long_name, "id": 7}})
    assert fields == {}
    assert attributes == {"company": {"name": long_name, "id": 7}}


def test_a_full_address() -> None:
    fields, attributes = map_traits(
        {
            "address": {
                "street": "1 Market St",
                "city": "San Francisco",
                "postalCode": "94105",
                "state": "ca",
                "country": "US",
            }
        }
    )
    assert fields == {
        "address1": "1 Market St",
        "city": "San Francisco",
        "zip": "94105",
        "state": "CA",
        "country": "USA",
    }
    assert attributes == {}


def test_address_parts_that_do_not_fit_stay_in_the_address_attribute() -> None:
    fields, attributes = map_traits(
        {
            "address": {
                "street": "Vodičkova 1",
                "city": "Praha",
                "postalCode": "110 00",
                "country": "Czechia",
                "state": "CA",  # not a state of the Czech Republic: Waypost keeps US states
                "line2": "3rd floor",
            }
        }
    )
    assert fields == {"address1": "Vodičkova 1", "city": "Praha", "zip": "110 00", "country": "CZE"}
    assert attributes == {"address": {"state": "CA", "line2": "3rd floor"}}


def test_address_parts_longer_than_their_fields_stay_in_the_address_attribute() -> None:
    address = {"street": "S" * 201, "city": "C" * 101, "postalCode": "1" * 21, "country": "DE"}
    fields, attributes = map_traits({"address": address})
    assert fields == {"country": "DEU"}
    assert attributes == {"address": {k: v for k, v in address.items() if k != "country"}}


def test_an_unknown_country_and_a_state_without_one() -> None:
    fields, attributes = map_traits({"address": {"country": "Atlantis", "state": "NY"}})
    assert fields == {"state": "NY"}
    assert attributes == {"address": {"country": "Atlantis"}}


def test_a_state_that_is_not_a_us_state_stays_an_attribute() -> None:
    fields, attributes = map_traits({"address": {"country": "USA", "state": "Bavaria"}})
    assert fields == {"country": "USA"}
    assert attributes == {"address": {"state": "Bavaria"}}


def test_identify_traits_of_a_typical_sdk_call() -> None:
    fields, attributes = map_traits(
        {
            "email": "ann@example.com",
            "firstName": "Ann",
            "lastName": "Cole",
            "phone": "not a phone",
            "company": {"name": "Acme", "plan": "enterprise"},
            "address": {"city": "Boston", "country": "United States", "state": "MA"},
            "logins": 5,
        }
    )
    assert fields == {
        "email": "ann@example.com",
        "first_name": "Ann",
        "last_name": "Cole",
        "company_name": "Acme",
        "city": "Boston",
        "country": "USA",
        "state": "MA",
    }
    assert attributes == {"phone": "not a phone", "company": {"plan": "enterprise"}, "logins": 5}


# -- countries ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "code"),
    [
        ("US", "USA"),
        ("us", "USA"),
        ("USA", "USA"),
        ("United States", "USA"),
        ("united states", "USA"),
        ("CZ", "CZE"),
        ("CZE", "CZE"),
        ("Czechia", "CZE"),
        ("Germany", "DEU"),
        ("DE", "DEU"),
        (" GB ", "GBR"),
        ("United Kingdom", "GBR"),
    ],
)
def test_a_country_from_alpha_2_alpha_3_or_its_name(given: str, code: str) -> None:
    assert country_code(given) == code


@pytest.mark.parametrize("given", ["", "  ", "Atlantis", "XX", "XYZ"])
def test_what_is_not_a_country(given: str) -> None:
    assert country_code(given) is None


# -- activity objects --------------------------------------------------------------------------

WHEN = dt.datetime(2025, 3, 14, 11, 59, tzinfo=dt.UTC)


def test_a_track_message_becomes_an_activity_object() -> None:
    sent = message(
        type="track",
        event="Order Completed",
        messageId="msg-1",
        properties={
            "revenue": "42.50",
            "url": "https://shop.example.com/checkout",
            "referrer": "https://www.example.org/",
        },
    )
    activity = activity_object(sent, "order_completed", WHEN, sent.properties)
    assert activity == {
        "type": "order_completed",
        "occurredAt": WHEN.isoformat(),
        "id": "msg-1",
        "url": "https://shop.example.com/checkout",
        "referrer": "https://www.example.org/",
        "fields": {
            "revenue": "42.50",
            "url": "https://shop.example.com/checkout",
            "referrer": "https://www.example.org/",
        },
    }
    # A track message has no value: its title is the type's name.
    assert "value" not in activity


def test_the_url_and_referrer_fall_back_to_context_page() -> None:
    sent = message(
        type="track",
        context={"page": {"url": "https://example.com/a", "referrer": "https://example.com/b"}},
    )
    activity = activity_object(sent, "x", WHEN, None)
    assert (activity["url"], activity["referrer"]) == (
        "https://example.com/a",
        "https://example.com/b",
    )
    assert "fields" not in activity
    assert "id" not in activity


@pytest.mark.parametrize("url", ["/relative", "ftp://example.com/x", "javascript:alert(1)", 42])
def test_urls_that_are_not_absolute_http_are_left_out(url: object) -> None:
    sent = message(type="page", properties={"url": url, "referrer": url})
    activity = activity_object(sent, "pagevisit", WHEN, None)
    assert "url" not in activity
    assert "referrer" not in activity


@pytest.mark.parametrize(
    ("fields", "value"),
    [
        ({"name": "Pricing", "properties": {"title": "Pricing | Acme"}}, "Pricing"),
        ({"properties": {"title": "Pricing | Acme"}}, "Pricing | Acme"),
        ({"context": {"page": {"title": "From the page"}}}, "From the page"),
        ({}, None),
    ],
)
def test_a_page_value_is_its_name_or_title(fields: dict[str, Any], value: str | None) -> None:
    sent = message(type="page", **fields)
    assert activity_object(sent, "pagevisit", WHEN, None).get("value") == value


def test_a_screen_value_is_its_name() -> None:
    sent = message(type="screen", name="Settings", properties={"url": "https://app.example/s"})
    activity = activity_object(sent, "screen", WHEN, None)
    assert activity["value"] == "Settings"
    assert activity["url"] == "https://app.example/s"


def test_long_message_ids_are_cut_to_the_activity_id_limit() -> None:
    sent = message(type="track", messageId="m" * 150)
    assert activity_object(sent, "x", WHEN, None)["id"] == "m" * 100

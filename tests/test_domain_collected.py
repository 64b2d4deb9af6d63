"""What the collectors share, without I/O: waypost/domain/collected.py."""

from __future__ import annotations

import msgspec
import pytest

from waypost.domain.collected import (
    MAX_WHERE,
    Collected,
    OutOfRange,
    Unread,
    activity_emails,
    activity_names,
    loose_id,
    named,
    page_claims,
    read_events,
    readable,
    rejected,
    split_claims,
)
from waypost.domain.segment import MappingError


def test_the_names_a_page_may_give_a_type() -> None:
    assert activity_names("act:cm:login") == ("act:cm:login", "login")
    assert activity_names("act:cm:payment-made") == (
        "act:cm:payment-made",
        "payment-made",
        "payment_made",
    )
    assert activity_names("custom_cta") == ("custom_cta",)


def test_ortto_system_keys_are_claims() -> None:
    fields = {"str::email": "a@example.com", "str::first": "Ann", "str:cm:plan": "pro"}
    assert split_claims(fields) == (
        {"str:cm:plan": "pro"},
        {"email": "a@example.com", "first_name": "Ann"},
    )
    assert split_claims({"plan": "pro"}) == ({"plan": "pro"}, {})


def test_a_pages_event_claims_with_its_traits() -> None:
    event = Collected(
        b"{}",
        activity={"fields": {"str::email": "a@example.com", "plan": "pro"}},
        traits={"last_name": "Cole"},
    )
    claimed = page_claims(event)
    assert claimed.activity == {"fields": {"plan": "pro"}}
    assert claimed.traits == {"last_name": "Cole", "email": "a@example.com"}
    assert page_claims(Collected(b"{}")) == Collected(b"{}")


def test_readable_reads_all_but_the_numbers_no_reader_takes() -> None:
    """A number out of range (an exponent past a float's, more digits than Python reads)
    hides nothing beside it: each is None, and the first one's place is given."""
    huge = b"1" + b"0" * 5000
    raw = (
        b'{"id": "u", "n": 1e400, "traits": {"email": "a@example.com", "big": ' + huge + b"},"
        b' "list": [1, 2e999, {"x": 3}]}'
    )
    value, where = readable(raw)
    assert value == {
        "id": "u",
        "n": None,
        "traits": {"email": "a@example.com", "big": None},
        "list": [1, None, {"x": 3}],
    }
    assert where == "n"
    assert readable(b'[{"a": [0, 1e400]}]') == ([{"a": [0, None]}], "[0].a[1]")
    assert readable(b"1e400") == (None, "")
    assert readable(b'{"fine": [1.5, "x"]}') == ({"fine": [1.5, "x"]}, None)


@pytest.mark.parametrize("raw", [b"{not json", b'{"n": 1e400, "x": }', b'[1e400, "open'])
def test_readable_refuses_what_is_not_json(raw: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        readable(raw)


def test_a_body_of_events_is_read_event_by_event_past_a_number_out_of_range() -> None:
    """Each event holding a number no reader takes is an Unread, as sent; the others, and
    the body's other members, are read as usual, whichever collector's key holds the list."""
    unread = b'{"id": "u", "n": 1e400}'
    for raw in (
        b'{"key": 1e400, "data": [{"id": "a"}, %s]}' % unread,
        b'[{"id": "a"}, %s]' % unread,
    ):
        document = read_events(raw, "data")
        events = document if isinstance(document, list) else document["data"]
        assert events == [{"id": "a"}, Unread(unread, {"id": "u", "n": None}, "n")]
    assert read_events(b'{"key": "k", "data": [{"id": "a"}]}', "data") == {
        "key": "k",
        "data": [{"id": "a"}],
    }
    # An object without the list is one event; a number alone is none.
    assert read_events(unread, "data") == Unread(unread, {"id": "u", "n": None}, "n")
    assert read_events(b"1e400", "data") is None
    kept = Unread(unread, {"id": "u", "n": None}, "n").kept(Collected(b"{}", person="u"))
    assert (kept.payload, kept.person) == (unread, "u")
    assert isinstance(kept.error, OutOfRange)
    assert (kept.error.code, kept.error.field) == ("invalid_field", "n")
    # The place is cut to the rejection's column; the event itself has none.
    assert OutOfRange("x" * 300).field == "x" * MAX_WHERE
    assert OutOfRange("").field is None


def test_what_an_event_that_cannot_be_mapped_names_is_read_value_by_value() -> None:
    # Each value on its own: one absent, not text or too long hides none of the others.
    names = named(
        user=["not", "an", "id"],
        anonymous=" d-1 ",
        ids=["x" * 201, 42, None, "p-1", "p-1", True],
        others=[("nuid", "n-1"), ("nuid", ""), ("nuid", {"no": 1})],
        emails=[" Ann@Example.com ", 7, "", None],
    )
    assert (names.user, names.anonymous) == (None, "d-1")
    assert names.ids == ("42", "p-1")
    assert names.others == (("nuid", "n-1"),)
    assert names.emails == ("Ann@Example.com",)
    assert loose_id("x" * 200) == "x" * 200
    assert loose_id("x" * 201) is None


def test_a_rejected_event_keeps_what_it_names_and_nothing_else() -> None:
    error = MappingError("no", field="e")
    kept = rejected({"e": "tr", "duid": "d"}, error, "tr", named(anonymous="d", ids=["p"]))
    assert (kept.payload, kept.label, kept.error) == (b'{"e": "tr", "duid": "d"}', "tr", error)
    assert (kept.anonymous, kept.ids, kept.activity, kept.traits) == ("d", ("p",), None, None)
    plain = rejected({"e": "tr"}, error, "tr")
    assert (plain.user, plain.anonymous, plain.ids, plain.emails) == (None, None, (), ())


def test_the_emails_an_activity_names_however_else_it_is_wrong() -> None:
    raw = (
        b'{"Type": 1, "CONTACTFIELDS": {"contactEmail": " a@x.com ", "ContactEmail": 7}, '
        b'"fields": {"str::email": "b@x.com", "n": 1e400}, "colour": [1]}'
    )
    assert activity_emails(raw) == ("a@x.com", "b@x.com")
    assert activity_emails(b'{"fields": {"STR::EMAIL": "c@x.com"}}') == ()  # as matched
    assert activity_emails(b'{"contactFields": "a@x.com"}') == ()
    assert activity_emails(b"[1]") == activity_emails(b"not json") == ()
    # Nested past the limit and holding a number out of range: not read level by level.
    deep = b'{"contactFields": {"ContactEmail": "a@x.com"}, "x": ' + b"[" * 70 + b"1e400"
    assert activity_emails(deep + b"]" * 70 + b"}") == ()

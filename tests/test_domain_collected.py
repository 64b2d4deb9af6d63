"""What the collectors share, without I/O: waypost/domain/collected.py."""

from __future__ import annotations

import msgspec
import pytest

from waypost.domain.collected import (
    MAX_WHERE,
    Collected,
    OutOfRange,
    Unread,
    activity_names,
    page_claims,
    read_events,
    readable,
    split_claims,
)


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

"""What the collectors share, without I/O: waypost/domain/collected.py."""

from __future__ import annotations

import msgspec
import pytest

from waypost.domain.collected import (
    Collected,
    activity_names,
    page_claims,
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

"""What the collectors share, without I/O: waypost/domain/collected.py."""

from __future__ import annotations

from waypost.domain.collected import Collected, activity_names, page_claims, split_claims


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

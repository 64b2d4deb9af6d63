"""Code names derived from display names: lower case, underscores, unique."""

from __future__ import annotations

import pytest

from waypost.domain.codenames import MAX_LENGTH, derive_code_name, is_valid_code_name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Loan calculator usage", "loan_calculator_usage"),
        ("Order Completed", "order_completed"),
        ("  Signed up -- via   the app!  ", "signed_up_via_the_app"),
        ("CTA click #2", "cta_click_2"),
        ("2FA enabled", "2fa_enabled"),
        ("already_snake_case", "already_snake_case"),
    ],
)
def test_derive_from_a_display_name(name: str, expected: str) -> None:
    assert derive_code_name(name) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Café crème", "cafe_creme"),
        ("Über Größe", "uber_grosse"),
        ("Žluťoučký kůň", "zlutoucky_kun"),
        ("Ærø Łódź", "aero_lodz"),
        ("Smørrebrød", "smorrebrod"),
    ],
)
def test_accents_are_dropped_and_letters_kept(name: str, expected: str) -> None:
    assert derive_code_name(name) == expected


@pytest.mark.parametrize("name", ["", "  ", "!!!", "日本語"])
def test_a_name_without_latin_letters_or_digits_gets_a_neutral_code_name(name: str) -> None:
    assert derive_code_name(name) == "activity"


def test_collisions_take_the_first_free_number() -> None:
    assert derive_code_name("Signup", {"signup"}) == "signup_2"
    assert derive_code_name("Signup", {"signup", "signup_2", "signup_3"}) == "signup_4"
    assert derive_code_name("Signup", {"signup_2"}) == "signup"


def test_long_names_are_cut_to_the_limit_without_a_trailing_underscore() -> None:
    name = "a" * (MAX_LENGTH - 1) + " tail"
    derived = derive_code_name(name)
    assert derived == "a" * (MAX_LENGTH - 1)
    taken = {"b" * MAX_LENGTH}
    numbered = derive_code_name("b" * 150, taken)
    assert len(numbered) == MAX_LENGTH
    assert numbered.endswith("_2")
    assert numbered not in taken
    cut_at_a_space = derive_code_name("c" * 97 + " de", {"c" * 97 + "_de"})
    assert cut_at_a_space == "c" * 97 + "_2"


@pytest.mark.parametrize(
    "name", ["Loan calculator usage", "Café", "!!!", "x" * 300, "Über " * 40, "9 lives"]
)
def test_derived_code_names_are_valid(name: str) -> None:
    assert is_valid_code_name(derive_code_name(name))
    assert is_valid_code_name(derive_code_name(name, {derive_code_name(name)}))


@pytest.mark.parametrize(
    ("code_name", "valid"),
    [
        ("loan_calculator_usage", True),
        ("order.completed", True),
        ("2fa", True),
        ("a", True),
        ("x" * MAX_LENGTH, True),
        ("x" * (MAX_LENGTH + 1), False),
        ("", False),
        ("_leading", False),
        (".leading", False),
        ("Upper", False),
        ("with space", False),
        ("dash-ed", False),
        ("café", False),
    ],
)
def test_is_valid_code_name(code_name: str, valid: bool) -> None:
    assert is_valid_code_name(code_name) is valid


def test_a_trailing_newline_is_no_part_of_a_code_name() -> None:
    assert not is_valid_code_name("loan\n")

"""Activity titles in Kentico's formats."""

from __future__ import annotations

import pytest

from waypost.domain.titles import MAX_TITLE, activity_title


@pytest.mark.parametrize(
    ("code", "value", "title"),
    [
        ("pagevisit", "Home", "Page visit 'Home'"),
        ("click", "MyClickableElement", "Clicked 'MyClickableElement'"),
        ("datainput", "Registration form", "Data input 'Registration form'"),
    ],
)
def test_builtin_titles(code: str, value: str, title: str) -> None:
    assert activity_title(code, "ignored", value, "https://example.com/") == title


def test_a_page_visit_without_a_value_is_titled_by_its_url() -> None:
    title = activity_title("pagevisit", "Page visit", None, "https://example.com/mypage")
    assert title == "Page visit 'https://example.com/mypage'"


def test_a_custom_type_is_its_name_followed_by_the_value() -> None:
    assert activity_title("custom_loan_calculator", "Loan calculator usage", "5000") == (
        "Loan calculator usage '5000'"
    )


@pytest.mark.parametrize("value", [None, ""])
def test_a_custom_type_without_a_value_is_its_name_alone(value: str | None) -> None:
    assert activity_title("custom_loan_calculator", "Loan calculator usage", value) == (
        "Loan calculator usage"
    )


def test_the_value_is_kept_as_given() -> None:
    assert activity_title("click", "Click", 'it\'s "quoted"') == "Clicked 'it's \"quoted\"'"


def test_titles_are_cut_to_the_column_length() -> None:
    title = activity_title("custom", "Name", "x" * 2000)
    assert len(title) == MAX_TITLE
    assert title.startswith("Name 'xxx")

"""A group's condition in words, as its page shows it."""

from __future__ import annotations

from typing import Any

import pytest

from waypost.admin.condition_text import Names, Phrase, describe

GROUP = "0190f1c2-0000-7000-8000-000000000001"
NAMES = Names(
    types={"custom_loan": "Loan calculator", "pagevisit": "Page visit"},
    consents={"TrackingConsent": "Tracking"},
    groups={GROUP: "Big spenders"},
)


@pytest.mark.parametrize(
    ("condition", "text"),
    [
        ({"activity": {"type": "pagevisit"}}, "Page visit at least once ever"),
        (
            {"activity": {"type": "custom_loan", "at_least": 3, "within_days": 30}},
            "Loan calculator at least 3 times in the last 30 days",
        ),
        (
            {"activity": {"type": "pagevisit", "at_most": 2, "within_days": 1}},
            "Page visit at most twice today",
        ),
        ({"activity": {"type": "pagevisit", "exactly": 0}}, "Page visit never"),
        (
            {"activity": {"type": "pagevisit", "exactly": 1500}},
            "Page visit exactly 1,500 times ever",
        ),
        (
            {"activity": {"type": "x", "between": {"from": "2026-01-01", "to": "2026-01-31"}}},
            "x at least once from 2026-01-01 to 2026-01-31",
        ),
        (
            {
                "activity": {
                    "type": "custom_loan",
                    "fields": {"amount": {"gte": "1000", "lt": 5000}, "currency": {"eq": "EUR"}},
                }
            },
            "Loan calculator at least once ever"
            " with amount ≥ 1000 and amount < 5000 and currency = EUR",
        ),
        (
            {"activity": {"type": "custom_loan", "fields": {"gift": {"eq": False}}}},
            "Loan calculator at least once ever with gift = false",
        ),
        ({"contact": {"field": "country", "equals": "USA"}}, "Country is “USA”"),
        ({"contact": {"field": "email", "not_equals": "a@b.c"}}, "Email is not “a@b.c”"),
        ({"contact": {"field": "city", "contains": "berg"}}, "City contains “berg”"),
        (
            {"contact": {"field": "attributes.plan", "in": ["pro", "team"]}},
            "Attribute plan is one of “pro”, “team”",
        ),
        ({"contact": {"field": "email", "exists": True}}, "Email is set"),
        ({"contact": {"field": "email", "exists": False}}, "Email is not set"),
        (
            {"contact": {"field": "birthday", "before": "1990-01-01"}},
            "Birthday is before 1990-01-01",
        ),
        ({"consent": "TrackingConsent"}, "Agrees to Tracking"),
        ({"consent": "Other"}, "Agrees to Other"),
        ({"not": {"consent": "TrackingConsent"}}, "Not: Agrees to Tracking"),
    ],
)
def test_leaves_read_as_sentences(condition: dict[str, Any], text: str) -> None:
    assert describe(condition, NAMES) == Phrase(text)


def test_groups_link_to_their_page_unless_deleted() -> None:
    assert describe({"group": GROUP}, NAMES) == Phrase(
        "In the group Big spenders", link=f"/admin/groups/{GROUP}"
    )
    assert describe({"not": {"group": GROUP}}, NAMES).link == f"/admin/groups/{GROUP}"
    gone = "0190f1c2-0000-7000-8000-000000000002"
    assert describe({"group": gone}, NAMES) == Phrase(f"In the group {gone} (deleted)")


def test_all_any_and_not_nest() -> None:
    condition = {
        "all": [
            {"any": [{"consent": "TrackingConsent"}, {"activity": {"type": "pagevisit"}}]},
            {"not": {"all": [{"consent": "A"}, {"consent": "B"}]}},
            {"not": {"any": [{"consent": "C"}]}},
            {"not": {"not": {"consent": "D"}}},
        ]
    }
    assert describe(condition, NAMES) == Phrase(
        "All of these:",
        [
            Phrase(
                "At least one of these:",
                [Phrase("Agrees to Tracking"), Phrase("Page visit at least once ever")],
            ),
            Phrase("Not all of these:", [Phrase("Agrees to A"), Phrase("Agrees to B")]),
            Phrase("None of these:", [Phrase("Agrees to C")]),
            Phrase("Not: Not: Agrees to D"),
        ],
    )


@pytest.mark.parametrize("odd", [[1], {"a": 1, "b": 2}, {"unknown": 1}, {"all": "x"}])
def test_anything_else_is_shown_as_json(odd: Any) -> None:
    text = describe(odd, NAMES).text
    assert text.startswith(("[", "{"))

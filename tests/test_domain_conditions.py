"""The contact group condition language, pure: parsing, checking, where an error is, walking."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from waypost.domain.conditions import (
    MAX_CONDITIONS,
    MAX_DEPTH,
    MAX_FIELD_FILTERS,
    MAX_IN,
    MAX_NAME,
    MAX_TEXT,
    MAX_VALUES,
    ActivityCondition,
    All,
    AnyOf,
    Condition,
    ConditionError,
    ConsentCondition,
    ContactCondition,
    GroupCondition,
    Not,
    parse_condition,
    referenced_groups,
    uses_time_window,
    walk,
)

GROUP = uuid.UUID("0190f1c2-0000-7000-8000-000000000001")
OTHER = uuid.UUID("0190f1c2-0000-7000-8000-000000000002")


def error(data: Any) -> ConditionError:
    with pytest.raises(ConditionError) as caught:
        parse_condition(data)
    return caught.value


# -- activity conditions ----------------------------------------------------------------------


def test_an_activity_condition_defaults_to_at_least_once_ever() -> None:
    parsed = parse_condition({"activity": {"type": "custom_loan_calculator"}})
    assert parsed == ActivityCondition("custom_loan_calculator", "at_least", 1)
    assert parsed.window(dt.date(2026, 3, 1)) == (None, None)


@pytest.mark.parametrize("count", ["at_least", "at_most", "exactly"])
@pytest.mark.parametrize("n", [0, 1, 3, 1_000_000])
def test_every_count(count: str, n: int) -> None:
    parsed = parse_condition({"activity": {"type": "click", count: n}})
    assert parsed == ActivityCondition("click", count, n)  # type: ignore[arg-type]


def test_within_days_counts_today_and_the_days_before() -> None:
    parsed = parse_condition({"activity": {"type": "click", "at_least": 3, "within_days": 30}})
    assert isinstance(parsed, ActivityCondition)
    assert parsed.within_days == 30
    assert parsed.window(dt.date(2026, 3, 31)) == (dt.date(2026, 3, 2), None)
    one = parse_condition({"activity": {"type": "click", "within_days": 1}})
    assert isinstance(one, ActivityCondition)
    assert one.window(dt.date(2026, 3, 31)) == (dt.date(2026, 3, 31), None)


def test_between_is_inclusive_days() -> None:
    parsed = parse_condition(
        {"activity": {"type": "click", "between": {"from": "2026-01-01", "to": "2026-01-31"}}}
    )
    assert isinstance(parsed, ActivityCondition)
    assert (parsed.start, parsed.end) == (dt.date(2026, 1, 1), dt.date(2026, 1, 31))
    assert parsed.window(dt.date(2030, 1, 1)) == (dt.date(2026, 1, 1), dt.date(2026, 1, 31))
    same_day = parse_condition(
        {"activity": {"type": "click", "between": {"from": "2026-01-01", "to": "2026-01-01"}}}
    )
    assert isinstance(same_day, ActivityCondition)
    assert same_day.start == same_day.end == dt.date(2026, 1, 1)


def test_field_filters_keep_every_operator() -> None:
    parsed = parse_condition(
        {
            "activity": {
                "type": "custom_loan_calculator",
                "fields": {
                    "amount": {"gte": "50000", "lt": "100000"},
                    "product": {"eq": "mortgage"},
                    "note": {"contains": "urgent"},
                    "years": {"gt": 5, "lte": 30},
                },
            }
        }
    )
    assert isinstance(parsed, ActivityCondition)
    assert parsed.fields == (
        ("amount", "gte", "50000"),
        ("amount", "lt", "100000"),
        ("product", "eq", "mortgage"),
        ("note", "contains", "urgent"),
        ("years", "gt", 5),
        ("years", "lte", 30),
    )


@pytest.mark.parametrize(
    ("activity", "message"),
    [
        ("click", "takes an object with type"),
        ({}, "needs type"),
        ({"type": ""}, "needs type"),
        ({"type": 5}, "needs type"),
        ({"type": "click", "color": "red"}, "unknown key 'color'"),
        ({"type": "click", "at_least": -1}, "at_least takes a whole number from 0"),
        ({"type": "click", "at_least": 1.5}, "at_least takes a whole number"),
        ({"type": "click", "at_least": "3"}, "at_least takes a whole number"),
        ({"type": "click", "at_least": True}, "at_least takes a whole number"),
        ({"type": "click", "at_most": None}, "at_most takes a whole number"),
        ({"type": "click", "exactly": 1_000_001}, "exactly takes a whole number"),
        ({"type": "click", "at_least": 1, "at_most": 3}, "give one of at_least, at_most, exactly"),
        ({"type": "click", "exactly": 1, "at_most": 3}, "give one of"),
        ({"type": "click", "within_days": 0}, "within_days takes a number of days from 1"),
        ({"type": "click", "within_days": -3}, "within_days takes a number of days"),
        ({"type": "click", "within_days": 3661}, "within_days takes a number of days"),
        ({"type": "click", "within_days": "7"}, "within_days takes a number of days"),
        ({"type": "click", "within_days": True}, "within_days takes a number of days"),
        (
            {
                "type": "click",
                "within_days": 7,
                "between": {"from": "2026-01-01", "to": "2026-01-02"},
            },
            "within_days or between, not both",
        ),
        ({"type": "click", "between": "2026-01-01"}, "between takes"),
        ({"type": "click", "between": {"from": "2026-01-01"}}, "between takes"),
        (
            {"type": "click", "between": {"from": "2026-01-01", "to": "2026-01-02", "x": 1}},
            "between takes",
        ),
        ({"type": "click", "between": {"from": "yesterday", "to": "2026-01-02"}}, "dates like"),
        ({"type": "click", "between": {"from": "2026-02-30", "to": "2026-03-02"}}, "dates like"),
        ({"type": "click", "between": {"from": "2026-01-01", "to": None}}, "dates like"),
        ({"type": "click", "between": {"from": "2026-02-01", "to": "2026-01-31"}}, "ends before"),
        ({"type": "click", "fields": ["amount"]}, "fields takes"),
        ({"type": "click", "fields": {"amount": "5"}}, "fields.amount takes"),
        ({"type": "click", "fields": {"amount": {}}}, "fields.amount takes"),
        ({"type": "click", "fields": {"amount": {"between": 5}}}, "unknown operator 'between'"),
    ],
)
def test_bad_activity_conditions_say_what_and_where(activity: Any, message: str) -> None:
    caught = error({"all": [{"consent": "x"}, {"activity": activity}]})
    assert caught.path == "all[1].activity"
    assert str(caught).startswith("all[1].activity: ")
    assert message in str(caught)


# -- contact field conditions -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("contact", "expected"),
    [
        ({"field": "country", "equals": "USA"}, ContactCondition("country", "equals", "USA")),
        ({"field": "zip", "equals": 12345}, ContactCondition("zip", "equals", "12345")),
        ({"field": "zip", "in": [602, "12345"]}, ContactCondition("zip", "in", ["602", "12345"])),
        (
            {"field": "attributes.score", "not_equals": 1.5},
            ContactCondition("attributes.score", "not_equals", "1.5"),
        ),
        ({"field": "city", "not_equals": "Brno"}, ContactCondition("city", "not_equals", "Brno")),
        ({"field": "email", "contains": "@bank"}, ContactCondition("email", "contains", "@bank")),
        (
            {"field": "attributes.plan", "in": ["pro", "team"]},
            ContactCondition("attributes.plan", "in", ["pro", "team"]),
        ),
        ({"field": "email", "exists": True}, ContactCondition("email", "exists", True)),
        ({"field": "notes", "exists": False}, ContactCondition("notes", "exists", False)),
        (
            {"field": "birthday", "before": "1990-01-01"},
            ContactCondition("birthday", "before", dt.date(1990, 1, 1)),
        ),
        (
            {"field": "created_at", "after": "2026-01-01"},
            ContactCondition("created_at", "after", dt.date(2026, 1, 1)),
        ),
        (
            {"field": "updated_at", "before": "2026-01-01"},
            ContactCondition("updated_at", "before", dt.date(2026, 1, 1)),
        ),
    ],
)
def test_contact_conditions(contact: dict[str, Any], expected: ContactCondition) -> None:
    assert parse_condition({"contact": contact}) == expected


@pytest.mark.parametrize(
    "field",
    [
        "email",
        "first_name",
        "middle_name",
        "last_name",
        "birthday",
        "mobile_phone",
        "business_phone",
        "company_name",
        "job_title",
        "address1",
        "city",
        "zip",
        "country",
        "state",
        "notes",
        "created_at",
        "updated_at",
        "attributes.x",
    ],
)
def test_every_documented_contact_field_is_known(field: str) -> None:
    assert parse_condition({"contact": {"field": field, "exists": True}}) == ContactCondition(
        field, "exists", True
    )


@pytest.mark.parametrize(
    ("contact", "message"),
    [
        ("country", "takes field and one of"),
        ({"equals": "USA"}, "takes field and one of"),
        ({"field": "country"}, "takes field and one of"),
        ({"field": "country", "equals": "USA", "in": ["CZE"]}, "takes field and one of"),
        ({"field": "shoe_size", "equals": "42"}, "unknown contact field 'shoe_size'"),
        ({"field": "attributes.", "equals": "42"}, "unknown contact field"),
        ({"field": "merged_into", "exists": True}, "unknown contact field"),
        ({"field": 7, "equals": "42"}, "unknown contact field"),
        ({"field": "country", "matches": "U.*"}, "unknown operator 'matches'"),
        ({"field": "country", "in": []}, "in takes a non-empty list"),
        ({"field": "country", "in": "USA"}, "in takes a non-empty list"),
        ({"field": "email", "exists": "yes"}, "exists takes true or false"),
        ({"field": "email", "exists": 1}, "exists takes true or false"),
        ({"field": "city", "before": "2026-01-01"}, "before applies to dates"),
        ({"field": "birthday", "after": "last year"}, "after takes a date like"),
        ({"field": "birthday", "before": 1990}, "before takes a date like"),
        ({"field": "city", "equals": None}, "equals takes a string or a number"),
        ({"field": "city", "equals": ["Brno"]}, "equals takes a string or a number"),
        ({"field": "city", "contains": {"x": 1}}, "contains takes a string or a number"),
        ({"field": "city", "equals": True}, "equals takes a string or a number"),
        ({"field": "city", "in": ["Brno", None]}, "in takes a list of strings or numbers"),
        ({"field": "city", "in": [False]}, "in takes a list of strings or numbers"),
        ({"field": "city", "in": [["Brno"]]}, "in takes a list of strings or numbers"),
        ({"field": "birthday", "equals": "1985-05-01"}, "compare birthday with before / after"),
        ({"field": "birthday", "in": ["1985-05-01"]}, "in applies to text"),
        ({"field": "created_at", "contains": "2026"}, "contains applies to text"),
        ({"field": "updated_at", "not_equals": "2026"}, "not_equals applies to text"),
    ],
)
def test_bad_contact_conditions_say_what_and_where(contact: Any, message: str) -> None:
    caught = error({"any": [{"not": {"contact": contact}}]})
    assert caught.path == "any[0].not.contact"
    assert message in str(caught)


# -- consent and group conditions -------------------------------------------------------------


def test_consent_and_group_conditions() -> None:
    assert parse_condition({"consent": "TrackingConsent"}) == ConsentCondition("TrackingConsent")
    assert parse_condition({"group": str(GROUP)}) == GroupCondition(GROUP)


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        ({"consent": ""}, "consent", "takes a consent code name"),
        ({"consent": 5}, "consent", "takes a consent code name"),
        ({"consent": None}, "consent", "takes a consent code name"),
        ({"group": "loan shoppers"}, "group", "takes a group id"),
        ({"group": None}, "group", "takes a group id"),
        ({"group": 5}, "group", "takes a group id"),
    ],
)
def test_bad_consent_and_group_conditions(data: Any, path: str, message: str) -> None:
    caught = error(data)
    assert caught.path == path
    assert message in str(caught)


# -- all, any, not ----------------------------------------------------------------------------


def test_all_any_not_nest() -> None:
    parsed = parse_condition(
        {
            "all": [
                {"activity": {"type": "custom_loan_calculator", "at_least": 3, "within_days": 30}},
                {"not": {"activity": {"type": "datainput", "within_days": 7}}},
                {
                    "any": [
                        {"contact": {"field": "country", "equals": "USA"}},
                        {"not": {"not": {"consent": "TrackingConsent"}}},
                        {"group": str(GROUP)},
                    ]
                },
            ]
        }
    )
    loans = ActivityCondition("custom_loan_calculator", "at_least", 3, within_days=30)
    datainput = ActivityCondition("datainput", "at_least", 1, within_days=7)
    country = ContactCondition("country", "equals", "USA")
    consent = ConsentCondition("TrackingConsent")
    assert parsed == All(
        (
            loans,
            Not(datainput),
            AnyOf((country, Not(Not(consent)), GroupCondition(GROUP))),
        )
    )
    assert list(walk(parsed))[:3] == [parsed, loans, Not(datainput)]
    assert len(list(walk(parsed))) == 10
    assert referenced_groups(parsed) == {GROUP}
    assert uses_time_window(parsed)


def test_groups_referred_to_and_windows_anywhere_in_the_tree() -> None:
    deep = parse_condition(
        {"not": {"any": [{"group": str(GROUP)}, {"all": [{"group": str(OTHER)}]}]}}
    )
    assert referenced_groups(deep) == {GROUP, OTHER}
    assert not uses_time_window(deep)
    between = parse_condition(
        {"activity": {"type": "click", "between": {"from": "2026-01-01", "to": "2026-01-02"}}}
    )
    assert not uses_time_window(between)
    assert uses_time_window(
        parse_condition({"not": {"any": [{"activity": {"type": "click", "within_days": 2}}]}})
    )
    assert referenced_groups(between) == set()


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        ("all", "", "an object with one key"),
        ([], "", "an object with one key"),
        ({}, "", "an object with one key"),
        ({"all": [], "any": []}, "", "an object with one key"),
        ({"all": []}, "all", "non-empty list"),
        ({"any": {"consent": "x"}}, "any", "non-empty list"),
        ({"not": []}, "not", "an object with one key"),
        ({"not": None}, "not", "an object with one key"),
        ({"or": [{"consent": "x"}]}, "or", "unknown condition 'or'"),
        ({"all": [{"consent": "x"}, {"nope": 1}]}, "all[1].nope", "unknown condition 'nope'"),
        ({"any": [{"all": [{"not": {"x": 1}}]}]}, "any[0].all[0].not.x", "unknown condition"),
    ],
)
def test_bad_structure_says_where(data: Any, path: str, message: str) -> None:
    caught = error(data)
    assert caught.path == path
    assert message in str(caught)
    if not path:
        assert str(caught) == str(caught.args[0])


def test_nesting_is_limited() -> None:
    leaf: dict[str, Any] = {"consent": "x"}
    allowed = leaf
    for _ in range(MAX_DEPTH):
        allowed = {"not": allowed}
    assert isinstance(parse_condition(allowed), Not)
    caught = error({"not": allowed})
    assert "nested deeper than" in str(caught)
    assert caught.path == ".".join(["not"] * (MAX_DEPTH + 1))


def test_a_condition_holds_at_most_so_many_conditions() -> None:
    leaf: dict[str, Any] = {"consent": "x"}
    widest = {"any": [leaf] * (MAX_CONDITIONS - 1)}
    assert len(list(walk(parse_condition(widest)))) == MAX_CONDITIONS
    caught = error({"any": [leaf] * MAX_CONDITIONS})
    assert f"at most {MAX_CONDITIONS} conditions" in str(caught)
    assert caught.path == ""
    nested = {"all": [{"any": [leaf] * 20} for _ in range(10)]}
    assert "at most" in str(error(nested))


def bounded(data: Any) -> Condition:
    return parse_condition(data, limits=True)


def past_limit(data: Any) -> ConditionError:
    """The error of ``data`` sent to be saved; read as saved, it parses."""
    assert parse_condition(data)
    with pytest.raises(ConditionError) as caught:
        bounded(data)
    return caught.value


def test_a_new_conditions_texts_lists_and_names_are_bounded() -> None:
    # Each bound holds at its limit and refuses one past it (a longer text would become a LIKE
    # pattern the database refuses, failing every evaluation of the group or audience).
    longest = "a" * MAX_TEXT
    for op in ("equals", "not_equals", "contains"):
        assert bounded({"contact": {"field": "city", op: longest}})
        caught = past_limit({"any": [{"contact": {"field": "city", op: longest + "a"}}]})
        assert f"at most {MAX_TEXT} characters" in str(caught)
        assert caught.path == "any[0].contact"
    assert "at most" in str(past_limit({"contact": {"field": "city", "in": [longest + "a"]}}))
    assert bounded({"contact": {"field": "city", "in": ["x"] * MAX_IN}})
    caught = past_limit({"contact": {"field": "city", "in": ["x"] * (MAX_IN + 1)}})
    assert f"in takes at most {MAX_IN} values" in str(caught)
    lists = MAX_VALUES // MAX_IN + 1
    many = {"any": [{"contact": {"field": "city", "in": ["x"] * MAX_IN}}] * lists}
    assert f"at most {MAX_VALUES} values" in str(past_limit(many))
    attribute = "attributes." + "n" * MAX_NAME
    assert bounded({"contact": {"field": attribute, "exists": True}})
    caught = past_limit({"contact": {"field": attribute + "n", "exists": True}})
    assert "unknown contact field 'attributes.nnn" in str(caught)
    assert "characters)" in str(caught)  # the name is cut, not echoed whole
    caught = past_limit({"consent": "c" * (MAX_NAME + 1)})
    assert f"a consent code name is at most {MAX_NAME} characters, not 101" in str(caught)
    caught = past_limit({"activity": {"type": "t" * (MAX_NAME + 1)}})
    assert f"type: a code name is at most {MAX_NAME} characters" in str(caught)
    filters = {f"f{i}": {"eq": "1"} for i in range(MAX_FIELD_FILTERS)}
    assert bounded({"activity": {"type": "t", "fields": filters}})
    filters["one_more"] = {"eq": "1"}
    caught = past_limit({"activity": {"type": "t", "fields": filters}})
    assert f"at most {MAX_FIELD_FILTERS} field filters" in str(caught)
    long_filter = {"activity": {"type": "t", "fields": {"note": {"contains": longest + "a"}}}}
    caught = past_limit(long_filter)
    assert f"fields.note.contains takes at most {MAX_TEXT} characters" in str(caught)

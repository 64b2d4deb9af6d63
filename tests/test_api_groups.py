"""/api/groups and /api/contacts/{id}/groups on both databases: create, dry run, list, read,
change, delete, members, check (now and at a past moment), explain, errors and keys."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from starlette.testclient import TestClient

from waypost.hub import Hub
from waypost.services.activity_types import ActivityType
from waypost.services.keys import CreatedKey
from waypost.store.schema import contact_groups

if TYPE_CHECKING:
    from tests.conftest import ErrorCheck, Tracker
    from tests.group_support import Groups, ago, make_groups, parse_time
else:
    from group_support import Groups, ago, make_groups, parse_time

LOANS = "custom_loan_calculator"
USED_LOANS = {"activity": {"type": LOANS}}


@pytest.fixture
def groups(client: TestClient, admin_headers: dict[str, str], tracker: Tracker) -> Groups:
    return make_groups(client, admin_headers, tracker)


@pytest.fixture
def loans(make_type: Callable[..., ActivityType]) -> ActivityType:
    return make_type(
        name="Loan calculator usage",
        code_name=LOANS,
        fields=[
            {"name": "amount", "type": "decimal"},
            {"name": "product", "type": "text"},
        ],
    )


# -- create -----------------------------------------------------------------------------------


def test_create_computes_members_at_once(groups: Groups, loans: ActivityType) -> None:
    ann, bob, cid = groups.new_contact(), groups.new_contact(), groups.new_contact()
    groups.log(ann, {"type": LOANS}, {"type": LOANS})
    groups.log(bob, {"type": LOANS})
    groups.log(cid, {"type": "click", "value": "x"})
    before = dt.datetime.now(dt.UTC)
    condition = {"activity": {"type": LOANS, "at_least": 2}}
    answer = groups.post(condition, "Loan shoppers", description="Used it twice")
    assert answer.status_code == 201, answer.text
    group = answer.json()
    assert set(group) == {
        "id",
        "name",
        "description",
        "condition",
        "member_count",
        "computed_at",
        "created_at",
        "updated_at",
    }
    assert uuid.UUID(group["id"])
    assert group["name"] == "Loan shoppers"
    assert group["description"] == "Used it twice"
    assert group["condition"] == condition
    assert group["member_count"] == 1
    assert parse_time(group["computed_at"]) >= before
    assert group["created_at"] == group["updated_at"]
    assert groups.members(group["id"]) == {ann}
    assert groups.get(group["id"]) == group


def test_create_with_defaults_and_no_one_matching(groups: Groups, loans: ActivityType) -> None:
    group = groups.create(USED_LOANS, "Nobody yet")
    assert group["description"] == ""
    assert group["member_count"] == 0
    assert groups.members(group["id"]) == set()


def test_a_duplicate_name_is_a_conflict(
    groups: Groups, loans: ActivityType, expect_error: ErrorCheck
) -> None:
    groups.create(USED_LOANS, "Loan shoppers")
    expect_error(groups.post(USED_LOANS, "Loan shoppers"), 409, "conflict", "name")
    other = groups.create(USED_LOANS, "Other")
    expect_error(groups.patch(other["id"], name="Loan shoppers"), 409, "conflict", "name")
    assert groups.get(other["id"])["name"] == "Other"


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"condition": USED_LOANS}, "missing_field", "name"),
        ({"name": "G"}, "missing_field", "condition"),
        ({"name": "", "condition": USED_LOANS}, "invalid_field", "name"),
        ({"name": "x" * 201, "condition": USED_LOANS}, "invalid_field", "name"),
        ({"name": "G", "condition": USED_LOANS, "colour": "red"}, "unknown_field", "colour"),
        ({"name": "G", "condition": [USED_LOANS]}, "invalid_field", "condition"),
        ({"name": "G", "condition": USED_LOANS, "description": 5}, "invalid_field", "description"),
    ],
)
def test_bad_bodies(
    groups: Groups,
    loans: ActivityType,
    expect_error: ErrorCheck,
    body: dict[str, Any],
    code: str,
    field: str | None,
) -> None:
    answer = groups.client.post("/api/groups", json=body, headers=groups.headers)
    expect_error(answer, 400, code, field)
    assert groups.walk("/api/groups") == []


def test_malformed_json_and_content_type(
    groups: Groups, loans: ActivityType, expect_error: ErrorCheck
) -> None:
    answer = groups.client.post(
        "/api/groups",
        content=b'{"name": "G",',
        headers={**groups.headers, "Content-Type": "application/json"},
    )
    expect_error(answer, 400, "invalid_json")


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ({"activity": {"type": "custom_nope"}}, "custom_nope"),
        ({"all": [USED_LOANS, {"activity": {"type": "custom_nope"}}]}, "custom_nope"),
        ({"activity": {"type": LOANS, "at_least": -1}}, "activity: at_least"),
        ({"all": [USED_LOANS, {"activity": {"type": LOANS, "at_most": "3"}}]}, "all[1].activity"),
        ({"activity": {"type": LOANS, "between": {"from": "2026-01-32", "to": "x"}}}, "dates"),
        ({"activity": {"type": LOANS, "fields": {"colour": {"eq": "red"}}}}, "colour"),
        ({"activity": {"type": LOANS, "fields": {"amount": {"gte": "lots"}}}}, "lots"),
        ({"activity": {"type": LOANS, "fields": {"amount": {"gte": {"a": 1}}}}}, "fields.amount"),
        ({"activity": {"type": LOANS, "fields": {"amount": {"contains": "5"}}}}, "amount"),
        ({"activity": {"type": LOANS, "fields": {"product": {"gt": "b"}}}}, "product"),
        ({"activity": {"type": LOANS, "fields": {"amount": {"like": "5"}}}}, "like"),
        ({"activity": {"type": LOANS, "fields": {"amount": {"gte": "1.5E2"}}}}, "1.5E2"),
        (
            {
                "all": [
                    USED_LOANS,
                    {
                        "activity": {
                            "type": LOANS,
                            "fields": {"amount": {"gt": "1"}, "product": {"gte": "b"}},
                        }
                    },
                ]
            },
            "all[1].activity.fields.product: product is a text field; ranges apply",
        ),
        (
            {
                "any": [
                    USED_LOANS,
                    {"not": {"activity": {"type": LOANS, "fields": {"amount": {"contains": "5"}}}}},
                ]
            },
            "any[1].not.activity.fields.amount: contains applies to text",
        ),
        (
            {"activity": {"type": LOANS, "fields": {"amount": {"eq": "x"}}}},
            "activity.fields.amount: ",
        ),
        ({"contact": {"field": "shoe_size", "equals": "42"}}, "shoe_size"),
        ({"contact": {"field": "birthday", "before": "soon"}}, "contact: before"),
        ({"consent": "NoSuchConsent"}, "NoSuchConsent"),
        ({"all": [USED_LOANS, {"not": {"activity": {"type": "nope"}}}]}, "all[1].not.activity: no"),
        ({"any": [USED_LOANS, {"consent": "Nope"}]}, "any[1].consent: no consent 'Nope'"),
        # A long name is cut in the message, not echoed whole.
        ({"consent": "x" * 1000}, "consent: a consent code name is at most 100 characters"),
        ({"group": str(uuid.UUID(int=7))}, str(uuid.UUID(int=7))),
        ({"group": "loan shoppers"}, "group"),
        ({"any": []}, "any"),
        ({"any": [USED_LOANS] * 600}, "at most 200 conditions"),
        ({"or": [USED_LOANS]}, "or"),
    ],
)
def test_bad_conditions_are_refused_naming_the_place(
    groups: Groups,
    loans: ActivityType,
    expect_error: ErrorCheck,
    condition: Any,
    message: str,
) -> None:
    error = expect_error(groups.post(condition), 400, "invalid_field", "condition")
    assert message in error["message"]
    assert len(error["message"]) < 500
    assert "field 'field'" not in error["message"]
    error = expect_error(groups.validate(condition), 400, "invalid_field", "condition")
    assert message in error["message"]
    assert groups.walk("/api/groups") == []


def test_a_condition_too_complex_for_the_database_is_a_400(
    groups: Groups, expect_error: ErrorCheck, hub: Hub
) -> None:
    groups.create_consent("Marketing")
    city = {"contact": {"field": "city", "equals": "Brno"}}
    first = {"all": [city, {"not": city}, {"all": [city, {"consent": "Marketing"}]}]}
    a = groups.create(first)
    deep = {
        "all": [
            {"any": [{"group": a["id"]}, {"not": city}]},
            {"not": {"all": [first, {"not": city}]}},
        ]
    }
    answer = groups.post(deep)
    if hub.store.dialect == "postgresql":
        assert answer.status_code == 201, answer.text  # within PostgreSQL's limits
        return
    # Beyond SQLite's parser stack: refused with what to do, never a 503.
    error = expect_error(answer, 400, "invalid_field", "condition")
    assert "too complex" in error["message"]
    error = expect_error(groups.validate(deep), 400, "invalid_field", "condition")
    assert "too complex" in error["message"]
    assert [g["id"] for g in groups.walk("/api/groups")] == [a["id"]]


def test_a_text_longer_than_the_database_compares_is_a_400(
    groups: Groups, expect_error: ErrorCheck
) -> None:
    # 50,010 characters: past SQLite's longest LIKE pattern, so evaluating it was a 503.
    condition = {"contact": {"field": "city", "contains": "a" * 50_010}}
    for answer in (groups.post(condition), groups.validate(condition)):
        error = expect_error(answer, 400, "invalid_field", "condition")
        assert "at most 1000 characters" in error["message"]


# -- cycles -----------------------------------------------------------------------------------


def test_cycles_are_refused_directly_and_through_others(
    groups: Groups, loans: ActivityType, expect_error: ErrorCheck
) -> None:
    a = groups.create(USED_LOANS, "A")
    b = groups.create({"group": a["id"]}, "B")
    c = groups.create({"not": {"any": [{"group": b["id"]}]}}, "C")
    # A group naming itself.
    error = expect_error(groups.patch(a["id"], condition={"group": a["id"]}), 400, "invalid_field")
    assert "cycle" in error["message"]
    # A -> B -> A, and A -> C -> B -> A.
    expect_error(groups.patch(a["id"], condition={"group": b["id"]}), 400, "invalid_field")
    deep = {"all": [USED_LOANS, {"not": {"group": c["id"]}}]}
    expect_error(groups.patch(a["id"], condition=deep), 400, "invalid_field", "condition")
    assert groups.get(a["id"])["condition"] == USED_LOANS
    # Nothing refers back to C: it may name A and B together.
    changed = groups.patch(c["id"], condition={"any": [{"group": a["id"]}, {"group": b["id"]}]})
    assert changed.status_code == 200, changed.text


# -- dry run ----------------------------------------------------------------------------------


def test_validate_counts_and_saves_nothing(groups: Groups, loans: ActivityType) -> None:
    ann, bob = groups.new_contact(), groups.new_contact()
    groups.log(ann, {"type": LOANS})
    groups.log(bob, {"type": "click", "value": "x"})
    answer = groups.validate(USED_LOANS)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"valid": True, "count": 1}
    assert groups.count({"not": USED_LOANS}) == 1
    assert groups.count({"any": [USED_LOANS, {"activity": {"type": "click"}}]}) == 2
    assert groups.walk("/api/groups") == []
    assert groups.contact_groups(ann) == []
    # A condition naming a group counts from the group's kept members.
    group = groups.create(USED_LOANS)
    assert groups.count({"group": group["id"]}) == 1
    assert [g["id"] for g in groups.walk("/api/groups")] == [group["id"]]


def test_decimal_filters_take_json_numbers_as_activity_fields_do(
    groups: Groups, loans: ActivityType
) -> None:
    ann, bob = groups.new_contact(), groups.new_contact()
    groups.log(ann, {"type": LOANS, "fields": {"amount": "60000.50"}})
    groups.log(bob, {"type": LOANS, "fields": {"amount": 100}})

    def used_loans(**ops: object) -> dict[str, Any]:
        return {"activity": {"type": LOANS, "fields": {"amount": ops}}}

    assert groups.count(used_loans(gte=50000.25)) == 1
    assert groups.count(used_loans(lt=1e21)) == 2
    assert groups.count(used_loans(eq="60000.5")) == 1
    assert groups.count(used_loans(eq=100)) == 1


# -- list, read, change, delete ---------------------------------------------------------------


def test_list_pages_with_limit_and_cursor(
    groups: Groups, loans: ActivityType, expect_error: ErrorCheck
) -> None:
    created = [groups.create(USED_LOANS, f"G{i}")["id"] for i in range(5)]
    first = groups.client.get("/api/groups", params={"limit": 2}, headers=groups.headers).json()
    assert [g["id"] for g in first["data"]] == created[:2]
    assert first["next"]
    assert [g["id"] for g in groups.walk("/api/groups", limit=2)] == created
    assert [g["id"] for g in groups.walk("/api/groups")] == created
    for params in ({"limit": 0}, {"limit": 1001}, {"limit": "x"}, {"cursor": "!!"}):
        answer = groups.client.get("/api/groups", params=params, headers=groups.headers)
        assert answer.status_code == 400, (params, answer.text)


def test_update_name_and_description_keep_members(groups: Groups, loans: ActivityType) -> None:
    ann = groups.new_contact()
    groups.log(ann, {"type": LOANS})
    group = groups.create(USED_LOANS, "Old")
    since = groups.check(group["id"], ann)["since"]
    time.sleep(0.002)
    answer = groups.patch(group["id"], name="New", description="Renamed")
    assert answer.status_code == 200, answer.text
    changed = answer.json()
    assert (changed["name"], changed["description"]) == ("New", "Renamed")
    assert changed["condition"] == USED_LOANS
    assert changed["updated_at"] > group["updated_at"]
    assert changed["computed_at"] == group["computed_at"]
    assert groups.members(group["id"]) == {ann}
    assert groups.check(group["id"], ann)["since"] == since


def test_a_new_condition_recomputes_the_group_and_those_using_it(
    groups: Groups, loans: ActivityType, expect_error: ErrorCheck
) -> None:
    ann, bob = groups.new_contact(), groups.new_contact()
    groups.log(ann, {"type": LOANS})
    groups.log(bob, {"type": "click", "value": "x"})
    used = groups.create(USED_LOANS, "Used")
    uses = groups.create({"group": used["id"]}, "Uses")
    never = groups.create({"not": {"group": uses["id"]}}, "Never")
    assert groups.members(uses["id"]) == {ann}
    assert groups.members(never["id"]) == {bob}
    before = dt.datetime.now(dt.UTC).isoformat()
    time.sleep(0.002)
    answer = groups.patch(used["id"], condition={"activity": {"type": "click"}})
    assert answer.status_code == 200, answer.text
    assert groups.check(used["id"], ann, at=before)["member"] is True
    assert groups.check(used["id"], ann)["member"] is False
    assert answer.json()["member_count"] == 1
    assert parse_time(answer.json()["computed_at"]) > parse_time(used["computed_at"])
    assert groups.members(used["id"]) == {bob}
    assert groups.members(uses["id"]) == {bob}
    assert groups.members(never["id"]) == {ann}
    assert groups.get(uses["id"])["member_count"] == 1
    # A refused condition changes nothing.
    bad = groups.patch(used["id"], condition={"activity": {"type": "custom_nope"}}, name="X")
    expect_error(bad, 400, "invalid_field", "condition")
    assert groups.get(used["id"])["name"] == "Used"
    assert groups.members(used["id"]) == {bob}


def test_patch_errors(groups: Groups, loans: ActivityType, expect_error: ErrorCheck) -> None:
    group = groups.create(USED_LOANS)
    expect_error(groups.patch(str(uuid.UUID(int=5)), name="X"), 404, "not_found")
    expect_error(groups.patch("nope", name="X"), 404, "not_found")
    expect_error(groups.patch(group["id"], colour="red"), 400, "unknown_field", "colour")
    expect_error(groups.patch(group["id"], name=""), 400, "invalid_field", "name")
    expect_error(groups.patch(group["id"], condition="x"), 400, "invalid_field")


def test_delete(groups: Groups, loans: ActivityType, expect_error: ErrorCheck) -> None:
    ann = groups.new_contact()
    groups.log(ann, {"type": LOANS})
    used = groups.create(USED_LOANS, "Used")
    uses = groups.create(
        {"all": [{"not": {"contact": {"field": "email", "exists": True}}}, {"group": used["id"]}]},
        "Uses",
    )
    error = expect_error(
        groups.client.delete(f"/api/groups/{used['id']}", headers=groups.headers), 409, "conflict"
    )
    assert "Uses" in error["message"]
    assert groups.members(used["id"]) == {ann}
    for group in (uses, used):
        answer = groups.client.delete(f"/api/groups/{group['id']}", headers=groups.headers)
        assert answer.status_code == 204, answer.text
        assert answer.content == b""
        expect_error(
            groups.client.get(f"/api/groups/{group['id']}", headers=groups.headers),
            404,
            "not_found",
        )
    assert groups.walk("/api/groups") == []
    assert groups.contact_groups(ann) == []
    again = groups.client.delete(f"/api/groups/{used['id']}", headers=groups.headers)
    expect_error(again, 404, "not_found")
    # The name is free again.
    groups.create(USED_LOANS, "Used")


# -- members and a contact's groups -----------------------------------------------------------


def test_members_page_by_page(
    groups: Groups, loans: ActivityType, expect_error: ErrorCheck
) -> None:
    contacts = [groups.new_contact() for _ in range(5)]
    for contact in contacts:
        groups.log(contact, {"type": LOANS})
    group = groups.create(USED_LOANS)
    page = groups.client.get(
        f"/api/groups/{group['id']}/members", params={"limit": 2}, headers=groups.headers
    ).json()
    assert len(page["data"]) == 2
    assert page["next"]
    assert set(page["data"][0]) == {"contact", "since"}
    walked = groups.walk(f"/api/groups/{group['id']}/members", limit=2)
    assert [m["contact"] for m in walked] == sorted(contacts, key=uuid.UUID)
    since = {parse_time(m["since"]) for m in walked}
    assert len(since) == 1  # entered together, at the creation
    assert groups.walk(f"/api/groups/{group['id']}/members", limit=1000) == walked
    expect_error(
        groups.client.get(f"/api/groups/{uuid.UUID(int=3)}/members", headers=groups.headers),
        404,
        "not_found",
    )
    bad = groups.client.get(
        f"/api/groups/{group['id']}/members", params={"limit": 0}, headers=groups.headers
    )
    expect_error(bad, 400, "invalid_field")


def test_a_contacts_groups(groups: Groups, loans: ActivityType, expect_error: ErrorCheck) -> None:
    ann, bob = groups.new_contact(), groups.new_contact()
    groups.log(ann, {"type": LOANS})
    made = [
        groups.create(USED_LOANS, "Used"),
        groups.create({"activity": {"type": "click"}}, "Clicked"),
        groups.create({"not": {"activity": {"type": "click"}}}, "Never clicked"),
        groups.create({"activity": {"type": LOANS, "at_least": 2}}, "Twice"),
    ]
    listed = groups.contact_groups(ann)
    assert [g["id"] for g in listed] == [made[0]["id"], made[2]["id"]]
    assert [g["name"] for g in listed] == ["Used", "Never clicked"]
    assert set(listed[0]) == {"id", "name", "since"}
    assert listed[0]["since"] == groups.check(made[0]["id"], ann)["since"]
    assert [g["id"] for g in groups.walk(f"/api/contacts/{ann}/groups", limit=1)] == [
        made[0]["id"],
        made[2]["id"],
    ]
    assert [g["name"] for g in groups.contact_groups(bob)] == ["Never clicked"]
    expect_error(
        groups.client.get(f"/api/contacts/{uuid.UUID(int=9)}/groups", headers=groups.headers),
        404,
        "contact_not_found",
    )


# -- check ------------------------------------------------------------------------------------


def test_check_now_and_at_past_moments(
    groups: Groups, loans: ActivityType, expect_error: ErrorCheck
) -> None:
    ann, bob = groups.new_contact(), groups.new_contact()
    group = groups.create({"activity": {"type": LOANS, "at_most": 1}})
    now = groups.check(group["id"], ann)
    assert now == {
        "group": group["id"],
        "contact": ann,
        "member": True,
        "since": now["since"],
        "at": None,
    }
    # Entered when the group was computed, at its creation.
    entered = parse_time(now["since"])
    assert parse_time(group["created_at"]) <= entered <= parse_time(group["computed_at"])
    groups.log(ann, {"type": LOANS}, {"type": LOANS})
    groups.wait_member(group["id"], ann, member=False)
    assert groups.check(group["id"], ann)["since"] is None
    assert groups.check(group["id"], bob)["member"] is True
    left = dt.datetime.now(dt.UTC)

    before = (entered - dt.timedelta(seconds=1)).isoformat()
    assert groups.check(group["id"], ann, at=before) == {
        "group": group["id"],
        "contact": ann,
        "member": False,
        "since": None,
        "at": parse_time(before).isoformat().replace("+00:00", "Z"),
    }
    while_in = groups.check(group["id"], ann, at=entered.isoformat())
    assert while_in["member"] is True
    assert parse_time(while_in["since"]) == entered
    assert groups.check(group["id"], ann, at=left.isoformat())["member"] is False
    assert groups.check(group["id"], ann, at="2100-01-01T00:00:00Z")["member"] is False
    assert groups.check(group["id"], bob, at="2100-01-01T00:00:00+02:00")["member"] is True

    path = f"/api/groups/{group['id']}/check/{ann}"
    naive = groups.client.get(path, params={"at": "2026-01-01T00:00:00"}, headers=groups.headers)
    expect_error(naive, 400, "invalid_field", "at")
    garbage = groups.client.get(path, params={"at": "yesterday"}, headers=groups.headers)
    expect_error(garbage, 400, "invalid_field", "at")
    unknown = groups.client.get(path, params={"when": "now"}, headers=groups.headers)
    expect_error(unknown, 400, "unknown_field", "when")
    for where, code in (
        (f"/api/groups/{uuid.UUID(int=1)}/check/{ann}", "not_found"),
        (f"/api/groups/nope/check/{ann}", "not_found"),
        (f"/api/groups/{group['id']}/check/{uuid.UUID(int=1)}", "contact_not_found"),
        (f"/api/groups/{group['id']}/check/nope", "not_found"),
    ):
        expect_error(groups.client.get(where, headers=groups.headers), 404, code)


# -- explain ----------------------------------------------------------------------------------


def test_explain_names_what_held_and_what_counted(
    groups: Groups, loans: ActivityType, expect_error: ErrorCheck
) -> None:
    ann = groups.new_contact()
    big = groups.log(
        ann,
        {"type": LOANS, "fields": {"amount": "90000"}, "occurredAt": ago(3)},
        {"type": LOANS, "fields": {"amount": "60000"}, "occurredAt": ago(1)},
    )
    small = groups.log(ann, {"type": LOANS, "fields": {"amount": "100"}})
    old = groups.log(ann, {"type": LOANS, "fields": {"amount": "99999"}, "occurredAt": ago(40)})
    groups.log(ann, {"type": "click", "value": "x"})
    groups.create_consent("Marketing")
    big_loans = {
        "type": LOANS,
        "at_least": 2,
        "within_days": 30,
        "fields": {"amount": {"gte": "50000"}},
    }
    condition = {
        "all": [
            {"activity": big_loans},
            {"not": {"activity": {"type": "datainput", "within_days": 7}}},
            {"any": [{"contact": {"field": "country", "equals": "USA"}}, {"consent": "Marketing"}]},
        ]
    }
    group = groups.create(condition)
    explained = groups.explain(group["id"], ann)
    assert explained["group"] == group["id"]
    assert explained["contact"] == ann
    assert explained["member"] is False
    root = explained["explanation"]
    assert root["condition"] == condition
    assert root["held"] is False
    loans_node, no_input, either = root["children"]
    assert loans_node["condition"] == {"activity": big_loans}
    assert loans_node["held"] is True
    assert loans_node["count"] == 2
    assert loans_node["activities"] == [big[1], big[0]]  # newest first
    assert set(loans_node["activities"]).isdisjoint(small + old)
    assert no_input["held"] is True
    assert no_input["children"][0]["held"] is False
    assert no_input["children"][0]["count"] == 0
    assert no_input["children"][0]["activities"] == []
    assert either["held"] is False
    assert [c["held"] for c in either["children"]] == [False, False]
    assert "count" not in either["children"][0] or either["children"][0]["count"] is None

    groups.agree(ann, "Marketing")
    groups.wait_member(group["id"], ann)
    explained = groups.explain(group["id"], ann)
    assert explained["member"] is True
    root = explained["explanation"]
    assert root["held"] is True
    assert [c["held"] for c in root["children"]] == [True, True, True]
    assert [c["held"] for c in root["children"][2]["children"]] == [False, True]
    # A data input is one of the activities the not excludes.
    groups.data_input(ann, Country="USA")
    groups.wait_member(group["id"], ann, member=False)
    root = groups.explain(group["id"], ann)["explanation"]
    assert [c["held"] for c in root["children"]] == [True, False, True]
    assert root["children"][1]["children"][0]["count"] == 1
    assert [c["held"] for c in root["children"][2]["children"]] == [True, True]

    for where, code in (
        (f"/api/groups/{uuid.UUID(int=1)}/explain/{ann}", "not_found"),
        (f"/api/groups/{group['id']}/explain/{uuid.UUID(int=1)}", "contact_not_found"),
    ):
        expect_error(groups.client.get(where, headers=groups.headers), 404, code)


def test_explain_counts_every_activity_it_lists_at_most_100(
    groups: Groups, loans: ActivityType
) -> None:
    ann = groups.new_contact()
    groups.log(ann, *[{"type": LOANS} for _ in range(120)])
    group = groups.create({"activity": {"type": LOANS, "at_least": 110}})
    node = groups.explain(group["id"], ann)["explanation"]
    assert node["held"] is True
    assert node["count"] == 120
    assert len(node["activities"]) == 100


# -- keys -------------------------------------------------------------------------------------

ROUTES = [
    ("POST", "/api/groups"),
    ("POST", "/api/groups/validate"),
    ("GET", "/api/groups"),
    ("GET", "/api/groups/{group}"),
    ("PATCH", "/api/groups/{group}"),
    ("DELETE", "/api/groups/{group}"),
    ("GET", "/api/groups/{group}/members"),
    ("GET", "/api/groups/{group}/history"),
    ("GET", "/api/groups/{group}/check/{contact}"),
    ("GET", "/api/groups/{group}/explain/{contact}"),
    ("GET", "/api/contacts/{contact}/groups"),
]


def test_every_route_needs_an_admin_key(
    client: TestClient,
    groups: Groups,
    loans: ActivityType,
    make_key: Callable[..., CreatedKey],
    expect_error: ErrorCheck,
) -> None:
    contact = groups.new_contact()
    group = groups.create(USED_LOANS)
    tracking = groups.tracking_headers
    assert tracking is not None
    disabled = make_key("admin")
    answer = client.post(f"/api/keys/{disabled.id}/disable", headers=groups.headers)
    assert answer.status_code == 200, answer.text
    body = {"name": "X", "condition": USED_LOANS}
    for method, template in ROUTES:
        path = template.format(group=group["id"], contact=contact)
        for headers, status, code in (
            ({}, 401, "unauthorized"),
            ({"Authorization": "Bearer wpa_nope"}, 401, "unauthorized"),
            (tracking, 403, "forbidden"),
            ({"Authorization": f"Bearer {disabled.key}"}, 403, "forbidden"),
        ):
            answer = client.request(
                method, path, json=body if method != "GET" else None, headers=headers
            )
            expect_error(answer, status, code)
    assert groups.get(group["id"])["name"] != "X"
    assert len(groups.walk("/api/groups")) == 1


def test_a_description_is_at_most_2000_characters(groups: Groups, expect_error: ErrorCheck) -> None:
    condition = {"contact": {"field": "city", "equals": "Brno"}}
    created = groups.create(condition, description="d" * 2000)
    error = expect_error(groups.post(condition, description="d" * 2001), 400, "invalid_field")
    assert error["field"] == "description"
    answer = groups.client.patch(
        f"/api/groups/{created['id']}", json={"description": "d" * 2001}, headers=groups.headers
    )
    expect_error(answer, 400, "invalid_field", "description")


def test_a_condition_saved_before_the_limits_can_still_be_sent_back(
    groups: Groups, expect_error: ErrorCheck, hub: Hub
) -> None:
    # The admin form sends the condition with every change: one saved before a limit held
    # keeps working and stays editable; only a changed condition is held to the limits.
    created = groups.create({"contact": {"field": "city", "contains": "Brno"}})
    older = {"contact": {"field": "city", "contains": "b" * 1500}}
    with hub.store.write() as conn:
        conn.execute(
            contact_groups.update()
            .where(contact_groups.c.id == uuid.UUID(created["id"]))
            .values(condition=older)
        )
    path = f"/api/groups/{created['id']}"
    renamed = groups.client.patch(
        path, json={"name": "Renamed", "condition": older}, headers=groups.headers
    )
    assert renamed.status_code == 200, renamed.text
    changed = {"contact": {"field": "city", "contains": "c" * 1500}}
    answer = groups.client.patch(path, json={"condition": changed}, headers=groups.headers)
    expect_error(answer, 400, "invalid_field", "condition")

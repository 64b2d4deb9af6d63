"""/api/playbooks and /api/contacts/{id}/playbook-runs on both databases: create, list, read,
change, delete, the runs listings, every bad input a 4xx in the error shape, and who may."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from starlette.testclient import TestClient

from waypost.hub import Hub
from waypost.services.activity_types import ActivityType
from waypost.store.schema import playbooks

if TYPE_CHECKING:
    from tests.admin_support import UI
    from tests.conftest import ErrorCheck, Tracker
    from tests.group_support import Groups, make_groups
    from tests.playbook_support import LOANS, Playbooks, insert_endpoint, loan_trigger, webhook
else:
    from group_support import Groups, make_groups
    from playbook_support import LOANS, Playbooks, insert_endpoint, loan_trigger, webhook

SHAPE = {
    "id",
    "name",
    "description",
    "enabled",
    "trigger",
    "audience",
    "cadence",
    "actions",
    "created_at",
    "updated_at",
}


@pytest.fixture
def books(client: TestClient, admin_headers: dict[str, str]) -> Playbooks:
    return Playbooks(client, admin_headers)


@pytest.fixture
def groups(client: TestClient, admin_headers: dict[str, str], tracker: Tracker) -> Groups:
    return make_groups(client, admin_headers, tracker)


@pytest.fixture
def loans(make_type: Callable[..., ActivityType]) -> ActivityType:
    return make_type(
        name="Loan calculator usage",
        code_name=LOANS,
        fields=[{"name": "amount", "type": "decimal"}],
    )


@pytest.fixture
def endpoint(hub: Hub) -> uuid.UUID:
    return insert_endpoint(hub)


def valid(endpoint: uuid.UUID, **changes: Any) -> dict[str, Any]:
    return {
        "name": "Big loans",
        "trigger": loan_trigger(amount={"gte": "10000"}),
        "cadence": {"mode": "once_per", "days": 7},
        "actions": webhook(endpoint),
        **changes,
    }


# -- CRUD --------------------------------------------------------------------------------------


def test_create_read_list_change_and_delete(
    books: Playbooks, loans: ActivityType, endpoint: uuid.UUID, client: TestClient
) -> None:
    answer = books.post(**valid(endpoint, description="To the CRM", audience={"consent": "x"}))
    assert answer.status_code == 400, answer.text
    answer = books.post(**valid(endpoint, description="To the CRM"))
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert set(created) == SHAPE
    assert uuid.UUID(created["id"])
    assert created["trigger"] == loan_trigger(amount={"gte": "10000"})
    assert created["cadence"] == {"mode": "once_per", "days": 7}
    assert created["actions"] == webhook(endpoint)
    assert (created["enabled"], created["audience"], created["description"]) == (
        True,
        None,
        "To the CRM",
    )
    item = f"/api/playbooks/{created['id']}"
    assert books.get(item) == created
    assert books.get("/api/playbooks") == {"data": [created], "next": None}
    answer = books.patch(created["id"], enabled=False, cadence={"mode": "once"})
    assert answer.status_code == 200, answer.text
    changed = answer.json()
    assert (changed["enabled"], changed["cadence"]) == (False, {"mode": "once"})
    assert changed["trigger"] == created["trigger"]
    assert changed["updated_at"] >= created["updated_at"]
    assert client.delete(item, headers=books.headers).status_code == 204
    assert client.get(item, headers=books.headers).status_code == 404


def test_lists_page_with_a_cursor(
    books: Playbooks, loans: ActivityType, endpoint: uuid.UUID
) -> None:
    made = {books.create(loan_trigger(), endpoint)["id"] for _ in range(3)}
    page = books.get("/api/playbooks", limit=2)
    assert len(page["data"]) == 2
    rest = books.get("/api/playbooks", limit=2, cursor=page["next"])
    assert rest["next"] is None
    assert {p["id"] for p in page["data"] + rest["data"]} == made


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "status", "code", "field"),
    [
        ({"trigger": {"event": "activity", "type": "nope"}}, 400, "invalid_field", "trigger.type"),
        (
            {"trigger": loan_trigger(colour={"eq": "red"})},
            400,
            "invalid_field",
            "trigger.fields.colour",
        ),
        (
            {"trigger": loan_trigger(amount={"gte": "lots"})},
            400,
            "invalid_field",
            "trigger.fields.amount",
        ),
        (
            {"trigger": {"event": "group_entered", "group": str(uuid.uuid4())}},
            400,
            "invalid_field",
            "trigger.group",
        ),
        (
            {"trigger": {"event": "consent_revoked", "consent": "nope"}},
            400,
            "invalid_field",
            "trigger.consent",
        ),
        ({"audience": {"all": "of them"}}, 400, "invalid_field", "audience.all"),
        (
            {"audience": {"activity": {"type": "nope"}}},
            400,
            "invalid_field",
            "audience.activity.type",
        ),
        ({"audience": {"group": str(uuid.uuid4())}}, 400, "invalid_field", "audience.group"),
        # Past SQLite's longest LIKE pattern: saved, it failed every activity of the trigger
        # type with 503.
        (
            {"audience": {"contact": {"field": "city", "contains": "a" * 50_001}}},
            400,
            "invalid_field",
            "audience.contact",
        ),
        ({"actions": webhook(uuid.uuid4())}, 400, "invalid_field", "actions[0].endpoint"),
        ({"actions": []}, 400, "invalid_field", "actions"),
        ({"actions": [{"kind": "email", "to": "x"}]}, 400, "invalid_field", "actions[0].kind"),
        ({"actions": [{"kind": "webhook", "endpoint": "x"}]}, 400, "invalid_field", None),
        ({"trigger": {"event": "clicked"}}, 400, "invalid_field", "trigger.event"),
        ({"trigger": {"type": LOANS}}, 400, "missing_field", "trigger.event"),
        ({"cadence": {"mode": "once_per", "days": 0}}, 400, "invalid_field", "cadence.days"),
        ({"cadence": {"mode": "once_per", "days": 3651}}, 400, "invalid_field", "cadence.days"),
        ({"name": ""}, 400, "invalid_field", "name"),
        ({"name": "x" * 201}, 400, "invalid_field", "name"),
        ({"colour": "red"}, 400, "unknown_field", "colour"),
        ({"trigger": None}, 400, "invalid_field", "trigger"),
    ],
)
def test_each_bad_input_is_a_4xx_in_the_error_shape(
    books: Playbooks,
    loans: ActivityType,
    endpoint: uuid.UUID,
    expect_error: ErrorCheck,
    changes: dict[str, Any],
    status: int,
    code: str,
    field: str | None,
) -> None:
    expect_error(books.post(**valid(endpoint, **changes)), status, code, field)
    assert books.get("/api/playbooks")["data"] == []


def test_a_duplicate_name_is_a_409_and_a_missing_one_a_400(
    books: Playbooks,
    loans: ActivityType,
    endpoint: uuid.UUID,
    expect_error: ErrorCheck,
    client: TestClient,
) -> None:
    books.create(loan_trigger(), endpoint, name="Big loans")
    expect_error(books.post(**valid(endpoint)), 409, "conflict", "name")
    body = valid(endpoint)
    del body["name"]
    expect_error(books.post(**body), 400, "missing_field", "name")
    answer = client.post(
        "/api/playbooks",
        content=b"{",
        headers={**books.headers, "Content-Type": "application/json"},
    )
    expect_error(answer, 400, "invalid_json")


def test_a_bad_change_is_refused_and_changes_nothing(
    books: Playbooks, loans: ActivityType, endpoint: uuid.UUID, expect_error: ErrorCheck
) -> None:
    created = books.create(loan_trigger(), endpoint)
    expect_error(
        books.patch(created["id"], actions=webhook(uuid.uuid4())),
        400,
        "invalid_field",
        "actions[0].endpoint",
    )
    expect_error(books.patch(created["id"], enabled="yes"), 400, "invalid_field", "enabled")
    expect_error(books.patch(created["id"], owner="me"), 400, "unknown_field", "owner")
    expect_error(books.patch(str(uuid.uuid4()), enabled=False), 404, "not_found")
    expect_error(books.patch("not-an-id", enabled=False), 404, "not_found")
    assert books.get(f"/api/playbooks/{created['id']}") == created


# -- runs --------------------------------------------------------------------------------------


def test_runs_per_playbook_and_per_contact(
    books: Playbooks,
    groups: Groups,
    loans: ActivityType,
    endpoint: uuid.UUID,
    client: TestClient,
    expect_error: ErrorCheck,
) -> None:
    book = books.create(loan_trigger(amount={"gte": "10000"}), endpoint)
    ann, bob = groups.new_contact(), groups.new_contact()
    [first] = groups.log(ann, {"type": LOANS, "fields": {"amount": "10000"}})
    groups.log(bob, {"type": LOANS, "fields": {"amount": "9999.99"}})
    [second] = groups.log(ann, {"type": LOANS, "fields": {"amount": "12000"}})
    page = books.get(f"/api/playbooks/{book['id']}/runs", limit=1)
    [newest] = page["data"]
    assert set(newest) == {"id", "playbook", "contact", "event", "subject", "at"}
    assert (newest["playbook"], newest["contact"], newest["event"], newest["subject"]) == (
        book["id"],
        ann,
        "activity",
        second,
    )
    rest = books.get(f"/api/playbooks/{book['id']}/runs", limit=1, cursor=page["next"])
    assert [r["subject"] for r in rest["data"]] == [first]
    assert rest["next"] is None
    assert [r["subject"] for r in books.get(f"/api/contacts/{ann}/playbook-runs")["data"]] == [
        second,
        first,
    ]
    assert books.get(f"/api/contacts/{bob}/playbook-runs") == {"data": [], "next": None}
    headers = books.headers
    expect_error(
        client.get(f"/api/playbooks/{uuid.uuid4()}/runs", headers=headers), 404, "not_found"
    )
    expect_error(
        client.get(f"/api/contacts/{uuid.uuid4()}/playbook-runs", headers=headers),
        404,
        "contact_not_found",
    )
    expect_error(
        client.get(
            f"/api/playbooks/{book['id']}/runs", params={"cursor": "bm9wZQ"}, headers=headers
        ),
        400,
        "invalid_field",
        "cursor",
    )
    expect_error(
        client.get(f"/api/playbooks/{book['id']}/runs", params={"limit": 0}, headers=headers),
        400,
        "invalid_field",
        "limit",
    )


# -- who may -----------------------------------------------------------------------------------


def test_a_marketer_may_manage_playbooks_and_a_key_is_needed(
    marketer_ui: UI,
    loans: ActivityType,
    endpoint: uuid.UUID,
    client: TestClient,
    expect_error: ErrorCheck,
) -> None:
    answer = marketer_ui.api("POST", "/api/playbooks", json=valid(endpoint))
    assert answer.status_code == 201, answer.text
    created = answer.json()
    answer = marketer_ui.api("PATCH", f"/api/playbooks/{created['id']}", json={"enabled": False})
    assert answer.status_code == 200, answer.text
    expect_error(client.get("/api/playbooks"), 401, "unauthorized")
    expect_error(client.post("/api/playbooks", json=valid(endpoint)), 401, "unauthorized")


def test_an_audience_saved_before_the_limits_can_still_be_sent_back(
    books: Playbooks,
    loans: ActivityType,
    endpoint: uuid.UUID,
    expect_error: ErrorCheck,
    hub: Hub,
) -> None:
    # The admin form sends trigger, audience and actions with every change: an audience saved
    # before a limit held stays editable; only a changed one is held to the limits.
    book = books.create(loan_trigger(), endpoint)
    older = {"contact": {"field": "city", "contains": "b" * 1500}}
    with hub.store.write() as conn:
        conn.execute(
            playbooks.update().where(playbooks.c.id == uuid.UUID(book["id"])).values(audience=older)
        )
    renamed = books.patch(book["id"], name="Renamed", audience=older, actions=webhook(endpoint))
    assert renamed.status_code == 200, renamed.text
    changed = {"contact": {"field": "city", "contains": "c" * 1500}}
    answer = books.patch(book["id"], audience=changed)
    expect_error(answer, 400, "invalid_field", "audience.contact")

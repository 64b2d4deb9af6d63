"""/api/activity-types on both databases."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import pytest
from starlette.testclient import TestClient

from waypost.app import create_app
from waypost.hub import Hub
from waypost.services import activity_types as activity_types_service
from waypost.services.activity_types import ActivityType, ActivityTypeService
from waypost.services.channels import Channel
from waypost.services.keys import KeyCreate
from waypost.settings import Settings
from waypost.store.schema import activities, contacts
from waypost.store.schema import activity_types as activity_types_table

ErrorCheck = Callable[..., dict[str, str]]
TYPES = "/api/activity-types"
BUILTINS = ("pagevisit", "datainput", "click")
DEFAULT_LIMITS = {
    "per_contact": {"limit": 10, "window_seconds": 86400},
    "per_ip": {"limit": 100, "window_seconds": 3600},
}


@pytest.fixture
def log_activity(hub: Hub, make_channel: Callable[..., Channel]) -> Callable[[str], None]:
    """Store one activity of a type straight in the table, as the tracking API would."""

    def log(type_id: str) -> None:
        channel = make_channel()
        now = dt.datetime.now(dt.UTC)
        contact = uuid.uuid4()
        with hub.store.write() as conn:
            conn.execute(
                contacts.insert().values(id=contact, attributes={}, created_at=now, updated_at=now)
            )
            conn.execute(
                activities.insert().values(
                    id=uuid.uuid4(),
                    type_id=uuid.UUID(type_id),
                    contact_id=contact,
                    channel_id=channel.id,
                    title="Used",
                    occurred_at=now,
                    received_at=now,
                )
            )

    return log


def builtin(client: TestClient, headers: dict[str, str], code_name: str) -> dict[str, Any]:
    items = client.get(TYPES, headers=headers).json()["data"]
    [found] = [t for t in items if t["code_name"] == code_name]
    return dict(found)


def create(client: TestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    answer = client.post(TYPES, json=body, headers=headers)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


# -- create ---------------------------------------------------------------------------------


def test_create_with_a_name_only(client: TestClient, admin_headers: dict[str, str]) -> None:
    body = create(client, admin_headers, name="Loan calculator usage")
    assert uuid.UUID(body["id"])
    assert body["code_name"] == "loan_calculator_usage"
    assert body["name"] == "Loan calculator usage"
    assert body["description"] == ""
    assert body["enabled"] is True
    assert body["client_side"] is False
    assert body["builtin"] is False
    assert body["fields"] == []
    assert body["aliases"] == []
    assert body["rate_limits"] == DEFAULT_LIMITS
    assert body["retention_days"] is None
    assert body["code_name_locked"] is False
    got = client.get(f"{TYPES}/{body['id']}", headers=admin_headers)
    assert got.status_code == 200
    assert got.json() == body


def test_create_with_everything(client: TestClient, admin_headers: dict[str, str]) -> None:
    fields = [
        {"name": "amount", "type": "decimal", "required": True, "primary": True},
        {"name": "currency", "type": "text", "max_length": 3},
        {"name": "paid_at", "type": "datetime"},
    ]
    body = create(
        client,
        admin_headers,
        name="Order completed",
        code_name="order.completed",
        description="A paid order",
        enabled=False,
        client_side=True,
        fields=fields,
        aliases=["Order Completed"],
        rate_limits={"per_contact": {"limit": 5, "window_seconds": 60}, "per_ip": None},
        retention_days=30,
    )
    assert body["code_name"] == "order.completed"
    assert body["enabled"] is False
    assert body["client_side"] is True
    assert [(f["name"], f["type"], f["required"], f["primary"]) for f in body["fields"]] == [
        ("amount", "decimal", True, True),
        ("currency", "text", False, False),
        ("paid_at", "datetime", False, False),
    ]
    assert body["fields"][1]["max_length"] == 3
    assert body["aliases"] == ["Order Completed"]
    assert body["rate_limits"] == {
        "per_contact": {"limit": 5, "window_seconds": 60},
        "per_ip": None,
    }
    assert body["retention_days"] == 30
    assert client.get(f"{TYPES}/{body['id']}", headers=admin_headers).json() == body


def test_whole_numbers_written_with_a_fraction_are_numbers(
    client: TestClient, admin_headers: dict[str, str], expect_error: ErrorCheck
) -> None:
    # JSON has one number type: 30.0 is the integer 30 (as the OpenAPI document's "integer" says).
    raw = (
        b'{"name": "Order", "retention_days": 30.0, "fields": [{"name": "currency", '
        b'"type": "text", "max_length": 3.0}], "rate_limits": {"per_contact": '
        b'{"limit": 5.0, "window_seconds": 6e1}, "per_ip": null}}'
    )
    headers = {**admin_headers, "Content-Type": "application/json"}
    answer = client.post(TYPES, content=raw, headers=headers)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["retention_days"] == 30
    assert body["fields"][0]["max_length"] == 3
    assert body["rate_limits"]["per_contact"] == {"limit": 5, "window_seconds": 60}
    # A fraction is still refused, and named.
    answer = client.post(
        TYPES, content=b'{"name": "Other", "retention_days": 30.5}', headers=headers
    )
    expect_error(answer, 400, "invalid_field", "retention_days")
    for other in (b"5.0", b"[1.0]", b'{"name": "Huge", "retention_days": 1e300}'):
        assert client.post(TYPES, content=other, headers=headers).status_code == 400, other


def test_derived_code_names_are_unique(client: TestClient, admin_headers: dict[str, str]) -> None:
    first = create(client, admin_headers, name="Sign up")
    second = create(client, admin_headers, name="Sign-up")
    third = create(client, admin_headers, name="SIGN UP!")
    assert [first["code_name"], second["code_name"], third["code_name"]] == [
        "sign_up",
        "sign_up_2",
        "sign_up_3",
    ]
    assert create(client, admin_headers, name="Page visit (custom)")["code_name"] == (
        "page_visit_custom"
    )


def test_a_derived_code_name_avoids_the_aliases_of_other_types(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    create(client, admin_headers, name="Purchase", aliases=["order_completed"])
    body = create(client, admin_headers, name="Order completed")
    assert body["code_name"] == "order_completed_2"


def test_duplicates_are_conflicts(
    client: TestClient, admin_headers: dict[str, str], expect_error: ErrorCheck
) -> None:
    create(client, admin_headers, name="Signup", code_name="signup")
    expect_error(
        client.post(TYPES, json={"name": "Other", "code_name": "signup"}, headers=admin_headers),
        409,
        "conflict",
        "code_name",
    )
    expect_error(
        client.post(TYPES, json={"name": "Signup"}, headers=admin_headers),
        409,
        "conflict",
        "name",
    )
    expect_error(
        client.post(TYPES, json={"name": "Clicks", "code_name": "click"}, headers=admin_headers),
        409,
        "conflict",
        "code_name",
    )


def test_alias_rules(
    client: TestClient, admin_headers: dict[str, str], expect_error: ErrorCheck
) -> None:
    create(client, admin_headers, name="Order", code_name="order", aliases=["Order Completed"])
    expect_error(
        client.post(
            TYPES, json={"name": "A", "aliases": ["Order Completed"]}, headers=admin_headers
        ),
        409,
        "conflict",
        "aliases",
    )
    expect_error(
        client.post(TYPES, json={"name": "B", "aliases": ["order"]}, headers=admin_headers),
        409,
        "conflict",
        "aliases",
    )
    expect_error(
        client.post(TYPES, json={"name": "C", "aliases": ["x", "x"]}, headers=admin_headers),
        400,
        "invalid_field",
        "aliases",
    )
    expect_error(
        client.post(
            TYPES, json={"name": "D", "code_name": "Order Completed"}, headers=admin_headers
        ),
        400,
        "invalid_field",
        "code_name",
    )


BAD_DEFINITIONS: list[tuple[dict[str, Any], int, str, str]] = [
    ({"code_name": "Has Spaces"}, 400, "invalid_field", "code_name"),
    ({"code_name": "_x"}, 400, "invalid_field", "code_name"),
    ({"name": ""}, 400, "invalid_field", "name"),
    ({"retention_days": 0}, 400, "invalid_field", "retention_days"),
    ({"retention_days": 36_501}, 400, "invalid_field", "retention_days"),
    ({"retention_days": 2**31}, 400, "invalid_field", "retention_days"),
    ({"retention_days": 10**30}, 400, "invalid_field", "retention_days"),
    (
        {
            "fields": [
                {"name": "a", "type": "text", "primary": True},
                {"name": "b", "type": "integer", "primary": True},
            ]
        },
        400,
        "invalid_field",
        "fields[1].primary",
    ),
    ({"fields": [{"name": "a", "type": "money"}]}, 400, "invalid_field", "fields[0].type"),
    (
        {"fields": [{"name": "a", "type": "text"}, {"name": "A", "type": "text"}]},
        400,
        "invalid_field",
        "fields[1].name",
    ),
    ({"fields": [{"name": "a b", "type": "text"}]}, 400, "invalid_field", "fields[0].name"),
    ({"fields": [{"name": "a"}]}, 400, "missing_field", "fields[0].type"),
    (
        {"fields": [{"name": "a", "type": "text", "size": 1}]},
        400,
        "unknown_field",
        "fields[0].size",
    ),
    (
        {"rate_limits": {"per_ip": {"limit": 0, "window_seconds": 60}}},
        400,
        "invalid_field",
        "rate_limits.per_ip.limit",
    ),
    # The sizes of docs/admin-api.md#activity-types.
    ({"name": "   "}, 400, "invalid_field", "name"),
    ({"name": "\t\n"}, 400, "invalid_field", "name"),
    ({"description": "x" * 2001}, 400, "invalid_field", "description"),
    ({"description": "x" * 1_500_000}, 400, "invalid_field", "description"),
    (
        {"fields": [{"name": "note", "type": "text", "description": "x" * 2001}]},
        400,
        "invalid_field",
        "fields[0].description",
    ),
    ({"aliases": [f"Event {i}" for i in range(51)]}, 400, "invalid_field", "aliases"),
    ({"aliases": [f"Event {i}" for i in range(20_000)]}, 400, "invalid_field", "aliases"),
    ({"aliases": ["x" * 201]}, 400, "invalid_field", "aliases[0]"),
    (
        {"rate_limits": {"per_contact": {"limit": 1e300, "window_seconds": 60}}},
        400,
        "invalid_field",
        "rate_limits.per_contact.limit",
    ),
    (
        {"rate_limits": {"per_contact": {"limit": 1_000_001, "window_seconds": 60}}},
        400,
        "invalid_field",
        "rate_limits.per_contact.limit",
    ),
    (
        {"rate_limits": {"per_ip": {"limit": 5, "window_seconds": 31 * 86400 + 1}}},
        400,
        "invalid_field",
        "rate_limits.per_ip.window_seconds",
    ),
]


def test_the_largest_sizes_are_taken(client: TestClient, admin_headers: dict[str, str]) -> None:
    body = {
        "name": "Big",
        "description": "x" * 2000,
        "aliases": [f"{i:03}" + "x" * 197 for i in range(50)],
        "rate_limits": {"per_contact": {"limit": 1_000_000, "window_seconds": 31 * 86400}},
    }
    created = client.post(TYPES, json=body, headers=admin_headers)
    assert created.status_code == 201, created.text
    assert created.json()["rate_limits"]["per_contact"]["limit"] == 1_000_000
    changed = client.patch(
        f"{TYPES}/{created.json()['id']}",
        json={"name": "  ", "description": "y" * 2001},
        headers=admin_headers,
    )
    assert changed.status_code == 400, changed.text
    blank = client.patch(
        f"{TYPES}/{created.json()['id']}", json={"name": "  "}, headers=admin_headers
    )
    assert blank.status_code == 400, blank.text
    assert blank.json()["error"]["field"] == "name"


def test_a_limit_stored_before_the_bound_reads_as_the_largest(
    client: TestClient,
    hub: Hub,
    admin_headers: dict[str, str],
    make_type: Callable[..., ActivityType],
) -> None:
    kind = make_type()
    stored = {"per_contact": {"limit": 10**300, "window_seconds": 60}, "per_ip": None}
    with hub.store.write() as conn:
        conn.execute(
            activity_types_table.update()
            .where(activity_types_table.c.id == kind.id)
            .values(rate_limits=stored)
        )
    got = client.get(f"{TYPES}/{kind.id}", headers=admin_headers)
    assert got.status_code == 200, got.text
    assert got.json()["rate_limits"] == {
        "per_contact": {"limit": 1_000_000, "window_seconds": 60},
        "per_ip": None,
    }


def test_bad_definitions_are_refused(
    client: TestClient,
    admin_headers: dict[str, str],
    expect_error: ErrorCheck,
    subtests: pytest.Subtests,
) -> None:
    for body, status, code, field in BAD_DEFINITIONS:
        with subtests.test(field, body=body):
            answer = client.post(TYPES, json={"name": "Bad", **body}, headers=admin_headers)
            expect_error(answer, status, code, field)
    codes = {t["code_name"] for t in client.get(TYPES, headers=admin_headers).json()["data"]}
    assert codes == {"pagevisit", "click", "datainput"}


# -- too many fields --------------------------------------------------------------------------


@pytest.fixture
def small_client(
    make_settings: Callable[..., Settings],
) -> Iterator[tuple[TestClient, dict[str, str]]]:
    app = create_app(make_settings(max_fields_per_type=3))
    with TestClient(app) as test_client:
        hub: Hub = app.state.hub
        key = hub.keys.create(KeyCreate(access="admin")).key
        yield test_client, {"Authorization": f"Bearer {key}"}


def fields_of(n: int) -> list[dict[str, str]]:
    return [{"name": f"f{i}", "type": "text"} for i in range(n)]


def test_more_fields_than_the_limit_is_413(
    small_client: tuple[TestClient, dict[str, str]], expect_error: ErrorCheck
) -> None:
    client, headers = small_client
    error = expect_error(
        client.post(TYPES, json={"name": "Wide", "fields": fields_of(4)}, headers=headers),
        413,
        "payload_too_large",
        "fields",
    )
    assert "3" in error["message"]
    body = create(client, headers, name="Narrow", fields=fields_of(3))
    expect_error(
        client.patch(f"{TYPES}/{body['id']}", json={"fields": fields_of(4)}, headers=headers),
        413,
        "payload_too_large",
        "fields",
    )


def test_the_default_limit_is_50_fields(
    client: TestClient, admin_headers: dict[str, str], expect_error: ErrorCheck
) -> None:
    create(client, admin_headers, name="Fifty", fields=fields_of(50))
    expect_error(
        client.post(
            TYPES, json={"name": "Fifty-one", "fields": fields_of(51)}, headers=admin_headers
        ),
        413,
        "payload_too_large",
        "fields",
    )


# -- list and get -----------------------------------------------------------------------------


def test_list_pages_and_filters(client: TestClient, admin_headers: dict[str, str]) -> None:
    made = [
        create(client, admin_headers, name=f"Type {i}", enabled=i % 2 == 0, client_side=i < 2)
        for i in range(4)
    ]
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        answer = client.get(TYPES, params=params, headers=admin_headers)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert len(body["data"]) <= 3
        seen += [t["id"] for t in body["data"]]
        cursor = body["next"]
        if cursor is None:
            break
    assert len(seen) == 7 == len(set(seen))
    assert {t["id"] for t in made} <= set(seen)

    disabled = client.get(TYPES, params={"enabled": "false"}, headers=admin_headers).json()
    assert {t["id"] for t in disabled["data"]} == {made[1]["id"], made[3]["id"]}
    server_side = client.get(
        TYPES, params={"client_side": "false", "enabled": "true"}, headers=admin_headers
    ).json()
    assert {t["code_name"] for t in server_side["data"]} == {"datainput", made[2]["code_name"]}


def test_get_unknown(
    client: TestClient, admin_headers: dict[str, str], expect_error: ErrorCheck
) -> None:
    expect_error(
        client.get(f"{TYPES}/{uuid.uuid4()}", headers=admin_headers),
        404,
        "activity_type_not_found",
    )
    expect_error(client.get(f"{TYPES}/pagevisit", headers=admin_headers), 404, "not_found")


# -- update -----------------------------------------------------------------------------------


def test_update_before_first_use(client: TestClient, admin_headers: dict[str, str]) -> None:
    body = create(client, admin_headers, name="Calc", fields=[{"name": "x", "type": "text"}])
    changed = client.patch(
        f"{TYPES}/{body['id']}",
        json={
            "name": "Calculator",
            "code_name": "calculator",
            "description": "Used the calculator",
            "client_side": True,
            "fields": [{"name": "x", "type": "integer", "required": True, "primary": True}],
            "aliases": ["Calculator Used"],
            "rate_limits": {"per_contact": None},
            "retention_days": 365,
        },
        headers=admin_headers,
    )
    assert changed.status_code == 200, changed.text
    after = changed.json()
    assert after["name"] == "Calculator"
    assert after["code_name"] == "calculator"
    assert after["description"] == "Used the calculator"
    assert after["client_side"] is True
    assert after["fields"][0]["type"] == "integer"
    assert after["fields"][0]["required"] is True
    assert after["aliases"] == ["Calculator Used"]
    assert after["rate_limits"] == {"per_contact": None, "per_ip": DEFAULT_LIMITS["per_ip"]}
    assert after["retention_days"] == 365
    assert after["updated_at"] >= body["updated_at"]
    assert client.get(f"{TYPES}/{body['id']}", headers=admin_headers).json() == after

    reset = client.patch(
        f"{TYPES}/{body['id']}",
        json={"rate_limits": None, "retention_days": None},
        headers=admin_headers,
    ).json()
    assert reset["rate_limits"] == DEFAULT_LIMITS
    assert reset["retention_days"] is None
    assert reset["code_name"] == "calculator"


def test_update_conflicts(
    client: TestClient,
    admin_headers: dict[str, str],
    make_type: Callable[..., ActivityType],
    expect_error: ErrorCheck,
) -> None:
    make_type(name="Taken", code_name="taken", aliases=["Taken Alias"])
    mine = make_type(name="Mine")
    url = f"{TYPES}/{mine.id}"
    expect_error(
        client.patch(url, json={"code_name": "taken"}, headers=admin_headers),
        409,
        "conflict",
        "code_name",
    )
    expect_error(
        client.patch(url, json={"name": "Taken"}, headers=admin_headers), 409, "conflict", "name"
    )
    expect_error(
        client.patch(url, json={"aliases": ["Taken Alias"]}, headers=admin_headers),
        409,
        "conflict",
        "aliases",
    )
    expect_error(
        client.patch(url, json={"code_name": "Bad Name"}, headers=admin_headers),
        400,
        "invalid_field",
        "code_name",
    )
    expect_error(
        client.patch(url, json={"builtin": True}, headers=admin_headers),
        400,
        "unknown_field",
        "builtin",
    )
    unchanged = client.get(url, headers=admin_headers).json()
    assert unchanged["code_name"] == mine.code_name
    assert unchanged["name"] == "Mine"
    assert unchanged["aliases"] == []


def test_code_name_is_fixed_once_an_activity_used_it(
    client: TestClient,
    admin_headers: dict[str, str],
    log_activity: Callable[[str], None],
    expect_error: ErrorCheck,
) -> None:
    body = create(client, admin_headers, name="Calc")
    url = f"{TYPES}/{body['id']}"
    assert client.patch(url, json={"code_name": "calc2"}, headers=admin_headers).status_code == 200
    log_activity(body["id"])
    got = client.get(url, headers=admin_headers).json()
    assert got["code_name_locked"] is True
    assert got["code_name"] == "calc2"
    expect_error(
        client.patch(url, json={"code_name": "calc3"}, headers=admin_headers),
        409,
        "conflict",
        "code_name",
    )
    # Sending the current code name is no change, and the rest stays editable.
    same = client.patch(
        url,
        json={"code_name": "calc2", "name": "Calculator", "description": "d"},
        headers=admin_headers,
    )
    assert same.status_code == 200, same.text
    assert same.json()["name"] == "Calculator"
    assert client.get(url, headers=admin_headers).json()["code_name"] == "calc2"


def test_field_changes_once_activities_exist(
    client: TestClient,
    admin_headers: dict[str, str],
    log_activity: Callable[[str], None],
    expect_error: ErrorCheck,
) -> None:
    fields: list[dict[str, Any]] = [
        {"name": "amount", "type": "decimal", "required": True, "primary": True},
        {"name": "note", "type": "text"},
    ]
    body = create(client, admin_headers, name="Paid", fields=fields)
    url = f"{TYPES}/{body['id']}"
    log_activity(body["id"])

    refused: list[list[dict[str, Any]]] = [
        fields[:1],
        [{**fields[0], "type": "integer"}, fields[1]],
        [{**fields[0], "primary": False}, fields[1]],
        [*fields, {"name": "extra", "type": "text", "required": True}],
        [fields[0], {**fields[1], "required": True}],
    ]
    for new in refused:
        answer = client.patch(url, json={"fields": new}, headers=admin_headers)
        expect_error(answer, 409, "conflict")
    assert client.get(url, headers=admin_headers).json()["fields"] == body["fields"]

    added = [*fields, {"name": "extra", "type": "url"}]
    answer = client.patch(url, json={"fields": added}, headers=admin_headers)
    assert answer.status_code == 200, answer.text
    assert [f["name"] for f in answer.json()["fields"]] == ["amount", "note", "extra"]
    relaxed = [{**fields[0], "required": False}, fields[1], added[2]]
    answer = client.patch(url, json={"fields": relaxed}, headers=admin_headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["fields"][0]["required"] is False


def test_enable_and_disable(
    client: TestClient,
    hub: Hub,
    admin_headers: dict[str, str],
    make_type: Callable[..., ActivityType],
) -> None:
    made = make_type()
    off = client.post(f"{TYPES}/{made.id}/disable", headers=admin_headers)
    assert off.status_code == 200, off.text
    assert off.json()["enabled"] is False
    assert hub.types.get(made.id).enabled is False
    on = client.post(f"{TYPES}/{made.id}/enable", headers=admin_headers)
    assert on.json()["enabled"] is True
    assert hub.types.get(made.id).enabled is True
    click = builtin(client, admin_headers, "click")
    assert (
        client.post(f"{TYPES}/{click['id']}/disable", headers=admin_headers).json()["enabled"]
        is False
    )


# -- built-in types and delete ------------------------------------------------------------------


def test_builtin_types(
    client: TestClient, admin_headers: dict[str, str], expect_error: ErrorCheck
) -> None:
    for code_name in ("pagevisit", "click", "datainput"):
        found = builtin(client, admin_headers, code_name)
        assert found["builtin"] is True
        assert found["enabled"] is True
        url = f"{TYPES}/{found['id']}"
        expect_error(client.delete(url, headers=admin_headers), 409, "conflict")
        expect_error(
            client.patch(url, json={"code_name": f"my_{code_name}"}, headers=admin_headers),
            409,
            "conflict",
            "code_name",
        )
        assert client.get(url, headers=admin_headers).json()["code_name"] == code_name


def test_delete(
    client: TestClient,
    admin_headers: dict[str, str],
    make_type: Callable[..., ActivityType],
    expect_error: ErrorCheck,
) -> None:
    made = make_type(fields=[{"name": "a", "type": "text"}])
    url = f"{TYPES}/{made.id}"
    answer = client.delete(url, headers=admin_headers)
    assert answer.status_code == 204
    expect_error(client.get(url, headers=admin_headers), 404, "activity_type_not_found")
    expect_error(client.delete(url, headers=admin_headers), 404, "activity_type_not_found")
    # The code name and name are free again.
    again = create(client, admin_headers, name=made.name, code_name=made.code_name)
    assert again["fields"] == []


def test_every_type_has_a_number_never_given_twice(
    client: TestClient, admin_headers: dict[str, str], expect_error: ErrorCheck
) -> None:
    """Marketo's activityTypeId: built-in types have Marketo's numbers for the same moments,
    new ones 100001 and on, and a deleted type's number is not given again."""
    numbers = {code: builtin(client, admin_headers, code)["number"] for code in BUILTINS}
    assert numbers == {"pagevisit": 1, "datainput": 2, "click": 3}
    first = create(client, admin_headers, name="First")
    second = create(client, admin_headers, name="Second")
    assert (first["number"], second["number"]) == (100001, 100002)
    assert client.delete(f"{TYPES}/{second['id']}", headers=admin_headers).status_code == 204
    assert create(client, admin_headers, name="Third")["number"] == 100003
    # A number of one's own (an existing Marketo integration's activityTypeId), once only.
    own = create(client, admin_headers, name="Webinar attended", number=100123)
    assert own["number"] == 100123
    assert create(client, admin_headers, name="After")["number"] == 100124
    for taken in (100123, 100002, 1):
        expect_error(
            client.post(
                TYPES, json={"name": f"Again {taken}", "number": taken}, headers=admin_headers
            ),
            409,
            "conflict",
            "number",
        )
    expect_error(
        client.post(TYPES, json={"name": "Zero", "number": 0}, headers=admin_headers),
        400,
        "invalid_field",
        "number",
    )
    # The number is not a thing to change.
    answer = client.patch(f"{TYPES}/{first['id']}", json={"number": 5}, headers=admin_headers)
    assert answer.status_code == 400
    assert client.get(f"{TYPES}/{first['id']}", headers=admin_headers).json()["number"] == 100001


def test_a_type_with_activities_cannot_be_deleted(
    client: TestClient,
    admin_headers: dict[str, str],
    make_type: Callable[..., ActivityType],
    log_activity: Callable[[str], None],
    expect_error: ErrorCheck,
) -> None:
    made = make_type()
    log_activity(str(made.id))
    url = f"{TYPES}/{made.id}"
    expect_error(client.delete(url, headers=admin_headers), 409, "conflict")
    assert client.get(url, headers=admin_headers).status_code == 200


def test_a_type_a_group_names_keeps_its_code_name_and_is_not_deleted(
    client: TestClient,
    admin_headers: dict[str, str],
    make_type: Callable[..., ActivityType],
    expect_error: ErrorCheck,
) -> None:
    made = make_type(name="Webinar", code_name="custom_webinar")
    condition = {"not": {"activity": {"type": "custom_webinar", "within_days": 7}}}
    group = client.post(
        "/api/groups", json={"name": "No webinar", "condition": condition}, headers=admin_headers
    )
    assert group.status_code == 201, group.text
    url = f"{TYPES}/{made.id}"
    error = expect_error(client.delete(url, headers=admin_headers), 409, "conflict")
    assert "No webinar" in error["message"]
    expect_error(
        client.patch(url, json={"code_name": "custom_seminar"}, headers=admin_headers),
        409,
        "conflict",
    )
    # Other changes are fine, and once the group is gone so is the type.
    renamed = client.patch(url, json={"name": "Webinar (live)"}, headers=admin_headers)
    assert renamed.status_code == 200, renamed.text
    gone = client.delete(f"/api/groups/{group.json()['id']}", headers=admin_headers)
    assert gone.status_code == 204
    assert client.delete(url, headers=admin_headers).status_code == 204


# -- races: a check passes, then another request changes the data before the write ------------


def test_a_name_or_code_name_taken_meanwhile_is_still_a_conflict(
    client: TestClient,
    admin_headers: dict[str, str],
    make_type: Callable[..., ActivityType],
    monkeypatch: pytest.MonkeyPatch,
    expect_error: ErrorCheck,
) -> None:
    monkeypatch.setattr(ActivityTypeService, "_guard_name", lambda *_: None)
    make_type(name="Raced")
    expect_error(
        client.post(TYPES, json={"name": "Raced"}, headers=admin_headers), 409, "conflict", "name"
    )
    other = make_type(name="Other")
    expect_error(
        client.patch(f"{TYPES}/{other.id}", json={"name": "Raced"}, headers=admin_headers),
        409,
        "conflict",
        "name",
    )
    monkeypatch.setattr(activity_types_service, "derive_code_name", lambda *_: "click")
    expect_error(
        client.post(TYPES, json={"name": "Clicked"}, headers=admin_headers),
        409,
        "conflict",
        "code_name",
    )


def test_an_activity_stored_meanwhile_still_keeps_the_type(
    client: TestClient,
    hub: Hub,
    admin_headers: dict[str, str],
    make_type: Callable[..., ActivityType],
    log_activity: Callable[[str], None],
    monkeypatch: pytest.MonkeyPatch,
    expect_error: ErrorCheck,
) -> None:
    made = make_type()
    log_activity(str(made.id))
    real_get_in = ActivityTypeService.get_in

    def before_the_activity(self: ActivityTypeService, conn: Any, type_id: uuid.UUID) -> Any:
        return msgspec.structs.replace(real_get_in(self, conn, type_id), code_name_locked=False)

    monkeypatch.setattr(ActivityTypeService, "get_in", before_the_activity)
    expect_error(client.delete(f"{TYPES}/{made.id}", headers=admin_headers), 409, "conflict")
    monkeypatch.undo()
    assert hub.types.get(made.id).code_name_locked is True


def test_a_code_name_cannot_become_another_types_alias(
    client: TestClient,
    admin_headers: dict[str, str],
    make_type: Callable[..., ActivityType],
    expect_error: ErrorCheck,
) -> None:
    make_type(name="Purchase", aliases=["order_completed", "Order Completed"])
    mine = make_type(name="Mine")
    expect_error(
        client.patch(
            f"{TYPES}/{mine.id}", json={"code_name": "order_completed"}, headers=admin_headers
        ),
        409,
        "conflict",
        "code_name",
    )
    assert client.get(f"{TYPES}/{mine.id}", headers=admin_headers).json()["code_name"] == "mine"

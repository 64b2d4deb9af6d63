"""The activity log (/api/activities) and the rejected activities, on both databases."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from starlette.testclient import TestClient

from waypost.services.activity_types import ActivityType

if TYPE_CHECKING:
    from tests.conftest import ErrorCheck, Tracker


def walk(
    client: TestClient, path: str, headers: dict[str, str], **params: Any
) -> list[dict[str, Any]]:
    """Every item of a list, following ``next`` page by page."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        answer = client.get(path, params=query, headers=headers)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert set(page) == {"data", "next"}
        assert len(page["data"]) <= params.get("limit", 100)
        items += page["data"]
        cursor = page["next"]
        if cursor is None:
            return items
        assert page["data"], "a cursor after an empty page"


@pytest.fixture
def logged(
    make_tracker: Callable[..., Tracker], make_type: Callable[..., ActivityType]
) -> dict[str, Any]:
    """Activities of two channels and two contacts, at known times, some at the same instant."""
    make_type(name="Loan calculator usage", code_name="custom_loan_calculator")
    app, site = make_tracker(), make_tracker()
    ann, bob = app.new_contact(), app.new_contact()
    same = "2026-01-10T12:00:00Z"
    app.log(
        [
            {"type": "click", "value": "a1", "occurredAt": "2026-01-01T00:00:00Z"},
            {"type": "click", "value": "a2", "occurredAt": same},
            {"type": "click", "value": "a3", "occurredAt": same},
            {"type": "custom_loan_calculator", "value": "a4", "occurredAt": same},
            {
                "type": "pagevisit",
                "url": "https://e.example/",
                "value": "a5",
                "occurredAt": "2026-01-20T08:00:00+01:00",
            },
        ],
        ann,
    )
    app.log(
        [
            {"type": "click", "value": "b1", "occurredAt": "2026-01-05T00:00:00Z"},
            {"type": "custom_loan_calculator", "value": "b2", "occurredAt": same},
        ],
        bob,
    )
    site.log(
        [
            {"type": "click", "value": "s1", "occurredAt": "2026-01-15T00:00:00Z"},
            {"type": "click", "value": "s2", "occurredAt": same},
        ],
        ann,
    )
    return {"app": app, "site": site, "ann": ann, "bob": bob}


def values(items: list[dict[str, Any]]) -> list[str]:
    return [item["value"] for item in items]


def test_the_log_is_newest_first_and_pages_walk_every_row_once(
    client: TestClient, admin_headers: dict[str, str], logged: dict[str, Any]
) -> None:
    everything = walk(client, "/api/activities", admin_headers)
    assert len(everything) == 9
    stamps = [(a["occurred_at"], a["id"]) for a in everything]
    assert stamps == sorted(stamps, reverse=True)
    assert values(everything)[:2] == ["a5", "s1"]
    assert values(everything)[-1] == "a1"
    for limit in (1, 2, 3, 4, 1000):
        paged = walk(client, "/api/activities", admin_headers, limit=limit)
        assert [a["id"] for a in paged] == [a["id"] for a in everything], limit


def test_the_shape_of_an_activity(
    client: TestClient, admin_headers: dict[str, str], logged: dict[str, Any]
) -> None:
    [visit] = walk(client, "/api/activities", admin_headers, type="pagevisit")
    assert {
        "id",
        "type",
        "contact",
        "channel",
        "title",
        "value",
        "url",
        "fields",
        "occurred_at",
        "received_at",
    } <= set(visit)
    assert uuid.UUID(visit["id"]).version == 7
    assert visit["type"] == "pagevisit"
    assert visit["contact"] == logged["ann"]
    assert visit["channel"] == str(logged["app"].channel.id)
    assert visit["title"] == "Page visit 'a5'"
    assert visit["url"] == "https://e.example/"
    assert visit["fields"] is None
    assert visit["occurred_at"] == "2026-01-20T07:00:00Z"
    received = dt.datetime.fromisoformat(visit["received_at"])
    assert abs(received - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)


def test_filters(
    client: TestClient,
    admin_headers: dict[str, str],
    logged: dict[str, Any],
    subtests: pytest.Subtests,
) -> None:
    app, site, ann, bob = logged["app"], logged["site"], logged["ann"], logged["bob"]
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"type": "click"}, {"a1", "a2", "a3", "b1", "s1", "s2"}),
        ({"type": "custom_loan_calculator"}, {"a4", "b2"}),
        ({"type": "nosuchtype"}, set()),
        ({"channel": str(site.channel.id)}, {"s1", "s2"}),
        ({"channel": str(app.channel.id), "type": "click"}, {"a1", "a2", "a3", "b1"}),
        ({"contact": bob}, {"b1", "b2"}),
        ({"contact": ann, "channel": str(site.channel.id)}, {"s1", "s2"}),
        ({"contact": str(uuid.uuid4())}, set()),
        ({"since": "2026-01-10T12:00:00Z"}, {"a2", "a3", "a4", "b2", "s2", "s1", "a5"}),
        ({"until": "2026-01-10T12:00:00Z"}, {"a1", "b1"}),
        (
            {"since": "2026-01-05T00:00:00Z", "until": "2026-01-15T00:00:00Z"},
            {"b1", "a2", "a3", "a4", "b2", "s2"},
        ),
        ({"since": "2026-01-20T08:00:00+01:00"}, {"a5"}),
        ({"since": "2026-01-20T07:00:00.000001Z"}, set()),
        (
            {"type": "click", "contact": ann, "until": "2026-01-12T00:00:00+00:00"},
            {"a1", "a2", "a3", "s2"},
        ),
    ]
    for params, expected in cases:
        with subtests.test(**params):
            found = walk(client, "/api/activities", admin_headers, limit=2, **params)
            assert set(values(found)) == expected
            assert len(found) == len(expected)
            stamps = [(a["occurred_at"], a["id"]) for a in found]
            assert stamps == sorted(stamps, reverse=True)
    # The contact route takes the same filters.
    mine = walk(client, f"/api/contacts/{ann}/activities", admin_headers, type="click", limit=2)
    assert set(values(mine)) == {"a1", "a2", "a3", "s1", "s2"}


def test_bad_queries_are_400(
    client: TestClient,
    admin_headers: dict[str, str],
    logged: dict[str, Any],
    subtests: pytest.Subtests,
    expect_error: ErrorCheck,
) -> None:
    bad: list[tuple[dict[str, str | int], str]] = [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"cursor": "garbage!"}, "cursor"),
        ({"cursor": "bm90IGEgY3Vyc29y"}, "cursor"),
        ({"since": "2026-01-01T00:00:00"}, "since"),
        ({"until": "yesterday"}, "until"),
        ({"contact": "someone"}, "contact"),
        ({"channel": "1"}, "channel"),
    ]
    for params, field in bad:
        with subtests.test(params=params):
            answer = client.get("/api/activities", params=params, headers=admin_headers)
            expect_error(answer, 400, answer.json()["error"]["code"], field)
    expect_error(client.get("/api/activities"), 401, "unauthorized")
    expect_error(client.get("/api/activities", headers=logged["app"].headers), 403, "forbidden")


# -- rejected activities -----------------------------------------------------------------


def test_every_activity_not_stored_is_listed_with_its_payload(
    client: TestClient,
    admin_headers: dict[str, str],
    make_tracker: Callable[..., Tracker],
) -> None:
    app, site = make_tracker(), make_tracker()
    contact = app.new_contact()
    before = dt.datetime.now(dt.UTC)
    sent: list[Any] = [
        {"type": "pagevisit", "value": "no url"},
        {"type": "nosuch", "value": "x", "id": "r-1"},
        {"Type": "click", "Value": "x", "Colour": "red"},
        {"type": "click", "value": "stored"},
        "not an object",
    ]
    results = app.log(sent, contact)
    assert [r["status"] for r in results] == [400, 404, 400, 202, 400]
    time.sleep(0.01)
    middle = dt.datetime.now(dt.UTC)
    time.sleep(0.01)
    nobody = str(uuid.uuid4())
    lost = app.post([{"type": "click", "value": "lost"}], nobody)
    assert lost.status_code == 404
    site.log([{"type": "click"}])
    after = dt.datetime.now(dt.UTC)

    rejected = walk(client, "/api/rejected-activities", admin_headers)
    assert len(rejected) == 6
    stamps = [(r["received_at"], r["id"]) for r in rejected]
    assert stamps == sorted(stamps, reverse=True)
    by_payload = {str(r["payload"]): r for r in rejected}
    visit = by_payload[str(sent[0])]
    assert visit["payload"] == sent[0]
    assert (visit["reason"], visit["status"], visit["field"]) == ("missing_field", 400, "url")
    assert visit["type"] == "pagevisit"
    assert visit["channel"] == str(app.channel.id)
    assert visit["contact"] == contact
    assert visit["message"]
    assert visit["source"] == "tracking"
    received = dt.datetime.fromisoformat(visit["received_at"])
    assert before <= received <= middle
    assert by_payload[str(sent[1])]["reason"] == "activity_type_not_found"
    assert by_payload[str(sent[1])]["status"] == 404
    assert by_payload[str(sent[2])]["payload"] == {"Type": "click", "Value": "x", "Colour": "red"}
    assert by_payload[str(sent[2])]["reason"] == "unknown_field"
    assert by_payload[str(sent[2])]["type"] == "click"
    assert by_payload["not an object"]["reason"] == "invalid_field"
    contactless = by_payload[str({"type": "click", "value": "lost"})]
    assert (contactless["reason"], contactless["status"]) == ("contact_not_found", 404)
    assert contactless["contact"] == nobody
    assert middle <= dt.datetime.fromisoformat(contactless["received_at"]) <= after


def test_rejected_filters_and_pages(
    client: TestClient,
    admin_headers: dict[str, str],
    make_tracker: Callable[..., Tracker],
    subtests: pytest.Subtests,
    expect_error: ErrorCheck,
) -> None:
    app, site = make_tracker(), make_tracker()
    contact = app.new_contact()
    app.log([{"type": "pagevisit"}, {"type": "click"}, {"type": "click"}], contact)
    time.sleep(0.01)
    middle = dt.datetime.now(dt.UTC).isoformat()
    time.sleep(0.01)
    app.log([{"type": "nosuch"}, {"type": "click", "value": "x", "extra": 1}], contact)
    site.log([{"type": "click"}])
    cases: list[tuple[dict[str, Any], int]] = [
        ({}, 6),
        ({"reason": "missing_field"}, 4),
        ({"reason": "activity_type_not_found"}, 1),
        ({"reason": "unknown_field", "type": "click"}, 1),
        ({"reason": "nothing_like_this"}, 0),
        ({"type": "click"}, 4),
        ({"type": "pagevisit"}, 1),
        ({"type": "nosuch"}, 1),
        ({"channel": str(site.channel.id)}, 1),
        ({"channel": str(app.channel.id), "reason": "missing_field"}, 3),
        ({"until": middle}, 3),
        ({"since": middle}, 3),
        ({"since": middle, "channel": str(app.channel.id)}, 2),
    ]
    for params, expected in cases:
        with subtests.test(**params):
            found = walk(client, "/api/rejected-activities", admin_headers, limit=2, **params)
            assert len(found) == expected
            assert len({r["id"] for r in found}) == expected
            for key, column in (("reason", "reason"), ("type", "type"), ("channel", "channel")):
                if key in params:
                    assert {r[column] for r in found} <= {params[key]}
    expect_error(
        client.get(
            "/api/rejected-activities", params={"since": "2026-01-01"}, headers=admin_headers
        ),
        400,
        "invalid_field",
        "since",
    )
    expect_error(client.get("/api/rejected-activities"), 401, "unauthorized")

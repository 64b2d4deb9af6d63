"""Rejected activities: listed, read with their payload, and replayed once the cause is fixed,
on both databases (issue 4, item 6)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx2
import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from waypost.hub import Hub
from waypost.store.schema import activities, activity_rollups, field_violations, rejected_activities

if TYPE_CHECKING:
    from tests.conftest import ErrorCheck, Tracker


@dataclass
class Admin:
    client: TestClient
    headers: dict[str, str]

    def get(self, path: str, **params: Any) -> httpx2.Response:
        return self.client.get(path, params=params, headers=self.headers)

    def post(self, path: str, body: object = None, **params: Any) -> httpx2.Response:
        return self.client.post(path, json=body, params=params, headers=self.headers)

    def ok(self, answer: httpx2.Response, status: int = 200) -> Any:
        assert answer.status_code == status, answer.text
        return answer.json()

    def create_type(self, **body: Any) -> dict[str, Any]:
        created: dict[str, Any] = self.ok(self.post("/api/activity-types", body), 201)
        return created

    def rejected(self, **params: Any) -> list[dict[str, Any]]:
        params.setdefault("limit", 1000)
        data: list[dict[str, Any]] = self.ok(self.get("/api/rejected-activities", **params))["data"]
        return data

    def rejected_one(self, rejected_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.ok(self.get(f"/api/rejected-activities/{rejected_id}"))
        return found

    def replay_one(self, rejected_id: str, **params: Any) -> httpx2.Response:
        return self.post(f"/api/rejected-activities/{rejected_id}/replay", **params)

    def replay(self, **body: Any) -> dict[str, Any]:
        report: dict[str, Any] = self.ok(self.post("/api/rejected-activities/replay", body))
        return report

    def activities(self, **params: Any) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self.ok(self.get("/api/activities", limit=1000, **params))[
            "data"
        ]
        return data


@pytest.fixture
def admin(client: TestClient, admin_headers: dict[str, str]) -> Admin:
    return Admin(client, admin_headers)


def count(hub: Hub, table: sa.Table) -> int:
    with hub.store.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def snapshot(hub: Hub) -> dict[str, Any]:
    """Everything a replay could write."""
    with hub.store.read() as conn:
        return {
            table.name: sorted(
                (tuple(str(v) for v in row) for row in conn.execute(sa.select(table))),
            )
            for table in (activities, activity_rollups, field_violations, rejected_activities)
        }


def reject_ids(
    tracker: Tracker, admin: Admin, sent: list[Any], contact: str | None = None
) -> list[str]:
    """Post activities that are all refused; the ids of their rejected rows."""
    results = tracker.log(sent, contact)
    assert all(r["status"] >= 400 for r in results), results
    # The newest rows are this request's.
    return [r["id"] for r in admin.rejected(limit=len(sent))]


# -- listing and reading ----------------------------------------------------------------------


def test_rejected_activities_are_listed_by_type_reason_channel_and_time(
    make_tracker: Callable[..., Tracker], admin: Admin, expect_error: ErrorCheck
) -> None:
    web, app = make_tracker(), make_tracker()
    admin.create_type(
        name="Webinar", code_name="webinar", fields=[{"name": "n", "type": "integer"}]
    )
    web.log([{"type": "custom_nope"}, {"type": "webinar", "fields": {"x": 1}}])
    app.log([{"type": "webinar", "fields": {"n": "1"}}])
    app.log([{"type": "custom_nope", "value": "again"}, {"type": "click"}])

    every = admin.rejected()
    assert len(every) == 5
    stamps = [dt.datetime.fromisoformat(r["received_at"]) for r in every]
    assert stamps == sorted(stamps, reverse=True)
    assert {r["reason"] for r in every} == {
        "activity_type_not_found",
        "unknown_field",
        "field_type_mismatch",
        "missing_field",
    }

    def reasons(**params: Any) -> list[str]:
        return sorted(r["reason"] for r in admin.rejected(**params))

    assert reasons(type="webinar") == ["field_type_mismatch", "unknown_field"]
    assert reasons(reason="activity_type_not_found") == ["activity_type_not_found"] * 2
    assert reasons(channel=str(web.channel.id)) == ["activity_type_not_found", "unknown_field"]
    assert reasons(channel=str(app.channel.id), type="custom_nope") == ["activity_type_not_found"]
    assert reasons(type="click", reason="missing_field") == ["missing_field"]
    assert reasons(reason="nothing_like_it") == []

    # Time bounds received_at: since inclusive, until exclusive.
    third = min(s for s in stamps if s > min(stamps))
    assert len(admin.rejected(since=third.isoformat())) == 3
    assert len(admin.rejected(until=third.isoformat())) == 2
    assert len(admin.rejected(since=third.isoformat(), until=max(stamps).isoformat())) == 1
    expect_error(
        admin.get("/api/rejected-activities", since="2026-01-01T00:00:00"),
        400,
        "invalid_field",
        "since",
    )

    # Cursor paging.
    first = admin.ok(admin.get("/api/rejected-activities", limit=2))
    second = admin.ok(admin.get("/api/rejected-activities", limit=2, cursor=first["next"]))
    third_page = admin.ok(admin.get("/api/rejected-activities", limit=2, cursor=second["next"]))
    assert third_page["next"] is None
    paged = [r["id"] for r in first["data"] + second["data"] + third_page["data"]]
    assert paged == [r["id"] for r in every]


def test_a_rejected_activity_is_read_with_its_payload_as_sent(
    tracker: Tracker, admin: Admin, expect_error: ErrorCheck
) -> None:
    contact = tracker.new_contact()
    sent = {
        "Type": "custom_nope",
        "value": "5000",
        "fields": {"amount": "50000.10", "nested": [1, {"a": None}], "f": 1.5},
        "occurredAt": "2026-01-31T12:00:00+01:00",
    }
    [result] = tracker.log([sent], contact)
    [listed] = admin.rejected()
    one = admin.rejected_one(listed["id"])
    assert one == listed
    assert one["payload"] == sent
    assert one["reason"] == result["error"]["code"] == "activity_type_not_found"
    assert one["status"] == 404
    assert one["message"] == result["error"]["message"]
    assert one["field"] == "type"
    assert one["type"] == "custom_nope"
    assert one["channel"] == str(tracker.channel.id)
    assert one["contact"] == contact
    assert one["source"] == "tracking"
    assert one["replayed_at"] is None
    assert one["replay_outcome"] is None
    assert one["replayed_activity_id"] is None
    expect_error(admin.get(f"/api/rejected-activities/{uuid.uuid4()}"), 404, "not_found")
    expect_error(admin.get("/api/rejected-activities/not-a-uuid"), 404, "not_found")
    expect_error(admin.replay_one(str(uuid.uuid4())), 404, "not_found")


# -- replaying one ---------------------------------------------------------------------------


def test_replaying_one_stores_it_once_under_its_id(
    tracker: Tracker, admin: Admin, hub: Hub, expect_error: ErrorCheck
) -> None:
    contact = tracker.new_contact()
    [rejected_id] = reject_ids(
        tracker,
        admin,
        [{"type": "custom_loan", "value": "5000", "occurredAt": "2026-01-31T12:00:00+01:00"}],
        contact,
    )

    # Still failing: reported, recorded, and it can be replayed again later.
    report = admin.ok(admin.replay_one(rejected_id))
    assert (report["matched"], report["stored"], report["duplicates"]) == (1, 0, 0)
    assert report["still_rejected"] == {"activity_type_not_found": 1}
    assert report["items"] == [
        {
            "id": rejected_id,
            "outcome": "activity_type_not_found",
            "activity_id": None,
            "status": 404,
        }
    ]
    row = admin.rejected_one(rejected_id)
    assert row["replay_outcome"] == "activity_type_not_found"
    assert row["replayed_at"] is not None
    assert row["replayed_activity_id"] is None
    assert count(hub, activities) == 0

    admin.create_type(name="Loan", code_name="custom_loan")
    before = snapshot(hub)
    report = admin.ok(admin.replay_one(rejected_id, dry_run="true"))
    assert (report["dry_run"], report["matched"], report["stored"]) == (True, 1, 1)
    assert report["still_rejected"] == {}
    assert snapshot(hub) == before

    report = admin.ok(admin.replay_one(rejected_id))
    assert (report["dry_run"], report["stored"]) == (False, 1)
    assert report["items"] == [
        {"id": rejected_id, "outcome": "stored", "activity_id": rejected_id, "status": 202}
    ]
    [stored] = admin.activities(contact=contact)
    assert stored["id"] == rejected_id
    assert (stored["type"], stored["value"], stored["title"]) == (
        "custom_loan",
        "5000",
        "Loan '5000'",
    )
    assert stored["channel"] == str(tracker.channel.id)
    # The time it was sent with, not the time of the replay.
    assert stored["occurred_at"] == "2026-01-31T11:00:00Z"
    row = admin.rejected_one(rejected_id)
    assert (row["replay_outcome"], row["replayed_activity_id"]) == ("stored", rejected_id)
    replayed_at = dt.datetime.fromisoformat(row["replayed_at"])
    assert replayed_at >= dt.datetime.fromisoformat(row["received_at"])

    # Again: refused, and nothing is stored twice.
    error = expect_error(admin.replay_one(rejected_id), 409, "conflict")
    assert rejected_id in error["message"]
    expect_error(admin.replay_one(rejected_id, dry_run="true"), 409, "conflict")
    report = admin.replay(ids=[rejected_id])
    assert (report["matched"], report["stored"], report["items"]) == (0, 0, [])
    assert count(hub, activities) == 1
    assert admin.rejected_one(rejected_id)["replayed_at"] == row["replayed_at"]


def test_a_replay_without_occurred_at_keeps_the_original_received_time(
    tracker: Tracker, admin: Admin
) -> None:
    contact = tracker.new_contact()
    [rejected_id] = reject_ids(tracker, admin, [{"type": "custom_later"}], contact)
    received = admin.rejected_one(rejected_id)["received_at"]
    admin.create_type(name="Later", code_name="custom_later")
    assert admin.ok(admin.replay_one(rejected_id))["stored"] == 1
    [stored] = admin.activities(contact=contact)
    assert stored["occurred_at"] == received
    assert dt.datetime.fromisoformat(stored["received_at"]) >= dt.datetime.fromisoformat(received)


def test_replays_of_the_same_rejected_activity_racing_store_it_once(
    tracker: Tracker, admin: Admin, hub: Hub
) -> None:
    [rejected_id] = reject_ids(tracker, admin, [{"type": "custom_race"}])
    admin.create_type(name="Race", code_name="custom_race")
    with hub.store.read() as conn:
        row = conn.execute(
            sa.select(rejected_activities).where(rejected_activities.c.id == uuid.UUID(rejected_id))
        ).one()
    # Two replays that both read the row before either stored it.
    first = hub.replay._replay([row], dry_run=False)
    second = hub.replay._replay([row], dry_run=False)
    assert (first.stored, second.stored, second.duplicates) == (1, 0, 1)
    assert [a["id"] for a in admin.activities()] == [rejected_id]
    assert admin.rejected_one(rejected_id)["replayed_activity_id"] == rejected_id


# -- replaying many --------------------------------------------------------------------------


def test_replaying_a_filtered_set_with_a_dry_run_first(
    make_tracker: Callable[..., Tracker], admin: Admin, hub: Hub, expect_error: ErrorCheck
) -> None:
    web, app = make_tracker(), make_tracker()
    web.log([{"type": "custom_a", "value": str(i)} for i in range(3)])
    web.log([{"type": "custom_b"}, {"type": "click"}])
    app.log([{"type": "custom_a", "value": "app"}])
    admin.create_type(name="A", code_name="custom_a")

    before = snapshot(hub)
    report = admin.replay(reason="activity_type_not_found", dry_run=True)
    assert report["dry_run"] is True
    assert (report["matched"], report["stored"], report["duplicates"]) == (5, 4, 0)
    assert report["still_rejected"] == {"activity_type_not_found": 1}
    assert len(report["items"]) == 5
    assert snapshot(hub) == before

    # Narrower sets: by type, channel, ids, limit; a dry run always.
    def would_store(**body: Any) -> tuple[int, int]:
        found = admin.replay(dry_run=True, **body)
        return found["matched"], found["stored"]

    assert would_store(type="custom_a") == (4, 4)
    assert would_store(type="custom_a", channel=str(app.channel.id)) == (1, 1)
    assert would_store(channel=str(web.channel.id)) == (5, 3)
    assert would_store(reason="activity_type_not_found", limit=2) == (2, 2)
    ids = [r["id"] for r in admin.rejected(type="custom_b")]
    assert would_store(ids=ids) == (1, 0)
    assert snapshot(hub) == before

    report = admin.replay(channel=str(web.channel.id))
    assert (report["matched"], report["stored"]) == (5, 3)
    assert report["still_rejected"] == {"activity_type_not_found": 1, "missing_field": 1}
    stored_ids = {i["activity_id"] for i in report["items"] if i["outcome"] == "stored"}
    assert {a["id"] for a in admin.activities(type="custom_a")} == stored_ids
    assert all(i["activity_id"] == i["id"] for i in report["items"] if i["outcome"] == "stored")

    # Stored ones are skipped from now on; the rest can still be replayed.
    report = admin.replay(reason="activity_type_not_found")
    assert (report["matched"], report["stored"]) == (2, 1)
    report = admin.replay(reason="activity_type_not_found")
    assert (report["matched"], report["stored"]) == (1, 0)
    assert len(admin.activities(type="custom_a")) == 4
    assert count(hub, activities) == 4

    expect_error(
        admin.post("/api/rejected-activities/replay", {"dry_run": True}), 400, "missing_field"
    )
    expect_error(
        admin.post(
            "/api/rejected-activities/replay", {"reason": "x", "since": "2026-01-01T00:00:00"}
        ),
        400,
        "invalid_field",
        "since",
    )
    expect_error(
        admin.post("/api/rejected-activities/replay", {"reason": "x", "limit": 0}),
        400,
        "invalid_field",
    )
    expect_error(
        admin.post("/api/rejected-activities/replay", {"reason": "x", "color": "red"}),
        400,
        "unknown_field",
    )


def test_replaying_by_time(tracker: Tracker, admin: Admin) -> None:
    contact = tracker.new_contact()
    for i in range(3):
        tracker.log([{"type": "custom_t", "value": str(i)}], contact)
    stamps = sorted(r["received_at"] for r in admin.rejected())
    assert len(set(stamps)) == 3
    admin.create_type(name="T", code_name="custom_t")
    report = admin.replay(reason="activity_type_not_found", since=stamps[1], dry_run=True)
    assert (report["matched"], report["stored"]) == (2, 2)
    report = admin.replay(reason="activity_type_not_found", until=stamps[1])
    assert (report["matched"], report["stored"]) == (1, 1)
    assert [a["value"] for a in admin.activities()] == ["0"]


def test_a_field_added_later_lets_its_activities_through(tracker: Tracker, admin: Admin) -> None:
    created = admin.create_type(
        name="Loan", code_name="custom_loan", fields=[{"name": "amount", "type": "decimal"}]
    )
    contact = tracker.new_contact()
    tracker.log(
        [
            {"type": "custom_loan", "fields": {"amount": "1.5", "years": 3}},
            {"type": "custom_loan", "fields": {"amount": True}},
        ],
        contact,
    )
    fields = [*created["fields"], {"name": "years", "type": "integer"}]
    answer = admin.client.patch(
        f"/api/activity-types/{created['id']}", json={"fields": fields}, headers=admin.headers
    )
    assert answer.status_code == 200, answer.text
    report = admin.replay(type="custom_loan")
    assert report["stored"] == 1
    assert report["still_rejected"] == {"field_type_mismatch": 1}
    [stored] = admin.activities(contact=contact)
    assert stored["fields"] == {"amount": "1.5", "years": 3}
    assert stored["value"] is None


def test_a_replayed_client_id_already_stored_is_a_duplicate(
    tracker: Tracker, admin: Admin, hub: Hub
) -> None:
    contact = tracker.new_contact()
    [rejected_id] = reject_ids(tracker, admin, [{"type": "custom_once", "id": "order-1"}], contact)
    admin.create_type(name="Once", code_name="custom_once")
    [stored] = tracker.log([{"type": "custom_once", "id": "order-1"}], contact)
    assert stored["status"] == 202
    report = admin.replay(ids=[rejected_id])
    assert (report["stored"], report["duplicates"]) == (0, 1)
    assert report["items"] == [
        {"id": rejected_id, "outcome": "duplicate", "activity_id": stored["id"], "status": 208}
    ]
    row = admin.rejected_one(rejected_id)
    assert (row["replay_outcome"], row["replayed_activity_id"]) == ("duplicate", stored["id"])
    assert admin.replay(ids=[rejected_id])["matched"] == 0
    assert count(hub, activities) == 1


def test_a_consent_given_later_lets_activities_through(
    make_tracker: Callable[..., Tracker], admin: Admin
) -> None:
    admin.ok(
        admin.post(
            "/api/consents",
            {
                "code_name": "tracking",
                "display_name": "Tracking",
                "texts": {"en": {"short_text": "Track me", "full_text": "<p>Track me</p>"}},
            },
        ),
        201,
    )
    tracker = make_tracker(tracking_consent="tracking", enforce_consent=True)
    contact = tracker.new_contact()
    [result] = tracker.log([{"type": "click", "value": "buy"}], contact)
    assert (result["status"], result["error"]["code"]) == (403, "consent_required")
    [rejected] = admin.rejected(reason="consent_required")

    assert admin.replay(reason="consent_required", dry_run=True)["stored"] == 0
    agreed = tracker.client.post(
        f"/tracking/contacts/{contact}/consents/tracking",
        json={"agree": True},
        headers=tracker.headers,
    )
    assert agreed.status_code == 200, agreed.text
    report = admin.replay(reason="consent_required")
    assert report["stored"] == 1
    [stored] = admin.activities(contact=contact)
    assert stored["id"] == rejected["id"]
    assert stored["consent_agreed"] is True


def test_a_dry_run_changes_no_contact(tracker: Tracker, admin: Admin, hub: Hub) -> None:
    contact = tracker.new_contact()
    [rejected_id] = reject_ids(
        tracker,
        admin,
        [
            {
                "type": "custom_signup",
                "fields": {"str::email": "ann@example.com", "str::first": "Ann", "bonus": 1},
            }
        ],
        contact,
    )
    admin.create_type(
        name="Signup",
        code_name="custom_signup",
        unknown_fields="accept_and_flag",
    )
    before = snapshot(hub)
    report = admin.replay(ids=[rejected_id], dry_run=True)
    assert report["stored"] == 1
    assert snapshot(hub) == before
    assert admin.ok(admin.get(f"/api/contacts/{contact}"))["email"] is None

    report = admin.replay(ids=[rejected_id])
    assert report["stored"] == 1
    person = admin.ok(admin.get(f"/api/contacts/{contact}"))
    assert (person["email"], person["first_name"]) == ("ann@example.com", "Ann")
    [stored] = admin.activities(contact=contact)
    assert [(f["field"], f["code"]) for f in stored["flags"]] == [("bonus", "unknown_field")]
    violations = admin.ok(admin.get(f"/api/activity-types/{stored_type(admin)}/violations"))
    assert [(v["field"], v["count"]) for v in violations] == [("bonus", 1)]


def stored_type(admin: Admin) -> str:
    types = admin.ok(admin.get("/api/activity-types", limit=1000))["data"]
    [found] = [t["id"] for t in types if t["code_name"] == "custom_signup"]
    return str(found)


def test_an_activity_too_large_stays_rejected(tracker: Tracker, admin: Admin) -> None:
    contact = tracker.new_contact()
    [rejected_id] = reject_ids(
        tracker,
        admin,
        [{"type": "click", "value": "v" * 1900, "fields": {"p": "x" * 16_000}}],
        contact,
    )
    assert admin.rejected_one(rejected_id)["reason"] == "payload_too_large"
    report = admin.ok(admin.replay_one(rejected_id))
    assert report["still_rejected"] == {"payload_too_large": 1}

"""The personal data routes of the admin API (waypost/api/personal_data.py): a contact's export
and erasure, suppressions and the erasure log, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest
from starlette.testclient import TestClient

from waypost.hub import Hub

if TYPE_CHECKING:
    from tests.admin_support import UI
    from tests.conftest import ErrorCheck
    from tests.contact_data_support import World, make_person, make_world, rows_naming
else:
    from admin_support import UI
    from contact_data_support import World, make_person, make_world, rows_naming


@pytest.fixture
def world(client: TestClient, hub: Hub) -> World:
    return make_world(client, hub)


def test_export_is_one_json_document_with_everything_about_the_contact(world: World) -> None:
    person = make_person(world, "ann")
    make_person(world, "bob")
    answer = world.client.get(f"/api/contacts/{person.contact}/export", headers=world.admin)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    disposition = answer.headers["content-disposition"]
    assert disposition == f'attachment; filename="contact-{person.contact}.json"'
    document = answer.json()
    assert set(document) == {
        "exported_at", "contact", "merged_contacts", "consents", "group_memberships",
        "group_history", "merges", "playbook_runs", "activities", "rejected_activities",
    }  # fmt: skip
    contact = document["contact"]
    assert (contact["id"], contact["email"], contact["first_name"]) == (
        str(person.contact), person.email, "ann"
    )  # fmt: skip
    assert contact["external_ids"] == {
        "anonymous_id": person.anonymous_ids, "user_id": [person.user_id]
    }  # fmt: skip
    assert [c["id"] for c in document["merged_contacts"]] == [str(m) for m in person.merged]
    assert [c["agreed"] for c in document["consents"]] == [True, False, True]
    assert [g["name"] for g in document["group_memberships"]] == [
        "Loan users ann",
        "Loan users bob",
    ]
    assert {e["entered"] for e in document["group_history"]} == {True}
    [merge] = document["merges"]
    assert (merge["source"], merge["target"], merge["reason"]) == (
        str(person.merged[0]), str(person.contact), "segment_identify"
    )  # fmt: skip
    assert [r["event"] for r in document["playbook_runs"]] == ["activity"]
    assert len(document["activities"]) == person.activities
    assert {a["contact"] for a in document["activities"]} == {str(person.contact)}
    assert sorted(r["reason"] for r in document["rejected_activities"]) == [
        "activity_type_not_found", "missing_field"
    ]  # fmt: skip


def test_export_streams_many_activities_in_pages(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from waypost.services import contact_export

    monkeypatch.setattr(contact_export, "PAGE", 7)
    person = make_person(world, "cyd", activities=30)
    answer = world.client.get(f"/api/contacts/{person.contact}/export", headers=world.admin)
    ids = [a["id"] for a in answer.json()["activities"]]
    assert len(ids) == len(set(ids)) == person.activities


def test_erase_answers_what_it_deleted_and_the_log_names_the_key(world: World, hub: Hub) -> None:
    person = make_person(world, "dee")
    answer = world.client.post(f"/api/contacts/{person.contact}/erase", headers=world.admin)
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert set(report) == {"erasure", "contacts", "deleted", "suppressions", "erased_at"}
    assert report["contacts"] == 2
    assert report["deleted"]["activities"] == person.activities
    assert list(rows_naming(hub, person)) == []
    log = world.client.get("/api/erasures", headers=world.admin).json()
    [entry] = log["data"]
    assert entry["id"] == report["erasure"]
    assert entry["actor_kind"] == "key"
    assert entry["actor_id"] is not None
    assert log["next"] is None
    again = world.client.post(f"/api/contacts/{person.contact}/erase", headers=world.admin)
    assert again.status_code == 404


def test_bad_identifiers(world: World, expect_error: ErrorCheck) -> None:
    person = make_person(world, "eve")
    for method, tail in (("GET", "export"), ("POST", "erase")):
        url = "/api/contacts/{}/" + tail
        call = world.client.request
        expect_error(call(method, url.format("not-a-uuid"), headers=world.admin), 404, "not_found")
        unknown = call(method, url.format(uuid.uuid4()), headers=world.admin)
        expect_error(unknown, 404, "contact_not_found")
        merged = call(method, url.format(person.merged[0]), headers=world.admin)
        assert str(person.contact) in expect_error(merged, 409, "conflict")["message"]
    expect_error(
        world.client.delete(f"/api/suppressions/{uuid.uuid4()}", headers=world.admin),
        404,
        "not_found",
    )
    expect_error(
        world.client.get("/api/suppressions?kind=" + "x" * 40, headers=world.admin),
        400,
        "invalid_field",
        "kind",
    )
    # A kind no suppression can have is refused, as GET /api/keys?access=x is.
    bogus = world.client.get("/api/suppressions?kind=bogus", headers=world.admin)
    assert "user_id" in expect_error(bogus, 400, "invalid_field", "kind")["message"]


def test_every_kind_an_erasure_suppresses_can_be_asked_for() -> None:
    from typing import get_args

    from waypost.domain.suppressions import SuppressionKind
    from waypost.services.collectors import MARKETO_IDS, POSTHOG_IDS, SEGMENT_IDS, SNOWPLOW_IDS

    kinds = {"email", "contact", "snowplow_nuid"}
    for ids in (SEGMENT_IDS, POSTHOG_IDS, SNOWPLOW_IDS, MARKETO_IDS):
        kinds |= {ids.user, ids.anonymous}
    assert kinds == set(get_args(SuppressionKind))


def test_suppressions_are_listed_found_by_value_and_lifted(world: World) -> None:
    person = make_person(world, "fay")
    world.client.post(f"/api/contacts/{person.contact}/erase", headers=world.admin)
    listed = world.client.get("/api/suppressions?limit=2", headers=world.admin).json()
    assert len(listed["data"]) == 2
    assert set(listed["data"][0]) == {"id", "kind", "erasure", "created_at"}
    rest = world.client.get(
        f"/api/suppressions?cursor={listed['next']}", headers=world.admin
    ).json()
    assert len(rest["data"]) == 4
    found = world.client.get(
        "/api/suppressions", params={"value": person.user_id}, headers=world.admin
    ).json()["data"]
    assert [s["kind"] for s in found] == ["user_id"]
    assert world.segment("track", {"userId": person.user_id, "event": "loan_calc"}) == 403
    lifted = world.client.delete(f"/api/suppressions/{found[0]['id']}", headers=world.admin)
    assert lifted.status_code == 204
    assert world.segment("track", {"userId": person.user_id, "event": "loan_calc"}) == 200


def test_only_admins_see_personal_data(
    world: World, marketer_ui: UI, admin_ui: UI, expect_error: ErrorCheck
) -> None:
    person = make_person(world, "gus")
    for method, path in (
        ("GET", f"/api/contacts/{person.contact}/export"),
        ("POST", f"/api/contacts/{person.contact}/erase"),
        ("GET", "/api/suppressions"),
        ("GET", "/api/erasures"),
    ):
        expect_error(marketer_ui.api(method, path), 403, "forbidden")
    # A marketer still reads the contact itself.
    assert marketer_ui.api("GET", f"/api/contacts/{person.contact}").status_code == 200
    assert admin_ui.api("GET", f"/api/contacts/{person.contact}/export").status_code == 200
    no_token = admin_ui.client.post(f"/api/contacts/{person.contact}/erase")
    expect_error(no_token, 403, "forbidden")
    erased = admin_ui.api("POST", f"/api/contacts/{person.contact}/erase")
    assert erased.status_code == 200, erased.text
    [entry] = admin_ui.api("GET", "/api/erasures").json()["data"]
    assert (entry["actor_kind"], entry["actor_id"]) == ("user", str(admin_ui.user.id))

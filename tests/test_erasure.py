"""Erasing a contact's data (waypost/services/erasure.py), on SQLite and PostgreSQL:
docs/data-lifecycle.md#a-contacts-data."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from waypost.errors import ApiError
from waypost.hub import Hub
from waypost.pagination import ListQuery
from waypost.services.erasure import KINDS, Actor
from waypost.services.suppressions import SuppressionQuery
from waypost.store.schema import (
    activities,
    activity_daily_counts,
    activity_rollups,
    contact_groups,
    contacts,
    erasures,
    rejected_activities,
    suppressions,
)

if TYPE_CHECKING:
    from tests.contact_data_support import World, make_person, make_world, rows_naming
else:
    from contact_data_support import World, make_person, make_world, rows_naming

ADMIN = Actor("key", uuid.UUID(int=7))


@pytest.fixture
def world(client: TestClient, hub: Hub) -> World:
    return make_world(client, hub)


def count(hub: Hub, table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
    with hub.store.read() as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()
        )


def daily_total(hub: Hub) -> int:
    with hub.store.read() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(activity_daily_counts.c.count), 0))
            ).scalar_one()
        )


def test_erasure_leaves_no_row_naming_the_person(world: World, hub: Hub) -> None:
    person = make_person(world, "ann")
    bystander = make_person(world, "bob")
    # Bob's activities reach Ann's group (made before them) through the group updater.
    assert hub.group_updates.wait_idle()
    before = {t: count(hub, t) for t in (activities, rejected_activities, contacts)}
    daily_before = daily_total(hub)
    assert list(rows_naming(hub, person)), "the person's data should be there to erase"

    report = hub.erasure.erase(person.contact, ADMIN)

    assert list(rows_naming(hub, person)) == []
    assert report.contacts == 2
    assert list(report.deleted) == list(KINDS)
    deleted = report.deleted
    assert deleted["contacts"] == 2
    # Three custom activities, the data input, and the visitor's page visit (merged in).
    assert deleted["activities"] == person.activities
    assert deleted["rejected_activities"] == 2
    assert deleted["consent_agreements"] == 3
    assert deleted["external_ids"] == 3
    # Each person made a group of everyone who used the calculator: both hold the person.
    assert deleted["group_memberships"] == 2
    assert deleted["group_history"] >= 1
    assert deleted["playbook_runs"] == 1
    assert deleted["webhook_messages"] == 1
    assert deleted["webhook_attempts"] == 1
    assert deleted["merges"] == 1
    assert deleted["browser_consent_requests"] == 1
    assert deleted["claims"] == 1
    assert deleted["rollups"] >= 2
    # Only the person's rows went; the bystander is whole.
    assert count(hub, activities) == before[activities] - deleted["activities"]
    assert count(hub, rejected_activities) == before[rejected_activities] - 2
    assert count(hub, contacts) == before[contacts] - 2
    assert list(rows_naming(hub, bystander))
    assert (
        count(hub, activities, activities.c.contact_id == bystander.contact) == bystander.activities
    )
    # Reports lose the person's counts with the rollups.
    assert daily_total(hub) == daily_before - deleted["activities"]
    with hub.store.read() as conn:
        groups = {r.name: r.member_count for r in conn.execute(sa.select(contact_groups))}
        claimant = conn.execute(
            sa.select(contacts.c.attributes).where(contacts.c.id == person.claimant)
        ).scalar_one()
        rollups = conn.execute(
            sa.select(sa.func.count())
            .select_from(activity_rollups)
            .where(activity_rollups.c.contact_id.in_(person.ids))
        ).scalar_one()
    assert groups == {"Loan users ann": 1, "Loan users bob": 1}
    assert claimant == {}
    assert rollups == 0


def test_erasure_is_logged_and_suppresses_without_personal_data(world: World, hub: Hub) -> None:
    person = make_person(world, "cyd")
    report = hub.erasure.erase(person.contact, Actor("user", uuid.UUID(int=9)))
    # An email, a user id, two anonymous ids and two contact ids.
    assert report.suppressions == 6
    assert count(hub, suppressions, suppressions.c.erasure_id == report.erasure) == 6
    log = hub.suppressions.erasures_page(ListQuery())
    [entry] = log.data
    assert (entry.id, entry.actor_kind, entry.actor_id) == (
        report.erasure,
        "user",
        uuid.UUID(int=9),
    )
    assert entry.deleted == report.deleted
    assert entry.contacts == 2
    with hub.store.read() as conn:
        kinds = sorted(conn.execute(sa.select(suppressions.c.kind)).scalars())
        logged = conn.execute(sa.select(erasures)).one()
    assert kinds == ["anonymous_id", "anonymous_id", "contact", "contact", "email", "user_id"]
    assert person.email.lower() not in str(logged._mapping).lower()
    for word in ("value", "digest"):
        assert all(word not in str(s) for s in hub.suppressions.list_page(SuppressionQuery()).data)


def test_the_next_activity_naming_the_person_is_refused_and_stored_nowhere(
    world: World, hub: Hub
) -> None:
    person = make_person(world, "dee")
    hub.erasure.erase(person.contact, ADMIN)
    before = (count(hub, activities), count(hub, rejected_activities), count(hub, contacts))
    fresh = world.new_contact()
    before = (before[0], before[1], before[2] + 1)
    # A data input naming the email, in any case; the erased contact's own id; Segment.
    datainput = {
        "type": "datainput",
        "value": "form",
        "contactFields": {"ContactEmail": person.email.upper()},
    }
    [refused] = world.log(fresh, [datainput])
    assert (refused["status"], refused["error"]["code"]) == (403, "contact_erased")
    results = world.log(person.contact, [{"type": "loan_calc", "value": "1"}, {"type": "nope"}])
    assert [r["status"] for r in results] == [403, 403]
    assert {r["error"]["code"] for r in results} == {"contact_erased"}
    assert world.segment("track", {"userId": person.user_id, "event": "loan_calc"}) == 403
    assert (
        world.segment("identify", {"anonymousId": "someone", "traits": {"email": person.email}})
        == 403
    )
    assert (
        world.segment("alias", {"previousId": person.anonymous_ids[0], "userId": "new-one"}) == 403
    )
    assert (
        world.segment(
            "batch", {"batch": [{"type": "track", "userId": person.user_id, "event": "x"}]}
        )
        == 403
    )
    assert (count(hub, activities), count(hub, rejected_activities), count(hub, contacts)) == before
    assert list(rows_naming(hub, person)) == []
    # Beside messages of others, those are stored, and the answer is Segment's 200.
    batch = [
        {"type": "track", "userId": person.user_id, "event": "loan_calc"},
        {"type": "track", "userId": "someone-else", "event": "loan_calc"},
    ]
    assert world.segment("batch", {"batch": batch}) == 200
    assert count(hub, activities) == before[0] + 1
    assert list(rows_naming(hub, person)) == []


def test_a_lifted_suppression_lets_the_identity_in_again(world: World, hub: Hub) -> None:
    person = make_person(world, "eve")
    hub.erasure.erase(person.contact, ADMIN)
    found = hub.suppressions.list_page(SuppressionQuery(value=person.email.upper()))
    [suppression] = found.data
    assert suppression.kind == "email"
    assert (
        hub.suppressions.list_page(SuppressionQuery(value=person.email, kind="user_id")).data == []
    )
    hub.suppressions.lift(suppression.id)
    fresh = world.new_contact()
    datainput = {
        "type": "datainput",
        "value": "form",
        "contactFields": {"ContactEmail": person.email},
    }
    assert world.log(fresh, [datainput])[0]["status"] == 202
    # The user id is still suppressed.
    assert world.segment("track", {"userId": person.user_id, "event": "loan_calc"}) == 403


def test_a_merged_contact_or_an_unknown_one_is_not_erased(world: World, hub: Hub) -> None:
    person = make_person(world, "fay")
    with pytest.raises(ApiError) as merged:
        hub.erasure.erase(person.merged[0], ADMIN)
    assert (merged.value.status, merged.value.code) == (409, "conflict")
    assert str(person.contact) in merged.value.message
    with pytest.raises(ApiError) as unknown:
        hub.erasure.erase(uuid.uuid4(), ADMIN)
    assert (unknown.value.status, unknown.value.code) == (404, "contact_not_found")
    assert count(hub, erasures) == 0
    assert list(rows_naming(hub, person))


def test_erase_a_contact_with_10000_activities_and_merged_contacts(world: World, hub: Hub) -> None:
    person = make_person(world, "gus")
    # Two more visitors with activities of their own, merged into the person.
    for n in range(2):
        visitor = f"visitor-{n}-of-gus"
        page = {"anonymousId": visitor, "properties": {"url": f"https://bank.example/{n}"}}
        assert world.segment("page", page) == 200
        person.merged.append(world.contact_of("anonymous_id", visitor))
        assert world.segment("identify", {"userId": person.user_id, "anonymousId": visitor}) == 200
        person.anonymous_ids.append(visitor)
    for start in range(0, 10_000, 1000):
        activities_ = [{"type": "loan_calc", "value": str(n)} for n in range(start, start + 1000)]
        assert all(r["status"] == 202 for r in world.log(person.contact, activities_))
    held = count(hub, activities, activities.c.contact_id == person.contact)
    assert held == 10_000 + person.activities + 2
    hub.erasure.batch = 3000  # several transactions for the activities
    report = hub.erasure.erase(person.contact, ADMIN)
    assert report.contacts == 4
    assert report.deleted["activities"] == held
    assert count(hub, activities) == 0
    assert daily_total(hub) == 0
    assert list(rows_naming(hub, person)) == []

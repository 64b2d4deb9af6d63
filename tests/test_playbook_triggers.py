"""Playbooks firing, on both databases: each trigger kind writes a run and its outbox messages
with the right body in the transaction of what fired it; each cadence; the audience at trigger
time; field filters; disabled playbooks and endpoints; nothing left by a rollback."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Connection
from starlette.testclient import TestClient

from waypost.clock import FakeClock
from waypost.hub import Hub
from waypost.services.activity_types import ActivityType
from waypost.settings import Settings
from waypost.store import Store, make_engine
from waypost.store.schema import activity_rollups, contacts, playbook_runs, webhook_endpoints

if TYPE_CHECKING:
    from tests.conftest import ErrorCheck, Tracker
    from tests.group_support import Groups, make_groups
    from tests.playbook_support import (
        LOANS,
        Playbooks,
        insert_endpoint,
        loan_trigger,
        messages,
        runs,
    )
else:
    from group_support import Groups, make_groups
    from playbook_support import LOANS, Playbooks, insert_endpoint, loan_trigger, messages, runs

START = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def hub(settings: Settings, clock: FakeClock) -> Iterator[Hub]:
    the_hub = Hub(settings, Store(make_engine(settings)), clock=clock)
    yield the_hub
    the_hub.close()


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
        fields=[
            {"name": "amount", "type": "decimal"},
            {"name": "product", "type": "text"},
        ],
    )


@pytest.fixture
def endpoint(hub: Hub) -> uuid.UUID:
    return insert_endpoint(hub)


def loan(amount: str = "20000.50", **extra: Any) -> dict[str, Any]:
    return {"type": LOANS, "value": "calc", "fields": {"amount": amount}, **extra}


# -- the four trigger kinds --------------------------------------------------------------------


def test_an_activity_writes_a_run_and_its_message_with_the_activity(
    hub: Hub, books: Playbooks, groups: Groups, loans: ActivityType, endpoint: uuid.UUID
) -> None:
    book = books.create(loan_trigger(amount={"gte": "10000"}), endpoint, name="Big loans")
    contact = groups.new_contact()
    groups.data_input(contact, FirstName="Ann", LastName="Lee")
    [small, big] = groups.log(contact, loan("200"), loan("20000.50", url="https://b.example/"))
    [run] = runs(hub)
    assert run["playbook_id"] == uuid.UUID(book["id"])
    assert run["contact_id"] == uuid.UUID(contact)
    assert (run["event"], run["subject"]) == ("activity", big)
    assert run["at"] == START
    [message] = messages(hub)
    assert message["endpoint_id"] == endpoint
    assert message["run_id"] == run["id"]
    assert message["playbook_id"] == run["playbook_id"]
    assert message["contact_id"] == uuid.UUID(contact)
    assert (message["status"], message["event_type"]) == ("pending", "activity.performed")
    assert message["attempts"] == 0
    body = message["data"]
    assert body["type"] == "activity.performed"
    assert body["timestamp"] == "2026-03-01T12:00:00Z"
    assert body["data"]["playbook"] == {"id": book["id"], "name": "Big loans"}
    assert body["data"]["contact"]["id"] == contact
    assert (body["data"]["contact"]["first_name"], body["data"]["contact"]["last_name"]) == (
        "Ann",
        "Lee",
    )
    activity = body["data"]["activity"]
    shown = books.get(f"/api/contacts/{contact}/activities", type=LOANS)["data"][0]
    assert activity == {k: shown[k] for k in activity}
    assert set(activity) >= {"id", "type", "contact", "channel", "title", "value", "url"}
    assert (activity["id"], activity["type"], activity["fields"]) == (
        big,
        LOANS,
        {"amount": "20000.50"},
    )
    assert small not in {r["subject"] for r in runs(hub)}


def test_entering_a_group_fires_its_playbook_in_the_updaters_transaction(
    hub: Hub, books: Playbooks, groups: Groups, loans: ActivityType, endpoint: uuid.UUID
) -> None:
    group = groups.create({"activity": {"type": LOANS}}, "Loan shoppers")
    books.create({"event": "group_entered", "group": group["id"]}, endpoint)
    contact = groups.new_contact()
    groups.log(contact, loan())
    assert hub.group_updates.wait_idle()
    [run] = runs(hub)
    assert (run["event"], run["subject"], run["contact_id"]) == (
        "group_entered",
        group["id"],
        uuid.UUID(contact),
    )
    [message] = messages(hub)
    assert message["event_type"] == "group.entered"
    assert message["data"]["data"]["group"] == {"id": group["id"], "name": "Loan shoppers"}
    assert "activity" not in message["data"]["data"]


def test_leaving_a_group_fires_the_exit_playbook_only(
    hub: Hub, books: Playbooks, groups: Groups, endpoint: uuid.UUID
) -> None:
    group = groups.create({"contact": {"field": "city", "equals": "Brno"}}, "In Brno")
    books.create({"event": "group_exited", "group": group["id"]}, endpoint)
    contact = groups.new_contact()
    groups.data_input(contact, City="Brno")
    groups.wait_member(group["id"], contact)
    assert runs(hub) == []
    groups.data_input(contact, City="Prague")
    groups.wait_member(group["id"], contact, member=False)
    assert hub.group_updates.wait_idle()
    [run] = runs(hub)
    assert (run["event"], run["subject"]) == ("group_exited", group["id"])
    [message] = messages(hub)
    assert message["data"]["type"] == "group.exited"


def test_a_full_computation_fires_for_the_contacts_that_entered(
    hub: Hub, books: Playbooks, groups: Groups, loans: ActivityType, endpoint: uuid.UUID
) -> None:
    ann, bob = groups.new_contact(), groups.new_contact()
    groups.log(ann, loan())
    group = groups.create({"activity": {"type": LOANS, "at_least": 2}})
    assert runs(hub) == []  # a new group's first members did not enter it: it began
    books.create({"event": "group_entered", "group": group["id"]}, endpoint)
    assert groups.patch(group["id"], condition={"activity": {"type": LOANS}}).status_code == 200
    assert [r["contact_id"] for r in runs(hub)] == [uuid.UUID(ann)]
    assert uuid.UUID(bob) not in {m["contact_id"] for m in messages(hub)}


def test_a_condition_change_moving_many_contacts_runs_for_each_once(
    hub: Hub, books: Playbooks, groups: Groups, loans: ActivityType, endpoint: uuid.UUID
) -> None:
    many = sorted(uuid.uuid4() for _ in range(1200))
    now = hub.clock.now()
    with hub.store.write() as conn:
        conn.execute(
            contacts.insert(),
            [{"id": c, "attributes": {}, "created_at": now, "updated_at": now} for c in many],
        )
        conn.execute(
            activity_rollups.insert(),
            [{"contact_id": c, "type_id": loans.id, "day": now.date(), "count": 1} for c in many],
        )
    group = groups.create({"activity": {"type": LOANS, "at_least": 2}})
    books.create(
        {"event": "group_entered", "group": group["id"]},
        endpoint,
        "once",
        audience={"activity": {"type": LOANS}},
    )
    assert groups.patch(group["id"], condition={"activity": {"type": LOANS}}).status_code == 200
    assert sorted(r["contact_id"] for r in runs(hub)) == many
    assert len(messages(hub)) == 1200


def test_agreeing_and_revoking_fire_their_playbooks_once_per_change(
    hub: Hub, books: Playbooks, groups: Groups, endpoint: uuid.UUID
) -> None:
    groups.create_consent("Newsletter")
    agreed = books.create({"event": "consent_agreed", "consent": "Newsletter"}, endpoint)
    revoked = books.create({"event": "consent_revoked", "consent": "Newsletter"}, endpoint)
    contact = groups.new_contact()
    groups.agree(contact, "Newsletter", False)  # nothing agreed yet: nothing revoked
    groups.agree(contact, "Newsletter")
    groups.agree(contact, "Newsletter")  # the same state again
    groups.agree(contact, "Newsletter", False)
    assert [(r["playbook_id"], r["event"], r["subject"]) for r in runs(hub)] == [
        (uuid.UUID(agreed["id"]), "consent_agreed", "Newsletter"),
        (uuid.UUID(revoked["id"]), "consent_revoked", "Newsletter"),
    ]
    first, second = messages(hub)
    assert first["data"]["type"] == "consent.agreed"
    assert first["data"]["data"]["consent"] == {"code_name": "Newsletter", "version": 1}
    assert second["data"]["type"] == "consent.revoked"


# -- cadence -----------------------------------------------------------------------------------


def test_every_time_fires_on_every_event(
    hub: Hub, books: Playbooks, groups: Groups, loans: ActivityType, endpoint: uuid.UUID
) -> None:
    books.create(loan_trigger(), endpoint)
    contact = groups.new_contact()
    groups.log(contact, loan(), loan())
    groups.log(contact, loan())
    assert len(runs(hub)) == 3
    assert len(messages(hub)) == 3


def test_once_fires_once_ever_even_for_two_events_of_one_batch(
    hub: Hub,
    books: Playbooks,
    groups: Groups,
    loans: ActivityType,
    endpoint: uuid.UUID,
    clock: FakeClock,
) -> None:
    books.create(loan_trigger(), endpoint, "once")
    ann, bob = groups.new_contact(), groups.new_contact()
    groups.log(ann, loan(), loan())
    clock.advance(400 * 86400)
    groups.log(ann, loan())
    groups.log(bob, loan())
    assert sorted(r["contact_id"] for r in runs(hub)) == sorted([uuid.UUID(ann), uuid.UUID(bob)])


def test_once_per_seven_days_fires_again_after_seven_days(
    hub: Hub,
    books: Playbooks,
    groups: Groups,
    loans: ActivityType,
    endpoint: uuid.UUID,
    clock: FakeClock,
) -> None:
    books.create(loan_trigger(), endpoint, {"mode": "once_per", "days": 7})
    contact = groups.new_contact()
    groups.log(contact, loan())
    clock.advance(6 * 86400 + 86399)
    groups.log(contact, loan())
    assert len(runs(hub)) == 1
    clock.advance(1)
    groups.log(contact, loan())
    assert [r["at"] for r in runs(hub)] == [START, START + dt.timedelta(days=7)]


# -- audience, filters, disabled ---------------------------------------------------------------


def test_the_audience_is_evaluated_when_the_trigger_fires(
    hub: Hub, books: Playbooks, groups: Groups, loans: ActivityType, endpoint: uuid.UUID
) -> None:
    books.create(
        loan_trigger(),
        endpoint,
        audience={"all": [{"contact": {"field": "city", "equals": "Brno"}}]},
    )
    contact = groups.new_contact()
    groups.log(contact, loan())
    assert runs(hub) == []
    groups.data_input(contact, City="Brno")
    groups.log(contact, loan())
    assert [r["contact_id"] for r in runs(hub)] == [uuid.UUID(contact)]


def test_the_audience_counts_the_activity_that_fired_it(
    hub: Hub, books: Playbooks, groups: Groups, loans: ActivityType, endpoint: uuid.UUID
) -> None:
    books.create(loan_trigger(), endpoint, audience={"activity": {"type": LOANS, "at_least": 2}})
    contact = groups.new_contact()
    groups.log(contact, loan())
    assert runs(hub) == []
    [second] = groups.log(contact, loan())
    assert [r["subject"] for r in runs(hub)] == [second]


def test_an_audience_naming_a_group_reads_its_members(
    hub: Hub, books: Playbooks, groups: Groups, loans: ActivityType, endpoint: uuid.UUID
) -> None:
    vip = groups.create({"contact": {"field": "city", "equals": "Brno"}}, "VIP")
    books.create(loan_trigger(), endpoint, audience={"not": {"group": vip["id"]}})
    inside, outside = groups.new_contact(), groups.new_contact()
    groups.data_input(inside, City="Brno")
    groups.wait_member(vip["id"], inside)
    groups.log(inside, loan())
    groups.log(outside, loan())
    assert [r["contact_id"] for r in runs(hub)] == [uuid.UUID(outside)]


def test_field_filters_decide_which_activities_fire(
    hub: Hub, books: Playbooks, groups: Groups, loans: ActivityType, endpoint: uuid.UUID
) -> None:
    books.create(
        loan_trigger(amount={"gt": "999.99", "lte": 5000}, product={"contains": "car"}),
        endpoint,
    )
    contact = groups.new_contact()
    ids = groups.log(
        contact,
        {"type": LOANS, "fields": {"amount": "1000", "product": "Car loan"}},
        {"type": LOANS, "fields": {"amount": "999.99", "product": "Car loan"}},
        {"type": LOANS, "fields": {"amount": "5000.00", "product": "Mortgage"}},
        {"type": LOANS, "fields": {"amount": "5000.00", "product": "SCARF"}},
        {"type": LOANS, "fields": {"product": "Car"}},
    )
    assert [r["subject"] for r in runs(hub)] == [ids[0], ids[3]]


def test_a_disabled_playbook_does_nothing_until_enabled(
    hub: Hub, books: Playbooks, groups: Groups, loans: ActivityType, endpoint: uuid.UUID
) -> None:
    book = books.create(loan_trigger(), endpoint, enabled=False)
    contact = groups.new_contact()
    groups.log(contact, loan())
    assert runs(hub) == []
    assert books.patch(book["id"], enabled=True).status_code == 200
    groups.log(contact, loan())
    assert len(runs(hub)) == 1
    assert books.patch(book["id"], enabled=False).status_code == 200
    groups.log(contact, loan())
    assert len(runs(hub)) == 1


def test_a_message_for_a_disabled_endpoint_is_kept_failed(
    hub: Hub, books: Playbooks, groups: Groups, loans: ActivityType, endpoint: uuid.UUID
) -> None:
    off = insert_endpoint(hub, enabled=False)
    book = books.create(loan_trigger(), endpoint)
    assert books.patch(book["id"], actions=[
        {"kind": "webhook", "endpoint": str(endpoint)},
        {"kind": "webhook", "endpoint": str(off)},
    ]).status_code == 200  # fmt: skip
    groups.log(groups.new_contact(), loan())
    [run] = runs(hub)
    live, dead = messages(hub)
    assert (live["endpoint_id"], live["status"], live["last_error"]) == (endpoint, "pending", None)
    assert (dead["endpoint_id"], dead["status"], dead["last_error"]) == (
        off,
        "failed",
        "endpoint_disabled",
    )
    assert dead["next_attempt_at"] is None
    assert live["body"] == dead["body"]
    assert live["run_id"] == dead["run_id"] == run["id"]


def test_a_deleted_endpoint_gets_no_message_and_the_run_is_kept(
    hub: Hub, books: Playbooks, groups: Groups, loans: ActivityType, endpoint: uuid.UUID
) -> None:
    books.create(loan_trigger(), endpoint)
    with hub.store.write() as conn:
        conn.execute(webhook_endpoints.delete().where(webhook_endpoints.c.id == endpoint))
    groups.log(groups.new_contact(), loan())
    assert len(runs(hub)) == 1
    assert messages(hub) == []


# -- transactions ------------------------------------------------------------------------------


def test_the_dispatcher_is_woken_once_the_messages_committed(
    hub: Hub, books: Playbooks, groups: Groups, loans: ActivityType, endpoint: uuid.UUID
) -> None:
    books.create(loan_trigger(), endpoint)
    woken: list[int] = []

    def wake() -> None:
        woken.append(len(messages(hub)))

    hub.playbook_triggers.wake = wake
    groups.log(groups.new_contact(), loan(), loan())
    assert woken == [2]


def test_a_rollback_leaves_no_run_and_no_message(
    hub: Hub,
    books: Playbooks,
    groups: Groups,
    loans: ActivityType,
    endpoint: uuid.UUID,
    tracker: Tracker,
    expect_error: ErrorCheck,
) -> None:
    books.create(loan_trigger(), endpoint)
    groups.create_consent("Newsletter")
    books.create({"event": "consent_agreed", "consent": "Newsletter"}, endpoint)
    contact = groups.new_contact()
    woken: list[bool] = []
    hub.playbook_triggers.wake = lambda: woken.append(True)

    def fail(conn: Connection, events: list[Any]) -> None:
        # After the playbooks' handler: what it wrote must go with the rest.
        assert len(runs_in(conn)) == 1
        raise RuntimeError("the transaction fails after the playbooks ran")

    hub.store.in_transaction.append(fail)
    try:
        expect_error(tracker.post([loan()], contact), 503, "storage_unavailable")
        with pytest.raises(RuntimeError):
            hub.consents.agree(uuid.UUID(contact), "Newsletter", True, None)
    finally:
        hub.store.in_transaction.remove(fail)
    assert runs(hub) == []
    assert messages(hub) == []
    assert woken == []
    groups.log(contact, loan())
    assert len(runs(hub)) == 1
    assert woken == [True]


def runs_in(conn: Connection) -> list[Any]:
    return list(conn.execute(sa.select(playbook_runs.c.id)).all())

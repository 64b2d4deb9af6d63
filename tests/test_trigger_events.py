"""The trigger events (waypost/domain/triggers.py) at each point that emits them, on both
databases: the writer's stored activities, consent agreements, and group entries and exits of
incremental updates and full computations. Each is seen by the Store's in-transaction handlers
only when its transaction commits, never on a rollback."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import Connection
from starlette.testclient import TestClient

from waypost.domain.triggers import ActivityStored, ConsentChanged, MembershipChanged
from waypost.hub import Hub
from waypost.pipeline.writer import Writer
from waypost.records.consents import insert_agreement
from waypost.services.activity_types import ActivityType
from waypost.services.group_membership import apply_some

if TYPE_CHECKING:
    from tests.conftest import ErrorCheck, Tracker
    from tests.group_support import Groups, make_groups
else:
    from group_support import Groups, make_groups

LOANS = "custom_loan_calculator"


@pytest.fixture
def seen(hub: Hub) -> list[Any]:
    """Every event a committing transaction hands to the Store's handlers."""
    events: list[Any] = []

    def record(conn: Connection, batch: list[Any]) -> None:
        events.extend(batch)

    hub.store.in_transaction.append(record)
    return events


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


def listen_to(hub: Hub, *types: uuid.UUID) -> None:
    assert isinstance(hub.writer, Writer)
    hub.writer.listened_types = lambda conn: frozenset(types)


@contextmanager
def failing_table(hub: Hub, table: str) -> Iterator[None]:
    """Every insert into ``table`` fails, as a full disk or a lost connection would."""
    if hub.store.dialect == "sqlite":
        create = [
            f"CREATE TRIGGER fail_{table} BEFORE INSERT ON {table} "
            "BEGIN SELECT RAISE(ABORT, 'down'); END"
        ]
        drop = [f"DROP TRIGGER fail_{table}"]
    else:
        create = [
            f"CREATE FUNCTION fail_{table}() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'down'; END $$",
            f"CREATE TRIGGER fail_{table} BEFORE INSERT ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION fail_{table}()",
        ]
        drop = [f"DROP TRIGGER fail_{table} ON {table}", f"DROP FUNCTION fail_{table}()"]
    with hub.store.write() as conn:
        for statement in create:
            conn.exec_driver_sql(statement)
    try:
        yield
    finally:
        with hub.store.write() as conn:
            for statement in drop:
                conn.exec_driver_sql(statement)


def rolled_back(hub: Hub, work: Callable[[Connection], object]) -> None:
    """Do ``work`` in a write transaction that then fails."""
    with hub.store.write() as conn:
        work(conn)
        raise RuntimeError("rolled back")


# -- the writer --------------------------------------------------------------------------------


def test_the_writer_emits_nothing_for_types_no_playbook_listens_to(
    hub: Hub, groups: Groups, loans: ActivityType, seen: list[Any]
) -> None:
    groups.log(groups.new_contact(), {"type": LOANS}, {"type": "click", "value": "x"})
    assert [e for e in seen if isinstance(e, ActivityStored)] == []


def test_the_writer_emits_each_stored_activity_of_a_listened_type(
    hub: Hub, groups: Groups, loans: ActivityType, seen: list[Any], tracker: Tracker
) -> None:
    listen_to(hub, loans.id)
    contact = groups.new_contact()
    [loan, _click] = groups.log(
        contact,
        {
            "type": LOANS,
            "value": "calc",
            "url": "https://bank.example/calc",
            "referrer": "https://search.example/",
            "fields": {"amount": "50000.10"},
            "occurredAt": "2026-01-31T09:30:00+01:00",
        },
        {"type": "click", "value": "x"},
    )
    [event] = seen
    assert isinstance(event, ActivityStored)
    assert event.id == uuid.UUID(loan)
    assert (event.type_id, event.type_code) == (loans.id, LOANS)
    assert (event.contact_id, event.channel_id) == (uuid.UUID(contact), tracker.channel.id)
    assert (event.title, event.value) == ("Loan calculator usage 'calc'", "calc")
    assert (event.url, event.referrer) == ("https://bank.example/calc", "https://search.example/")
    assert event.fields == {"amount": "50000.10"}
    assert event.occurred_at.isoformat() == "2026-01-31T08:30:00+00:00"
    assert event.received_at >= event.occurred_at


def test_a_data_input_is_emitted_under_the_contact_it_was_stored_under(
    hub: Hub, groups: Groups, seen: list[Any]
) -> None:
    owner, visitor = groups.new_contact(), groups.new_contact()
    groups.data_input(owner, Email="ann@example.com")
    listen_to(hub, hub.catalog.get().types["datainput"].id)
    groups.data_input(visitor, Email="ann@example.com", City="Brno")
    [event] = seen
    assert isinstance(event, ActivityStored)
    assert event.contact_id == uuid.UUID(owner)


def test_the_writer_emits_nothing_when_its_transaction_rolls_back(
    hub: Hub,
    groups: Groups,
    loans: ActivityType,
    seen: list[Any],
    tracker: Tracker,
    expect_error: ErrorCheck,
) -> None:
    listen_to(hub, loans.id)
    contact = groups.new_contact()
    # The rollups are written after the activities and their events: the failure undoes all.
    with failing_table(hub, "activity_rollups"):
        expect_error(tracker.post([{"type": LOANS}], contact), 503, "storage_unavailable")
    assert seen == []


# -- consent agreements ------------------------------------------------------------------------


def test_an_agreement_emits_a_change_of_state(hub: Hub, groups: Groups, seen: list[Any]) -> None:
    groups.create_consent("Newsletter")
    contact = uuid.UUID(groups.new_contact())
    hub.consents.agree(contact, "Newsletter", False, None)
    hub.consents.agree(contact, "Newsletter", True, None)
    hub.consents.agree(contact, "Newsletter", True, None)
    hub.consents.agree(contact, "Newsletter", False, None)
    assert [(type(e), e.contact_id, e.agreed, e.consent_code, e.version) for e in seen] == [
        (ConsentChanged, contact, True, "Newsletter", 1),
        (ConsentChanged, contact, False, "Newsletter", 1),
    ]
    consent = hub.consents.get_by_code("Newsletter")
    assert {e.consent_id for e in seen} == {consent.id}


def test_an_agreement_to_a_new_version_is_a_change(
    hub: Hub, groups: Groups, seen: list[Any], client: TestClient, admin_headers: dict[str, str]
) -> None:
    groups.create_consent("Newsletter")
    contact = uuid.UUID(groups.new_contact())
    hub.consents.agree(contact, "Newsletter", True, None)
    consent = hub.consents.get_by_code("Newsletter")
    answer = client.patch(
        f"/api/consents/{consent.id}",
        json={"texts": {"en": {"short_text": "New", "full_text": "<p>New</p>"}}},
        headers=admin_headers,
    )
    assert answer.status_code == 200, answer.text
    hub.consents.agree(contact, "Newsletter", True, None)
    assert [(e.agreed, e.version) for e in seen] == [(True, 1), (True, 2)]


def test_an_agreement_rolled_back_emits_nothing(hub: Hub, groups: Groups, seen: list[Any]) -> None:
    groups.create_consent("Newsletter")
    contact = uuid.UUID(groups.new_contact())
    with pytest.raises(RuntimeError):
        rolled_back(hub, lambda conn: insert_agreement(conn, contact, "Newsletter", True, None))
    assert seen == []


# -- group entries and exits -------------------------------------------------------------------


def test_an_incremental_update_emits_the_entries_and_the_exits(
    hub: Hub, groups: Groups, seen: list[Any]
) -> None:
    group = groups.create({"contact": {"field": "city", "equals": "Brno"}})
    contact = groups.new_contact()
    groups.data_input(contact, City="Brno")
    groups.wait_member(group["id"], contact)
    groups.data_input(contact, City="Prague")
    groups.wait_member(group["id"], contact, member=False)
    moves = [e for e in seen if isinstance(e, MembershipChanged)]
    assert [(e.group_id, e.contact_ids, e.entered) for e in moves] == [
        (uuid.UUID(group["id"]), frozenset({uuid.UUID(contact)}), True),
        (uuid.UUID(group["id"]), frozenset({uuid.UUID(contact)}), False),
    ]


def test_a_full_computation_reads_back_who_moved_only_when_listened_to(
    hub: Hub, groups: Groups, loans: ActivityType, seen: list[Any]
) -> None:
    ann, bob = groups.new_contact(), groups.new_contact()
    groups.log(ann, {"type": LOANS}, {"type": LOANS})
    groups.log(bob, {"type": LOANS})
    asked: list[uuid.UUID] = []

    def listens(conn: Connection, group_id: uuid.UUID) -> bool:
        asked.append(group_id)
        return True

    hub.groups.computer.listens = listens
    group = groups.create({"activity": {"type": LOANS, "at_least": 2}})
    assert asked == []  # a new group's first computation: nobody entered, it began
    assert [e for e in seen if isinstance(e, MembershipChanged)] == []
    assert groups.patch(group["id"], condition={"activity": {"type": LOANS}}).status_code == 200
    gid = uuid.UUID(group["id"])
    assert asked == [gid]
    assert [(e.contact_ids, e.entered) for e in seen if isinstance(e, MembershipChanged)] == [
        (frozenset({uuid.UUID(bob)}), True)
    ]
    del seen[:]
    hub.groups.computer.listens = lambda conn, group_id: False
    answer = groups.patch(group["id"], condition={"activity": {"type": LOANS, "at_least": 3}})
    assert answer.status_code == 200
    assert groups.get(group["id"])["member_count"] == 0
    assert [e for e in seen if isinstance(e, MembershipChanged)] == []
    hub.groups.computer.listens = listens
    assert groups.patch(group["id"], condition={"activity": {"type": LOANS}}).status_code == 200
    assert {e.entered for e in seen if isinstance(e, MembershipChanged)} == {True}
    assert groups.patch(group["id"], condition={"activity": {"type": "click"}}).status_code == 200
    [*_, exits] = [e for e in seen if isinstance(e, MembershipChanged)]
    assert (exits.contact_ids, exits.entered) == (
        frozenset({uuid.UUID(ann), uuid.UUID(bob)}),
        False,
    )


def test_membership_written_in_a_rolled_back_transaction_emits_nothing(
    hub: Hub, groups: Groups, seen: list[Any]
) -> None:
    group = groups.create({"contact": {"field": "city", "equals": "Brno"}})
    contact = uuid.UUID(groups.new_contact())
    assert hub.group_updates.wait_idle()
    del seen[:]
    with pytest.raises(RuntimeError):
        rolled_back(
            hub,
            lambda conn: apply_some(
                conn, uuid.UUID(group["id"]), {contact}, set(), hub.clock.now()
            ),
        )
    assert seen == []
    assert groups.members(group["id"]) == set()

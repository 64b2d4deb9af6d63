"""The locking protocol of group computations and incremental updates: on PostgreSQL, what each
step holds and what it keeps waiting, seen from a second transaction that only tries; on SQLite,
no step takes a lock."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from waypost.hub import Hub
from waypost.services.consents import ConsentCreate
from waypost.services.group_locks import (
    COMPUTING,
    busy_contacts,
    hold_back_updates,
    lock_for_update,
    lock_group,
)
from waypost.services.groups import GroupCreate
from waypost.store.schema import contact_groups

POSTGRESQL_ONLY = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@pytest.fixture
def hub(hub: Hub) -> Hub:
    """A hub whose own group updates take no lock behind a test's back."""
    hub.store.on_commit = None
    return hub


def contacts(hub: Hub, count: int) -> list[uuid.UUID]:
    return sorted(hub.contacts.create_anonymous().contact for _ in range(count))


def group(hub: Hub) -> uuid.UUID:
    hub.consents.create(ConsentCreate(code_name="A", display_name="A"))
    return hub.groups.create(GroupCreate(name="Agreed", condition={"consent": "A"})).id


def computations_may_start(hub: Hub) -> bool:
    with hub.store.engine.connect() as conn:
        return bool(
            conn.execute(
                sa.text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": COMPUTING}
            ).scalar_one()
        )


def updates_may_start(hub: Hub) -> bool:
    with hub.store.engine.connect() as conn:
        return bool(
            conn.execute(
                sa.text("SELECT pg_try_advisory_xact_lock_shared(:key)"), {"key": COMPUTING}
            ).scalar_one()
        )


def group_row_free(hub: Hub, group_id: uuid.UUID) -> bool:
    stmt = sa.select(contact_groups.c.id).where(contact_groups.c.id == group_id)
    with hub.store.engine.connect() as conn:
        try:
            conn.execute(stmt.with_for_update(nowait=True))
        except OperationalError:
            return False
        return True


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_no_step_takes_a_lock_on_sqlite(hub: Hub) -> None:
    ids = contacts(hub, 2)
    group_id = group(hub)
    with hub.store.write() as conn:
        hold_back_updates(conn)
        lock_group(conn, group_id)
        lock_for_update(conn, ids)
    with hub.store.read() as conn:
        assert busy_contacts(conn, ids) == set()


@POSTGRESQL_ONLY
def test_a_full_computation_keeps_updates_and_other_computations_waiting(hub: Hub) -> None:
    with hub.store.write() as conn:
        hold_back_updates(conn)
        assert not updates_may_start(hub)
        assert not computations_may_start(hub)
    assert updates_may_start(hub)


@POSTGRESQL_ONLY
def test_computing_a_group_locks_its_row_and_holds_back_updates(hub: Hub) -> None:
    group_id = group(hub)
    with hub.store.write() as conn:
        lock_group(conn, group_id)
        assert not group_row_free(hub, group_id)
        assert not updates_may_start(hub)
    assert group_row_free(hub, group_id)


@POSTGRESQL_ONLY
def test_updates_run_side_by_side_but_keep_computations_waiting(hub: Hub) -> None:
    ann, bob = contacts(hub, 2)
    group_id = group(hub)
    with hub.store.write() as conn:
        lock_for_update(conn, [ann])
        assert updates_may_start(hub)
        assert not computations_may_start(hub)
        # KEY SHARE on every group: a full computation's row lock waits.
        assert not group_row_free(hub, group_id)
        with hub.store.read() as other:
            assert busy_contacts(other, [ann, bob]) == {ann}
    with hub.store.read() as conn:
        assert busy_contacts(conn, [ann, bob]) == set()


@POSTGRESQL_ONLY
def test_the_read_phase_finds_a_contact_another_transaction_changes_busy(hub: Hub) -> None:
    ann, bob = contacts(hub, 2)
    with hub.store.write() as conn:
        conn.execute(sa.text("SELECT id FROM contacts WHERE id = :id FOR UPDATE"), {"id": bob})
        with hub.store.read() as other:
            assert busy_contacts(other, [ann, bob]) == {bob}

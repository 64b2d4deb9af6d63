"""Leases on webhook messages: which endpoints have due messages, claims bounded per endpoint,
leases that keep others off until they run out, SKIP LOCKED on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from waypost.services.webhook_claims import (
    Destination,
    claim,
    due_endpoints,
    next_due_at,
    release,
)
from waypost.settings import Settings
from waypost.store import Store, make_engine
from waypost.store.schema import webhook_messages

if TYPE_CHECKING:
    from tests.webhook_receiver import add_endpoint, add_messages, message
else:
    from webhook_receiver import add_endpoint, add_messages, message

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
LEASE = NOW + dt.timedelta(seconds=35)


def destination(store: Store, endpoint_id: object) -> Destination:
    with store.read() as conn:
        [found] = [d for d in due_endpoints(conn, NOW) if d.id == endpoint_id]
    return found


def test_the_endpoints_with_due_messages(store: Store) -> None:
    busy = add_endpoint(store, "https://a.example/hook")
    idle = add_endpoint(store, "https://b.example/hook")
    later = add_endpoint(store, "https://c.example/hook")
    add_messages(store, busy.id, 2, now=NOW)
    add_messages(store, later.id, now=NOW + dt.timedelta(minutes=5))
    with store.read() as conn:
        found = due_endpoints(conn, NOW)
        assert [d.id for d in found] == [busy.id]
        assert found[0].url == "https://a.example/hook"
        assert found[0].secrets == (busy.secret,)
        assert due_endpoints(conn, NOW, skip=[busy.id]) == []
        assert next_due_at(conn, NOW) == NOW + dt.timedelta(minutes=5)
    assert idle.id not in {d.id for d in found}


def test_the_previous_secret_signs_until_it_expires(store: Store) -> None:
    old, new = "whsec_b2xk", "whsec_bmV3"
    rotating = add_endpoint(
        store,
        "https://a.example/hook",
        secret=new,
        previous_secret=old,
        previous_secret_expires_at=NOW + dt.timedelta(seconds=1),
    )
    add_messages(store, rotating.id, now=NOW)
    with store.read() as conn:
        [during] = due_endpoints(conn, NOW)
        [after] = due_endpoints(conn, NOW + dt.timedelta(seconds=1))
    assert during.secrets == (new, old)
    assert after.secrets == (new,)


def test_a_claim_takes_at_most_its_limit_oldest_first(store: Store) -> None:
    endpoint = add_endpoint(store, "https://a.example/hook")
    first = add_messages(store, endpoint.id, 2, now=NOW - dt.timedelta(seconds=2))
    rest = add_messages(store, endpoint.id, 3, now=NOW)
    target = destination(store, endpoint.id)
    with store.write() as conn:
        taken = claim(conn, target, "node-a", NOW, LEASE, 3)
    assert [m.id for m in taken][:2] == first
    assert len(taken) == 3
    assert all(m.attempt == 1 and m.lease_until == LEASE for m in taken)
    row = message(store, taken[0].id)
    assert (row["lease_owner"], row["lease_until"]) == ("node-a", LEASE)
    # Leased: not due again before the lease runs out, for anyone.
    assert row["next_attempt_at"] == LEASE
    with store.write() as conn:
        others = claim(conn, target, "node-b", NOW, LEASE, 10)
    assert {m.id for m in others} == set(rest) - {m.id for m in taken}
    with store.write() as conn:
        assert claim(conn, target, "node-b", NOW, LEASE, 10) == []
        assert claim(conn, target, "node-b", NOW, LEASE, 0) == []
    # Once the lease has run out, anyone may claim it again (its attempt not yet made).
    with store.write() as conn:
        again = claim(conn, target, "node-c", LEASE, LEASE + dt.timedelta(seconds=35), 10)
    assert len(again) == 5
    assert {m.attempt for m in again} == {1}


def test_given_back_a_message_is_due_at_once(store: Store) -> None:
    endpoint = add_endpoint(store, "https://a.example/hook")
    [ident] = add_messages(store, endpoint.id, now=NOW)
    target = destination(store, endpoint.id)
    with store.write() as conn:
        [taken] = claim(conn, target, "node-a", NOW, LEASE, 1)
        # Only the holder can give it back.
        release(conn, "node-b", [taken.id], NOW)
        assert claim(conn, target, "node-b", NOW, LEASE, 1) == []
        release(conn, "node-a", [taken.id], NOW)
        [again] = claim(conn, target, "node-b", NOW, LEASE, 1)
    assert again.id == ident
    assert message(store, ident)["lease_owner"] == "node-b"


def test_a_disabled_endpoint_gets_nothing(store: Store) -> None:
    endpoint = add_endpoint(store, "https://a.example/hook")
    add_messages(store, endpoint.id, now=NOW)
    target = destination(store, endpoint.id)
    with store.write() as conn:
        conn.execute(sa.text("UPDATE webhook_endpoints SET enabled = false"))
        assert claim(conn, target, "node-a", NOW, LEASE, 5) == []
    with store.read() as conn:
        [found] = due_endpoints(conn, NOW)
    assert found.enabled is False


def test_sent_and_failed_messages_are_not_due(store: Store) -> None:
    endpoint = add_endpoint(store, "https://a.example/hook")
    ids = add_messages(store, endpoint.id, 2, now=NOW)
    with store.write() as conn:
        conn.execute(
            sa.update(webhook_messages)
            .where(webhook_messages.c.id == ids[0])
            .values(status="delivered")
        )
        conn.execute(
            sa.update(webhook_messages)
            .where(webhook_messages.c.id == ids[1])
            .values(status="failed")
        )
    with store.read() as conn:
        assert due_endpoints(conn, NOW) == []


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_claims_at_once_skip_each_others_rows(settings: Settings, store: Store) -> None:
    endpoint = add_endpoint(store, "https://a.example/hook")
    ids = add_messages(store, endpoint.id, 10, now=NOW)
    target = destination(store, endpoint.id)
    other = Store(make_engine(settings))
    holding = threading.Event()
    done = threading.Event()
    taken_a: list[object] = []
    taken_b: list[object] = []

    def first() -> None:
        with store.write() as conn:
            taken_a.extend(m.id for m in claim(conn, target, "node-a", NOW, LEASE, 4))
            holding.set()
            done.wait(10)

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert holding.wait(10)
        started = time.monotonic()
        # The first claim's transaction is still open: its rows are locked, not skipped over
        # by waiting.
        with other.write() as conn:
            taken_b.extend(m.id for m in claim(conn, target, "node-b", NOW, LEASE, 10))
        assert time.monotonic() - started < 2
    finally:
        done.set()
        thread.join()
        other.dispose()
    assert len(taken_a) == 4
    assert set(taken_a) | set(taken_b) == set(ids)
    assert not set(taken_a) & set(taken_b)

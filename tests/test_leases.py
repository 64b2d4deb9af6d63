"""Leases of background work (waypost/services/leases.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

from waypost.clock import FakeClock
from waypost.hub import Hub
from waypost.services.leases import Lease, node_name


def test_one_owner_at_a_time_until_release_or_expiry(hub: Hub) -> None:
    clock = FakeClock()
    first, second = (Lease(hub.store, "work", owner, clock, 60) for owner in ("a", "b"))
    assert first.holder() is None
    assert first.acquire()
    assert not second.acquire()
    assert first.acquire()  # its own: taken again
    assert first.holder() == "a"
    first.release()
    assert second.acquire()
    clock.advance(61)
    assert second.holder() is None
    assert first.acquire()
    assert not second.renew()
    assert first.renew()


def test_leases_of_other_names_are_apart(hub: Hub) -> None:
    clock = FakeClock()
    assert Lease(hub.store, "one", "a", clock).acquire()
    assert Lease(hub.store, "two", "b", clock).acquire()


def test_owners_racing_for_a_free_lease_get_it_once(hub: Hub) -> None:
    clock = FakeClock()
    leases = [Lease(hub.store, "race", f"node-{i}", clock) for i in range(6)]
    start = threading.Barrier(len(leases))
    won: list[bool] = []

    def take(lease: Lease) -> None:
        start.wait()
        won.append(lease.acquire())

    threads = [threading.Thread(target=take, args=(lease,)) for lease in leases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(won) == [False] * 5 + [True]


def test_the_node_name_is_host_and_process() -> None:
    name = node_name()
    host, _, pid = name.rpartition(":")
    assert host
    assert pid.isdigit()

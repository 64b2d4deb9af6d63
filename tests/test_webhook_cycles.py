"""The dispatcher's database cycles: an idle look only reads, claims stop at each lane's
room, and endpoints with more due than room are named."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import TYPE_CHECKING

import pytest

from waypost.clock import FakeClock
from waypost.services.webhook_cycles import Cycles, Work
from waypost.settings import Settings
from waypost.store import Store, make_engine

if TYPE_CHECKING:
    from tests.webhook_receiver import add_endpoint, add_messages, message
else:
    from webhook_receiver import add_endpoint, add_messages, message

LEASE = dt.timedelta(seconds=35)
FIVE_DAYS = dt.timedelta(days=5)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(dt.datetime(2026, 12, 3, 12, tzinfo=dt.UTC))


def test_claims_stop_at_each_lane_s_room(store: Store, clock: FakeClock) -> None:
    cycles = Cycles(store, clock, "node-a", LEASE, FIVE_DAYS)
    busy = add_endpoint(store, "https://a.example/hook")
    quiet = add_endpoint(store, "https://b.example/hook")
    add_messages(store, busy.id, 10, now=clock.now())
    add_messages(store, quiet.id, 2, now=clock.now())
    done = cycles.run(Work([], [], True, {busy.id: 1}, {busy.id: 4}, lane=8, discover=True))
    taken = {e: sum(m.endpoint.id == e for m in done.claimed) for e in (busy.id, quiet.id)}
    assert taken == {busy.id: 3, quiet.id: 2}
    assert done.looked == {busy.id, quiet.id}
    assert done.backlogged == {busy.id}
    assert all(message(store, m.id)["lease_owner"] == "node-a" for m in done.claimed)
    # A full lane is not looked at; the next due time is found for the timer.
    add_messages(store, quiet.id, now=clock.now() + dt.timedelta(seconds=3))
    done = cycles.run(Work([], [], True, {busy.id: 4, quiet.id: 2}, {busy.id: 4}, 8, True))
    assert done.claimed == []
    assert done.looked == set()
    assert done.next_due == clock.now() + dt.timedelta(seconds=3)


def test_nothing_to_do_does_nothing(store: Store, clock: FakeClock) -> None:
    cycles = Cycles(store, clock, "node-a", LEASE, FIVE_DAYS)
    done = cycles.run(Work([], [], False, {}))
    assert (done.claimed, done.next_due) == ([], None)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_idle_look_does_not_wait_for_the_write_lock(
    store: Store, clock: FakeClock, settings: Settings
) -> None:
    cycles = Cycles(store, clock, "node-a", LEASE, FIVE_DAYS)
    add_endpoint(store, "https://a.example/hook")
    writer = Store(make_engine(settings))
    holding, done = threading.Event(), threading.Event()

    def hold() -> None:
        with writer.write():
            holding.set()
            done.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert holding.wait(10)
        started = time.monotonic()
        assert cycles.run(Work([], [], True, {}, discover=True)).claimed == []
        assert time.monotonic() - started < 1
    finally:
        done.set()
        thread.join()
        writer.dispose()

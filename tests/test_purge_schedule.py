"""The server's hourly purge (waypost/services/purge_schedule.py)."""

from __future__ import annotations

import time

from waypost.clock import FakeClock
from waypost.hub import Hub
from waypost.services.purge_schedule import PurgeScheduler
from waypost.services.retention import RetentionService
from waypost.settings import Settings


def test_a_purge_is_due_once_an_interval_after_the_last_on_any_node(
    hub: Hub, settings: Settings
) -> None:
    clock = FakeClock()
    here = PurgeScheduler(RetentionService(hub.store, settings, clock, node="here"), 3600)
    there = PurgeScheduler(RetentionService(hub.store, settings, clock, node="there"), 3600)
    assert here.look()
    assert not there.look()  # not due: "here" purged just now
    clock.advance(3599)
    assert not here.look()
    clock.advance(1)
    assert there.look()
    assert [r.node for r in hub.retention.runs()] == ["there", "here"]
    assert {r.trigger for r in hub.retention.runs()} == {"schedule"}


def test_the_thread_purges_after_its_first_look_and_stops(hub: Hub, settings: Settings) -> None:
    scheduler = PurgeScheduler(hub.retention, 3600, first_look=0.01, look_every=0.01)
    scheduler.start()
    deadline = time.monotonic() + 10
    while scheduler.purges == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    scheduler.stop()
    assert scheduler.purges == 1
    assert hub.retention.last_run() is not None

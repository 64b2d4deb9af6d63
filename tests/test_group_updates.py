"""The group updater's thread (waypost/services/group_updates.py): its batching and its stop."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

import pytest

from waypost.domain.conditions import EVERYTHING
from waypost.hub import Hub
from waypost.services.group_updates import GroupUpdater
from waypost.store import StorageUnavailable


def test_stop_does_not_wait_out_the_batching_delay_and_applies_what_is_queued(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    updated: list[set[uuid.UUID]] = []
    real = hub.groups.update_contacts

    def spied(batch: set[uuid.UUID], changes: Any) -> int:
        updated.append(set(batch))
        return real(batch, changes)

    monkeypatch.setattr(hub.groups, "update_contacts", spied)
    # A delay far longer than the test: the thread takes the first contacts, then waits for
    # more to batch them; stop() ends that wait.
    updater = GroupUpdater(hub.groups, delay=60.0, tick=3600.0)
    first, second = uuid.uuid4(), uuid.uuid4()
    updater.touch([first], EVERYTHING)
    updater.touch([second], EVERYTHING)
    began = time.monotonic()
    updater.stop()
    assert time.monotonic() - began < 20.0
    assert updated == [{first, second}]
    assert updater.wait_idle(0)


def test_touches_within_the_delay_are_applied_in_one_batch(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    updated: list[set[uuid.UUID]] = []

    def recorded(batch: set[uuid.UUID], changes: Any) -> int:
        updated.append(set(batch))
        return 0

    monkeypatch.setattr(hub.groups, "update_contacts", recorded)
    updater = GroupUpdater(hub.groups, delay=2.0, tick=3600.0)
    ids = [uuid.uuid4() for _ in range(5)]
    try:
        for one in ids:
            updater.touch([one], EVERYTHING)
        assert updater.wait_idle(10.0)
    finally:
        updater.stop()
    assert updated == [set(ids)]


def test_stop_while_the_database_is_down_says_what_was_not_applied(
    hub: Hub, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    tried = threading.Event()

    def unavailable(batch: set[uuid.UUID], changes: Any) -> int:
        tried.set()
        raise StorageUnavailable("the database is down")

    monkeypatch.setattr(hub.groups, "update_contacts", unavailable)
    updater = GroupUpdater(hub.groups, delay=0.0, tick=3600.0)
    updater.touch([uuid.uuid4(), uuid.uuid4()], EVERYTHING)
    assert tried.wait(10.0)
    with caplog.at_level(logging.WARNING, logger="waypost"):
        updater.stop()
    assert "stopping with the group updates of 2 contacts not applied" in caplog.text

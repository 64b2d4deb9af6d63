"""Keeping group membership current in the background.

Contacts touched by a committed activity, contact field change or consent change are queued;
a thread takes what has queued up within ``delay`` of the first and re-evaluates every group for
those contacts in one transaction, so a membership changes well within a second of the 202.
The same thread recomputes, once per UTC day, the groups whose windows slide.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any

from waypost.clock import Clock
from waypost.domain.conditions import EVERYTHING, Changes
from waypost.metrics import Metrics
from waypost.services.groups import GroupService
from waypost.store import StorageUnavailable

log = logging.getLogger("waypost.groups")

BATCH = 500


class GroupUpdater:
    """The background worker of one process; its daily refresh follows ``clock`` (the group
    service's unless given)."""

    def __init__(
        self,
        groups: GroupService,
        delay: float = 0.05,
        tick: float = 30.0,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.groups = groups
        self.metrics = metrics if metrics is not None else Metrics()
        self.clock = clock if clock is not None else groups.clock
        self.delay = delay
        self.tick = tick
        # Each entry: the contacts, what changed, and when (time.monotonic(), for the lag).
        self._queue: queue.SimpleQueue[tuple[frozenset[uuid.UUID], Changes, float] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # Set by stop(): no thread starts again, the thread's waits end at once; what is
        # queued is still applied, as far as the database takes it.
        self._stop_signal = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self.updated = 0

    def touch(
        self,
        contact_ids: Iterable[uuid.UUID],
        changes: Changes = EVERYTHING,
        since: float | None = None,
    ) -> None:
        """Queue contacts for re-evaluation of the groups ``changes`` concerns (never blocks);
        ``since``, the ``time.monotonic()`` of the change (default now), measures the lag."""
        ids = frozenset(contact_ids)
        if ids:
            self._idle.clear()
            self._queue.put((ids, changes, time.monotonic() if since is None else since))
            self.start()

    def committed(self, touched: list[tuple[frozenset[Any], Any]]) -> None:
        """The Store's ``on_commit`` listener: what a committed transaction changed."""
        for ids, changes in touched:
            self.touch(ids, changes if isinstance(changes, Changes) else EVERYTHING)

    def start(self) -> None:
        with self._lock:
            if self._thread is None and not self._stop_signal.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="waypost-groups", daemon=True
                )
                self._thread.start()

    def stop(self) -> None:
        """Finish what is queued, then stop."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop_signal.set()
        if thread is not None:
            self._queue.put(None)
            thread.join()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far has been applied (for tests and tools)."""
        return self._idle.wait(timeout)

    def _run(self) -> None:
        next_refresh = 0.0
        while True:
            # The refresh schedule follows the clock; the waits below are real ones.
            now = self.clock.monotonic()
            if now >= next_refresh:
                self._safely(self.groups.refresh_windows)
                next_refresh = now + self.tick
            try:
                first = self._queue.get(timeout=max(0.01, next_refresh - self.clock.monotonic()))
            except queue.Empty:
                continue
            batch: set[uuid.UUID] = set()
            changes = Changes()
            stop = first is None
            oldest = time.monotonic()
            if first is not None:
                batch |= first[0]
                changes |= first[1]
                oldest = first[2]
            if not stop:
                # What else queues up within the delay is taken at its end, in one go: one
                # wake-up of this thread a batch, not one a commit.
                self._stop_signal.wait(self.delay)
            while len(batch) < BATCH and not stop:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                else:
                    batch |= item[0]
                    changes |= item[1]
                    oldest = min(oldest, item[2])
            if batch:
                if self._safely(functools.partial(self._update, batch, changes)):
                    self.metrics.group_update_lag.observe(time.monotonic() - oldest)
                elif not self._stop_signal.wait(1.0):
                    # Nothing is lost while the updater runs: the contacts wait for the
                    # database to come back.
                    self.touch(batch, changes, oldest)
                else:
                    log.warning(
                        "stopping with the group updates of %d contacts not applied: "
                        "the database is unavailable",
                        len(batch),
                    )
            if self._queue.empty():
                self._idle.set()
            if stop:
                return

    def _update(self, batch: set[uuid.UUID], changes: Changes) -> None:
        self.updated += self.groups.update_contacts(batch, changes)

    def _safely(self, work: object) -> bool:
        assert callable(work)
        try:
            work()
        except StorageUnavailable as exc:
            log.warning("group update postponed, the database is unavailable: %s", exc)
            return False
        except Exception:
            log.exception("group update failed")
        return True

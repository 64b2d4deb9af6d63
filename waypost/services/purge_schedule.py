"""The server's hourly purge: a background thread that starts a purge when one is due.

Every node runs the thread; a purge is due when the latest one, on any node, started
``WAYPOST_PURGE_INTERVAL_SECONDS`` ago (``purge_runs``), and the ``purge`` lease lets one node
at a time run it, so several nodes purge about once an interval between them. The first look
is a minute after the start, not at once, so that a server starting up (or a test) is not
slowed by it; a server restarted often still purges, since what is due is read from the
database, not from the process's own history.
"""

from __future__ import annotations

import logging
import threading

from waypost.services.retention import RetentionService
from waypost.store import StorageUnavailable

log = logging.getLogger("waypost.retention")

FIRST_LOOK_SECONDS = 60.0
# How often a node looks whether a purge is due: at most this, at least the interval.
LOOK_EVERY_SECONDS = 300.0


class PurgeScheduler:
    """Looks every ``look_every`` seconds (after ``first_look``) whether a purge is due, and
    runs it if this node gets the lease."""

    def __init__(
        self,
        retention: RetentionService,
        interval: float,
        first_look: float = FIRST_LOOK_SECONDS,
        look_every: float | None = None,
    ) -> None:
        self.retention = retention
        self.interval = interval
        self.first_look = first_look
        self.look_every = (
            look_every if look_every is not None else min(interval, LOOK_EVERY_SECONDS)
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.purges = 0

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="waypost-purge", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        """Stop looking; a purge under way stops after its current batch."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join()

    def look(self) -> bool:
        """Purge now if a purge is due and this node gets the lease; whether it purged."""
        if not self.retention.due(self.interval):
            return False
        run = self.retention.purge("schedule", stop=self._stop)
        if run is None:
            return False
        self.purges += 1
        log.info(
            "purge %s: %d activities, %d rejected activities, %d rollups, %d daily counts "
            "deleted in %d ms",
            run.status,
            run.activities_deleted,
            run.rejected_deleted,
            run.rollups_deleted,
            run.daily_counts_deleted,
            run.duration_ms or 0,
        )
        return True

    def _run(self) -> None:
        wait = self.first_look
        while not self._stop.wait(wait):
            wait = self.look_every
            try:
                self.look()
            except StorageUnavailable as exc:
                log.warning("purge postponed, the database is unavailable: %s", exc)
            except Exception:  # the next look tries again
                log.exception("purge failed")

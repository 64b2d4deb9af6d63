"""The one seam for time: what time it is, and how much time has passed.

Everything that decides by time (rate-limit windows, a group's ``within_days``, the daily
refresh of groups whose windows slide, report windows) asks a :class:`Clock` it was given,
never the system directly, so tests can put it on a :class:`FakeClock` and move time at will.
The hub makes one :class:`SystemClock` and hands it to every service that needs one.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Protocol


class Clock(Protocol):
    """Wall-clock time, in two shapes, and a monotonic counter for durations."""

    def now(self) -> dt.datetime:
        """The current moment, aware, in UTC."""
        ...

    def time(self) -> float:
        """The current moment in seconds since the epoch: :meth:`now` without building a
        datetime, for the rate limits, which ask on every request."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary start that never go back: for durations and schedules."""
        ...


class SystemClock:
    """The machine's clocks."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock that moves only when told, for tests.

    It starts at ``start`` (a moment or seconds since the epoch; the system's now if not
    given). :meth:`advance` moves both the wall clock and the monotonic one; :meth:`set` moves
    the wall clock alone, anywhere, as a machine's clock that is set or stepped back does.
    """

    def __init__(self, start: dt.datetime | float | None = None) -> None:
        self._lock = threading.Lock()
        self._time = time.time() if start is None else _seconds(start)
        self._monotonic = 0.0

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._time, dt.UTC)

    def time(self) -> float:
        return self._time

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass (not negative: use :meth:`set` to step the wall clock back)."""
        if seconds < 0:
            raise ValueError("time only moves forward; set() steps the wall clock back")
        with self._lock:
            self._time += seconds
            self._monotonic += seconds

    def set(self, moment: dt.datetime | float) -> None:
        """Put the wall clock at ``moment``; the monotonic clock does not move."""
        with self._lock:
            self._time = _seconds(moment)


def _seconds(moment: dt.datetime | float) -> float:
    if isinstance(moment, dt.datetime):
        if moment.tzinfo is None:
            raise ValueError("a moment needs a time zone")
        return moment.timestamp()
    return float(moment)

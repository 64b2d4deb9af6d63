"""When a webhook message that failed is tried again (docs/playbooks.md, "Delivery").

The schedule (``WAYPOST_WEBHOOK_RETRY_SCHEDULE``) is a list of waits: after the first failed
attempt the first wait, after the second the second, and so on; after the last, the message
is failed. Every wait is moved by up to 20% either way (jitter), so that the messages that
failed together, when an endpoint went down, do not all come back together. A ``Retry-After``
answer asks for a longer wait; it is honoured up to a cap, so that no receiver can park a
message for ever.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
from collections.abc import Sequence

DEFAULT_SCHEDULE = "5s,5m,30m,2h,5h,10h,10h"
JITTER = 0.2
MAX_STEPS = 50
MAX_STEP_SECONDS = 7 * 86400.0
MAX_SCHEDULE_TEXT = 1000
# The longest Retry-After that is honoured when the schedule's longest step is shorter.
RETRY_AFTER_FLOOR_CAP = 3600.0
_MAX_RETRY_AFTER_TEXT = 100

UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class BadSchedule(ValueError):
    """The text is not a retry schedule; the message says why."""


def parse_duration(text: str) -> float:
    """Seconds in ``5s``, ``0.2s``, ``250ms``, ``5m``, ``2h`` or ``1d``."""
    word = text.strip().lower()
    for unit in ("ms", "s", "m", "h", "d"):
        if word.endswith(unit):
            number = word[: -len(unit)].strip()
            break
    else:
        raise BadSchedule(f"{text.strip()!r} has no unit: write 5s, 250ms, 5m, 2h or 1d")
    if not number or len(number) > 20 or not all(c in "0123456789." for c in number):
        raise BadSchedule(f"{text.strip()!r} is not a duration: write 5s, 0.2s, 5m, 2h or 1d")
    try:
        seconds = float(number) * UNITS[unit]
    except ValueError:
        raise BadSchedule(f"{text.strip()!r} is not a duration") from None
    if not seconds > 0:
        raise BadSchedule(f"{text.strip()!r}: every wait is longer than zero")
    if seconds > MAX_STEP_SECONDS:
        raise BadSchedule(f"{text.strip()!r}: a wait is at most 7 days")
    return seconds


def parse_schedule(text: str) -> tuple[float, ...]:
    """The waits of a comma-separated schedule, in seconds; raise BadSchedule otherwise."""
    if len(text) > MAX_SCHEDULE_TEXT:
        raise BadSchedule(f"a retry schedule has at most {MAX_SCHEDULE_TEXT} characters")
    parts = text.split(",")
    if not text.strip():
        raise BadSchedule("a retry schedule names at least one wait, as in 5s,5m,30m")
    if len(parts) > MAX_STEPS:
        raise BadSchedule(f"a retry schedule has at most {MAX_STEPS} waits")
    return tuple(parse_duration(part) for part in parts)


def jittered(seconds: float, unit: float) -> float:
    """``seconds`` moved by up to ``JITTER`` either way; ``unit`` is a random number in [0, 1)."""
    return seconds * (1.0 + JITTER * (2.0 * min(max(unit, 0.0), 1.0) - 1.0))


def parse_retry_after(value: str | None, now: dt.datetime) -> float | None:
    """Seconds to wait that a ``Retry-After`` value asks for: delay seconds or an HTTP date.

    None when there is no usable value; a date in the past asks for no wait (0).
    """
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > _MAX_RETRY_AFTER_TEXT:
        return None
    if text.isascii() and text.isdigit():
        # Past 12 digits (30,000 years) it is only longer than any cap.
        return float(int(text)) if len(text) <= 12 else 1e12
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return max(0.0, (moment - now).total_seconds())


def retry_after_cap(schedule: Sequence[float]) -> float:
    """The longest ``Retry-After`` honoured: the schedule's longest wait, or an hour if longer."""
    return max(max(schedule), RETRY_AFTER_FLOOR_CAP)


def next_wait(
    schedule: Sequence[float], attempts: int, unit: float, retry_after: float | None = None
) -> float | None:
    """How long to wait after the ``attempts``-th attempt failed, or None to give up.

    The schedule's wait, jittered; if the answer had a ``Retry-After``, the longer of the
    two, with ``Retry-After`` capped by :func:`retry_after_cap`.
    """
    if attempts < 1 or attempts > len(schedule):
        return None
    wait = jittered(schedule[attempts - 1], unit)
    if retry_after is not None and math.isfinite(retry_after):
        wait = max(wait, min(retry_after, retry_after_cap(schedule)))
    return wait

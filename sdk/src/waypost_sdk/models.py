"""What the SDK hands back: errors of direct calls, drop reports, delivery counters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

DropReason = Literal["queue_full", "too_large", "closed", "rejected", "failed", "shutdown"]
"""Why an activity was not delivered.

- ``queue_full``: the queue held ``max_queue_size`` activities already; never sent.
- ``too_large``: over ``max_activity_bytes`` once encoded; never sent.
- ``closed``: logged after :meth:`Client.close`; never sent.
- ``rejected``: Waypost answered the activity with a 4xx result (it keeps it as a rejected
  activity, which can be replayed once the cause is fixed).
- ``failed``: the whole request was refused with a 4xx that retrying cannot fix (401, 403,
  404 unknown contact, ...), or every retry failed.
- ``shutdown``: :meth:`Client.close` or the exit flush ran out of time before it was sent.
"""

DROP_REASONS: tuple[DropReason, ...] = (
    "queue_full",
    "too_large",
    "closed",
    "rejected",
    "failed",
    "shutdown",
)


class WaypostError(Exception):
    """A direct call (create a contact, set a consent) did not succeed.

    ``status`` is the HTTP status, or ``None`` when Waypost could not be reached; ``error_code``
    is Waypost's error code (``unauthorized``, ``contact_not_found``, ...) or ``network_error``.
    """

    def __init__(self, status: int | None, error_code: str, message: str) -> None:
        super().__init__(f"{status or 'no answer'} {error_code}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message


@dataclass(frozen=True)
class Dropped:
    """An activity that was not delivered, as given to the ``on_drop`` callback."""

    reason: DropReason
    contact: str
    activity: Mapping[str, Any]
    """The activity object as it was (or would have been) sent, with its ``id``."""
    status: int | None = None
    """The HTTP status of the result or request that refused it, if any."""
    error_code: str | None = None
    message: str = ""


@dataclass(frozen=True)
class ConsentText:
    """A consent's texts (HTML) in one language."""

    short_text: str
    full_text: str


@dataclass(frozen=True)
class Stats:
    """Delivery counters of a :class:`Client` since it was created.

    Every activity given to :meth:`Client.log` ends in exactly one of: ``delivered``, one of
    ``dropped``'s reasons, or ``pending`` (still queued or being sent).
    """

    enqueued: int
    """Activities accepted into the queue."""
    pending: int
    """Accepted and not yet delivered or dropped."""
    delivered: int
    """Acknowledged by Waypost: stored (202) or stored before (208)."""
    duplicates: int
    """Of ``delivered``, those Waypost had stored already (208), after a retry."""
    requests: int
    """HTTP requests made to log activities, retries included."""
    retries: int
    """Requests repeated after a network error, a 429 or a 5xx."""
    dropped: Mapping[DropReason, int] = field(default_factory=dict)
    """Activities not delivered, by reason."""

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

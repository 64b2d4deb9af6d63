"""The hourly cap on the rejected activities a page's address may have kept.

Nothing a caller sends is dropped silently: what is refused is kept as a rejected activity,
with its reason. But a publishable key is public, and a rejected activity is a row of up to
16 KB (``WAYPOST_MAX_ACTIVITY_BYTES``): a hostile page could fill the database with them. So
what pages send with a publishable key (the browser endpoints, and Segment's analytics.js,
PostHog and Snowplow through their collectors) may have at most
``WAYPOST_REJECTED_PER_IP_PER_HOUR`` rejected activities kept per client address (an IPv6
client's /64) in any hour, on a sliding window. Past it, a rejected activity is not kept and
the request is answered 429 ``rate_limited`` with ``Retry-After``: its caller is told, not
dropped silently. Accepted activities are stored as ever, and a server's requests (a tracking
key) have no such cap. See docs/browser-tracking.md#rate-limits.

Which activities the writer will reject is known only in its transaction (a contact that does
not exist, or has not agreed to the tracking consent), so room is taken from the limit before
the jobs are submitted, for each activity that could be kept as rejected, and what the writer
did not keep is given back once they are answered. Near the cap, the activities already known
to be rejected have the room first.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from waypost.errors import ApiError
from waypost.pipeline.prepare import Accepted, Rejected
from waypost.pipeline.writer_decision import ActivityResult, Job
from waypost.ratelimit import Limit, Taken

if TYPE_CHECKING:
    from waypost.hub import Hub

log = logging.getLogger("waypost.ingest")
WINDOW = 3600.0
# The shielded writes of requests (submit_capped), until each is done.
_writing: set[asyncio.Future[Any]] = set()


def rejected_limit(address: str, per_hour: int) -> Limit:
    """The limit of the rejected activities kept for one client address (its key)."""
    return Limit(f"rejected:ip:{address}", per_hour, WINDOW)


def may_be_kept(job: Job) -> int:
    """How many of ``job``'s items may end as rejected activities kept: every one but those
    already refused without being kept (an erased person's)."""
    return sum(1 for item in job.items if isinstance(item, Accepted) or item.keep)


def shares(jobs: Sequence[Job], room: int) -> list[int]:
    """``room`` shared among ``jobs``, in order: first for the items already rejected (and to
    be kept), then for the accepted ones, which the writer may yet reject."""
    known = [sum(1 for i in job.items if isinstance(i, Rejected) and i.keep) for job in jobs]
    accepted = [sum(1 for i in job.items if isinstance(i, Accepted)) for job in jobs]
    given = [0] * len(jobs)
    for counts in (known, accepted):
        for index, count in enumerate(counts):
            share = min(count, room)
            given[index] += share
            room -= share
    return given


def over_cap(per_hour: int, refused: int, taken: Taken) -> ApiError:
    """The 429 of a request some of whose rejected activities the cap refused."""
    wait = max(1, math.ceil(taken.reset))
    what = "1 rejected activity" if refused == 1 else f"{refused} rejected activities"
    verb = "was" if refused == 1 else "were"
    return ApiError(
        429,
        "rate_limited",
        f"Too many rejected activities from this address in the last hour: {what} of this "
        f"request {verb} refused and not kept (the rest of it was handled as usual); retry in "
        f"{wait} s.",
        headers={
            "retry-after": str(wait),
            "ratelimit-limit": str(per_hour),
            "ratelimit-remaining": "0",
            "ratelimit-reset": str(wait),
        },
    )


async def submit_capped(
    hub: Hub, address: str | None, jobs: Sequence[Job]
) -> list[list[ActivityResult]]:
    """Submit ``jobs``, the jobs of one request, together; each one's results once committed.

    ``address`` is the key of a page's client address (``Hub.client_key``), None for a
    server's request, which is not capped. A page's jobs keep rejected activities within the
    room its address has left. Once every job is answered, raises a job's failure (nothing of
    that job was kept), else the 429 of :func:`over_cap` when the cap refused some of their
    rejected activities, else the ``contact_not_found`` of a job whose contact does not exist
    (its activities kept as rejected). A request cancelled while its jobs are written gives
    back what they did not use once they are answered, all the same.
    """
    per_hour = hub.settings.rejected_per_ip_per_hour
    writer = hub.writer
    if address is None or not per_hour:
        return list(await asyncio.gather(*(writer.submit_job(job) for job in jobs)))
    limiter = hub.rate_limiter
    taken = await limiter.take(
        rejected_limit(address, per_hour), sum(may_be_kept(job) for job in jobs)
    )
    for job, share in zip(jobs, shares(jobs, taken.count), strict=True):
        job.rejected_room = share
    # Shielded: a request cancelled while its jobs are written (the client gone, a deadline)
    # still gives back, once they are answered, the room they did not use.
    written = asyncio.ensure_future(_written(hub, taken, jobs))
    _writing.add(written)  # held until done: the loop keeps only a weak reference
    written.add_done_callback(_writing.discard)
    outcomes, refused, failures, answered = await asyncio.shield(written)
    if failures:
        raise failures[0]
    if refused:
        raise over_cap(per_hour, refused, taken)
    if answered:
        raise answered[0]
    return [outcome for outcome in outcomes if not isinstance(outcome, BaseException)]


async def _written(
    hub: Hub, taken: Taken, jobs: Sequence[Job]
) -> tuple[
    list[list[ActivityResult] | BaseException], int, list[BaseException], list[BaseException]
]:
    """Each job's outcome once answered, and, after the room they did not use was given back,
    how many rejected activities were refused for want of room, the failures (nothing of
    those jobs kept) and the answers of jobs whose contact was missing (kept)."""
    outcomes = await asyncio.gather(
        *(hub.writer.submit_job(job) for job in jobs), return_exceptions=True
    )
    kept = refused = 0
    failures: list[BaseException] = []
    answered: list[BaseException] = []
    for job, outcome in zip(jobs, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            # A job whose contact was missing was committed (its activities kept as rejected,
            # then contact_not_found raised); any other failure committed nothing of it.
            if not (isinstance(outcome, ApiError) and job.missing_contact):
                failures.append(outcome)
                continue
            answered.append(outcome)
        kept += job.rejected_kept
        refused += job.rejected_refused
    try:
        await hub.rate_limiter.give_back(taken, kept)
    except Exception:
        # The jobs are committed: their answer stands. The room stays taken for the hour.
        log.warning("could not give back the unused room of the rejected-activities cap")
    return list(outcomes), refused, failures, answered

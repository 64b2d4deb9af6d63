"""The browser rules for what pages send through a collector (PostHog, Snowplow, Segment's
analytics.js) with a publishable key, as the browser endpoints apply them
(docs/browser-tracking.md): only client-side types, the types' rate limits per contact and per
address, and new contacts within the address's hourly limit.

The consent rule (a channel's tracking consent) is the writer's: the collectors submit a page's
activities with ``require_consent``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

from anyio import to_thread

from waypost.error_words import quoted
from waypost.errors import ApiError
from waypost.pipeline.catalog import Snapshot
from waypost.pipeline.prepare import Accepted, Rejected, reject
from waypost.ratelimit import Limit, retry_after
from waypost.transports.contact_limits import contact_limit_key

if TYPE_CHECKING:
    from waypost.hub import Hub


class CreatesContacts(Protocol):
    """A collector's plan: how many contacts it created."""

    created: int


PlanT = TypeVar("PlanT", bound=CreatesContacts)


async def plan_new_contacts(
    hub: Hub, ip: str | None, people: int, plan: Callable[[int | None], PlanT]
) -> PlanT:
    """``plan(may_create)`` on a worker thread. For a page (its address ``ip``; None for a
    server's request, which has no such limit) ``may_create`` is how many of the ``people``
    the request names may be new contacts within the address's hourly limit
    (WAYPOST_NEW_CONTACTS_PER_IP_PER_HOUR), as the browser endpoints count them: a
    publishable key is public, and each contact costs storage. Those are taken from the limit
    before the plan and the ones it did not use are given back after it. Events that need a
    contact past them are kept as rejected (``rate_limited``); events of known contacts are
    stored as usual."""
    per_hour = hub.settings.new_contacts_per_ip_per_hour
    if ip is None or not per_hour:
        return await to_thread.run_sync(plan, None)
    limiter = hub.rate_limiter
    taken = await limiter.take(Limit(f"contacts:ip:{ip}", per_hour, 3600), people)
    try:
        planned = await to_thread.run_sync(plan, taken.count)
    except Exception:
        await limiter.give_back(taken, 0)
        raise
    await limiter.give_back(taken, planned.created)
    return planned


async def page_rules(
    hub: Hub, item: Accepted | Rejected, snapshot: Snapshot, contact: uuid.UUID, ip: str
) -> Accepted | Rejected:
    """``item`` as a page may log it: a type that is not client-side is a 404 (a page learns
    nothing of the types it may not log), and over the type's rate limits a 429, each kept as
    rejected. One refused without being kept (an erased person's) stays so."""
    if isinstance(item, Rejected) and not item.keep:
        return item
    code = item.type.code_name if isinstance(item, Accepted) else item.type_code
    info = item.type if isinstance(item, Accepted) else snapshot.types.get(code or "")
    if code is not None and (info is None or not info.enabled or not info.client_side):
        return reject(
            ApiError(
                404,
                "activity_type_not_found",
                f"The activity type {quoted(code)} does not exist or is not enabled for "
                "client-side logging.",
                "type",
            ),
            item.payload,
            code,
        )
    if isinstance(item, Rejected):
        return item
    kind = item.type
    limits = []
    if kind.per_contact is not None:
        limits.append(
            Limit(
                contact_limit_key(kind.id, contact),
                kind.per_contact.limit,
                kind.per_contact.window_seconds,
            )
        )
    if kind.per_ip is not None:
        limits.append(Limit(f"{kind.id}:ip:{ip}", kind.per_ip.limit, kind.per_ip.window_seconds))
    if not limits:
        return item
    decisions = await hub.rate_limiter.hit(limits)
    if all(d.allowed for d in decisions):
        return item
    wait = retry_after(decisions)
    return reject(
        ApiError(
            429, "rate_limited", f"Over the rate limit of {kind.code_name!r}; retry in {wait} s."
        ),
        item.payload,
        kind.code_name,
    )

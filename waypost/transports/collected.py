"""What the collector transports (PostHog, Snowplow) share once their events are decoded.

A collector authenticates with a tracking key (a server) or a publishable key (a page of the
channel's allowed origins, see :class:`~waypost.transports.frame.Transport.browser_keys`),
hands its :class:`~waypost.domain.collected.Collected` events to the collector service (which
resolves contacts and types in one transaction), and stores the activities through the
writer. Activities from pages follow the browser's rules (docs/browser-tracking.md): only
client-side types, the types' rate limits per contact and per address, and on a channel with a
tracking consent only for contacts who agreed to it; what they leave rejected is kept within the
address's hourly cap (waypost/transports/rejected_cap.py). The request is answered once
everything is committed.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections import defaultdict
from typing import ClassVar

from waypost.domain.collected import Collected, page_claims
from waypost.domain.suppressions import contact_erased
from waypost.errors import ApiError
from waypost.ids import utcnow
from waypost.pipeline.catalog import ChannelInfo, Snapshot
from waypost.pipeline.prepare import Accepted, Rejected, prepare
from waypost.pipeline.writer_decision import ActivityResult, Job
from waypost.services.collectors import IdKinds, Plan
from waypost.transports.contact_limits import follow_merges
from waypost.transports.frame import IngestRequest, Transport
from waypost.transports.page_rules import page_rules, plan_new_contacts
from waypost.transports.rejected_cap import submit_capped

PUBLISHABLE = "publishable"


class CollectorTransport(Transport):
    """A collector's frame: its ids' kinds, its source name, and :meth:`collect`."""

    kinds: ClassVar[IdKinds]
    source: ClassVar[str]

    async def collect(
        self,
        request: IngestRequest,
        token: str | None,
        events: list[Collected],
        received_at: dt.datetime | None = None,
    ) -> list[ActivityResult | None]:
        """Authenticate with ``token`` (unless the request is already), then apply and store
        ``events``; returns once the transaction that holds them has committed, with what
        became of each event's activity (None for an event that logs none)."""
        channel = request.channel or await self.authenticate(request, token)
        limit = self.settings.max_activities_per_request
        if len(events) > limit:
            raise ApiError(
                413,
                "payload_too_large",
                f"A request holds at most {limit} events (WAYPOST_MAX_ACTIVITIES_PER_REQUEST); "
                f"this one has {len(events)}.",
            )
        snapshot = request.snapshot
        assert snapshot is not None  # authenticate() took it
        if not events:
            return []
        when = received_at or utcnow()
        from_page = request.key is not None and request.key.access == PUBLISHABLE
        if from_page:
            events = [page_claims(event) for event in events]
        ip = self.hub.client_key(request.scope) if from_page else None
        # Each person the events name may be new (events of the same ids are one person at
        # most).
        people = len({(e.person, e.user, e.anonymous, e.others, e.alias) for e in events})
        plan = await plan_new_contacts(
            self.hub,
            ip,
            people,
            functools.partial(
                self.hub.collectors.plan, channel, snapshot, events, self.kinds, page=from_page
            ),
        )
        if plan.erased and plan.erased == len(events):
            # Every event named an erased contact: nothing was stored, and the caller is told
            # why. (With other events beside them, those are stored as usual.)
            raise contact_erased("The contact these events name")
        await follow_merges(self.hub.rate_limiter, snapshot, plan.merges)
        results: list[ActivityResult | None] = [None] * len(events)
        await self._store(channel, snapshot, plan, when, from_page, ip or "", results)
        return results

    async def _store(
        self,
        channel: ChannelInfo,
        snapshot: Snapshot,
        plan: Plan,
        received_at: dt.datetime,
        from_page: bool,
        ip: str,
        results: list[ActivityResult | None],
    ) -> None:
        by_contact: dict[uuid.UUID | None, list[Accepted | Rejected]] = defaultdict(list)
        # The event of each item, by contact, to put the results back in the events' order.
        indexes: dict[uuid.UUID | None, list[int]] = defaultdict(list)
        # Events that could not be mapped belong to no contact; submitted first, so they are
        # kept in the order they came.
        for index, rejected in plan.rejected:
            by_contact[None].append(rejected)
            indexes[None].append(index)
        limit = self.settings.max_activity_bytes
        for planned in plan.activities:
            item = prepare(planned.activity, snapshot, received_at, limit)
            if isinstance(item, Accepted) and planned.flag is not None:
                item.flags = [*(item.flags or []), planned.flag]
            if from_page:
                item = await page_rules(self.hub, item, snapshot, planned.contact, ip)
            by_contact[planned.contact].append(item)
            indexes[planned.contact].append(planned.index)
        jobs = [
            Job(
                channel,
                contact,
                items,
                received_at,
                self.source,
                require_consent=(channel.tracking_consent is not None) if from_page else None,
            )
            for contact, items in by_contact.items()
        ]
        # A page's rejected activities are kept within its address's hourly cap.
        stored = await submit_capped(self.hub, ip if from_page else None, jobs)
        for contact, outcomes in zip(by_contact, stored, strict=True):
            for index, outcome in zip(indexes[contact], outcomes, strict=True):
                results[index] = outcome

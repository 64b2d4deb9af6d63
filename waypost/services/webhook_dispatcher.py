"""The webhook dispatcher: sends the outbox's messages, retries them, and records every
attempt (docs/playbooks.md, "Delivery").

One background thread runs an asyncio loop, with an httpx transport (HTTP/1.1, keep-alive)
per slot of each endpoint that has calls to make (``webhook_clients``). The database is
synchronous, so its work runs on a thread of its own: a cycle there (``webhook_cycles``)
records the attempts that ended since the last one, in one transaction, and claims what
there is room for. Each endpoint has its own lane: at most
``WAYPOST_WEBHOOK_CONCURRENCY_PER_ENDPOINT`` calls in flight, and some more claimed in
advance, so an endpoint that is slow or dead only ever holds up its own messages.

The dispatcher looks for due messages when woken (a message was just written), when a retry
it scheduled comes due, when a lane with more waiting frees a slot, and every
``WAYPOST_WEBHOOK_POLL_SECONDS`` (messages of other processes, leases that ran out).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import os
import random
import secrets
import socket
import threading
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field

import httpx

from waypost.clock import Clock
from waypost.domain.webhook_schedule import parse_schedule
from waypost.metrics import Metrics
from waypost.records.outbox import DELIVERED, PENDING
from waypost.services.webhook_claims import Claimed
from waypost.services.webhook_clients import EndpointClients
from waypost.services.webhook_cycles import Cycles, Done, Work
from waypost.services.webhook_results import Outcome, outcome_of
from waypost.services.webhook_sending import attempt, destination_check
from waypost.settings import Settings
from waypost.store import StorageUnavailable, Store

log = logging.getLogger("waypost.webhooks")

# Added to a lease beyond the two timeouts it covers (a wait in the lane, then the call):
# time to record the answer, and clocks of several nodes a little apart.
LEASE_MARGIN = 5.0
# How long stop() lets calls in flight finish before leaving them to their leases.
STOP_GRACE = 5.0
# An endpoint's lane holds, besides its calls in flight, about this many seconds of its calls
# claimed in advance (by how long its calls have been taking), at least one call per slot and
# at most MAX_PREFETCH: a fast endpoint's backlog drains without a database round trip per
# call, and a slow one's claims do not wait in the lane for long.
PREFETCH_SECONDS = 0.5
MAX_PREFETCH = 256
# The least time between two database cycles: the answers that come in meanwhile are recorded
# together, and the database thread leaves the loop's thread time to send.
MIN_CYCLE_SECONDS = 0.05
DNS_THREADS = 4
# A slot's transport (its kept-alive connection) is closed after this long unused.
CLIENT_IDLE_SECONDS = 60.0


def _node_id() -> str:
    return f"{socket.gethostname()[:32]}-{os.getpid()}-{secrets.token_hex(6)}"


@dataclass
class _Lane:
    # The slots free for a call (each with a transport of its own), and the messages waiting.
    free: list[int]
    queue: deque[Claimed] = field(default_factory=deque)
    running: int = 0


class WebhookDispatcher:
    """Sends due webhook messages until stopped; ``transport`` replaces httpx's network
    transport (tests). :meth:`start` and :meth:`stop` run it; :meth:`wake` (from any thread)
    makes it look for due messages at once, and starts it if it never ran."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        clock: Clock,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        lease_margin: float = LEASE_MARGIN,
        stop_grace: float = STOP_GRACE,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics if metrics is not None else Metrics()
        self.settings = settings
        self.clock = clock
        self.transport = transport
        self.schedule = parse_schedule(settings.webhook_retry_schedule)
        self.concurrency = settings.webhook_concurrency_per_endpoint
        self.timeout = settings.webhook_timeout_seconds
        self.stop_grace = stop_grace
        self.node = _node_id()
        self.cycles = Cycles(
            store,
            clock,
            self.node,
            lease=dt.timedelta(seconds=2 * self.timeout + lease_margin),
            disable_after=dt.timedelta(days=settings.webhook_disable_after_days),
        )
        # How many attempts this dispatcher has made.
        self.attempts = 0
        self._random = random.Random()  # noqa: S311 - jitter, not a secret
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = False
        self._wake_pending = False
        # How long each endpoint's calls have been taking (a moving average, in seconds).
        self._durations: dict[uuid.UUID, float] = {}
        self._reset()

    def _reset(self) -> None:
        # What belongs to the loop's thread, new for each start.
        self._event = asyncio.Event()
        self._stop_event = asyncio.Event()
        self._stopping = False
        self._claim_wanted = True
        self._discover = True
        self._lanes: dict[uuid.UUID, _Lane] = {}
        self._backlogged: set[uuid.UUID] = set()
        self._gone: set[uuid.UUID] = set()
        self._outcomes: list[Outcome] = []
        self._releases: list[uuid.UUID] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._fired_for: dt.datetime | None = None
        self._clients = EndpointClients(self.timeout, self.transport)
        self._db: ThreadPoolExecutor | None = None
        self._dns: ThreadPoolExecutor | None = None

    # -- any thread -----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Started and not stopped."""
        return self._thread is not None

    def start(self) -> None:
        """Start the background thread, unless it runs."""
        with self._lock:
            if self._thread is not None:
                return
            self._stopped = False
            self._reset()
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._thread = threading.Thread(
                target=self._run, args=(loop,), name="waypost-webhooks", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop: claim nothing more, give back what was claimed and not sent, let calls in
        flight finish for a few seconds (the rest is left to its lease), record, end."""
        with self._lock:
            self._stopped = True
            thread, loop = self._thread, self._loop
            self._thread = None
        if thread is None or loop is None:
            return
        with suppress(RuntimeError):  # the loop already ended
            loop.call_soon_threadsafe(self._begin_stop)
        thread.join()

    def wake(self) -> None:
        """Look for due messages now. Thread-safe and cheap: called after every commit that
        wrote messages. Starts a dispatcher that never ran; one that was stopped stays so
        (what it is woken for waits in the outbox for the next start, here or elsewhere)."""
        if self._stopped:
            return
        loop = self._loop
        if loop is None:
            self.start()  # a new dispatcher looks for due messages first thing
            return
        if self._wake_pending:
            return
        self._wake_pending = True
        with suppress(RuntimeError):
            loop.call_soon_threadsafe(self._woken)

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main())
        except Exception:  # pragma: no cover - a bug; nothing else would report it
            log.exception("the webhook dispatcher stopped")
        finally:
            loop.close()

    # -- the loop's thread ----------------------------------------------------------------

    def _woken(self) -> None:
        self._wake_pending = False
        self._want_claim()

    def _want_claim(self) -> None:
        self._claim_wanted = True
        self._discover = True
        self._event.set()

    def _begin_stop(self) -> None:
        self._stopping = True
        self._stop_event.set()
        self._event.set()

    async def _main(self) -> None:
        self._db = ThreadPoolExecutor(1, thread_name_prefix="waypost-webhooks-db")
        self._dns = ThreadPoolExecutor(DNS_THREADS, thread_name_prefix="waypost-webhooks-dns")
        self._check = destination_check(self.settings.webhook_allow_private, self._dns)
        poller = asyncio.create_task(self._poll())
        self._want_claim()  # what was left due before it started
        try:
            await self._drive()
        finally:
            poller.cancel()
            await self._finish()
            await self._clients.close()
            self._dns.shutdown(wait=False, cancel_futures=True)
            self._db.shutdown(wait=True)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.settings.webhook_poll_seconds)
            self._want_claim()
            now = asyncio.get_running_loop().time()
            await self._clients.close_idle(now, CLIENT_IDLE_SECONDS, self._lanes)

    async def _drive(self) -> None:
        loop = asyncio.get_running_loop()
        last = -math.inf
        while not self._stopping:
            await self._event.wait()
            await self._pause(last + MIN_CYCLE_SECONDS - loop.time())
            self._event.clear()
            if self._stopping:
                break
            last = loop.time()
            work = self._take_work()
            if work is None:
                continue
            try:
                done = await loop.run_in_executor(self._db, self.cycles.run, work)
            except StorageUnavailable as exc:
                log.warning("webhook delivery postponed, the database is unavailable: %s", exc)
                # Nothing is lost: the answers are recorded once the database is back.
                self._outcomes[:0] = work.outcomes
                self._releases[:0] = work.releases
                self._claim_wanted = self._discover = True
                await self._pause(1.0)
                continue
            except Exception:
                # These messages stay leased, and are sent again once their leases run out.
                log.exception("recording webhook attempts failed")
                await self._pause(1.0)
                continue
            self._apply(work, done)
            if self._outcomes or self._releases or self._claim_wanted:
                self._event.set()

    async def _pause(self, seconds: float) -> None:
        if seconds > 0:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stop_event.wait(), seconds)
        self._event.set()

    def _take_work(self) -> Work | None:
        outcomes, self._outcomes = self._outcomes, []
        releases, self._releases = self._releases, []
        wanted = self._claim_wanted and not self._stopping
        discover = self._discover
        self._claim_wanted = self._discover = False
        if not (outcomes or releases or wanted):
            return None
        held = {e: lane.running + len(lane.queue) for e, lane in self._lanes.items()}
        limits = {e: self._lane_limit(e) for e in self._lanes}
        return Work(outcomes, releases, wanted, held, limits, 2 * self.concurrency, discover)

    def _lane_limit(self, endpoint: uuid.UUID) -> int:
        took = self._durations.get(endpoint)
        if took is None:
            return 2 * self.concurrency
        ahead = int(self.concurrency * PREFETCH_SECONDS / max(took, 0.001))
        return self.concurrency + min(MAX_PREFETCH, max(self.concurrency, ahead))

    def _apply(self, work: Work, done: Done) -> None:
        self._gone -= {o.endpoint_id for o in work.outcomes if o.gone}
        for endpoint, reason in done.disabled.items():
            log.warning("webhook endpoint %s disabled (%s)", endpoint, reason)
            lane = self._lanes.get(endpoint)
            if lane is not None:
                lane.queue.clear()  # failed with the endpoint's other pending messages
                self._pump(endpoint)
        self._backlogged -= done.looked - done.backlogged
        self._backlogged |= done.backlogged
        self._backlogged -= done.disabled.keys()
        if done.next_due is not None:
            self._schedule(done.next_due)
        touched = set()
        for message in done.claimed:
            if message.endpoint.id in self._gone:
                continue  # the endpoint answered 410: the record of it fails this one too
            lane = self._lanes.get(message.endpoint.id)
            if lane is None:
                lane = self._lanes[message.endpoint.id] = _Lane(list(range(self.concurrency)))
            lane.queue.append(message)
            touched.add(message.endpoint.id)
        for endpoint in touched:
            self._pump(endpoint)

    def _schedule(self, due: dt.datetime) -> None:
        if self._fired_for is not None and due <= self._fired_for:
            return  # already looked for it; the poll covers a clock that has not moved
        delay = (due - self.clock.now()).total_seconds()
        if delay >= self.settings.webhook_poll_seconds:
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + max(0.0, delay) + 0.002
        if self._timer is not None:
            if self._timer_at <= when:
                return
            self._timer.cancel()
        self._timer = loop.call_at(when, self._timer_fired, due)
        self._timer_at = when

    def _timer_fired(self, due: dt.datetime) -> None:
        self._timer = None
        self._timer_at = math.inf
        self._fired_for = due
        self._want_claim()

    def _pump(self, endpoint: uuid.UUID) -> None:
        lane = self._lanes.get(endpoint)
        if lane is None:
            return
        while lane.queue and lane.running < self.concurrency and not self._stopping:
            message = lane.queue.popleft()
            left = (message.lease_until - self.clock.now()).total_seconds()
            if left < self.timeout + 1.0:
                # It waited too long to be sent within its lease: give it back.
                self._releases.append(message.id)
                self._event.set()
                continue
            lane.running += 1
            slot = lane.free.pop()
            task = asyncio.get_running_loop().create_task(self._attempt(lane, slot, message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if not lane.queue and lane.running == 0:
            del self._lanes[endpoint]

    async def _attempt(self, lane: _Lane, slot: int, message: Claimed) -> None:
        endpoint = message.endpoint.id
        try:
            transport = self._clients.get(endpoint, slot, asyncio.get_running_loop().time())
            answer = await attempt(transport, message, self.clock, self._check, self.timeout)
            self.attempts += 1
            took = answer.duration_ms / 1000
            before = self._durations.get(endpoint)
            self._durations[endpoint] = took if before is None else 0.8 * before + 0.2 * took
            if answer.http_status == 410:
                self._gone.add(endpoint)
                lane.queue.clear()
            unit = self._random.random()
            outcome = outcome_of(message, answer, self.schedule, unit, self.clock)
            self._outcomes.append(outcome)
            self._count(message, outcome)
        finally:
            lane.running -= 1
            lane.free.append(slot)
            if endpoint in self._backlogged:
                self._claim_wanted = True
            self._pump(endpoint)
            self._event.set()

    def _count(self, message: Claimed, outcome: Outcome) -> None:
        if outcome.status == DELIVERED:
            self.metrics.webhook_attempts.labels("delivered").inc()
            lag = (outcome.at - message.created_at).total_seconds()
            self.metrics.webhook_lag.observe(max(0.0, lag))
        else:
            retrying = outcome.status == PENDING
            self.metrics.webhook_attempts.labels("retrying" if retrying else "failed").inc()

    async def _finish(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._tasks:
            _, running = await asyncio.wait(set(self._tasks), timeout=self.stop_grace)
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
        queued = [m.id for lane in self._lanes.values() for m in lane.queue]
        self._lanes.clear()
        work = Work(self._outcomes, self._releases + queued, False, {})
        self._outcomes, self._releases = [], []
        if not (work.outcomes or work.releases):
            return
        try:
            await asyncio.get_running_loop().run_in_executor(self._db, self.cycles.run, work)
        except Exception as exc:
            log.warning("webhook attempts left to their leases at stop: %s", exc)

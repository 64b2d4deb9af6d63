"""The webhook dispatcher: sends the outbox's messages, retries them, and records every
attempt (docs/playbooks.md, "Delivery").

One background thread runs an asyncio loop, with an ``httpx.AsyncClient`` (HTTP/1.1,
keep-alive) per endpoint that has calls to make: httpx's connection pool does work in
proportion to all the connections and calls it holds, on every call, so one pool for every
endpoint would make each call slower the more endpoints are busy.

The database is synchronous, so its work runs on a thread of its own: a cycle there records
the attempts that ended since the last one, in one transaction, and claims what there is room
for. Each endpoint has its own lane: at most ``WAYPOST_WEBHOOK_CONCURRENCY_PER_ENDPOINT``
calls in flight, and some more claimed in advance, so an endpoint that is slow or dead only
ever holds up its own messages.

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
import ssl
import threading
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version

import httpx
from sqlalchemy import Connection

from waypost.clock import Clock
from waypost.domain.webhook_schedule import next_wait, parse_schedule
from waypost.domain.webhook_urls import check_url, literal_address
from waypost.records.outbox import DELIVERED, FAILED, PENDING
from waypost.services.webhook_addresses import check_destination
from waypost.services.webhook_claims import (
    Claimed,
    Destination,
    claim,
    due_endpoints,
    next_due_at,
    release,
)
from waypost.services.webhook_results import Outcome, fail_pending, record
from waypost.services.webhook_sending import Answer, attempt
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
MIN_CYCLE_SECONDS = 0.01
DNS_THREADS = 4
# An endpoint's client (its pool of kept-alive connections) is closed after this long unused.
CLIENT_IDLE_SECONDS = 60.0


def _user_agent() -> str:
    try:
        return f"Waypost-Webhooks/{version('waypost')}"
    except PackageNotFoundError:  # pragma: no cover - run from a source tree not installed
        return "Waypost-Webhooks"


def _node_id() -> str:
    return f"{socket.gethostname()[:32]}-{os.getpid()}-{secrets.token_hex(6)}"


@dataclass
class _Lane:
    queue: deque[Claimed] = field(default_factory=deque)
    running: int = 0


@dataclass(frozen=True, slots=True)
class _Work:
    outcomes: list[Outcome]
    releases: list[uuid.UUID]
    claim: bool
    held: dict[uuid.UUID, int]
    # How many messages each endpoint's lane may hold; ``lane`` for the others.
    limits: dict[uuid.UUID, int] = field(default_factory=dict)
    lane: int = 0
    # Woken, polled or timed rather than refilling lanes: also find the next due time.
    discover: bool = False


@dataclass(slots=True)
class _Done:
    claimed: list[Claimed] = field(default_factory=list)
    # Endpoints the claim looked at, and those of them that had more due than it took.
    looked: set[uuid.UUID] = field(default_factory=set)
    backlogged: set[uuid.UUID] = field(default_factory=set)
    disabled: dict[uuid.UUID, str] = field(default_factory=dict)
    next_due: dt.datetime | None = None


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
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.transport = transport
        self.schedule = parse_schedule(settings.webhook_retry_schedule)
        self.concurrency = settings.webhook_concurrency_per_endpoint
        self.timeout = settings.webhook_timeout_seconds
        self.lease = dt.timedelta(seconds=2 * self.timeout + lease_margin)
        self.disable_after = dt.timedelta(days=settings.webhook_disable_after_days)
        self.stop_grace = stop_grace
        self.node = _node_id()
        # How many attempts this dispatcher has made.
        self.attempts = 0
        self._random = random.Random()  # noqa: S311 - jitter, not a secret
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = False
        self._wake_pending = False
        # The rest belongs to the loop's thread.
        self._event = asyncio.Event()
        self._stop_event = asyncio.Event()
        self._stopping = False
        self._claim_wanted = True
        self._discover = True
        self._lanes: dict[uuid.UUID, _Lane] = {}
        # How long each endpoint's calls have been taking (a moving average, in seconds).
        self._durations: dict[uuid.UUID, float] = {}
        self._backlogged: set[uuid.UUID] = set()
        self._gone: set[uuid.UUID] = set()
        self._outcomes: list[Outcome] = []
        self._releases: list[uuid.UUID] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._fired_for: dt.datetime | None = None
        # Each endpoint's client, and when it was last used (the loop's time); or, with a
        # transport given, one client for all.
        self._clients: dict[uuid.UUID, tuple[httpx.AsyncClient, float]] = {}
        self._client: httpx.AsyncClient | None = None
        self._tls: ssl.SSLContext | None = None
        self._db: ThreadPoolExecutor | None = None
        self._dns: ThreadPoolExecutor | None = None

    # -- any thread -----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Started and not stopped."""
        return self._thread is not None

    def start(self) -> None:
        """Start the background thread (once; not again after :meth:`stop`)."""
        with self._lock:
            if self._thread is not None or self._stopped:
                return
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
        wrote messages."""
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
        poller = asyncio.create_task(self._poll())
        self._want_claim()  # what was left due before it started
        try:
            await self._drive()
        finally:
            poller.cancel()
            await self._finish()
            await self._close_clients(None)
            self._dns.shutdown(wait=False, cancel_futures=True)
            self._db.shutdown(wait=True)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.settings.webhook_poll_seconds)
            self._want_claim()
            await self._close_clients(CLIENT_IDLE_SECONDS)

    async def _close_clients(self, idle: float | None) -> None:
        # The clients unused for ``idle`` seconds; all of them when None.
        now = asyncio.get_running_loop().time()
        for endpoint, (client, used) in list(self._clients.items()):
            if idle is None or (now - used >= idle and endpoint not in self._lanes):
                del self._clients[endpoint]
                await client.aclose()
        if idle is None and self._client is not None:
            await self._client.aclose()

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
                done = await loop.run_in_executor(self._db, self._cycle, work)
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

    def _take_work(self) -> _Work | None:
        outcomes, self._outcomes = self._outcomes, []
        releases, self._releases = self._releases, []
        wanted = self._claim_wanted and not self._stopping
        discover = self._discover
        self._claim_wanted = self._discover = False
        if not (outcomes or releases or wanted):
            return None
        held = {e: lane.running + len(lane.queue) for e, lane in self._lanes.items()}
        limits = {e: self._lane_limit(e) for e in self._durations}
        return _Work(outcomes, releases, wanted, held, limits, 2 * self.concurrency, discover)

    def _lane_limit(self, endpoint: uuid.UUID) -> int:
        took = self._durations.get(endpoint)
        if took is None:
            return 2 * self.concurrency
        ahead = int(self.concurrency * PREFETCH_SECONDS / max(took, 0.001))
        return self.concurrency + min(MAX_PREFETCH, max(self.concurrency, ahead))

    def _cycle(self, work: _Work) -> _Done:
        """On the database thread: record, give back, claim."""
        done = _Done(
            next_due=min(
                (o.next_attempt_at for o in work.outcomes if o.next_attempt_at is not None),
                default=None,
            )
        )
        if not (work.outcomes or work.releases):
            if not work.claim:
                return done
            # Nothing to write unless something is due: an idle poll only reads.
            with self.store.read() as conn:
                if not self._look(conn, work, done):
                    return done
        with self.store.write() as conn:
            now = self.clock.now()
            done.disabled.update(record(conn, self.node, work.outcomes, now, self.disable_after))
            release(conn, self.node, work.releases, now)
            found = self._look(conn, work, done) if work.claim else []
            # Messages written for an endpoint while it was being disabled.
            fail_pending(conn, [d.id for d in found if not d.enabled], now)
            lease_until = now + self.lease
            for destination in found:
                if not destination.enabled or destination.id in done.disabled:
                    continue
                limit = work.limits.get(destination.id, work.lane)
                free = limit - work.held.get(destination.id, 0)
                taken = claim(conn, destination, self.node, now, lease_until, free)
                done.claimed.extend(taken)
                done.looked.add(destination.id)
                if len(taken) >= free:
                    done.backlogged.add(destination.id)
        return done

    def _look(self, conn: Connection, work: _Work, done: _Done) -> list[Destination]:
        # The endpoints with due messages and room in their lanes; and, when not only
        # refilling lanes, when the next message comes due (for the timer).
        now = self.clock.now()
        full = [e for e, held in work.held.items() if held >= work.limits.get(e, work.lane)]
        found = due_endpoints(conn, now, full)
        if work.discover:
            later = next_due_at(conn, now)
            if later is not None and (done.next_due is None or later < done.next_due):
                done.next_due = later
        return found

    def _apply(self, work: _Work, done: _Done) -> None:
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
            self._lanes.setdefault(message.endpoint.id, _Lane()).queue.append(message)
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
            task = asyncio.get_running_loop().create_task(self._attempt(lane, message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if not lane.queue and lane.running == 0:
            del self._lanes[endpoint]

    async def _attempt(self, lane: _Lane, message: Claimed) -> None:
        endpoint = message.endpoint.id
        try:
            client = self._http(endpoint)
            answer = await attempt(client, message, self.clock, self._check, self.timeout)
            self.attempts += 1
            took = answer.duration_ms / 1000
            before = self._durations.get(endpoint)
            self._durations[endpoint] = took if before is None else 0.8 * before + 0.2 * took
            if answer.http_status == 410:
                self._gone.add(endpoint)
                lane.queue.clear()
            self._outcomes.append(self._outcome(message, answer))
        finally:
            lane.running -= 1
            if endpoint in self._backlogged:
                self._claim_wanted = True
            self._pump(endpoint)
            self._event.set()

    def _outcome(self, message: Claimed, answer: Answer) -> Outcome:
        status, next_at = DELIVERED, None
        if not answer.succeeded:
            wait = next_wait(
                self.schedule, message.attempt, self._random.random(), answer.retry_after
            )
            if wait is None:
                status = FAILED
            else:
                status, next_at = PENDING, self.clock.now() + dt.timedelta(seconds=wait)
        return Outcome(
            message_id=message.id,
            endpoint_id=message.endpoint.id,
            attempt=message.attempt,
            at=answer.at,
            http_status=answer.http_status,
            duration_ms=answer.duration_ms,
            error=answer.error,
            response=answer.response,
            status=status,
            next_attempt_at=next_at,
        )

    async def _check(self, url: str) -> None:
        allow = self.settings.webhook_allow_private
        host, _ = check_url(url)
        if allow or literal_address(host) is not None:
            check_destination(url, allow)  # no name to resolve: no I/O
            return
        await asyncio.get_running_loop().run_in_executor(self._dns, check_destination, url, allow)

    def _http(self, endpoint: uuid.UUID) -> httpx.AsyncClient:
        if self.transport is not None:
            if self._client is None:
                self._client = self._new_client()
            return self._client
        entry = self._clients.get(endpoint)
        client = entry[0] if entry is not None else self._new_client()
        self._clients[endpoint] = (client, asyncio.get_running_loop().time())
        return client

    def _new_client(self) -> httpx.AsyncClient:
        if self._tls is None:
            # Made once: loading the CA certificates takes milliseconds.
            self._tls = httpx.create_ssl_context()
        return httpx.AsyncClient(
            transport=self.transport,
            verify=self._tls,
            timeout=httpx.Timeout(self.timeout),
            follow_redirects=False,
            # The lane bounds the calls in flight; the pool need not.
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
            headers={"user-agent": _user_agent()},
            # Where webhooks go is the endpoint's URL, checked; no proxy from the environment
            # in between.
            trust_env=False,
        )

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
        work = _Work(self._outcomes, self._releases + queued, False, {})
        self._outcomes, self._releases = [], []
        if not (work.outcomes or work.releases):
            return
        try:
            await asyncio.get_running_loop().run_in_executor(self._db, self._cycle, work)
        except Exception as exc:
            log.warning("webhook attempts left to their leases at stop: %s", exc)

"""The sliding-window rate limiters: in process and in Redis, then shared by two server processes.

The semantics both backends must have, with ``limit`` L and ``window`` W: a hit at time t is
allowed when fewer than L recorded hits lie in (t - W, t], and is recorded only when every limit
checked with it allows it. An allowed hit answers ``remaining`` = L minus the hits in the window
now (this one included) and ``reset`` = seconds until the oldest of them leaves the window; a
refusal answers ``remaining`` 0 and ``reset`` = seconds until the window has room again.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import redis
import sqlalchemy as sa

from waypost.clock import FakeClock
from waypost.hub import Hub
from waypost.ratelimit import (
    Decision,
    Limit,
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    make_rate_limiter,
    retry_after,
)
from waypost.services.activity_types import ActivityType
from waypost.services.channels import Channel
from waypost.services.keys import CreatedKey
from waypost.settings import load_settings
from waypost.store.schema import activities, rejected_activities

if TYPE_CHECKING:
    from tests.server_support import ServedWaypost
else:
    from server_support import ServedWaypost

START = 1_800_000_000.0


@dataclass
class Backend:
    """One limiter on a fake clock, driven synchronously on an event loop of its own."""

    name: str
    limiter: RateLimiter
    clock: FakeClock
    loop: asyncio.AbstractEventLoop
    prefix: str = field(default_factory=lambda: uuid.uuid4().hex)

    def key(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    def limit(self, name: str, limit: int, window: float) -> Limit:
        return Limit(self.key(name), limit, window)

    def hit(self, *limits: Limit) -> list[Decision]:
        return self.loop.run_until_complete(self.limiter.hit(limits))

    def hit_at(self, offset: float, *limits: Limit) -> list[Decision]:
        self.clock.set(START + offset)
        return self.hit(*limits)

    def gather(self, count: int, *limits: Limit) -> list[list[Decision]]:
        async def many() -> list[list[Decision]]:
            return list(await asyncio.gather(*(self.limiter.hit(limits) for _ in range(count))))

        return self.loop.run_until_complete(many())


def _drop_keys(url: str, prefix: str) -> None:
    with redis.Redis.from_url(url) as client:
        names = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if names:
            client.delete(*names)


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """The in-process limiter or the Redis one (whose script takes "now" as an argument, so
    Redis' own time plays no part), both on a fake clock, Redis' on a prefix of its own."""
    clock = FakeClock(START)
    loop = asyncio.new_event_loop()
    limiter: RateLimiter
    prefix = ""
    if request.param == "memory":
        limiter = MemoryRateLimiter(clock)
    else:
        url: str = request.getfixturevalue("redis_url")
        prefix = f"waypost-test:{uuid.uuid4().hex}:"
        limiter = RedisRateLimiter(url, prefix=prefix, clock=clock)
    try:
        yield Backend(request.param, limiter, clock, loop)
    finally:
        loop.run_until_complete(limiter.close())
        loop.close()
        if prefix:
            _drop_keys(url, prefix)


def allowed(decisions: list[Decision]) -> bool:
    return all(d.allowed for d in decisions)


# -- one limit ------------------------------------------------------------------------------


def test_take_records_as_many_hits_as_the_window_has_room_for(backend: Backend) -> None:
    limit = backend.limit("many", 5, 60)
    run = backend.loop.run_until_complete
    backend.hit_at(0, limit)
    taken = run(backend.limiter.take(limit, 3))
    assert taken.count == 3
    assert backend.hit(limit)[0].remaining == 0  # 1 + 3 + this one
    assert run(backend.limiter.take(limit, 10)).count == 0
    # The hits not used are given back: two of the three.
    run(backend.limiter.give_back(taken, 1))
    assert run(backend.limiter.take(limit, 10)).count == 2
    assert not backend.hit(limit)[0].allowed
    # As any hit, they leave the window.
    backend.clock.set(START + 61)
    assert run(backend.limiter.take(limit, 10)).count == 5
    assert run(backend.limiter.take(limit, 0)).count == 0


def test_take_says_when_the_window_has_room_again(backend: Backend) -> None:
    """``reset``: seconds until the oldest hit in the window leaves it, the hits just taken
    included, for a Retry-After when fewer were taken than wanted."""
    limit = backend.limit("room", 3, 60)
    run = backend.loop.run_until_complete
    backend.clock.set(START)
    assert run(backend.limiter.take(limit, 2)).reset == pytest.approx(60)
    backend.clock.set(START + 10)
    some = run(backend.limiter.take(limit, 5))
    assert some.count == 1
    assert some.reset == pytest.approx(50)
    backend.clock.set(START + 20)
    none = run(backend.limiter.take(limit, 1))
    assert none.count == 0
    assert none.reset == pytest.approx(40)
    # One that wants none takes none and says nothing.
    assert run(backend.limiter.take(limit, 0)).reset == 0
    backend.clock.set(START + 60)
    again = run(backend.limiter.take(limit, 3))
    assert again.count == 2
    assert again.reset == pytest.approx(10)


def test_concurrent_takes_never_pass_the_limit(backend: Backend) -> None:
    limit = backend.limit("together", 10, 60)

    async def many() -> list[int]:
        taken = await asyncio.gather(*(backend.limiter.take(limit, 3) for _ in range(5)))
        return [t.count for t in taken]

    counts = backend.loop.run_until_complete(many())
    assert sum(counts) == 10
    assert not backend.hit(limit)[0].allowed


def test_exactly_limit_hits_pass_then_every_hit_is_refused(backend: Backend) -> None:
    lim = backend.limit("contact", 10, 100)
    for i in range(10):
        [decision] = backend.hit_at(i, lim)
        assert decision.allowed, i
        assert decision.remaining == 9 - i
        assert decision.limit == lim
    for offset in (9.0, 9.5, 50.0, 99.999):
        [decision] = backend.hit_at(offset, lim)
        assert not decision.allowed, offset
        assert decision.remaining == 0


def test_no_double_burst_at_the_window_edge(backend: Backend) -> None:
    """10 per 100 s: 10 at t=99 use the window up until t=199, whatever a fixed window thinks."""
    lim = backend.limit("edge", 10, 100)
    for _ in range(10):
        assert allowed(backend.hit_at(99, lim))
    # A fixed window [0, 100) / [100, 200) would allow 10 more from t=100: 20 within 2 s.
    for offset in (100, 101, 150, 198, 198.999):
        [decision] = backend.hit_at(offset, lim)
        assert not decision.allowed, offset
        assert decision.reset == pytest.approx(199 - offset, abs=1e-6)
    for i in range(10):
        [decision] = backend.hit_at(199, lim)
        assert decision.allowed, i
    assert not allowed(backend.hit_at(199, lim))
    assert not allowed(backend.hit_at(298.5, lim))
    assert allowed(backend.hit_at(299, lim))


def test_the_window_is_half_open(backend: Backend) -> None:
    """A hit at t counts in (t - W, t]: until just before t + W, not at t + W."""
    lim = backend.limit("one", 1, 10)
    assert allowed(backend.hit_at(0, lim))
    [decision] = backend.hit_at(9.999, lim)
    assert not decision.allowed
    assert decision.reset == pytest.approx(0.001, abs=1e-6)
    assert allowed(backend.hit_at(10, lim))
    assert not allowed(backend.hit_at(10, lim))


def test_any_window_holds_exactly_the_limit_against_a_model(backend: Backend) -> None:
    """Irregular traffic (bursts, gaps, equal times) against a reference sliding log: the same
    decisions, remaining and reset for every hit, and no window of W seconds ever holds more
    than L allowed hits."""
    limit, window = 7, 60.0
    lim = backend.limit("model", limit, window)
    rng = random.Random(20260131)  # noqa: S311 - a fixed, repeatable sequence
    now = 0.0
    log: list[float] = []  # the reference: times of the allowed hits
    refusals = 0
    # Steps in eighths of a second, so that every time is exact in a float; mostly short ones,
    # with gaps of about a window now and then.
    steps = [0.0, 0.0, 0.5, 1.25, 3.0, 7.5] * 3 + [20.0, 59.875, 60.0, 61.0]
    for _ in range(400):
        now += rng.choice(steps)
        live = [t for t in log if t > now - window]
        expect_allowed = len(live) < limit
        [decision] = backend.hit_at(now, lim)
        assert decision.allowed == expect_allowed, (now, live)
        if expect_allowed:
            log.append(now)
            live.append(now)
            assert decision.remaining == limit - len(live)
            assert decision.reset == pytest.approx(live[0] + window - now, abs=1e-6)
        else:
            refusals += 1
            assert decision.remaining == 0
            assert decision.reset == pytest.approx(live[0] + window - now, abs=1e-6)
            assert decision.reset > 0
    assert refusals > 80  # the sequence really pushes against the limit
    assert len(log) > 200
    for i, start in enumerate(log):
        inside = [t for t in log[i:] if t < start + window]
        assert len(inside) <= limit, start


def test_remaining_reset_and_retry_after(backend: Backend) -> None:
    lim = backend.limit("values", 3, 100)
    first, second, third = (backend.hit_at(t, lim)[0] for t in (0, 10, 20))
    assert (first.remaining, second.remaining, third.remaining) == (2, 1, 0)
    # Seconds until the oldest hit in the window leaves it: room for one more from then on.
    assert first.reset == pytest.approx(100)
    assert second.reset == pytest.approx(90)
    assert third.reset == pytest.approx(80)
    assert retry_after([first, second, third]) == 0  # nothing refused: nothing to wait for

    [refused] = backend.hit_at(30, lim)
    assert (refused.allowed, refused.remaining) == (False, 0)
    assert refused.reset == pytest.approx(70)
    assert retry_after([refused]) == 70
    [refused] = backend.hit_at(30.4, lim)
    assert retry_after([refused]) == 70  # 69.6 s: whole seconds, rounded up
    [refused] = backend.hit_at(99.5, lim)
    assert refused.reset == pytest.approx(0.5)
    assert retry_after([refused]) == 1  # never 0 on a refusal

    [again] = backend.hit_at(100, lim)  # the hit at 0 has left; 10 and 20 remain
    assert (again.allowed, again.remaining) == (True, 0)
    assert again.reset == pytest.approx(10)


def test_keys_are_independent(backend: Backend) -> None:
    a, b = backend.limit("a", 1, 100), backend.limit("b", 1, 100)
    assert allowed(backend.hit_at(0, a))
    assert not allowed(backend.hit_at(1, a))
    assert allowed(backend.hit_at(1, b))


# -- several limits -------------------------------------------------------------------------


def test_several_limits_are_recorded_only_if_all_allow(backend: Backend) -> None:
    tight, loose = backend.limit("tight", 2, 100), backend.limit("loose", 5, 100)
    for t in (0, 1):
        assert allowed(backend.hit_at(t, tight, loose))
    refused_tight, allowing_loose = backend.hit_at(2, tight, loose)
    assert (refused_tight.allowed, refused_tight.remaining) == (False, 0)
    assert refused_tight.reset == pytest.approx(98)
    # The loose limit would allow, and says so, but the refused hit used none of it.
    assert allowing_loose.allowed
    assert allowing_loose.remaining == 3
    for t in (3, 4, 5):
        assert allowed(backend.hit_at(t, loose)), t
    assert not allowed(backend.hit_at(6, loose))
    # Order does not matter: a refusal by the second limit records nothing on the first.
    other = backend.limit("other", 3, 100)
    loose_refuses = backend.hit_at(7, other, loose)
    assert [d.allowed for d in loose_refuses] == [True, False]
    assert retry_after(loose_refuses) == 100 - 7
    for t in (8, 9, 10):
        assert allowed(backend.hit_at(t, other)), t
    assert not allowed(backend.hit_at(11, other))


def test_retry_after_waits_for_every_refusing_limit(backend: Backend) -> None:
    short, long = backend.limit("short", 1, 10), backend.limit("long", 1, 1000)
    assert allowed(backend.hit_at(0, short, long))
    decisions = backend.hit_at(5, short, long)
    assert [d.allowed for d in decisions] == [False, False]
    assert retry_after(decisions) == 995
    decisions = backend.hit_at(10, short, long)
    assert [d.allowed for d in decisions] == [True, False]
    assert retry_after(decisions) == 990


def test_concurrent_hits_never_pass_the_limit(backend: Backend) -> None:
    lim = backend.limit("burst", 10, 100)
    results = backend.gather(40, lim)
    assert sum(allowed(r) for r in results) == 10
    assert sorted(r[0].remaining for r in results if allowed(r)) == list(range(10))


def test_a_forgotten_hit_no_longer_counts(backend: Backend) -> None:
    lim = backend.limit("forget", 2, 60)
    first = backend.hit_at(0, lim)
    assert allowed(first)
    run = backend.loop.run_until_complete
    run(backend.limiter.forget(first))
    run(backend.limiter.forget(first))  # twice: nothing more is taken back
    assert [allowed(backend.hit_at(1, lim)) for _ in range(3)] == [True, True, False]
    # A refused hit recorded nothing, so there is nothing to forget.
    refused = backend.hit_at(2, lim)
    run(backend.limiter.forget(refused))
    assert not allowed(backend.hit_at(3, lim))


def test_a_merge_adds_the_sources_hits_to_the_target(backend: Backend) -> None:
    source, target = backend.limit("source", 5, 60), backend.limit("target", 5, 60)
    backend.hit_at(0, source)
    for _ in range(2):
        backend.hit_at(10, source)
    backend.hit_at(20, target)
    backend.clock.set(START + 30)
    move = (source.key, target.key, 60.0)
    run = backend.loop.run_until_complete
    run(backend.limiter.merge([move]))
    run(backend.limiter.merge([move]))  # sent twice: counted once
    decisions = backend.hit_at(30, target)
    assert decisions[0].remaining == 0  # 3 moved + 1 + this one
    assert not allowed(backend.hit_at(30, target))
    # The oldest moved hit leaves the window first, as it would have in the source.
    assert allowed(backend.hit_at(60, target))
    assert allowed(backend.hit_at(30, source))  # the source starts afresh


# -- Redis in real time -----------------------------------------------------------------------


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    prefix = f"waypost-test:{uuid.uuid4().hex}:"
    yield prefix
    _drop_keys(redis_url, prefix)


def test_redis_windows_slide_in_real_time_and_expire(redis_url: str, redis_prefix: str) -> None:
    """The real clock: a full 1 s window refuses, has room again once its oldest hit is 1 s
    old, and its key leaves Redis once its newest hit has left the window."""

    async def scenario() -> None:
        limiter = RedisRateLimiter(redis_url, prefix=redis_prefix)
        lim = Limit("real", 3, 1.0)
        try:
            for remaining in (2, 1, 0):
                [decision] = await limiter.hit([lim])
                assert (decision.allowed, decision.remaining) == (True, remaining)
            [refused] = await limiter.hit([lim])
            assert not refused.allowed
            assert 0 < refused.reset <= 1.0
            with redis.Redis.from_url(redis_url) as client:
                assert client.zcard(redis_prefix + "real") == 3
                assert 0 < client.pttl(redis_prefix + "real") <= 1000
            await asyncio.sleep(refused.reset + 0.05)
            [decision] = await limiter.hit([lim])
            assert decision.allowed
            await asyncio.sleep(1.05)
            with redis.Redis.from_url(redis_url) as client:
                assert not client.exists(redis_prefix + "real")
        finally:
            await limiter.close()

    asyncio.run(scenario())


def test_two_redis_limiters_share_one_window(redis_url: str, redis_prefix: str) -> None:
    async def scenario() -> None:
        first = RedisRateLimiter(redis_url, prefix=redis_prefix)
        second = RedisRateLimiter(redis_url, prefix=redis_prefix)
        lim = Limit("shared", 10, 60)
        try:
            for i in range(10):
                [decision] = await (first if i % 2 else second).hit([lim])
                assert decision.allowed, i
            for limiter in (first, second):
                [decision] = await limiter.hit([lim])
                assert not decision.allowed
        finally:
            await first.close()
            await second.close()

    asyncio.run(scenario())


def test_make_rate_limiter_picks_the_backend(redis_url: str) -> None:
    assert isinstance(make_rate_limiter(None), MemoryRateLimiter)
    assert isinstance(make_rate_limiter(""), MemoryRateLimiter)
    limiter = make_rate_limiter(redis_url)
    assert isinstance(limiter, RedisRateLimiter)
    asyncio.run(limiter.close())


def test_the_hub_uses_redis_when_configured(redis_url: str, database_url: str) -> None:
    hub = Hub(load_settings({"WAYPOST_DATABASE_URL": database_url}, redis_url=redis_url))
    try:
        assert isinstance(hub.rate_limiter, RedisRateLimiter)
        asyncio.run(hub.rate_limiter.close())
    finally:
        hub.close()
    hub = Hub(load_settings({"WAYPOST_DATABASE_URL": database_url}))
    try:
        assert isinstance(hub.rate_limiter, MemoryRateLimiter)
    finally:
        hub.close()


# -- two server processes sharing one limit ---------------------------------------------------

ORIGIN = "https://bank.example"


@pytest.mark.slow
def test_two_processes_share_the_limit_through_redis(
    database_url: str,
    redis_url: str,
    hub: Hub,
    make_channel: Callable[..., Channel],
    make_key: Callable[..., CreatedKey],
    make_type: Callable[..., ActivityType],
    tmp_path: Path,
) -> None:
    """Two `waypost serve` processes on one database and one Redis: 10 activities alternating
    between them pass, the 11th is refused by either."""
    channel = make_channel(kind="website", allowed_origins=[ORIGIN])
    key = make_key("publishable", channel.id).key
    kind = make_type(name="Loan calculator usage", client_side=True)
    contact = hub.contacts.create_anonymous().contact
    body = (
        f'{{"contact": "{contact}", "cookieLevel": "visitor", '
        f'"activity": {{"type": "{kind.code_name}", "value": "5000"}}}}'
    )
    with ExitStack() as stack:
        # Runs last, once both servers have stopped.
        stack.callback(_drop_keys, redis_url, f"waypost:rl:{kind.id}:")
        servers = [
            stack.enter_context(
                ServedWaypost(tmp_path, database_url, redis_url=redis_url, log_level="warning")
            ).start()
            for _ in range(2)
        ]

        def log(server: ServedWaypost) -> httpx.Response:
            return httpx.post(
                f"{server.url}/browser/activity",
                params={"key": key},
                content=body,
                headers={"Origin": ORIGIN, "Content-Type": "text/plain"},
                timeout=10,
            )

        for i in range(10):
            answer = log(servers[i % 2])
            assert answer.status_code == 202, (i, answer.text)
            assert answer.headers["RateLimit-Remaining"] == str(9 - i)
        for server in (servers[0], servers[1], servers[0]):
            answer = log(server)
            assert answer.status_code == 429, answer.text
            assert answer.json()["error"]["code"] == "rate_limited"
            assert 86000 < int(answer.headers["Retry-After"]) <= 86400
            assert answer.headers["RateLimit-Remaining"] == "0"
    with hub.store.read() as conn:
        stored = conn.execute(
            sa.select(sa.func.count())
            .select_from(activities)
            .where(activities.c.contact_id == contact, activities.c.type_id == kind.id)
        ).scalar_one()
        refused = conn.execute(
            sa.select(rejected_activities.c.reason, rejected_activities.c.source).where(
                rejected_activities.c.contact_id == contact
            )
        ).all()
    assert stored == 10
    assert [tuple(r) for r in refused] == [("rate_limited", "browser")] * 3

"""Sliding-window rate limits, in process or in Redis, behind one interface.

A window is a log of the moments activities were allowed: at any moment, the activities of the
last ``window`` seconds count, so there is no double burst at a window's edge (as a fixed
window allows). Several limits are checked together and recorded only if all allow, so an
activity refused by one limit uses up none of the others. The Redis backend does this in one
Lua script, atomically, so every process and node that shares the Redis shares the limits.
Both backends take the time from the clock they are given (the Lua script gets "now" as an
argument and never asks Redis for its own), so a test moves windows with a fake clock.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from waypost.clock import Clock, SystemClock


@dataclass(frozen=True)
class Limit:
    """At most ``limit`` hits per ``window`` seconds for ``key``."""

    key: str
    limit: int
    window: float


@dataclass(frozen=True)
class Decision:
    """The outcome for one limit. ``reset`` is when the window has room again (seconds)."""

    limit: Limit
    allowed: bool
    remaining: int
    reset: float
    # The hit recorded (when all limits allowed), for :meth:`RateLimiter.forget`.
    hit: str = ""


@dataclass(frozen=True)
class Taken:
    """The hits :meth:`RateLimiter.take` recorded on ``limit``, one member each. ``reset``:
    seconds until the oldest hit in the window (maybe one of these) leaves it, so that the
    window has room for one more (0 when it holds none, or none was wanted)."""

    limit: Limit
    members: tuple[str, ...] = ()
    reset: float = 0.0

    @property
    def count(self) -> int:
        return len(self.members)


def retry_after(decisions: Sequence[Decision]) -> int:
    """Whole seconds until every refusing limit has room again (at least 1)."""
    waits = [d.reset for d in decisions if not d.allowed]
    return max(1, math.ceil(max(waits))) if waits else 0


class RateLimiter(Protocol):
    """Check ``limits`` together; record a hit on each only if all allow."""

    async def hit(self, limits: Sequence[Limit]) -> list[Decision]: ...

    async def forget(self, decisions: Sequence[Decision]) -> None:
        """Take back the hits ``decisions`` recorded: the attempt turned out not to count."""

    async def take(self, limit: Limit, wanted: int) -> Taken:
        """Record up to ``wanted`` hits on ``limit`` at once, as many as its window has room
        for (for a request that may use several: it uses at most those taken)."""
        ...

    async def give_back(self, taken: Taken, keep: int) -> None:
        """Take back the hits of ``taken`` past its first ``keep``: they were not used."""

    async def merge(self, moves: Sequence[tuple[str, str, float]]) -> None:
        """For each ``(source, target, window)``, add the source key's hits in the window to
        the target key's and drop the source key: the counts follow a merge of contacts."""

    async def close(self) -> None: ...


class MemoryRateLimiter:
    """Windows kept in this process: right for one node."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock if clock is not None else SystemClock()
        self._logs: dict[str, deque[float]] = {}
        self._windows: dict[str, float] = {}
        self._lock = threading.Lock()
        self._hits = 0

    async def hit(self, limits: Sequence[Limit]) -> list[Decision]:
        return self.hit_sync(limits)

    def hit_sync(self, limits: Sequence[Limit]) -> list[Decision]:
        now = self._clock.time()
        with self._lock:
            self._hits += 1
            if self._hits % 10_000 == 0:
                self._prune(now)
            decisions = []
            for lim in limits:
                log = self._logs.setdefault(lim.key, deque())
                self._windows[lim.key] = lim.window
                while log and log[0] <= now - lim.window:
                    log.popleft()
                allowed = len(log) < lim.limit
                reset = (log[0] + lim.window - now) if log else 0.0
                decisions.append(Decision(lim, allowed, max(0, lim.limit - len(log)), reset))
            if all(d.allowed for d in decisions):
                for lim in limits:
                    self._logs[lim.key].append(now)
                # As the Redis backend: until the oldest hit in the window (maybe this one)
                # leaves it.
                decisions = [
                    Decision(
                        d.limit,
                        True,
                        d.remaining - 1,
                        self._logs[d.limit.key][0] + d.limit.window - now,
                        repr(now),
                    )
                    for d in decisions
                ]
            return decisions

    async def forget(self, decisions: Sequence[Decision]) -> None:
        with self._lock:
            for d in decisions:
                log = self._logs.get(d.limit.key)
                if d.hit and log is not None and float(d.hit) in log:
                    log.remove(float(d.hit))

    async def take(self, limit: Limit, wanted: int) -> Taken:
        if wanted <= 0:
            return Taken(limit)
        now = self._clock.time()
        with self._lock:
            self._hits += 1
            if self._hits % 10_000 == 0:
                self._prune(now)
            log = self._logs.setdefault(limit.key, deque())
            self._windows[limit.key] = limit.window
            while log and log[0] <= now - limit.window:
                log.popleft()
            count = max(0, min(wanted, limit.limit - len(log)))
            log.extend([now] * count)
            reset = log[0] + limit.window - now if log else 0.0
            return Taken(limit, (repr(now),) * count, reset)

    async def give_back(self, taken: Taken, keep: int) -> None:
        with self._lock:
            log = self._logs.get(taken.limit.key)
            for member in taken.members[max(0, keep) :]:
                if log is not None and float(member) in log:
                    log.remove(float(member))

    async def merge(self, moves: Sequence[tuple[str, str, float]]) -> None:
        now = self._clock.time()
        with self._lock:
            for source, target, window in moves:
                moved = self._logs.pop(source, None)
                self._windows.pop(source, None)
                if not moved or source == target:
                    continue
                hits = sorted([*self._logs.get(target, ()), *moved])
                self._logs[target] = deque(t for t in hits if t > now - window)
                self._windows[target] = max(window, self._windows.get(target, 0.0))

    def _prune(self, now: float) -> None:
        # Drop logs whose every hit has left its window, so memory follows current activity.
        stale = [
            key
            for key, log in self._logs.items()
            if not log or log[-1] <= now - self._windows.get(key, 0.0)
        ]
        for key in stale:
            del self._logs[key]
            self._windows.pop(key, None)

    async def close(self) -> None:
        return None


# KEYS: one sorted set per limit. ARGV: now, member, then (limit, window) per key.
# Returns, per key: allowed (0/1), count in window before this hit, seconds until room.
HIT_SCRIPT = """
local now = tonumber(ARGV[1])
local member = ARGV[2]
local results = {}
local all_allowed = true
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[1 + i * 2])
  local window = tonumber(ARGV[2 + i * 2])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  local reset = 0
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if oldest[2] then reset = tonumber(oldest[2]) + window - now end
  local allowed = count < limit
  if not allowed then all_allowed = false end
  results[i] = {allowed and 1 or 0, count, tostring(reset)}
end
if all_allowed then
  for i, key in ipairs(KEYS) do
    local window = tonumber(ARGV[2 + i * 2])
    redis.call('ZADD', key, now, member)
    redis.call('PEXPIRE', key, math.ceil(window * 1000))
  end
end
return results
"""

# KEYS: the limit's key. ARGV: now, limit, window, hits wanted, the hits' member prefix. Adds as
# many hits as the window has room for, up to those wanted; returns how many, and the seconds
# until the oldest hit in the window leaves it.
TAKE_SCRIPT = """
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local wanted = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = math.max(0, math.min(wanted, limit - redis.call('ZCARD', KEYS[1])))
for j = 1, count do
  redis.call('ZADD', KEYS[1], now, ARGV[5] .. ':' .. j)
end
if count > 0 then
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
end
local reset = 0
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if oldest[2] then reset = tonumber(oldest[2]) + window - now end
return {count, tostring(reset)}
"""

# KEYS: source, target per move. ARGV: now, then the window per move. Hits are unique members,
# so a union counts each once, and a merge sent twice changes nothing.
MERGE_SCRIPT = """
local now = tonumber(ARGV[1])
for i = 1, #KEYS / 2 do
  local source = KEYS[i * 2 - 1]
  local target = KEYS[i * 2]
  local window = tonumber(ARGV[1 + i])
  redis.call('ZREMRANGEBYSCORE', source, '-inf', now - window)
  if source ~= target and redis.call('EXISTS', source) == 1 then
    redis.call('ZUNIONSTORE', target, 2, target, source, 'AGGREGATE', 'MAX')
    redis.call('PEXPIRE', target, math.ceil(window * 1000))
    redis.call('DEL', source)
  end
end
return 0
"""


class RedisRateLimiter:
    """Windows kept in Redis (sorted sets of hit times): shared by every node."""

    def __init__(self, url: str, prefix: str = "waypost:rl:", clock: Clock | None = None) -> None:
        import redis.asyncio

        self._clock = clock if clock is not None else SystemClock()
        self._redis = redis.asyncio.Redis.from_url(url)
        self._script = self._redis.register_script(HIT_SCRIPT)
        self._merge_script = self._redis.register_script(MERGE_SCRIPT)
        self._take_script = self._redis.register_script(TAKE_SCRIPT)
        self._prefix = prefix

    async def hit(self, limits: Sequence[Limit]) -> list[Decision]:
        now = self._clock.time()
        args: list[str | int | float] = [now, f"{now}:{uuid.uuid4().hex}"]
        for lim in limits:
            args += [lim.limit, lim.window]
        rows = await self._script(keys=[self._prefix + lim.key for lim in limits], args=args)
        allowed_all = all(int(row[0]) == 1 for row in rows)
        decisions = []
        for lim, row in zip(limits, rows, strict=True):
            count, reset = int(row[1]), float(row[2])
            if allowed_all:
                decisions.append(
                    Decision(
                        lim,
                        True,
                        lim.limit - count - 1,
                        reset if count else lim.window,
                        str(args[1]),
                    )
                )
            else:
                decisions.append(Decision(lim, count < lim.limit, max(0, lim.limit - count), reset))
        return decisions

    async def forget(self, decisions: Sequence[Decision]) -> None:
        recorded = [d for d in decisions if d.hit]
        if recorded:
            async with self._redis.pipeline(transaction=True) as pipe:
                for d in recorded:
                    pipe.zrem(self._prefix + d.limit.key, d.hit)
                await pipe.execute()

    async def take(self, limit: Limit, wanted: int) -> Taken:
        if wanted <= 0:
            return Taken(limit)
        now = self._clock.time()
        prefix = f"{now}:{uuid.uuid4().hex}"
        count, reset = await self._take_script(
            keys=[self._prefix + limit.key], args=[now, limit.limit, limit.window, wanted, prefix]
        )
        members = tuple(f"{prefix}:{j}" for j in range(1, int(count) + 1))
        return Taken(limit, members, float(reset))

    async def give_back(self, taken: Taken, keep: int) -> None:
        unused = taken.members[max(0, keep) :]
        if unused:
            await self._redis.zrem(self._prefix + taken.limit.key, *unused)

    async def merge(self, moves: Sequence[tuple[str, str, float]]) -> None:
        if not moves:
            return
        keys: list[str] = []
        args: list[str | int | float] = [self._clock.time()]
        for source, target, window in moves:
            keys += [self._prefix + source, self._prefix + target]
            args.append(window)
        await self._merge_script(keys=keys, args=args)

    async def close(self) -> None:
        await self._redis.aclose()


def make_rate_limiter(redis_url: str | None, clock: Clock | None = None) -> RateLimiter:
    """Redis when configured, else in process; both take "now" from ``clock``."""
    if redis_url:
        return RedisRateLimiter(redis_url, clock=clock)
    return MemoryRateLimiter(clock)

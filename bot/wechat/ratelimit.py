"""Per-user message rate limiting: a customer who floods the shop is told once, then ignored.

A limiter answers, for each counted message, one of three verdicts: ALLOW (go on),
WARN (the first message over the limit in this window: answer `rate_limited` once)
or SILENCE (answer "success" until the window passes). Two limiters plug in behind
the `RateLimiter` protocol, chosen by the app factory like the dialog store:

- `MemoryRateLimiter`: a sliding window per user, in process (embedded default);
- `RedisRateLimiter`: a fixed per-minute counter per user in Redis (one atomic Lua
  script), shared by every worker.

The first step of the message chain (`bot.chat.middleware.rate_limit`) asks the
limiter, after the inbox's de-duplication (a retry of one MsgId is never counted
twice): it decides which messages count (`is_counted`), fails open when the limiter
is unavailable, and answers the polite reply.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from redis.asyncio import Redis

from bot.redis_link import REDIS_FAILURES
from bot.wechat.protocol import Inbound

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60.0
# Events the customer triggers by tapping (menu clicks, scan-in-menu); every other event
# (subscribe, unsubscribe, VIEW, LOCATION, TEMPLATESENDJOBFINISH, ...) is never limited.
LIMITED_EVENTS = frozenset({"click", "scancode_push", "scancode_waitmsg"})


class Verdict(enum.StrEnum):
    ALLOW = "allow"
    WARN = "warn"
    SILENCE = "silence"


class RateLimiter(Protocol):
    async def hit(self, key: str) -> Verdict:
        """Count one message of `key` and say what to do with it."""
        ...


class MemoryRateLimiter:
    """A sliding window per key: at most `limit` allowed messages in any `window` seconds.

    The first refused message gets WARN, later ones SILENCE until the oldest allowed
    message leaves the window (a slot frees up). Refused messages do not count.
    """

    def __init__(
        self,
        *,
        limit: int,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._allowed: dict[str, deque[float]] = {}
        self._warned_until: dict[str, float] = {}
        self._next_sweep = clock() + window

    async def hit(self, key: str) -> Verdict:
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        stamps = self._allowed.setdefault(key, deque())
        cutoff = now - self.window
        while stamps and stamps[0] <= cutoff:
            stamps.popleft()
        if len(stamps) < self.limit:
            stamps.append(now)
            self._warned_until.pop(key, None)
            return Verdict.ALLOW
        if now < self._warned_until.get(key, 0.0):
            return Verdict.SILENCE
        self._warned_until[key] = stamps[0] + self.window
        return Verdict.WARN

    def _sweep(self, now: float) -> None:
        """Forget users with nothing in the window (at most once a window)."""
        cutoff = now - self.window
        for key in [k for k, stamps in self._allowed.items() if not stamps or stamps[-1] <= cutoff]:
            del self._allowed[key]
            self._warned_until.pop(key, None)
        self._next_sweep = now + self.window

    def __len__(self) -> int:
        return len(self._allowed)


# INCR the window's counter; the first hit sets its expiry. Atomic in Redis.
_INCR_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""


class RedisRateLimiter:
    """A fixed window per key and minute in Redis, shared by every worker.

    The n-th message of a window: n <= limit ALLOW, n == limit + 1 WARN, then SILENCE.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        limit: int,
        window: int = int(WINDOW_SECONDS),
        prefix: str = "storefront:ratelimit:",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.window = window
        self._prefix = prefix
        self._clock = clock
        self._script = redis.register_script(_INCR_SCRIPT)

    async def hit(self, key: str) -> Verdict:
        slot = int(self._clock() // self.window)
        count = int(await self._script(keys=[f"{self._prefix}{key}:{slot}"], args=[self.window + 5]))
        if count <= self.limit:
            return Verdict.ALLOW
        return Verdict.WARN if count == self.limit + 1 else Verdict.SILENCE


def is_counted(msg: Inbound) -> bool:
    """Messages and tap events count; system events (unsubscribe, job reports...) never do."""
    return msg.kind != "event" or msg.event in LIMITED_EVENTS


class SendRateGate:
    """At most `per_second` sends to WeChat a second, per worker or (with Redis) in all.

    Broadcasts, alerts and outbox retries all go through the planner; this keeps their
    bursts under WeChat's API frequency limits. A send over the limit waits for the
    next second instead of failing. 0 turns the gate off.
    """

    def __init__(
        self,
        per_second: int,
        *,
        redis: Redis | None = None,
        prefix: str = "storefront:sendrate:",
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.per_second = per_second
        self._redis = redis
        self._prefix = prefix
        self._clock = clock
        self._sleep = sleep
        self._second = -1
        self._count = 0

    async def _hit(self, second: int) -> int:
        if self._redis is not None:
            try:
                return await self._shared_hit(self._redis, second)
            except REDIS_FAILURES:  # counted in this worker meanwhile (bot.redis_link tells the outage)
                log.debug("send rate counted in process: redis failed", exc_info=True)
        if second != self._second:
            self._second, self._count = second, 0
        self._count += 1
        return self._count

    async def _shared_hit(self, redis: Redis, second: int) -> int:
        key = f"{self._prefix}{second}"
        async with redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, 2)
            count, _ = await pipe.execute()
        return int(count)

    async def wait(self) -> None:
        if self.per_second <= 0:
            return
        for _ in range(3600):  # bounded: an hour of seconds at the very most
            now = self._clock()
            second = int(now)
            if await self._hit(second) <= self.per_second:
                return
            await self._sleep(max(0.001, second + 1 - now))

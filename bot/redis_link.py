"""The one Redis client of a worker, bounded, and whether Redis is answering right now.

Redis makes several workers agree (per-user order, the rate limit, the replay cache,
dialogs), but no customer's message may depend on it: a Redis that is slow, out of
connections or down must cost the sharing, never the answer. So:

- `open_redis` builds one client on a `BlockingConnectionPool` of at most
  `redis.max_connections`: a burst waits up to `redis.pool_timeout_seconds` for a free
  connection (back-pressure) instead of opening connections without bound, and every
  command is bounded by `redis.socket_timeout_seconds`;
- `RedisLink` is told of each success and failure by the Redis-backed parts and their
  fallbacks; it keeps the `storefront_redis_up` gauge, logs a change of state (and a
  failure at most once a minute, never with an openid), and after a failure tells
  callers to skip Redis for `retry_seconds` so a dead Redis does not cost every message
  its timeout. `/healthz` pings through it, which also notices Redis coming back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from bot.config import RedisConfig

log = logging.getLogger(__name__)

# What "Redis is not answering" looks like: refused, reset, timed out, no free connection.
REDIS_FAILURES: tuple[type[BaseException], ...] = (RedisError, OSError, asyncio.TimeoutError)
LOG_EVERY_SECONDS = 60.0
T = TypeVar("T")


def open_redis(config: RedisConfig) -> Redis:
    """One client for the worker on a bounded, blocking connection pool (see the module doc)."""
    pool = BlockingConnectionPool.from_url(
        config.url,
        max_connections=config.max_connections,
        timeout=config.pool_timeout_seconds,
        socket_timeout=config.socket_timeout_seconds,
        socket_connect_timeout=config.connect_timeout_seconds,
    )
    return Redis(connection_pool=pool)


class RedisLink:
    """Whether Redis answers: told by its users, read by them, by `/healthz` and `/metrics`."""

    def __init__(
        self,
        redis: Redis,
        *,
        on_change: Callable[[bool], None] = lambda up: None,
        retry_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis = redis
        self._on_change = on_change
        self._retry = retry_seconds
        self._clock = clock
        self._up = True
        self._failed_at = float("-inf")
        self._logged_at = float("-inf")
        on_change(True)

    @property
    def up(self) -> bool:
        return self._up

    def worth_trying(self) -> bool:
        """False for `retry_seconds` after a failure: go straight to the fallback meanwhile."""
        return self._up or self._clock() - self._failed_at >= self._retry

    def succeeded(self) -> None:
        if not self._up:
            self._up = True
            log.warning("redis is answering again: shared state back in use")
            self._on_change(True)

    def failed(self, where: str, exc: BaseException) -> None:
        """Record a failure of `where` (a fixed name, never an openid); fall back meanwhile."""
        now = self._clock()
        self._failed_at = now
        if self._up or now - self._logged_at >= LOG_EVERY_SECONDS:
            self._logged_at = now
            log.warning(
                "redis unavailable: serving with in-process fallbacks",
                extra={"where": where, "error": type(exc).__name__},
            )
        if self._up:
            self._up = False
            self._on_change(False)

    async def attempt(self, where: str, call: Callable[[], Awaitable[T]], fallback: Callable[[], Awaitable[T]]) -> T:
        """`call` on Redis, or `fallback` when Redis fails (or failed moments ago)."""
        if self.worth_trying():
            try:
                result = await call()
            except REDIS_FAILURES as exc:
                self.failed(where, exc)
            else:
                self.succeeded()
                return result
        return await fallback()

    async def ping(self, timeout: float) -> None:
        """Ping Redis (the health check); a failure is recorded, then raised."""
        try:
            await asyncio.wait_for(self.redis.ping(), timeout)
        except REDIS_FAILURES as exc:
            self.failed("ping", exc)
            raise
        self.succeeded()

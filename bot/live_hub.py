"""The live page's updates: every viewer of a live page (`bot.web.live`) waits here for the
units left to change.

One hub per worker. A viewer's stream reads the session's state through `state`, which
reads the database at most once per `min_interval` for all viewers of a session, and then
waits on `wait` until the hub is `poke`d (a unit taken in this worker's chat, or, with
Redis, in any worker's: the poke is published on one channel every worker's hub listens
to) or `poll_seconds` pass, which also catch what no poke announces (a payment, an order
expiring in the scheduler). Nothing here must survive a restart: a page reconnects and
reads the state again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from redis.asyncio import ConnectionPool, Redis

from bot.redis_link import RedisLink
from commerce.promotions import live
from commerce.rules import utcnow
from commerce.uow import UnitOfWorkFactory

log = logging.getLogger(__name__)

CHANNEL = "storefront:live:poke"


class LiveHub:
    def __init__(
        self, *, uows: UnitOfWorkFactory, poll_seconds: float = 2.0, min_interval: float = 0.2,
        link: RedisLink | None = None,
    ) -> None:
        self._uows = uows
        self.poll_seconds = poll_seconds
        self._min_interval = min_interval
        self._link = link
        self._changed = asyncio.Event()
        self._cache: dict[int, tuple[float, dict[str, Any] | None]] = {}
        self._reading: dict[int, asyncio.Future[dict[str, Any] | None]] = {}
        self._generation = 0  # pokes so far
        self._listener: asyncio.Task[None] | None = None
        self._publishes: set[asyncio.Task[None]] = set()
        self.stopping = False  # the worker shuts down: streams end so that it need not wait for them

    def poke(self, *, publish: bool = True) -> None:
        """Units may have changed: every waiting viewer reads the state again."""
        self._generation += 1
        self._cache.clear()
        self._reading.clear()  # a read begun before the change may miss it: the next one starts afresh
        self._changed.set()
        self._changed = asyncio.Event()
        if publish and self._link is not None and self._link.worth_trying():
            task = asyncio.get_running_loop().create_task(self._publish(self._link.redis))
            self._publishes.add(task)
            task.add_done_callback(self._publishes.discard)

    async def _publish(self, redis: Redis) -> None:
        try:
            await redis.publish(CHANNEL, b"1")
        except Exception as exc:  # the other workers' pages catch up at their next poll
            if self._link is not None:
                self._link.failed("live poke", exc)

    async def wait(self, timeout: float | None = None) -> None:
        """Until the next poke, or `timeout` (`poll_seconds`) seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), self.poll_seconds if timeout is None else timeout)

    async def state(self, session_id: int) -> dict[str, Any] | None:
        """The session's page state: read at most once per `min_interval`, and viewers who ask
        at once (all woken by one poke) share one read."""
        cached = self._cache.get(session_id)
        if cached is not None and time.monotonic() - cached[0] < self._min_interval:
            return cached[1]
        reading = self._reading.get(session_id)
        if reading is None:
            reading = asyncio.ensure_future(self._read(session_id))
            self._reading[session_id] = reading
            reading.add_done_callback(lambda done: self._forget(session_id, done))
        return await asyncio.shield(reading)

    def _forget(self, session_id: int, done: asyncio.Future[dict[str, Any] | None]) -> None:
        if self._reading.get(session_id) is done:
            del self._reading[session_id]
        if not done.cancelled():
            done.exception()  # retrieved: a failed read is its callers' error, not the loop's

    async def _read(self, session_id: int) -> dict[str, Any] | None:
        began, generation = time.monotonic(), self._generation
        async with self._uows() as uow:
            state = await live.page_state(uow.session, session_id=session_id, now=utcnow())
        if generation == self._generation:  # no poke meanwhile: others may use it
            if len(self._cache) > 1000:
                self._cache.clear()
            self._cache[session_id] = (began, state)
        return state

    # ---- with Redis: the pokes of the other workers ------------------------------------------

    def start(self) -> None:
        if self._link is not None and self._listener is None:
            self._listener = asyncio.get_running_loop().create_task(self._listen(self._link))

    async def _listen(self, link: RedisLink) -> None:
        """Listen on a connection of its own: a subscription holds its connection for good, and
        the shop's pool is bounded for back-pressure (`redis.max_connections`), so taking one
        from it would leave every message one connection short, or none (a pool of one)."""
        shared = link.redis.connection_pool
        own = Redis(connection_pool=ConnectionPool(
            connection_class=shared.connection_class, max_connections=1, **shared.connection_kwargs
        ))
        try:
            while True:
                try:
                    async with own.pubsub() as pubsub:
                        await pubsub.subscribe(CHANNEL)
                        while True:
                            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
                            if message is not None and message.get("type") == "message":
                                self.poke(publish=False)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # Redis away: the pages poll meanwhile; listen again later
                    log.info("live pokes from other workers paused", extra={"error": type(exc).__name__})
                await asyncio.sleep(2.0)
        finally:
            with contextlib.suppress(Exception):
                await own.aclose(close_connection_pool=True)

    def stop_streams(self) -> None:
        """Every open stream ends at once (the app's shutdown, before it waits for requests)."""
        self.stopping = True
        self._changed.set()

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
            self._listener = None
        self.stop_streams()
        for task in list(self._publishes):
            with contextlib.suppress(Exception):
                await task

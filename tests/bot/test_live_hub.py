"""The live pages' hub: a poke wakes the viewers of its own worker and, through Redis, of
every other worker."""

from __future__ import annotations

import asyncio
import time
from typing import cast

from redis.asyncio import Redis

from bot.live_hub import LiveHub
from bot.redis_link import RedisLink
from commerce.uow import UnitOfWorkFactory

NO_UOWS = cast(UnitOfWorkFactory, None)  # state() is not read here


async def _woken(hub: LiveHub, poke: LiveHub, *, within: float) -> bool:
    """Whether `hub`'s viewers wake within `within` seconds of pokes on `poke` (poked again
    every 0.1 s: a subscription may still be on its way)."""
    waiter = asyncio.ensure_future(hub.wait(timeout=30))
    began = time.monotonic()
    while not waiter.done() and time.monotonic() - began < within:
        poke.poke()
        await asyncio.sleep(0.1)
    woken = waiter.done()
    waiter.cancel()
    return woken


async def test_a_poke_wakes_this_worker_and_through_redis_the_others(redis_url: str) -> None:
    here_redis, there_redis = Redis.from_url(redis_url), Redis.from_url(redis_url)
    here = LiveHub(uows=NO_UOWS, poll_seconds=30, link=RedisLink(here_redis))
    there = LiveHub(uows=NO_UOWS, poll_seconds=30, link=RedisLink(there_redis))
    alone = LiveHub(uows=NO_UOWS, poll_seconds=30)  # no Redis: hears only its own pokes
    there.start()
    try:
        assert await _woken(here, here, within=1)
        assert await _woken(there, here, within=3)
        assert not await _woken(alone, here, within=0.3)
    finally:
        for hub in (here, there, alone):
            await hub.close()
        await here_redis.aclose()
        await there_redis.aclose()

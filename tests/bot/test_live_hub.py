"""The live pages' hub: a poke wakes the viewers of its own worker and, through Redis, of
every other worker."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import pytest
from redis.asyncio import Redis

from bot import live_hub
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


class _Uow:
    session = None

    async def __aenter__(self) -> _Uow:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


async def test_viewers_woken_together_share_one_read_and_a_poke_reads_again(monkeypatch: pytest.MonkeyPatch) -> None:
    reads = 0

    async def page_state(session: object, *, session_id: int, now: object) -> dict[str, Any]:
        nonlocal reads
        reads += 1
        seen = reads
        await asyncio.sleep(0.05)
        return {"read": seen}

    monkeypatch.setattr(live_hub.live, "page_state", page_state)
    hub = LiveHub(uows=cast(UnitOfWorkFactory, _Uow), poll_seconds=30, min_interval=60)
    states = await asyncio.gather(*(hub.state(1) for _ in range(50)))
    assert reads == 1 and all(state == {"read": 1} for state in states)
    assert await hub.state(1) == {"read": 1}  # cached
    pending = asyncio.ensure_future(hub.state(1 + 1))
    await asyncio.sleep(0.01)  # its read has begun
    hub.poke()  # a read begun before the change is not kept for others
    await pending
    assert await hub.state(1) == {"read": 3} and await hub.state(2) == {"read": 4}

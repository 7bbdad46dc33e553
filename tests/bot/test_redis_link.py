"""RedisLink and the message path's fallbacks, on a Redis that is not there (no server)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from redis.asyncio import Redis

from bot.chat.transcript import Line, RedisTranscriptStore
from bot.redis_link import RedisLink
from bot.web.invites import RedisQrCache
from bot.wechat.api.client import QrCode
from bot.wechat.api.token import RedisTokenStore, Token
from bot.wechat.degraded import (
    FallbackQrCache,
    FallbackRateLimiter,
    FallbackReplayCache,
    FallbackTickLock,
    FallbackTokenStore,
    FallbackTranscriptStore,
    FallbackUserLocks,
)
from bot.wechat.inbox_redis import RedisUserLocks
from bot.wechat.ratelimit import RedisRateLimiter, SendRateGate, Verdict
from bot.wechat.replay import MemoryReplayCache, RedisReplayCache, Seen
from scheduler.runner import RedisTickLock
from tests.servers import RestartableRedis


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _nowhere() -> Redis:
    return Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)


async def test_an_outage_is_logged_once_a_minute_without_openids_and_flips_the_gauge(
    caplog: pytest.LogCaptureFixture,
) -> None:
    states: list[bool] = []
    clock = Clock()
    redis = _nowhere()
    link = RedisLink(redis, on_change=states.append, retry_seconds=2.0, clock=clock)
    limiter = FallbackRateLimiter(RedisRateLimiter(redis, limit=1), link)
    with caplog.at_level(logging.WARNING, logger="bot.redis_link"):
        for _ in range(5):  # over the limit, but the limit fails open
            assert await limiter.hit("o_secret_openid") is Verdict.ALLOW
            clock.now += 3.0  # past retry_seconds: Redis is tried (and fails) each time
        clock.now += 60.0
        assert await limiter.hit("o_secret_openid") is Verdict.ALLOW
    outages = [r for r in caplog.records if "redis unavailable" in r.getMessage()]
    assert len(outages) == 2  # the first failure, then once a minute
    assert "o_secret_openid" not in caplog.text
    assert states == [True, False] and not link.up
    await redis.aclose()


async def test_right_after_a_failure_redis_is_not_tried() -> None:
    clock = Clock()
    redis = _nowhere()
    link = RedisLink(redis, retry_seconds=2.0, clock=clock)
    replay = FallbackReplayCache(RedisReplayCache(redis), MemoryReplayCache(), link)
    assert await replay.check("t1", "body", ttl_seconds=60) is Seen.NEW  # Redis failed: memory
    assert not link.worth_trying()
    assert await replay.check("t1", "other", ttl_seconds=60) is Seen.REFUSED  # remembered in memory
    clock.now += 2.0
    assert link.worth_trying()
    await redis.aclose()


async def test_a_user_lock_held_when_redis_stops_is_given_back_without_an_error() -> None:
    server = RestartableRedis()
    redis = Redis.from_url(server.url, socket_timeout=0.5)
    link = RedisLink(redis)
    locks = FallbackUserLocks(RedisUserLocks(redis), link)
    try:
        async with locks.hold("o1"):
            assert link.up
            server.stop()  # the ticket cannot be given back: the others skip it once its heartbeat stops
        assert not link.up
        order: list[int] = []
        async with locks.hold("o1"):  # this worker's own lock alone
            order.append(1)
        assert order == [1]
    finally:
        await redis.aclose()
        server.close()


async def test_the_access_token_and_the_send_rate_do_without_redis() -> None:
    """Late replies and notices still go out while Redis is down: this worker fetches its own token."""
    redis = _nowhere()
    link = RedisLink(redis)
    tokens = FallbackTokenStore(RedisTokenStore(redis), link)
    async with tokens.lock() as fetch_here:
        assert fetch_here
        await tokens.put(Token("t-1", time.time() + 7200))
    token = await tokens.get()
    assert token is not None and token.value == "t-1"
    assert not link.up
    gate = SendRateGate(2, redis=redis)
    for _ in range(2):
        await asyncio.wait_for(gate.wait(), 1.0)  # counted in process, no error
    await redis.aclose()


async def test_qr_codes_are_cached_in_process_without_redis() -> None:
    redis = _nowhere()
    cache = FallbackQrCache(RedisQrCache(redis), RedisLink(redis))
    qr = QrCode(ticket="tk", url="https://weixin.qq.com/q/x", expire_seconds=600, image_url="https://mp/x")
    await cache.put("temp:g1", qr, 60)
    assert await cache.get("temp:g1") == qr
    await redis.aclose()


async def test_ticks_run_and_the_transcript_is_kept_in_process_without_redis() -> None:
    redis = _nowhere()
    link = RedisLink(redis)
    assert await FallbackTickLock(RedisTickLock(redis), link).acquire("deliver_outbox", seconds=5)
    lines = FallbackTranscriptStore(RedisTranscriptStore(redis), link)
    await lines.append("o1", [Line(time.time(), "customer", "还在吗")])
    assert [line.text for line in await lines.recent("o1")] == ["还在吗"]
    await redis.aclose()

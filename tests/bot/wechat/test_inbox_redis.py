"""Several workers sharing Redis: a message is processed once, one user's in order."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from bot.app import create_app
from bot.chat.render import Rendered, RenderedArticle
from bot.keys import INBOX
from bot.outbound.sender import MemoryOutbox
from bot.wechat.degraded import FallbackUserLocks
from bot.wechat.inbox import Inbox
from bot.wechat.inbox_redis import RedisReplyStore, RedisUserLocks, dumps_rendered, loads_rendered
from bot.wechat.intake import DurableReplyStore
from tests.bot.conftest import ShopFactory, make_config
from tests.bot.driver import Shop


async def _two_workers(
    make_shop: ShopFactory,
    aiohttp_client: Callable[..., Awaitable[TestClient]],
    db_url: str,
    redis_url: str,
    **sections: dict[str, Any],
) -> tuple[Shop, Shop]:
    """Two app instances on one database and one Redis (the catalog is seeded once)."""
    sections = {"redis": {"url": redis_url}, "scheduler": {"enabled": False}, **sections}
    first = await make_shop(db_url, **sections)
    outbox = MemoryOutbox()
    config = make_config(db_url, **sections)
    client = await aiohttp_client(create_app(config, outbound=outbox))
    return first, Shop(client, config, outbox)


def _inboxes(*shops: Shop) -> list[Inbox]:
    return [shop.client.app[INBOX] for shop in shops]


async def test_a_retry_at_the_other_worker_is_processed_once_with_the_same_reply(
    make_shop: ShopFactory, aiohttp_client, db_url: str, redis_url: str  # type: ignore[no-untyped-def]
) -> None:
    one, two = await _two_workers(make_shop, aiohttp_client, db_url, redis_url)
    assert all(isinstance(inbox.replies, DurableReplyStore) for inbox in _inboxes(one, two))  # shared: the database
    calls = 0

    def counting(inbox: Inbox) -> None:
        original = inbox.respond

        async def respond(msg):  # type: ignore[no-untyped-def]
            nonlocal calls
            calls += 1
            return await original(msg)

        inbox.respond = respond

    for inbox in _inboxes(one, two):
        counting(inbox)
    await one.user().say("苹果")  # a list is open (dialog state in Redis): "2" picks its second product
    xml = one.user().xml("text", content="2", msg_id=515151)
    first = await one.user().send(xml)
    again = await two.user().send(xml)
    assert calls == 2  # "苹果" and "2", once
    assert first.kind == again.kind == "news"
    assert [(a.title, a.url) for a in again.articles] == [(a.title, a.url) for a in first.articles]


async def test_concurrent_copies_at_both_workers_are_processed_once(
    make_shop: ShopFactory, aiohttp_client, sqlite_url: str, redis_url: str  # type: ignore[no-untyped-def]
) -> None:
    one, two = await _two_workers(make_shop, aiohttp_client, sqlite_url, redis_url)
    calls = 0
    for inbox in _inboxes(one, two):
        original = inbox.respond

        async def slow(msg, original=original):  # type: ignore[no-untyped-def]
            nonlocal calls
            calls += 1
            await asyncio.sleep(0.3)
            return await original(msg)

        inbox.respond = slow
    xml = one.user().xml("text", content="龙井", msg_id=616161)
    replies = await asyncio.gather(one.user().send(xml), two.user().send(xml), two.user().send(xml))
    assert calls == 1
    assert {r.text for r in replies} == {replies[0].text}
    assert "龙井" in replies[0].text


async def test_one_users_messages_at_two_workers_are_handled_in_order(
    make_shop: ShopFactory, aiohttp_client, db_url: str, redis_url: str  # type: ignore[no-untyped-def]
) -> None:
    one, two = await _two_workers(make_shop, aiohttp_client, db_url, redis_url)
    assert all(isinstance(inbox.locks, FallbackUserLocks) for inbox in _inboxes(one, two))
    order: list[str] = []
    running = 0
    for inbox in _inboxes(one, two):
        original = inbox.respond

        async def tracking(msg, original=original):  # type: ignore[no-untyped-def]
            nonlocal running
            running += 1
            assert running == 1, "two messages of one user ran at the same time"
            order.append(msg.text)
            await asyncio.sleep(0.1 if msg.text == "一" else 0)
            try:
                return await original(msg)
            finally:
                running -= 1

        inbox.respond = tracking
    tasks = []
    tickets = Redis.from_url(redis_url)
    try:
        for n, text in enumerate(["一", "二", "三", "四"]):
            worker = (one, two)[n % 2]
            tasks.append(asyncio.create_task(worker.user().say(text)))
            # arrival order is ticket order: send the next once this one holds its ticket
            # (a fixed pause was not enough on a loaded machine: the message is encrypted,
            # signed and decrypted before it reaches the lock)
            for _poll in range(2000):  # 10 s at most
                if int(await tickets.get("storefront:userlock:o_customer_1:next") or 0) >= n + 1:
                    break
                await asyncio.sleep(0.005)
            else:
                raise AssertionError(f"message {n + 1} never took its ticket")
        await asyncio.gather(*tasks)
    finally:
        await tickets.aclose()
    assert order == ["一", "二", "三", "四"]


async def test_a_deferred_reply_goes_out_once_when_the_retry_hits_the_other_worker(
    make_shop: ShopFactory, aiohttp_client, db_url: str, redis_url: str  # type: ignore[no-untyped-def]
) -> None:
    one, two = await _two_workers(
        make_shop, aiohttp_client, db_url, redis_url, server={"reply_deadline_seconds": 0.5}
    )
    calls = 0
    for inbox in _inboxes(one, two):
        original = inbox.respond

        async def slow(msg, original=original):  # type: ignore[no-untyped-def]
            nonlocal calls
            calls += 1
            await asyncio.sleep(0.9)
            return await original(msg)

        inbox.respond = slow
    user = one.user()
    xml = user.xml("text", content="苹果", msg_id=717171)
    assert (await one.user().send(xml)).kind == "none"  # "success": the reply comes later
    assert (await two.user().send(xml)).kind == "none"  # the retry at the other worker
    delivered = await one.outbox.wait_for(user.openid, 1, timeout=5)
    assert len(delivered) == 1 and "烟台红富士苹果" in delivered[0].text
    assert (await two.user().send(xml)).kind == "none"
    for inbox in _inboxes(one, two):
        await inbox.drain()
    assert calls == 1
    assert len(one.outbox.for_user(user.openid)) == 1
    assert two.outbox.for_user(user.openid) == []


def test_a_rendered_reply_survives_json() -> None:
    article = RenderedArticle(title="苹果", description="¥39.90", picurl="https://x/p.jpg", url="https://x/p")
    for rendered in (Rendered("text", text="你好 ]] >"), Rendered("news", articles=(article,)), Rendered("silence")):
        assert loads_rendered(dumps_rendered(rendered)) == rendered


async def test_a_user_lock_left_by_a_crashed_worker_is_skipped(redis_url: str) -> None:
    """A worker that died holding a user's lock stops its heartbeat: the next message goes
    on after `alive_seconds`, long before the 30 s that catch a live but stuck holder."""
    async with Redis.from_url(redis_url) as redis:
        locks = RedisUserLocks(redis, alive_seconds=0.3, poll_seconds=0.01)
        crashed = locks.hold("o_crash")
        await crashed.__aenter__()  # holds ticket 1 and never lets go...
        for beat in locks._heartbeats.values():  # ...and its process is gone: no heartbeat
            beat.cancel()
        entered = asyncio.Event()

        async def next_message() -> None:
            async with locks.hold("o_crash"):
                entered.set()

        task = asyncio.create_task(next_message())
        await asyncio.sleep(0.1)
        assert not entered.is_set()  # waits its turn while the holder may be alive
        await asyncio.wait_for(task, timeout=3)
        assert entered.is_set()
        async with locks.hold("o_crash"):  # and the order goes on from there
            pass


async def test_a_slow_but_living_holder_keeps_its_turn(redis_url: str) -> None:
    async with Redis.from_url(redis_url) as redis:
        # a heartbeat every 0.1 s lives 0.3 s: a test process starved up to 0.2 s keeps it
        locks = RedisUserLocks(redis, alive_seconds=0.3, poll_seconds=0.01)
        order: list[str] = []

        async def slow() -> None:
            async with locks.hold("o_slow"):
                await asyncio.sleep(1.0)  # three lifetimes of a heartbeat: kept alive, never skipped
                order.append("slow")

        async def next_message() -> None:
            await asyncio.sleep(0.05)
            async with locks.hold("o_slow"):
                order.append("next")

        await asyncio.gather(slow(), next_message())
        assert order == ["slow", "next"]


@pytest.mark.parametrize("late", [False, True], ids=["in-time", "deferred"])
async def test_reply_store_moves_are_atomic_with_giving_up(redis_url: str, late: bool) -> None:
    """A delivery giving up and the processor finishing: exactly one answer path wins."""
    async with Redis.from_url(redis_url) as redis:
        one, two = RedisReplyStore(redis, poll_seconds=0.01), RedisReplyStore(redis, poll_seconds=0.01)
        assert await one.claim("k")
        assert not await two.claim("k")
        if late:
            assert await two.wait("k", 0.05) is None  # gave up first: deferred
            assert await one.finish("k", Rendered("text", text="hi")) is True
            assert await two.wait("k", 0.05) is None
        else:
            assert await one.finish("k", Rendered("text", text="hi")) is False
            assert await two.wait("k", 0.05) == Rendered("text", text="hi")


async def test_a_crashed_workers_claim_expires_so_a_retry_processes_it(redis_url: str) -> None:
    async with Redis.from_url(redis_url) as redis:
        crashed = RedisReplyStore(redis, claim_seconds=0.3)
        assert await crashed.claim("k")
        crashed._leases.pop("k").cancel()  # the worker dies: nobody renews its claim
        other = RedisReplyStore(redis, claim_seconds=0.3)
        assert not await other.claim("k")  # WeChat's retry while the claim may still be alive
        await asyncio.sleep(0.4)
        assert await other.claim("k")  # a later retry: processed after all
        assert await other.finish("k", Rendered("text", text="hi")) is False
        assert await other.wait("k", 0.05) == Rendered("text", text="hi")


async def test_a_claim_is_renewed_while_it_is_worked_on(redis_url: str) -> None:
    async with Redis.from_url(redis_url) as redis:
        working = RedisReplyStore(redis, claim_seconds=0.3, ttl_seconds=60)
        other = RedisReplyStore(redis, claim_seconds=0.3, ttl_seconds=60)
        assert await working.claim("k")
        assert await other.wait("k", 0.05) is None  # a delivery gave up: deferred, still claimed
        await asyncio.sleep(1.0)  # three leases long
        assert not await other.claim("k")
        # late: the worker sends it; the reply is kept for de-duplication
        assert await working.finish("k", Rendered("text", text="hi")) is True
        assert await redis.pttl("storefront:reply:k") > 50_000
        assert not await other.claim("k")

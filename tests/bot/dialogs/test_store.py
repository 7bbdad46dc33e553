"""The dialog state store: the in-process, the Redis and the durable (Redis and database)
implementations pass the same tests; the durable one also outlives Redis."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from bot.dialogs.store import (
    ABSENT,
    DialogStore,
    DurableDialogStore,
    MemoryDialogStore,
    RedisDialogStore,
    StoredDialog,
    TurnReads,
    one_turn,
)
from bot.redis_link import RedisLink
from bot.wechat.intake import WriteBatcher
from commerce.db import create_engine
from commerce.messaging.dialog_states import save_dialog
from commerce.wiring import shop_uows
from tests.bot.conftest import ShopFactory


@asynccontextmanager
async def _durable(redis: Redis, db_url: str) -> AsyncIterator[tuple[DurableDialogStore, RedisLink]]:
    engine = create_engine(db_url)
    link = RedisLink(redis)
    writes = WriteBatcher(engine)  # the app gives the intake journal's (DurableReplyStore.write)
    try:
        yield DurableDialogStore(RedisDialogStore(redis), link, shop_uows(engine), writes.run), link
    finally:
        writes.close()
        await engine.dispose()


@pytest.fixture(params=["memory", "redis", "durable"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[DialogStore]:
    if request.param == "memory":
        yield MemoryDialogStore()
        return
    redis = Redis.from_url(request.getfixturevalue("redis_url"))
    if request.param == "redis":
        yield RedisDialogStore(redis)
    else:
        async with _durable(redis, request.getfixturevalue("sqlite_url")) as (durable, _link):
            yield durable
    await redis.aclose()


def _stored(state: str = "results", expires_in: float = 60) -> StoredDialog:
    return StoredDialog(
        dialog="search", state=state, version=1,
        data={"source": "search", "title": "苹果", "product_ids": [3, 1, 2]},
        expires_at=time.time() + expires_in,
    )


async def test_put_get_delete(store: DialogStore) -> None:
    assert await store.get("o1") is None
    stored = _stored()
    await store.put("o1", stored)
    got = await store.get("o1")
    assert got == stored
    assert got is not None and got.data["product_ids"] == [3, 1, 2] and got.data["title"] == "苹果"
    await store.delete("o1")
    assert await store.get("o1") is None


async def test_users_are_separate_and_overwrite_replaces(store: DialogStore) -> None:
    await store.put("o1", _stored("results"))
    await store.put("o2", _stored("categories"))
    await store.put("o1", _stored("card"))
    one, two = await store.get("o1"), await store.get("o2")
    assert one is not None and one.state == "card"
    assert two is not None and two.state == "categories"


async def test_an_expired_dialog_is_still_there_to_be_reported(store: DialogStore) -> None:
    await store.put("o1", _stored(expires_in=-5))
    got = await store.get("o1")
    assert got is not None and got.expired()


async def test_stored_data_is_a_copy(store: DialogStore) -> None:
    stored = _stored()
    await store.put("o1", stored)
    stored.data["product_ids"].append(99)
    got = await store.get("o1")
    assert got is not None and got.data["product_ids"] == [3, 1, 2]


async def test_unreadable_state_is_dropped_not_a_crash(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        await redis.set("storefront:dialog:o1", b"{not json")
        assert await RedisDialogStore(redis).get("o1") is None
    finally:
        await redis.aclose()


async def test_a_durable_dialog_outlives_redis_emptied_and_redis_down(db_url: str, redis_url: str) -> None:
    """Issue 13: Redis restarted empty wiped every open conversation."""
    redis = Redis.from_url(redis_url)
    async with _durable(redis, db_url) as (store, link):
        stored = _stored("card")
        await store.put("o1", stored)
        await redis.flushdb()  # what a restart without persistence leaves
        assert await store.get("o1") == stored
        assert await redis.exists("storefront:dialog:o1")  # put back for the next message
        await redis.aclose()
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    async with _durable(dead, db_url) as (store, link):
        assert await store.get("o1") == stored and not link.up
        await store.put("o1", _stored("review"))
        got = await store.get("o1")
        assert got is not None and got.state == "review"
        await store.delete("o1")
        assert await store.get("o1") is None
        await dead.aclose()


async def test_no_dialog_is_remembered_in_redis_so_the_next_message_reads_no_database(
    sqlite_url: str, redis_url: str
) -> None:
    """A customer with no dialog (most first messages) costs one Redis read, not a database
    read as well; a dialog saved by another worker replaces the mark, and a Redis emptied
    asks the database again."""
    redis = Redis.from_url(redis_url)
    async with _durable(redis, sqlite_url) as (store, _link), _durable(redis, sqlite_url) as (other, _):
        assert await store.get("o_new") is None
        assert await redis.get("storefront:dialog:o_new") == ABSENT.encode()
        engine = create_engine(sqlite_url)
        try:  # a row the store did not write: only a database read would find it
            async with engine.begin() as conn:
                await conn.run_sync(lambda sync: save_dialog(sync, "o_new", _stored().dumps(),
                                                             keep_until=datetime.now(UTC) + timedelta(days=1)))
        finally:
            await engine.dispose()
        assert await store.get("o_new") is None  # the mark answered
        await redis.flushdb()
        found = await store.get("o_new")  # read from the database
        assert found is not None and found.state == "results"
        await other.put("o_new", _stored("card"))
        got = await store.get("o_new")
        assert got is not None and got.state == "card"
        await other.delete("o_new")
        assert await store.get("o_new") is None
        assert await redis.get("storefront:dialog:o_new") == ABSENT.encode()
    await redis.aclose()


class _Counting(MemoryDialogStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    async def get(self, openid: str) -> StoredDialog | None:
        self.reads.append(openid)
        return await super().get(openid)


async def test_within_a_turn_each_key_is_read_once_and_reads_what_the_turn_wrote() -> None:
    inner = _Counting()
    store = TurnReads(inner)
    await inner.put("o1", _stored("results"))
    with one_turn():
        first = await store.get("o1")
        assert first is not None
        first.data["title"] = "改了"  # a copy: the next read is not changed by it
        again = await store.get("o1")
        assert again is not None and again.data["title"] == "苹果"
        assert await store.get("o1#parked") is None and await store.get("o1#parked") is None
        assert inner.reads == ["o1", "o1#parked"]
        await store.put("o1", _stored("picked"))
        assert (await store.get("o1")).state == "picked"  # type: ignore[union-attr]
        await store.delete("o1")
        assert await store.get("o1") is None
        assert inner.reads == ["o1", "o1#parked"]
        await inner.put("o1#parked", _stored("results"))  # behind the turn's back (never, in a shop)
        await store.delete("o1#parked")  # this turn knows it absent: no delete is made
        assert await inner.get("o1#parked") is not None
    await inner.put("o1", _stored("results"))  # changed elsewhere after the turn
    assert (await store.get("o1")).state == "results"  # type: ignore[union-attr]  # outside a turn: read through
    with one_turn():
        assert (await store.get("o1")).state == "results"  # type: ignore[union-attr]  # a new turn reads afresh
    assert inner.reads == ["o1", "o1#parked", "o1#parked", "o1", "o1"]


@pytest.mark.sqlite_only
async def test_a_search_turn_reads_the_customers_dialog_once(
    make_shop: ShopFactory, sqlite_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the real app with Redis: the runtime, the handler and the save each asked the
    store, each a Redis round trip; now the turn reads each key once."""
    shop = await make_shop(sqlite_url, redis={"url": redis_url})
    user = shop.user("o_reads_once")
    await user.say("苹果")
    reads: list[str] = []
    original = DurableDialogStore.get

    async def counted(self: DurableDialogStore, openid: str) -> StoredDialog | None:
        reads.append(openid)
        return await original(self, openid)

    monkeypatch.setattr(DurableDialogStore, "get", counted)
    assert "香蕉" in (await user.say("香蕉")).text
    assert sorted(reads) == sorted(set(reads)) and user.openid in reads

"""The dialog state store: the in-process and the Redis implementation pass the same tests."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bot.dialogs.store import DialogStore, MemoryDialogStore, RedisDialogStore, StoredDialog


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[DialogStore]:
    if request.param == "memory":
        yield MemoryDialogStore()
        return
    redis = Redis.from_url(request.getfixturevalue("redis_url"))
    yield RedisDialogStore(redis)
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

"""One-time links: the first use is recorded with its transaction, every later one refused."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from commerce.link_uses import KEEP_AFTER_EXPIRY, purge_expired, use_once
from commerce.rules import as_utc
from commerce.system_models import LinkUse
from commerce.wiring import shop_sessions

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
EXPIRES = NOW + timedelta(minutes=10)


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return shop_sessions(engine)


async def _use(sessions: async_sessionmaker[AsyncSession], link_id: str, *, now: datetime = NOW) -> bool:
    async with sessions() as session, session.begin():
        return await use_once(session, link_id=link_id, kind="export", expires_at=EXPIRES, now=now)


async def _rows(sessions: async_sessionmaker[AsyncSession]) -> dict[str, LinkUse]:
    async with sessions() as session:
        return {row.link_id: row for row in (await session.scalars(select(LinkUse))).all()}


async def _add_stale(sessions: async_sessionmaker[AsyncSession], count: int, *, expired_ago: timedelta) -> None:
    async with sessions() as session, session.begin():
        for n in range(count):
            session.add(LinkUse(link_id=f"stale-{expired_ago.total_seconds():.0f}-{n}", kind="export",
                                used_at=NOW - expired_ago - timedelta(minutes=5), expires_at=NOW - expired_ago))


async def test_a_link_is_used_once(sessions: async_sessionmaker[AsyncSession]) -> None:
    assert await _use(sessions, "link-a") is True
    assert await _use(sessions, "link-a") is False
    assert await _use(sessions, "link-a", now=NOW + timedelta(minutes=5)) is False
    assert await _use(sessions, "link-b") is True  # another link is another row
    row = (await _rows(sessions))["link-a"]
    assert row.kind == "export"
    assert as_utc(row.used_at) == NOW and as_utc(row.expires_at) == EXPIRES


async def test_a_use_that_rolls_back_leaves_the_link_usable(sessions: async_sessionmaker[AsyncSession]) -> None:
    with pytest.raises(RuntimeError):
        async with sessions() as session, session.begin():
            assert await use_once(session, link_id="link-a", kind="export", expires_at=EXPIRES, now=NOW)
            raise RuntimeError("building the file failed")
    assert await _rows(sessions) == {}
    assert await _use(sessions, "link-a") is True


async def test_two_simultaneous_uses_give_exactly_one(sessions: async_sessionmaker[AsyncSession]) -> None:
    """The second INSERT waits for the first transaction, then finds its row: one use."""
    first_inserted = asyncio.Event()

    async def first() -> bool:
        async with sessions() as session, session.begin():
            used = await use_once(session, link_id="link-a", kind="export", expires_at=EXPIRES, now=NOW)
            first_inserted.set()
            await asyncio.sleep(0.3)  # still open while the second one tries
            return used

    async def second() -> bool:
        await first_inserted.wait()
        return await _use(sessions, "link-a")

    assert await asyncio.gather(first(), second()) == [True, False]
    assert list(await _rows(sessions)) == ["link-a"]


async def test_many_simultaneous_uses_give_exactly_one(sessions: async_sessionmaker[AsyncSession]) -> None:
    results = await asyncio.gather(*(_use(sessions, "link-a") for _ in range(6)))
    assert sorted(results) == [False] * 5 + [True]


async def test_a_use_clears_rows_of_links_long_expired(sessions: async_sessionmaker[AsyncSession]) -> None:
    await _add_stale(sessions, 3, expired_ago=KEEP_AFTER_EXPIRY + timedelta(seconds=1))
    await _add_stale(sessions, 2, expired_ago=KEEP_AFTER_EXPIRY - timedelta(minutes=1))  # clocks may differ
    assert await _use(sessions, "link-a") is True
    rows = await _rows(sessions)
    assert sorted(rows) == ["link-a", "stale-3540-0", "stale-3540-1"]


async def test_a_refused_use_writes_nothing(sessions: async_sessionmaker[AsyncSession]) -> None:
    assert await _use(sessions, "link-a") is True
    await _add_stale(sessions, 2, expired_ago=timedelta(days=1))
    before = await _rows(sessions)
    assert await _use(sessions, "link-a", now=NOW + timedelta(minutes=1)) is False
    after = await _rows(sessions)
    assert sorted(after) == sorted(before)
    assert as_utc(after["link-a"].used_at) == NOW  # the first use stays the recorded one


async def test_the_clearing_is_bounded(sessions: async_sessionmaker[AsyncSession]) -> None:
    await _add_stale(sessions, 7, expired_ago=timedelta(days=2))
    async with sessions() as session, session.begin():
        assert await purge_expired(session, now=NOW, limit=5) == 5
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(LinkUse)) == 2

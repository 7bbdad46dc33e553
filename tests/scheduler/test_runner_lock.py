"""With several workers sharing Redis, each scheduler tick runs once."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from scheduler import runner
from scheduler.runner import RedisTickLock, run_tick, start_scheduler


@pytest.fixture
def ticks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A fake job table: one job that records who ran it."""
    ran: list[str] = []

    async def job(ctx) -> int:  # type: ignore[no-untyped-def]
        ran.append(ctx)
        return 0

    monkeypatch.setattr(runner, "JOBS", {"tick": (job, 0.3)})
    return ran


async def test_one_of_two_workers_runs_a_tick(redis_url: str, ticks: list[str]) -> None:
    async with Redis.from_url(redis_url) as a, Redis.from_url(redis_url) as b:
        one, two = RedisTickLock(a), RedisTickLock(b)
        ran = await asyncio.gather(
            run_tick("tick", "one", lock=one, interval=0.3),  # type: ignore[arg-type]
            run_tick("tick", "two", lock=two, interval=0.3),  # type: ignore[arg-type]
        )
        assert sorted(ran) == [False, True] and len(ticks) == 1
        await asyncio.sleep(0.35)  # the next tick: the lock has expired
        assert await run_tick("tick", "two", lock=two, interval=0.3)  # type: ignore[arg-type]
        assert len(ticks) == 2


async def test_without_a_lock_every_tick_runs(ticks: list[str]) -> None:
    assert await run_tick("tick", "one")  # type: ignore[arg-type]
    assert await run_tick("tick", "two")  # type: ignore[arg-type]
    assert ticks == ["one", "two"]


async def test_two_schedulers_share_their_ticks(redis_url: str, ticks: list[str]) -> None:
    async with Redis.from_url(redis_url) as a, Redis.from_url(redis_url) as b:
        schedulers = [
            start_scheduler("one", lock=RedisTickLock(a)),  # type: ignore[arg-type]
            start_scheduler("two", lock=RedisTickLock(b)),  # type: ignore[arg-type]
        ]
        try:
            await asyncio.sleep(1.05)  # ticks at about 0.3, 0.6 and 0.9 s in each scheduler
        finally:
            for scheduler in schedulers:
                scheduler.shutdown(wait=False)
    assert 2 <= len(ticks) <= 4  # one per tick, not two

"""Runs the jobs on a clock with APScheduler (in the server process in the embedded default).

Jobs catch up by design (they look for what is due now), so a missed run is simply
coalesced into the next one; each job runs at most once at a time.

With several workers, each tick runs once: a `TickLock` (`RedisTickLock`, one
`SET NX PX` per job for about its interval) lets the first worker run it and the
others skip it. Without a lock every tick runs, as with one worker.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from redis.asyncio import Redis

from scheduler.jobs import JOBS, JobContext

log = logging.getLogger(__name__)
LOCK_SHARE = 0.9  # of the interval: shorter, so that the next tick is never locked out


class TickLock(Protocol):
    async def acquire(self, name: str, *, seconds: float) -> bool:
        """True when this worker runs this tick of job `name` (held for `seconds`)."""
        ...


class RedisTickLock:
    """One tick per job across workers; the lock simply expires (never released early)."""

    def __init__(self, redis: Redis, *, prefix: str = "storefront:job:") -> None:
        self._redis = redis
        self._prefix = prefix
        self._owner = secrets.token_hex(8)

    async def acquire(self, name: str, *, seconds: float) -> bool:
        ttl_ms = max(1, int(seconds * 1000))
        return bool(await self._redis.set(self._prefix + name, self._owner, nx=True, px=ttl_ms))


async def run_job(name: str, ctx: JobContext) -> int:
    """Run one job now (also from the CLI); returns how many items it handled, once the
    messages it caused have had their first attempt."""
    job, _interval = JOBS[name]
    try:
        handled = await job(ctx)
        await ctx.drain()
    except Exception:
        log.exception("job failed", extra={"job": name})
        raise
    if handled:
        log.info("job done", extra={"job": name, "handled": handled})
    return handled


class Ticks:
    """The ticks running now, so that stopping waits for them instead of cancelling them
    halfway through a database call (the driver would answer a loop that is gone)."""

    def __init__(self) -> None:
        self._running = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self._running += 1
        self._idle.clear()

    def leave(self) -> None:
        self._running -= 1
        if self._running == 0:
            self._idle.set()

    async def idle(self, timeout: float) -> bool:
        """True once no tick runs; False when `timeout` passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True


async def stop_scheduler(scheduler: AsyncIOScheduler, ticks: Ticks, *, timeout: float = 10.0) -> None:
    """No new ticks; the running ones finish (up to `timeout`, then they are cancelled)."""
    scheduler.pause()
    if not await ticks.idle(timeout):
        log.warning("scheduler stopped with jobs still running after %.0f s; they are cancelled", timeout)
    scheduler.shutdown(wait=False)


def start_scheduler(
    ctx: JobContext,
    *,
    jobs: dict[str, float] | None = None,
    lock: TickLock | None = None,
    ticks: Ticks | None = None,
) -> AsyncIOScheduler:
    """Start the scheduler in the running event loop; `jobs` overrides intervals (seconds);
    `ticks` learns which ticks run (for `stop_scheduler`)."""
    scheduler = AsyncIOScheduler(
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
    )
    for name, (_job, interval) in JOBS.items():
        seconds = (jobs or {}).get(name, interval)
        scheduler.add_job(
            run_tick, "interval", seconds=seconds, args=(name, ctx),
            kwargs={"lock": lock, "interval": seconds, "ticks": ticks}, id=name, name=name,
        )
    scheduler.start()
    return scheduler


async def run_tick(
    name: str, ctx: JobContext, *, lock: TickLock | None = None, interval: float = 0, ticks: Ticks | None = None
) -> bool:
    """One scheduled run of `name`, unless another worker holds this tick; True when it ran."""
    if ticks is None:
        return await _tick(name, ctx, lock=lock, interval=interval)
    ticks.enter()
    try:
        return await _tick(name, ctx, lock=lock, interval=interval)
    finally:
        ticks.leave()


async def _tick(name: str, ctx: JobContext, *, lock: TickLock | None, interval: float) -> bool:
    if lock is not None:
        try:
            if not await lock.acquire(name, seconds=interval * LOCK_SHARE):
                return False
        except Exception:
            log.exception("job lock failed", extra={"job": name})
            return False  # the next tick tries again
    try:
        await run_job(name, ctx)
    except Exception:
        pass  # logged in run_job; the next tick tries again
    return True

"""Stopping the scheduler waits for the ticks that are running instead of cancelling them
halfway through (a cancelled database call answers an event loop that is gone)."""

from __future__ import annotations

import asyncio
from typing import Any

from scheduler.jobs import JOBS, JobContext
from scheduler.runner import Ticks, start_scheduler, stop_scheduler

ONLY_THE_OUTBOX = {name: (0.05 if name == "deliver_outbox" else 3600.0) for name in JOBS}


def _context(deliver: Any) -> JobContext:
    return JobContext(uow=None, payments=None, deliver_outbox=deliver)  # type: ignore[arg-type]


async def test_a_running_tick_finishes_before_the_scheduler_stops() -> None:
    started, finished = asyncio.Event(), asyncio.Event()

    async def slow_delivery() -> int:
        started.set()
        await asyncio.sleep(0.3)
        finished.set()
        return 0

    ticks = Ticks()
    scheduler = start_scheduler(_context(slow_delivery), jobs=ONLY_THE_OUTBOX, ticks=ticks)
    await asyncio.wait_for(started.wait(), 5)
    await stop_scheduler(scheduler, ticks, timeout=5)
    assert finished.is_set()  # waited for, not cancelled
    await asyncio.sleep(0.05)  # APScheduler's shutdown runs on the loop's next turn
    assert not scheduler.running


async def test_a_tick_that_does_not_finish_in_time_is_cancelled() -> None:
    started = asyncio.Event()
    cancelled: list[bool] = []

    async def stuck_delivery() -> int:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return 0

    ticks = Ticks()
    scheduler = start_scheduler(_context(stuck_delivery), jobs=ONLY_THE_OUTBOX, ticks=ticks)
    await asyncio.wait_for(started.wait(), 5)
    await stop_scheduler(scheduler, ticks, timeout=0.1)
    await asyncio.sleep(0.05)  # the shutdown and the cancellation are delivered
    assert cancelled == [True] and not scheduler.running

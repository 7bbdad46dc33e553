"""The analytics' buffer on its own: bounded (drops counted, never blocks), batches of
`batch` events, a full batch written at once, what is left written when it closes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from bot.analytics import EventBuffer
from commerce.analytics import events
from commerce.analytics.events import Event


class Writes:
    def __init__(self) -> None:
        self.batches: list[int] = []

    async def __call__(self, batch: Sequence[Event]) -> None:
        self.batches.append(len(batch))


async def test_a_full_buffer_drops_new_events_and_counts_them() -> None:
    dropped: list[tuple[str, int]] = []
    buffer = EventBuffer(Writes(), capacity=5, batch=100, on_dropped=lambda reason, n: dropped.append((reason, n)))
    buffer.add(events.message(n) for n in range(1, 5))
    buffer.add([events.message(5), events.message(6), events.message(7)])
    buffer.add([events.message(8)])
    assert len(buffer) == 5 and dropped == [("full", 2), ("full", 1)]


async def test_events_are_written_in_batches_at_once_when_a_batch_is_full_and_on_close() -> None:
    writes, written = Writes(), []
    buffer = EventBuffer(writes, every=60, batch=3, on_written=written.append)
    buffer.start()
    buffer.add(events.card(1, n) for n in range(1, 8))  # two batches' worth: written now, not in 60 s
    for _ in range(100):
        await asyncio.sleep(0.01)
        if len(buffer) < 3:
            break
    assert writes.batches == [3, 3, 1]  # everything waiting went, a batch an INSERT
    buffer.add([events.checkout(1)])
    await buffer.close()
    assert writes.batches == [3, 3, 1, 1] and sum(written) == 8


async def test_closing_waits_for_a_write_under_way_and_writes_the_rest() -> None:
    """Shutdown during a write: that batch is not lost, and what came meanwhile goes too."""
    started, release, batches = asyncio.Event(), asyncio.Event(), []

    async def slow(batch: Sequence[Event]) -> None:
        started.set()
        await release.wait()
        batches.append(len(batch))

    buffer = EventBuffer(slow, every=60, batch=2)
    buffer.start()
    buffer.add([events.message(1), events.message(2)])
    await started.wait()
    buffer.add([events.message(3)])
    closing = asyncio.create_task(buffer.close())
    await asyncio.sleep(0.01)
    release.set()
    await closing
    assert batches == [2, 1] and len(buffer) == 0

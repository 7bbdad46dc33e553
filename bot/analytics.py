"""The events worth counting, recorded off the reply path and written in batches.

`EventBuffer` is what handlers, a turn and committed transactions record into
(`commerce.analytics.events`): recording is an append to a bounded list, nothing more. A
task of its own writes what waits every `flush_seconds`, or as soon as `batch` events
wait, with one executemany INSERT in a transaction of its own (`write_events`), and once
more when the worker stops. When the list is full (the database away for long), new
events are dropped and counted (`storefront_events_dropped{reason="full"}`), never waited
for; a write that fails is logged once, without its data, until one succeeds again, and
its events are counted as lost (`reason="failed"`): a chart loses a dot, a customer
waits for nothing. `NoEvents` stands in when `analytics.enabled` is false.

What a turn records (a search, a card shown) is held by the turn and handed over here
only when it answered (`bot.chat.conversation`): a turn run again (a busy database) or
taken over after its changes were committed counts once; a WeChat retry of the message
never runs the turn at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Protocol

from commerce.analytics.events import Event

log = logging.getLogger(__name__)

BATCH = 500  # events in one INSERT; as many waiting start a write at once
CAPACITY = 20_000  # events waiting at most: beyond, new ones are dropped (and counted)
CLOSE_SECONDS = 10.0  # shutdown waits this long at most for the last write
FLUSH_TASK = "analytics-flush"  # the writer's task name (tests tell its statements apart)

Write = Callable[[Sequence[Event]], Awaitable[None]]


class EventRecorder(Protocol):
    def add(self, events: Iterable[Event]) -> None:
        """Record `events` (never blocks, never raises)."""
        ...

    async def flush(self) -> None:
        """Write what waits now."""
        ...


class NoEvents:
    """Analytics off: nothing is recorded."""

    def add(self, events: Iterable[Event]) -> None:
        return None

    async def flush(self) -> None:
        return None


class EventBuffer:
    """Events waiting in memory, written in batches by a task of their own (module doc)."""

    def __init__(
        self,
        write: Write,
        *,
        every: float = 2.0,
        batch: int = BATCH,
        capacity: int = CAPACITY,
        on_written: Callable[[int], None] = lambda count: None,
        on_dropped: Callable[[str, int], None] = lambda reason, count: None,
    ) -> None:
        self._write = write
        self._every = every
        self._batch = batch
        self._capacity = capacity
        self._on_written = on_written
        self._on_dropped = on_dropped
        self._waiting: list[Event] = []
        self._full = asyncio.Event()  # a batch is waiting: write now
        self._writing = asyncio.Lock()
        self._failing = False  # the last write failed (logged once until one succeeds)
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, events: Iterable[Event]) -> None:
        room = self._capacity - len(self._waiting)
        incoming = list(events)
        if len(incoming) > room:
            self._observe(self._on_dropped, "full", len(incoming) - max(room, 0))
            incoming = incoming[: max(room, 0)]
        self._waiting.extend(incoming)
        if len(self._waiting) >= self._batch:
            self._full.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=FLUSH_TASK)

    async def close(self) -> None:
        """Write what waits and stop (shutdown: after everything that records). A write
        under way finishes first; one the database keeps past `CLOSE_SECONDS` is given up."""
        task, self._task = self._task, None
        self._closing = True
        self._full.set()
        try:
            await asyncio.wait_for(task if task is not None else self.flush(), CLOSE_SECONDS)
        except TimeoutError:
            log.warning("analytics: the last events were not written before shutdown (counted as lost)")
            self._observe(self._on_dropped, "failed", len(self._waiting))
            self._waiting = []

    async def flush(self) -> None:
        """Write everything waiting now, `batch` events an INSERT."""
        async with self._writing:
            while self._waiting:
                taken, self._waiting = self._waiting[: self._batch], self._waiting[self._batch :]
                await self._write_batch(taken)
            self._full.clear()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), self._every)
            try:
                await self.flush()
            except Exception:  # belt and braces: _write_batch keeps its own errors
                log.exception("analytics flush failed")
            if self._closing:
                return

    async def _write_batch(self, taken: list[Event]) -> None:
        try:
            await self._write(taken)
        except Exception as exc:
            if not self._failing:  # once, until a write succeeds: no flood while the database is away
                log.warning("analytics events could not be written: %s (counted as lost)", type(exc).__name__)
            self._failing = True
            self._observe(self._on_dropped, "failed", len(taken))
            return
        if self._failing:
            log.info("analytics events are written again")
        self._failing = False
        self._observe(self._on_written, len(taken))

    @staticmethod
    def _observe(hook: Callable[..., None], *args: object) -> None:
        try:
            hook(*args)
        except Exception:  # a metric never breaks recording
            log.exception("analytics metric hook failed")

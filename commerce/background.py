"""Work started in the background that is still waited for on shutdown.

Side effects such as telling a customer or refunding a late payment must not hold up
the answer to WeChat, but must not be dropped either: `spawn` starts them (logging,
never raising, their failures) and `drain` waits for everything started so far.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class BackgroundTasks:
    def __init__(self, *, what: str, limit: int | None = None) -> None:
        self._what = what
        self._tasks: set[asyncio.Task[None]] = set()
        self._limit = asyncio.Semaphore(limit) if limit else None

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        async def guarded() -> None:
            try:
                if self._limit is None:
                    await work
                else:
                    async with self._limit:
                        await work
            except Exception:
                log.exception("%s failed", self._what)

        task = asyncio.create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait until the work started so far (and any work it started) has finished."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def __len__(self) -> int:
        return len(self._tasks)

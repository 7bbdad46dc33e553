"""Every WeChat message is processed once, in order per user, and answered in time.

WeChat waits 5 seconds for a passive reply and then retries (3 times) with the same
MsgId. The inbox:
- de-duplicates on the message's key; a retry waits for, and gets, the first
  delivery's reply, even while the first is still being processed;
- runs one user's messages one at a time, in arrival order (asyncio locks are FIFO);
- answers "success" when the reply is not ready by the deadline, and then delivers
  it through the outbound sender, exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from bot.outbound import OutboundSender
from bot.protocol import Inbound
from bot.render import Rendered

log = logging.getLogger(__name__)
DEDUPE_SECONDS = 300.0  # WeChat's retries all come within ~15 s


@dataclass(slots=True)
class _Entry:
    created: float
    future: asyncio.Future[Rendered]
    deferred: bool = False


class UserLocks:
    """One FIFO lock per user, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, openid: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(openid, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[openid] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[openid]
            if users <= 1:
                del self._locks[openid]
            else:
                self._locks[openid] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


@dataclass(slots=True)
class Inbox:
    respond: Callable[[Inbound], Awaitable[Rendered]]
    fallback: Callable[[Inbound], Rendered]
    outbound: OutboundSender
    deadline: float
    _entries: OrderedDict[str, _Entry] = field(default_factory=OrderedDict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    locks: UserLocks = field(default_factory=UserLocks)

    async def handle(self, msg: Inbound) -> Rendered | None:
        """The passive reply for `msg`, or None to answer "success" (reply sent later or never)."""
        key = msg.dedupe_key
        entry = self._entries.get(key)
        if entry is None:
            self._forget_old()
            entry = _Entry(time.monotonic(), asyncio.get_running_loop().create_future())
            self._entries[key] = entry
            task = asyncio.create_task(self._process(msg, entry))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if entry.deferred:
            return None
        try:
            return await asyncio.wait_for(asyncio.shield(entry.future), self.deadline)
        except TimeoutError:
            entry.deferred = True
            return None

    async def _process(self, msg: Inbound, entry: _Entry) -> None:
        async with self.locks.hold(msg.openid):
            try:
                rendered = await self.respond(msg)
            except Exception:
                log.exception("reply failed", extra={"kind": msg.kind})
                rendered = self.fallback(msg)
        entry.future.set_result(rendered)
        if entry.deferred and rendered.kind in ("text", "news"):
            try:
                await self.outbound.send(msg.openid, rendered)
            except Exception:
                log.exception("late reply could not be sent")

    def _forget_old(self) -> None:
        cutoff = time.monotonic() - DEDUPE_SECONDS
        while self._entries:
            key, oldest = next(iter(self._entries.items()))
            if oldest.created > cutoff or not oldest.future.done():
                break
            del self._entries[key]

    async def drain(self) -> None:
        """Wait for messages still in progress (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

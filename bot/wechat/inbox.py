"""Every WeChat message is processed once, in order per user, and answered in time.

WeChat waits 5 seconds for a passive reply and then retries (3 times) with the same
MsgId. The inbox:
- de-duplicates on the message's key (a `ReplyStore`: in process, or in Redis for
  several workers, bot/inbox_redis.py); a retry waits for, and gets, the first
  delivery's reply, even while the first is still being processed;
- counts the messages the rate limit (the first step of `respond`, bot/chat/middleware.py)
  answered instead of processing them (`Refused`);
- runs one user's messages one at a time, in arrival order (`UserLocks`: asyncio
  locks are FIFO; `RedisUserLocks` across workers);
- answers "success" when the reply is not ready by the deadline, and then delivers
  it through the outbound sender, exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

from bot.chat.render import Rendered
from bot.outbound.sender import OutboundSender
from bot.wechat.protocol import Inbound

log = logging.getLogger(__name__)
DEDUPE_SECONDS = 300.0  # WeChat's retries all come within ~15 s


class ReplyStore(Protocol):
    """Who processes a message, and the reply its retries get.

    A key is claimed once; its reply is either ready, or "deferred" (some delivery gave
    up waiting, so the processor sends the reply through the outbound sender instead).
    """

    async def claim(self, key: str) -> bool:
        """True for the first delivery of `key`: the caller processes the message."""
        ...

    async def wait(self, key: str, timeout: float) -> Rendered | None:
        """The reply once ready; None when deferred, or when `timeout` passes (then deferred)."""
        ...

    async def finish(self, key: str, rendered: Rendered) -> bool:
        """Store the reply; True when it was deferred and must go out through the sender."""
        ...


class UserLock(Protocol):
    def hold(self, openid: str) -> AbstractAsyncContextManager[None]:
        """One user's messages, one at a time, in the order they asked."""
        ...


@dataclass(slots=True)
class _Entry:
    created: float
    future: asyncio.Future[Rendered]
    deferred: bool = False


class MemoryReplyStore:
    """One worker: futures in process, forgotten after `DEDUPE_SECONDS`."""

    def __init__(self) -> None:
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    async def claim(self, key: str) -> bool:
        if key in self._entries:
            return False
        self._forget_old()
        self._entries[key] = _Entry(time.monotonic(), asyncio.get_running_loop().create_future())
        return True

    async def wait(self, key: str, timeout: float) -> Rendered | None:
        entry = self._entries.get(key)
        if entry is None or entry.deferred:
            return None
        try:
            return await asyncio.wait_for(asyncio.shield(entry.future), timeout)
        except TimeoutError:
            entry.deferred = True
            return None

    async def finish(self, key: str, rendered: Rendered) -> bool:
        entry = self._entries[key]
        entry.future.set_result(rendered)
        return entry.deferred

    def _forget_old(self) -> None:
        cutoff = time.monotonic() - DEDUPE_SECONDS
        while self._entries:
            key, oldest = next(iter(self._entries.items()))
            if oldest.created > cutoff or not oldest.future.done():
                break
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


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


@dataclass(frozen=True, slots=True)
class Refused:
    """What `respond` answered instead of processing the message (the rate limit)."""

    rendered: Rendered


@dataclass(slots=True)
class Inbox:
    respond: Callable[[Inbound], Awaitable[Rendered | Refused]]
    fallback: Callable[[Inbound], Rendered]
    outbound: OutboundSender
    deadline: float
    replies: ReplyStore = field(default_factory=MemoryReplyStore)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    locks: UserLock = field(default_factory=UserLocks)
    # Metrics (bot/metrics.py): (kind, outcome) once per message (replied, failed,
    # rate_limited) and once per retried delivery (duplicate); (kind) per missed deadline.
    on_outcome: Callable[[str, str], None] | None = None
    on_deadline_miss: Callable[[str], None] | None = None

    async def handle(self, msg: Inbound) -> Rendered | None:
        """The passive reply for `msg`, or None to answer "success" (reply sent later or never)."""
        key = msg.dedupe_key
        if await self.replies.claim(key):
            task = asyncio.create_task(self._process(msg, key))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            self._observe(self.on_outcome, msg.kind, "duplicate")
        return await self.replies.wait(key, self.deadline)

    async def _process(self, msg: Inbound, key: str) -> None:
        async with self.locks.hold(msg.openid):
            try:
                answered = await self.respond(msg)
            except Exception:
                log.exception("reply failed", extra={"kind": msg.kind})
                answered = self.fallback(msg)
                outcome = "failed"
            else:
                outcome = "rate_limited" if isinstance(answered, Refused) else "replied"
        rendered = answered.rendered if isinstance(answered, Refused) else answered
        self._observe(self.on_outcome, msg.kind, outcome)
        try:
            deferred = await self.replies.finish(key, rendered)
        except Exception:
            log.exception("reply could not be stored", extra={"kind": msg.kind})
            return
        if deferred:
            self._observe(self.on_deadline_miss, msg.kind)
        if deferred and rendered.kind in ("text", "news"):
            try:
                await self.outbound.send(msg.openid, rendered)
            except Exception:
                log.exception("late reply could not be sent")

    @staticmethod
    def _observe(hook: Callable[..., None] | None, *args: str) -> None:
        if hook is None:
            return
        try:
            hook(*args)
        except Exception:  # a metric never loses a reply
            log.exception("inbox metric hook failed")

    async def drain(self) -> None:
        """Wait for messages still in progress (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

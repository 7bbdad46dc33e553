"""Every WeChat message is processed once, in order per user, and answered in time.

WeChat waits 5 seconds for a passive reply and then retries (3 times) with the same
MsgId. The inbox:
- writes the message down and de-duplicates on its key (a `ReplyStore`: in the database
  for the app, `bot.wechat.intake`, so that a message survives the worker that took it;
  in process or in Redis without one); a retry waits for, and gets, the first
  delivery's reply, even while the first is still being processed;
- lets its `edge` answer first what needs no turn (`bot.flash_edge`: a flash sale's
  losers), before anything is written down;
- counts the messages the rate limit (the first step of `respond`, bot/chat/middleware.py)
  answered instead of processing them (`Refused`);
- runs one user's messages one at a time, in arrival order (`UserLocks`: asyncio
  locks are FIFO; `RedisUserLocks` across workers);
- answers "success" when the reply is not ready by the deadline, and then delivers
  it through the outbound sender, exactly once; never for a message that could not be
  written down (`NotRecorded`: the webhook answers an error, and WeChat retries);
- processes again what a dead worker left (`recover`, called by the intake's sweeper);
- hands back, unanswered, a message whose turn was `Postponed` (the database stayed busy)
  when its store keeps messages (`postpone`): the customer is told it is kept, and the
  sweeper runs it again; without such a store it is answered with the fallback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.chat.render import Rendered
from bot.outbound.sender import OutboundSender
from bot.wechat.protocol import Inbound

log = logging.getLogger(__name__)
DEDUPE_SECONDS = 300.0  # WeChat's retries all come within ~15 s
ADMITTED = 32  # requests a worker checks and takes at once (`Inbox.admission`)


class ReplyStore(Protocol):
    """Who processes a message, and the reply its retries get.

    A key is claimed once; its reply is either ready, or "deferred" (some delivery gave
    up waiting, so the processor sends the reply through the outbound sender instead).
    """

    async def claim(self, key: str, *, msg: Inbound | None = None) -> bool:
        """True for the first delivery of `key` (the message `msg`): the caller processes it.

        A store that writes the message down raises when it cannot."""
        ...

    async def wait(self, key: str, timeout: float) -> Rendered | None:
        """The reply once ready; None when deferred, or when `timeout` passes (then deferred)."""
        ...

    async def finish(self, key: str, rendered: Rendered) -> bool:
        """Store the reply; True when it was deferred and must go out through the sender.

        Raises `LeaseLost` when another worker took the message over meanwhile (it answers)."""
        ...


class LeaseLost(Exception):
    """This worker no longer holds the message: another worker took it over and answers it."""


class Postponed(Exception):
    """The message cannot be processed now (the database stayed busy past the turn's
    deadline); it is kept, unanswered, to be processed again later."""


class NotRecorded(Exception):
    """The message could not be written down: nobody would process it, so it is not answered."""


class Edge(Protocol):
    """Answers a message before it is written down, when its answer needs no turn
    (`bot.flash_edge`: a flash sale's loser), else gives it back (perhaps marked)."""

    async def decide(self, msg: Inbound) -> Rendered | Inbound: ...


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

    async def claim(self, key: str, *, msg: Inbound | None = None) -> bool:
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
    _claiming: UserLocks = field(default_factory=UserLocks)
    locks: UserLock = field(default_factory=UserLocks)
    # a store that keeps a message for later (bot.wechat.intake): (key, notice) -> deferred
    postpone: Callable[[str, Rendered], Awaitable[bool]] | None = None
    busy: Callable[[Inbound], Rendered] | None = None  # the notice of a postponed message
    # Metrics (bot/metrics.py): (kind, outcome) once per message (replied, failed,
    # rate_limited) and once per retried delivery (duplicate); (kind) per missed deadline.
    on_outcome: Callable[[str, str], None] | None = None
    on_deadline_miss: Callable[[str], None] | None = None
    edge: Edge | None = None  # asked first (outcome "edge" when it answers)
    # Requests checked and screened at once (`bot.wechat.webhook`); the others wait their
    # turn in arrival order. Unbounded, a rush of thousands advanced all together: each one's
    # Redis commands waited behind everyone's, none finished within WeChat's 5 seconds, the
    # Redis pool ran dry (Redis counted as down) and WeChat's retries tripled the load.
    # Writing down and the turn come after, outside it: a slow database holds no place.
    admission: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(ADMITTED))

    async def handle(self, msg: Inbound, *, arrived: float | None = None) -> Rendered | None:
        """The passive reply for `msg`, or None to answer "success" (reply sent later or never):
        `take`, then `answer`. Raises `NotRecorded` when the message could not be written down."""
        taken = await self.take(msg)
        if isinstance(taken, Rendered):
            return taken
        return await self.answer(taken, arrived=arrived)

    async def take(self, msg: Inbound) -> Rendered | str:
        """The edge's answer (`screen`), or the key of the message written down (`enter`)."""
        screened = await self.screen(msg)
        if isinstance(screened, Rendered):
            return screened
        return await self.enter(screened)

    async def screen(self, msg: Inbound) -> Rendered | Inbound:
        """The edge's answer, or the message to write down (perhaps marked by the edge). The
        webhook screens a message inside its admission (`admission`)."""
        if self.edge is None:
            return msg
        try:
            decided = await self.edge.decide(msg)
        except Exception:  # the edge is a shortcut: without it the turn answers
            log.exception("the edge could not decide; the message goes on", extra={"kind": msg.kind})
            return msg
        if isinstance(decided, Rendered):
            self._observe(self.on_outcome, msg.kind, "edge")
        return decided

    async def enter(self, msg: Inbound) -> str:
        """Write the message down and claim it (its turn starts), or find it claimed already
        (a retry): the key `answer` waits on.

        Raises `NotRecorded` when the message could not be written down."""
        key = msg.dedupe_key
        # one user's claims one at a time here, so their processing starts in arrival order
        # (a claim is a database write: writers waiting for a lock are not served in order)
        async with self._claiming.hold(msg.openid):
            try:
                claimed = await self.replies.claim(key, msg=msg)
            except Exception as exc:
                log.exception("message could not be written down", extra={"kind": msg.kind})
                raise NotRecorded(key) from exc
            if claimed:
                self._spawn(self._process(msg, key))
        if not claimed:
            self._observe(self.on_outcome, msg.kind, "duplicate")
        return key

    async def answer(self, key: str, *, arrived: float | None = None) -> Rendered | None:
        """The reply of the message taken under `key` once ready, or None ("success": it goes
        out later, or went already).

        `arrived`: when its request came (`time.perf_counter()`). WeChat's 5 seconds started
        then, so the time spent before the wait (reading and checking the request, waiting to
        be admitted, writing the message down: seconds when the shop is swamped) comes off
        `deadline`. Counted from the wait alone, a reply ready after WeChat stopped listening
        was "answered" into a closed connection, and no customer-service message followed."""
        left = self.deadline if arrived is None else self.deadline - (time.perf_counter() - arrived)
        return await self.replies.wait(key, max(0.0, left))

    def recover(self, messages: list[tuple[Inbound, bool]]) -> None:
        """Process, in this order, one user's messages a dead worker left (already claimed
        here by the sweeper); `True` beside a message: it failed too often, answer politely."""

        async def in_order() -> None:
            for msg, give_up in messages:
                await self._process(msg, msg.dedupe_key, give_up=give_up)

        self._spawn(in_order())

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, msg: Inbound, *, give_up: bool) -> tuple[Rendered, str]:
        """The reply and its outcome label: `respond`, or the polite fallback when it fails
        (or when the message already failed too often to try again), or the busy notice
        when the turn was postponed and the store keeps the message."""
        if give_up:
            return self.fallback(msg), "failed"
        try:
            answered = await self.respond(msg)
        except Postponed:
            if self.postpone is None:
                log.warning("database busy past the turn's deadline; nothing keeps the message", extra={"kind": msg.kind})
                return self.fallback(msg), "failed"
            return (self.busy or self.fallback)(msg), "postponed"  # kept: the notice says so
        except Exception:
            log.exception("reply failed", extra={"kind": msg.kind})
            return self.fallback(msg), "failed"
        if isinstance(answered, Refused):
            return answered.rendered, "rate_limited"
        return answered, "replied"

    async def _process(self, msg: Inbound, key: str, *, give_up: bool = False) -> None:
        async with self.locks.hold(msg.openid):
            rendered, outcome = await self._answer(msg, give_up=give_up)
        self._observe(self.on_outcome, msg.kind, outcome)
        if outcome == "postponed":
            await self._postpone(msg, key, rendered)
            return
        try:
            deferred = await self.replies.finish(key, rendered)
        except LeaseLost:
            log.warning("message taken over by another worker: its reply is theirs", extra={"kind": msg.kind})
            return
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

    async def _postpone(self, msg: Inbound, key: str, notice: Rendered) -> None:
        """Keep the message unanswered for the sweeper, and tell the customer so (`notice`)."""
        if self.postpone is None:
            raise RuntimeError("postponed without a store that keeps the message")
        try:
            deferred = await self.postpone(key, notice)
        except LeaseLost:
            log.warning("postponed message taken over by another worker meanwhile", extra={"kind": msg.kind})
            return
        except Exception:
            log.exception("postponed message could not be handed back", extra={"kind": msg.kind})
            return  # its lease runs out: a sweeper takes it over all the same
        if deferred:
            try:
                await self.outbound.send(msg.openid, notice)
            except Exception:
                log.exception("busy notice could not be sent")

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

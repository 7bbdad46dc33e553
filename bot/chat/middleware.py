"""The middleware chain every message goes through, ending in its route (aiogram v3 style).

A middleware is `async (turn, call_next) -> Answer`: it may answer by itself (the rate
limit does, for a flooding customer), or call the next one, usually with a richer
`Turn` (who the customer is, their staff role). Turns and answers are frozen: each
middleware passes on a new one, nothing is shared. The chain is a plain list built by
the app factory, so adding or reordering a step is one line:

    rate limit -> retry when busy -> customer (touch) -> staff role -> unit of work -> route
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from bot.chat.replies import Reply, Silence, Text
from bot.wechat.inbox import Postponed
from bot.wechat.protocol import Inbound
from bot.wechat.ratelimit import RateLimiter, Verdict, is_counted
from commerce.customers.customers import CustomerInfo
from commerce.db import TURN_DEADLINE_SECONDS, is_busy, is_stale_connection
from commerce.staff.models import StaffRole
from commerce.uow import UnitOfWorkFactory

log = logging.getLogger(__name__)

# Events by which the customer opens WeChat's 48-hour customer-service window (besides
# every message they send); VIEW, LOCATION reports, TEMPLATESENDJOBFINISH... do not.
WINDOW_EVENTS = frozenset({"subscribe", "scan", "click", "scancode_push", "scancode_waitmsg"})


def opens_window(msg: Inbound) -> bool:
    return msg.kind != "event" or msg.event in WINDOW_EVENTS


@dataclass(frozen=True, slots=True)
class Turn:
    """What the chain knows so far about one inbound message."""

    msg: Inbound
    locale: str  # the language to answer in (the shop's until the customer is known)
    customer_id: int = 0
    staff_role: StaffRole | None = None
    uow: UnitOfWorkFactory | None = None  # the turn's units of work (the unit-of-work step)


@dataclass(frozen=True, slots=True)
class Answer:
    """The reply and its language. `said_in`: the language the customer's words were
    recognised in (remembered as theirs); `refused`: the message was not processed."""

    reply: Reply
    locale: str
    said_in: str | None = None
    refused: bool = False


Next = Callable[[Turn], Awaitable[Answer]]
Middleware = Callable[[Turn, Next], Awaitable[Answer]]


async def _no_answer(turn: Turn) -> Answer:
    raise LookupError("the middleware chain ended without an answer: its last step must answer")


def chain(middlewares: Sequence[Middleware]) -> Next:
    """One callable running `middlewares` in order; the last one answers."""
    step: Next = _no_answer
    for middleware in reversed(middlewares):
        step = _bind(middleware, step)
    return step


def _bind(middleware: Middleware, call_next: Next) -> Next:
    async def step(turn: Turn) -> Answer:
        return await middleware(turn, call_next)

    return step


# ---- the steps ---------------------------------------------------------------------------


async def passing(turn: Turn, call_next: Next) -> Answer:
    """A step that does nothing (a feature turned off)."""
    return await call_next(turn)


@dataclass(frozen=True, slots=True)
class StaffLimit:
    """Staff's own rate limit: who is staff, and their limiter (None: no limit)."""

    roles: StaffRoles
    limiter: RateLimiter | None


def rate_limit(
    limiter: RateLimiter,
    *,
    locale_of: Callable[[str], Awaitable[str]],
    on_limited: Callable[[Verdict], None] = lambda verdict: None,
    staff: StaffLimit | None = None,
) -> Middleware:
    """A customer over the limit is told once (`rate_limited`, in their language), then
    silence until the window passes; the rest of the chain does not run. System events
    are never counted, and an unavailable limiter lets the message through. Staff (a
    signed message from a staff openid) count against `staff`'s own, higher limit
    instead (none when `staff.limiter` is None)."""

    async def limit(turn: Turn, call_next: Next) -> Answer:
        if not is_counted(turn.msg):
            return await call_next(turn)
        key, chosen = turn.msg.openid, limiter
        if staff is not None and await _is_staff(staff, turn.msg):
            if staff.limiter is None:
                return await call_next(turn)
            key, chosen = f"staff:{turn.msg.openid}", staff.limiter
        try:
            verdict = await chosen.hit(key)
        except Exception:
            log.warning("rate limiter unavailable; message let through", exc_info=True)
            verdict = Verdict.ALLOW
        if verdict is Verdict.ALLOW:
            return await call_next(turn)
        on_limited(verdict)
        if verdict is Verdict.WARN:
            try:  # the customer did write: a touch within the minute is a cache hit
                locale = await locale_of(turn.msg.openid)
            except Exception:
                locale = turn.locale
            return Answer(Text("rate_limited"), locale, refused=True)
        return Answer(Silence(), turn.locale, refused=True)

    return limit


async def _is_staff(staff: StaffLimit, msg: Inbound) -> bool:
    """Whether a signed message comes from staff; while roles cannot be read (the database
    away), everyone counts as a customer."""
    if msg.downgraded:
        return False
    try:
        return await staff.roles.role(msg.openid) is not None
    except Exception:
        log.warning("staff roles unavailable; counted as a customer", exc_info=True)
        return False


@dataclass(frozen=True, slots=True)
class BusyRetry:
    """How long a turn retries a busy database (SQLite's write lock held by another
    connection past the busy timeout, commerce/db.py), and its pauses (doubling)."""

    deadline: float = TURN_DEADLINE_SECONDS
    first_pause: float = 0.1
    max_pause: float = 2.0


def retry_when_busy(policy: BusyRetry, *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> Middleware:
    """The rest of the turn runs again, from the start, when the database stayed busy: the
    failed unit of work rolled back, so nothing of it was kept (a turn that did commit a
    change is answered without repeating it, `bot.wechat.intake.fence`). WeChat's 5-s wait
    may pass meanwhile: the inbox then sends the real answer as a customer-service message.
    Past the deadline the turn is `Postponed`: its message is kept and run again later.
    A connection found dead (the database restarted, commerce/db.py) runs it again once,
    at once: the pool has dropped its stale connections."""

    async def retry(turn: Turn, call_next: Next) -> Answer:
        started, pause, stale_retried = time.monotonic(), policy.first_pause, False
        while True:
            try:
                return await call_next(turn)
            except Exception as exc:
                if is_stale_connection(exc) and not stale_retried:  # the server restarted: once, at once
                    log.warning("database connection found dead; the turn runs again", extra={"kind": turn.msg.kind})
                    stale_retried = True
                    continue
                if not is_busy(exc):
                    raise
                left = policy.deadline - (time.monotonic() - started)
                if left <= 0:
                    log.warning("database busy past the turn's deadline; message kept", extra={"kind": turn.msg.kind})
                    raise Postponed() from exc
                log.info("database busy; the turn runs again", extra={"pause": min(pause, left)})
                await sleep(min(pause, left))
                pause = min(pause * 2, policy.max_pause)

    return retry


class CustomerBook(Protocol):
    async def touch(
        self,
        openid: str,
        *,
        locale: str | None = None,
        subscribed: bool | None = None,
        messaged: bool = True,
        before_turn: bool = False,
    ) -> CustomerInfo: ...


def customer(customers: CustomerBook) -> Middleware:
    """Records the customer (and that they wrote: WeChat's service window), answers in
    their language, and remembers a language their words were recognised in. Both
    touches are outside the route, before and after the turn's fence (`before_turn`: they
    may share the journal's group commit); this step stays ahead of `bot.wechat.intake.fence`."""

    async def touch(turn: Turn, call_next: Next) -> Answer:
        known = await customers.touch(turn.msg.openid, messaged=opens_window(turn.msg), before_turn=True)
        answer = await call_next(replace(turn, customer_id=known.id, locale=known.locale or turn.locale))
        if answer.said_in and answer.said_in != known.locale:
            await customers.touch(turn.msg.openid, locale=answer.said_in, before_turn=True)
        return answer

    return touch


class StaffRoles(Protocol):
    async def role(self, openid: str) -> StaffRole | None: ...


def staff_role(staff: StaffRoles) -> Middleware:
    """The sender's staff role, if any. A downgraded (unsigned plaintext) request never
    acts as staff: anyone could forge it."""

    async def find(turn: Turn, call_next: Next) -> Answer:
        role = None if turn.msg.downgraded else await staff.role(turn.msg.openid)
        return await call_next(replace(turn, staff_role=role))

    return find


class _HeldMessages:
    """A dispatcher that keeps the outbox rows a turn's units of work committed."""

    def __init__(self) -> None:
        self.ids: list[int] = []

    def dispatch(self, message_ids: Sequence[int]) -> None:
        self.ids.extend(message_ids)

    async def drain(self) -> None:
        return None


def unit_of_work(uows: UnitOfWorkFactory) -> Middleware:
    """The turn's units of work (`commerce.uow`): what the handlers change and tell customers
    is committed with its notices by each unit of work, and the messages are handed to the
    real dispatcher once the turn has its answer, in the order they were written: a
    customer never hears "points earned" before the reply to the message that earned
    them is ready. Committed messages go out even when the handler then fails."""

    async def step(turn: Turn, call_next: Next) -> Answer:
        held = _HeldMessages()
        try:
            return await call_next(replace(turn, uow=uows.with_dispatcher(held)))
        finally:
            if held.ids:
                uows.dispatcher.dispatch(tuple(held.ids))

    return step

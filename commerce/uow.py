"""The unit of work: one transaction, the shop rules, a clock, and the messages it caused.

    async with shop.uow() as uow:
        order = await actions.cancel_unpaid(uow, order_id=..., by=...)
        uow.notify(order.openid, "order_cancelled", {...})

`async with` opens a session and its transaction; a clean exit commits, an exception
rolls back (and re-raises). `notify` queues a message to a customer; the commit writes
it to the outbox *in the same transaction* (`commerce.messaging.notices`), so a change
and the message about it are kept together or not at all. After the commit the
dispatcher is handed the new outbox rows and sends them at once; if this process dies
first, the scheduler's `deliver_outbox` sends them when their lease runs out. Nothing a
transaction decided to say is lost, and nothing is said for a transaction that rolled
back.

The rules and the clock ride on the unit of work (and on its session, for code deep in
an order move): money paths read `uow.now`, fixed when the unit of work opens, never
the wall clock of their own.

`UnitOfWorkFactory` (`Shop.uow`) is what entry points hold: the chat, staff commands,
pages, the payment notification and the scheduler all open their transactions with it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.messaging import notices
from commerce.rules import SESSION_RULES, ShopRules

Clock = Callable[[], datetime]


def wall_clock() -> datetime:
    return datetime.now(UTC)


class Dispatcher(Protocol):
    """Sends committed outbox rows now (the bot's outbound side); must not raise."""

    def dispatch(self, message_ids: Sequence[int]) -> None: ...

    async def drain(self) -> None:
        """Wait for the sends started so far (shutdown, tests)."""


class NoDispatch:
    """No immediate sending: the rows wait for `deliver_outbox` (scripts, tests of the core)."""

    def dispatch(self, message_ids: Sequence[int]) -> None:
        return None

    async def drain(self) -> None:
        return None


@dataclass(slots=True)
class RecordingDispatcher:
    """Keeps the ids it was handed (tests)."""

    ids: list[int] = field(default_factory=list)

    def dispatch(self, message_ids: Sequence[int]) -> None:
        self.ids.extend(message_ids)

    async def drain(self) -> None:
        return None


class UnitOfWork:
    """One transaction; see the module's docstring. Use each instance once."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        rules: ShopRules,
        clock: Clock = wall_clock,
        dispatcher: Dispatcher | None = None,
    ) -> None:
        self._sessions = sessions
        self.rules = rules
        self._clock = clock
        self._dispatcher: Dispatcher = dispatcher if dispatcher is not None else NoDispatch()
        self._session: AsyncSession | None = None
        self.now: datetime = clock()
        self.sent_ids: list[int] = []  # the outbox rows this unit of work wrote (after the commit)

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("the unit of work is not open: use `async with`")
        return self._session

    def clock(self) -> datetime:
        """The wall clock, for work that spans waits (leases); money paths use `now`."""
        return self._clock()

    def notify(self, openid: str, template: str, data: Mapping[str, Any] | None = None) -> None:
        """Tell a customer `template` once this unit of work commits (in its transaction)."""
        notices.queue(self.session, openid=openid, template=template, data=data or {})

    async def __aenter__(self) -> UnitOfWork:
        if self._session is not None:
            raise RuntimeError("a unit of work is used once")
        self.now = self._clock()
        session = self._sessions()
        session.info[notices.SESSION_CLOCK] = self._clock
        session.info[SESSION_RULES] = self.rules  # what subscribers deep in a move read
        self._session = session
        await session.begin()
        return self

    async def commit(self) -> None:
        """Commit now (the unit of work stays open for reads); its messages go out at the end."""
        await self.session.commit()
        self.sent_ids.extend(notices.take_written_ids(self.session))

    async def rollback(self) -> None:
        await self.session.rollback()
        notices.discard(self.session)

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        session = self.session
        try:
            if exc is None:  # also after an explicit commit: notices queued since then
                await self.commit()
            elif exc is not None:
                await self.rollback()
        finally:
            await session.close()
        if exc is None and self.sent_ids:
            self._dispatcher.dispatch(tuple(self.sent_ids))


@dataclass(frozen=True, slots=True)
class UnitOfWorkFactory:
    """What entry points hold: `uow()` opens a new unit of work over the shop's sessions."""

    sessions: async_sessionmaker[AsyncSession]
    rules: ShopRules
    dispatcher: Dispatcher = field(default_factory=NoDispatch)
    clock: Clock = wall_clock

    def __call__(self) -> UnitOfWork:
        return UnitOfWork(self.sessions, rules=self.rules, clock=self.clock, dispatcher=self.dispatcher)

    def with_dispatcher(self, dispatcher: Dispatcher) -> UnitOfWorkFactory:
        return UnitOfWorkFactory(self.sessions, self.rules, dispatcher, self.clock)

"""Delivering the outbox: notices rendered in the customer's language, sent after the commit.

A unit of work (`commerce.uow`) writes what it decided to tell customers as outbox rows
in its own transaction and, after the commit, hands their ids to a `Dispatcher`. Two
dispatchers exist:

- `NotificationPlanner` (bot/outbound/planner.py): with WeChat credentials, by WeChat's
  rules (customer-service message in the 48-hour window, template message, or wait).
- `DirectDelivery` (here): without them (the sandbox, the simulators, tests), straight
  to an `OutboundSender` such as the in-memory outbox the simulators show.

Both render a notice row when they deliver it (`NoticeRenderer`), and both retry what
is due from the scheduler's `deliver_outbox` job: rows a dead process left behind (their
lease ran out) and rows whose attempt failed.

Both send a row at most once (`commerce.messaging.outbox`): an attempt begins with
`begin_send` (pending -> sending, one attempt at a time) and ends sent, pending again
(it certainly sent nothing) or uncertain (it may have: never repeated). `retry_due`
first settles the attempts whose lease ran out (`expire_sending`).
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot.chat.render import Rendered, RenderedArticle, Renderer
from bot.outbound.sender import OutboundSender
from commerce.background import BackgroundTasks
from commerce.customers.customers import locale_of
from commerce.messaging import notices, outbox
from commerce.messaging.outbox import OutboxItem
from commerce.uow import UnitOfWorkFactory, wall_clock

log = logging.getLogger(__name__)

DIRECT = "direct"


class Delivery(Protocol):
    """The units of work's dispatcher, as the app holds it (the planner or `DirectDelivery`)."""

    def dispatch(self, message_ids: Sequence[int]) -> None: ...

    async def deliver(self, message_ids: Sequence[int]) -> None: ...

    async def retry_due(self) -> int: ...

    async def drain(self) -> None: ...


class Unrenderable(Exception):
    """A notice its template cannot render (a missing template, data it does not fit):
    trying again would fail again, so the row is failed rather than retried forever."""


class NoticeRenderer:
    """A notice row's template and data, rendered in its customer's language."""

    def __init__(self, *, renderer: Renderer, uows: UnitOfWorkFactory) -> None:
        self._renderer = renderer
        self._uows = uows

    async def locale(self, openid: str) -> str:
        async with self._uows() as uow:
            locale = await locale_of(uow.session, openid)
        return locale or self._renderer.default_locale

    async def render(self, openid: str, template: str, data: Mapping[str, Any]) -> Rendered:
        locale = await self.locale(openid)  # a database outage here is worth another attempt
        try:
            return self._renderer.message(template, locale, dict(data))
        except Exception as exc:
            raise Unrenderable(f"{template}: {exc.__class__.__name__}: {exc}") from exc

    async def rendered(self, item: OutboxItem) -> tuple[Rendered, dict[str, Any] | None]:
        """The message a row holds, and the notice's data (None for an already rendered row)."""
        notice = notices.notice_of(item.payload)
        if notice is None:
            return from_payload(item.payload), None
        return await self.render(item.openid, notice.template, notice.data), notice.data


class OutboxDelivery(ABC):
    """What both dispatchers share: rows attempted in order after their unit of work's
    commit, due rows retried for the scheduler, background attempts drained on shutdown.
    A subclass says how one row is attempted (`_deliver`, which must not raise)."""

    def __init__(
        self,
        *,
        uows: UnitOfWorkFactory,
        lease: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self._uows = uows
        self._lease = lease
        self.clock = clock
        self._background = BackgroundTasks(what="outbox delivery")

    # ---- the units of work's dispatcher --------------------------------------------------------

    def dispatch(self, message_ids: Sequence[int]) -> None:
        """Rows a unit of work just committed (leased to it at birth): attempt each now, in
        order: one transaction's messages arrive as it wrote them."""
        if message_ids:
            self._background.spawn(self._deliver_in_order(tuple(message_ids)))

    async def deliver(self, message_ids: Sequence[int]) -> None:
        """Attempt these rows now, side by side, and return when each attempt has ended (a
        broadcast's batch: its report counts what became of them)."""
        await asyncio.gather(*(self._deliver_in_order((message_id,)) for message_id in message_ids))

    async def _deliver_in_order(self, message_ids: Sequence[int]) -> None:
        for message_id in message_ids:
            try:
                async with self._uows() as uow:
                    item = await outbox.get(uow.session, message_id)
            except Exception:  # the lease runs out and deliver_outbox has it
                log.exception("outbox %s: could not be read for its first attempt", message_id)
                continue
            if item is not None:
                await self._deliver(item)

    # ---- the scheduler's side -------------------------------------------------------------------

    async def retry_due(self) -> int:
        """Attempt every due row once (claimed with a lease); how many were attempted.
        Attempts left unfinished past their lease are settled first, never repeated."""
        async with self._uows() as uow:
            unfinished = await outbox.expire_sending(uow.session, now=self.clock())
            ids = await outbox.due_ids(uow.session, now=self.clock())
        if unfinished:
            log.error("outbox %s: attempts never finished, left uncertain (not sent again)", unfinished)
            await self._left_uncertain(unfinished)
        attempted = 0
        for message_id in ids:
            async with self._uows() as uow:
                if not await outbox.claim(uow.session, message_id, now=self.clock(), lease=self._lease):
                    continue  # another worker has it
                item = await outbox.get(uow.session, message_id)
            if item is not None:
                await self._deliver(item)
                attempted += 1
        return attempted

    async def drain(self) -> None:
        """Wait for the attempts started so far (shutdown, tests)."""
        await self._background.drain()

    @abstractmethod
    async def _deliver(self, item: OutboxItem) -> None:
        """Attempt one row (a subclass says how); must not raise."""

    async def _left_uncertain(self, message_ids: Sequence[int]) -> None:
        """Rows an attempt left unfinished that may have gone out (a subclass may tell staff)."""
        return None

    async def _begin(self, item: OutboxItem, channel: str = "") -> bool:
        """Take the row for this attempt (`outbox.begin_send`), naming the channel at once
        when it is known; False: another attempt has it, or it is done."""
        async with self._uows() as uow:
            if not await outbox.begin_send(uow.session, item.id, now=self.clock(), lease=self._lease):
                log.info("outbox %s: not pending any more, left alone", item.id)
                return False
            if channel:
                await outbox.mark_channel(uow.session, item.id, channel)
        return True


class DirectDelivery(OutboxDelivery):
    """The dispatcher without WeChat credentials: each row straight to an `OutboundSender`."""

    def __init__(
        self,
        *,
        uows: UnitOfWorkFactory,
        outbound: OutboundSender,
        notices: NoticeRenderer,
        lease: timedelta = notices.NOTICE_LEASE,
        clock: Callable[[], datetime] = wall_clock,
    ) -> None:
        super().__init__(uows=uows, lease=lease, clock=clock)
        self._outbound = outbound
        self._notices = notices

    async def _deliver(self, item: OutboxItem) -> None:
        try:
            message, _data = await self._notices.rendered(item)
        except Unrenderable as exc:
            log.error("outbox %s (%s): cannot be rendered, given up: %s", item.id, item.event, exc)
            async with self._uows() as uow:
                await outbox.mark_failed(uow.session, item.id, error=f"render: {exc}", attempts=item.attempts + 1)
            return
        except Exception:  # the row keeps its lease and comes back when it runs out
            log.exception("outbox %s: could not be rendered now", item.id)
            return
        if not await self._begin(item, DIRECT):
            return
        try:
            if message.kind in ("text", "news") and (message.text or message.articles):
                await self._outbound.send(item.openid, message)
        except Exception as exc:  # an in-process sender raises before it took the message
            log.exception("outbox %s: delivery failed", item.id)
            async with self._uows() as uow:
                await outbox.mark_retry(
                    uow.session, item.id, error=repr(exc), attempts=item.attempts + 1,
                    next_attempt_at=self.clock() + self._lease,
                )
            return
        async with self._uows() as uow:
            await outbox.mark_sent(uow.session, item.id, channel=DIRECT, now=self.clock())


def to_payload(message: Rendered) -> dict[str, Any]:
    """A rendered message as an outbox row keeps it."""
    return {
        "kind": message.kind,
        "text": message.text,
        "articles": [
            {"title": a.title, "description": a.description, "picurl": a.picurl, "url": a.url}
            for a in message.articles
        ],
    }


def from_payload(payload: Mapping[str, Any]) -> Rendered:
    return Rendered(
        kind=str(payload.get("kind", "text")),
        text=str(payload.get("text", "")),
        articles=tuple(RenderedArticle(**a) for a in payload.get("articles") or ()),
    )

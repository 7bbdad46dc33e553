"""Broadcast: an owner sends one text to every customer WeChat still lets us reach.

WeChat only delivers customer-service messages to someone who wrote to the account in
the last 48 hours, so the audience is the commerce core's `reachable_customers`. The
command restates the text and the head count, waits for a confirmation, answers at
once ("sending to N") and hands the sending to `Broadcaster`: one outbox row per
recipient is written (`commerce.messaging.broadcast.start`), then attempted `per_second`
at a time in a tracked background task (it outlasts WeChat's 5-second reply), drained on
shutdown. The owner hears what truly happened, counted from the rows: sent, waiting (for
the customer's window: they go out when the customer writes) and failed; and once more
when the waiting ones are done (the scheduler's `settle_broadcasts`). Rows still waiting
after `broadcast.max_age_hours` fail instead of going out stale.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from bot.admin.registry import OWNERS, PREFIXES, REGISTRY, AdminContext, Outcome, UsageError
from bot.chat.replies import Text
from bot.dialogs.common import unit_of_work
from bot.outbound.delivery import Delivery
from commerce.background import BackgroundTasks
from commerce.messaging import broadcast as audience
from commerce.messaging.broadcast import Started, Tally
from commerce.rules import utcnow
from commerce.uow import UnitOfWorkFactory

log = logging.getLogger(__name__)

MAX_CHARS = 600  # WeChat cuts a text at 2048 bytes; 600 CJK characters stay under it
PER_SECOND = 20
FIRST_ATTEMPTS_LEASE = timedelta(minutes=2)  # per batch: after it, deliver_outbox may take a row


class Broadcaster:
    def __init__(
        self,
        *,
        uows: UnitOfWorkFactory,
        delivery: Delivery,
        per_second: int = PER_SECOND,
        max_age: timedelta = timedelta(hours=24),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if per_second < 1:
            raise ValueError("per_second must be at least 1")
        self._uows = uows
        self._delivery = delivery
        self.per_second = per_second
        self.max_age = max_age
        self._sleep = sleep
        self._background = BackgroundTasks(what="broadcast")

    def start(self, *, text: str, recipients: Sequence[str], staff_openid: str) -> None:
        """Send in the background; the staff member hears how it went."""
        self._background.spawn(self._run(text, list(recipients), staff_openid))

    async def _run(self, text: str, recipients: list[str], staff_openid: str) -> Tally:
        async with self._uows() as uow:
            started = await audience.start(
                uow.session, staff_openid=staff_openid, text=text, recipients=recipients, now=uow.now,
                max_age=self.max_age, lease=FIRST_ATTEMPTS_LEASE + timedelta(seconds=len(recipients) / self.per_second),
            )
        return await self._follow(started)

    def follow(self, started: Started) -> None:
        """Rows written by a use case's own transaction (a live drop's notices, written with
        their cause): sent `per_second` at a time in the background, then reported as a
        broadcast is."""
        self._background.spawn(self._follow(started))

    async def _follow(self, started: Started) -> Tally:
        await self.send(started.message_ids)
        async with self._uows() as uow:
            counts = await audience.report_first(uow.session, broadcast_id=started.broadcast_id, now=uow.now)
        log.info(
            "broadcast %s: %d sent, %d waiting, %d failed, %d uncertain of %d", started.broadcast_id,
            counts.sent, counts.waiting, counts.failed, counts.uncertain, counts.total,
        )
        return counts

    async def send(self, message_ids: Sequence[int]) -> None:
        """`per_second` rows at a time, a second apart, each attempt finished before the next batch."""
        for start in range(0, len(message_ids), self.per_second):
            began = time.monotonic()
            await self._delivery.deliver(message_ids[start : start + self.per_second])
            if start + self.per_second < len(message_ids):
                await self._sleep(max(0.0, 1.0 - (time.monotonic() - began)))

    async def drain(self) -> None:
        """Wait for the work started so far (on shutdown, and in tests)."""
        await self._background.drain()
        await self._uows.dispatcher.drain()


def _text(actx: AdminContext) -> str:
    """The text as typed, line breaks included (the parsed arguments lose them).

    The pending confirmation stores `actx.args`, so the first run puts the whole text
    there as one argument: the second run sends exactly what the first restated."""
    if actx.confirmed:
        return " ".join(actx.args).strip()
    text = actx.ctx.msg.text.strip()
    if text.startswith(PREFIXES):
        text = text[1:]
    parts = text.split(maxsplit=1)
    body = parts[1].strip() if len(parts) == 2 else ""
    actx.args[:] = [body] if body else []
    return body


@REGISTRY.command("broadcast", "群发", roles=OWNERS, group="broadcast", confirm=True)
async def broadcast(actx: AdminContext) -> Outcome:
    """/broadcast TEXT: restated with how many can receive it, confirmed, sent in the background."""
    text = _text(actx)
    if not 1 <= len(text) <= MAX_CHARS:
        raise UsageError
    async with unit_of_work(actx.ctx) as session:
        if actx.confirmed:
            recipients = await audience.reachable_customers(session, now=utcnow())
            count = len(recipients)
        else:
            count = await audience.count_reachable(session, now=utcnow())
    if not count:
        return Outcome(Text("admin/broadcast_nobody"), None, {"recipients": 0}, outcome="failed")
    if not actx.confirmed:
        return Outcome(Text("admin/broadcast_confirm", {"text": text, "count": count}), confirm_first=True)
    actx.services.broadcasts.start(text=text, recipients=recipients, staff_openid=actx.actor)
    return Outcome(Text("admin/broadcast_started", {"count": len(recipients)}), None,
                   {"recipients": len(recipients), "chars": len(text)})

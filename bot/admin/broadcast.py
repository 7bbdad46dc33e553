"""Broadcast: an owner sends one text to every customer WeChat still lets us reach.

WeChat only delivers customer-service messages to someone who wrote to the account in
the last 48 hours, so the audience is the commerce core's `reachable_customers`. The
command restates the text and the head count, waits for a confirmation, answers at
once ("sending to N") and hands the sending to `Broadcaster`: a tracked background
task (it outlasts WeChat's 5-second reply), throttled to `per_second` messages a
second, drained on shutdown; when it is done the owner is told how many it reached.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from bot.admin.registry import OWNERS, PREFIXES, REGISTRY, AdminContext, Outcome, UsageError
from bot.chat.render import Renderer
from bot.chat.replies import Text
from bot.dialogs.common import unit_of_work
from bot.outbound.sender import OutboundSender
from commerce.background import BackgroundTasks
from commerce.messaging import broadcast as audience
from commerce.rules import utcnow

log = logging.getLogger(__name__)

MAX_CHARS = 600  # WeChat cuts a text at 2048 bytes; 600 CJK characters stay under it
PER_SECOND = 20


class Broadcaster:
    def __init__(
        self,
        *,
        renderer: Renderer,
        outbound: OutboundSender,
        per_second: int = PER_SECOND,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if per_second < 1:
            raise ValueError("per_second must be at least 1")
        self._renderer = renderer
        self._outbound = outbound
        self.per_second = per_second
        self._sleep = sleep
        self._background = BackgroundTasks(what="broadcast")

    def start(self, *, text: str, recipients: Sequence[str], staff_openid: str, staff_locale: str) -> None:
        """Send in the background; the staff member hears how it went when it is done."""
        self._background.spawn(self._run(text, list(recipients), staff_openid, staff_locale))

    async def _run(self, text: str, recipients: list[str], staff_openid: str, staff_locale: str) -> int:
        sent = await self.send(text, recipients)
        log.info("broadcast done: %d of %d sent", sent, len(recipients))
        done = self._renderer.render(
            Text("admin/broadcast_done", {"sent": sent, "total": len(recipients)}), staff_locale
        )
        try:
            await self._outbound.send(staff_openid, done)
        except Exception:
            log.exception("could not tell the staff member the broadcast is done")
        return sent

    async def send(self, text: str, recipients: Sequence[str]) -> int:
        """`per_second` at a time, a second apart; how many were sent."""
        message = self._renderer.render(Text("admin/broadcast_message", {"text": text}), self._renderer.default_locale)
        sent = 0
        for start in range(0, len(recipients), self.per_second):
            began = time.monotonic()
            batch = recipients[start : start + self.per_second]
            results = await asyncio.gather(
                *(self._outbound.send(openid, message) for openid in batch), return_exceptions=True
            )
            failures = [r for r in results if isinstance(r, BaseException)]
            for failure in failures[:1]:
                log.warning("broadcast: %d of %d sends failed (%s)", len(failures), len(batch),
                            failure.__class__.__name__)
            sent += len(batch) - len(failures)
            if start + self.per_second < len(recipients):
                await self._sleep(max(0.0, 1.0 - (time.monotonic() - began)))
        return sent


    async def drain(self) -> None:
        """Wait for the work started so far (on shutdown, and in tests)."""
        await self._background.drain()


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
    actx.services.broadcasts.start(text=text, recipients=recipients, staff_openid=actx.actor, staff_locale=actx.ctx.locale)
    return Outcome(Text("admin/broadcast_started", {"count": len(recipients)}), None,
                   {"recipients": len(recipients), "chars": len(text)})

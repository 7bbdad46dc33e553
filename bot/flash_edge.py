"""The flash-sale rush at the webhook's edge: a bare "抢" decided before the intake.

At the start of a flash sale thousands send "抢" at once for a few units. As a whole turn
each cost a journal row, a claim, a lease, the dialog, the customer's touch and the
reply's write (~11 ms of a worker), so the queue outlasted WeChat's 5 seconds and its
retries tripled the load. Here, after the request is verified (signature, decryption,
replay check: `bot.wechat.webhook`) and before the inbox writes it down, a text that is
a bare "抢" / "grab" (the first running sale: as `bot.dialogs.flash.FlashDialog.grab`
picks it) asks the flash gate (`bot.flash_gate`: the Lua script with Redis, the same
decision in process without):

- won: the message goes on into the durable intake, marked (`Inbound.flash_sale`), and
  its turn takes the unit in the database and answers with the pay card;
- holding an unpaid unit: it goes on unmarked (the turn shows that unit's pay card);
- sold out, or the customer's limit reached: answered at once with a prepared reply (the
  next sale or a similar product), nothing written to the database.

The gate keeps each message's verdict under its key (one Lua script with Redis, shared by
the workers: `GRAB_MESSAGE`), so WeChat's retries get the same answer and a message is
counted once: a retry of a winner goes on, marked again, and the inbox gives it the
turn's reply.

The sale and its prepared refusals are read at most once every `recheck_seconds` (one
read for all the messages that came meanwhile); a unit coming back raises the sale's
version, and the gate, asked with the new version, is loaded again from the database.
Anything failing here leaves the message to the intake, as before.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from bot.chat.render import Rendered
from bot.chat.replies import Reply
from bot.dialogs.common import error_reply
from bot.wechat.protocol import Inbound
from commerce.promotions import flash_sales
from commerce.promotions.flash_sales import GateState, RushView, Verdict
from commerce.rules import utcnow
from commerce.uow import UnitOfWorkFactory

log = logging.getLogger(__name__)

# How customers ask for a unit (the router's flash_grab, bot/handlers/text.py, adds a number):
# "抢", "我要抢一个", "抢！", "马上抢吧", "grab!", "grab one"
GRAB_WORDS = r"(?:我要|我想|我来|给我|帮我)?(?:抢一[个件份]|立即抢|马上抢|抢|grab(?:\s+(?:one|it))?)"
GRAB_TAIL = r"\s*(?:吧|啊|呀|啦|了)?\s*[!！。.~～]*\s*"
# a bare "抢": the first running sale
BARE_GRAB = re.compile(rf"(?i)\s*{GRAB_WORDS}{GRAB_TAIL}")
RECHECK_SECONDS = 1.0


class RushGate(Protocol):
    """The flash gate as the edge asks it (`bot.flash_gate`: Redis, or in process)."""

    async def decide_message(
        self, *, sale_id: int, version: int, customer: str, limit: int, key: str
    ) -> Verdict | None:
        """The verdict for the message `key`, counted when WON, decided once: a retry gets the
        verdict kept (except HOLDING, not kept). None: the gate holds no state of this version
        of the sale (load it), or cannot answer (the turn decides)."""
        ...

    async def load(self, state: GateState) -> None: ...


def _typed_in(text: str) -> str:
    """The reply's language as the route's (`bot.handlers.text._typed_in`): English when typed so."""
    return "en" if text.strip()[:1].isascii() else "zh"


class FlashEdge:
    """Decides a bare "抢" before the intake (see the module); `decide` is the inbox's edge."""

    def __init__(
        self,
        *,
        uows: UnitOfWorkFactory,
        gate: RushGate,
        render: Callable[[Reply, str], Rendered],
        recheck_seconds: float = RECHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._uows = uows
        self._gate = gate
        self._render = render
        self.recheck_seconds = recheck_seconds
        self._clock = clock
        self._view: RushView | None = None
        self._read_at: float | None = None
        self._reading: asyncio.Task[RushView | None] | None = None
        self._loading: dict[int, asyncio.Task[GateState]] = {}
        self._loaded: dict[int, int] = {}  # sale id: the version the gate was last loaded with here
        self._replies: dict[tuple[str, str], Rendered] = {}  # (verdict, locale) of the sale read

    async def decide(self, msg: Inbound) -> Rendered | Inbound:
        """The answer (a loser's), or the message to go on into the intake (marked when it won)."""
        if msg.kind != "text" or msg.flash_sale is not None or not BARE_GRAB.fullmatch(msg.text):
            return msg
        view = await self._sale()
        if view is None:
            return msg
        sale = view.sale
        # the sale as last read, or as the gate was last loaded from the database when newer
        version = max(sale.version, self._loaded.get(sale.id, sale.version))
        verdict = await self._gate.decide_message(
            sale_id=sale.id, version=version, customer=msg.openid, limit=sale.per_user_limit,
            key=msg.dedupe_key,
        )
        if verdict is None:  # the gate holds another version of the sale (or none): load it
            state = await self._load(sale.id)
            if state.version != sale.version:
                self._read_at = float("-inf")  # the sale changed (a unit came back): read it again
            verdict = await self._gate.decide_message(
                sale_id=sale.id, version=state.version, customer=msg.openid, limit=sale.per_user_limit,
                key=msg.dedupe_key,
            )
            if verdict is None:
                return msg
        if verdict == Verdict.HOLDING:
            return msg  # the turn shows the unit's pay card
        if verdict == Verdict.WON:
            return replace(msg, flash_sale=sale.id)
        return self._refusal(view, verdict, _typed_in(msg.text))

    def _refusal(self, view: RushView, verdict: Verdict, locale: str) -> Rendered:
        rendered = self._replies.get((verdict, locale))
        if rendered is None:
            error = view.limit_reached if verdict == Verdict.LIMIT else view.sold_out
            rendered = self._replies[(verdict, locale)] = self._render(error_reply(error), locale)
        return rendered

    async def _sale(self) -> RushView | None:
        """The sale a bare "抢" takes, read at most once every `recheck_seconds` (one read for
        everyone who asks meanwhile). Once read, a read due is made in the background and the
        sale as last read answers meanwhile: under a rush the database's connections go to the
        winners' turns, and every loser waiting for one read stalled them all. (The gate is
        asked with the sale's version, so a sale changed since is loaded before it decides.)"""
        due = self._read_at is None or self._clock() - self._read_at >= self.recheck_seconds
        if due and self._reading is None:
            self._reading = asyncio.create_task(self._read())
            self._reading.add_done_callback(self._read_done)
        if self._read_at is not None:
            return self._view
        reading = self._reading
        assert reading is not None
        return await asyncio.shield(reading)

    def _read_done(self, reading: asyncio.Task[RushView | None]) -> None:
        if self._reading is reading:
            self._reading = None
        if not reading.cancelled() and reading.exception() is not None and self._read_at is not None:
            log.warning("the flash sale could not be read again; the last read serves", exc_info=reading.exception())

    async def _read(self) -> RushView | None:
        async with self._uows() as uow:
            view = await flash_sales.rush_view(uow.session, now=utcnow())
        if view is None or self._view is None or (view.sale.id, view.sale.version) != (
            self._view.sale.id, self._view.sale.version
        ) or view.sold_out.details != self._view.sold_out.details:
            self._replies = {}
        self._view, self._read_at = view, self._clock()
        return view

    async def _load(self, sale_id: int) -> GateState:
        """The gate loaded with the sale as the database has it (one read for all who ask meanwhile)."""
        loading = self._loading.get(sale_id)
        if loading is None:
            loading = self._loading[sale_id] = asyncio.create_task(self._load_now(sale_id))
            loading.add_done_callback(lambda _done: self._loading.pop(sale_id, None))
        return await asyncio.shield(loading)

    async def _load_now(self, sale_id: int) -> GateState:
        async with self._uows() as uow:
            state = await flash_sales.gate_state(uow.session, sale_id=sale_id)
        await self._gate.load(state)
        self._loaded[sale_id] = max(state.version, self._loaded.get(sale_id, state.version))
        return state

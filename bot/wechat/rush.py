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
  next sale or a similar product), nothing written to the database. The answer is kept
  under the message's key (`EdgeAnswers`: in Redis, shared by the workers, with one) so
  that WeChat's retries get the same answer and the gate is asked once per message.

The sale and its prepared refusals are read at most once every `recheck_seconds` (one
read for all the messages that came meanwhile); a unit coming back raises the sale's
version, and the gate, asked with the new version, is loaded again from the database.
Anything failing here leaves the message to the intake, as before.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from redis.asyncio import Redis

from bot.chat.render import Rendered
from bot.chat.replies import Reply
from bot.dialogs.common import error_reply
from bot.redis_link import RedisLink
from bot.wechat.inbox import DEDUPE_SECONDS
from bot.wechat.intake import dump_reply, load_reply
from bot.wechat.protocol import Inbound
from commerce.promotions import flash_sales
from commerce.promotions.flash_sales import FlashGate, GateState, RushView, Verdict
from commerce.rules import utcnow
from commerce.uow import UnitOfWorkFactory

log = logging.getLogger(__name__)

# "抢" with no number (the router's flash_grab, bot/handlers/text.py): the first running sale
BARE_GRAB = re.compile(r"(?i)\s*(?:抢|我要抢|立即抢|马上抢|抢一个|grab)\s*")
RECHECK_SECONDS = 1.0
PREFIX = "storefront:rush:"
WON = "won:"  # an answer kept for a winner: its retries go on into the intake, marked again


class EdgeAnswers(Protocol):
    """What the edge answered a message, for its retries (kept `DEDUPE_SECONDS`)."""

    async def get(self, key: str) -> str | None: ...

    async def put(self, key: str, answer: str) -> str:
        """Keep `answer` unless one is kept already; the one kept."""
        ...


class MemoryEdgeAnswers:
    def __init__(self, *, keep_seconds: float = DEDUPE_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self._kept: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._keep = keep_seconds
        self._clock = clock

    async def get(self, key: str) -> str | None:
        kept = self._kept.get(key)
        return kept[1] if kept is not None else None

    async def put(self, key: str, answer: str) -> str:
        kept = self._kept.get(key)
        if kept is not None:
            return kept[1]
        now = self._clock()
        while self._kept:
            oldest = next(iter(self._kept.values()))
            if now - oldest[0] < self._keep:
                break
            self._kept.popitem(last=False)
        self._kept[key] = (now, answer)
        return answer


class RedisEdgeAnswers:
    def __init__(self, redis: Redis, *, keep_seconds: float = DEDUPE_SECONDS) -> None:
        self._redis = redis
        self._keep = int(keep_seconds)

    async def get(self, key: str) -> str | None:
        kept = await self._redis.get(PREFIX + key)
        return kept.decode() if isinstance(kept, bytes) else kept

    async def put(self, key: str, answer: str) -> str:
        if await self._redis.set(PREFIX + key, answer, nx=True, ex=self._keep):
            return answer
        return await self.get(key) or answer


class FallbackEdgeAnswers:
    """In Redis while it answers, in this worker's memory while it does not."""

    def __init__(self, shared: RedisEdgeAnswers, local: MemoryEdgeAnswers, link: RedisLink) -> None:
        self._shared, self._local, self._link = shared, local, link

    async def get(self, key: str) -> str | None:
        return await self._link.attempt("rush_answers", lambda: self._shared.get(key), lambda: self._local.get(key))

    async def put(self, key: str, answer: str) -> str:
        return await self._link.attempt(
            "rush_answers", lambda: self._shared.put(key, answer), lambda: self._local.put(key, answer)
        )


def _typed_in(text: str) -> str:
    """The reply's language as the route's (`bot.handlers.text._typed_in`): English when typed so."""
    return "en" if text.strip()[:1].isascii() else "zh"


class FlashEdge:
    """Decides a bare "抢" before the intake (see the module); `decide` is the inbox's edge."""

    def __init__(
        self,
        *,
        uows: UnitOfWorkFactory,
        gate: FlashGate,
        render: Callable[[Reply, str], Rendered],
        answers: EdgeAnswers,
        recheck_seconds: float = RECHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._uows = uows
        self._gate = gate
        self._render = render
        self._answers = answers
        self.recheck_seconds = recheck_seconds
        self._clock = clock
        self._view: RushView | None = None
        self._read_at: float | None = None
        self._reading: asyncio.Task[RushView | None] | None = None
        self._loading: dict[int, asyncio.Task[GateState]] = {}
        self._replies: dict[tuple[str, str], Rendered] = {}  # (verdict, locale) of the sale read

    async def decide(self, msg: Inbound) -> Rendered | Inbound:
        """The answer (a loser's), or the message to go on into the intake (marked when it won)."""
        if msg.kind != "text" or msg.flash_sale is not None or not BARE_GRAB.fullmatch(msg.text):
            return msg
        key = msg.dedupe_key
        kept = await self._answers.get(key)
        if kept is not None:  # a retry: the same answer, the gate not asked again
            return self._replayed(msg, kept)
        view = await self._sale()
        if view is None:
            return msg
        sale = view.sale
        verdict = await self._gate.decide(
            sale_id=sale.id, version=sale.version, customer=msg.openid, limit=sale.per_user_limit
        )
        if verdict is None:  # the gate holds another version of the sale (or none): load it
            state = await self._load(sale.id)
            if state.version != sale.version:
                self._read_at = None  # the sale changed (a unit came back): read it again next time
            verdict = await self._gate.decide(
                sale_id=sale.id, version=state.version, customer=msg.openid, limit=sale.per_user_limit
            )
            if verdict is None:
                return msg
        if verdict == Verdict.HOLDING:
            return msg  # the turn shows the unit's pay card
        if verdict == Verdict.WON:
            return self._replayed(msg, await self._answers.put(key, f"{WON}{sale.id}"))
        refused = self._refusal(view, verdict, _typed_in(msg.text))
        return self._replayed(msg, await self._answers.put(key, json.dumps(dump_reply(refused))))

    def _replayed(self, msg: Inbound, kept: str) -> Rendered | Inbound:
        if kept.startswith(WON):
            return replace(msg, flash_sale=int(kept[len(WON):]))
        return load_reply(json.loads(kept))

    def _refusal(self, view: RushView, verdict: Verdict, locale: str) -> Rendered:
        rendered = self._replies.get((verdict, locale))
        if rendered is None:
            error = view.limit_reached if verdict == Verdict.LIMIT else view.sold_out
            rendered = self._replies[(verdict, locale)] = self._render(error_reply(error), locale)
        return rendered

    async def _sale(self) -> RushView | None:
        """The sale a bare "抢" takes, read at most once every `recheck_seconds` (one read
        for everyone who asked meanwhile)."""
        if self._read_at is not None and self._clock() - self._read_at < self.recheck_seconds:
            return self._view
        if self._reading is None:
            self._reading = asyncio.create_task(self._read())
        reading = self._reading
        try:
            return await asyncio.shield(reading)
        finally:
            if reading.done() and self._reading is reading:
                self._reading = None

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
        return state

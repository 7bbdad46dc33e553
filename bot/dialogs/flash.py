"""Flash sales (秒杀) in the chat: the sales running and coming, "提醒我", and "抢".

```mermaid
stateDiagram-v2
    [*] --> LIST: "秒杀" / "flash" (no sale: ends at once)
    LIST --> [*]: a number or "抢 N" on a running sale (pay card), "提醒我 N" on a coming one
    [*] --> [*]: "抢" / "grab" (the first running sale), "提醒我" / "remind me" (the first coming one)
    [*] --> [*]: "抢直播" / "live grab" (the product a live drop has on air: `grab_sale`)
    LIST --> ADDRESS: a unit taken, no delivery address yet (the unit is held for the payment window)
    [*] --> ADDRESS: the same, from "抢" anywhere
    ADDRESS --> ADDRESS_CONFIRM: a typed "name phone address", parsed
    ADDRESS_CONFIRM --> [*]: "确认" saves it as the default, then the held unit's order (pay card)
    ADDRESS --> PARKED: text that is no address and finds products, another screen
    PARKED --> ADDRESS: "秒杀" goes on where it was left (so does "秒杀" said at the step itself)
    [*] --> ADDRESS: "抢" while a unit of theirs waits for an address its step no longer asks
```
One message takes a unit (`commerce.promotions.flash_sales.grab`: the gate first, then
the database for winners; a bare "抢" is asked at the webhook's edge, `bot.flash_edge`,
and only its winners come here) and answers with the pay card, whose description shows
the delivery address the order goes to. "抢 N" and "提醒我 N" number the list last shown,
else the list as it stands. ADDRESS and ADDRESS_CONFIRM are the shared address step
(`bot.dialogs.address_step`); the held unit waits for it until the payment window ends.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from bot.chat.context import Context
from bot.chat.keywords import match_keyword, parse_number
from bot.chat.replies import Card, News, Notice, Reply, Text, with_notice
from bot.dialogs.address_step import AddressStep, looks_like_address
from bot.dialogs.base import Active, Dialog, Step, on
from bot.dialogs.common import error_reply, unit_of_work
from bot.flash_gate import WonAtTheEdge
from commerce.customers import addresses
from commerce.errors import ErrorCode, ShopError
from commerce.messaging import inbound
from commerce.orders import placement as orders
from commerce.orders.views import OrderView, order_data
from commerce.promotions import flash_sales
from commerce.promotions.flash_sales import SaleView
from commerce.rules import utcnow


class FlashState(enum.StrEnum):
    LIST = "list"
    ADDRESS = "address"  # a unit held, no delivery address yet
    ADDRESS_CONFIRM = "address_confirm"


@dataclass(slots=True)
class FlashData:
    sale_ids: list[int] = field(default_factory=list)  # the list as shown, numbered from 1
    claim_id: int | None = None  # the unit held while the address is typed
    pending_address: dict[str, str] | None = None


ADDRESS_STEP: AddressStep[FlashState, FlashData] = AddressStep(
    ask=FlashState.ADDRESS, confirm=FlashState.ADDRESS_CONFIRM
)


def flash_pay_card(ctx: Context, order: OrderView) -> News:
    """The pay card of a flash unit: amount, deadline, and the address it goes to."""
    phone = order.address_phone
    address = {"name": order.address_name, "phone": f"{phone[:3]}****{phone[-4:]}", "address": order.address_text}
    data = {**order_data(order), "address": address}
    return News((Card("flash_pay_card", data, url=ctx.services.pay_url(order)),))


class FlashDialog(Dialog[FlashState, FlashData]):
    name = "flash"
    address_states = ADDRESS_STEP.states
    State = FlashState
    Data = FlashData
    version = 1
    resumable = True  # in the address step only: the held unit is not lost to a search
    parked_in = frozenset({FlashState.ADDRESS, FlashState.ADDRESS_CONFIRM})
    initial = frozenset({FlashState.LIST, FlashState.ADDRESS})
    transitions = {
        FlashState.LIST: frozenset({FlashState.LIST, FlashState.ADDRESS}),
        FlashState.ADDRESS: frozenset({FlashState.ADDRESS, FlashState.ADDRESS_CONFIRM}),
        FlashState.ADDRESS_CONFIRM: frozenset({FlashState.ADDRESS_CONFIRM}),
    }

    async def show(self, ctx: Context) -> Reply:
        """The sales running and coming, numbered; a unit left in the address step goes on instead."""
        parked = await ctx.services.dialogs.take_parked(ctx.openid, self)
        if parked is not None:
            return await self._resume(ctx, parked)
        loaded = await ctx.services.dialogs.load(ctx.openid)
        if isinstance(loaded, Active) and loaded.dialog is self and loaded.state in self.parked_in:
            return await self._resume(ctx, loaded)  # "秒杀的还要付钱吗" at the address step: not a new list
        now = utcnow()
        async with unit_of_work(ctx) as session:
            sales = await flash_sales.list_sales(session, now=now, for_customers=True)
        shown = [s.data(now) for s in sales]
        data = {
            "sales": shown,
            "running": next((n for n, s in enumerate(shown, 1) if s["phase"] == "running"), None),
            "coming": next((n for n, s in enumerate(shown, 1) if s["phase"] == "coming"), None),
        }
        if not sales:
            await ctx.services.dialogs.end(ctx.openid)
            return Text("flash_list", data)
        step = Step(Text("flash_list", data), FlashState.LIST, FlashData([s.id for s in sales]))
        return await ctx.services.dialogs.start(ctx, self, step)

    async def _resume(self, ctx: Context, parked: Active) -> Reply:
        step = ADDRESS_STEP.again(parked.data, parked.state)
        reply = with_notice(step.reply, Notice("flash_resumed"))
        return await ctx.services.dialogs.resume(ctx, self, Step(reply, step.state, step.data))

    async def reprompt(self, ctx: Context, state: FlashState, data: FlashData) -> Reply | None:
        if state not in self.parked_in:
            return None
        return Text("step_hint", {"step": f"flash_{state}"})

    async def _pick(self, ctx: Context, number: int | None, *, phase: str) -> SaleView | Reply:
        """The sale "N" names (in the list last shown, else the list as it stands), or the
        first one in `phase` when no number is given; a reply when there is none."""
        now = utcnow()
        stored = await ctx.services.dialogs.store.get(ctx.openid)
        shown: list[int] = []
        if stored is not None and stored.dialog == self.name:
            shown = list(stored.data.get("sale_ids") or [])
        async with unit_of_work(ctx) as session:
            if number is not None and shown:
                if not 1 <= number <= len(shown):
                    return Text("pick_out_of_range", {"number": number, "count": len(shown)})
                try:
                    return await flash_sales.get_sale(session, sale_id=shown[number - 1])
                except ShopError as exc:
                    return error_reply(exc)
            sales = await flash_sales.list_sales(session, now=now, for_customers=True)
        if number is not None:
            if not 1 <= number <= len(sales):
                return Text("pick_out_of_range", {"number": number, "count": len(sales)}) if sales else await self.show(ctx)
            return sales[number - 1]
        wanted = [s for s in sales if s.phase(now) == phase]
        if wanted:
            return wanted[0]
        if sales:
            return sales[0]  # grabbing before the start says when; a reminder after it says "grab"
        return await self.show(ctx)

    async def remind(self, ctx: Context, number: int | None) -> Reply:
        """"提醒我 [N]": the customer is told when the sale starts (once)."""
        picked = await self._pick(ctx, number, phase="coming")
        if not isinstance(picked, SaleView):
            return picked
        try:
            async with unit_of_work(ctx) as session:
                sale, new = await flash_sales.remind_me(
                    session, sale_id=picked.id, customer_id=ctx.customer_id, now=utcnow()
                )
        except ShopError as exc:
            return error_reply(exc)
        return Text("flash_reminder_set", {**sale.data(utcnow()), "new": new})

    async def grab(self, ctx: Context, number: int | None) -> Reply:
        """"抢 [N]": one unit, answered with the pay card (or the address asked for). A unit
        already held for an address still to come goes on there instead."""
        if number is None and ctx.msg.flash_sale is not None:
            # won at the edge: that sale. The gate said "won", not "holding", so no unit of
            # this customer waits for an address: no dialog of theirs to look at first (two
            # reads fewer for each winner of a rush)
            return await self._take(ctx, ctx.msg.flash_sale)
        stored = await ctx.services.dialogs.store.get(ctx.openid)
        if stored is not None and stored.dialog == self.name and stored.state in self.parked_in:
            return Text("step_hint", {"step": f"flash_{stored.state}"})
        parked = await ctx.services.dialogs.take_parked(ctx.openid, self)
        if parked is not None:
            return await self._resume(ctx, parked)
        picked = await self._pick(ctx, number, phase="running")
        if not isinstance(picked, SaleView):
            return picked
        return await self._take(ctx, picked.id)

    async def result(self, ctx: Context) -> Reply:
        """"抢到了吗": the pay card of the unit the customer holds, the address step of one
        still waiting for it, or that nothing is held (with where to look)."""
        parked = await ctx.services.dialogs.take_parked(ctx.openid, self)
        if parked is not None:
            return await self._resume(ctx, parked)
        async with unit_of_work(ctx) as session:
            order_id = await flash_sales.held_order(session, customer_id=ctx.customer_id)
            order = await orders.get_order(session, order_id=order_id) if order_id is not None else None
        return flash_pay_card(ctx, order) if order is not None else Text("flash_none_held")

    async def grab_sale(self, ctx: Context, sale_id: int) -> Reply:
        """One unit of the sale `sale_id` (a live drop's product on air: "抢直播"), as "抢"."""
        stored = await ctx.services.dialogs.store.get(ctx.openid)
        if stored is not None and stored.dialog == self.name and stored.state in self.parked_in:
            return Text("step_hint", {"step": f"flash_{stored.state}"})
        return await self._take(ctx, sale_id)

    async def _take(self, ctx: Context, sale_id: int) -> Reply:
        step = await self._grab(ctx, sale_id)
        if step.state is None:
            await ctx.services.dialogs.end(ctx.openid)
            return step.reply
        return await ctx.services.dialogs.start(ctx, self, step)

    async def _grab(self, ctx: Context, sale_id: int) -> Step[FlashState, FlashData]:
        key = f"{ctx.openid}:{ctx.msg.dedupe_key}"
        gate = ctx.services.flash_gate
        if ctx.msg.flash_sale == sale_id:  # won at the webhook's edge (bot.flash_edge): counted there
            gate = WonAtTheEdge(gate)
        try:
            # a grab's transaction writes the two rows every winner writes (the stock, the sale's
            # counts): a few at a time per worker, the rest wait here holding no connection
            async with ctx.services.grab_writers, unit_of_work(ctx) as session:
                await inbound.mark_early(session)  # the commit then comes right after the contended rows
                address = await addresses.default_address(session, customer_id=ctx.customer_id)
                grabbed = await flash_sales.grab(
                    session, sale_id=sale_id, customer_id=ctx.customer_id, openid=ctx.openid,
                    address_id=address.id if address is not None else None, address=address, idempotency_key=key,
                    rules=ctx.services.rules, now=utcnow(), gate=gate,
                )
                order = grabbed.order  # read before the sale's contended rows were written
        except ShopError as exc:
            claim_id = exc.details.get("claim_id")
            if exc.code == ErrorCode.FLASH_HOLDING and exc.details.get("order_id") is None and isinstance(claim_id, int):
                # a unit of theirs still waits for its address, its step left behind: asked again
                step = ADDRESS_STEP.start(FlashData(claim_id=claim_id))
                return Step(with_notice(step.reply, Notice("flash_resumed")), step.state, step.data)
            return Step(await self._refused(ctx, exc))
        ctx.services.live_hub.poke()  # a live page showing this sale counts down at once
        if order is None:  # held for the payment window while the address is typed
            data: dict[str, Any] = {"product": grabbed.sale.product_name, "expires_at": grabbed.expires_at}
            return Step(Text("flash_address", data), FlashState.ADDRESS, FlashData(claim_id=grabbed.claim_id))
        return Step(flash_pay_card(ctx, order))

    async def _refused(self, ctx: Context, exc: ShopError) -> Reply:
        """Why not, in words; a unit already held shows its pay card again."""
        order_id = exc.details.get("order_id")
        if exc.code == ErrorCode.FLASH_HOLDING and isinstance(order_id, int):
            async with unit_of_work(ctx) as session:
                order = await orders.get_order(session, order_id=order_id)
            return flash_pay_card(ctx, order)
        return error_reply(exc)

    @on(FlashState.LIST)
    async def on_list(self, ctx: Context, data: FlashData) -> Step[FlashState, FlashData] | None:
        number = parse_number(ctx.msg.text)
        if number is None:
            return None
        if not 1 <= number <= len(data.sale_ids):
            return Step(
                Text("pick_out_of_range", {"number": number, "count": len(data.sale_ids)}), FlashState.LIST, data
            )
        return await self._grab(ctx, data.sale_ids[number - 1])  # a sale gone since: told so

    @on(FlashState.ADDRESS)
    async def on_address(self, ctx: Context, data: FlashData) -> Step[FlashState, FlashData] | None:
        if not looks_like_address(ctx.msg.text):
            return None
        return ADDRESS_STEP.on_typed(ctx, data)

    @on(FlashState.ADDRESS_CONFIRM)
    async def on_address_confirm(self, ctx: Context, data: FlashData) -> Step[FlashState, FlashData] | None:
        keyword = match_keyword(ctx.msg.text)
        if (keyword is None or keyword[0] != "confirm") and not looks_like_address(ctx.msg.text):
            return None
        saved = await ADDRESS_STEP.on_confirm(ctx, data)
        if isinstance(saved, Step):
            return saved
        if data.claim_id is None:
            return Step(error_reply(ShopError(ErrorCode.FLASH_HOLD_EXPIRED)))
        try:
            async with unit_of_work(ctx) as session:
                order_id = await flash_sales.order_for_claim(
                    session, claim_id=data.claim_id, customer_id=ctx.customer_id, address_id=saved.id,
                    idempotency_key=f"{ctx.openid}:{ctx.msg.dedupe_key}", rules=ctx.services.rules, now=utcnow(),
                )
                order = await orders.get_order(session, order_id=order_id)
        except ShopError as exc:
            return Step(error_reply(exc))
        return Step(flash_pay_card(ctx, order))

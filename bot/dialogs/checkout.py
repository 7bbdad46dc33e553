"""Checkout: address, coupon, delivery fee, total, confirm → an order and its pay card.

```mermaid
stateDiagram-v2
    [*] --> REVIEW: "结算" with a default address
    [*] --> ADDRESS: "结算" without one
    ADDRESS --> ADDRESS_CONFIRM: a typed "name phone address", parsed
    ADDRESS --> ADDRESS: an address attempt that cannot be read (says what is missing)
    ADDRESS_CONFIRM --> REVIEW: "确认" saves it as the default
    ADDRESS_CONFIRM --> ADDRESS_CONFIRM: another typed address
    REVIEW --> REVIEW: "券 2" / "券 不用", "用积分" / "不用积分", "用余额 [N]" / "不用余额", a changed cart re-quoted
    REVIEW --> ADDRESS: "地址", "收货人改成我妈" (someone else: their details asked for)
    REVIEW --> ADDRESS_CONFIRM: "收货人改成王芳" / "电话改成…" / "地址改成…" (the changed address shown back)
    ADDRESS_CONFIRM --> ADDRESS_CONFIRM: a detail changed in words
    ADDRESS_CONFIRM --> ADDRESS: "收货人改成我妈"
    ADDRESS --> ADDRESS: "不用积分" (kept for the review), "有券吗" (told: at the review)
    REVIEW --> REVIEW: "有券能用吗" (the usable coupons listed), a cart edit in words (re-quoted)
    REVIEW --> [*]: "确认" places the order (pay card), cancel
    state "any step" as ANY
    ANY --> ANY: stray text nothing understands, a number (what the step needs, "取消" to leave)
    ANY --> PARKED: text that finds products (the results say "回复「结算」继续下单"), another screen
    PARKED --> ANY: "结算" goes on in the state it was left, its data kept, re-quoted
    PARKED --> [*]: cancel, an emptied cart, its TTL
```
A stray message never ends the checkout: in any step, text the step does not take
(in the address steps: text that does not look like an address) is left to the rest
of the conversation. A search that finds products, or another screen ("订单", "购物车"…),
parks the checkout with its state and data (`bot.dialogs.base`); "结算" resumes it
(`begin`), re-quoted, with its typed address, coupon and points choices. Anything
nothing understands is answered with what the step needs and how to leave
(`reprompt`). Only "取消" (or an emptied cart) drops it.
ADDRESS and ADDRESS_CONFIRM are the address step (`bot.dialogs.address_step`), shared
with the group-buy dialog. The order is placed with an idempotency key derived from the confirming message,
so WeChat's retries and double taps place it once.

Points: a customer who has enough for a saving uses them by default (what Chinese shops
do: the saving is shown, and "不用积分" / "no points" keeps them for later); the choice is
kept in the dialog's data and the review shows what is used and what is left.

Stored balance: "用余额" pays as much of the order as the balance covers, "用余额 50" pays
50 yuan of it, "不用余额" none (the default). Confirming places the order and holds that
part of the balance in one transaction (`commerce.balance.orders.hold_for_order`); when
the balance covers it all the order is paid at once (`PaymentService.settle_from_balance`),
else the pay card asks for the rest by WeChat Pay or Alipay.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Any

from bot.chat.context import Context
from bot.chat.keywords import USE_BALANCE, USE_COUPON, USE_POINTS, match_command, match_keyword
from bot.chat.replies import Notice, Reply, Text, with_notice
from bot.chat.understanding import Intent, understand
from bot.dialogs.address_step import (
    AddressStep,
    address_data,
    changed_line,
    looks_like_address,
    read_typed_address,
)
from bot.dialogs.base import Active, Dialog, Step, on
from bot.dialogs.common import error_reply, pay_card, unit_of_work
from bot.dialogs.words import COUPON_QUESTION, AddressChange, read_address_change
from commerce import money
from commerce.analytics import events
from commerce.balance import ledger
from commerce.balance import orders as balance_orders
from commerce.cart import cart, pricing
from commerce.cart.pricing import NO_COUPON, Quote
from commerce.customers import addresses
from commerce.customers.addresses import AddressView
from commerce.errors import ErrorCode, ShopError
from commerce.orders import placement as orders
from commerce.orders.views import order_data


class CheckoutState(enum.StrEnum):
    ADDRESS = "address"
    ADDRESS_CONFIRM = "address_confirm"
    REVIEW = "review"


@dataclass(slots=True)
class CheckoutData:
    address_id: int | None = None
    pending_address: dict[str, str] | None = None
    coupon_id: int | None = None  # None: the best one; NO_COUPON: none
    offered_coupon_ids: list[int] = field(default_factory=list)
    payable_fen: int | None = None  # the total last shown: confirming anything else is refused
    use_points: bool = True  # points take money off unless the customer says "不用积分"
    use_balance: bool = False  # "用余额": stored balance pays (part of) it
    balance_limit_fen: int | None = None  # "用余额 50": at most this much (None: all it can)


ADDRESS_STEP: AddressStep[CheckoutState, CheckoutData] = AddressStep(
    ask=CheckoutState.ADDRESS, confirm=CheckoutState.ADDRESS_CONFIRM
)


def _balance_part(data: CheckoutData, available_fen: int, payable_fen: int) -> int:
    """What the review shows stored balance paying (the confirmation holds exactly it)."""
    if not data.use_balance:
        return 0
    limit = payable_fen if data.balance_limit_fen is None else min(data.balance_limit_fen, payable_fen)
    return max(0, min(limit, available_fen))


def _quote_data(quote: Quote, address: AddressView) -> dict[str, Any]:
    offers = [quote.coupon, *quote.other_coupons] if quote.coupon else list(quote.other_coupons)
    return {
        "lines": [
            {"name": line.name, "spec": line.spec_label, "price": line.unit_price_fen,
             "quantity": line.quantity, "subtotal": line.subtotal_fen}
            for line in quote.lines if line.problem is None
        ],
        "problems": [
            {"name": line.name, "spec": line.spec_label, "problem": line.problem, "stock": line.stock,
             "quantity": line.quantity}
            for line in quote.problems
        ],
        "goods": quote.goods_fen,
        "discount": quote.discount_fen,
        "level_discount": quote.level_discount_fen,
        "level_name": quote.level_name,
        "delivery": quote.delivery_fen,
        "payable": quote.payable_fen,
        "coupon": {"title": quote.coupon.title, "discount": quote.coupon.discount_fen} if quote.coupon else None,
        "points": {
            "balance": quote.points_balance,
            "used": quote.points_used,
            "saving": quote.points_fen,
            "offer_used": quote.points_offer_used,
            "offer_saving": quote.points_offer_fen,
        },
        "offers": [{"number": n, "title": o.title, "discount": o.discount_fen} for n, o in enumerate(offers, 1)],
        "address": address_data(address),
    }


class CheckoutDialog(Dialog[CheckoutState, CheckoutData]):
    name = "checkout"
    address_states = ADDRESS_STEP.states
    State = CheckoutState
    Data = CheckoutData
    version = 1
    resumable = True
    initial = frozenset({CheckoutState.ADDRESS, CheckoutState.REVIEW})
    transitions = {
        CheckoutState.ADDRESS: frozenset({CheckoutState.ADDRESS, CheckoutState.ADDRESS_CONFIRM}),
        CheckoutState.ADDRESS_CONFIRM: frozenset(
            {CheckoutState.ADDRESS_CONFIRM, CheckoutState.REVIEW, CheckoutState.ADDRESS}
        ),
        CheckoutState.REVIEW: frozenset({CheckoutState.REVIEW, CheckoutState.ADDRESS, CheckoutState.ADDRESS_CONFIRM}),
    }

    async def begin(self, ctx: Context) -> Reply:
        """Start checkout of the customer's cart, or go on with the one left for a search or
        another screen (its address, typed address, coupon and points choices kept)."""
        async with unit_of_work(ctx) as session:
            if not (await cart.get_cart(session, customer_id=ctx.customer_id)).lines:
                await ctx.services.dialogs.cancel(ctx.openid)
                return Text("cart_empty")
            address = await addresses.default_address(session, customer_id=ctx.customer_id)
        previous = await self._left(ctx)
        if previous is not None:
            return await self._resume(ctx, previous, default_address_id=address.id if address else None)
        data = CheckoutData(address_id=address.id if address else None)
        step = await self._review(ctx, data) if address else ADDRESS_STEP.start(data)
        if step.state is None:
            await ctx.services.dialogs.end(ctx.openid)
            return step.reply
        return await ctx.services.dialogs.start(ctx, self, step)

    async def _left(self, ctx: Context) -> Active | None:
        """The checkout this customer left (parked) or is in."""
        dialogs = ctx.services.dialogs
        parked = await dialogs.take_parked(ctx.openid, self)
        if parked is not None:
            return parked
        loaded = await dialogs.load(ctx.openid)
        return loaded if isinstance(loaded, Active) and loaded.dialog is self else None

    async def _resume(self, ctx: Context, previous: Active, *, default_address_id: int | None) -> Reply:
        data: CheckoutData = previous.data
        if previous.state == CheckoutState.ADDRESS_CONFIRM and data.pending_address is not None:
            step: Step[CheckoutState, CheckoutData] = ADDRESS_STEP.again(data, previous.state)
        else:
            data.address_id = data.address_id or default_address_id
            step = await self._review(ctx, data) if data.address_id else ADDRESS_STEP.start(data)
        if step.state is None:
            await ctx.services.dialogs.cancel(ctx.openid)
            return step.reply
        reply = with_notice(step.reply, Notice("checkout_resumed"))
        return await ctx.services.dialogs.resume(ctx, self, Step(reply, step.state, step.data))

    async def requote(self, ctx: Context, active: Active) -> Reply:
        """The open review again after the cart changed under it (its choices kept)."""
        step = await self._review(ctx, active.data)
        if step.state is None:
            await ctx.services.dialogs.cancel(ctx.openid)
            return step.reply
        return await ctx.services.dialogs.resume(ctx, self, step)

    async def reprompt(self, ctx: Context, state: CheckoutState, data: CheckoutData) -> Reply | None:
        """What the step needs, and "取消" to leave; the checkout stays."""
        return Text("step_hint", {"step": f"checkout_{state}", "payable": data.payable_fen})

    async def _review(self, ctx: Context, data: CheckoutData) -> Step[CheckoutState, CheckoutData]:
        async with unit_of_work(ctx) as session:
            quote = await pricing.quote(
                session,
                customer_id=ctx.customer_id,
                rules=ctx.services.rules,
                customer_coupon_id=data.coupon_id,
                use_points=data.use_points,
            )
            balances = await ledger.balance_of(session, ctx.customer_id)
            address = next(
                (a for a in await addresses.list_addresses(session, customer_id=ctx.customer_id)
                 if a.id == data.address_id),
                None,
            )
        if not quote.lines and not quote.problems:
            return Step(Text("cart_empty"))
        if address is None:
            return ADDRESS_STEP.start(data)
        offers = [quote.coupon, *quote.other_coupons] if quote.coupon else list(quote.other_coupons)
        data.offered_coupon_ids = [o.customer_coupon_id for o in offers]
        if data.payable_fen is None:  # this checkout's first review: a checkout started
            ctx.record(events.checkout(ctx.customer_id))
        data.payable_fen = quote.payable_fen
        shown = _quote_data(quote, address)
        part = _balance_part(data, balances.balance_fen, quote.payable_fen)
        shown["stored"] = {
            "available_fen": balances.balance_fen,
            "used_fen": part,
            "due_fen": quote.payable_fen - part,
            "asked_fen": data.balance_limit_fen or 0,
        }
        return Step(Text("checkout_review", shown), CheckoutState.REVIEW, data)

    def _before_review(self, ctx: Context, state: CheckoutState, data: CheckoutData) -> Step | None:
        """"有券能用吗", "不用积分" while the address is asked: the points choice is kept for
        the review, a coupon question is told it comes there; the address step goes on."""
        text = ctx.msg.text
        use_points = match_command(USE_POINTS, text)
        if use_points is not None:
            data.use_points = use_points.group(1).lower() in ("用", "使用", "use")
            noted = "points_on" if data.use_points else "points_off"
        elif COUPON_QUESTION.search(text) or match_command(USE_COUPON, text) is not None:
            noted = "coupon_later"
        else:
            return None
        hint = Text("step_hint", {"step": f"checkout_{state}", "payable": None})
        return Step(with_notice(hint, Notice("checkout_noted", {"noted": noted})), state, data)

    @on(CheckoutState.ADDRESS)
    async def on_address(self, ctx: Context, data: CheckoutData) -> Step[CheckoutState, CheckoutData] | None:
        if _asks_new_address(ctx.msg.text):  # "改地址" while it is asked: asked again, no order touched
            return ADDRESS_STEP.start(data)
        if not looks_like_address(ctx.msg.text):
            # a search, a question…: understood elsewhere, else `reprompt`
            return self._before_review(ctx, CheckoutState.ADDRESS, data)
        return ADDRESS_STEP.on_typed(ctx, data)

    @on(CheckoutState.ADDRESS_CONFIRM)
    async def on_address_confirm(
        self, ctx: Context, data: CheckoutData
    ) -> Step[CheckoutState, CheckoutData] | None:
        change = read_address_change(ctx.msg.text)
        if change is not None:
            return await self._change_address(ctx, data, change)
        if _asks_new_address(ctx.msg.text):
            return ADDRESS_STEP.start(data)
        keyword = match_keyword(ctx.msg.text)
        if (keyword is None or keyword[0] != "confirm") and not looks_like_address(ctx.msg.text):
            return self._before_review(ctx, CheckoutState.ADDRESS_CONFIRM, data)
        saved = await ADDRESS_STEP.on_confirm(ctx, data)
        if isinstance(saved, Step):
            return saved
        data.address_id, data.pending_address = saved.id, None
        return await self._review(ctx, data)

    @on(CheckoutState.REVIEW)
    async def on_review(self, ctx: Context, data: CheckoutData) -> Step[CheckoutState, CheckoutData] | None:
        change = read_address_change(ctx.msg.text)
        if change is not None:
            return await self._change_address(ctx, data, change)
        keyword = match_keyword(ctx.msg.text)
        if _asks_new_address(ctx.msg.text):
            return ADDRESS_STEP.start(data)
        if COUPON_QUESTION.search(ctx.msg.text) and match_command(USE_COUPON, ctx.msg.text) is None:
            return await self._coupons(ctx, data)
        coupon = match_command(USE_COUPON, ctx.msg.text)
        if coupon is not None:
            return self._choose_coupon(ctx, data, coupon.group(1)) or await self._review(ctx, data)
        use_points = match_command(USE_POINTS, ctx.msg.text)
        if use_points is not None:
            data.use_points = use_points.group(1).lower() in ("用", "使用", "use")
            return await self._review(ctx, data)
        use_balance = USE_BALANCE.match(ctx.msg.text)
        if use_balance is not None:
            return await self._choose_balance(ctx, data, use_balance)
        if keyword is None or keyword[0] != "confirm":
            return None
        return await self._place(ctx, data)

    async def _choose_balance(
        self, ctx: Context, data: CheckoutData, said: re.Match[str]
    ) -> Step[CheckoutState, CheckoutData]:
        """"用余额 [N]" / "余额支付" / "不用余额": the review again with the balance part."""
        word = (said.group(1) or said.group(2) or "").lower()
        data.use_balance = word not in ("不用", "不", "no", "don't use")
        data.balance_limit_fen = None
        if data.use_balance and said.group(3):
            data.balance_limit_fen = money.parse_yuan(said.group(3))
            data.use_balance = data.balance_limit_fen > 0  # "用余额 0": none
        review = await self._review(ctx, data)
        stored = review.reply.data.get("stored") if isinstance(review.reply, Text) else None
        if data.use_balance and stored is not None and stored["available_fen"] == 0:
            data.use_balance = False  # nothing to pay with: said so, the review as it was
            refusal = {"code": str(ErrorCode.BALANCE_NOT_ENOUGH), "d": {"balance_fen": 0}}
            return Step(with_notice(review.reply, Notice("shop_error", refusal)), review.state, review.data)
        return review

    async def _change_address(
        self, ctx: Context, data: CheckoutData, change: AddressChange
    ) -> Step[CheckoutState, CheckoutData]:
        """One delivery detail changed in words: the address with it is shown back to confirm
        (the rest of the checkout kept); "收货人改成我妈" asks for that person's details."""
        if not change.value:
            return Step(with_notice(Text("ask_address"), Notice("address_for_someone")), CheckoutState.ADDRESS, data)
        base = data.pending_address
        if base is None:
            async with unit_of_work(ctx) as session:
                current = next(
                    (a for a in await addresses.list_addresses(session, customer_id=ctx.customer_id)
                     if a.id == data.address_id),
                    None,
                )
            if current is None:
                return ADDRESS_STEP.start(data)
            base = {"name": current.name, "phone": current.phone, "address": current.address}
        reply, pending = read_typed_address(changed_line(base, change))
        if pending is None:
            return Step(reply, CheckoutState.ADDRESS_CONFIRM if data.pending_address else CheckoutState.REVIEW, data)
        data.pending_address = pending
        return Step(reply, CheckoutState.ADDRESS_CONFIRM, data)

    async def _coupons(self, ctx: Context, data: CheckoutData) -> Step[CheckoutState, CheckoutData]:
        """"有券能用吗": the coupons this order can use, and how to pick one."""
        review = await self._review(ctx, data)
        if review.state != CheckoutState.REVIEW or not isinstance(review.reply, Text):
            return review
        quoted = review.reply.data
        shown = {"offers": quoted["offers"], "coupon": quoted["coupon"], "payable": quoted["payable"]}
        return Step(Text("checkout_coupons", shown), CheckoutState.REVIEW, review.data)

    def _choose_coupon(self, ctx: Context, data: CheckoutData, choice: str) -> Step | None:
        if not choice.isdigit():
            data.coupon_id = NO_COUPON
            return None
        number = int(choice)
        if not 1 <= number <= len(data.offered_coupon_ids):
            count = len(data.offered_coupon_ids)
            return Step(Text("pick_out_of_range", {"number": number, "count": count}), CheckoutState.REVIEW, data)
        data.coupon_id = data.offered_coupon_ids[number - 1]
        return None

    async def _place(self, ctx: Context, data: CheckoutData) -> Step[CheckoutState, CheckoutData]:
        if data.address_id is None:
            return ADDRESS_STEP.start(data)
        held: balance_orders.Held | None = None
        try:
            async with unit_of_work(ctx) as session:
                order = await orders.place_order(
                    session,
                    customer_id=ctx.customer_id,
                    address_id=data.address_id,
                    idempotency_key=f"{ctx.openid}:{ctx.msg.dedupe_key}",
                    rules=ctx.services.rules,
                    customer_coupon_id=data.coupon_id,
                    expected_payable_fen=data.payable_fen,
                    use_points=data.use_points,
                )
                # staff alerts: variants this order took below their threshold, committed with it
                await ctx.services.alerts.low_stock(session, order)
                if data.use_balance:  # held with the order, in its transaction (refused: neither happens)
                    limit = order.payable_fen if data.balance_limit_fen is None else data.balance_limit_fen
                    held = await balance_orders.hold_for_order(
                        session,
                        customer_id=ctx.customer_id,
                        order_id=order.id,
                        amount_fen=None if limit >= order.payable_fen else limit,
                    )
                    order = await orders.get_order(session, order_id=order.id)
        except ShopError as exc:
            # explain what changed, with the re-quoted order right below
            review = await self._review(ctx, data)
            if review.state is None:
                return Step(error_reply(exc))
            notice = Notice("shop_error", error_reply(exc).data)
            return Step(with_notice(review.reply, notice), review.state, review.data)
        if held is not None and held.covers_all:  # paid now, through the status machine
            await ctx.services.payments.settle_from_balance(order_no=order.order_no)
            return Step(Text("paid_from_balance", {**order_data(order), "balance_fen": held.balance_fen}))
        return Step(pay_card(ctx, order))


def _asks_new_address(text: str) -> bool:
    """"修改地址", "地址写错了", "换个地址" at checkout: this checkout's address, never an order
    placed before (which the same words change anywhere else)."""
    keyword = match_keyword(text)
    return (keyword is not None and keyword[0] == "address") or understand(text).intent is Intent.CHANGE_ADDRESS

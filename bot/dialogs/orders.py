"""Orders: the list with statuses, one order's detail, and what can be done with it.

```mermaid
stateDiagram-v2
    [*] --> LIST: "订单" / "orders" (no orders: ends at once)
    LIST --> DETAIL: a number
    DETAIL --> DETAIL: another number, "取消订单", "确认收货", "支付", "退款 原因" / "退货 原因"
    DETAIL --> [*]: "评价" on a received order: the review dialog (bot/dialogs/review.py)
    [*] --> DETAIL: a question about one order anywhere ("包裹到哪了", "刚才那单怎么付", "不想要了能退吗")
    [*] --> DETAIL: "退款 原因" anywhere: filed on the one order in its status it is about
    [*] --> DETAIL: "收到啦 苹果很甜👍": glad, "确认收货" and a review offered on the shipped order
    DETAIL --> LIST: "返回"
    [*] --> ADDRESS: "地址写错了", "改地址" anywhere: the order not shipped yet (its address shown)
    DETAIL --> ADDRESS: "改地址" on an order's screen
    ADDRESS --> CONFIRM: a typed "name phone address", or one detail ("电话改成139…"), read and shown back
    CONFIRM --> DETAIL: "确认": the order ships there (staff told if it is paid); saved as the default
    DETAIL --> [*]: "确认收货" done: the review dialog takes a rating next (bot/dialogs/review.py)
    LIST --> [*]: cancel, other text
    DETAIL --> [*]: cancel, other text
```
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.chat.context import Context
from bot.chat.keywords import AFTER_SALES, match_command, match_keyword, parse_number
from bot.chat.replies import Reply, Text
from bot.chat.understanding import Intent, after_sales_form, understand
from bot.dialogs.address_step import (
    AddressStep,
    address_data,
    changed_line,
    looks_like_address,
    read_typed_address,
)
from bot.dialogs.base import Dialog, Step, on
from bot.dialogs.common import error_reply, pay_card, unit_of_work
from bot.dialogs.words import read_address_change
from commerce.customers import addresses
from commerce.customers.addresses import ParsedAddress
from commerce.errors import ErrorCode, ShopError
from commerce.groupbuys import groups as group_buys
from commerce.orders import actions as order_actions
from commerce.orders import after_sales as after_sales_requests
from commerce.orders import placement as orders
from commerce.orders import status as order_status
from commerce.orders.actions import CancelledBy
from commerce.orders.models import AfterSalesKind, OrderStatus
from commerce.orders.views import OrderView, order_data
from commerce.reviews import actions as reviews
from commerce.rules import utcnow

LIST_SIZE = 10

_S = OrderStatus
# Which of the customer's orders a question is about: the newest in the first status of
# its list that any recent order is in. "包裹到哪了" means the shipped order, else the paid
# one (not shipped yet), else the unpaid one (it needs paying first).
ASKED_ABOUT: dict[Intent, tuple[OrderStatus, ...]] = {
    Intent.PAY_ORDER: (_S.PENDING_PAYMENT,),
    Intent.TRACK: (_S.SHIPPED, _S.PAID, _S.PENDING_PAYMENT),
    Intent.URGE: (_S.PAID, _S.SHIPPED, _S.PENDING_PAYMENT),
    Intent.RECEIVED: (_S.SHIPPED, _S.PAID),
    Intent.PLEASED: (_S.SHIPPED,),  # glad, and "确认收货" offered: never confirmed from these words
    Intent.CANCEL_ORDER: (_S.PENDING_PAYMENT, _S.PAID),
    Intent.AFTER_SALES: (_S.SHIPPED, _S.PAID, _S.COMPLETED, _S.REFUNDING),
    # the order of the newest after-sales request first (`OrdersDialog.about`), else a refund staff began
    Intent.REFUND_STATUS: (_S.REFUNDING, _S.REFUNDED),
    # a shipped one is answered too: it is too late, and what to do instead
    Intent.CHANGE_ADDRESS: (_S.PAID, _S.PENDING_PAYMENT, _S.SHIPPED),
}


def asked_order(found: list[OrderView], ask: Intent) -> OrderView | None:
    """The order (of `found`, newest first) that a question of kind `ask` is about."""
    for status in ASKED_ABOUT[ask]:
        for order in found:
            if order.status == status:
                return order
    return None


async def _refund_asked(session: AsyncSession, found: list[OrderView]) -> OrderView | None:
    """The order "我的退款呢" is about: the one of `found` with the newest after-sales request."""
    latest = await after_sales_requests.latest_of_orders(session, order_ids=[o.id for o in found])
    return next((o for o in found if latest is not None and o.id == latest.order_id), None)


async def _requests(session: AsyncSession, order_id: int) -> list[dict[str, Any]]:
    """An order's after-sales requests as its screen shows them, oldest first."""
    return after_sales_requests.decisions_data(await after_sales_requests.of_order(session, order_id=order_id))


def _group_wait(waiting: dict[int, tuple[int, int]], order_id: int) -> dict[str, Any]:
    """A paid order of a group not filled yet shows "waiting for the group (2 of 3)", not "paid"."""
    joined, size = waiting.get(order_id, (0, 0))
    return {"group_wait": order_id in waiting, "group_joined": joined, "group_size": size}


def _about(
    ctx: Context, order: OrderView, ask: Intent, waiting: dict[int, tuple[int, int]], *, same: int = 1,
    requests: list[dict[str, Any]] | None = None,
) -> Text:
    """The order's detail with the answer to `ask` on top (order_about.j2); `requests`: its
    after-sales requests, oldest first (what became of a refund asked for is said on top)."""
    shop = ctx.services.config.shop
    return Text("order_about", {
        **order_data(order), **_group_wait(waiting, order.id), "ask": str(ask), "shipped_count": same,
        "dispatch_hours": shop.dispatch_hours, "weekend_dispatch": shop.weekend_dispatch,
        "return_days": shop.return_window_days, "after_sales": requests or [],
    })


# Words on an order's screen that its status does not allow, answered with what it does.
_NOT_YET = {("cancel_order", OrderStatus.PAID): Intent.CANCEL_ORDER, ("received", OrderStatus.PAID): Intent.RECEIVED}


def _received(reply: Reply) -> bool:
    """The customer's "确认收货" went through (the review dialog takes the next message)."""
    return isinstance(reply, Text) and reply.template == "order_received"


def _back(ctx: Context) -> bool:
    keyword = match_keyword(ctx.msg.text)
    return keyword is not None and keyword[0] == "back"


class OrdersState(enum.StrEnum):
    LIST = "list"
    DETAIL = "detail"
    ADDRESS = "address"  # the order's new delivery details asked for
    ADDRESS_CONFIRM = "address_confirm"  # read and shown back: "确认" changes the order


@dataclass(slots=True)
class OrdersData:
    order_ids: list[int] = field(default_factory=list)
    order_id: int | None = None
    pending_address: dict[str, str] | None = None  # the typed new address, until "确认"


NEW_ADDRESS: AddressStep[OrdersState, OrdersData] = AddressStep(OrdersState.ADDRESS, OrdersState.ADDRESS_CONFIRM)


class OrdersDialog(Dialog[OrdersState, OrdersData]):
    name = "orders"
    State = OrdersState
    Data = OrdersData
    version = 1
    # DETAIL: a question about one order; ADDRESS, ADDRESS_CONFIRM: its address to change
    initial = frozenset({OrdersState.LIST, OrdersState.DETAIL, OrdersState.ADDRESS, OrdersState.ADDRESS_CONFIRM})
    _address_states = frozenset({OrdersState.ADDRESS, OrdersState.ADDRESS_CONFIRM})
    transitions = {
        OrdersState.LIST: frozenset({OrdersState.LIST, OrdersState.DETAIL}),
        OrdersState.DETAIL: frozenset({OrdersState.DETAIL, OrdersState.LIST} | _address_states),
        OrdersState.ADDRESS: frozenset({OrdersState.DETAIL, OrdersState.LIST} | _address_states),
        OrdersState.ADDRESS_CONFIRM: frozenset({OrdersState.DETAIL, OrdersState.LIST} | _address_states),
    }

    async def show(self, ctx: Context) -> Reply:
        step = await self._list(ctx)
        if step.state is None:
            await ctx.services.dialogs.end(ctx.openid)
            return step.reply
        return await ctx.services.dialogs.start(ctx, self, step)

    async def about(
        self, ctx: Context, ask: Intent, *, statuses: tuple[OrderStatus, ...] | None = None
    ) -> Reply | None:
        """A question about one order asked anywhere ("刚才那单怎么付", "包裹到哪了",
        "东西收到了", "取消订单", "我要退款"): the order it is about, opened as the detail
        (so "确认收货", "退款 原因" and a number work next), with the answer on top.

        An unpaid order is answered with its pay card; the one shipped order of a customer
        who says it arrived, the one unpaid order of a customer who cancels, and the one
        order in its status that a request typed as the shop asks ("退款 买错了") is about,
        are acted on at once, as the same words do on the order's screen. None when no order fits:
        the caller answers the question as a shop question. `statuses`: only orders in
        these (a shop question is about an order only while it is in one of them).
        """
        async with unit_of_work(ctx) as session:
            found = await orders.list_orders(session, customer_id=ctx.customer_id, limit=LIST_SIZE)
            fitting = [o for o in found if statuses is None or o.status in statuses]
            order = await _refund_asked(session, fitting) if ask is Intent.REFUND_STATUS else None
            order = order or asked_order(fitting, ask)
            waiting = await group_buys.waiting_for_group(session, order_ids=[order.id] if order else [])
            requests = await _requests(session, order.id) if order else []
        if order is None:
            return None
        data = OrdersData([o.id for o in found], order.id)
        if ask is Intent.CHANGE_ADDRESS:
            return await ctx.services.dialogs.start(ctx, self, self._new_address(ctx, order, data))
        same = sum(1 for o in found if o.status == order.status)
        act = {(Intent.RECEIVED, _S.SHIPPED): "received", (Intent.CANCEL_ORDER, _S.PENDING_PAYMENT): "cancel_order"}
        action = act.get((ask, order.status))
        request = after_sales_form(ctx.msg.text) if ask is Intent.AFTER_SALES else None
        if (action is not None or request is not None) and same == 1:
            try:
                reply = await self._act(ctx, order.id, action, request)
            except ShopError as exc:
                reply = error_reply(exc)
            if _received(reply):  # a rating may come next: the review's invitation is on its way
                return await ctx.services.dialogs.review.invited(ctx, order_id=order.id, order_no=order.order_no, reply=reply)
        elif order.status == _S.PENDING_PAYMENT:
            reply = pay_card(ctx, order)
        else:
            if ask is Intent.URGE and order.status == _S.PAID and order.id not in waiting:
                ctx.services.alerts.urged_soon(order)  # --- staff alerts: a customer asks to hurry ---
            reply = _about(ctx, order, ask, waiting, same=same, requests=requests)
        return await ctx.services.dialogs.start(ctx, self, Step(reply, OrdersState.DETAIL, data))

    async def _list(self, ctx: Context) -> Step[OrdersState, OrdersData]:
        async with unit_of_work(ctx) as session:
            found = await orders.list_orders(session, customer_id=ctx.customer_id, limit=LIST_SIZE)
            waiting = await group_buys.waiting_for_group(session, order_ids=[o.id for o in found])
        if not found:
            return Step(Text("orders_empty"))
        items = [{"number": n, **order_data(o), **_group_wait(waiting, o.id)} for n, o in enumerate(found, 1)]
        return Step(Text("orders_list", {"orders": items}), OrdersState.LIST, OrdersData([o.id for o in found]))

    async def _detail(self, ctx: Context, data: OrdersData, number: int) -> Step[OrdersState, OrdersData]:
        if not 1 <= number <= len(data.order_ids):
            reply = Text("pick_out_of_range", {"number": number, "count": len(data.order_ids)})
            return Step(reply, OrdersState.DETAIL if data.order_id else OrdersState.LIST, data)
        data.order_id = data.order_ids[number - 1]
        async with unit_of_work(ctx) as session:
            order = await orders.get_order(session, order_id=data.order_id, customer_id=ctx.customer_id)
            waiting = await group_buys.waiting_for_group(session, order_ids=[order.id])
            requests = await _requests(session, order.id)
            reviewed = order.status == OrderStatus.COMPLETED and await reviews.is_reviewed(session, order.id)
        if order.status == OrderStatus.PENDING_PAYMENT:
            return Step(pay_card(ctx, order), OrdersState.DETAIL, data)
        detail = {**order_data(order), **_group_wait(waiting, order.id), "after_sales": requests, "reviewed": reviewed}
        return Step(Text("order_detail", detail), OrdersState.DETAIL, data)

    @on(OrdersState.LIST)
    async def on_list(self, ctx: Context, data: OrdersData) -> Step[OrdersState, OrdersData] | None:
        number = parse_number(ctx.msg.text)
        return await self._detail(ctx, data, number) if number is not None else None

    @on(OrdersState.DETAIL)
    async def on_detail(self, ctx: Context, data: OrdersData) -> Step[OrdersState, OrdersData] | None:
        text = ctx.msg.text
        number = parse_number(text)
        if number is not None:
            return await self._detail(ctx, data, number)
        keyword = match_keyword(text)
        action = keyword[0] if keyword else None
        if action == "back":
            step = await self._list(ctx)
            return step if step.state is not None else Step(step.reply)
        asks_address = action == "address" or understand(text).intent is Intent.CHANGE_ADDRESS
        if data.order_id is not None and asks_address:  # this order's, not the one a question would pick
            async with unit_of_work(ctx) as session:
                order = await orders.get_order(session, order_id=data.order_id, customer_id=ctx.customer_id)
            return self._new_address(ctx, order, data)
        if understand(text).intent is Intent.REFUND_STATUS:
            return None  # "退款进度怎么样了" asks (bot.handlers.understood answers): never a new request
        typed = match_command(AFTER_SALES, text)
        request = (typed.group(1), typed.group(2).strip()) if typed is not None else None
        if data.order_id is None or (action not in ("cancel_order", "received", "pay") and request is None):
            return None
        try:
            reply = await self._act(ctx, data.order_id, action, request)
        except ShopError as exc:
            reply = error_reply(exc)
        if _received(reply) and isinstance(reply, Text):
            order_no = str(reply.data.get("order_no", ""))
            reviewing = await ctx.services.dialogs.review.invited(ctx, order_id=data.order_id, order_no=order_no, reply=reply)
            return Step(reviewing, handed_over=True)
        return Step(reply, OrdersState.DETAIL, data)

    def _new_address(self, ctx: Context, order: OrderView, data: OrdersData) -> Step[OrdersState, OrdersData]:
        """The order's delivery details to change: refused once it shipped (ADDRESS_FIXED,
        with what to do instead); one detail said with it ("电话改成139…") is read at once
        and shown back; else the address it has now is shown and a new one asked for."""
        data.order_id, data.pending_address = order.id, None
        if order.status not in order_actions.ADDRESS_CHANGEABLE:
            refusal = ShopError(ErrorCode.ADDRESS_FIXED, order_id=order.id, order_no=order.order_no, status=str(order.status))
            return Step(error_reply(refusal), OrdersState.DETAIL, data)
        change = read_address_change(ctx.msg.text)
        if change is not None and change.value:
            base = {"name": order.address_name, "phone": order.address_phone, "address": order.address_text}
            return self._read_address(ctx, data, changed_line(base, change), stay=OrdersState.ADDRESS)
        now = {"name": order.address_name, "phone": addresses.mask_phone(order.address_phone), "address": order.address_text}
        shown = {**order_data(order), "now": now}
        return Step(Text("order_address_ask", shown), OrdersState.ADDRESS, data)

    @staticmethod
    def _read_address(ctx: Context, data: OrdersData, line: str, *, stay: OrdersState) -> Step[OrdersState, OrdersData]:
        reply, pending = read_typed_address(line)
        if pending is None:
            return Step(reply, stay, data)
        data.pending_address = pending
        return Step(reply, OrdersState.ADDRESS_CONFIRM, data)

    def _detail_change(self, ctx: Context, data: OrdersData, *, stay: OrdersState) -> Step[OrdersState, OrdersData] | None:
        """"电话改成139…" while the new details are asked or shown back: that detail of
        what was typed (or of the order's address, typed nothing yet)."""
        change = read_address_change(ctx.msg.text)
        if change is None or not change.value or data.pending_address is None:
            return None
        return self._read_address(ctx, data, changed_line(data.pending_address, change), stay=stay)

    @on(OrdersState.ADDRESS)
    async def on_address(self, ctx: Context, data: OrdersData) -> Step[OrdersState, OrdersData] | None:
        if _back(ctx):  # the address left as it was
            step = await self._list(ctx)
            return step if step.state is not None else Step(step.reply)
        asks_again = read_address_change(ctx.msg.text) is not None or understand(ctx.msg.text).intent is Intent.CHANGE_ADDRESS
        if asks_again and data.order_id is not None:  # this order's, not the one a question would pick
            async with unit_of_work(ctx) as session:
                order = await orders.get_order(session, order_id=data.order_id, customer_id=ctx.customer_id)
            return self._new_address(ctx, order, data)
        if not looks_like_address(ctx.msg.text):
            return None  # a search, a question: answered elsewhere (the dialog is left)
        return NEW_ADDRESS.on_typed(ctx, data)

    @on(OrdersState.ADDRESS_CONFIRM)
    async def on_address_confirm(self, ctx: Context, data: OrdersData) -> Step[OrdersState, OrdersData] | None:
        if _back(ctx):  # the address left as it was
            step = await self._list(ctx)
            return step if step.state is not None else Step(step.reply)
        changed = self._detail_change(ctx, data, stay=OrdersState.ADDRESS_CONFIRM)
        if changed is not None:
            return changed
        keyword = match_keyword(ctx.msg.text)
        if keyword is not None and keyword[0] == "confirm" and data.pending_address and data.order_id:
            return await self._change_address(ctx, data, data.order_id, data.pending_address)
        if looks_like_address(ctx.msg.text):
            return NEW_ADDRESS.on_typed(ctx, data)
        return None

    async def _change_address(
        self, ctx: Context, data: OrdersData, order_id: int, pending: dict[str, str]
    ) -> Step[OrdersState, OrdersData]:
        """"确认": the order ships to the new details, kept as the customer's default
        address too; staff packing a paid order are told in the same transaction."""
        data.pending_address = None
        try:
            async with unit_of_work(ctx) as session:
                saved = await addresses.save_address(
                    session, customer_id=ctx.customer_id, parsed=ParsedAddress(**pending), make_default=True
                )
                changed = await order_actions.change_address(
                    session, order_id=order_id, customer_id=ctx.customer_id, address=saved, now=utcnow()
                )
                told = changed.order.status == OrderStatus.PAID
                if told:  # --- staff alerts: what to ship to now ---
                    await ctx.services.alerts.address_changed(session, changed.order, before=changed.before)
        except ShopError as exc:
            return Step(error_reply(exc), OrdersState.DETAIL, data)
        shown = {**order_data(changed.order), "address": address_data(saved), "staff_told": told}
        return Step(Text("order_address_changed", shown), OrdersState.DETAIL, data)

    async def _act(
        self, ctx: Context, order_id: int, action: str | None, request: tuple[str, str] | None
    ) -> Reply:
        """`action` on the order ("pay", "cancel_order", "received"), else the after-sales
        `request` (its word and reason: "退货", "发错了") filed on it and staff alerted."""
        customer_id = ctx.customer_id
        async with unit_of_work(ctx) as session:
            if action in ("pay", "cancel_order", "received"):
                order = await orders.get_order(session, order_id=order_id, customer_id=customer_id)
                if action == "pay" and order.status != OrderStatus.PENDING_PAYMENT:
                    return Text("order_detail", order_data(order))
                if action == "pay":
                    return pay_card(ctx, order)
                if (ask := _NOT_YET.get((action, order.status))) is not None:
                    waiting = await group_buys.waiting_for_group(session, order_ids=[order.id])
                    return _about(ctx, order, ask, waiting)
            if action == "cancel_order":
                cancelled = await order_actions.cancel_order(
                    session, order_id=order_id, by=CancelledBy.CUSTOMER, customer_id=customer_id, now=utcnow()
                )
                order = cancelled.order
                assert cancelled.notice is not None  # the customer's own cancel: their reply
                reply: Reply = Text(cancelled.notice.template, cancelled.notice.data)
            elif action == "received":
                order = await order_actions.confirm_receipt(
                    session, order_id=order_id, customer_id=customer_id, now=utcnow()
                )
                reply = Text("order_received", order_data(order))
            else:
                assert request is not None  # the caller sends no other action without one
                word, reason = request
                kind = AfterSalesKind.RETURN if word in ("退货", "return") else AfterSalesKind.REFUND
                filed = await order_status.request_after_sales(
                    session, order_id=order_id, customer_id=customer_id, kind=kind, reason=reason,
                    rules=ctx.services.rules,
                )
                order = await orders.get_order(session, order_id=order_id, customer_id=customer_id)
                waiting = await group_buys.waiting_for_group(session, order_ids=[order.id])
                data = {**order_data(order), **_group_wait(waiting, order.id), "kind": str(kind), "reason": reason}
                reply = Text("after_sales_requested", data)
                # --- staff alerts: a new after-sales request, committed with it ---
                await ctx.services.alerts.after_sales(
                    session, order, request_id=filed.id, kind=str(kind), reason=reason
                )
        if action == "cancel_order":
            await ctx.services.payments.close(order_no=order.order_no)
        return reply

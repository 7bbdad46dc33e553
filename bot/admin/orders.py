"""Order commands: list by status, one order, ship, refund (confirmed), cancel (confirmed).

Orders are named by order number ("SF2026..."), the end of it ("34103120", 6 digits or
more), or id (`commerce.orders.queries.find_order`). Amounts are typed in yuan
("12.5") and become integer fen through `commerce.money`. The customer hears about what
staff did from the core action (`commerce.orders.actions`), sent after the unit of work commits; a refund's
"money is back" message comes later from the payment service, when the provider
confirms it.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from zoneinfo import ZoneInfo

from bot.admin.days import Days, parse_days
from bot.admin.registry import (
    ALL_ARGS,
    ALL_ROLES,
    MANAGERS,
    REGISTRY,
    AdminContext,
    Outcome,
    UsageError,
    fold_width,
    split_commas,
)
from bot.chat.replies import Text
from bot.dialogs.common import error_reply, unit_of_work
from bot.outbound.alerts import openid_tail
from bot.web.shipping import ship_page_url
from commerce import money
from commerce.errors import ErrorCode, ShopError
from commerce.groupbuys import groups as group_buys
from commerce.orders import actions as order_actions
from commerce.orders import after_sales, carriers
from commerce.orders import queries as order_admin
from commerce.orders.actions import CancelledBy, ShipLine, ShipResult
from commerce.orders.models import OrderStatus
from commerce.orders.views import OrderView, order_data
from commerce.payments import actions as payment_actions
from commerce.reports.stats import local_day_bounds
from commerce.rules import utcnow

log = logging.getLogger(__name__)

PAGE_SIZE = 10
MAX_PAGE = 1000
REFUND_REASON = "商家退款"
S = OrderStatus
STATUS_WORDS: dict[str, OrderStatus | None] = {
    "全部": None, "all": None,
    "待支付": S.PENDING_PAYMENT, "待付款": S.PENDING_PAYMENT, "pending": S.PENDING_PAYMENT,
    "pending_payment": S.PENDING_PAYMENT, "unpaid": S.PENDING_PAYMENT,
    "已支付": S.PAID, "已付款": S.PAID, "待发货": S.PAID, "paid": S.PAID,
    "已发货": S.SHIPPED, "待收货": S.SHIPPED, "shipped": S.SHIPPED,
    "已完成": S.COMPLETED, "completed": S.COMPLETED,
    "已取消": S.CANCELLED, "cancelled": S.CANCELLED, "canceled": S.CANCELLED,
    "退款中": S.REFUNDING, "refunding": S.REFUNDING,
    "已退款": S.REFUNDED, "refunded": S.REFUNDED,
}
PAID_STATUSES = frozenset({S.PAID, S.SHIPPED, S.COMPLETED, S.REFUNDING})
_ORDER_REF = re.compile(r"^[A-Za-z0-9]{1,32}$")
_ORDER_NO_LIKE = re.compile(r"^#?(?:[A-Za-z]{2})?\d+$")  # an order number, its digits, or an id
UPLOAD_WORDS = frozenset({"批量", "上传", "upload", "bulk", "page", "csv"})
AMOUNT_MAX_FEN = 999_999_999_99  # nine digits of yuan


# ---- arguments ---------------------------------------------------------------------------


def order_ref(word: str) -> str:
    word = word.strip().lstrip("#")
    if not _ORDER_REF.match(word):
        raise UsageError
    return word


def parse_amount(word: str) -> int:
    """Yuan as typed ("12.5", "¥12.50", "12元") to integer fen, exactly; more than 0."""
    try:
        fen = money.parse_yuan(word, max_fen=AMOUNT_MAX_FEN)
    except money.MoneyError:
        raise UsageError from None
    if fen <= 0:
        raise UsageError
    return fen


def staff_actor(actx: AdminContext) -> str:
    """Who did it, as order events and refunds remember it."""
    return f"staff:{actx.actor}"


# ---- view data ------------------------------------------------------------------------------


def _who(actor: str) -> dict[str, str]:
    if actor in ("customer", "system"):
        return {"actor": actor, "who": ""}
    kind, _, rest = actor.partition(":")
    if kind == "staff":
        return {"actor": "staff", "who": openid_tail(rest)}
    if kind == "provider":
        return {"actor": "provider", "who": rest}
    return {"actor": "other", "who": actor[:20]}


def group_wait(waiting: dict[int, tuple[int, int]], order_id: int) -> dict[str, Any]:
    """A paid seat of a group not filled yet reads "待成团 (2/3)": it cannot ship yet."""
    joined, size = waiting.get(order_id, (0, 0))
    return {"group_wait": order_id in waiting, "group_joined": joined, "group_size": size}


def order_row(order: OrderView) -> dict[str, Any]:
    """An order in a staff list: the order's template data and who, at a glance."""
    return {
        **order_data(order),
        "first_item": order.lines[0].name if order.lines else "",
        "item_count": order.item_count,
        "line_count": len(order.lines),
        "customer": openid_tail(order.openid),
    }


def order_detail(order: OrderView) -> dict[str, Any]:
    return {
        **order_data(order),
        "customer": openid_tail(order.openid),
        "note": order.note,
        "events": [
            {"from": e.from_status or "", "to": e.to_status, "note": e.note, "when": e.created_at, **_who(e.actor)}
            for e in order.events
        ],
    }


def _state(order: OrderView) -> dict[str, Any]:
    """What the audit log keeps of an order before and after a staff action."""
    return {
        "order_no": order.order_no,
        "status": str(order.status),
        "paid_fen": order.paid_fen,
        "refunded_fen": order.refunded_fen,
        "carrier": order.carrier,
        "tracking_no": order.tracking_no,
    }


async def _find(actx: AdminContext, ref: str) -> OrderView:
    async with unit_of_work(actx.ctx) as session:
        return await order_admin.find_order(session, ref=ref)


# ---- commands ---------------------------------------------------------------------------------


@REGISTRY.command("orders", "订单", roles=ALL_ROLES, group="orders", commas=ALL_ARGS)
async def list_orders(actx: AdminContext) -> Outcome:
    """/orders [days] [status] [page], in any order: newest first, PAGE_SIZE a page; days
    (今天, 昨天, 本周, 上月, 12-01… as /stats reads them: `bot.admin.days`) keep the orders
    placed then, cut at the shop's midnight."""
    if len(actx.args) > 3:
        raise UsageError
    status: OrderStatus | None = None
    tz = ZoneInfo(actx.services.config.shop.timezone)
    days: Days | None = None
    said_days = ""
    page, seen_status, seen_page = 1, False, False
    for word in actx.args:
        if word.isascii() and word.isdigit() and int(word) <= MAX_PAGE and not seen_page:
            page, seen_page = int(word), True
        elif word.lower() in STATUS_WORDS and not seen_status:
            status, seen_status = STATUS_WORDS[word.lower()], True
        elif days is None and (days := parse_days(word, today=utcnow().astimezone(tz).date())) is not None:
            said_days = word
        else:
            raise UsageError
    if not 1 <= page <= MAX_PAGE:
        raise UsageError
    async with unit_of_work(actx.ctx) as session:
        found, total = await order_admin.list_orders_by_status(
            session,
            statuses=[status] if status is not None else None,
            placed=local_day_bounds(days.first, days.last, tz) if days is not None else None,
            limit=PAGE_SIZE,
            offset=(page - 1) * PAGE_SIZE,
        )
        waiting = await group_buys.waiting_for_group(session, order_ids=[o.id for o in found])
    pages = max(1, -(-total // PAGE_SIZE))
    data = {
        "status": str(status) if status is not None else "",
        "day": days.span if days is not None else "",  # today, this_week…, or "day" for a date typed
        "said_days": said_days,  # as typed: the next page's command repeats it
        "orders": [order_row(o) | group_wait(waiting, o.id) for o in found],
        "page": page,
        "pages": pages,
        "total": total,
    }
    return Outcome(Text("admin/orders", data))


@REGISTRY.command("order", "查单", roles=ALL_ROLES, group="orders", commas=ALL_ARGS)
async def show_order(actx: AdminContext) -> Outcome:
    """/order NO: lines, amounts, address, and who did what when; a group seat's progress."""
    if len(actx.args) != 1:
        raise UsageError
    async with unit_of_work(actx.ctx) as session:
        order = await order_admin.find_order(session, ref=order_ref(actx.arg(0)))
        waiting = await group_buys.waiting_for_group(session, order_ids=[order.id])
        requests = after_sales.decisions_data(await after_sales.of_order(session, order_id=order.id))
    data = order_detail(order) | group_wait(waiting, order.id) | {"after_sales": requests}
    return Outcome(Text("admin/order", data))


def message_rows(text: str, *, commas: int) -> list[list[str]]:
    """The words of each line of a `/ship` message, the command word left out: spaces,
    and `，`/`、` for a command that takes them (`split_commas`), separate them."""
    first, _, tail = text.strip().partition("\n")
    rows = [first.split()[1:], *(line.split() for line in tail.splitlines())]
    return [split_commas([fold_width(word) for word in words], leading=commas) for words in rows]


def ship_lines(rows: list[list[str]]) -> list[ShipLine]:
    """The orders the rows of a `/ship` message name (`message_rows`), one per line or after
    one carrier:

        /ship NO CARRIER TRACKING            one order
        /ship                                several, a line each
        NO CARRIER TRACKING
        NO CARRIER TRACKING
        /ship 顺丰 NO TRACKING NO TRACKING    one carrier for several (also: a line with
                                             the carrier alone, then lines of NO TRACKING)
    """
    lines: list[ShipLine] = []
    carrier = ""
    for number, words in enumerate(rows, 1):
        if not words:
            continue
        if len(words) == 1:
            carrier = words[0]  # the carrier of the lines that follow
        elif len(words) == 2 and carrier:
            lines.append(ShipLine(order_ref(words[0]), carrier, words[1], number))
        elif len(words) == 3 and not (carriers.find(words[0]) and not carriers.find(words[1])):
            lines.append(ShipLine(order_ref(words[0]), words[1], words[2], number))
        elif len(words) % 2 == 1 and not _ORDER_NO_LIKE.match(words[0]):
            carrier = words[0]
            lines += [ShipLine(order_ref(no), carrier, tracking, number)
                      for no, tracking in zip(words[1::2], words[2::2], strict=True)]
        else:
            raise UsageError
    if not lines or len(lines) > order_actions.MAX_SHIP_LINES:
        raise UsageError
    return lines


def tracking_missing(rows: list[list[str]]) -> tuple[str, str] | None:
    """(the order, the carrier) of `/ship NO 圆通`: one order and a carrier, the tracking
    number left out; None for anything else."""
    words = [row for row in rows if row]
    if len(words) != 1 or len(words[0]) != 2:
        return None
    ref, carrier = words[0]
    if _ORDER_NO_LIKE.match(ref) and not _ORDER_NO_LIKE.match(carrier):
        return ref, carrier
    return None


def _shipped_line(result: ShipResult) -> dict[str, Any]:
    line = {"line_no": result.line.line_no, "ref": result.line.ref}
    if result.order is not None:
        return line | {"order_no": result.order.order_no, "carrier": result.order.carrier,
                       "tracking_no": result.order.tracking_no}
    assert result.error is not None
    return line | {"error": error_reply(result.error).data}


@REGISTRY.command("ship", "发货", roles=ALL_ROLES, group="orders", confirm=True, commas=ALL_ARGS)
async def ship(actx: AdminContext) -> Outcome:
    """/ship NO CARRIER TRACKING, or several orders (`ship_lines`): paid -> shipped, each
    customer told. One shipped order with another carrier or tracking number: a
    correction, restated and confirmed first (`_correct`). /ship 批量 (upload): the link
    to the bulk ship page (`bot.web.shipping`)."""
    if len(actx.args) == 1 and actx.arg(0).lower() in UPLOAD_WORDS:
        url, expires_at = ship_page_url(actx.services.config, openid=actx.actor)
        return Outcome(Text("admin/ship_link", {"url": url, "expires_at": expires_at}), None,
                       {"page": "ship", "expires_at": expires_at})
    # confirmed, only a correction runs again: one order, its words kept as the arguments
    rows = [actx.args] if actx.confirmed else message_rows(actx.ctx.msg.text, commas=actx.command.commas)
    if (missing := tracking_missing(rows)) is not None:
        return await _tracking_missing(actx, *missing)
    lines = ship_lines(rows)
    if len(lines) == 1:
        return await _ship_one(actx, lines[0])
    async with unit_of_work(actx.ctx) as session:
        results = await order_actions.ship_orders(session, lines=lines, actor=staff_actor(actx), now=utcnow())
    shipped = [_shipped_line(r) for r in results if r.shipped]
    refused = [_shipped_line(r) for r in results if not r.shipped]
    after = {"shipped": [s["order_no"] for s in shipped],
             "refused": [{"ref": r["ref"], "code": r["error"]["code"]} for r in refused]}
    return Outcome(Text("admin/shipped_batch", {"shipped": shipped, "refused": refused}), None, after,
                   outcome="ok" if shipped else "failed")


async def _tracking_missing(actx: AdminContext, ref: str, carrier: str) -> Outcome:
    """`/ship NO 圆通`: the tracking number is missing; the command to type for that order
    (an order that is not there, or cannot ship, says so instead)."""
    order = await _find(actx, order_ref(ref))
    if order.status not in (S.PAID, S.SHIPPED):
        raise ShopError(ErrorCode.ILLEGAL_TRANSITION, order_id=order.id, **{"from": str(order.status)},
                        to=str(S.SHIPPED))
    data = {"order_no": order.order_no, "carrier": carrier, "status": str(order.status),
            "before_carrier": order.carrier, "before_tracking_no": order.tracking_no}
    return Outcome(Text("admin/ship_tracking_missing", data), outcome="failed", after={"error": "tracking_missing"})


async def _ship_one(actx: AdminContext, line: ShipLine) -> Outcome:
    try:
        order_actions.check_shipment(line.carrier, line.tracking_no)
    except ShopError:
        raise UsageError from None
    async with unit_of_work(actx.ctx) as session:
        before = await order_admin.find_order(session, ref=line.ref)
    if before.status == S.SHIPPED:
        return await _correct(actx, before, line)
    async with unit_of_work(actx.ctx) as session:
        (result,) = await order_actions.ship_orders(session, lines=[line], actor=staff_actor(actx), now=utcnow())
        if result.error is not None:
            raise result.error
        assert result.order is not None
        after = result.order
    reply = Text("admin/shipped", {"order_no": after.order_no, "carrier": after.carrier,
                                   "tracking_no": after.tracking_no, "told": True})  # queued with the move
    return Outcome(reply, _state(before), _state(after))


async def _correct(actx: AdminContext, order: OrderView, line: ShipLine) -> Outcome:
    """/ship on a shipped order: the same carrier and number say so and change nothing;
    others restate the correction, and once confirmed replace the order's tracking and
    tell the customer (`order_actions.correct_shipment`)."""
    data = {"order_no": order.order_no, "before_carrier": order.carrier, "before_tracking_no": order.tracking_no,
            "carrier": line.carrier, "tracking_no": line.tracking_no}
    if order_actions.same_shipment(line.carrier, line.tracking_no, as_kept=(order.carrier, order.tracking_no)):
        return Outcome(Text("admin/ship_unchanged", data), _state(order), _state(order))
    if not actx.confirmed:
        return Outcome(Text("admin/ship_correct_confirm", data), confirm_first=True)
    async with unit_of_work(actx.ctx) as session:
        corrected = await order_actions.correct_shipment(
            session, order_id=order.id, carrier=line.carrier, tracking_no=line.tracking_no,
            actor=staff_actor(actx), now=utcnow(),
        )
    before = _state(order) | {"carrier": corrected.carrier, "tracking_no": corrected.tracking_no}
    data |= {"before_carrier": corrected.carrier, "before_tracking_no": corrected.tracking_no}
    if not corrected.changed:  # someone corrected it to these meanwhile
        return Outcome(Text("admin/ship_unchanged", data), before, before)
    after = corrected.order
    reply = Text("admin/ship_corrected", data | {"carrier": after.carrier, "tracking_no": after.tracking_no,
                                                 "told": True})  # queued with the change
    return Outcome(reply, before, _state(after))


@REGISTRY.command("refund", "退款", roles=MANAGERS, group="orders", confirm=True, commas=ALL_ARGS)
async def refund(actx: AdminContext) -> Outcome:
    """/refund NO [AMOUNT]: all that is left, or AMOUNT yuan; restated, then confirmed."""
    if not 1 <= len(actx.args) <= 2:
        raise UsageError
    ref = order_ref(actx.arg(0))
    amount = parse_amount(actx.arg(1)) if len(actx.args) == 2 else None
    async with unit_of_work(actx.ctx) as session:
        order = await order_admin.find_order(session, ref=ref)
        plan = await payment_actions.plan_refund(session, order=order, amount_fen=amount)
    refundable, amount_fen = plan.refundable_fen, plan.amount_fen
    if not actx.confirmed:
        data = {**order_row(order), "amount": amount_fen, "refundable": refundable,
                "left": plan.left_fen, "full": plan.full}
        return Outcome(Text("admin/refund_confirm", data), confirm_first=True)
    started = await actx.services.payments.refund(
        order_id=order.id, amount_fen=amount_fen, reason=REFUND_REASON, actor=staff_actor(actx)
    )
    failed = str(started.status) == "failed"
    reply = Text("admin/refund_started", {"order_no": order.order_no, "amount": amount_fen,
                                          "refund_no": started.refund_no, "failed": failed,
                                          "left": refundable - amount_fen})
    after = {"refund_no": started.refund_no, "amount_fen": amount_fen, "refund_status": str(started.status),
             "refundable_fen": refundable - amount_fen}
    return Outcome(reply, _state(order) | {"refundable_fen": refundable}, after,
                   outcome="failed" if failed else "ok")


@REGISTRY.command("cancel", "取消订单", roles=MANAGERS, group="orders", confirm=True, commas=ALL_ARGS)
async def cancel(actx: AdminContext) -> Outcome:
    """/cancel NO: an unpaid order is cancelled, its stock released, the customer told.
    A paid order is refused: its money goes back with /refund."""
    if len(actx.args) != 1:
        raise UsageError
    order = await _find(actx, order_ref(actx.arg(0)))
    if order.status in PAID_STATUSES:
        return _cancel_refused(order)
    if order.status != S.PENDING_PAYMENT:
        raise ShopError(ErrorCode.ILLEGAL_TRANSITION, order_id=order.id, **{"from": str(order.status)},
                        to=str(S.CANCELLED))
    if not actx.confirmed:
        return Outcome(Text("admin/cancel_confirm", order_row(order) | {"items": order_data(order)["items"]}),
                       confirm_first=True)
    try:
        async with unit_of_work(actx.ctx) as session:
            cancelled = await order_actions.cancel_order(
                session, order_id=order.id, by=CancelledBy.SHOP, actor=staff_actor(actx), now=utcnow()
            )
    except ShopError as exc:
        if exc.code == ErrorCode.ILLEGAL_TRANSITION and exc.details.get("from") in {str(s) for s in PAID_STATUSES}:
            return _cancel_refused(await _find(actx, order.order_no))  # paid meanwhile
        raise
    after = cancelled.order
    await actx.services.payments.close(order_no=after.order_no)
    told = cancelled.notice is not None  # queued in the cancel's own unit of work
    return Outcome(Text("admin/cancelled", {"order_no": after.order_no, "told": told}), _state(order), _state(after))


def _cancel_refused(order: OrderView) -> Outcome:
    data = {"order_no": order.order_no, "status": str(order.status)}
    return Outcome(Text("admin/cancel_refused", data), _state(order), {"error": "paid_use_refund"}, outcome="failed")

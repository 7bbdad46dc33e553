"""After-sales commands: the open requests, approve (confirmed, refunds), reject with a reason.

Approving refunds what is still refundable on the order through the payment service
(start the refund, commit, ask the provider outside the transaction); the customer is
told at once that the request was approved, and again by the payment service when the
provider confirms the money went back.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from bot.admin.orders import staff_actor
from bot.admin.registry import (
    ALL_ARGS,
    ALL_ROLES,
    MANAGERS,
    REGISTRY,
    AdminContext,
    Outcome,
    UsageError,
)
from bot.chat.replies import Text
from bot.dialogs.common import error_reply, unit_of_work
from bot.outbound.alerts import openid_tail
from commerce.errors import ErrorCode, ShopError
from commerce.orders import actions as order_actions
from commerce.orders import after_sales
from commerce.orders import queries as order_admin
from commerce.orders.models import AfterSalesStatus
from commerce.rules import utcnow

log = logging.getLogger(__name__)

LIST_SIZE = 20
ORDER_NO_LIKE = re.compile(r"^(?:[A-Z]{2})?\d{16}$")  # an order number or its 16 digits, not a request id
REFUND_REASON = "售后退款"


def request_id(word: str) -> int:
    word = word.strip().lstrip("#")
    if not (word.isascii() and word.isdigit()) or not 0 < int(word) < 2**31:
        raise UsageError
    return int(word)


async def request_named(actx: AdminContext, word: str) -> int:
    """The request staff named: its id ("3", "#3"), or the order number the new-request
    alert shows ("SF2026…", its 16 digits, or the end of it: ORDER_TAIL_MIN digits or
    more that end an order's number; digits that end none are a request id): that
    order's open request. REQUEST_NOT_FOUND (details: order_no) when the order has none
    open; ORDER_AMBIGUOUS when the end fits several orders."""
    typed = word.strip().lstrip("#").upper()
    if not ORDER_NO_LIKE.match(typed) and not (typed.isascii() and typed.isdigit() and len(typed) >= order_admin.ORDER_TAIL_MIN):
        return request_id(word)
    async with unit_of_work(actx.ctx) as session:
        try:
            order = await order_admin.find_order(session, ref=word, by_id=False)
        except ShopError as exc:
            if exc.code == ErrorCode.ORDER_NOT_FOUND and not ORDER_NO_LIKE.match(typed):
                return request_id(word)  # no order ends so: a request's id
            raise
        requests = await after_sales.of_order(session, order_id=order.id)
    open_ = [r.id for r in requests if r.status == AfterSalesStatus.OPEN]
    if not open_:
        raise ShopError(ErrorCode.REQUEST_NOT_FOUND, order_no=order.order_no)
    return open_[-1]


def request_data(view: Any) -> dict[str, Any]:
    return {
        "id": view.id,
        "order_no": view.order_no,
        "kind": str(view.kind),
        "reason": view.reason,
        "status": str(view.status),
        "created_at": view.created_at,
        "refundable": view.refundable_fen,
        "customer": openid_tail(view.openid),
    }


def _state(view: Any) -> dict[str, Any]:
    return {"request_id": view.id, "order_no": view.order_no, "status": str(view.status)}


@REGISTRY.command("aftersales", "售后", roles=ALL_ROLES, group="after_sales")
async def list_requests(actx: AdminContext) -> Outcome:
    """/aftersales: the open requests, oldest first as the core returns them."""
    if actx.args:
        raise UsageError
    async with unit_of_work(actx.ctx) as session:
        found = await after_sales.list_open(session, limit=LIST_SIZE)
    return Outcome(Text("admin/after_sales", {"requests": [request_data(r) for r in found]}))


@REGISTRY.command("approve", "同意", roles=MANAGERS, group="after_sales", confirm=True, commas=ALL_ARGS)
async def approve(actx: AdminContext) -> Outcome:
    """/approve ID (or the order's number): restated with the amount, then approved and the
    refundable amount refunded.
    A seat of a group that has not filled is refused (GROUP_NOT_FILLED, action "after_sales")
    before the confirmation and again at it: the request stays open, the customer untold."""
    if len(actx.args) != 1:
        raise UsageError
    rid = await request_named(actx, actx.arg(0))
    if not actx.confirmed:  # refused now, before the confirmation, when it could not refund
        async with unit_of_work(actx.ctx) as session:
            view = await order_actions.check_after_sales_approvable(session, request_id=rid)
        return Outcome(Text("admin/approve_confirm", request_data(view)), confirm_first=True)
    async with unit_of_work(actx.ctx) as session:
        view, (before, after) = await order_actions.approve_after_sales(
            session, request_id=rid, actor=staff_actor(actx), now=utcnow()
        )
        refundable = view.refundable_fen
    refund_no, refund_error, provider_refused = "", None, False
    if refundable > 0:
        try:
            started = await actx.services.payments.refund(
                order_id=view.order_id, amount_fen=refundable, reason=REFUND_REASON, actor=staff_actor(actx)
            )
        except ShopError as exc:  # approved (committed), but the money could not be sent back
            log.warning("after-sales refund refused: request=%s code=%s", rid, exc.code)
            refund_error = error_reply(exc).data
        else:
            refund_no, provider_refused = started.refund_no, str(started.status) == "failed"
    refunded = refundable if refund_no and not provider_refused else 0
    async with unit_of_work(actx.ctx) as session:
        order_actions.tell_after_sales_approved(session, view=view, refunded_fen=refunded)
    told = True
    data = {**request_data(view), "refund": refunded, "refund_no": refund_no, "told": told,
            "refund_error": refund_error, "provider_refused": provider_refused}
    # the approval stands either way ("ok"); the audit keeps what became of the money
    audit_after = (after or {}) | {"refund_no": refund_no, "refund_fen": refunded}
    if refund_error is not None or provider_refused:
        audit_after["refund_problem"] = refund_error["code"] if refund_error else "provider_refused"
    return Outcome(Text("admin/approved", data), before, audit_after)


@REGISTRY.command("reject", "拒绝", roles=ALL_ROLES, group="after_sales", commas=1)
async def reject(actx: AdminContext) -> Outcome:
    """/reject ID REASON (or the order number): the request is closed and the customer told why."""
    reason = actx.rest(1).strip()
    rid = await request_named(actx, actx.arg(0))
    async with unit_of_work(actx.ctx) as session:
        view, (before, after) = await order_actions.reject_after_sales(
            session, request_id=rid, reason=reason, actor=staff_actor(actx), now=utcnow()
        )
    told = True  # queued with the decision
    return Outcome(Text("admin/rejected", {**request_data(view), "resolution": reason, "told": told}), before, after)

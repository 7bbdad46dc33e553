"""The order use cases, each once: the chat dialog, the staff commands and the scheduler
jobs call these and none re-implements them. Handlers parse, call, render.

Cancelling an unpaid order, whoever does it (the customer in the chat, staff with
`/cancel`, the clock when its time is up, a group buy that ended), has the same effects,
all in the caller's transaction:

- the move pending_payment -> cancelled (`commerce.orders.status.move`): of racing
  cancels, expiries and payments exactly one wins;
- the stock goes back, once, and the catalog snapshot hears it (`CatalogChanged`);
- the coupon is freed, the points spent come back (an `OrderMoved` subscriber);
- the customer is told with the template that fits who cancelled (`CANCEL_NOTICES`):
  queued with `commerce.messaging.notices`, except when the customer cancelled in
  the chat (the notice is their reply) or a group ended (the group tells its members);
- an audit entry for staff (`order_cancel`: who, which order, before and after).

Nothing here commits: the caller owns the unit of work and sends what was queued after it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.errors import ErrorCode, ShopError
from commerce.messaging import notices
from commerce.messaging.notifications import Notification
from commerce.orders.models import Order, OrderStatus
from commerce.orders.rows import current_status
from commerce.orders.status import illegal_move, move, release_orders_stock
from commerce.orders.views import OrderView, load_view, order_data
from commerce.rules import as_utc
from commerce.staff import audit

S = OrderStatus


class CancelledBy(enum.StrEnum):
    CUSTOMER = "customer"
    SHOP = "shop"
    TIMEOUT = "timeout"
    GROUP = "group"  # the group buy the order is a seat of failed or was closed


# the message each kind of cancel sends the customer; None: someone else tells them
CANCEL_NOTICES: dict[CancelledBy, str | None] = {
    CancelledBy.CUSTOMER: "order_cancelled",
    CancelledBy.SHOP: "order_cancelled_by_shop",
    CancelledBy.TIMEOUT: "order_expired",
    CancelledBy.GROUP: None,
}
_ACTORS = {CancelledBy.CUSTOMER: "customer", CancelledBy.TIMEOUT: "system", CancelledBy.GROUP: "system"}
_NOTES = {CancelledBy.SHOP: "shop", CancelledBy.TIMEOUT: "expired"}


@dataclass(frozen=True, slots=True)
class Cancellation:
    order: OrderView
    # what the customer hears; queued already unless they cancelled in the chat (reply with it)
    notice: Notification | None


async def _owned(session: AsyncSession, *, order_id: int, customer_id: int | None) -> None:
    owner = await session.scalar(select(Order.customer_id).where(Order.id == order_id))
    if owner is None or (customer_id is not None and owner != customer_id):
        raise ShopError(ErrorCode.ORDER_NOT_FOUND, order_id=order_id)


def _actor(by: CancelledBy, actor: str | None) -> str:
    if actor:
        return actor
    if by == CancelledBy.SHOP:
        raise ValueError("a cancel by the shop names the staff member: actor='staff:<openid>'")
    return _ACTORS[by]


async def _cancelled(session: AsyncSession, *, order_id: int, by: CancelledBy, actor: str, now: datetime) -> Cancellation:
    """What follows a won move to cancelled, the same for every kind of cancel."""
    order = await load_view(session, order_id)
    template = CANCEL_NOTICES[by]
    notice = None
    if template is not None:
        notice = Notification(order.openid, template, order_data(order))
        if by != CancelledBy.CUSTOMER:
            notices.queue(session, openid=notice.openid, template=notice.template, data=notice.data)
    await audit.record(
        session,
        actor=actor,
        role="",
        command="order_cancel",
        args={"order_no": order.order_no, "by": by.value},
        outcome="ok",
        before={"order_no": order.order_no, "status": S.PENDING_PAYMENT.value},
        after={"order_no": order.order_no, "status": order.status.value},
        now=now,
    )
    return Cancellation(order, notice)


async def cancel_order(
    session: AsyncSession,
    *,
    order_id: int,
    by: CancelledBy,
    now: datetime,
    actor: str | None = None,
    customer_id: int | None = None,
    note: str | None = None,
) -> Cancellation:
    """Cancel an unpaid order (see the module's docstring for every effect).

    `customer_id`: the order must be theirs (ORDER_NOT_FOUND otherwise). `actor`: who, as
    the order's history and the audit keep it ("staff:<openid>" for the shop; the
    customer and the clock have defaults). ILLEGAL_TRANSITION (details: from, to) when
    the order is no longer pending, including when a concurrent cancel, expiry or
    payment got there first.
    """
    now, by = as_utc(now), CancelledBy(by)
    who = _actor(by, actor)
    await _owned(session, order_id=order_id, customer_id=customer_id)
    current = await current_status(session, order_id)
    if current != S.PENDING_PAYMENT:
        raise illegal_move(order_id, current, S.CANCELLED)
    cancelled = await cancel_if_unpaid(session, order_id=order_id, by=by, now=now, actor=who, note=note)
    if cancelled is None:
        raise illegal_move(order_id, await current_status(session, order_id), S.CANCELLED)
    return cancelled


async def cancel_if_unpaid(
    session: AsyncSession,
    *,
    order_id: int,
    by: CancelledBy,
    now: datetime,
    actor: str | None = None,
    note: str | None = None,
    release_stock: bool = True,
) -> Cancellation | None:
    """`cancel_order` for callers that find the orders themselves (the clock, an ended
    group): None, and nothing done, when the order is no longer pending.

    `release_stock=False`: the caller gives back the stock of its whole batch in one
    ascending pass (`release_orders_stock`), as `expire_due_orders` does."""
    now, by = as_utc(now), CancelledBy(by)
    who = _actor(by, actor)
    moved = await move(
        session,
        order_id=order_id,
        frm=S.PENDING_PAYMENT,
        to=S.CANCELLED,
        actor=who,
        note=_NOTES.get(by, "") if note is None else note,
        now=now,
        release_stock=release_stock,
    )
    if not moved:
        return None
    return await _cancelled(session, order_id=order_id, by=by, actor=who, now=now)


async def expire_due_orders(session: AsyncSession, *, now: datetime, limit: int = 200) -> list[OrderView]:
    """Cancel the unpaid orders whose time is up (`CancelledBy.TIMEOUT`), as `cancel_order` does.

    Returns the ones this call expired, oldest first; safe to run twice and on several
    workers. At most `limit` a call: call again while it returns `limit`. The stock of
    the batch goes back in one ascending pass over the variants, so that a batch never
    locks variant rows out of order (a deadlock with a checkout on PostgreSQL)."""
    now = as_utc(now)
    due = (
        await session.scalars(
            select(Order.id)
            .where(Order.status == S.PENDING_PAYMENT.value, Order.expires_at <= now)
            .order_by(Order.expires_at, Order.id)
            .limit(limit)
        )
    ).all()
    expired = []
    for order_id in due:
        cancelled = await cancel_if_unpaid(
            session, order_id=order_id, by=CancelledBy.TIMEOUT, now=now, release_stock=False
        )
        if cancelled is not None:
            expired.append(cancelled.order)
    await release_orders_stock(session, [order.id for order in expired])
    return expired

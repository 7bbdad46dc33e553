"""The order status machine, the customer and staff moves on it, and the clock.

Every move is one conditional UPDATE ... WHERE status = :from, so of two racing moves
exactly one wins, and each move writes an OrderEvent:

```mermaid
stateDiagram-v2
    [*] --> pending_payment: place_order
    pending_payment --> paid: record_payment
    pending_payment --> cancelled: actions.cancel_order / actions.expire_due_orders (stock released)
    paid --> shipped: actions.ship_order
    shipped --> completed: actions.confirm_receipt / actions.complete_due_orders
    paid --> refunding: start_refund (the rest of the money)
    shipped --> refunding
    completed --> refunding
    refunding --> refunded: record_refund_result (success)
    refunding --> paid: record_refund_result (failure, back where it was)
    refunding --> shipped
    refunding --> completed
```

Side effects belong to the move, so they happen once, done by whoever wins it:
entering `cancelled` releases the stock and frees the coupon; entering `refunded`
releases the stock when the order never shipped (the goods never left). A partial
refund keeps the status and grows `refunded_fen`.

`place_order` lives in `commerce.orders.placement`, cancelling (by anyone, and the expiry
of unpaid orders) in `commerce.orders.actions`, `record_payment` in `commerce.payments.records`,
the refund moves in `commerce.payments.refunds`; all of them move through `move` here. The clock
(`orders_to_remind`) is called by a scheduler job. Shipping and receipt, by hand or by the
clock, are in `commerce.orders.actions` too. Nothing here commits: the caller owns the unit of work.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.catalog import inventory
from commerce.db import rowcount
from commerce.errors import ErrorCode, ShopError
from commerce.events import OrderMoved, publish
from commerce.orders.models import (
    AfterSalesKind,
    AfterSalesRequest,
    AfterSalesStatus,
    Order,
    OrderEvent,
    OrderLine,
    OrderStatus,
)
from commerce.orders.rows import current_status, lock_order
from commerce.orders.transitions import ALLOWED as ALLOWED
from commerce.orders.transitions import after_sales_permitted, can_move, stamp_of
from commerce.orders.views import OrderView, load_view, load_views
from commerce.promotions.models import CustomerCoupon, CustomerCouponStatus
from commerce.rules import ShopRules, as_utc, maybe_utc, utcnow

S = OrderStatus
AFTER_SALES_REASON = (2, 300)


async def _owned_order_id(session: AsyncSession, *, order_id: int, customer_id: int | None) -> int:
    owner = await session.scalar(select(Order.customer_id).where(Order.id == order_id))
    if owner is None or (customer_id is not None and owner != customer_id):
        raise ShopError(ErrorCode.ORDER_NOT_FOUND, order_id=order_id)
    return order_id


def illegal_move(order_id: int, frm: OrderStatus | str, to: OrderStatus) -> ShopError:
    return ShopError(
        ErrorCode.ILLEGAL_TRANSITION, order_id=order_id, **{"from": str(frm), "to": str(to)}
    )


# ---- the status machine -------------------------------------------------------------


async def move(
    session: AsyncSession,
    *,
    order_id: int,
    frm: OrderStatus,
    to: OrderStatus,
    actor: str,
    note: str = "",
    now: datetime,
    values: dict[str, Any] | None = None,
    release_stock: bool = True,
) -> bool:
    """Move from `frm` to `to` if the order is still in `frm`; False when someone else moved it.

    `release_stock=False`: the caller releases the stock of a whole batch itself, in
    one ascending pass over the variants (`release_orders_stock`), so that a batch never
    locks variant rows out of order (a deadlock with a checkout on PostgreSQL)."""
    if not can_move(frm, to):
        raise illegal_move(order_id, frm, to)
    changes: dict[str, Any] = {"status": to.value}
    stamp = stamp_of(frm, to)
    if stamp is not None:
        changes[stamp] = now
    changes.update(values or {})
    result = await session.execute(
        update(Order)
        .where(Order.id == order_id, Order.status == frm.value)
        .values(**changes)
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) != 1:
        return False
    session.add(
        OrderEvent(
            order_id=order_id,
            from_status=frm.value,
            to_status=to.value,
            actor=actor[:80],
            note=note[:200],
            created_at=now,
        )
    )
    if to == S.CANCELLED:
        if release_stock:
            await release_orders_stock(session, [order_id])
        await _free_coupon(session, order_id)
    elif to == S.REFUNDED:
        shipped_at = await session.scalar(select(Order.shipped_at).where(Order.id == order_id))
        if shipped_at is None:  # refunded before shipping: the goods are still here
            await release_orders_stock(session, [order_id])
    await publish(session, OrderMoved(order_id=order_id, frm=frm, to=to, now=now))
    await session.flush()
    return True


async def release_orders_stock(session: AsyncSession, order_ids: Sequence[int]) -> None:
    """Give back the stock of these orders: one release per variant, ascending variant id."""
    if not order_ids:
        return
    rows = await session.execute(
        select(OrderLine.variant_id, func.sum(OrderLine.quantity))
        .where(OrderLine.order_id.in_(list(order_ids)))
        .group_by(OrderLine.variant_id)
        .order_by(OrderLine.variant_id)
    )
    released = rows.all()
    for variant_id, quantity in released:
        await inventory.release(session, variant_id=variant_id, quantity=int(quantity))


async def _free_coupon(session: AsyncSession, order_id: int) -> None:
    coupon_id = await session.scalar(select(Order.customer_coupon_id).where(Order.id == order_id))
    if coupon_id is not None:
        await session.execute(
            update(CustomerCoupon)
            .where(
                CustomerCoupon.id == coupon_id,
                CustomerCoupon.status == CustomerCouponStatus.USED.value,
            )
            .values(status=CustomerCouponStatus.AVAILABLE.value, used_at=None)
            .execution_options(synchronize_session=False)
        )


async def transition(
    session: AsyncSession,
    *,
    order_id: int,
    to: OrderStatus,
    actor: str,
    note: str = "",
    expect: OrderStatus | None = None,
    now: datetime | None = None,
) -> OrderView:
    """Move an order to `to`; ILLEGAL_TRANSITION (details: from, to) unless ALLOWED.

    `expect` names the status the caller saw; the move is refused if it has changed.
    Of two racing transitions exactly one wins; the loser gets ILLEGAL_TRANSITION.
    """
    now = as_utc(now or utcnow())
    to = OrderStatus(to)
    current = await current_status(session, order_id)
    if expect is not None and current != expect:
        raise illegal_move(order_id, current, to)
    if not await move(
        session, order_id=order_id, frm=current, to=to, actor=actor, note=note, now=now
    ):
        raise illegal_move(order_id, await current_status(session, order_id), to)
    return await load_view(session, order_id)


# ---- customer and staff actions --------------------------------------------------------


async def request_after_sales(
    session: AsyncSession,
    *,
    order_id: int,
    customer_id: int,
    kind: AfterSalesKind,
    reason: str,
    rules: ShopRules,
    now: datetime | None = None,
) -> AfterSalesRequest:
    """Ask for a refund or a return: on paid or shipped orders, and on completed ones
    within `rules.return_window`; one open request per order."""
    now = as_utc(now or utcnow())
    kind = AfterSalesKind(kind)
    reason = (reason or "").strip()
    low, high = AFTER_SALES_REASON
    if not low <= len(reason) <= high:
        raise ShopError(ErrorCode.REASON_INVALID, min_length=low, max_length=high)
    await _owned_order_id(session, order_id=order_id, customer_id=customer_id)
    order = await lock_order(session, order_id)
    status = OrderStatus(order.status)
    ok, why = after_sales_permitted(
        status, completed_at=maybe_utc(order.completed_at), now=now, return_window=rules.return_window
    )
    if not ok and why == "status":
        raise ShopError(ErrorCode.AFTER_SALES_NOT_ALLOWED, reason="status", status=status.value)
    if not ok:
        raise ShopError(
            ErrorCode.AFTER_SALES_NOT_ALLOWED, reason=why, days=rules.return_window.days
        )
    open_request = await session.scalar(
        select(AfterSalesRequest.id).where(
            AfterSalesRequest.order_id == order_id,
            AfterSalesRequest.status == AfterSalesStatus.OPEN.value,
        )
    )
    if open_request is not None:
        raise ShopError(
            ErrorCode.AFTER_SALES_NOT_ALLOWED, reason="open_request", request_id=open_request
        )
    request = AfterSalesRequest(
        order_id=order_id, customer_id=customer_id, kind=kind.value, reason=reason, created_at=now
    )
    session.add(request)
    await session.flush()
    return request


# ---- the clock (scheduler jobs) ---------------------------------------------------------


async def orders_to_remind(
    session: AsyncSession, *, now: datetime, rules: ShopRules, limit: int = 200
) -> list[OrderView]:
    """Unpaid orders expiring within `rules.remind_before`, each returned once (reminded_at is set)."""
    now = as_utc(now)
    candidates = (
        await session.scalars(
            select(Order.id)
            .where(
                Order.status == S.PENDING_PAYMENT.value,
                Order.reminded_at.is_(None),
                Order.expires_at > now,
                Order.expires_at <= now + rules.remind_before,
            )
            .order_by(Order.expires_at, Order.id)
            .limit(limit)
        )
    ).all()
    claimed = []
    for order_id in candidates:
        result = await session.execute(
            update(Order)
            .where(
                Order.id == order_id,
                Order.reminded_at.is_(None),
                Order.status == S.PENDING_PAYMENT.value,
            )
            .values(reminded_at=now)
            .execution_options(synchronize_session=False)
        )
        if rowcount(result) == 1:
            claimed.append(order_id)
    return await load_views(session, claimed)

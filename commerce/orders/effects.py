"""What else happens when an order moves: group seats, commission, points, badges.

The status machine (`commerce.order_status.move`) calls `after_move` once, inside the
transaction of the move, by whoever won it; `commerce.refunds` calls `after_refund` for
every successful (possibly partial) refund. Each capability keeps its own rules in its
own module; this module only says which of them hear about which move, so that the
status machine does not grow a branch per feature. Nothing here commits, and messages
to customers are queued with `commerce.notices` (sent after the commit).

Money: a refund reaches `after_refund` (with its amount) and, when it is the last of the
money, also `after_move(..., to=REFUNDED)`. Reverse amounts (commission, points) in
`after_refund` only; `after_move` is for states (a group seat, a member's status).

The capabilities import the order modules only inside their functions, so that this
module (imported by the status machine) can import them at the top.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.groupbuys import groups as group_buys
from commerce.loyalty import points
from commerce.messaging import outbox
from commerce.orders.models import Order, OrderStatus
from commerce.referrals import commission
from commerce.rules import session_rules

S = OrderStatus


async def after_move(
    session: AsyncSession, *, order_id: int, frm: OrderStatus, to: OrderStatus, now: datetime
) -> None:
    """Called by the status machine after a successful move of `order_id` from `frm` to `to`."""
    # A payment is pending -> paid; refunding -> paid is a failed refund going back, not money.
    paid = frm == S.PENDING_PAYMENT and to == S.PAID
    if paid:  # WeChat's customer-service window: a payment opens a larger one
        customer_id = await session.scalar(select(Order.customer_id).where(Order.id == order_id))
        if customer_id is not None:
            await outbox.note_payment(session, customer_id=customer_id, now=now)
    await group_buys.on_order_moved(session, order_id=order_id, frm=frm, to=to, now=now)
    if paid:
        await commission.earn_on_paid(session, order_id=order_id, now=now, rules=session_rules(session))
        await points.on_paid(session, order_id=order_id, now=now)
    elif to == S.CANCELLED:
        await points.on_cancelled(session, order_id=order_id, now=now)


async def after_refund(session: AsyncSession, *, order_id: int, amount_fen: int, now: datetime) -> None:
    """Called once per successful refund of `amount_fen` of `order_id` (after refunded_fen grew)."""
    await commission.reverse_on_refund(session, order_id=order_id, now=now)  # its refunded share
    await points.on_refund(session, order_id=order_id, amount_fen=amount_fen, now=now)

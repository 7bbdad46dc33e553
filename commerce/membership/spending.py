"""Total spent, kept on the customer in the transaction of each payment and refund.

`commerce.wiring` subscribes these to the order events (`commerce.events`): a payment adds
the order's paid amount, a refund (partial or whole) takes its amount back, never below
zero. Every customer's total is kept, member or not, so that a customer who confirms a
phone later joins at the level their spending reached; a member's level (and the discount
checkout reads) follows in the same transaction (`commerce.membership.levels`). A payment
that moves a member up queues "member_level_up", which the payment's "payment received"
message carries (one message, not two).
"""

from __future__ import annotations

from sqlalchemy import case, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.customers.models import Customer
from commerce.membership.levels import refresh_level
from commerce.messaging import notices
from commerce.orders.models import Order
from commerce.rules import MemberLevel, session_rules

LEVEL_UP = "member_level_up"  # rides along in the payment's "payment received" (commerce.payments.service)


async def on_paid(session: AsyncSession, *, order_id: int) -> None:
    row = (await session.execute(select(Order.customer_id, Order.paid_fen).where(Order.id == order_id))).one()
    changed = await _add(session, customer_id=row.customer_id, amount_fen=int(row.paid_fen or 0))
    if changed is not None and changed[1].threshold_fen > changed[0].threshold_fen and changed[1].name:
        openid = await session.scalar(select(Customer.openid).where(Customer.id == row.customer_id))
        if openid is not None:  # a member moved up: told with the payment
            notices.queue(session, openid=openid, template=LEVEL_UP,
                          data={"level_name": changed[1].name, "discount_bp": changed[1].discount_bp})


async def on_refund(session: AsyncSession, *, order_id: int, amount_fen: int) -> None:
    customer_id = await session.scalar(select(Order.customer_id).where(Order.id == order_id))
    if customer_id is not None:
        await _add(session, customer_id=customer_id, amount_fen=-amount_fen)


async def _add(
    session: AsyncSession, *, customer_id: int, amount_fen: int
) -> tuple[MemberLevel, MemberLevel] | None:
    """Add to the customer's total; a member's (level before, level after), else None."""
    if amount_fen == 0:
        return None
    total = Customer.total_spent_fen + amount_fen
    await session.execute(
        update(Customer)
        .where(Customer.id == customer_id)
        .values(total_spent_fen=case((total < 0, 0), else_=total))
        .execution_options(synchronize_session=False)
    )
    return await refresh_level(session, customer_id=customer_id, rules=session_rules(session))

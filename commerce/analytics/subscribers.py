"""The order events that are also countable events: a payment and a review.

Subscribed in `commerce.wiring.shop_bus`; they run in the transaction that paid or
reviewed and only `note` the event, so it is counted once that transaction commits
(the pay notification that moved the order to paid, never a duplicate of it: a
duplicate moves nothing, so publishes nothing). A session that counts nothing (no sink)
costs them no query.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.analytics import events
from commerce.events import OrderMoved, ReviewPosted
from commerce.orders.models import Order, OrderLine


async def count_payment(session: AsyncSession, event: OrderMoved) -> None:
    if not event.paid or not events.counting(session):
        return
    row = (
        await session.execute(
            select(Order.customer_id, Order.paid_fen, Order.payable_fen).where(Order.id == event.order_id)
        )
    ).first()
    if row is not None:
        customer_id, paid_fen, payable_fen = row
        events.note(session, events.paid(customer_id, event.order_id, int(paid_fen or payable_fen)))


async def count_review(session: AsyncSession, event: ReviewPosted) -> None:
    if not events.counting(session):
        return
    first_product = await session.scalar(
        select(OrderLine.product_id).where(OrderLine.order_id == event.order_id).order_by(OrderLine.id).limit(1)
    )
    events.note(session, events.review(event.customer_id, event.order_id, first_product))

"""Recording payments: a provider's verified notification applied to its order, once.

`record_payment` records the notification first (PaymentEvent, unique on provider +
transaction id) and only the first copy does anything. Policy for money that arrives
when it cannot pay the order:
- "late": the order was cancelled (expired) before the money came. The stock is NOT
  re-reserved; the money is refunded automatically (`refunds.start_late_refund`).
- "already_paid": another transaction paid the order first; this one is refunded.
- "amount_mismatch": the amount is not the order's; the order is untouched and the
  money may be refunded the same way.

Refund notifications are recorded the same way (`record_event`, used by
`commerce.payments.refunds`). Nothing here commits: the caller owns the unit of work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.catalog.models import Product
from commerce.db import upsert_insert as _insert
from commerce.events import PaymentArriving, publish
from commerce.orders.models import Order, OrderLine, OrderStatus
from commerce.orders.rows import current_status
from commerce.orders.status import move
from commerce.orders.views import OrderView, load_view
from commerce.payments.models import PaymentEvent
from commerce.rules import as_utc, utcnow

S = OrderStatus


@dataclass(frozen=True)
class PaymentOutcome:
    result: str  # "applied" | "duplicate" | "amount_mismatch" | "late" | "unknown_order" | "already_paid"
    order: OrderView | None


async def record_event(
    session: AsyncSession,
    *,
    provider: str,
    event_key: str,
    kind: str,
    order_id: int | None,
    amount_fen: int,
    payload: dict,
) -> int | None:
    """Record a provider notification once; None when (provider, event_key) was seen before."""
    result = await session.execute(
        _insert(session, PaymentEvent)
        .values(
            provider=provider,
            event_key=event_key,
            kind=kind,
            order_id=order_id,
            amount_fen=amount_fen,
            outcome="processing",
            payload=payload,
            received_at=utcnow(),
        )
        .on_conflict_do_nothing()
        .returning(PaymentEvent.id)
    )
    return result.scalar_one_or_none()


async def set_event_outcome(session: AsyncSession, event_id: int, outcome: str) -> None:
    await session.execute(
        update(PaymentEvent)
        .where(PaymentEvent.id == event_id)
        .values(outcome=outcome)
        .execution_options(synchronize_session=False)
    )


async def record_payment(
    session: AsyncSession,
    *,
    provider: str,
    order_no: str,
    transaction_id: str,
    amount_fen: int,
    paid_at: datetime,
    payload: dict,
) -> PaymentOutcome:
    """Apply a verified payment notification, once.

    The notification is recorded first (unique on provider + transaction id), so a
    repeated copy is "duplicate" and changes nothing. See the module docstring for
    "late", "already_paid" and "amount_mismatch" (the caller refunds those).
    """
    paid_at = as_utc(paid_at)
    row = (
        await session.execute(
            select(Order.id, Order.payable_fen, Order.group_id).where(Order.order_no == order_no)
        )
    ).first()
    order_id = row.id if row is not None else None
    event_id = await record_event(
        session,
        provider=provider,
        event_key=transaction_id,
        kind="payment",
        order_id=order_id,
        amount_fen=amount_fen,
        payload=payload,
    )
    if event_id is None:
        return PaymentOutcome(
            "duplicate", await load_view(session, order_id) if order_id is not None else None
        )
    if row is None:
        await set_event_outcome(session, event_id, "unknown_order")
        return PaymentOutcome("unknown_order", None)
    assert order_id is not None
    await publish(session, PaymentArriving(order_id))  # e.g. a seat's group is locked before the order
    # the provider is asked for what stored balance does not pay (`Order.due_fen`); but the
    # order was priced once: a hold placed after the provider's sheet opened makes it a mismatch
    due = await session.scalar(select(Order.payable_fen - Order.balance_fen).where(Order.id == order_id))
    if amount_fen != due:
        result = "amount_mismatch"
    elif await move(
        session,
        order_id=order_id,
        frm=S.PENDING_PAYMENT,
        to=S.PAID,
        actor=f"provider:{provider}",
        note=transaction_id,
        now=utcnow(),
        values={
            "paid_at": paid_at,
            "paid_fen": Order.payable_fen,  # the provider's part and the balance part
            "pay_provider": provider[:20],
            "pay_transaction_id": transaction_id[:64],
        },
    ):
        result = "applied"
        await _count_sales(session, order_id)
    else:
        result = "late" if await current_status(session, order_id) == S.CANCELLED else "already_paid"
    await set_event_outcome(session, event_id, result)
    return PaymentOutcome(result, await load_view(session, order_id))


async def _count_sales(session: AsyncSession, order_id: int) -> None:
    """Paid orders feed the products' sales counts ("hot" lists); ascending product id."""
    rows = await session.execute(
        select(OrderLine.product_id, func.sum(OrderLine.quantity))
        .where(OrderLine.order_id == order_id)
        .group_by(OrderLine.product_id)
        .order_by(OrderLine.product_id)
    )
    for product_id, quantity in rows.all():
        await session.execute(
            update(Product)
            .where(Product.id == product_id)
            .values(sales_count=Product.sales_count + int(quantity), updated_at=Product.updated_at)
            .execution_options(synchronize_session=False)
        )

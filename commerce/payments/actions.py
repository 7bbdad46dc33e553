"""Payment use cases the staff start: what a refund of an order may be, checked once.

The refund itself (`PaymentService.refund`: start it, commit, ask the provider outside
the transaction) is the payment service's; this is the check before it, shared by the
restatement staff confirm and the action itself. Nothing here commits.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from commerce.errors import ErrorCode, ShopError
from commerce.orders.views import OrderView
from commerce.payments import refunds


@dataclass(frozen=True, slots=True)
class RefundPlan:
    order: OrderView
    refundable_fen: int  # what is left to refund before this one
    amount_fen: int
    full: bool  # all that is left (no amount was named)

    @property
    def left_fen(self) -> int:
        return self.refundable_fen - self.amount_fen


async def plan_refund(session: AsyncSession, *, order: OrderView, amount_fen: int | None) -> RefundPlan:
    """A refund of `amount_fen` (None: all that is left) of `order`. NOTHING_TO_REFUND when
    nothing is left; REFUND_TOO_LARGE (details: available) when it asks for more."""
    refundable = await refunds.refundable_fen(session, order_id=order.id)
    if refundable <= 0:
        raise ShopError(ErrorCode.NOTHING_TO_REFUND, status=str(order.status), available=0)
    amount = refundable if amount_fen is None else amount_fen
    if amount > refundable:
        raise ShopError(ErrorCode.REFUND_TOO_LARGE, available=refundable, refundable=refundable, amount_fen=amount)
    return RefundPlan(order, refundable, amount, amount_fen is None)

"""Paying orders from stored balance: hold, capture, release, and refunds back to it.

The customer chooses at checkout to pay all or part of an order from balance
(`hold_for_order`): that part is moved from cash/bonus to held (in the spending
proportion, `commerce.balance.calculations.spend_split`), recorded on the order as
`balance_fen` so that the payment provider is asked only for the rest (`Order.due_fen`).
The order's own events do the rest (subscribed in `commerce.wiring`):
- paid (pending -> paid, by the provider's notification or, when balance covers it all,
  by `PaymentService.settle_from_balance`): the hold is captured (spent);
- cancelled while unpaid (by the customer, staff or the expiry job): the hold goes back;
- refunded: the balance share of the refund (`Refund.balance_fen`, split by
  `commerce.payments.refunds`) goes back to cash and bonus.
Each step changes the hold's status with a conditional UPDATE, so a second copy of an
event changes nothing. Nothing here commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.balance import calculations as calc
from commerce.balance import ledger
from commerce.balance.models import AccountKind, BalanceHold, HoldStatus
from commerce.db import rowcount
from commerce.errors import ErrorCode, ShopError
from commerce.events import OrderMoved, OrderRefunded
from commerce.orders.models import OrderStatus
from commerce.orders.rows import lock_order
from commerce.rules import utcnow

K = AccountKind
S = OrderStatus


@dataclass(frozen=True, slots=True)
class Held:
    balance_fen: int  # what the order takes from balance
    due_fen: int  # what is left for the payment provider

    @property
    def covers_all(self) -> bool:
        return self.due_fen == 0


async def hold_for_order(
    session: AsyncSession,
    *,
    customer_id: int,
    order_id: int,
    amount_fen: int | None,
    now: datetime | None = None,
) -> Held:
    """Pay `amount_fen` of the customer's unpaid order from balance (None: as much as the
    balance and the order allow). BALANCE_NOT_ENOUGH when there is none or too little,
    BALANCE_ALREADY_USED when the order already takes balance, ILLEGAL_TRANSITION when it
    is not waiting for its payment."""
    now = now or utcnow()
    order = await lock_order(session, order_id)
    if order.customer_id != customer_id:
        raise ShopError(ErrorCode.ORDER_NOT_FOUND, order_id=order_id)
    if order.status != S.PENDING_PAYMENT:
        raise ShopError(
            ErrorCode.ILLEGAL_TRANSITION,
            order_id=order_id,
            **{"from": order.status},
            to=str(S.PAID),
        )
    if order.balance_fen > 0:
        raise ShopError(ErrorCode.BALANCE_ALREADY_USED, balance_fen=order.balance_fen)
    balances = await ledger.lock(session, customer_id)
    spendable = balances[K.CASH] + balances[K.BONUS]
    amount = min(spendable, order.payable_fen) if amount_fen is None else amount_fen
    if amount <= 0 or amount > spendable:
        raise ShopError(ErrorCode.BALANCE_NOT_ENOUGH, balance_fen=spendable)
    if amount > order.payable_fen:
        raise ShopError(ErrorCode.AMOUNT_INVALID, amount_fen=amount, payable_fen=order.payable_fen)
    share, moves = calc.hold_moves(amount, cash_fen=balances[K.CASH], bonus_fen=balances[K.BONUS])
    await ledger.apply(
        session, customer_id=customer_id, moves=moves, reason="hold", order_id=order_id, now=now
    )
    session.add(
        BalanceHold(
            order_id=order_id,
            customer_id=customer_id,
            cash_fen=share.cash_fen,
            bonus_fen=share.bonus_fen,
            status=HoldStatus.HELD.value,
            created_at=now,
        )
    )
    order.balance_fen = amount
    await session.flush()
    return Held(amount, order.payable_fen - amount)


async def _take_hold(session: AsyncSession, order_id: int, to: HoldStatus) -> BalanceHold | None:
    """The order's held hold, moved to `to`; None when there is none (or it moved before)."""
    moved = await session.execute(
        update(BalanceHold)
        .where(BalanceHold.order_id == order_id, BalanceHold.status == HoldStatus.HELD.value)
        .values(status=to.value)
        .execution_options(synchronize_session=False)
    )
    if rowcount(moved) != 1:
        return None
    return await session.scalar(
        select(BalanceHold)
        .where(BalanceHold.order_id == order_id)
        .execution_options(populate_existing=True)
    )


def _share(hold: BalanceHold) -> calc.HoldShare:
    return calc.HoldShare(
        hold.cash_fen, hold.bonus_fen, hold.refunded_cash_fen, hold.refunded_bonus_fen
    )


async def on_order_moved(session: AsyncSession, event: OrderMoved) -> None:
    """Paid: the hold is spent. Cancelled while unpaid: it goes back to the balance."""
    if event.paid:
        hold = await _take_hold(session, event.order_id, HoldStatus.CAPTURED)
        moves = calc.capture_moves(_share(hold)) if hold is not None else []
        reason = "capture"
    elif event.frm == S.PENDING_PAYMENT and event.to == S.CANCELLED:
        hold = await _take_hold(session, event.order_id, HoldStatus.RELEASED)
        moves = calc.release_moves(_share(hold)) if hold is not None else []
        reason = "release"
    else:
        return
    if hold is None:
        return
    await ledger.lock(session, hold.customer_id)
    await ledger.apply(
        session,
        customer_id=hold.customer_id,
        moves=moves,
        reason=reason,
        order_id=event.order_id,
        now=event.now,
    )


async def on_order_refunded(session: AsyncSession, event: OrderRefunded) -> None:
    """A refund succeeded: its balance share goes back to the payer's cash and bonus."""
    if event.balance_fen <= 0:
        return
    hold = await session.scalar(
        select(BalanceHold)
        .where(
            BalanceHold.order_id == event.order_id, BalanceHold.status == HoldStatus.CAPTURED.value
        )
        .execution_options(populate_existing=True)
    )
    if hold is None:  # a refund names a balance part only of an order whose hold was spent
        raise ShopError(
            ErrorCode.NOTHING_TO_REFUND, order_id=event.order_id, reason="no_balance_paid"
        )
    await ledger.lock(session, hold.customer_id)
    after, moves = calc.refund_moves(_share(hold), event.balance_fen)
    await ledger.apply(
        session,
        customer_id=hold.customer_id,
        moves=moves,
        reason="refund",
        order_id=event.order_id,
        ref=event.refund_no,
        now=event.now,
    )
    hold.refunded_cash_fen = after.refunded_cash_fen
    hold.refunded_bonus_fen = after.refunded_bonus_fen
    await session.flush()

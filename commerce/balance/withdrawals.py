"""Withdrawals of stored balance: cash only (bonus never), asked by the customer, decided by staff.

As commission withdrawals (`commerce.referrals.commission`): the customer asks, the cash
is set apart at once (cash -> withdrawing), managers are alerted; staff transfer it by
hand and approve with the transfer's reference (withdrawing -> funding: the money left the
shop), or reject it with a reason (withdrawing -> cash). The decision is a conditional
UPDATE on the withdrawal's status, so it happens once. One pending withdrawal at a time.
Nothing here commits; the customer is told of a decision in its transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.balance import calculations as calc
from commerce.balance import ledger
from commerce.balance.models import AccountKind, BalanceWithdrawal, BalanceWithdrawalStatus
from commerce.customers.customers import openid_of
from commerce.db import rowcount
from commerce.errors import ErrorCode, ShopError
from commerce.messaging import notices
from commerce.rules import as_utc

W = BalanceWithdrawalStatus
TRANSFER_REF_MAX = 64


@dataclass(frozen=True, slots=True)
class BalanceWithdrawalView:
    id: int
    customer_id: int
    amount_fen: int
    status: str
    transfer_ref: str
    note: str


def _view(w: BalanceWithdrawal) -> BalanceWithdrawalView:
    return BalanceWithdrawalView(
        w.id, w.customer_id, w.amount_fen, w.status, w.transfer_ref, w.note
    )


async def request_withdrawal(
    session: AsyncSession, *, customer_id: int, amount_fen: int | None, now: datetime
) -> BalanceWithdrawalView:
    """Ask for `amount_fen` of cash balance (None: all of it). NOTHING_TO_WITHDRAW,
    WITHDRAWAL_TOO_LARGE (details: available_fen), WITHDRAWAL_PENDING, AMOUNT_INVALID."""
    balances = await ledger.lock(session, customer_id)
    cash = balances[AccountKind.CASH]
    pending = await session.scalar(
        select(BalanceWithdrawal.id).where(
            BalanceWithdrawal.customer_id == customer_id,
            BalanceWithdrawal.status == W.PENDING.value,
        )
    )
    if pending is not None:
        raise ShopError(ErrorCode.WITHDRAWAL_PENDING, withdrawal_id=pending)
    amount = cash if amount_fen is None else amount_fen
    if amount_fen is not None and amount_fen <= 0:
        raise ShopError(ErrorCode.AMOUNT_INVALID, amount_fen=amount_fen)
    if cash <= 0:
        raise ShopError(ErrorCode.NOTHING_TO_WITHDRAW, available_fen=0)
    if amount > cash:
        raise ShopError(ErrorCode.WITHDRAWAL_TOO_LARGE, available_fen=cash)
    withdrawal = BalanceWithdrawal(
        customer_id=customer_id, amount_fen=amount, status=W.PENDING.value, created_at=now
    )
    session.add(withdrawal)
    await session.flush()
    await ledger.apply(
        session,
        customer_id=customer_id,
        moves=calc.withdraw_moves(amount, cash_fen=cash),
        reason="withdraw",
        withdrawal_id=withdrawal.id,
        now=now,
    )
    return _view(withdrawal)


async def decide_withdrawal(
    session: AsyncSession,
    *,
    withdrawal_id: int,
    paid: bool,
    staff_openid: str,
    text: str,
    now: datetime,
) -> tuple[BalanceWithdrawalView, BalanceWithdrawalView]:
    """Approve (`paid`, `text` the transfer's reference) or reject (`text` the reason):
    (before, after). WITHDRAWAL_NOT_FOUND, WITHDRAWAL_NOT_PENDING, TRANSFER_REF_INVALID."""
    now = as_utc(now)
    if paid and not (1 <= len(text) <= TRANSFER_REF_MAX and " " not in text):
        raise ShopError(ErrorCode.TRANSFER_REF_INVALID, max_length=TRANSFER_REF_MAX)
    found = await session.get(BalanceWithdrawal, withdrawal_id)
    if found is None:
        raise ShopError(ErrorCode.WITHDRAWAL_NOT_FOUND, withdrawal_id=withdrawal_id)
    before = _view(found)
    status = W.PAID if paid else W.REJECTED
    decided = await session.execute(
        update(BalanceWithdrawal)
        .where(BalanceWithdrawal.id == withdrawal_id, BalanceWithdrawal.status == W.PENDING.value)
        .values(
            status=status.value,
            decided_by=staff_openid[:64],
            transfer_ref=text[:TRANSFER_REF_MAX] if paid else "",
            note="" if paid else text[:200],
            decided_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if rowcount(decided) != 1:
        raise ShopError(ErrorCode.WITHDRAWAL_NOT_PENDING, status=before.status)
    await ledger.lock(session, found.customer_id)
    await ledger.apply(
        session,
        customer_id=found.customer_id,
        moves=calc.withdrawal_decided_moves(found.amount_fen, paid=paid),
        reason="withdraw_paid" if paid else "withdraw_back",
        withdrawal_id=withdrawal_id,
        now=now,
    )
    await session.refresh(found)
    after = _view(found)
    openid = await openid_of(session, found.customer_id)
    if openid is not None:
        notices.queue(
            session,
            openid=openid,
            template="balance_withdrawal_decided",
            data={
                "amount_fen": found.amount_fen,
                "paid": paid,
                "transfer_ref": after.transfer_ref,
                "note": after.note,
            },
        )
    return before, after


async def pending_withdrawals(
    session: AsyncSession, *, limit: int = 20
) -> list[BalanceWithdrawalView]:
    rows = await session.scalars(
        select(BalanceWithdrawal)
        .where(BalanceWithdrawal.status == W.PENDING.value)
        .order_by(BalanceWithdrawal.id)
        .limit(limit)
    )
    return [_view(w) for w in rows.all()]

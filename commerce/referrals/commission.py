"""Commission: what referrers earn on their referrals' orders, its ledger, and withdrawals.

```mermaid
stateDiagram-v2
    [*] --> frozen: the referral's order is paid (earn_on_paid)
    frozen --> available: completed + return window passed (unfreeze_due, scheduler)
    frozen --> reversed: fully refunded
    available --> reversed: fully refunded (available may go negative, see below)
```

Money is integer fen. A commission's base is what the buyer paid for goods (paid_fen -
delivery_fen; points and coupons already came off), its amount base x rate_bp // 10000.
Group-buy orders earn nothing unless `rules.commission_on_group_orders`. Only a buyer
still bound (paid_at before referral_until) earns their referrer anything.

Every movement adds a row to the ledger (`CommissionEntry`); a referrer's balances are
sums of its deltas: frozen, available, withdrawing, paid out. Status changes are
conditional UPDATEs, so a job that runs twice, or a refund racing the unfreeze, moves
each fen once.

Refunds (`reverse_on_refund`, from `commerce.events.after_refund`): the reversed
total is the refunded share of the base, floored (amount x min(refunded, base) // base),
so partial reversals never add up to more than the amount; a full refund reverses the
rest and marks the commission reversed. Money comes back from where it is: frozen, or
available. If the referrer already withdrew it, available goes *negative*: that is
recorded as it is (they owe it), shown to them, and later commission pays it off before
they can withdraw again.

Withdrawals: one pending at a time per customer, at least `rules.withdrawal_min_fen`
and at most what is available; available -> withdrawing; staff approve (withdrawing ->
paid out, the manual transfer's reference recorded) or reject (back to available).
Nothing here commits; customers are told through `commerce.messaging.notices`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.customers.models import Customer
from commerce.db import rowcount, upsert_insert
from commerce.errors import ErrorCode, ShopError
from commerce.messaging import notices
from commerce.orders.models import Order, OrderStatus
from commerce.referrals.calculations import Binding, PaidOrder, earned_commission, reversal_target
from commerce.referrals.models import (
    Commission,
    CommissionEntry,
    CommissionStatus,
    Withdrawal,
    WithdrawalStatus,
)
from commerce.referrals.referrals import lock_customers, referral_count
from commerce.rules import ShopRules, as_utc, maybe_utc
from commerce.staff.audit import Change

TRANSFER_REF_MAX = 64
NOTE_MAX = 200
REASON_MAX = 300  # as after-sales reasons (REASON_INVALID says so)


@dataclass(frozen=True)
class Balances:
    frozen_fen: int
    frozen_until: datetime | None  # the earliest date some frozen commission frees (if known)
    frozen_waiting: bool  # some frozen commission waits for its order to complete first
    available_fen: int  # negative when refunds took back commission already withdrawn
    withdrawing_fen: int
    paid_out_fen: int
    referrals: int


@dataclass(frozen=True)
class WithdrawalView:
    id: int
    customer_id: int
    openid: str
    amount_fen: int
    status: WithdrawalStatus
    created_at: datetime
    decided_by: str = ""
    transfer_ref: str = ""
    note: str = ""


def _entry(
    session: AsyncSession,
    *,
    customer_id: int,
    kind: str,
    now: datetime,
    commission_id: int | None = None,
    withdrawal_id: int | None = None,
    frozen: int = 0,
    available: int = 0,
    withdrawing: int = 0,
    paid_out: int = 0,
    note: str = "",
) -> None:
    session.add(
        CommissionEntry(
            customer_id=customer_id,
            kind=kind,
            commission_id=commission_id,
            withdrawal_id=withdrawal_id,
            frozen_delta=frozen,
            available_delta=available,
            withdrawing_delta=withdrawing,
            paid_out_delta=paid_out,
            note=note[:NOTE_MAX],
            created_at=now,
        )
    )


# ---- earning, freeing, reversing -----------------------------------------------------


async def earn_on_paid(
    session: AsyncSession, *, order_id: int, now: datetime, rules: ShopRules
) -> int | None:
    """A frozen commission for the buyer's referrer, if the order earns one; its id, else None."""
    now = as_utc(now)
    order = (
        await session.execute(
            select(
                Order.customer_id, Order.group_id, Order.paid_fen, Order.delivery_fen, Order.paid_at
            ).where(Order.id == order_id)
        )
    ).one_or_none()
    if order is None:
        return None
    buyer = (
        await session.execute(
            select(Customer.referrer_id, Customer.referral_until).where(
                Customer.id == order.customer_id
            )
        )
    ).one()
    earned = earned_commission(
        PaidOrder(
            paid_fen=order.paid_fen,
            delivery_fen=order.delivery_fen,
            is_group=order.group_id is not None,
            paid_at=maybe_utc(order.paid_at) or now,
        ),
        Binding(referrer_id=buyer.referrer_id, until=maybe_utc(buyer.referral_until)),
        rules,
    )
    if earned is None:
        return None
    base, amount = earned
    commission_id = await session.scalar(
        upsert_insert(session, Commission)
        .values(
            referrer_id=buyer.referrer_id,
            buyer_id=order.customer_id,
            order_id=order_id,
            base_fen=base,
            rate_bp=rules.commission_rate_bp,
            amount_fen=amount,
            reversed_fen=0,
            status=CommissionStatus.FROZEN.value,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=[Commission.order_id])
        .returning(Commission.id)
    )
    if commission_id is None:  # earned already (a payment recorded twice cannot get here, but)
        return None
    _entry(
        session,
        customer_id=buyer.referrer_id,
        kind="earned",
        commission_id=commission_id,
        frozen=amount,
        now=now,
        note=f"order {order_id}",
    )
    return commission_id


async def unfreeze_due(session: AsyncSession, *, now: datetime, rules: ShopRules) -> int:
    """Free the commissions whose order completed at least `return_window` ago; how many.

    Only orders still completed: one being refunded waits (the refund may take it back).
    Each moves once (UPDATE ... WHERE status = frozen): a second run finds nothing.
    """
    now = as_utc(now)
    due = await session.scalars(
        select(Commission.id)
        .join(Order, Order.id == Commission.order_id)
        .where(
            Commission.status == CommissionStatus.FROZEN.value,
            Order.status == OrderStatus.COMPLETED.value,
            Order.completed_at <= now - rules.return_window,
        )
        .order_by(Commission.id)
    )
    freed = 0
    for commission_id in list(due):
        moved = (
            await session.execute(
                update(Commission)
                .where(
                    Commission.id == commission_id,
                    Commission.status == CommissionStatus.FROZEN.value,
                )
                .values(status=CommissionStatus.AVAILABLE.value, available_at=now)
                .returning(Commission.referrer_id, Commission.amount_fen, Commission.reversed_fen)
                .execution_options(synchronize_session=False)
            )
        ).one_or_none()
        if moved is None:
            continue
        rest = moved.amount_fen - moved.reversed_fen
        _entry(
            session,
            customer_id=moved.referrer_id,
            kind="unfrozen",
            commission_id=commission_id,
            frozen=-rest,
            available=rest,
            now=now,
        )
        freed += 1
        openid = await session.scalar(
            select(Customer.openid).where(Customer.id == moved.referrer_id)
        )
        if openid is not None and rest > 0:
            available = (
                await balances(session, customer_id=moved.referrer_id, rules=rules)
            ).available_fen
            notices.queue(
                session,
                openid=openid,
                template="commission_available",
                data={"amount_fen": rest, "available_fen": available},
            )
    return freed


async def reverse_on_refund(session: AsyncSession, *, order_id: int, now: datetime) -> int:
    """Take back the refunded share of the order's commission; the fen reversed now (0 if none)."""
    now = as_utc(now)
    order = (
        await session.execute(
            select(Order.paid_fen, Order.refunded_fen).where(Order.id == order_id)
        )
    ).one_or_none()
    if order is None:
        return 0
    for _attempt in range(5):
        row = (
            await session.execute(
                select(
                    Commission.id,
                    Commission.referrer_id,
                    Commission.base_fen,
                    Commission.amount_fen,
                    Commission.reversed_fen,
                    Commission.status,
                )
                .where(Commission.order_id == order_id)
                .execution_options(populate_existing=True)
            )
        ).one_or_none()
        if row is None or row.status == CommissionStatus.REVERSED.value:
            return 0
        target = reversal_target(
            amount_fen=row.amount_fen,
            base_fen=row.base_fen,
            reversed_fen=row.reversed_fen,
            refunded_fen=order.refunded_fen,
            paid_fen=order.paid_fen,
        )
        delta = target - row.reversed_fen
        if delta <= 0:
            return 0
        status = CommissionStatus.REVERSED.value if target == row.amount_fen else row.status
        moved = await session.execute(
            update(Commission)
            .where(
                Commission.id == row.id,
                Commission.status == row.status,
                Commission.reversed_fen == row.reversed_fen,
            )
            .values(reversed_fen=target, status=status)
            .execution_options(synchronize_session=False)
        )
        if rowcount(moved) != 1:
            continue  # the unfreeze moved it meanwhile: read again
        from_frozen = row.status == CommissionStatus.FROZEN.value
        _entry(
            session,
            customer_id=row.referrer_id,
            kind="reversed",
            commission_id=row.id,
            frozen=-delta if from_frozen else 0,
            available=0 if from_frozen else -delta,
            now=now,
            note=f"order {order_id} refund",
        )
        return delta
    return 0


# ---- balances ------------------------------------------------------------------------


async def balances(session: AsyncSession, *, customer_id: int, rules: ShopRules) -> Balances:
    """The sums of the customer's ledger, when the frozen part frees, and their referral count."""
    sums = (
        await session.execute(
            select(
                func.coalesce(func.sum(CommissionEntry.frozen_delta), 0),
                func.coalesce(func.sum(CommissionEntry.available_delta), 0),
                func.coalesce(func.sum(CommissionEntry.withdrawing_delta), 0),
                func.coalesce(func.sum(CommissionEntry.paid_out_delta), 0),
            ).where(CommissionEntry.customer_id == customer_id)
        )
    ).one()
    frozen = await session.execute(
        select(Order.completed_at, Order.status)
        .join(Commission, Commission.order_id == Order.id)
        .where(
            Commission.referrer_id == customer_id,
            Commission.status == CommissionStatus.FROZEN.value,
            Commission.amount_fen > Commission.reversed_fen,
        )
    )
    frees: list[datetime] = []
    waiting = False
    for completed_at, status in frozen:
        if completed_at is None or status != OrderStatus.COMPLETED.value:
            waiting = True
        else:
            frees.append(as_utc(completed_at) + rules.return_window)
    return Balances(
        frozen_fen=int(sums[0]),
        frozen_until=min(frees) if frees else None,
        frozen_waiting=waiting,
        available_fen=int(sums[1]),
        withdrawing_fen=int(sums[2]),
        paid_out_fen=int(sums[3]),
        referrals=await referral_count(session, customer_id=customer_id),
    )


# ---- withdrawals ---------------------------------------------------------------------


async def _withdrawal_view(session: AsyncSession, withdrawal_id: int) -> WithdrawalView:
    row = (
        await session.execute(
            select(Withdrawal, Customer.openid)
            .join(Customer, Customer.id == Withdrawal.customer_id)
            .where(Withdrawal.id == withdrawal_id)
            .execution_options(populate_existing=True)
        )
    ).one_or_none()
    if row is None:
        raise ShopError(ErrorCode.WITHDRAWAL_NOT_FOUND, withdrawal_id=withdrawal_id)
    w, openid = row
    return WithdrawalView(
        id=w.id,
        customer_id=w.customer_id,
        openid=openid,
        amount_fen=w.amount_fen,
        status=WithdrawalStatus(w.status),
        created_at=as_utc(w.created_at),
        decided_by=w.decided_by,
        transfer_ref=w.transfer_ref,
        note=w.note,
    )


async def request_withdrawal(
    session: AsyncSession,
    *,
    customer_id: int,
    now: datetime,
    rules: ShopRules,
    amount_fen: int | None = None,
) -> WithdrawalView:
    """Ask for `amount_fen` (default: all that is available) to be paid out.

    WITHDRAWAL_PENDING (one is waiting for staff already); NOTHING_TO_WITHDRAW (available
    is zero or less); AMOUNT_INVALID (zero or less); WITHDRAWAL_BELOW_MINIMUM (details:
    min_fen, available_fen); WITHDRAWAL_TOO_LARGE (details: available_fen). The customer's
    row is locked first, so two requests at once cannot both pass the checks.
    """
    now = as_utc(now)
    await lock_customers(session, [customer_id])
    pending = await session.scalar(
        select(Withdrawal.id).where(
            Withdrawal.customer_id == customer_id,
            Withdrawal.status == WithdrawalStatus.PENDING.value,
        )
    )
    if pending is not None:
        raise ShopError(ErrorCode.WITHDRAWAL_PENDING, withdrawal_id=pending)
    available = (await balances(session, customer_id=customer_id, rules=rules)).available_fen
    if amount_fen is None:
        if available <= 0:
            raise ShopError(ErrorCode.NOTHING_TO_WITHDRAW, available_fen=available)
        amount_fen = available
    if amount_fen <= 0:
        raise ShopError(ErrorCode.AMOUNT_INVALID)
    if amount_fen > available:
        if available <= 0:
            raise ShopError(ErrorCode.NOTHING_TO_WITHDRAW, available_fen=available)
        raise ShopError(
            ErrorCode.WITHDRAWAL_TOO_LARGE, available_fen=available, amount_fen=amount_fen
        )
    if amount_fen < rules.withdrawal_min_fen:
        raise ShopError(
            ErrorCode.WITHDRAWAL_BELOW_MINIMUM,
            min_fen=rules.withdrawal_min_fen,
            available_fen=available,
            amount_fen=amount_fen,
        )
    withdrawal = Withdrawal(
        customer_id=customer_id,
        amount_fen=amount_fen,
        status=WithdrawalStatus.PENDING.value,
        created_at=now,
    )
    session.add(withdrawal)
    await session.flush()
    _entry(
        session,
        customer_id=customer_id,
        kind="withdrawal_requested",
        withdrawal_id=withdrawal.id,
        available=-amount_fen,
        withdrawing=amount_fen,
        now=now,
    )
    await session.flush()
    return await _withdrawal_view(session, withdrawal.id)


async def _decide(
    session: AsyncSession,
    *,
    withdrawal_id: int,
    to: WithdrawalStatus,
    staff_openid: str,
    transfer_ref: str = "",
    note: str = "",
    now: datetime,
) -> tuple[WithdrawalView, Change]:
    now = as_utc(now)
    before = await _withdrawal_view(session, withdrawal_id)
    moved = await session.execute(
        update(Withdrawal)
        .where(Withdrawal.id == withdrawal_id, Withdrawal.status == WithdrawalStatus.PENDING.value)
        .values(
            status=to.value,
            decided_by=staff_openid[:64],
            transfer_ref=transfer_ref[:TRANSFER_REF_MAX],
            note=note[:NOTE_MAX],
            decided_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if rowcount(moved) != 1:
        raise ShopError(
            ErrorCode.WITHDRAWAL_NOT_PENDING,
            withdrawal_id=withdrawal_id,
            status=before.status.value,
        )
    amount = before.amount_fen
    paid = to == WithdrawalStatus.PAID
    _entry(
        session,
        customer_id=before.customer_id,
        kind="withdrawal_paid" if paid else "withdrawal_rejected",
        withdrawal_id=withdrawal_id,
        withdrawing=-amount,
        paid_out=amount if paid else 0,
        available=0 if paid else amount,
        now=now,
        note=transfer_ref if paid else note,
    )
    await session.flush()
    after = await _withdrawal_view(session, withdrawal_id)
    notices.queue(
        session,
        openid=after.openid,
        template="withdrawal_paid" if paid else "withdrawal_rejected",
        data={
            "amount_fen": amount,
            "withdrawal_id": withdrawal_id,
            "transfer_ref": transfer_ref,
            "reason": note,
        },
    )
    snapshot = {"id": withdrawal_id, "customer_id": before.customer_id, "amount_fen": amount}
    return after, (
        snapshot | {"status": before.status.value},
        snapshot
        | {"status": after.status.value, "transfer_ref": after.transfer_ref, "note": after.note},
    )


async def approve_withdrawal(
    session: AsyncSession,
    *,
    withdrawal_id: int,
    staff_openid: str,
    transfer_ref: str,
    now: datetime,
) -> tuple[WithdrawalView, Change]:
    """Staff made the transfer by hand: record its reference; withdrawing -> paid out; the customer is told.

    WITHDRAWAL_NOT_FOUND; WITHDRAWAL_NOT_PENDING (decided already); TRANSFER_REF_INVALID for an
    empty or over-long reference.
    """
    transfer_ref = (transfer_ref or "").strip()
    if not 1 <= len(transfer_ref) <= TRANSFER_REF_MAX:
        raise ShopError(ErrorCode.TRANSFER_REF_INVALID, max_length=TRANSFER_REF_MAX)
    return await _decide(
        session,
        withdrawal_id=withdrawal_id,
        to=WithdrawalStatus.PAID,
        staff_openid=staff_openid,
        transfer_ref=transfer_ref,
        now=now,
    )


async def reject_withdrawal(
    session: AsyncSession, *, withdrawal_id: int, staff_openid: str, reason: str, now: datetime
) -> tuple[WithdrawalView, Change]:
    """Withdrawing -> available again, with the reason the customer is told.

    WITHDRAWAL_NOT_FOUND; WITHDRAWAL_NOT_PENDING; REASON_INVALID (2-300 characters).
    """
    reason = (reason or "").strip()
    if not 2 <= len(reason) <= REASON_MAX:  # the customer sees it whole; the row keeps 200
        raise ShopError(
            ErrorCode.REASON_INVALID, field="reason", min_length=2, max_length=REASON_MAX
        )
    return await _decide(
        session,
        withdrawal_id=withdrawal_id,
        to=WithdrawalStatus.REJECTED,
        staff_openid=staff_openid,
        note=reason,
        now=now,
    )


async def pending_withdrawals(session: AsyncSession, *, limit: int = 20) -> list[WithdrawalView]:
    """Waiting for staff, oldest first."""
    ids = await session.scalars(
        select(Withdrawal.id)
        .where(Withdrawal.status == WithdrawalStatus.PENDING.value)
        .order_by(Withdrawal.created_at, Withdrawal.id)
        .limit(limit)
    )
    return [await _withdrawal_view(session, i) for i in list(ids)]

"""Refunds: giving back an order's paid money, and money that never paid its order.

Refunding all that is left of an order moves it to refunding; the provider's verdict
(`record_refund_result`) then moves it to refunded, or back where it was on failure
(see the diagram in `commerce.orders.status`). A partial refund keeps the status and,
once it succeeds, grows `refunded_fen`.

How late refunds are tracked (money recorded by `commerce.payments.records` as "late",
"already_paid" or "amount_mismatch": it never became the order's `paid_fen`, so these
refunds never touch `paid_fen`/`refunded_fen` or the order's status):
- the Refund row's `refund_no` starts with "RL" (ordinary refunds: "RF");
- its `reason` is machine-readable, "<outcome>:<provider>:<transaction_id>"
  (`late_refund_source` reads it back: the provider needs the transaction id);
- the payment's PaymentEvent `outcome` walks `<outcome>` -> `<outcome>_refund_pending`
  -> `<outcome>_refunded` (or `<outcome>_refund_failed`, after which
  `start_late_refund` may try again), so money still owed back is one query away:
  `outcome LIKE '%_refund_pending'` or an outcome still equal to late/already_paid.

Nothing here commits: the caller owns the unit of work (and asks the provider for the
money outside its transaction).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.db import rowcount
from commerce.db import upsert_insert as _insert
from commerce.errors import ErrorCode, ShopError
from commerce.events import OrderRefunded, RefundRequested, publish
from commerce.orders.models import Order, OrderEvent, OrderStatus
from commerce.orders.rows import SHOP_TZ, current_status, lock_order, random_digits
from commerce.orders.status import move
from commerce.payments.models import PaymentEvent, Refund, RefundStatus
from commerce.payments.records import record_event, set_event_outcome
from commerce.rules import as_utc, utcnow

S = OrderStatus

REFUND_NO_PREFIX = "RF"
LATE_REFUND_NO_PREFIX = "RL"
LATE_OUTCOMES = frozenset({"late", "already_paid", "amount_mismatch"})


@dataclass(frozen=True)
class LateRefundSource:
    outcome: str  # late | already_paid | amount_mismatch
    provider: str
    transaction_id: str


def balance_share(
    *, paid_fen: int, balance_fen: int, refunded_before_fen: int, balance_refunded_before_fen: int, amount_fen: int
) -> int:
    """The part of a refund of `amount_fen` that goes back to stored balance, the rest to the
    provider. The rule: the balance share of all refunds so far is the order's balance part
    times refunded / paid, rounded down (so the provider gives back its share first by a
    fen at most, and refunding all that is left ends exactly at the balance part).
    `refunded_before_fen` / `balance_refunded_before_fen`: the refunds already counted
    (succeeded or pending), and their balance part."""
    if not 0 < amount_fen <= paid_fen - refunded_before_fen:
        raise ValueError("refund within what is left")
    if paid_fen == 0 or balance_fen == 0:
        return 0
    target = balance_fen * (refunded_before_fen + amount_fen) // paid_fen
    balance_left = balance_fen - balance_refunded_before_fen
    provider_left = (paid_fen - balance_fen) - (refunded_before_fen - balance_refunded_before_fen)
    share = min(max(target - balance_refunded_before_fen, 0), amount_fen, balance_left)
    # never ask the provider for more than it took (a failed refund in between may skew the running total)
    return max(share, amount_fen - provider_left)


def _new_refund_no(prefix: str, now: datetime) -> str:
    return f"{prefix}{now.astimezone(SHOP_TZ):%Y%m%d}{random_digits(10)}"


async def _insert_refund(
    session: AsyncSession,
    *,
    prefix: str,
    order_id: int,
    amount_fen: int,
    reason: str,
    actor: str,
    now: datetime,
    balance_fen: int = 0,
) -> Refund:
    for _attempt in range(5):
        result = await session.execute(
            _insert(session, Refund)
            .values(
                refund_no=_new_refund_no(prefix, now),
                order_id=order_id,
                amount_fen=amount_fen,
                balance_fen=balance_fen,
                reason=reason[:200],
                status=RefundStatus.PENDING.value,
                actor=actor[:80],
                created_at=now,
            )
            .on_conflict_do_nothing()
            .returning(Refund.id)
        )
        refund_id = result.scalar_one_or_none()
        if refund_id is not None:
            refund = await session.get(Refund, refund_id)
            assert refund is not None
            return refund
    raise RuntimeError("could not allocate a unique refund number")


async def refundable_fen(session: AsyncSession, *, order_id: int) -> int:
    """Paid money not yet refunded nor being refunded."""
    order = await session.scalar(
        select(Order).where(Order.id == order_id).execution_options(populate_existing=True)
    )
    if order is None:
        raise ShopError(ErrorCode.ORDER_NOT_FOUND, order_id=order_id)
    return order.paid_fen - order.refunded_fen - await _pending_refunds_fen(session, order_id)


async def _pending_refunds_fen(session: AsyncSession, order_id: int) -> int:
    pending = await session.scalar(
        select(func.coalesce(func.sum(Refund.amount_fen), 0)).where(
            Refund.order_id == order_id,
            Refund.status == RefundStatus.PENDING.value,
            Refund.refund_no.not_like(f"{LATE_REFUND_NO_PREFIX}%"),
        )
    )
    return int(pending or 0)


async def _counted_refunds(session: AsyncSession, order_id: int) -> tuple[int, int]:
    """(amount, balance part) of the order's refunds that count: succeeded or pending."""
    row = (
        await session.execute(
            select(func.coalesce(func.sum(Refund.amount_fen), 0), func.coalesce(func.sum(Refund.balance_fen), 0)).where(
                Refund.order_id == order_id,
                Refund.status.in_([RefundStatus.PENDING.value, RefundStatus.SUCCEEDED.value]),
                Refund.refund_no.not_like(f"{LATE_REFUND_NO_PREFIX}%"),
            )
        )
    ).one()
    return int(row[0]), int(row[1])


async def refund_amount(session: AsyncSession, *, refund_no: str) -> int | None:
    """A refund's whole amount (its provider part and its balance part)."""
    return await session.scalar(select(Refund.amount_fen).where(Refund.refund_no == refund_no))


async def start_refund(
    session: AsyncSession,
    *,
    order_id: int,
    amount_fen: int,
    reason: str,
    actor: str,
    now: datetime | None = None,
) -> Refund:
    """Open a refund of paid money (the caller then asks the provider, outside the transaction).

    At most paid - refunded - pending refunds (REFUND_TOO_LARGE, details: available;
    NOTHING_TO_REFUND when nothing is left). Refunding all that is left moves the
    order to refunding; a partial refund keeps its status.
    """
    now = as_utc(now or utcnow())
    if amount_fen <= 0:
        raise ShopError(ErrorCode.AMOUNT_INVALID, amount_fen=amount_fen)
    order = await lock_order(session, order_id)
    status = OrderStatus(order.status)
    available = order.paid_fen - order.refunded_fen - await _pending_refunds_fen(session, order_id)
    if status not in (S.PAID, S.SHIPPED, S.COMPLETED, S.REFUNDING) or available <= 0:
        raise ShopError(
            ErrorCode.NOTHING_TO_REFUND, status=status.value, available=max(available, 0)
        )
    if amount_fen > available:
        raise ShopError(ErrorCode.REFUND_TOO_LARGE, available=available, amount_fen=amount_fen)
    await publish(session, RefundRequested(order_id, amount_fen, whole=amount_fen == available))
    share = 0
    if order.balance_fen > 0:  # paid partly from stored balance: that share goes back there
        counted, counted_balance = await _counted_refunds(session, order_id)
        share = balance_share(
            paid_fen=order.paid_fen,
            balance_fen=order.balance_fen,
            refunded_before_fen=counted,
            balance_refunded_before_fen=counted_balance,
            amount_fen=amount_fen,
        )
    refund = await _insert_refund(
        session,
        prefix=REFUND_NO_PREFIX,
        order_id=order_id,
        amount_fen=amount_fen,
        reason=reason,
        actor=actor,
        now=now,
        balance_fen=share,
    )
    if amount_fen == available and status != S.REFUNDING:
        await move(
            session,
            order_id=order_id,
            frm=status,
            to=S.REFUNDING,
            actor=actor,
            note=refund.refund_no,
            now=now,
        )
    return refund


@dataclass(frozen=True)
class LatePayment:
    """Money recorded as late / already_paid / amount_mismatch whose refund never started."""

    provider: str
    order_no: str
    transaction_id: str
    amount_fen: int
    outcome: str


@dataclass(frozen=True)
class StaleRefund:
    """A refund still pending: the provider's answer never came (or it was never asked)."""

    refund: Refund
    order_no: str
    total_fen: int  # what the provider's payment was: the order's paid money (less its balance part), or the late payment
    transaction_id: str  # late refunds name their payment; "" for an order's own payment
    provider: str = ""  # who holds the money: the late payment's, or the order's `pay_provider`


async def owed_late_payments(
    session: AsyncSession, *, received_before: datetime, limit: int = 100
) -> list[LatePayment]:
    """Late money whose refund was never started (the process stopped in between)."""
    rows = await session.execute(
        select(PaymentEvent, Order.order_no)
        .join(Order, Order.id == PaymentEvent.order_id)
        .where(
            PaymentEvent.kind == "payment",
            PaymentEvent.outcome.in_(sorted(LATE_OUTCOMES)),
            PaymentEvent.received_at <= as_utc(received_before),
        )
        .order_by(PaymentEvent.id)
        .limit(limit)
    )
    return [
        LatePayment(event.provider, order_no, event.event_key, event.amount_fen, event.outcome)
        for event, order_no in rows.all()
    ]


async def stale_pending_refunds(
    session: AsyncSession, *, created_before: datetime, limit: int = 100
) -> list[StaleRefund]:
    """Refunds pending since before `created_before`, oldest first, to ask the provider again
    (with the same refund number, which the provider treats as the same refund)."""
    rows = await session.execute(
        select(Refund, Order.order_no, Order.paid_fen - Order.balance_fen, Order.pay_provider)
        .join(Order, Order.id == Refund.order_id)
        .where(
            Refund.status == RefundStatus.PENDING.value,
            Refund.created_at <= as_utc(created_before),
        )
        .order_by(Refund.id)
        .limit(limit)
    )
    stale = []
    for refund, order_no, paid_fen, pay_provider in rows.all():
        source = late_refund_source(refund)
        if source is None:
            stale.append(StaleRefund(refund, order_no, paid_fen, "", pay_provider))
        else:
            stale.append(
                StaleRefund(refund, order_no, refund.amount_fen, source.transaction_id, source.provider)
            )
    return stale


def late_refund_source(refund: Refund) -> LateRefundSource | None:
    """For a late refund ("RL..."), the payment it gives back; None for an ordinary refund."""
    if not refund.refund_no.startswith(LATE_REFUND_NO_PREFIX):
        return None
    outcome, provider, transaction_id = refund.reason.split(":", 2)
    return LateRefundSource(outcome=outcome, provider=provider, transaction_id=transaction_id)


async def start_late_refund(
    session: AsyncSession,
    *,
    provider: str,
    order_no: str,
    transaction_id: str,
    amount_fen: int,
    now: datetime | None = None,
) -> Refund:
    """Open the refund of a payment that never paid its order ("late", "already_paid" or
    "amount_mismatch"). Idempotent: while one is pending or done, that one is returned;
    after a failed one, a new one is opened. NOTHING_TO_REFUND for any other payment."""
    now = as_utc(now or utcnow())
    event = await session.scalar(
        select(PaymentEvent)
        .where(
            PaymentEvent.provider == provider,
            PaymentEvent.event_key == transaction_id,
            PaymentEvent.kind == "payment",
        )
        .execution_options(populate_existing=True)
    )
    order_id = await session.scalar(select(Order.id).where(Order.order_no == order_no))
    if event is None or order_id is None or event.order_id != order_id:
        raise ShopError(ErrorCode.NOTHING_TO_REFUND, reason="unknown_payment")
    base = event.outcome.split("_refund", 1)[0]
    if base not in LATE_OUTCOMES:
        raise ShopError(ErrorCode.NOTHING_TO_REFUND, reason=event.outcome)
    if not 0 < amount_fen <= event.amount_fen:
        raise ShopError(
            ErrorCode.REFUND_TOO_LARGE, available=event.amount_fen, amount_fen=amount_fen
        )
    claimed = await session.execute(
        update(PaymentEvent)
        .where(
            PaymentEvent.id == event.id, PaymentEvent.outcome.in_([base, f"{base}_refund_failed"])
        )
        .values(outcome=f"{base}_refund_pending")
        .execution_options(synchronize_session=False)
    )
    reason = f"{base}:{provider}:{transaction_id}"
    if rowcount(claimed) != 1:
        existing = await session.scalar(
            select(Refund)
            .where(
                Refund.order_id == order_id,
                Refund.reason == reason,
                Refund.status.in_([RefundStatus.PENDING.value, RefundStatus.SUCCEEDED.value]),
            )
            .order_by(Refund.id.desc())
            .limit(1)
        )
        if existing is None:
            raise ShopError(ErrorCode.NOTHING_TO_REFUND, reason=event.outcome)
        return existing
    return await _insert_refund(
        session,
        prefix=LATE_REFUND_NO_PREFIX,
        order_id=order_id,
        amount_fen=amount_fen,
        reason=reason,
        actor=f"provider:{provider}",
        now=now,
    )


async def record_refund_result(
    session: AsyncSession,
    *,
    provider: str,
    refund_no: str,
    succeeded: bool,
    provider_refund_id: str,
    payload: dict,
    now: datetime | None = None,
) -> str:
    """Apply the provider's verdict on a refund, once: "applied" | "duplicate" | "unknown_refund".

    Success grows refunded_fen; when everything is refunded, refunding -> refunded.
    Failure of a refund while the order is refunding takes the order back to the
    status it had before. Late refunds only update their payment's outcome.
    """
    now = as_utc(now or utcnow())
    refund = await session.scalar(
        select(Refund)
        .where(Refund.refund_no == refund_no)
        .execution_options(populate_existing=True)
    )
    event_id = await record_event(
        session,
        provider=provider,
        event_key=provider_refund_id or refund_no,
        kind="refund",
        order_id=refund.order_id if refund is not None else None,
        amount_fen=refund.amount_fen if refund is not None else 0,
        payload=payload,
    )
    if event_id is None:
        return "duplicate"
    if refund is None:
        await set_event_outcome(session, event_id, "unknown_refund")
        return "unknown_refund"
    new_status = RefundStatus.SUCCEEDED if succeeded else RefundStatus.FAILED
    settled = await session.execute(
        update(Refund)
        .where(Refund.id == refund.id, Refund.status == RefundStatus.PENDING.value)
        .values(
            status=new_status.value,
            provider_refund_id=(provider_refund_id or refund.provider_refund_id),
            completed_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if rowcount(settled) != 1:  # settled before, under another key
        await set_event_outcome(session, event_id, "ignored_not_pending")
        return "duplicate"
    await set_event_outcome(session, event_id, new_status.value)
    await session.refresh(refund)
    source = late_refund_source(refund)
    if source is not None:
        await _settle_late_refund(session, source, succeeded=succeeded)
    elif succeeded:
        await _refund_succeeded(session, refund, actor=f"provider:{provider}", now=now)
    else:
        await _refund_failed(session, refund, actor=f"provider:{provider}", now=now)
    return "applied"


async def _settle_late_refund(
    session: AsyncSession, source: LateRefundSource, *, succeeded: bool
) -> None:
    final = f"{source.outcome}_refunded" if succeeded else f"{source.outcome}_refund_failed"
    await session.execute(
        update(PaymentEvent)
        .where(
            PaymentEvent.provider == source.provider,
            PaymentEvent.event_key == source.transaction_id,
            PaymentEvent.kind == "payment",
            PaymentEvent.outcome == f"{source.outcome}_refund_pending",
        )
        .values(outcome=final)
        .execution_options(synchronize_session=False)
    )


async def _refund_succeeded(
    session: AsyncSession, refund: Refund, *, actor: str, now: datetime
) -> None:
    await session.execute(
        update(Order)
        .where(Order.id == refund.order_id)
        .values(refunded_fen=Order.refunded_fen + refund.amount_fen)
        .execution_options(synchronize_session=False)
    )
    await publish(
        session,
        OrderRefunded(
            order_id=refund.order_id,
            amount_fen=refund.amount_fen,
            now=now,
            balance_fen=refund.balance_fen,
            refund_no=refund.refund_no,
        ),
    )
    row = (
        await session.execute(
            select(Order.status, Order.paid_fen, Order.refunded_fen).where(
                Order.id == refund.order_id
            )
        )
    ).one()
    if row.status == S.REFUNDING.value and row.refunded_fen >= row.paid_fen:
        await move(
            session,
            order_id=refund.order_id,
            frm=S.REFUNDING,
            to=S.REFUNDED,
            actor=actor,
            note=refund.refund_no,
            now=now,
        )


async def _refund_failed(
    session: AsyncSession, refund: Refund, *, actor: str, now: datetime
) -> None:
    if await current_status(session, refund.order_id) != S.REFUNDING:
        return
    before = await session.scalar(
        select(OrderEvent.from_status)
        .where(OrderEvent.order_id == refund.order_id, OrderEvent.to_status == S.REFUNDING.value)
        .order_by(OrderEvent.id.desc())
        .limit(1)
    )
    back = OrderStatus(before) if before in (S.PAID, S.SHIPPED, S.COMPLETED) else S.PAID
    await move(
        session,
        order_id=refund.order_id,
        frm=S.REFUNDING,
        to=back,
        actor=actor,
        note=f"{refund.refund_no} failed",
        now=now,
    )

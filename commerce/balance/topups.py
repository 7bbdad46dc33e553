"""Top-ups: the shop's plans ("pay 100 get 110"), a customer's chosen top-up, and its
payment credited once.

A top-up has its own number ("TU" + the shop's date + digits) that the payment service
hands the provider as the order number (`TopUps` is the service's `OtherPayable` for
numbers with that prefix). The provider's notification is recorded as a PaymentEvent
(unique on provider + transaction id: a replayed copy is a "duplicate"), and the top-up
moves pending -> credited with a conditional UPDATE, so however many notifications
arrive, of one transaction or of two, the balance is credited once; a second transaction
paying an already credited top-up is recorded "already_paid" and left for staff.
Forged notifications never get here: the notify endpoint checks the provider's signature.
A top-up does not expire in the shop: money that arrives for it is credited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.balance import calculations as calc
from commerce.balance import ledger
from commerce.balance.models import TopUp, TopUpPlan, TopUpStatus
from commerce.customers.models import Customer
from commerce.db import rowcount
from commerce.db import upsert_insert as _insert
from commerce.errors import ErrorCode, ShopError
from commerce.messaging import notices
from commerce.orders.rows import SHOP_TZ, random_digits
from commerce.payments import records as payment_records
from commerce.payments.service import Due
from commerce.rules import as_utc, utcnow

TOPUP_NO_PREFIX = "TU"
PAY_WITHIN = timedelta(minutes=30)  # how long the provider's payment stays open
MAX_PLAN_FEN = 5_000_000  # 50,000 yuan: a typing slip, not a plan
MAX_PLANS = 8


@dataclass(frozen=True, slots=True)
class PlanView:
    pay_fen: int
    bonus_fen: int

    @property
    def receive_fen(self) -> int:
        return self.pay_fen + self.bonus_fen


@dataclass(frozen=True, slots=True)
class TopUpView:
    id: int
    topup_no: str
    customer_id: int
    pay_fen: int
    bonus_fen: int
    status: str
    expires_at: datetime


def _view(t: TopUp) -> TopUpView:
    return TopUpView(
        t.id, t.topup_no, t.customer_id, t.pay_fen, t.bonus_fen, t.status, as_utc(t.expires_at)
    )


# ---- plans (staff: /topup) ----------------------------------------------------------------


async def list_plans(session: AsyncSession) -> list[PlanView]:
    rows = await session.scalars(select(TopUpPlan).order_by(TopUpPlan.pay_fen))
    return [PlanView(p.pay_fen, p.bonus_fen) for p in rows.all()]


def check_plan(pay_fen: int, bonus_fen: int) -> None:
    if not 0 < pay_fen <= MAX_PLAN_FEN or not 0 <= bonus_fen <= pay_fen:
        raise ShopError(
            ErrorCode.AMOUNT_INVALID, pay_fen=pay_fen, bonus_fen=bonus_fen, max_fen=MAX_PLAN_FEN
        )


async def set_plan(
    session: AsyncSession, *, pay_fen: int, bonus_fen: int
) -> tuple[PlanView | None, PlanView]:
    """Add the plan paying `pay_fen`, or change its bonus: (before, after)."""
    check_plan(pay_fen, bonus_fen)
    plans = {p.pay_fen: p for p in await list_plans(session)}
    before = plans.get(pay_fen)
    if before is None and len(plans) >= MAX_PLANS:
        raise ShopError(ErrorCode.AMOUNT_INVALID, reason="too_many_plans", max_plans=MAX_PLANS)
    await session.execute(
        _insert(session, TopUpPlan)
        .values(pay_fen=pay_fen, bonus_fen=bonus_fen, created_at=utcnow())
        .on_conflict_do_update(index_elements=["pay_fen"], set_={"bonus_fen": bonus_fen})
    )
    return before, PlanView(pay_fen, bonus_fen)


async def remove_plan(session: AsyncSession, *, pay_fen: int) -> PlanView:
    plans = await list_plans(session)
    found = next((p for p in plans if p.pay_fen == pay_fen), None)
    if found is None:
        raise ShopError(ErrorCode.TOPUP_PLAN_NOT_FOUND, plans=[p.pay_fen for p in plans])
    await session.execute(delete(TopUpPlan).where(TopUpPlan.pay_fen == pay_fen))
    return found


# ---- a customer's top-up ------------------------------------------------------------------


async def start_topup(
    session: AsyncSession, *, customer_id: int, pay_fen: int, now: datetime | None = None
) -> TopUpView:
    """A pending top-up of the plan paying `pay_fen` (TOPUP_PLAN_NOT_FOUND, details: plans)."""
    now = as_utc(now or utcnow())
    plans = await list_plans(session)
    plan = next((p for p in plans if p.pay_fen == pay_fen), None)
    if plan is None:
        raise ShopError(ErrorCode.TOPUP_PLAN_NOT_FOUND, plans=[p.pay_fen for p in plans])
    for _attempt in range(5):
        inserted = await session.execute(
            _insert(session, TopUp)
            .values(
                topup_no=f"{TOPUP_NO_PREFIX}{now.astimezone(SHOP_TZ):%Y%m%d}{random_digits(10)}",
                customer_id=customer_id,
                pay_fen=plan.pay_fen,
                bonus_fen=plan.bonus_fen,
                status=TopUpStatus.PENDING.value,
                created_at=now,
                expires_at=now + PAY_WITHIN,
            )
            .on_conflict_do_nothing()
            .returning(TopUp.id)
        )
        topup_id = inserted.scalar_one_or_none()
        if topup_id is not None:
            topup = await session.get(TopUp, topup_id)
            assert topup is not None
            return _view(topup)
    raise RuntimeError("could not allocate a unique top-up number")


async def get_topup(session: AsyncSession, *, topup_no: str) -> TopUpView | None:
    found = await session.scalar(
        select(TopUp).where(TopUp.topup_no == topup_no).execution_options(populate_existing=True)
    )
    return _view(found) if found is not None else None


async def record_topup_payment(
    session: AsyncSession,
    *,
    provider: str,
    topup_no: str,
    transaction_id: str,
    amount_fen: int,
    payload: dict,
    now: datetime | None = None,
) -> str:
    """Apply a verified payment of a top-up once: "applied" | "duplicate" | "unknown_order" |
    "amount_mismatch" | "already_paid". Applied: the paid amount into cash, the plan's bonus
    into bonus, the customer told in this transaction."""
    now = as_utc(now or utcnow())
    topup = await session.scalar(select(TopUp).where(TopUp.topup_no == topup_no))
    event_id = await payment_records.record_event(
        session,
        provider=provider,
        event_key=transaction_id,
        kind="payment",
        order_id=None,
        amount_fen=amount_fen,
        payload={**payload, "topup_no": topup_no},
    )
    if event_id is None:
        return "duplicate"
    if topup is None:
        result = "unknown_order"
    elif amount_fen != topup.pay_fen:
        result = "amount_mismatch"
    else:
        claimed = await session.execute(
            update(TopUp)
            .where(TopUp.id == topup.id, TopUp.status == TopUpStatus.PENDING.value)
            .values(
                status=TopUpStatus.CREDITED.value,
                provider=provider[:20],
                transaction_id=transaction_id[:64],
                credited_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        result = "applied" if rowcount(claimed) == 1 else "already_paid"
    await payment_records.set_event_outcome(session, event_id, result)
    if result != "applied":
        return result
    assert topup is not None
    await ledger.lock(session, topup.customer_id)
    await ledger.apply(
        session,
        customer_id=topup.customer_id,
        moves=calc.topup_moves(pay_fen=topup.pay_fen, bonus_fen=topup.bonus_fen),
        reason="topup",
        topup_id=topup.id,
        ref=topup.topup_no,
        now=now,
    )
    openid = await session.scalar(select(Customer.openid).where(Customer.id == topup.customer_id))
    balances = await ledger.balance_of(session, topup.customer_id)
    if openid is not None:
        notices.queue(
            session,
            openid=openid,
            template="topup_credited",
            data={
                "pay_fen": topup.pay_fen,
                "bonus_fen": topup.bonus_fen,
                "balance_fen": balances.balance_fen,
                "topup_no": topup.topup_no,
            },
        )
    return result


class TopUps:
    """Top-ups as the payment service's `OtherPayable` (numbers starting "TU")."""

    def owns(self, number: str) -> bool:
        return number.startswith(TOPUP_NO_PREFIX)

    async def due(self, session: AsyncSession, *, number: str) -> Due:
        topup = await get_topup(session, topup_no=number)
        if topup is None:
            raise ShopError(ErrorCode.ORDER_NOT_FOUND, order_no=number)
        if topup.status != TopUpStatus.PENDING:
            raise ShopError(ErrorCode.ILLEGAL_TRANSITION, order_no=number, status=topup.status)
        if topup.expires_at <= utcnow():
            raise ShopError(ErrorCode.ORDER_EXPIRED, order_no=number)
        return Due(topup.pay_fen, f"余额充值 {topup.pay_fen // 100} 元", topup.expires_at)

    async def record(
        self,
        session: AsyncSession,
        *,
        provider: str,
        number: str,
        transaction_id: str,
        amount_fen: int,
        paid_at: datetime,
        payload: dict,
    ) -> str:
        return await record_topup_payment(
            session,
            provider=provider,
            topup_no=number,
            transaction_id=transaction_id,
            amount_fen=amount_fen,
            payload=payload,
            now=paid_at,
        )

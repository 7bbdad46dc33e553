"""Points: earned for paid spending, a first share and a successful referral; spent at checkout.

Every movement is a row of the ledger (`PointsEntry`, unique on customer + reason + ref)
and moves `Customer.points_balance` by the same delta in the same transaction, only
when its row was inserted: so each award or reversal happens once, whoever repeats it
(a duplicate payment notification, a job run twice, two workers), and the balance is
always the sum of the ledger's deltas.

Reasons and refs (the ref names what the movement is for, which is what makes it unique):
- "purchase" ref=<order id>: floor(paid yuan) x points_per_yuan, when the order is paid;
- "share" ref="first": points_first_share, the first time the customer shares an invite;
- "referral" ref=<buyer id>: points_referral to the buyer's referrer, on the buyer's
  first paid order;
- "review" ref=<order id>: review_points for the (one) review of a received order;
- "redeem" ref=<order id>: minus the points spent on an order (`spend`, by place_order);
- "redeem_back" ref=<order id>: those points back when the unpaid order is cancelled;
- "purchase_refund" / "redeem_refund" ref=<order id>@<refunded_fen after the refund>:
  on every (partial) refund, the purchase points taken back and the spent points given
  back in proportion to the money refunded so far;
- "referral_refund" ref=<order id>@<refunded_fen after the refund>: the referrer's points
  that the friend's (first paid) order earned, taken back from the referrer in the same
  proportion: a refund takes back what its order gave, to whoever it gave it. Cumulative shares are floored, so the
  sum of the reversals never exceeds the award and a full refund reaches it exactly.

Policy when a reversal exceeds the balance (the points were spent elsewhere meanwhile):
the balance cannot go below zero (a CHECK), and a customer whose refund is due must not
be refused it or made to owe points. The reversal takes what the balance holds; the rest
is written off by the shop and recorded as a "shortfall" row with delta 0 whose ref ends
with ":<points not recovered>", so the ledger still explains every point.

Points a payment earned are announced with a queued "points_earned" notice
(`commerce.messaging.notices`), which the payment service folds into its "payment received"
message, so that WeChat's per-window message count is not spent on them.

The earning rules come from the session (`commerce.rules.session_rules`): the status machine
that calls the hooks is driven by payment notifications and jobs that carry no rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.customers.models import Customer
from commerce.db import rowcount, upsert_insert
from commerce.loyalty import badges
from commerce.loyalty.badges import Badge
from commerce.loyalty.calculations import purchase_points, refund_part
from commerce.loyalty.models import PointsEntry
from commerce.messaging import notices
from commerce.orders.models import Order
from commerce.rules import ShopRules, as_utc, session_rules

PURCHASE = "purchase"
SHARE = "share"
REFERRAL = "referral"
REDEEM = "redeem"
REDEEM_BACK = "redeem_back"
PURCHASE_REFUND = "purchase_refund"
REDEEM_REFUND = "redeem_refund"
REFERRAL_REFUND = "referral_refund"
SHORTFALL = "shortfall"
REVIEW = "review"


@dataclass(frozen=True)
class PointsMove:
    """One ledger row, for the "me" page's history."""

    delta: int
    reason: str
    order_id: int | None
    created_at: datetime


async def balance(session: AsyncSession, customer_id: int) -> int:
    """The customer's points now (0 for an unknown customer)."""
    held = await session.scalar(
        select(Customer.points_balance)
        .where(Customer.id == customer_id)
        .execution_options(populate_existing=True)
    )
    return int(held or 0)


async def history(session: AsyncSession, *, customer_id: int, limit: int = 10) -> list[PointsMove]:
    """The customer's latest movements, newest first (shortfall rows, which move nothing, left out)."""
    rows = await session.execute(
        select(PointsEntry.delta, PointsEntry.reason, PointsEntry.order_id, PointsEntry.created_at)
        .where(PointsEntry.customer_id == customer_id, PointsEntry.reason != SHORTFALL)
        .order_by(PointsEntry.id.desc())
        .limit(limit)
    )
    return [PointsMove(r.delta, r.reason, r.order_id, as_utc(r.created_at)) for r in rows]


async def _insert_entry(
    session: AsyncSession,
    *,
    customer_id: int,
    delta: int,
    reason: str,
    ref: str,
    order_id: int | None,
    now: datetime,
) -> bool:
    inserted = await session.scalar(
        upsert_insert(session, PointsEntry)
        .values(
            customer_id=customer_id,
            delta=delta,
            reason=reason,
            ref=ref[:64],
            order_id=order_id,
            created_at=as_utc(now),
        )
        .on_conflict_do_nothing()
        .returning(PointsEntry.id)
    )
    return inserted is not None


async def award(
    session: AsyncSession,
    *,
    customer_id: int,
    points: int,
    reason: str,
    ref: str,
    now: datetime,
    order_id: int | None = None,
) -> int:
    """Give `points` (> 0) once per (customer, reason, ref); the points given, 0 when done before."""
    if points <= 0:
        return 0
    if not await _insert_entry(
        session,
        customer_id=customer_id,
        delta=points,
        reason=reason,
        ref=ref,
        order_id=order_id,
        now=now,
    ):
        return 0
    await session.execute(
        update(Customer)
        .where(Customer.id == customer_id)
        .values(points_balance=Customer.points_balance + points)
        .execution_options(synchronize_session=False)
    )
    return points


async def take_back(
    session: AsyncSession,
    *,
    customer_id: int,
    points: int,
    reason: str,
    ref: str,
    now: datetime,
    order_id: int | None = None,
) -> int:
    """Take back up to `points` once per (customer, reason, ref); the points actually taken.

    Clamped to the balance (see the module docstring); the rest is recorded as a
    shortfall. The customer's row is locked first so that a checkout spending points
    at the same moment cannot slip between reading the balance and taking it.
    """
    if points <= 0:
        return 0
    held = await session.scalar(
        select(Customer.points_balance)
        .where(Customer.id == customer_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    taken = min(points, int(held or 0))
    if not await _insert_entry(
        session,
        customer_id=customer_id,
        delta=-taken,
        reason=reason,
        ref=ref,
        order_id=order_id,
        now=now,
    ):
        return 0
    if taken:
        await session.execute(
            update(Customer)
            .where(Customer.id == customer_id, Customer.points_balance >= taken)
            .values(points_balance=Customer.points_balance - taken)
            .execution_options(synchronize_session=False)
        )
    if taken < points:
        await _insert_entry(
            session,
            customer_id=customer_id,
            delta=0,
            reason=SHORTFALL,
            ref=f"{reason}:{ref}:{points - taken}",
            order_id=order_id,
            now=now,
        )
    return taken


async def spend(
    session: AsyncSession, *, customer_id: int, points: int, order_id: int, now: datetime
) -> bool:
    """Spend `points` on an order: False (nothing written) when the balance no longer has them."""
    if points <= 0:
        return True
    result = await session.execute(
        update(Customer)
        .where(Customer.id == customer_id, Customer.points_balance >= points)
        .values(points_balance=Customer.points_balance - points)
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) != 1:
        return False
    inserted = await _insert_entry(
        session,
        customer_id=customer_id,
        delta=-points,
        reason=REDEEM,
        ref=str(order_id),
        order_id=order_id,
        now=now,
    )
    assert inserted, "an order spends its points once: it is new"
    return True


async def award_first_share(
    session: AsyncSession, *, customer_id: int, rules: ShopRules, now: datetime
) -> int:
    """points_first_share the first time the customer shares an invite; 0 afterwards."""
    return await award(
        session,
        customer_id=customer_id,
        points=rules.points_first_share,
        reason=SHARE,
        ref="first",
        now=now,
    )


async def earned_on(session: AsyncSession, *, order_id: int) -> int:
    """The purchase points an order earned (0 before it is paid)."""
    earned = await session.scalar(
        select(func.coalesce(func.sum(PointsEntry.delta), 0)).where(
            PointsEntry.order_id == order_id, PointsEntry.reason == PURCHASE
        )
    )
    return int(earned or 0)


# ---- the hooks (commerce.events) ---------------------------------------------


async def on_paid(session: AsyncSession, *, order_id: int, now: datetime) -> None:
    """Purchase points to the buyer; on the first paid order, the badge and the referrer's points."""
    rules = session_rules(session)
    row = (
        await session.execute(select(Order.customer_id, Order.paid_fen).where(Order.id == order_id))
    ).one()
    earned = await award(
        session,
        customer_id=row.customer_id,
        points=purchase_points(row.paid_fen, rules),
        reason=PURCHASE,
        ref=str(order_id),
        order_id=order_id,
        now=now,
    )
    if earned:
        buyer = (
            await session.execute(
                select(Customer.openid, Customer.points_balance)
                .where(Customer.id == row.customer_id)
                .execution_options(populate_existing=True)
            )
        ).one()
        notices.queue(
            session,
            openid=buyer.openid,
            template="points_earned",
            data={"points": earned, "balance": buyer.points_balance},
        )
    await badges.award(session, customer_id=row.customer_id, badge=Badge.FIRST_ORDER, now=now)
    paid_before = await session.scalar(
        select(func.count())
        .select_from(Order)
        .where(
            Order.customer_id == row.customer_id,
            Order.id != order_id,
            Order.paid_at.is_not(None),
        )
    )
    referrer_id = await session.scalar(
        select(Customer.referrer_id).where(Customer.id == row.customer_id)
    )
    if not paid_before and referrer_id is not None and referrer_id != row.customer_id:
        # ref = the buyer: once per referred customer, also if two first orders race
        await award(
            session,
            customer_id=referrer_id,
            points=rules.points_referral,
            reason=REFERRAL,
            ref=str(row.customer_id),
            order_id=order_id,
            now=now,
        )


async def on_cancelled(session: AsyncSession, *, order_id: int, now: datetime) -> None:
    """The points spent on an unpaid order that was cancelled (or expired) go back, once."""
    row = (
        await session.execute(
            select(Order.customer_id, Order.points_used).where(Order.id == order_id)
        )
    ).one()
    await award(
        session,
        customer_id=row.customer_id,
        points=row.points_used,
        reason=REDEEM_BACK,
        ref=str(order_id),
        order_id=order_id,
        now=now,
    )


async def on_refund(
    session: AsyncSession, *, order_id: int, amount_fen: int, now: datetime
) -> None:
    """After a (partial) refund: purchase points back in proportion, spent points returned,
    and the referral points the order earned its buyer's referrer taken back in proportion.

    This refund's part is the cumulative share after it minus the cumulative share
    before it, so partial refunds add up to exactly the whole when the money is all back.
    """
    row = (
        await session.execute(
            select(Order.customer_id, Order.paid_fen, Order.refunded_fen, Order.points_used).where(
                Order.id == order_id
            )
        )
    ).one()
    after, before = row.refunded_fen, row.refunded_fen - amount_fen
    ref = f"{order_id}@{after}"
    earned = await earned_on(session, order_id=order_id)
    await take_back(
        session,
        customer_id=row.customer_id,
        points=refund_part(earned, before_fen=before, after_fen=after, paid_fen=row.paid_fen),
        reason=PURCHASE_REFUND,
        ref=ref,
        order_id=order_id,
        now=now,
    )
    await award(
        session,
        customer_id=row.customer_id,
        points=refund_part(
            row.points_used, before_fen=before, after_fen=after, paid_fen=row.paid_fen
        ),
        reason=REDEEM_REFUND,
        ref=ref,
        order_id=order_id,
        now=now,
    )
    referral = (
        await session.execute(
            select(PointsEntry.customer_id, func.sum(PointsEntry.delta))
            .where(PointsEntry.order_id == order_id, PointsEntry.reason == REFERRAL)
            .group_by(PointsEntry.customer_id)
        )
    ).first()
    if referral is not None and referral[1]:
        await take_back(
            session,
            customer_id=referral[0],
            points=refund_part(int(referral[1]), before_fen=before, after_fen=after, paid_fen=row.paid_fen),
            reason=REFERRAL_REFUND,
            ref=ref,
            order_id=order_id,
            now=now,
        )


async def on_review(session: AsyncSession, *, order_id: int, customer_id: int, now: datetime) -> int:
    """review_points for the review of a received order, once per order (0 disables)."""
    return await award(
        session,
        customer_id=customer_id,
        points=session_rules(session).review_points,
        reason=REVIEW,
        ref=str(order_id),
        order_id=order_id,
        now=now,
    )

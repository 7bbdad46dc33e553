"""What "会员" / "我的" shows of membership: the level, what is left to the next, total spent;
and what the levels take off for a customer ("有优惠吗").

Points and coupons are other capabilities' (`commerce.loyalty`, `commerce.promotions`):
the chat reads them beside this, and so will the stored balance when it comes.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.customers.models import Customer
from commerce.membership.codes import phone_tail
from commerce.membership.levels import current_levels, level_for, next_level
from commerce.membership.models import Member
from commerce.rules import MemberLevel, ShopRules


@dataclass(frozen=True, slots=True)
class MemberStanding:
    member: bool
    total_spent_fen: int
    phone_tail: str = ""
    level: MemberLevel | None = None  # None: no member, or below every level
    next_level: MemberLevel | None = None  # None at the top
    to_next_fen: int = 0  # still to spend for `next_level`
    # what a non-member's spending reached already (shown with the invitation)
    would_be: MemberLevel | None = None


async def standing(session: AsyncSession, *, customer_id: int, rules: ShopRules) -> MemberStanding:
    phone, total = await _phone_and_total(session, customer_id)
    levels = await current_levels(session, rules)
    reached = level_for(total, levels)
    ahead = next_level(total, levels)
    if phone is None:
        # a level above the first is worth telling a customer who has not joined yet
        above_the_first = reached.name and reached.threshold_fen > 0
        return MemberStanding(member=False, total_spent_fen=total, would_be=reached if above_the_first else None)
    return MemberStanding(
        member=True,
        total_spent_fen=total,
        phone_tail=phone_tail(phone),
        level=reached if reached.name else None,
        next_level=ahead[0] if ahead else None,
        to_next_fen=ahead[1] if ahead else 0,
    )


@dataclass(frozen=True, slots=True)
class MemberDiscount:
    """What the member levels take off for one customer ("有优惠吗"): a member's level, or
    for a customer who is no member the level joining gives (their spending counts)."""

    member: bool
    level: MemberLevel | None  # the level whose discount applies; None when it takes nothing off
    better: MemberLevel | None = None  # the next level up that takes more off; None at the top
    to_better_fen: int = 0  # still to spend for `better`


async def member_discount(session: AsyncSession, *, customer_id: int, rules: ShopRules) -> MemberDiscount:
    phone, total = await _phone_and_total(session, customer_id)
    levels = await current_levels(session, rules)
    reached = level_for(total, levels)
    better = next((lv for lv in levels if lv.threshold_fen > total and lv.discount_bp > reached.discount_bp), None)
    return MemberDiscount(
        member=phone is not None,
        level=reached if reached.discount_bp > 0 else None,
        better=better,
        to_better_fen=better.threshold_fen - total if better else 0,
    )


async def _phone_and_total(session: AsyncSession, customer_id: int) -> tuple[str | None, int]:
    """The member's phone (None: no member) and the customer's total spent."""
    phone = await session.scalar(select(Member.phone).where(Member.customer_id == customer_id))
    total = int(
        await session.scalar(
            select(Customer.total_spent_fen)
            .where(Customer.id == customer_id)
            .execution_options(populate_existing=True)
        )
        or 0
    )
    return phone, total

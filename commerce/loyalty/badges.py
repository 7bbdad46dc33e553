"""Badges: small achievements announced in chat (first order, first group filled, five referrals).

`award` gives a badge once per customer (the (customer, badge) pair is unique) and
queues the announcement (`commerce.messaging.notices`, template "badge_awarded"), so it is sent
after the commit by whoever commits. Callers decide when a badge is earned.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.customers.models import Customer
from commerce.db import upsert_insert
from commerce.loyalty.models import CustomerBadge
from commerce.messaging import notices
from commerce.rules import as_utc


class Badge(enum.StrEnum):
    FIRST_ORDER = "first_order"
    FIRST_GROUP = "first_group"  # a group buy the customer was in filled
    FIVE_REFERRALS = "five_referrals"


async def award(session: AsyncSession, *, customer_id: int, badge: Badge, now: datetime) -> bool:
    """Give `badge` to the customer; False (and nothing queued) when they have it already."""
    inserted = await session.scalar(
        upsert_insert(session, CustomerBadge)
        .values(customer_id=customer_id, badge=Badge(badge).value, awarded_at=as_utc(now))
        .on_conflict_do_nothing()
        .returning(CustomerBadge.id)
    )
    if inserted is None:
        return False
    openid = await session.scalar(select(Customer.openid).where(Customer.id == customer_id))
    if openid is not None:
        notices.queue(session, openid=openid, template="badge_awarded", data={"badge": Badge(badge).value})
    return True


async def badges_of(session: AsyncSession, *, customer_id: int) -> list[str]:
    """The customer's badges, in the order earned."""
    rows = await session.scalars(
        select(CustomerBadge.badge)
        .where(CustomerBadge.customer_id == customer_id)
        .order_by(CustomerBadge.awarded_at, CustomerBadge.id)
    )
    return list(rows)

"""Who a staff broadcast may reach: WeChat lets an account send customer-service
messages to a user only within 48 hours of that user's last message to it.

`Customer.last_message_at` is the start of that window (set whenever they write).
Nothing here writes.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.customers.models import Customer
from commerce.rules import as_utc

WECHAT_WINDOW = timedelta(hours=48)


def _reachable(now: datetime, window: timedelta) -> tuple[ColumnElement[bool], ...]:
    now = as_utc(now)
    return (
        Customer.subscribed.is_(True),
        Customer.last_message_at.is_not(None),
        Customer.last_message_at > now - window,
        Customer.last_message_at <= now,
    )


async def reachable_customers(
    session: AsyncSession,
    *,
    now: datetime,
    window: timedelta = WECHAT_WINDOW,
    limit: int = 10_000,
) -> list[str]:
    """Openids of subscribed customers whose window is still open at `now`.

    Those whose window closes soonest come first, so a broadcast sent down the list
    (and cut at `limit`) reaches first the ones it could soon no longer reach."""
    rows = await session.scalars(
        select(Customer.openid)
        .where(*_reachable(now, window))
        .order_by(Customer.last_message_at, Customer.id)
        .limit(limit)
    )
    return list(rows)


async def count_reachable(
    session: AsyncSession, *, now: datetime, window: timedelta = WECHAT_WINDOW
) -> int:
    """How many `reachable_customers` would return without a limit (for a confirmation)."""
    count = await session.scalar(
        select(func.count()).select_from(Customer).where(*_reachable(now, window))
    )
    return int(count or 0)

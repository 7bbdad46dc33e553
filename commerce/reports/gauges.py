"""Numbers the metrics endpoint shows at each scrape: the outbox's depth and orders by status."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.messaging.models import OutboxMessage, OutboxStatus
from commerce.orders.models import Order

# the outbox rows a scrape counts: waiting, being sent, given up, and maybe-sent (staff check)
OUTBOX_GAUGED = (OutboxStatus.PENDING, OutboxStatus.SENDING, OutboxStatus.FAILED, OutboxStatus.UNCERTAIN)


async def outbox_and_orders(session: AsyncSession) -> tuple[dict[str, int], dict[str, int]]:
    """Outbox rows not (known to be) sent, and orders, each counted by status."""
    outbox = await session.execute(
        select(OutboxMessage.status, func.count())
        .where(OutboxMessage.status.in_([s.value for s in OUTBOX_GAUGED]))
        .group_by(OutboxMessage.status)
    )
    orders = await session.execute(select(Order.status, func.count()).group_by(Order.status))
    return _counts(outbox.all()), _counts(orders.all())


def _counts(rows: Any) -> dict[str, int]:
    return {str(status): int(count) for status, count in rows}

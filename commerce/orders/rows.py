"""Row-level helpers shared by the order modules (orders, order_status, payment_records,
refunds): conflict-tolerant inserts, the random digits of order and refund numbers, reading
and locking an order's row. Private to `commerce`; nothing here commits."""

from __future__ import annotations

import secrets
from datetime import timedelta, timezone

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.db import rowcount
from commerce.errors import ErrorCode, ShopError
from commerce.orders.models import Order, OrderStatus

SHOP_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")  # the date inside order numbers




def random_digits(count: int) -> str:
    return f"{secrets.randbelow(10**count):0{count}d}"


async def current_status(session: AsyncSession, order_id: int) -> OrderStatus:
    status = await session.scalar(select(Order.status).where(Order.id == order_id))
    if status is None:
        raise ShopError(ErrorCode.ORDER_NOT_FOUND, order_id=order_id)
    return OrderStatus(status)


async def lock_order(session: AsyncSession, order_id: int) -> Order:
    """Serialise work on one order: a no-op UPDATE takes the row lock (PostgreSQL) or the
    write lock (SQLite) before the order is read, so check-then-write is safe."""
    result = await session.execute(
        update(Order)
        .where(Order.id == order_id)
        .values(status=Order.status)
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) != 1:
        raise ShopError(ErrorCode.ORDER_NOT_FOUND, order_id=order_id)
    order = await session.scalar(
        select(Order).where(Order.id == order_id).execution_options(populate_existing=True)
    )
    assert order is not None
    return order

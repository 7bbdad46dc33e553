"""Orders as staff look them up: by status (a page at a time), or one by number or id.

The views are the order core's `OrderView`s; moves (ship, refund) are the order
core's own functions. Nothing here writes.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.errors import ErrorCode, ShopError
from commerce.orders import placement as orders
from commerce.orders import views as order_views
from commerce.orders.models import Order, OrderStatus
from commerce.rules import as_utc

MAX_PAGE = 50
_ORDER_NO = re.compile(r"^[A-Z]{2}\d{16}$")


async def list_orders_by_status(
    session: AsyncSession,
    *,
    statuses: Collection[OrderStatus] | None,
    placed: tuple[datetime, datetime] | None = None,
    limit: int = 10,
    offset: int = 0,
) -> tuple[list[order_views.OrderView], int]:
    """A page of orders in these statuses (None: all), placed in [start, end) when `placed`
    is given, newest first, and how many there are."""
    where: list[ColumnElement[bool]] = []
    if statuses is not None:
        where.append(Order.status.in_([OrderStatus(s).value for s in statuses]))
    if placed is not None:
        start, end = (as_utc(moment) for moment in placed)
        where += [Order.created_at >= start, Order.created_at < end]
    total = await session.scalar(select(func.count()).select_from(Order).where(*where))
    ids = (
        await session.scalars(
            select(Order.id)
            .where(*where)
            .order_by(Order.created_at.desc(), Order.id.desc())
            .limit(max(1, min(limit, MAX_PAGE)))
            .offset(max(0, offset))
        )
    ).all()
    views = [await orders.get_order(session, order_id=order_id) for order_id in ids]
    return views, int(total or 0)


async def find_order(session: AsyncSession, *, ref: str) -> order_views.OrderView:
    """An order by its number ("SF2026050112345678", any case; the 16 digits alone do
    too) or by its id ("42", "#42"); ORDER_NOT_FOUND."""
    text = (ref or "").strip().lstrip("#").upper()
    if _ORDER_NO.match(text):
        return await orders.get_order(session, order_no=text)
    if text.isascii() and text.isdigit():
        if len(text) == 16:
            return await orders.get_order(session, order_no=f"{orders.ORDER_NO_PREFIX}{text}")
        if int(text) < 2**31:
            return await orders.get_order(session, order_id=int(text))
    raise ShopError(ErrorCode.ORDER_NOT_FOUND, ref=ref)

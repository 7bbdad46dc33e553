"""Orders as staff look them up: by status (a page at a time), or one by number, the end of
its number, or id.

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
ORDER_TAIL_MIN = 6  # digits: the end of an order number staff read off a parcel or a phone
TAILS_SHOWN = 5  # the orders an ambiguous end lists
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


async def find_order(session: AsyncSession, *, ref: str, by_id: bool = True) -> order_views.OrderView:
    """An order by its number ("SF2026050112345678", any case; the 16 digits alone do too),
    by the end of its number (ORDER_TAIL_MIN digits or more: "34103120", as staff read it
    off a parcel), or by its id ("42", "#42"; not when `by_id` is False: a caller whose
    short numbers name something else). Digits that end one order's number and are
    another's id are ambiguous too: nothing is guessed. ORDER_NOT_FOUND; ORDER_AMBIGUOUS
    (details: ref, orders [{order_no, status, payable_fen, created_at}] up to TAILS_SHOWN,
    more) when the digits fit several."""
    text = (ref or "").strip().lstrip("#").upper()
    if _ORDER_NO.match(text):
        return await orders.get_order(session, order_no=text)
    if text.isascii() and text.isdigit():
        if len(text) == 16:
            return await orders.get_order(session, order_no=f"{orders.ORDER_NO_PREFIX}{text}")
        found: list[int] = []
        if len(text) >= ORDER_TAIL_MIN:
            found += (await session.scalars(
                select(Order.id).where(Order.order_no.like(f"%{text}")).order_by(Order.id.desc()).limit(TAILS_SHOWN + 1)
            )).all()
        if by_id and int(text) < 2**31 and int(text) not in found:
            found += (await session.scalars(select(Order.id).where(Order.id == int(text)))).all()
        if len(found) == 1:
            return await orders.get_order(session, order_id=found[0])
        if found:
            views = [await orders.get_order(session, order_id=order_id) for order_id in found[:TAILS_SHOWN]]
            raise ShopError(ErrorCode.ORDER_AMBIGUOUS, ref=text, more=len(found) > TAILS_SHOWN, orders=[
                {"order_no": v.order_no, "status": str(v.status), "payable_fen": v.payable_fen, "created_at": v.created_at}
                for v in views
            ])
    raise ShopError(ErrorCode.ORDER_NOT_FOUND, ref=ref)

"""Shop statistics for staff: today and the last 7 days, or the days staff name.

Definitions (a period runs from a local midnight up to `now`, or up to the local
midnight after its last day when that is past):
- orders: orders placed (created) in the period, whatever became of them;
- paid_orders, gmv_fen, paying_customers: orders *paid* in the period (paid_at), their
  paid amounts (GMV is not reduced by refunds: those are `refunds_fen`) and their
  distinct customers;
- average_order_fen: gmv_fen / paid_orders, rounded to the fen;
- refunds_fen: refunds that succeeded in the period (completed_at). Refunds of late or
  duplicate payments are left out: that money never counted as GMV;
- carts: customers who added something to their cart in the period (CartLine.added_at:
  lines still in a cart) or placed an order in it (their lines left the cart then);
- conversion: paying customers / customers who had a cart, placed or paid an order in
  the period (0.0 when nobody did);
- top_products: the 5 products most bought (units) in orders paid in the period, with
  their revenue at line prices (before order discounts).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.cart.models import CartLine
from commerce.catalog.admin import low_stock
from commerce.catalog.models import Product
from commerce.orders.models import Order, OrderLine
from commerce.payments.models import Refund, RefundStatus
from commerce.payments.refunds import LATE_REFUND_NO_PREFIX
from commerce.rules import as_utc

TOP_PRODUCTS = 5
LOW_STOCK_ITEMS = 10


@dataclass(frozen=True)
class PeriodStats:
    orders: int
    paid_orders: int
    gmv_fen: int
    paying_customers: int
    carts: int
    conversion: float
    average_order_fen: int
    refunds_fen: int
    top_products: tuple[tuple[str, int, int], ...]  # (name, quantity, revenue_fen)
    since: datetime | None = None  # UTC start of the period


@dataclass(frozen=True)
class ShopStats:
    today: PeriodStats
    last_7_days: PeriodStats
    low_stock: tuple[dict[str, Any], ...]  # {product, label, sku_code, stock, threshold}


def local_midnight(now: datetime, tz: ZoneInfo, *, days_ago: int = 0) -> datetime:
    """The UTC moment of local midnight `days_ago` days before `now`'s local date."""
    local_day = as_utc(now).astimezone(tz).date() - timedelta(days=days_ago)
    return datetime.combine(local_day, time.min, tzinfo=tz).astimezone(UTC)


def local_day_bounds(start: date, end: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[local midnight of `start`, local midnight after `end`) as UTC datetimes (`/stats
    昨天`, the exports' dates)."""
    return (
        datetime.combine(start, time.min, tzinfo=tz).astimezone(UTC),
        datetime.combine(end + timedelta(days=1), time.min, tzinfo=tz).astimezone(UTC),
    )


async def _customers(session: AsyncSession, query: Any) -> set[int]:
    return set((await session.scalars(query)).all())


async def period_stats(session: AsyncSession, *, since: datetime, until: datetime) -> PeriodStats:
    """The numbers of the module docstring for [since, until]."""
    since, until = as_utc(since), as_utc(until)
    placed = Order.created_at.between(since, until)
    paid = Order.paid_at.between(since, until)
    orders_placed = await session.scalar(select(func.count()).select_from(Order).where(placed))
    paid_row = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(Order.paid_fen), 0),
                func.count(distinct(Order.customer_id)),
            ).where(paid)
        )
    ).one()
    paid_orders, gmv, paying = int(paid_row[0]), int(paid_row[1]), int(paid_row[2])
    refunds = await session.scalar(
        select(func.coalesce(func.sum(Refund.amount_fen), 0)).where(
            Refund.status == RefundStatus.SUCCEEDED.value,
            Refund.completed_at.between(since, until),
            Refund.refund_no.not_like(f"{LATE_REFUND_NO_PREFIX}%"),
        )
    )
    carted = await _customers(
        session,
        select(CartLine.customer_id).where(CartLine.added_at.between(since, until)).distinct(),
    )
    ordered = await _customers(session, select(Order.customer_id).where(placed).distinct())
    payers = await _customers(session, select(Order.customer_id).where(paid).distinct())
    shoppers = carted | ordered | payers
    top = (
        await session.execute(
            select(
                Product.name,
                func.sum(OrderLine.quantity).label("quantity"),
                func.sum(OrderLine.quantity * OrderLine.unit_price_fen).label("revenue"),
            )
            .join(Order, Order.id == OrderLine.order_id)
            .join(Product, Product.id == OrderLine.product_id)
            .where(paid)
            .group_by(OrderLine.product_id, Product.name)
            .order_by(
                func.sum(OrderLine.quantity).desc(),
                func.sum(OrderLine.quantity * OrderLine.unit_price_fen).desc(),
                OrderLine.product_id,
            )
            .limit(TOP_PRODUCTS)
        )
    ).all()
    return PeriodStats(
        orders=int(orders_placed or 0),
        paid_orders=paid_orders,
        gmv_fen=gmv,
        paying_customers=paying,
        carts=len(carted | ordered),
        conversion=round(len(payers) / len(shoppers), 4) if shoppers else 0.0,
        average_order_fen=(gmv + paid_orders // 2) // paid_orders if paid_orders else 0,
        refunds_fen=int(refunds or 0),
        top_products=tuple((name, int(q), int(r)) for name, q, r in top),
        since=since,
    )


async def shop_stats(session: AsyncSession, *, now: datetime, tz: ZoneInfo) -> ShopStats:
    """Today (since local midnight in `tz`) and the last 7 days (since local midnight 6
    days ago), up to `now`; and the on-sale variants low on stock."""
    now = as_utc(now)
    await session.flush()
    today = await period_stats(session, since=local_midnight(now, tz), until=now)
    week = await period_stats(session, since=local_midnight(now, tz, days_ago=6), until=now)
    return ShopStats(today=today, last_7_days=week, low_stock=await low_stock_rows(session, limit=LOW_STOCK_ITEMS))


async def days_stats(session: AsyncSession, *, first: date, last: date, now: datetime, tz: ZoneInfo) -> PeriodStats:
    """The days from `first` to `last` (the shop's calendar in `tz`, cut at its midnight),
    up to `now` when they have not ended yet (`/stats 昨天`, `/stats 本周`)."""
    since, end = local_day_bounds(first, last, tz)
    until = min(as_utc(now), end - timedelta(microseconds=1))  # `between` takes both ends
    await session.flush()
    return await period_stats(session, since=since, until=until)


async def low_stock_rows(session: AsyncSession, *, limit: int) -> tuple[dict[str, Any], ...]:
    """Up to `limit` on-sale variants at or below their low-stock threshold, the emptiest
    first: {product, label, sku_code, stock, threshold} (`/stats`, and `/stock` alone)."""
    variants = sorted(  # the query keeps a product's variants together
        ((product.name, variant) for product in await low_stock(session, limit=limit) for variant in product.variants),
        key=lambda named: named[1].stock,
    )
    return tuple(
        {
            "product": name,
            "label": variant.label,
            "sku_code": variant.sku_code,
            "stock": variant.stock,
            "threshold": variant.low_stock_threshold,
        }
        for name, variant in variants[:limit]
    )

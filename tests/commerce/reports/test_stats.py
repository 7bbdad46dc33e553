"""Shop statistics on a hand-built week of orders (placed and paid through the order core)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from commerce.cart.cart import add_to_cart
from commerce.cart.models import CartLine
from commerce.orders import views as order_views
from commerce.payments import refunds
from commerce.reports import stats
from commerce.wiring import shop_sessions
from tests.commerce.orders.test_queries import RULES, customer, run, shop_order, variant

TZ = ZoneInfo("Asia/Shanghai")


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment in May 2026, Shanghai time."""
    return datetime(2026, 5, day, hour, minute, tzinfo=TZ)


NOW = local(7, 12)


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return shop_sessions(engine)


async def cart_line(
    sessions: async_sessionmaker[AsyncSession], customer_id: int, variant_id: int, at: datetime
) -> None:
    async with sessions() as session:
        await add_to_cart(
            session, customer_id=customer_id, variant_id=variant_id, quantity=1, rules=RULES
        )
        await session.execute(
            update(CartLine)
            .where(CartLine.customer_id == customer_id)
            .values(added_at=at.astimezone(UTC))  # SQLite keeps wall clocks: store UTC
        )
        await session.commit()


async def refund(
    sessions: async_sessionmaker[AsyncSession], order: order_views.OrderView, amount: int, at: datetime
) -> None:
    started = await run(
        sessions,
        refunds.start_refund,
        order_id=order.id,
        amount_fen=amount,
        reason="部分退款",
        actor="staff:x",
        now=at,
    )
    outcome = await run(
        sessions,
        refunds.record_refund_result,
        provider="sandbox",
        refund_no=started.refund_no,
        succeeded=True,
        provider_refund_id=f"R-{started.refund_no}",
        payload={},
        now=at + timedelta(minutes=5),
    )
    assert outcome == "applied"


async def test_today_and_the_last_seven_days(sessions: async_sessionmaker[AsyncSession]) -> None:
    apple = await variant(sessions, name="苹果", price_fen=1000, stock=100)
    tea = await variant(sessions, name="龙井", price_fen=5000, stock=50)
    await variant(sessions, name="樱桃", price_fen=8000, stock=2)  # low on stock
    c1, c2, c3, c4, c5, c6, c7 = [await customer(sessions) for _ in range(7)]

    # today: A and B placed and paid; D placed, unpaid; F placed yesterday, paid today
    await shop_order(
        sessions, [(apple, 2)], customer_id=c1, placed_at=local(7, 9), paid_at=local(7, 9, 5)
    )
    b = await shop_order(
        sessions, [(tea, 2)], customer_id=c2, placed_at=local(7, 10), paid_at=local(7, 10, 1)
    )
    await shop_order(sessions, [(apple, 1)], customer_id=c3, placed_at=local(7, 11))
    await shop_order(
        sessions, [(apple, 1)], customer_id=c5, placed_at=local(6, 23, 50), paid_at=local(7, 0, 10)
    )
    # earlier this week: C; before the week: E (counted nowhere)
    await shop_order(
        sessions, [(apple, 3)], customer_id=c1, placed_at=local(3, 15), paid_at=local(3, 15, 2)
    )
    await shop_order(
        sessions,
        [(tea, 1)],
        customer_id=c4,
        placed_at=local(1, 23, 59) - timedelta(days=1),
        paid_at=local(1, 0) - timedelta(minutes=1),
    )
    # carts without orders: today (c6) and three days ago (c7)
    await cart_line(sessions, c6, apple, local(7, 8))
    await cart_line(sessions, c7, tea, local(4, 8))
    await refund(sessions, b, 3000, local(7, 11))

    result = await run(sessions, stats.shop_stats, now=NOW, tz=TZ)

    today = result.today
    assert today.since == local(7, 0).astimezone(UTC)
    assert (today.orders, today.paid_orders, today.paying_customers) == (3, 3, 3)
    assert today.gmv_fen == (2000 + 800) + 10000 + (1000 + 800) == 14600
    assert today.average_order_fen == 4867  # 14600 / 3, rounded
    assert today.refunds_fen == 3000
    assert today.carts == 4  # c6 (cart) + c1, c2, c3 (orders placed today)
    assert today.conversion == 0.6  # payers c1, c2, c5 out of c1, c2, c3, c5, c6
    assert today.top_products == (("苹果", 3, 3000), ("龙井", 2, 10000))

    week = result.last_7_days
    assert week.since == local(1, 0).astimezone(UTC)
    assert (week.orders, week.paid_orders, week.paying_customers) == (5, 4, 3)
    assert week.gmv_fen == 14600 + 3800
    assert week.average_order_fen == 4600
    assert week.refunds_fen == 3000
    assert week.carts == 6  # c6, c7 + c1, c2, c3, c5
    assert week.conversion == 0.5
    assert week.top_products == (("苹果", 6, 6000), ("龙井", 2, 10000))

    [low] = result.low_stock
    assert (low["product"], low["stock"], low["threshold"]) == ("樱桃", 2, 5)
    assert low["sku_code"].startswith("SKU-")


async def test_an_empty_shop(sessions: async_sessionmaker[AsyncSession]) -> None:
    result = await run(sessions, stats.shop_stats, now=NOW, tz=TZ)
    for period in (result.today, result.last_7_days):
        assert (period.orders, period.paid_orders, period.gmv_fen, period.carts) == (0, 0, 0, 0)
        assert (period.conversion, period.average_order_fen, period.top_products) == (0.0, 0, ())
    assert result.low_stock == ()


def test_local_midnight() -> None:
    # 01:30 on May 7 in Shanghai is still May 6 in UTC
    now = local(7, 1, 30)
    assert stats.local_midnight(now, TZ) == datetime(2026, 5, 6, 16, 0, tzinfo=UTC)
    assert stats.local_midnight(now, TZ, days_ago=6) == datetime(2026, 4, 30, 16, 0, tzinfo=UTC)
    assert stats.local_midnight(now, ZoneInfo("UTC")) == datetime(2026, 5, 6, 0, 0, tzinfo=UTC)


async def test_days_stats_cut_the_named_days_at_the_shops_midnight(sessions: async_sessionmaker[AsyncSession]) -> None:
    """`/stats 昨天`, `/stats 12-01`: a past day runs from its midnight to the next (an order
    paid at 00:10 belongs to the day it was paid); a day not over counts up to now."""
    apple = await variant(sessions, name="苹果", price_fen=1000, stock=100)
    c1, c2, c3 = [await customer(sessions) for _ in range(3)]
    await shop_order(sessions, [(apple, 1)], customer_id=c1, placed_at=local(6, 0, 0), paid_at=local(6, 0, 1))
    await shop_order(sessions, [(apple, 2)], customer_id=c2, placed_at=local(6, 23, 50), paid_at=local(7, 0, 10))
    await shop_order(sessions, [(apple, 4)], customer_id=c3, placed_at=local(5, 23, 59), paid_at=local(5, 23, 59))

    yesterday = await run(sessions, stats.days_stats, first=local(6, 0).date(), last=local(6, 0).date(), now=NOW, tz=TZ)
    assert yesterday.since == local(6, 0).astimezone(UTC)
    assert (yesterday.orders, yesterday.paid_orders, yesterday.gmv_fen) == (2, 1, 1000 + 800)

    today = await run(sessions, stats.days_stats, first=NOW.date(), last=NOW.date(), now=NOW, tz=TZ)
    assert (today.orders, today.paid_orders, today.gmv_fen) == (0, 1, 2000 + 800)

    both = await run(sessions, stats.days_stats, first=local(5, 0).date(), last=NOW.date(), now=NOW, tz=TZ)
    assert (both.orders, both.paid_orders) == (3, 3)

"""`flash_sales.grab` against a real database, on SQLite and PostgreSQL: two winners for
the last unit at once (a gate that lost its state lets both through, or no gate at all),
and the database's conditional UPDATE, written last, gives the unit to one of them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from commerce.analytics.events import Event
from commerce.analytics.models import EventKind
from commerce.errors import ErrorCode, ShopError
from commerce.orders.models import Order
from commerce.promotions import flash_sales
from commerce.promotions.models import FlashClaim, FlashSale
from commerce.rules import ShopRules
from commerce.wiring import shop_sessions
from tests.commerce.factories import make_address, make_customer, make_variant, stock_of


async def test_the_last_unit_goes_to_one_of_two_winners_and_the_other_leaves_nothing_behind(
    engine: AsyncEngine,
) -> None:
    counted: list[Event] = []
    sessions = shop_sessions(engine, counted=counted.extend)
    now = datetime.now(UTC)
    async with sessions() as session:
        variant_id = await make_variant(session, stock=10)
        buyers = []
        for _ in range(2):
            customer_id = await make_customer(session)
            buyers.append((customer_id, await make_address(session, customer_id)))
        sale = await flash_sales.create_sale(
            session, variant_id=variant_id, price_fen=100, units=1, starts_at=now - timedelta(seconds=1),
            ends_at=now + timedelta(hours=1), per_user_limit=1, pay_minutes=15, now=now,
        )
        await session.commit()

    async def grab(session: AsyncSession, buyer: tuple[int, int], key: str) -> flash_sales.Grabbed:
        customer_id, address_id = buyer
        return await flash_sales.grab(
            session, sale_id=sale.id, customer_id=customer_id, address_id=address_id, idempotency_key=key,
            rules=ShopRules(), now=datetime.now(UTC),
        )

    async with sessions() as first, sessions() as second:
        won = await grab(first, buyers[0], "m1")  # its transaction still open: the unit is held, not yet sold
        late = asyncio.create_task(grab(second, buyers[1], "m2"))  # read one unit left; waits on a lock
        await asyncio.sleep(0.5)
        assert not late.done()
        await first.commit()
        with pytest.raises(ShopError) as refused:
            await late
        assert refused.value.code == ErrorCode.FLASH_SOLD_OUT
        await second.commit()  # what the refused grab leaves would be kept now: nothing

    async with sessions() as session:
        orders = (await session.execute(select(Order.id, Order.customer_id))).all()
        claims = (await session.execute(select(FlashClaim.customer_id))).scalars().all()
        counts = (await session.execute(select(FlashSale.held, FlashSale.sold))).one()
    assert [(o.id, o.customer_id) for o in orders] == [(won.order_id, buyers[0][0])]
    assert list(claims) == [buyers[0][0]]
    assert tuple(counts) == (1, 0)
    assert await stock_of(sessions, variant_id) == 9  # one unit reserved, not two
    assert [e.order_id for e in counted if e.kind == EventKind.ORDER] == [won.order_id]


async def test_a_sale_whose_stock_went_elsewhere_refuses_the_winner_and_keeps_nothing(
    engine: AsyncEngine,
) -> None:
    """The sale has units left, but the variant's stock was sold outside it meanwhile: the
    stock and the sale's count are taken together (one statement on PostgreSQL), so the
    winner is told "out of stock" and neither the count, a claim nor an order is kept."""
    sessions = shop_sessions(engine)
    now = datetime.now(UTC)
    async with sessions() as session:
        variant_id = await make_variant(session, stock=0)
        customer_id = await make_customer(session)
        address_id = await make_address(session, customer_id)
        sale = await flash_sales.create_sale(
            session, variant_id=variant_id, price_fen=100, units=3, starts_at=now - timedelta(seconds=1),
            ends_at=now + timedelta(hours=1), per_user_limit=1, pay_minutes=15, now=now,
        )
        await session.commit()
    async with sessions() as session:
        with pytest.raises(ShopError) as refused:
            await flash_sales.grab(
                session, sale_id=sale.id, customer_id=customer_id, address_id=address_id, idempotency_key="m",
                rules=ShopRules(), now=datetime.now(UTC),
            )
        await session.commit()  # what the refused grab left would be kept now: nothing
    assert refused.value.code == ErrorCode.OUT_OF_STOCK
    async with sessions() as session:
        assert tuple((await session.execute(select(FlashSale.held, FlashSale.sold))).one()) == (0, 0)
        assert (await session.execute(select(FlashClaim.id))).first() is None
        assert (await session.execute(select(Order.id))).first() is None
    assert await stock_of(sessions, variant_id) == 0

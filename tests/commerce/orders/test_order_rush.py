"""A flash-sale rush: 200 buyers at once for 20 units, on SQLite and PostgreSQL.

Each buyer is a customer with one unit in the cart and checks out in its own session,
all at the same time. Exactly 20 orders, stock 0 (never negative: the CHECK would
fail the reservation), and 180 clean OUT_OF_STOCK refusals that leave nothing behind.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from commerce.cart.models import CartLine
from commerce.catalog.models import Variant
from commerce.customers.models import Address, Customer
from commerce.errors import ShopError
from commerce.orders.models import Order, OrderLine
from commerce.orders.placement import place_order
from commerce.rules import ShopRules
from commerce.wiring import shop_sessions
from tests.commerce.factories import make_variant

BUYERS = 200
UNITS = 20
RULES = ShopRules()


async def test_two_hundred_buyers_for_twenty_units(engine: AsyncEngine) -> None:
    sessions = shop_sessions(engine)
    async with sessions() as session:
        variant_id = await make_variant(session, name="限量秒杀茶具", price_fen=9900, stock=UNITS)
        customers = [Customer(openid=f"rush-{n}") for n in range(BUYERS)]
        session.add_all(customers)
        await session.flush()
        addresses = [
            Address(
                customer_id=c.id,
                name="买家",
                phone="13800138000",
                address="上海市浦东新区世纪大道100号",
                is_default=True,
            )
            for c in customers
        ]
        session.add_all(addresses)
        session.add_all(
            CartLine(customer_id=c.id, variant_id=variant_id, quantity=1) for c in customers
        )
        await session.flush()
        buyers = [(c.id, a.id) for c, a in zip(customers, addresses, strict=True)]
        await session.commit()

    async def checkout(customer_id: int, address_id: int) -> str:
        async with sessions() as session:
            try:
                await place_order(
                    session,
                    customer_id=customer_id,
                    address_id=address_id,
                    idempotency_key="rush",
                    rules=RULES,
                )
            except ShopError as exc:
                await session.rollback()
                return exc.code.value
            await session.commit()
            return "ordered"

    results = Counter(await asyncio.gather(*(checkout(c, a) for c, a in buyers)))
    assert results == {"ordered": UNITS, "out_of_stock": BUYERS - UNITS}

    async with sessions() as session:
        assert await session.scalar(select(Variant.stock).where(Variant.id == variant_id)) == 0
        assert await session.scalar(select(func.count()).select_from(Order)) == UNITS
        assert await session.scalar(select(func.sum(OrderLine.quantity))) == UNITS
        # the winners' carts are empty, the others still hold their unit
        assert await session.scalar(select(func.count()).select_from(CartLine)) == BUYERS - UNITS

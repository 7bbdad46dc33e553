"""Stock reservations: conditional, never below zero, also under concurrency.

This module also holds the small factories the other order-core tests import
(`make_variant`, `make_customer`, ...): plain functions, not tests.
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from commerce import inventory
from commerce.db import session_factory
from commerce.models import (
    Address,
    Category,
    Coupon,
    CouponKind,
    Customer,
    CustomerCoupon,
    Product,
    ProductStatus,
    Variant,
)

_seq = itertools.count(1)


# ---- factories shared by the order-core tests ----------------------------------------


async def make_variant(
    session: AsyncSession,
    *,
    name: str = "烟台红富士苹果",
    price_fen: int = 1000,
    stock: int = 10,
    spec: dict[str, str] | None = None,
    on_sale: bool = True,
) -> int:
    """A product with one variant; returns the variant id."""
    n = next(_seq)
    category = await session.scalar(select(Category).where(Category.name == "测试"))
    if category is None:
        category = Category(name="测试", name_en="Test")
        session.add(category)
    product = Product(
        category=category,
        name=name,
        status=(ProductStatus.ON_SALE if on_sale else ProductStatus.OFF_SALE).value,
        variants=[Variant(sku_code=f"SKU-{n}", spec=spec if spec is not None else {"规格": f"{n}号"}, price_fen=price_fen, stock=stock)],
    )
    session.add(product)
    await session.flush()
    return product.variants[0].id


async def make_customer(session: AsyncSession, openid: str | None = None) -> int:
    customer = Customer(openid=openid or f"openid-{next(_seq)}")
    session.add(customer)
    await session.flush()
    return customer.id


async def make_address(session: AsyncSession, customer_id: int) -> int:
    address = Address(customer_id=customer_id, name="张三", phone="13800138000", address="上海市浦东新区世纪大道100号", is_default=True)
    session.add(address)
    await session.flush()
    return address.id


async def make_coupon(
    session: AsyncSession,
    customer_id: int,
    *,
    kind: CouponKind = CouponKind.AMOUNT_OFF,
    amount_off_fen: int = 0,
    percent_off: int = 0,
    cap_fen: int = 0,
    threshold_fen: int = 0,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    active: bool = True,
    title: str | None = None,
) -> int:
    """A coupon issued to the customer; returns the CustomerCoupon id."""
    n = next(_seq)
    coupon = Coupon(
        code=f"C{n}",
        title=title or f"coupon {n}",
        kind=kind.value,
        amount_off_fen=amount_off_fen,
        percent_off=percent_off,
        cap_fen=cap_fen,
        threshold_fen=threshold_fen,
        valid_from=valid_from,
        valid_until=valid_until,
        active=active,
    )
    session.add(coupon)
    await session.flush()
    held = CustomerCoupon(coupon_id=coupon.id, customer_id=customer_id)
    session.add(held)
    await session.flush()
    return held.id


async def stock_of(sessions: async_sessionmaker[AsyncSession], variant_id: int) -> int:
    async with sessions() as session:
        stock = await session.scalar(select(Variant.stock).where(Variant.id == variant_id))
        assert stock is not None
        return stock


# ---- tests ----------------------------------------------------------------------------


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


async def _variant(sessions: async_sessionmaker[AsyncSession], stock: int) -> int:
    async with sessions() as session:
        variant_id = await make_variant(session, stock=stock)
        await session.commit()
    return variant_id


async def test_reserve_takes_stock(sessions: async_sessionmaker[AsyncSession]) -> None:
    variant_id = await _variant(sessions, 5)
    async with sessions() as session:
        assert await inventory.reserve(session, variant_id=variant_id, quantity=3)
        await session.commit()
    assert await stock_of(sessions, variant_id) == 2


async def test_reserve_refuses_more_than_there_is_and_changes_nothing(sessions: async_sessionmaker[AsyncSession]) -> None:
    variant_id = await _variant(sessions, 2)
    async with sessions() as session:
        assert not await inventory.reserve(session, variant_id=variant_id, quantity=3)
        assert await inventory.reserve(session, variant_id=variant_id, quantity=2)
        assert not await inventory.reserve(session, variant_id=variant_id, quantity=1)
        await session.commit()
    assert await stock_of(sessions, variant_id) == 0


async def test_reserve_unknown_variant_is_false(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        assert not await inventory.reserve(session, variant_id=999_999, quantity=1)


async def test_release_gives_stock_back(sessions: async_sessionmaker[AsyncSession]) -> None:
    variant_id = await _variant(sessions, 0)
    async with sessions() as session:
        await inventory.release(session, variant_id=variant_id, quantity=4)
        await session.commit()
    assert await stock_of(sessions, variant_id) == 4


@pytest.mark.parametrize("quantity", [0, -1])
async def test_quantities_must_be_positive(sessions: async_sessionmaker[AsyncSession], quantity: int) -> None:
    variant_id = await _variant(sessions, 5)
    async with sessions() as session:
        with pytest.raises(ValueError):
            await inventory.reserve(session, variant_id=variant_id, quantity=quantity)
        with pytest.raises(ValueError):
            await inventory.release(session, variant_id=variant_id, quantity=quantity)
    assert await stock_of(sessions, variant_id) == 5


async def test_the_database_itself_refuses_negative_stock(sessions: async_sessionmaker[AsyncSession]) -> None:
    """The CHECK constraint is the last net under the conditional UPDATE."""
    variant_id = await _variant(sessions, 1)
    async with sessions() as session:
        with pytest.raises(IntegrityError):
            await session.execute(update(Variant).where(Variant.id == variant_id).values(stock=Variant.stock - 2))


async def test_concurrent_reservations_never_oversell(sessions: async_sessionmaker[AsyncSession]) -> None:
    variant_id = await _variant(sessions, 10)

    async def buy() -> bool:
        async with sessions() as session:
            ok = await inventory.reserve(session, variant_id=variant_id, quantity=1)
            await session.commit()
            return ok

    results = await asyncio.gather(*(buy() for _ in range(30)))
    assert results.count(True) == 10
    assert await stock_of(sessions, variant_id) == 0

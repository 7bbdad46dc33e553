"""Small factories for the commerce tests: plain functions, not tests.

`make_*` add rows through an open session and return their id; they only flush, the
caller commits. `stock_of` reads a variant's stock in a session of its own.
"""

from __future__ import annotations

import itertools
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.catalog.models import Category, Product, ProductStatus, Variant
from commerce.customers.models import Address, Customer
from commerce.promotions.models import Coupon, CouponKind, CustomerCoupon

_seq = itertools.count(1)


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
        variants=[
            Variant(
                sku_code=f"SKU-{n}",
                spec=spec if spec is not None else {"规格": f"{n}号"},
                price_fen=price_fen,
                stock=stock,
            )
        ],
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
    address = Address(
        customer_id=customer_id,
        name="张三",
        phone="13800138000",
        address="上海市浦东新区世纪大道100号",
        is_default=True,
    )
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

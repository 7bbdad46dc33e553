"""The view of an order as it was written equals the view read back from its rows.

`place_order` and `place_offer_order` (with the customer's openid) answer with a view built
from what they wrote, not read back: a flash-sale winner's turn saves three reads that way.
Read back with `get_order`, the same order must give the very same view, whatever its
names, labels, notes, amounts and address; otherwise a pay card would show one thing and
the order page another."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from commerce.cart.cart import add_to_cart
from commerce.customers.addresses import default_address
from commerce.customers.models import Address
from commerce.orders.placement import get_order, place_offer_order, place_order
from commerce.rules import ShopRules
from commerce.wiring import shop_sessions
from tests.commerce.factories import make_address, make_coupon, make_customer, make_variant

NOW = datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
LONG = "很长的名字" * 20  # all the 100 characters a product name and a line keep

# (product name, spec, price in fen, note): plain, long and odd texts, a free and a paid delivery
CASES = [
    ("烟台红富士苹果", {"规格": "5斤装"}, 2500, ""),
    (LONG, {"颜色": "红色", "容量": "256GB"}, 99, "  请放门口，谢谢  "),
    ("Apple & <Pear> \"tin\"", {}, 1, "备注" * 150),
]


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return shop_sessions(engine)


async def _buyer(session: AsyncSession, openid: str) -> tuple[int, int]:
    customer_id = await make_customer(session, openid)
    address_id = await make_address(session, customer_id)
    await session.execute(  # the parts of the region, as a parsed address has them
        update(Address).where(Address.id == address_id)
        .values(province="上海市", city="上海市", district="浦东新区", detail="世纪大道100号")
    )
    return customer_id, address_id


@pytest.mark.parametrize("case", range(len(CASES)))
async def test_an_offer_order_as_written_is_the_order_read_back(
    sessions: async_sessionmaker[AsyncSession], case: int
) -> None:
    name, spec, price, _note = CASES[case]
    rules = ShopRules()
    async with sessions() as session:
        variant_id = await make_variant(session, name=name, spec=spec, price_fen=price)
        customer_id, address_id = await _buyer(session, f"o_offer_{case}")
        address = await default_address(session, customer_id=customer_id)
        order_id, written = await place_offer_order(
            session, customer_id=customer_id, address_id=address_id, address=address, openid=f"o_offer_{case}",
            idempotency_key="k", rules=rules, variant_id=variant_id, unit_price_fen=price, now=NOW,
            event_note="flash", own_savepoint=case % 2 == 0,
        )
        await session.commit()
    async with sessions() as session:
        read = await get_order(session, order_id=order_id)
    assert written is not None
    assert written == read
    async with sessions() as session:  # asked again with the same key: the order it made, not a second
        again_id, again = await place_offer_order(
            session, customer_id=customer_id, address_id=address_id, openid=f"o_offer_{case}",
            idempotency_key="k", rules=rules, variant_id=variant_id, unit_price_fen=price, now=NOW,
        )
        await session.commit()
    assert (again_id, again) == (order_id, None)


@pytest.mark.parametrize("case", range(len(CASES)))
async def test_a_cart_order_as_written_is_the_order_read_back(
    sessions: async_sessionmaker[AsyncSession], case: int
) -> None:
    name, spec, price, note = CASES[case]
    rules = ShopRules()
    async with sessions() as session:
        customer_id, address_id = await _buyer(session, f"o_cart_{case}")
        for n in range(2):
            variant_id = await make_variant(session, name=f"{name[:99]}{n}", spec=spec, price_fen=price + n, stock=9)
            await add_to_cart(session, customer_id=customer_id, variant_id=variant_id, quantity=n + 1, rules=rules)
        coupon_id = await make_coupon(session, customer_id, amount_off_fen=1) if case == 0 else None
        await session.commit()
    async with sessions() as session:
        written = await place_order(
            session, customer_id=customer_id, address_id=address_id, idempotency_key="k", rules=rules,
            customer_coupon_id=coupon_id, note=note, now=NOW,
        )
        await session.commit()
    async with sessions() as session:
        read = await get_order(session, order_id=written.id)
    assert written == read

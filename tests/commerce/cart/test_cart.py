"""The cart: adding, changing and removing lines, limits, and lines that went bad."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from commerce.cart.cart import add_to_cart, clear_cart, get_cart, remove_line, set_quantity
from commerce.catalog.models import Product, ProductStatus, Variant
from commerce.errors import ErrorCode, ShopError
from commerce.rules import ShopRules
from commerce.wiring import shop_sessions
from tests.commerce.factories import make_customer, make_variant

RULES = ShopRules(max_line_quantity=5)


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return shop_sessions(engine)


@pytest.fixture
async def session(sessions: async_sessionmaker[AsyncSession]):  # type: ignore[no-untyped-def]
    async with sessions() as session:
        yield session


async def test_add_creates_a_line_with_todays_price(session: AsyncSession) -> None:
    customer = await make_customer(session)
    variant = await make_variant(
        session, name="红茶", price_fen=1250, stock=7, spec={"规格": "250g", "包装": "罐装"}
    )
    cart = await add_to_cart(
        session, customer_id=customer, variant_id=variant, quantity=2, rules=RULES
    )
    (line,) = cart.lines
    assert (line.name, line.spec_label, line.unit_price_fen, line.quantity) == (
        "红茶",
        "250g / 罐装",
        1250,
        2,
    )
    assert line.subtotal_fen == 2500 and line.stock == 7 and line.on_sale and line.problem is None
    assert cart.total_fen == 2500 and cart.count == 2 and cart.buyable_lines == (line,)


async def test_adding_again_adds_to_the_same_line(session: AsyncSession) -> None:
    customer = await make_customer(session)
    variant = await make_variant(session, stock=10)
    await add_to_cart(session, customer_id=customer, variant_id=variant, quantity=2, rules=RULES)
    cart = await add_to_cart(
        session, customer_id=customer, variant_id=variant, quantity=3, rules=RULES
    )
    assert [line.quantity for line in cart.lines] == [5]


@pytest.mark.parametrize("quantity", [0, -2, 6])
async def test_absurd_quantities_are_refused(session: AsyncSession, quantity: int) -> None:
    customer = await make_customer(session)
    variant = await make_variant(session, stock=100)
    with pytest.raises(ShopError) as caught:
        await add_to_cart(
            session, customer_id=customer, variant_id=variant, quantity=quantity, rules=RULES
        )
    assert caught.value.code == ErrorCode.QUANTITY_INVALID
    assert caught.value.details["max"] == 5
    assert (await get_cart(session, customer_id=customer)).lines == ()


async def test_the_line_limit_counts_what_is_already_in_the_cart(session: AsyncSession) -> None:
    customer = await make_customer(session)
    variant = await make_variant(session, stock=100)
    await add_to_cart(session, customer_id=customer, variant_id=variant, quantity=4, rules=RULES)
    with pytest.raises(ShopError) as caught:
        await add_to_cart(
            session, customer_id=customer, variant_id=variant, quantity=2, rules=RULES
        )
    assert caught.value.code == ErrorCode.QUANTITY_INVALID and caught.value.details["in_cart"] == 4


async def test_unknown_variant(session: AsyncSession) -> None:
    customer = await make_customer(session)
    with pytest.raises(ShopError) as caught:
        await add_to_cart(session, customer_id=customer, variant_id=424242, quantity=1, rules=RULES)
    assert caught.value.code == ErrorCode.VARIANT_NOT_FOUND


async def test_off_sale_products_cannot_be_added(session: AsyncSession) -> None:
    customer = await make_customer(session)
    variant = await make_variant(session, on_sale=False)
    with pytest.raises(ShopError) as caught:
        await add_to_cart(
            session, customer_id=customer, variant_id=variant, quantity=1, rules=RULES
        )
    assert caught.value.code == ErrorCode.NOT_ON_SALE


async def test_not_more_than_the_stock(session: AsyncSession) -> None:
    customer = await make_customer(session)
    variant = await make_variant(session, stock=3)
    await add_to_cart(session, customer_id=customer, variant_id=variant, quantity=2, rules=RULES)
    with pytest.raises(ShopError) as caught:
        await add_to_cart(
            session, customer_id=customer, variant_id=variant, quantity=2, rules=RULES
        )
    assert caught.value.code == ErrorCode.OUT_OF_STOCK
    assert caught.value.details["available"] == 3 and caught.value.details["in_cart"] == 2


async def test_set_quantity_changes_and_zero_removes(session: AsyncSession) -> None:
    customer = await make_customer(session)
    variant = await make_variant(session, stock=10)
    cart = await add_to_cart(
        session, customer_id=customer, variant_id=variant, quantity=1, rules=RULES
    )
    line_id = cart.lines[0].line_id
    cart = await set_quantity(
        session, customer_id=customer, line_id=line_id, quantity=4, rules=RULES
    )
    assert cart.lines[0].quantity == 4
    with pytest.raises(ShopError) as caught:
        await set_quantity(session, customer_id=customer, line_id=line_id, quantity=6, rules=RULES)
    assert caught.value.code == ErrorCode.QUANTITY_INVALID
    cart = await set_quantity(
        session, customer_id=customer, line_id=line_id, quantity=0, rules=RULES
    )
    assert cart.lines == () and cart.count == 0


async def test_set_quantity_checks_stock_when_raising_but_lowering_always_works(
    session: AsyncSession,
) -> None:
    customer = await make_customer(session)
    variant = await make_variant(session, stock=5)
    cart = await add_to_cart(
        session, customer_id=customer, variant_id=variant, quantity=4, rules=RULES
    )
    line_id = cart.lines[0].line_id
    await session.execute(update(Variant).where(Variant.id == variant).values(stock=2))
    with pytest.raises(ShopError) as caught:
        await set_quantity(session, customer_id=customer, line_id=line_id, quantity=5, rules=RULES)
    assert caught.value.code == ErrorCode.OUT_OF_STOCK and caught.value.details["available"] == 2
    cart = await set_quantity(
        session, customer_id=customer, line_id=line_id, quantity=2, rules=RULES
    )
    assert cart.lines[0].quantity == 2 and cart.lines[0].problem is None


async def test_lines_of_someone_else_are_not_found(session: AsyncSession) -> None:
    alice, bob = await make_customer(session), await make_customer(session)
    variant = await make_variant(session)
    cart = await add_to_cart(
        session, customer_id=alice, variant_id=variant, quantity=1, rules=RULES
    )
    for call in (
        set_quantity(
            session, customer_id=bob, line_id=cart.lines[0].line_id, quantity=2, rules=RULES
        ),
        remove_line(session, customer_id=bob, line_id=cart.lines[0].line_id),
    ):
        with pytest.raises(ShopError) as caught:
            await call
        assert caught.value.code == ErrorCode.CART_LINE_NOT_FOUND
    assert (await get_cart(session, customer_id=alice)).count == 1


async def test_remove_and_clear(session: AsyncSession) -> None:
    customer, other = await make_customer(session), await make_customer(session)
    first, second = await make_variant(session), await make_variant(session)
    await add_to_cart(session, customer_id=customer, variant_id=first, quantity=1, rules=RULES)
    cart = await add_to_cart(
        session, customer_id=customer, variant_id=second, quantity=2, rules=RULES
    )
    await add_to_cart(session, customer_id=other, variant_id=first, quantity=1, rules=RULES)
    cart = await remove_line(session, customer_id=customer, line_id=cart.lines[0].line_id)
    assert [line.variant_id for line in cart.lines] == [second]
    await clear_cart(session, customer_id=customer)
    assert (await get_cart(session, customer_id=customer)).lines == ()
    assert (await get_cart(session, customer_id=other)).count == 1


async def test_the_cart_shows_todays_prices_and_what_went_wrong(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        customer = await make_customer(session)
        fine, dearer, short, gone, withdrawn = [
            await make_variant(session, stock=5, price_fen=100) for _ in range(5)
        ]
        for variant in (fine, dearer, short, gone, withdrawn):
            await add_to_cart(
                session, customer_id=customer, variant_id=variant, quantity=3, rules=RULES
            )
        await session.commit()
    async with sessions() as session:  # the shop changes behind the customer's back
        await session.execute(update(Variant).where(Variant.id == dearer).values(price_fen=150))
        await session.execute(update(Variant).where(Variant.id == short).values(stock=2))
        await session.execute(update(Variant).where(Variant.id == gone).values(stock=0))
        product_id = (await session.get(Variant, withdrawn)).product_id  # type: ignore[union-attr]
        await session.execute(
            update(Product)
            .where(Product.id == product_id)
            .values(status=ProductStatus.OFF_SALE.value)
        )
        await session.commit()
    async with sessions() as session:
        cart = await get_cart(session, customer_id=customer)
    problems = {line.variant_id: line.problem for line in cart.lines}
    assert problems == {
        fine: None,
        dearer: None,
        short: "not_enough_stock",
        gone: "out_of_stock",
        withdrawn: "off_sale",
    }
    assert next(line for line in cart.lines if line.variant_id == dearer).subtotal_fen == 450
    assert cart.total_fen == 300 + 450  # only what can be bought
    assert cart.count == 15
    assert [line.variant_id for line in cart.buyable_lines] == [fine, dearer]

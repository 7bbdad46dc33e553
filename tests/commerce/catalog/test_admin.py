"""The catalog as staff change it: create, resolve, edit, price, stock, sale status, low stock."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from commerce.catalog import admin
from commerce.catalog.models import Category, Product, ProductStatus, Variant
from commerce.errors import ErrorCode, ShopError
from commerce.wiring import shop_sessions
from tests.commerce.factories import stock_of
from tests.commerce.orders.test_queries import expect_error, run


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return shop_sessions(engine)


@pytest.fixture
async def categories(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        session.add_all(
            [
                Category(name="水果", name_en="Fruit", sort_order=1),
                Category(name="茶叶", name_en="Tea", sort_order=2),
            ]
        )
        await session.commit()


async def create(
    sessions: async_sessionmaker[AsyncSession], **kwargs: object
) -> admin.AdminProductView:
    values: dict[str, object] = {
        "name": "烟台苹果",
        "price_fen": 1290,
        "stock": 10,
        "category": "水果",
    }
    view, _change = await run(sessions, admin.create_product, **(values | kwargs))
    return view


async def two_variant_product(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        category = await session.scalar(select(Category).where(Category.name == "茶叶"))
        product = Product(
            category=category,
            name="龙井",
            variants=[
                Variant(sku_code="TEA-LJ-50", spec={"规格": "50g"}, price_fen=4800, stock=3),
                Variant(sku_code="TEA-LJ-100", spec={"规格": "100g"}, price_fen=8800, stock=20),
            ],
        )
        session.add(product)
        await session.commit()
        return product.id


# ---- create ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("categories")
async def test_create_product(sessions: async_sessionmaker[AsyncSession]) -> None:
    view, (before, after) = await run(
        sessions,
        admin.create_product,
        name="  烟台苹果 ",
        price_fen=1290,
        stock=10,
        category="fruit",
        subtitle="脆甜",
    )
    assert (view.name, view.subtitle, view.category, view.status) == (
        "烟台苹果",
        "脆甜",
        "水果",
        ProductStatus.ON_SALE,
    )
    [variant] = view.variants
    assert variant.sku_code == f"P{view.id}-1" and (variant.price_fen, variant.stock) == (1290, 10)
    assert variant.label == "" and variant.low_stock_threshold == 5 and view.sales_count == 0
    assert before is None
    assert after == {
        "id": view.id,
        "name": "烟台苹果",
        "subtitle": "脆甜",
        "category": "水果",
        "status": "on_sale",
        "variants": [
            {
                "id": variant.id,
                "sku_code": variant.sku_code,
                "spec": {},
                "price_fen": 1290,
                "stock": 10,
            }
        ],
    }
    assert await run(sessions, admin.show_product, product_id=view.id) == view
    second = await create(sessions, name="香蕉", sku_code="FRU-BANANA", category="FRUIT")
    assert second.variants[0].sku_code == "FRU-BANANA"


@pytest.mark.usefixtures("categories")
async def test_create_product_validation(sessions: async_sessionmaker[AsyncSession]) -> None:
    details = await expect_error(ErrorCode.CATEGORY_NOT_FOUND, create(sessions, category="蔬菜"))
    assert details["known"] == ["水果", "茶叶"] and details["category"] == "蔬菜"
    for name in ("", "   ", "名" * 101):
        details = await expect_error(ErrorCode.NAME_INVALID, create(sessions, name=name))
        assert details["field"] == "name"
    await expect_error(ErrorCode.NAME_INVALID, create(sessions, subtitle="字" * 201))
    for price in (0, -1, 10**9 + 1, 12.9, True):
        await expect_error(ErrorCode.PRICE_INVALID, create(sessions, price_fen=price))
    for stock in (-1, 10**7 + 1, 1.5):
        await expect_error(ErrorCode.STOCK_INVALID, create(sessions, stock=stock))
    await expect_error(ErrorCode.SKU_INVALID, create(sessions, sku_code="A B"))
    await create(sessions, sku_code="FRU-1")
    await expect_error(ErrorCode.SKU_EXISTS, create(sessions, sku_code="FRU-1"))
    async with sessions() as session:
        assert len((await session.scalars(select(Product))).all()) == 1
    await create(sessions, price_fen=10**9, stock=10**7, name="名" * 100)  # the limits are fine


# ---- resolve --------------------------------------------------------------------------------


@pytest.mark.usefixtures("categories")
async def test_resolve_variant_by_product_id_or_sku(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    apple = await create(sessions, sku_code="FRU-APPLE-5J")
    tea = await two_variant_product(sessions)

    for ref in (str(apple.id), f" #{apple.id} ", "FRU-APPLE-5J", "fru-apple-5j"):
        product, variant = await run(sessions, admin.resolve_variant, ref=ref)
        assert (product.id, variant.sku_code) == (apple.id, "FRU-APPLE-5J")
    product, variant = await run(sessions, admin.resolve_variant, ref="TEA-LJ-100")
    assert (product.id, variant.price_fen) == (tea, 8800)

    details = await expect_error(
        ErrorCode.VARIANT_NOT_FOUND, run(sessions, admin.resolve_variant, ref=str(tea))
    )
    assert details["skus"] == ["TEA-LJ-50", "TEA-LJ-100"]
    assert details["variants"][0] == {"sku_code": "TEA-LJ-50", "label": "50g", "stock": 3}
    await expect_error(ErrorCode.PRODUCT_NOT_FOUND, run(sessions, admin.resolve_variant, ref="999"))
    await expect_error(
        ErrorCode.VARIANT_NOT_FOUND, run(sessions, admin.resolve_variant, ref="NOPE")
    )
    await expect_error(ErrorCode.VARIANT_NOT_FOUND, run(sessions, admin.resolve_variant, ref=" "))


@pytest.mark.usefixtures("categories")
async def test_resolve_variant_by_name(sessions: async_sessionmaker[AsyncSession]) -> None:
    """A name names the product called exactly that, else the one whose name holds it;
    several: their ids (the best sellers first); a LIKE wildcard is only a character."""
    apple = await create(sessions, name="Fuji Apple 100%", sku_code="FRU-FUJI")
    await create(sessions, name="Gala apple", sku_code="FRU-GALA")
    await create(sessions, name="apple", sku_code="FRU-PLAIN")
    tea = await two_variant_product(sessions)

    product, variant = await run(sessions, admin.resolve_variant, ref="APPLE")  # exactly named, any case
    assert variant.sku_code == "FRU-PLAIN"
    product, variant = await run(sessions, admin.resolve_variant, ref="fuji")  # a part of one name
    assert (product.id, variant.sku_code) == (apple.id, "FRU-FUJI")
    product, _ = await run(sessions, admin.resolve_variant, ref="100%")
    assert product.id == apple.id
    details = await expect_error(ErrorCode.PRODUCT_AMBIGUOUS, run(sessions, admin.resolve_variant, ref="pple"))
    assert sorted(p["name"] for p in details["products"]) == ["Fuji Apple 100%", "Gala apple", "apple"]
    assert details["more"] is False and all(p["on_sale"] for p in details["products"])
    details = await expect_error(ErrorCode.VARIANT_NOT_FOUND, run(sessions, admin.resolve_variant, ref="龙井"))
    assert details["product_id"] == tea and details["skus"] == ["TEA-LJ-50", "TEA-LJ-100"]
    for wildcard in ("_", "a%e", "%%", "p_e"):
        assert await run(sessions, admin.product_named, words=wildcard) is None, wildcard
    for stray in ("x", "pp", "F"):  # too short to stand for a product by a part of its name
        assert await run(sessions, admin.product_named, words=stray) is None, stray


# ---- edits ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("categories")
async def test_edit_product(sessions: async_sessionmaker[AsyncSession]) -> None:
    apple = await create(sessions, subtitle="旧")
    before, after = await run(sessions, admin.edit_product, product_id=apple.id, name="红富士")
    assert before == {"id": apple.id, "name": "烟台苹果", "subtitle": "旧"}
    assert after == {"id": apple.id, "name": "红富士", "subtitle": "旧"}
    _, after = await run(sessions, admin.edit_product, product_id=apple.id, subtitle="")
    assert after["subtitle"] == ""
    await expect_error(
        ErrorCode.NAME_INVALID, run(sessions, admin.edit_product, product_id=apple.id, name="")
    )
    await expect_error(
        ErrorCode.PRODUCT_NOT_FOUND, run(sessions, admin.edit_product, product_id=999, name="x")
    )
    assert (await run(sessions, admin.show_product, product_id=apple.id)).name == "红富士"


@pytest.mark.usefixtures("categories")
async def test_set_price(sessions: async_sessionmaker[AsyncSession]) -> None:
    apple = await create(sessions, sku_code="FRU-APPLE")
    before, after = await run(sessions, admin.set_price, ref="FRU-APPLE", price_fen=990)
    assert before == {
        "product_id": apple.id,
        "name": "烟台苹果",
        "sku_code": "FRU-APPLE",
        "label": "",
        "price_fen": 1290,
    }
    assert after == before | {"price_fen": 990}
    assert (await run(sessions, admin.show_product, product_id=apple.id)).variants[
        0
    ].price_fen == 990
    await expect_error(
        ErrorCode.PRICE_INVALID, run(sessions, admin.set_price, ref="FRU-APPLE", price_fen=0)
    )


@pytest.mark.usefixtures("categories")
async def test_change_stock_absolute_and_delta(sessions: async_sessionmaker[AsyncSession]) -> None:
    apple = await create(sessions, stock=10)
    variant_id = apple.variants[0].id
    ref = str(apple.id)
    before, after = await run(sessions, admin.change_stock, ref=ref, absolute=3)
    assert (before["stock"], after["stock"]) == (10, 3)
    before, after = await run(sessions, admin.change_stock, ref=ref, delta=5)
    assert (before["stock"], after["stock"]) == (3, 8)
    before, after = await run(sessions, admin.change_stock, ref=ref, delta=-8)
    assert (before["stock"], after["stock"]) == (8, 0)
    details = await expect_error(
        ErrorCode.STOCK_INVALID, run(sessions, admin.change_stock, ref=ref, delta=-1)
    )
    assert details["current"] == 0
    await expect_error(
        ErrorCode.STOCK_INVALID, run(sessions, admin.change_stock, ref=ref, absolute=-1)
    )
    await expect_error(
        ErrorCode.STOCK_INVALID, run(sessions, admin.change_stock, ref=ref, delta=10**7 + 1)
    )
    with pytest.raises(ValueError):
        await run(sessions, admin.change_stock, ref=ref, absolute=1, delta=1)
    assert await stock_of(sessions, variant_id) == 0


@pytest.mark.usefixtures("categories")
async def test_stock_deltas_at_once_never_go_negative(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    apple = await create(sessions, stock=10)

    async def take() -> bool:
        try:
            await run(sessions, admin.change_stock, ref=str(apple.id), delta=-1)
        except ShopError as exc:
            assert exc.code == ErrorCode.STOCK_INVALID
            return False
        return True

    results = await asyncio.gather(*(take() for _ in range(25)))
    assert results.count(True) == 10
    assert await stock_of(sessions, apple.variants[0].id) == 0


@pytest.mark.usefixtures("categories")
async def test_on_sale_and_off_sale(sessions: async_sessionmaker[AsyncSession]) -> None:
    apple = await create(sessions)
    before, after = await run(sessions, admin.set_on_sale, product_id=apple.id, on_sale=False)
    assert (before["status"], after["status"]) == ("on_sale", "off_sale")
    shown = await run(sessions, admin.show_product, product_id=apple.id)
    assert shown.status == ProductStatus.OFF_SALE and not shown.on_sale  # staff still see it
    _, after = await run(sessions, admin.set_on_sale, product_id=apple.id, on_sale=True)
    assert after["status"] == "on_sale"
    await expect_error(
        ErrorCode.PRODUCT_NOT_FOUND, run(sessions, admin.show_product, product_id=999)
    )


# ---- low stock -------------------------------------------------------------------------------


@pytest.mark.usefixtures("categories")
async def test_low_stock_lists_on_sale_variants_at_or_below_their_threshold(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    plenty = await create(sessions, name="充足", stock=50)
    at = await create(sessions, name="正好", stock=5)
    empty = await create(sessions, name="售罄", stock=0)
    hidden = await create(sessions, name="下架", stock=0)
    await run(sessions, admin.set_on_sale, product_id=hidden.id, on_sale=False)
    tea = await two_variant_product(sessions)  # 50g: 3 (low), 100g: 20

    low = await run(sessions, admin.low_stock)
    assert [(p.name, [v.stock for v in p.variants]) for p in low] == [
        ("售罄", [0]),
        ("龙井", [3]),
        ("正好", [5]),
    ]
    assert [p.id for p in await run(sessions, admin.low_stock, limit=1)] == [empty.id]

    ids = [plenty.variants[0].id, at.variants[0].id, hidden.variants[0].id]
    async with sessions() as session:
        tea_ids = (await session.scalars(select(Variant.id).where(Variant.product_id == tea))).all()
    alerts = await run(sessions, admin.variants_below_threshold, variant_ids=[*ids, *tea_ids])
    assert [(a["product"], a["label"], a["stock"], a["threshold"]) for a in alerts] == [
        ("正好", "", 5, 5),
        ("龙井", "50g", 3, 5),
    ]
    assert await run(sessions, admin.variants_below_threshold, variant_ids=[]) == []

    _, after = await run(sessions, admin.set_low_stock_threshold, ref="TEA-LJ-100", threshold=20)
    assert after["threshold"] == 20
    low = await run(sessions, admin.low_stock)
    assert [v.sku_code for p in low if p.id == tea for v in p.variants] == [
        "TEA-LJ-50",
        "TEA-LJ-100",
    ]

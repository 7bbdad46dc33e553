"""Seeding the demo catalog: what it creates, that it runs once, and that bad data is refused."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import selectinload

from commerce.catalog.models import (
    Category,
    ImageSource,
    Product,
    ProductImage,
    ProductStatus,
    Tag,
    Variant,
    product_tags,
)
from commerce.catalog.seed import (
    DEMO_CATALOG,
    catalog_is_empty,
    draw_demo_pictures,
    load_catalog,
    parse_catalog,
    seed_demo_catalog,
)
from commerce.media.pictures import DEMO_SIZE
from commerce.media.store import LocalMediaStore, content_key
from commerce.wiring import shop_sessions

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Seeding is plain inserts in one transaction, the same on both databases; PostgreSQL runs
# it for every demo-catalog test database anyway (tests/servers.py seeds its template).
pytestmark = pytest.mark.sqlite_only


def _demo() -> dict[str, Any]:
    return json.loads(DEMO_CATALOG.read_text(encoding="utf-8"))


def _sold_out(product: dict[str, Any]) -> bool:
    return all(v["stock"] == 0 for v in product["variants"])


async def _seed(engine: AsyncEngine) -> int:
    async with shop_sessions(engine)() as session:
        created = await seed_demo_catalog(session)
        await session.commit()
    return created


async def _products(engine: AsyncEngine) -> list[Product]:
    async with shop_sessions(engine)() as session:
        rows = await session.scalars(
            select(Product)
            .options(
                selectinload(Product.category),
                selectinload(Product.variants),
                selectinload(Product.tags),
                selectinload(Product.images),
            )
            .order_by(Product.sort_order)
        )
        return list(rows)


async def _counts(engine: AsyncEngine) -> dict[str, int]:
    tables = {
        "categories": Category.__table__,
        "tags": Tag.__table__,
        "products": Product.__table__,
        "variants": Variant.__table__,
        "images": ProductImage.__table__,
        "product_tags": product_tags,
    }
    async with shop_sessions(engine)() as session:
        return {
            name: await session.scalar(select(func.count()).select_from(table)) or 0
            for name, table in tables.items()
        }


async def test_seeding_an_empty_shop_creates_the_demo_catalog(engine: AsyncEngine) -> None:
    demo = _demo()
    async with shop_sessions(engine)() as session:
        assert await catalog_is_empty(session)

    created = await _seed(engine)

    products = await _products(engine)
    assert created == len(products) == len(demo["products"])
    assert len(products) >= 60
    assert len({p.category.name for p in products}) >= 6
    assert (await _counts(engine))["categories"] == len(demo["categories"])
    assert [p.name for p in products] == [p["name"] for p in demo["products"]]
    async with shop_sessions(engine)() as session:
        assert not await catalog_is_empty(session)

    for product, item in zip(products, demo["products"], strict=True):
        assert product.category.name == item["category"]
        assert product.subtitle == item["subtitle"]
        assert product.sales_count == item["sales_count"]
        got = sorted((v.sku_code, v.spec, v.price_fen, v.stock) for v in product.variants)
        want = sorted(
            (v["sku_code"], v["spec"], v["price_fen"], v["stock"]) for v in item["variants"]
        )
        assert got == want, product.name
        for variant in product.variants:
            assert type(variant.price_fen) is int and variant.price_fen > 0
            assert type(variant.stock) is int

    assert sum(len(p.variants) >= 2 for p in products) >= 12


async def test_out_of_stock_and_off_sale_products_are_as_in_the_json(engine: AsyncEngine) -> None:
    demo = _demo()
    await _seed(engine)
    products = await _products(engine)

    sold_out = {p.name for p in products if all(v.stock == 0 for v in p.variants)}
    assert sold_out == {p["name"] for p in demo["products"] if _sold_out(p)}
    assert len(sold_out) >= 5
    partly = {
        p.name for p in products if any(v.stock == 0 for v in p.variants) and p.name not in sold_out
    }
    assert len(partly) >= 3

    off_sale = {p.name for p in products if p.status == ProductStatus.OFF_SALE}
    assert off_sale == {p["name"] for p in demo["products"] if p.get("status") == "off_sale"}
    assert len(off_sale) == 2
    assert {p.status for p in products} == {ProductStatus.ON_SALE, ProductStatus.OFF_SALE}


async def test_tags_are_shared_between_products_not_duplicated(engine: AsyncEngine) -> None:
    demo = _demo()
    await _seed(engine)
    products = await _products(engine)

    async with shop_sessions(engine)() as session:
        names = list(await session.scalars(select(Tag.name)))
    assert len(names) == len({n.lower() for n in names})
    assert {n.lower() for n in names} == {t.lower() for p in demo["products"] for t in p["tags"]}

    fruit = [p for p in products if "水果" in {t.name for t in p.tags}]
    assert len(fruit) == sum("水果" in p["tags"] for p in demo["products"]) >= 2
    assert len({t.id for p in fruit for t in p.tags if t.name == "水果"}) == 1
    for product, item in zip(products, demo["products"], strict=True):
        assert {t.name for t in product.tags} == set(item["tags"]), product.name


async def test_seeding_twice_creates_nothing_the_second_time(engine: AsyncEngine) -> None:
    assert await _seed(engine) > 0
    before = await _counts(engine)

    assert await _seed(engine) == 0

    assert await _counts(engine) == before


async def test_a_shop_with_any_product_is_left_alone(engine: AsyncEngine) -> None:
    async with shop_sessions(engine)() as session:
        session.add(
            Product(
                category=Category(name="自营"),
                name="手写贺卡",
                variants=[Variant(sku_code="OWN-CARD", price_fen=500, stock=10)],
            )
        )
        await session.commit()

    assert await _seed(engine) == 0

    counts = await _counts(engine)
    assert (counts["products"], counts["categories"], counts["variants"]) == (1, 1, 1)


async def test_existing_categories_and_tags_are_reused(engine: AsyncEngine) -> None:
    async with shop_sessions(engine)() as session:
        category = Category(name="水果", name_en="Fresh fruit", sort_order=9)
        tag = Tag(name="Fruit")
        session.add_all([category, tag])
        await session.commit()

    await _seed(engine)

    demo = _demo()
    counts = await _counts(engine)
    assert counts["categories"] == len(demo["categories"])
    products = await _products(engine)
    apples = next(p for p in products if p.name == "烟台红富士苹果")
    assert apples.category.id == category.id
    assert tag.id in {t.id for t in apples.tags}
    async with shop_sessions(engine)() as session:
        query = select(Tag.name).where(func.lower(Tag.name) == "fruit")
        assert list(await session.scalars(query)) == ["Fruit"]


def _negative_price(demo: dict[str, Any]) -> str:
    product = demo["products"][-1]
    product["variants"][0]["price_fen"] = -100
    return product["name"]


def _fractional_price(demo: dict[str, Any]) -> str:
    product = demo["products"][-1]
    product["variants"][0]["price_fen"] = 12.5
    return product["name"]


def _negative_stock(demo: dict[str, Any]) -> str:
    product = demo["products"][-1]
    product["variants"][0]["stock"] = -1
    return product["name"]


def _duplicate_sku(demo: dict[str, Any]) -> str:
    product = demo["products"][-1]
    product["variants"][0]["sku_code"] = demo["products"][0]["variants"][0]["sku_code"]
    return product["name"]


def _unknown_category(demo: dict[str, Any]) -> str:
    product = demo["products"][-1]
    product["category"] = "不存在的分类"
    return product["name"]


@pytest.mark.parametrize(
    "spoil",
    [_negative_price, _fractional_price, _negative_stock, _duplicate_sku, _unknown_category],
    ids=lambda f: f.__name__.strip("_"),
)
async def test_bad_catalog_raises_naming_the_product_and_changes_nothing(
    engine: AsyncEngine, tmp_path: Path, spoil: Callable[[dict[str, Any]], str]
) -> None:
    demo = _demo()
    bad_product = spoil(demo)
    bad = tmp_path / "catalog.json"
    bad.write_text(json.dumps(demo, ensure_ascii=False), encoding="utf-8")

    async with shop_sessions(engine)() as session:
        with pytest.raises(ValueError, match=re.escape(repr(bad_product))):
            await seed_demo_catalog(session, path=bad)
        assert not session.new
        await session.rollback()

    assert set((await _counts(engine)).values()) == {0}
    async with shop_sessions(engine)() as session:
        assert await catalog_is_empty(session)


async def test_every_demo_product_gets_a_picture_of_its_own_drawn_into_the_media_store(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    media = LocalMediaStore(tmp_path / "media")
    async with shop_sessions(engine)() as session:
        await seed_demo_catalog(session, media=media)
        await session.commit()
    products = await _products(engine)
    assert all(len(p.images) == 1 and p.images[0].source == ImageSource.GENERATED for p in products)
    urls = [p.images[0].url for p in products]
    assert len(set(urls)) == len(products)  # distinct: colour, first character and name differ
    for url in urls:
        key = url.removeprefix("/media/")
        data = await media.get(key)
        assert data is not None and data.startswith(PNG_SIGNATURE), url
        assert content_key(data, "png") == key  # named by its content
        assert len(data) < 40 * 1024, url
    with Image.open(io.BytesIO(await media.get(urls[0].removeprefix("/media/")) or b"")) as first:
        assert first.size == DEMO_SIZE
    # drawn the same way every time: a second shop draws the very same files
    again = await draw_demo_pictures(load_catalog(DEMO_CATALOG).products, LocalMediaStore(tmp_path / "again"))
    assert sorted(again.values()) == sorted(urls)
    # and nothing binary is kept for them in the repository
    assert '"image"' not in DEMO_CATALOG.read_text(encoding="utf-8")


async def test_without_a_media_store_the_demo_has_no_pictures(engine: AsyncEngine) -> None:
    await _seed(engine)
    assert (await _counts(engine))["images"] == 0


def test_demo_subtitles_are_chinese_and_colours_are_the_products_own() -> None:
    products = _demo()["products"]
    assert all(re.search(r"[\u4e00-\u9fff]", p["subtitle"]) for p in products), "a subtitle in English"
    colours = [p["colour"] for p in products]
    assert len(set(colours)) == len(colours)
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in colours)


def test_a_bad_colour_is_refused() -> None:
    demo = _demo()
    demo["products"][0]["colour"] = "red"
    with pytest.raises(ValueError, match="colour"):
        parse_catalog(demo)
    del demo["products"][0]["colour"]
    assert parse_catalog(demo).products[0].colour.startswith("#")  # one of its own, from its name

"""Catalog CSV import (upsert by SKU) and its round trip with the export."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from commerce.catalog.csv_io import (
    CSV_HEADER,
    ImportReport,
    format_yuan,
    import_catalog_csv,
    parse_spec,
    parse_yuan,
)
from commerce.catalog.models import Category, Product, ProductImage, Variant
from commerce.catalog.seed import seed_demo_catalog
from commerce.errors import ErrorCode
from commerce.reports.export import export_products_csv
from commerce.wiring import shop_sessions
from tests.commerce.orders.test_queries import expect_error, run

HEADER = ",".join(CSV_HEADER)
GOOD = f"""{HEADER}
FRU-APPLE-5J,烟台苹果,脆甜多汁,水果,39.90,100,on_sale,规格=5斤
FRU-APPLE-10J,烟台苹果,脆甜多汁,水果,69.9,50,on_sale,规格=10斤
TEA-LJ,龙井,,Tea,128,20,off_sale,
"""


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return shop_sessions(engine)


@pytest.fixture(autouse=True)
async def categories(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        session.add_all(
            [Category(name="水果", name_en="Fruit"), Category(name="茶叶", name_en="Tea")]
        )
        await session.commit()


async def load(
    sessions: async_sessionmaker[AsyncSession], text: str, **kwargs: object
) -> ImportReport:
    return await run(sessions, import_catalog_csv, text=text, **kwargs)


async def variants(sessions: async_sessionmaker[AsyncSession]) -> dict[str, tuple]:
    """sku -> (product name, subtitle, category, status, price_fen, stock, spec, product id)."""
    async with sessions() as session:
        rows = await session.scalars(
            select(Variant).options(selectinload(Variant.product).selectinload(Product.category))
        )
        return {
            v.sku_code: (
                v.product.name,
                v.product.subtitle,
                v.product.category.name,
                v.product.status,
                v.price_fen,
                v.stock,
                v.spec,
                v.product_id,
            )
            for v in rows
        }


async def test_a_good_file_creates_products_and_variants(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    report = await load(sessions, GOOD)
    assert report == ImportReport(created=3, updated=0, errors=(), unchanged=0)
    found = await variants(sessions)
    assert found["FRU-APPLE-5J"][:7] == (
        "烟台苹果",
        "脆甜多汁",
        "水果",
        "on_sale",
        3990,
        100,
        {"规格": "5斤"},
    )
    assert found["FRU-APPLE-10J"][4:7] == (6990, 50, {"规格": "10斤"})
    assert found["FRU-APPLE-5J"][7] == found["FRU-APPLE-10J"][7]  # one product, two variants
    assert found["TEA-LJ"][:7] == ("龙井", "", "茶叶", "off_sale", 12800, 20, {})
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Product)) == 2


async def test_a_byte_order_mark_other_column_orders_and_case_are_fine(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    text = "\ufeffPrice_Yuan,SKU_code,Name,Category,Stock\r\n¥12.5,A-1,梨,水果,7\r\n\r\n"
    assert await load(sessions, text) == ImportReport(1, 0, (), 0)
    assert (await variants(sessions))["A-1"][4:7] == (1250, 7, {})


async def test_bad_rows_are_reported_and_the_others_applied(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    text = f"""{HEADER}
OK-1,好的,,水果,1.00,1,,
BAD-PRICE,坏价格,,水果,12.345,1,,
BAD-STOCK,坏库存,,水果,1,-3,,
BAD-CAT,坏分类,,蔬菜,1,1,,
,没编码,,水果,1,1,,
BAD-STATUS,坏状态,,水果,1,1,maybe,
BAD-SPEC,坏规格,,水果,1,1,,颜色
ZERO,零元,,水果,0.00,1,,
OK-1,重复,,水果,2,2,,
"""
    report = await load(sessions, text)
    assert (report.created, report.updated) == (1, 0)
    lines = dict(report.errors)
    assert sorted(lines) == [3, 4, 5, 6, 7, 8, 9, 10]
    assert "12.345" in lines[3] and "price_yuan" in lines[3]
    assert "stock" in lines[4]
    assert "蔬菜" in lines[5] and "水果" in lines[5]  # the known categories are listed
    assert "sku_code" in lines[6]
    assert "status" in lines[7]
    assert "spec" in lines[8]
    assert "price_yuan" in lines[9]
    assert "line 2" in lines[10]  # the duplicate SKU: the first one counts
    assert list(await variants(sessions)) == ["OK-1"]
    assert (await variants(sessions))["OK-1"][0] == "好的"


async def test_a_file_without_its_header_is_refused(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    details = await expect_error(ErrorCode.CSV_INVALID, load(sessions, "FRU-1,苹果,,水果,1,1,,\n"))
    assert details["reason"] == "missing_columns" and "sku_code" in details["missing"]
    details = await expect_error(ErrorCode.CSV_INVALID, load(sessions, "\ufeff\n \n"))
    assert details["reason"] == "empty"
    details = await expect_error(
        ErrorCode.CSV_INVALID, load(sessions, "sku_code,name,name,category,price_yuan,stock\n")
    )
    assert details["reason"] == "duplicate_column"
    assert await variants(sessions) == {}


async def test_too_many_rows_are_refused_whole(sessions: async_sessionmaker[AsyncSession]) -> None:
    rows = "".join(f"S-{n},品{n},,水果,1,1,,\n" for n in range(4))
    details = await expect_error(
        ErrorCode.CSV_INVALID, load(sessions, f"{HEADER}\n{rows}", max_rows=3)
    )
    assert details == {"reason": "too_many_rows", "max_rows": 3}
    assert await variants(sessions) == {}
    assert (await load(sessions, f"{HEADER}\n{rows}", max_rows=4)).created == 4


async def test_existing_skus_are_updated(sessions: async_sessionmaker[AsyncSession]) -> None:
    await load(sessions, GOOD)
    before = await variants(sessions)
    text = f"""{HEADER}
FRU-APPLE-5J,烟台红富士,新副标题,水果,35,80,on_sale,规格=5斤
TEA-LJ,龙井,,茶叶,128.00,20,off_sale,
NEW-1,烟台红富士,新副标题,水果,99,5,,规格=20斤
"""
    report = await load(sessions, text)
    assert (report.created, report.updated, report.unchanged, report.errors) == (1, 1, 1, ())
    after = await variants(sessions)
    assert after["FRU-APPLE-5J"][:6] == ("烟台红富士", "新副标题", "水果", "on_sale", 3500, 80)
    # the product's other variant follows the product's new name; the new SKU joins it
    assert after["FRU-APPLE-10J"][0] == "烟台红富士" and after["FRU-APPLE-10J"][4:6] == (6990, 50)
    assert after["NEW-1"][7] == before["FRU-APPLE-5J"][7]
    assert after["TEA-LJ"] == before["TEA-LJ"]


async def test_absent_optional_columns_keep_what_is_stored(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await load(sessions, GOOD)
    text = "sku_code,name,category,price_yuan,stock\nTEA-LJ,龙井,茶叶,100,1\n"
    assert (await load(sessions, text)).updated == 1
    found = (await variants(sessions))["TEA-LJ"]
    assert found[3] == "off_sale" and found[4:7] == (10000, 1, {})


async def test_rows_of_one_product_must_agree(sessions: async_sessionmaker[AsyncSession]) -> None:
    await load(sessions, GOOD)
    text = f"""{HEADER}
FRU-APPLE-5J,烟台苹果,脆甜多汁,水果,39.90,100,on_sale,规格=5斤
FRU-APPLE-10J,烟台苹果,脆甜多汁,水果,69.9,50,off_sale,规格=10斤
"""
    report = await load(sessions, text)
    assert report.unchanged == 1 and report.updated == 0
    [(line, message)] = report.errors
    assert line == 3 and "status" in message and "line 2" in message


async def test_unknown_categories_can_be_created_for_a_first_import(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    text = f"{HEADER}\nV-1,白菜,,蔬菜,3,10,,\nV-2,萝卜,,蔬菜,2,10,,\n"
    report = await load(sessions, text, create_categories=True)
    assert (report.created, report.errors) == (2, ())
    async with sessions() as session:
        assert (
            await session.scalar(
                select(func.count()).select_from(Category).where(Category.name == "蔬菜")
            )
            == 1
        )


async def test_export_then_import_changes_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        await seed_demo_catalog(session)
        await session.commit()
    await load(sessions, GOOD)
    await load(sessions, f'{HEADER}\nX-1,=1+1,"a,b ""c""",水果,0.01,0,off_sale,颜色=红;尺码=M\n')
    before = await variants(sessions)
    exported = await run(sessions, export_products_csv)
    assert exported.splitlines()[0] == HEADER
    assert "'=1+1" in exported  # a formula is neutralised for spreadsheets

    report = await load(sessions, exported, max_rows=100_000)
    assert (report.created, report.updated, report.errors) == (0, 0, ())
    assert report.unchanged == len(before)
    assert await variants(sessions) == before
    assert before["X-1"][:2] == ("=1+1", 'a,b "c"')


def test_cells() -> None:
    assert parse_yuan("12.345") is None and parse_yuan("1e3") is None and parse_yuan("-1") is None
    assert parse_yuan("0.1") == 10 and parse_yuan(" ￥ 19.99 ") == 1999 and parse_yuan("12") == 1200
    assert format_yuan(5) == "0.05" and format_yuan(123456) == "1234.56"
    assert parse_spec("颜色=红；尺码 = M;") == {"颜色": "红", "尺码": "M"}
    assert parse_spec("") == {} and parse_spec("a=1;a=2") is None and parse_spec("=x") is None


# ---- descriptions and pictures --------------------------------------------------------------

SHOP = "https://shop.example.com"
OWN = "/media/" + "a" * 64 + ".jpg"
OWN_THUMB = "/media/" + "b" * 64 + ".jpg"


async def pictures(sessions: async_sessionmaker[AsyncSession], name: str) -> list[tuple[str, str, str]]:
    """(url, thumb_url, source) of the product's pictures, in order."""
    async with sessions() as session:
        product = await session.scalar(
            select(Product).where(Product.name == name).options(selectinload(Product.images))
        )
        assert product is not None
        return [(i.url, i.thumb_url, i.source) for i in product.images]


async def test_description_and_picture_links_are_imported(sessions: async_sessionmaker[AsyncSession]) -> None:
    text = (
        f"{HEADER}\n"
        'FRU-PEAR-3J,秋月梨,,水果,39,10,,规格=3斤,"果肉细腻,汁水足",https://img.example.com/pear.jpg | https://img.example.com/pear2.png\n'
        'FRU-PEAR-5J,秋月梨,,水果,59,10,,规格=5斤,"果肉细腻,汁水足",https://img.example.com/pear.jpg|https://img.example.com/pear2.png\n'
    )
    report = await load(sessions, text)
    assert (report.created, report.errors) == (2, ())
    assert await pictures(sessions, "秋月梨") == [
        ("https://img.example.com/pear.jpg", "", "external"),
        ("https://img.example.com/pear2.png", "", "external"),
    ]
    async with sessions() as session:
        pear = await session.scalar(select(Product).where(Product.name == "秋月梨"))
        assert pear is not None and pear.description == "果肉细腻,汁水足"


async def test_the_shops_own_pictures_go_out_as_links_and_come_back_as_its_own(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await load(sessions, GOOD)
    async with sessions() as session:
        apple = await session.scalar(select(Product).where(Product.name == "烟台苹果"))
        assert apple is not None
        apple.description = "山东烟台直发"
        session.add(ProductImage(product_id=apple.id, url=OWN, thumb_url=OWN_THUMB, source="upload", position=0))
        await session.commit()
    exported = await run(sessions, export_products_csv, base_url=SHOP)
    row = next(r for r in csv.DictReader(io.StringIO(exported)) if r["sku_code"] == "FRU-APPLE-5J")
    assert (row["description"], row["images"]) == ("山东烟台直发", SHOP + OWN)

    report = await load(sessions, exported, base_url=SHOP)
    assert (report.updated, report.errors) == (0, ())  # nothing changed
    assert await pictures(sessions, "烟台苹果") == [(OWN, OWN_THUMB, "upload")]  # its thumbnail kept

    added = exported.replace(SHOP + OWN, f"https://img.example.com/side.jpg|{SHOP}{OWN}")
    report = await load(sessions, added, base_url=SHOP)
    assert (report.updated, report.unchanged, report.errors) == (1, 2, ())  # the first apple row carries it
    assert await pictures(sessions, "烟台苹果") == [
        ("https://img.example.com/side.jpg", "", "external"), (OWN, OWN_THUMB, "upload"),
    ]

    emptied = added.replace(f"https://img.example.com/side.jpg|{SHOP}{OWN}", "")
    await load(sessions, emptied, base_url=SHOP)
    assert await pictures(sessions, "烟台苹果") == []  # present and empty: none


async def test_an_import_without_the_images_column_keeps_the_pictures(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await load(sessions, GOOD.replace("TEA-LJ,龙井,,Tea,128,20,off_sale,", "TEA-LJ,龙井,,Tea,128,20,off_sale,,,https://img.example.com/lj.jpg"))
    old_header = ",".join(CSV_HEADER[:8])
    report = await load(sessions, f"{old_header}\nTEA-LJ,龙井,,Tea,120,20,off_sale,\n")
    assert report.updated == 1
    assert await pictures(sessions, "龙井") == [("https://img.example.com/lj.jpg", "", "external")]


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("ftp://img.example.com/a.jpg", "is not an http(s) link"),
        ("javascript:alert(1)", "is not an http(s) link"),
        ("/etc/passwd", "is not an http(s) link"),
        ("|".join(f"https://img.example.com/{n}.jpg" for n in range(10)), "at most 9 pictures"),
        ("https://img.example.com/" + "x" * 500 + ".jpg", "is not an http(s) link"),
    ],
)
async def test_a_picture_cell_that_is_no_list_of_links_is_a_row_error(
    sessions: async_sessionmaker[AsyncSession], cell: str, message: str
) -> None:
    report = await load(sessions, f"{HEADER}\nX-1,梨,,水果,3,10,,,,{cell}\n")
    assert report.created == 0
    ((line, error),) = report.errors
    assert line == 2 and message in error


async def test_rows_of_one_product_must_agree_on_its_pictures(sessions: async_sessionmaker[AsyncSession]) -> None:
    report = await load(
        sessions,
        f"{HEADER}\nP-1,梨,,水果,3,10,,规格=小,,https://img.example.com/a.jpg\n"
        f"P-2,梨,,水果,5,10,,规格=大,,https://img.example.com/b.jpg\n",
    )
    assert report.created == 1 and report.errors == ((3, "images differ from line 2 (same product)"),)


async def test_a_long_description_is_a_row_error(sessions: async_sessionmaker[AsyncSession]) -> None:
    report = await load(sessions, f"{HEADER}\nX-1,梨,,水果,3,10,,,{'长' * 1001},\n")
    assert report.errors == ((2, "description: at most 1000 characters"),)

"""CSV exports: orders by local date range, one row per line; the product catalog."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from commerce.catalog.csv_io import CSV_HEADER
from commerce.customers.models import Address
from commerce.errors import ErrorCode
from commerce.reports import export
from commerce.wiring import shop_sessions
from tests.commerce.orders.test_queries import customer, expect_error, run, shop_order, variant

TZ = ZoneInfo("Asia/Shanghai")


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 5, day, hour, minute, tzinfo=TZ)


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return shop_sessions(engine)


def parse(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def orders_csv(
    sessions: async_sessionmaker[AsyncSession], start: date, end: date
) -> list[dict[str, str]]:
    text = await run(sessions, export.export_orders_csv, start=start, end=end, tz=TZ, locale="en")
    assert text.splitlines()[0] == ",".join(export.order_headers("en"))
    return parse(text)


async def test_orders_by_local_date_one_row_per_line(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    apple = await variant(sessions, name="苹果", price_fen=1250)
    tea = await variant(sessions, name="龙井", price_fen=5000)
    buyer = await customer(sessions, "buyer-openid")
    async with sessions() as session:  # a customer who typed a formula as their address
        await session.execute(
            update(Address).where(Address.customer_id == buyer).values(address="=HYPERLINK(1)")
        )
        await session.commit()
    # 00:30 on May 2 in Shanghai is still May 1 in UTC: it belongs to May 2
    two_lines = await shop_order(
        sessions,
        [(apple, 2), (tea, 1)],
        customer_id=buyer,
        placed_at=local(2, 0, 30),
        paid_at=local(2, 0, 31),
    )
    await shop_order(sessions, [(apple, 1)], placed_at=local(1, 23, 59))
    last = await shop_order(sessions, [(tea, 1)], placed_at=local(3, 23, 59))
    await shop_order(sessions, [(tea, 1)], placed_at=local(4, 0, 0))

    rows = await orders_csv(sessions, date(2026, 5, 2), date(2026, 5, 3))
    assert [(r["order_no"], r["line_no"]) for r in rows] == [
        (two_lines.order_no, "1"),
        (two_lines.order_no, "2"),
        (last.order_no, "1"),
    ]
    first, second = rows[0], rows[1]
    assert (
        first["created_at"] == "2026-05-02 00:30:00" and first["paid_at"] == "2026-05-02 00:31:00"
    )
    assert (first["status"], first["openid"]) == ("paid", "buyer-openid")
    assert (
        first["name"],
        first["unit_price_yuan"],
        first["quantity"],
        first["line_total_yuan"],
    ) == (
        "苹果",
        "12.50",
        "2",
        "25.00",
    )
    assert (second["name"], second["line_total_yuan"]) == ("龙井", "50.00")
    assert first["goods_yuan"] == second["goods_yuan"] == "75.00"
    assert (first["delivery_yuan"], first["payable_yuan"], first["paid_yuan"]) == (
        "8.00",
        "83.00",
        "83.00",
    )
    assert (first["refunded_yuan"], first["shipped_at"], first["carrier"]) == ("0.00", "", "")
    assert (first["address_name"], first["address_phone"]) == ("张三", "13800138000")
    assert first["address_text"] == "'=HYPERLINK(1)"
    assert first["sku_code"].startswith("SKU-") and rows[2]["status"] == "pending_payment"

    assert len(await orders_csv(sessions, date(2026, 5, 1), date(2026, 5, 1))) == 1
    assert await orders_csv(sessions, date(2026, 6, 1), date(2026, 6, 30)) == []


async def test_the_date_range_is_checked(sessions: async_sessionmaker[AsyncSession]) -> None:
    start = date(2026, 1, 1)
    for end in (start - timedelta(days=1), start + timedelta(days=366)):
        details = await expect_error(
            ErrorCode.DATE_RANGE_INVALID,
            run(sessions, export.export_orders_csv, start=start, end=end, tz=TZ),
        )
        assert details["max_days"] == 366
    # a whole leap year (366 days) is fine
    await run(
        sessions,
        export.export_orders_csv,
        start=date(2028, 1, 1),
        end=date(2028, 12, 31),
        tz=TZ,
    )


async def test_products_export_has_the_import_columns(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await variant(sessions, name="苹果", price_fen=1250, stock=7)
    text = await run(sessions, export.export_products_csv)
    [row] = parse(text)
    assert tuple(row) == CSV_HEADER
    assert (row["name"], row["category"], row["price_yuan"], row["stock"], row["status"]) == (
        "苹果",
        "测试",
        "12.50",
        "7",
        "on_sale",
    )
    assert row["spec"].startswith("规格=")


def test_headers_follow_the_locale() -> None:
    assert export.order_headers("zh")[:4] == ("订单号", "下单时间", "订单状态", "拼团状态")
    assert export.order_headers("en")[:4] == ("order_no", "created_at", "status", "group_status")


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("上海市浦东新区世纪大道100号", ("上海市", "上海市", "浦东新区", "世纪大道100号")),
        ("广东省深圳市南山区科技园南区1栋", ("广东省", "深圳市", "南山区", "科技园南区1栋")),
        ("北京朝阳区建国路88号", ("北京市", "北京市", "朝阳区", "建国路88号")),
        ("新疆维吾尔自治区乌鲁木齐市天山区解放路1号", ("新疆维吾尔自治区", "乌鲁木齐市", "天山区", "解放路1号")),
        ("湖北省恩施土家族苗族自治州恩施市舞阳大道", ("湖北省", "恩施土家族苗族自治州", "恩施市", "舞阳大道")),
        ("某某街道1号", ("", "", "", "某某街道1号")),
    ],
)
def test_split_address(text: str, parts: tuple[str, str, str, str]) -> None:
    assert export.split_address(text) == parts


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet="上海市浦东新区广东省深圳南山县路号 1aA", max_size=30))
def test_split_address_keeps_the_rest_of_what_was_typed(text: str) -> None:
    province, city, district, detail = export.split_address(text)
    assert detail == text.strip() or "".join(text.split()).endswith(detail)
    assert not district or city

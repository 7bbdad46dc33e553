"""The orders export a merchant can use: a page with the choices, an XLSX with Chinese
headers and statuses, group columns and the address split for a courier's tool; through
the real app on SQLite. The link's seal, expiry, one use and roles: test_export.py."""

from __future__ import annotations

import io
import re
from urllib.parse import unquote

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commerce.orders.ship_file import read_ship_file
from commerce.reports.export import order_headers, split_address
from tests.bot.admin.test_orders import pay
from tests.bot.admin.test_shipping import _group_seat
from tests.bot.conftest import OWNER, STRANGER
from tests.bot.driver import Shop, db
from tests.fakes import insert_order

LINK = re.compile(r"https://shop\.example\.com(/export/[A-Za-z0-9_-]+)")


async def test_orders_export_page_gives_an_xlsx_with_chinese_headers_group_columns_and_split_address(
    sqlite_staffed: Shop,
) -> None:
    shop = sqlite_staffed
    paid = await insert_order(db(shop.client.app), openid="o_buyer_0001", quantity=1)
    await pay(shop, paid.order_no)
    unpaid = await insert_order(db(shop.client.app), openid="o_buyer_0002", quantity=1)
    seat = await _group_seat(shop)

    reply = await shop.user(OWNER).say("/export")
    path = LINK.search(reply.text)
    assert path is not None and "订单导出页面" in reply.text, reply.text
    page = await shop.client.get(path.group(1))
    html = await page.text()
    assert page.status == 200 and 'value="xlsx" selected' in html and 'name="status"' in html
    assert "在浏览器打开" in html  # what to do where WeChat's browser will not download

    response = await shop.client.get(f"{path.group(1)}/file", params={"status": "paid", "format": "xlsx", "lang": "zh"})
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="orders-') and '-paid.xlsx"; ' in disposition
    assert unquote(disposition.split("filename*=UTF-8''")[1]).endswith("-待发货.xlsx")

    sheet = openpyxl.load_workbook(io.BytesIO(await response.read())).active
    rows = [[cell.value or "" for cell in row] for row in sheet.iter_rows()]
    header = rows[0]
    for column in ("订单号", "订单状态", "拼团状态", "团号", "收货人", "联系电话", "省", "市", "区/县", "详细地址"):
        assert column in header, header
    by_no = {row[header.index("订单号")]: dict(zip(header, row, strict=True)) for row in rows[1:]}
    assert set(by_no) == {paid.order_no, seat}  # status=paid: the unpaid order is left out
    assert unpaid.order_no not in by_no
    plain, waiting = by_no[paid.order_no], by_no[seat]
    assert (plain["订单状态"], plain["拼团状态"], plain["团号"]) == ("待发货", "", "")
    assert (plain["省"], plain["市"], plain["区/县"], plain["详细地址"]) == ("上海市", "上海市", "浦东新区", "世纪大道1号")
    assert (waiting["订单状态"], waiting["拼团状态"]) == ("待成团", "待成团 (1/3)") and len(waiting["团号"]) == 6
    assert plain["数量"] == 1 and plain["实付(元)"] == 29.9 and plain["联系电话"] == "13800000000"  # numbers sum
    assert (await shop.client.get(f"{path.group(1)}/file")).status == 410  # one download

    again = LINK.search((await shop.user(OWNER).say("/export")).text)
    assert again is not None
    assert (await shop.client.get(f"{again.group(1)}/file", params={"format": "pdf"})).status == 400
    ready = await shop.client.get(f"{again.group(1)}/file", params={"status": "to_ship", "lang": "en"})
    assert ready.status == 200 and ready.headers["Content-Type"].startswith("text/csv")
    text = (await ready.read()).decode("utf-8-sig")
    assert text.startswith("order_no,created_at,status,group_status,group_code,")
    assert paid.order_no in text and seat not in text  # ready to ship: the waiting seat is left out
    assert "/export/" not in (await shop.user(STRANGER).say("/export")).text


def test_headers_follow_the_locale() -> None:
    assert order_headers("zh")[:4] == ("订单号", "下单时间", "订单状态", "拼团状态")
    assert order_headers("en")[:4] == ("order_no", "created_at", "status", "group_status")


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("广东省深圳市南山区科技园南区1栋", ("广东省", "深圳市", "南山区", "科技园南区1栋")),
        ("北京朝阳区建国路88号", ("北京市", "北京市", "朝阳区", "建国路88号")),
        ("新疆维吾尔自治区乌鲁木齐市天山区解放路1号", ("新疆维吾尔自治区", "乌鲁木齐市", "天山区", "解放路1号")),
        ("某某街道1号", ("", "", "", "某某街道1号")),
    ],
)
def test_split_address(text: str, parts: tuple[str, str, str, str]) -> None:
    assert split_address(text) == parts


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet="上海市浦东新区广东省深圳南山县路号 1aA", max_size=30))
def test_split_address_keeps_the_rest_of_what_was_typed(text: str) -> None:
    province, city, district, detail = split_address(text)
    squeezed = "".join(text.split())
    assert detail == text.strip() or squeezed.endswith(detail)
    assert not district or city


def test_a_ship_file_in_xlsx_keeps_a_tracking_number_excel_took_for_a_number() -> None:
    book = openpyxl.Workbook()
    book.active.append(["运单号", "快递公司", "订单号"])
    book.active.append([773012345678.0, "中通", "SF2026010100000001"])
    out = io.BytesIO()
    book.save(out)
    (line,) = read_ship_file(out.getvalue())
    assert (line.ref, line.carrier, line.tracking_no) == ("SF2026010100000001", "中通", "773012345678")
    pasted = read_ship_file("SF1 顺丰 T1\nSF2，圆通，T2\n\"SF3\",EMS,T3\nSF4\t中通\tT4".encode())
    assert [(x.ref, x.carrier, x.tracking_no) for x in pasted] == [
        ("SF1", "顺丰", "T1"), ("SF2", "圆通", "T2"), ("SF3", "EMS", "T3"), ("SF4", "中通", "T4")]


def test_a_ship_file_from_excel_in_gbk_with_english_headers_is_read() -> None:
    data = "Tracking,Order No,Carrier\r\nYT123456,SF2026010100000001,圆通\r\n,,\r\n".encode("gb18030")
    (line,) = read_ship_file(data)
    assert (line.ref, line.carrier, line.tracking_no, line.line_no) == ("SF2026010100000001", "圆通", "YT123456", 2)

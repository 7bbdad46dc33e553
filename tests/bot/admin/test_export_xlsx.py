"""The orders export a merchant can use: a page with the choices, an XLSX with Chinese
headers and statuses, group columns and the address split for a courier's tool; through
the real app on SQLite. The link's seal, expiry, one use and roles: test_export.py."""

from __future__ import annotations

import io
import re
from urllib.parse import unquote

import openpyxl

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

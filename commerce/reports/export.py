"""Exports for staff: orders over a date range (CSV or XLSX), and the product catalog (CSV).

Orders come with headers and statuses in the shop's language, a group seat's group
status and code, and the address split into province, city, district and detail for a
courier's batch tool (as the address book read it against the region dataset; for older
orders `split_address`: best effort over the one line the address is
stored as). CSV texts are plain `str`; whoever serves them encodes with `CSV_ENCODING`
(UTF-8 with a BOM, so that Excel shows Chinese correctly). Amounts are yuan with two decimals,
times are local to the shop's time zone. Cells a spreadsheet would run as formulas
(an address typed as "=HYPERLINK(...)") get a leading apostrophe.
"""

from __future__ import annotations

import io
import re
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.catalog.csv_io import export_products_csv_rows, safe_cell, write_csv
from commerce.customers.models import Customer
from commerce.errors import ErrorCode, ShopError
from commerce.groupbuys.models import GroupBuy, GroupStatus
from commerce.money import format_yuan
from commerce.orders.models import Order, OrderLine, OrderStatus
from commerce.reports.stats import local_day_bounds
from commerce.rules import as_utc

CSV_ENCODING = "utf-8-sig"
MAX_DAYS = 366
LOCALES = ("zh", "en")
# (key, Chinese header, English header): the orders export's columns, in order
ORDER_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("order_no", "订单号", "order_no"),
    ("created_at", "下单时间", "created_at"),
    ("status", "订单状态", "status"),
    ("group_status", "拼团状态", "group_status"),
    ("group_code", "团号", "group_code"),
    ("openid", "顾客openid", "openid"),
    ("line_no", "明细行", "line_no"),
    ("sku_code", "SKU编码", "sku_code"),
    ("name", "商品名称", "name"),
    ("spec", "规格", "spec"),
    ("unit_price_yuan", "单价(元)", "unit_price_yuan"),
    ("quantity", "数量", "quantity"),
    ("line_total_yuan", "小计(元)", "line_total_yuan"),
    ("goods_yuan", "商品金额(元)", "goods_yuan"),
    ("discount_yuan", "优惠(元)", "discount_yuan"),
    ("delivery_yuan", "运费(元)", "delivery_yuan"),
    ("points_yuan", "积分抵扣(元)", "points_yuan"),
    ("payable_yuan", "应付(元)", "payable_yuan"),
    ("paid_yuan", "实付(元)", "paid_yuan"),
    ("refunded_yuan", "已退款(元)", "refunded_yuan"),
    ("paid_at", "付款时间", "paid_at"),
    ("shipped_at", "发货时间", "shipped_at"),
    ("carrier", "快递公司", "carrier"),
    ("tracking_no", "运单号", "tracking_no"),
    ("address_name", "收货人", "address_name"),
    ("address_phone", "联系电话", "address_phone"),
    ("province", "省", "province"),
    ("city", "市", "city"),
    ("district", "区/县", "district"),
    ("address_detail", "详细地址", "address_detail"),
    ("address_text", "完整地址", "address_text"),
    ("note", "备注", "note"),
)
READY_TO_SHIP = "to_ship"  # a choice beside the statuses: paid, and not a seat waiting for its group
WAITING = "waiting_for_group"  # what a paid seat of a group not filled yet reads as, instead of paid
STATUS_NAMES: dict[str, dict[str, str]] = {
    "zh": {"pending_payment": "待支付", "paid": "待发货", "shipped": "已发货", "completed": "已完成",
           "cancelled": "已取消", "refunding": "退款中", "refunded": "已退款", WAITING: "待成团",
           READY_TO_SHIP: "可发货"},
    "en": {**{s.value: s.value for s in OrderStatus}, WAITING: WAITING, READY_TO_SHIP: "ready to ship"},
}
GROUP_NAMES: dict[str, dict[str, str]] = {
    "zh": {"forming": "待团长付款", "open": "待成团", "filled": "已成团", "failed": "未成团", "closed": "已关闭"},
    "en": {"forming": "forming", "open": "waiting", "filled": "filled", "failed": "failed", "closed": "closed"},
}


OPEN_GROUPS = (GroupStatus.FORMING.value, GroupStatus.OPEN.value)


def order_headers(locale: str) -> tuple[str, ...]:
    """The orders export's header row in `locale` (zh: Chinese, otherwise English)."""
    index = 1 if locale == "zh" else 2
    return tuple(column[index] for column in ORDER_COLUMNS)


# ---- addresses, split for a courier's batch tool ----------------------------------------------

_MUNICIPALITIES = ("北京", "天津", "上海", "重庆")
_REGIONS = ("内蒙古", "广西", "西藏", "宁夏", "新疆", "香港", "澳门")
_PROVINCES = ("河北", "山西", "辽宁", "吉林", "黑龙江", "江苏", "浙江", "安徽", "福建", "江西", "山东", "河南",
              "湖北", "湖南", "广东", "海南", "四川", "贵州", "云南", "陕西", "甘肃", "青海", "台湾")
_MUNICIPALITY = re.compile(rf"^({'|'.join(_MUNICIPALITIES)})市?")
_REGION = re.compile(rf"^({'|'.join(_REGIONS)})(\w{{0,8}}?(?:自治区|特别行政区))?")
_PROVINCE = re.compile(rf"^({'|'.join(_PROVINCES)})省?")
_CITY = re.compile(r"^(\w{1,9}?(?:自治州|地区|盟|市))")
_DISTRICT = re.compile(r"^(\w{1,9}?(?:新区|区|县|旗|市))")


def split_address(text: str) -> tuple[str, str, str, str]:
    """(province, city, district, detail) of an address typed in one line, best effort:
    "上海市浦东新区世纪大道100号" -> ("上海市", "上海市", "浦东新区", "世纪大道100号"). What it
    cannot place stays in the detail, whole."""
    rest = "".join((text or "").split())
    province = city = district = ""
    if found := _MUNICIPALITY.match(rest):
        province = city = f"{found.group(1)}市"
        rest = rest[found.end():]
        rest = rest.removeprefix(province).removeprefix("市辖区")
    elif found := _REGION.match(rest):
        province, rest = found.group(0), rest[found.end():]
    elif found := _PROVINCE.match(rest):
        province, rest = f"{found.group(1)}省", rest[found.end():]
    else:
        return "", "", "", (text or "").strip()
    if not city and (found := _CITY.match(rest)):
        city, rest = found.group(1), rest[found.end():]
    if city and (found := _DISTRICT.match(rest)):
        district, rest = found.group(1), rest[found.end():]
    return province, city, district, rest


def _local(moment: datetime | None, tz: ZoneInfo) -> str:
    return "" if moment is None else as_utc(moment).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


async def export_orders_rows(
    session: AsyncSession, *, start: date, end: date, tz: ZoneInfo, status: OrderStatus | str | None = None,
    locale: str = "zh",
) -> list[tuple[object, ...]]:
    """The header and the rows of the orders created from `start` to `end` (local dates,
    both included), in `status` (None: all; READY_TO_SHIP: paid orders that may ship, not
    the seats of a group that has not filled), one row per order line, oldest first. A
    paid seat waiting for its group reads as WAITING ("待成团"), not as paid. The
    order's amounts repeat on each of its rows: sum them over the rows with line_no 1.
    Headers, statuses and group statuses in `locale`; a group seat's row names its group's
    status ("待成团 (2/3)" for one waiting: it cannot ship) and code; the address comes
    split (`split_address`) beside the whole. DATE_RANGE_INVALID when end < start or the
    range is longer than MAX_DAYS days."""
    days = (end - start).days + 1
    if days < 1 or days > MAX_DAYS:
        raise ShopError(
            ErrorCode.DATE_RANGE_INVALID,
            start=start.isoformat(),
            end=end.isoformat(),
            max_days=MAX_DAYS,
        )
    locale = locale if locale in LOCALES else "zh"
    since, until = local_day_bounds(start, end, tz)
    query = (
        select(Order, OrderLine, Customer.openid, GroupBuy.status, GroupBuy.code, GroupBuy.paid_count, GroupBuy.size)
        .join(OrderLine, OrderLine.order_id == Order.id)
        .join(Customer, Customer.id == Order.customer_id)
        .outerjoin(GroupBuy, GroupBuy.id == Order.group_id)
        .where(Order.created_at >= since, Order.created_at < until)
        .order_by(Order.created_at, Order.id, OrderLine.id)
    )
    if status == READY_TO_SHIP:
        query = query.where(
            Order.status == OrderStatus.PAID.value,
            or_(Order.group_id.is_(None), GroupBuy.status == GroupStatus.FILLED.value),
        )
    elif status is not None:
        query = query.where(Order.status == OrderStatus(status).value)
    rows = await session.execute(query)
    statuses, groups = STATUS_NAMES[locale], GROUP_NAMES[locale]
    out: list[tuple[object, ...]] = [order_headers(locale)]
    line_no: dict[int, int] = {}
    for order, line, openid, group_status, group_code, paid_count, size in rows:
        line_no[order.id] = line_no.get(order.id, 0) + 1
        group, shown_status = "", order.status
        if group_status is not None:
            group = groups.get(group_status, group_status)
            if group_status == GroupStatus.OPEN.value:
                group += f" ({paid_count}/{size})"
            if order.status == OrderStatus.PAID.value and group_status in OPEN_GROUPS:
                shown_status = WAITING
        if order.address_province:  # read against the region dataset when the address was saved
            province, city, district, detail = (
                order.address_province, order.address_city, order.address_district, order.address_detail
            )
        else:  # an order from before addresses were read by region
            province, city, district, detail = split_address(order.address_text)
        out.append(
            tuple(
                safe_cell(v)
                for v in (
                    order.order_no,
                    _local(order.created_at, tz),
                    statuses.get(shown_status, shown_status),
                    group,
                    group_code or "",
                    openid,
                    line_no[order.id],
                    line.sku_code,
                    line.name,
                    line.spec_label,
                    format_yuan(line.unit_price_fen),
                    line.quantity,
                    format_yuan(line.unit_price_fen * line.quantity),
                    format_yuan(order.goods_fen),
                    format_yuan(order.discount_fen),
                    format_yuan(order.delivery_fen),
                    format_yuan(order.points_fen),
                    format_yuan(order.payable_fen),
                    format_yuan(order.paid_fen),
                    format_yuan(order.refunded_fen),
                    _local(order.paid_at, tz),
                    _local(order.shipped_at, tz),
                    order.carrier,
                    order.tracking_no,
                    order.address_name,
                    order.address_phone,
                    province,
                    city,
                    district,
                    detail,
                    order.address_text,
                    order.note,
                )
            )
        )
    return out


async def export_orders_csv(
    session: AsyncSession, *, start: date, end: date, tz: ZoneInfo, status: OrderStatus | None = None,
    locale: str = "zh",
) -> str:
    """`export_orders_rows` as CSV text (encode it with CSV_ENCODING)."""
    return write_csv(
        await export_orders_rows(session, start=start, end=end, tz=tz, status=status, locale=locale)
    )


ORDER_NUMBER_COLUMNS = frozenset(
    i for i, (key, _, _) in enumerate(ORDER_COLUMNS) if key.endswith("_yuan") or key in ("line_no", "quantity")
)
_NUMBER = re.compile(r"^-?\d{1,15}(?:\.\d{1,2})?$")


def to_xlsx(rows: list[tuple[object, ...]], *, title: str, numbers: frozenset[int] = frozenset()) -> bytes:
    """The rows as an Excel workbook of one sheet, the header row frozen. The cells of the
    `numbers` columns are numbers (amounts sum in Excel; yuan shown with two decimals),
    every other cell text: an order, phone or tracking number stays as typed."""
    from openpyxl import Workbook  # here: a worker carries its 7 MiB only once a sheet is made

    book = Workbook()
    sheet = book.active
    sheet.title = title[:31]
    for index, row in enumerate(rows):
        cells: list[object] = []
        for column, cell in enumerate(row):
            text = str(cell)
            cells.append(Decimal(text) if index and column in numbers and _NUMBER.match(text) else text)
        sheet.append(cells)
        for written in sheet[sheet.max_row]:
            if isinstance(written.value, Decimal | float) and "." in str(cells[written.column - 1]):
                written.number_format = "0.00"
    sheet.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def export_products_csv(session: AsyncSession, *, base_url: str = "") -> str:
    """Every product's variants, as `commerce.catalog.csv_io.CSV_HEADER`: re-importable
    (the shop's own pictures as links under `base_url`)."""
    return write_csv(await export_products_csv_rows(session, base_url=base_url))

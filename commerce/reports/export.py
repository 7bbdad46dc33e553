"""CSV exports for staff: orders over a date range, and the product catalog.

The texts are plain `str`; whoever serves them encodes with `CSV_ENCODING` (UTF-8 with
a BOM, so that Excel shows Chinese correctly). Amounts are yuan with two decimals,
times are local to the shop's time zone. Cells a spreadsheet would run as formulas
(an address typed as "=HYPERLINK(...)") get a leading apostrophe.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.catalog.csv_io import export_products_csv_rows, safe_cell, write_csv
from commerce.customers.models import Customer
from commerce.errors import ErrorCode, ShopError
from commerce.money import format_yuan
from commerce.orders.models import Order, OrderLine
from commerce.rules import as_utc

CSV_ENCODING = "utf-8-sig"
MAX_DAYS = 366
ORDER_COLUMNS = (
    "order_no",
    "created_at",
    "status",
    "openid",
    "line_no",
    "sku_code",
    "name",
    "spec",
    "unit_price_yuan",
    "quantity",
    "line_total_yuan",
    "goods_yuan",
    "discount_yuan",
    "delivery_yuan",
    "points_yuan",
    "payable_yuan",
    "paid_yuan",
    "refunded_yuan",
    "paid_at",
    "shipped_at",
    "carrier",
    "tracking_no",
    "address_name",
    "address_phone",
    "address_text",
    "note",
)


def local_day_bounds(start: date, end: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[local midnight of `start`, local midnight after `end`) as UTC datetimes."""
    return (
        datetime.combine(start, time.min, tzinfo=tz).astimezone(UTC),
        datetime.combine(end + timedelta(days=1), time.min, tzinfo=tz).astimezone(UTC),
    )


def _local(moment: datetime | None, tz: ZoneInfo) -> str:
    return "" if moment is None else as_utc(moment).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


async def export_orders_csv(session: AsyncSession, *, start: date, end: date, tz: ZoneInfo) -> str:
    """Orders created from `start` to `end` (local dates, both included), one row per
    order line, oldest first. The order's amounts repeat on each of its rows: sum them
    over the rows with line_no 1. DATE_RANGE_INVALID when end < start or the range is
    longer than MAX_DAYS days."""
    days = (end - start).days + 1
    if days < 1 or days > MAX_DAYS:
        raise ShopError(
            ErrorCode.DATE_RANGE_INVALID,
            start=start.isoformat(),
            end=end.isoformat(),
            max_days=MAX_DAYS,
        )
    since, until = local_day_bounds(start, end, tz)
    rows = await session.execute(
        select(Order, OrderLine, Customer.openid)
        .join(OrderLine, OrderLine.order_id == Order.id)
        .join(Customer, Customer.id == Order.customer_id)
        .where(Order.created_at >= since, Order.created_at < until)
        .order_by(Order.created_at, Order.id, OrderLine.id)
    )
    out: list[tuple[object, ...]] = [ORDER_COLUMNS]
    line_no: dict[int, int] = {}
    for order, line, openid in rows:
        line_no[order.id] = line_no.get(order.id, 0) + 1
        out.append(
            tuple(
                safe_cell(v)
                for v in (
                    order.order_no,
                    _local(order.created_at, tz),
                    order.status,
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
                    order.address_text,
                    order.note,
                )
            )
        )
    return write_csv(out)


async def export_products_csv(session: AsyncSession) -> str:
    """Every product's variants, as `commerce.catalog.csv_io.CSV_HEADER`: re-importable."""
    return write_csv(await export_products_csv_rows(session))

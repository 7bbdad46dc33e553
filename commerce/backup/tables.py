"""How a table becomes a CSV of a backup and back, without losing a value.

Each cell is text that a spreadsheet shows as it is and that `decode` turns back into
exactly the value that was stored:

- integers as digits (money stays integer fen: the headers say 分), booleans as 1 / 0;
- times as ISO 8601 in UTC (`2026-12-05T08:30:00.123456+00:00`), JSON as compact JSON;
- text as it is, except that a text a spreadsheet would run as a formula (`=`, `+`, `-`,
  `@`...) or that starts with an apostrophe gets one leading apostrophe (taken off again);
- an empty cell is NULL in a column that may be NULL, and an empty text where it may not;
  an empty text in a column that may be NULL is a lone apostrophe.

The header row holds the column names, or for the tables staff read (orders, order lines,
customers, products, variants) their Chinese names (`HEADERS_ZH`); `columns_of_header`
reads either.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Integer,
    String,
    Table,
    Text,
)

from commerce.backup import BackupError
from commerce.catalog.csv_io import FORMULA_STARTS
from commerce.rules import as_utc

CSV_ENCODING = "utf-8-sig"  # a BOM: Excel then shows Chinese correctly

HEADERS_ZH: dict[str, dict[str, str]] = {
    "orders": {
        "id": "编号", "order_no": "订单号", "customer_id": "顾客编号", "status": "状态",
        "idempotency_key": "幂等键", "goods_fen": "商品金额（分）", "discount_fen": "优惠（分）",
        "delivery_fen": "运费（分）", "points_fen": "积分抵扣（分）", "points_used": "使用积分",
        "payable_fen": "应付（分）", "paid_fen": "实付（分）", "refunded_fen": "已退款（分）",
        "customer_coupon_id": "顾客优惠券编号", "group_id": "拼团编号", "address_name": "收货人",
        "address_phone": "收货电话", "address_text": "收货地址", "note": "备注", "pay_provider": "支付方式",
        "pay_transaction_id": "支付流水号", "carrier": "快递公司", "tracking_no": "快递单号",
        "created_at": "下单时间（UTC）", "expires_at": "支付截止（UTC）", "reminded_at": "催付时间（UTC）",
        "paid_at": "支付时间（UTC）", "shipped_at": "发货时间（UTC）", "completed_at": "完成时间（UTC）",
        "closed_at": "关闭时间（UTC）",
    },
    "order_lines": {
        "id": "编号", "order_id": "订单编号", "product_id": "商品编号", "variant_id": "规格编号",
        "sku_code": "SKU", "name": "商品名称", "spec_label": "规格", "unit_price_fen": "单价（分）",
        "quantity": "数量",
    },
    "customers": {
        "id": "编号", "openid": "openid", "locale": "语言", "subscribed": "已关注", "first_seen": "首次来访（UTC）",
        "last_seen": "最近来访（UTC）", "last_message_at": "最近消息（UTC）", "window_sent": "窗口内已发",
        "paid_window_at": "支付窗口（UTC）", "referral_code": "推荐码", "referrer_id": "推荐人编号",
        "referred_at": "绑定时间（UTC）", "referral_until": "绑定截止（UTC）", "points_balance": "积分余额",
    },
    "products": {
        "id": "编号", "category_id": "分类编号", "name": "商品名称", "subtitle": "副标题", "description": "描述",
        "status": "状态", "sort_order": "排序", "sales_count": "销量", "created_at": "创建时间（UTC）",
        "updated_at": "更新时间（UTC）",
    },
    "variants": {
        "id": "编号", "product_id": "商品编号", "sku_code": "SKU", "spec": "规格", "price_fen": "价格（分）",
        "stock": "库存", "low_stock_threshold": "低库存提醒",
    },
}


def header(table: Table) -> list[str]:
    names = HEADERS_ZH.get(table.name, {})
    return [names.get(column.name, column.name) for column in table.columns]


def columns_of_header(table: Table, cells: Sequence[str]) -> list[Column[Any]]:
    """The columns a header row names, in its order; `BackupError` unless it names each once."""
    by_name: dict[str, Column[Any]] = {}
    zh = HEADERS_ZH.get(table.name, {})
    for column in table.columns:
        by_name[column.name] = column
        by_name[zh.get(column.name, column.name)] = column
    columns = [by_name.get(cell.strip()) for cell in cells]
    unknown = [cell for cell, column in zip(cells, columns, strict=True) if column is None]
    if unknown:
        raise BackupError(f"table {table.name}: unknown columns {', '.join(unknown)}")
    found = [c for c in columns if c is not None]
    missing = [c.name for c in table.columns if c not in found]
    if missing or len(set(found)) != len(found):
        raise BackupError(f"table {table.name}: the header must name each column once (missing: {', '.join(missing)})")
    return found


def _is_text(column: Column[Any]) -> bool:
    return isinstance(column.type, String | Text) and not isinstance(column.type, JSON)


def encode(column: Column[Any], value: Any) -> str:
    """The cell of `value` stored in `column` (see the module)."""
    kind = column.type
    if value is None:
        # JSON's null where SQL NULL cannot be (SQLAlchemy reads both as None)
        return "null" if isinstance(kind, JSON) and not column.nullable else ""
    if isinstance(kind, Boolean):
        return "1" if value else "0"
    if isinstance(kind, Integer | BigInteger):
        return str(int(value))
    if isinstance(kind, DateTime):
        return as_utc(value).isoformat()
    if isinstance(kind, Date):
        return str(value.isoformat())
    if isinstance(kind, JSON):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if _is_text(column):
        text = str(value)
        if text.startswith((*FORMULA_STARTS, "'")) or (text == "" and column.nullable):
            return "'" + text
        return text
    raise BackupError(f"column {column.table.name}.{column.name}: no CSV form for its type {kind!r}")


def decode(column: Column[Any], cell: str) -> Any:
    """The value `encode` wrote; `BackupError` when the cell cannot be one."""
    kind = column.type
    if _is_text(column):
        if cell.startswith("'"):
            return cell[1:]
        return None if cell == "" and column.nullable else cell
    if cell == "":
        if not column.nullable:
            raise BackupError(f"column {column.table.name}.{column.name} may not be empty")
        return None
    try:
        if isinstance(kind, Boolean):
            if cell not in ("0", "1"):
                raise ValueError(cell)
            return cell == "1"
        if isinstance(kind, Integer | BigInteger):
            return int(cell)
        if isinstance(kind, DateTime):
            return as_utc(datetime.fromisoformat(cell))
        if isinstance(kind, Date):
            return date.fromisoformat(cell)
        if isinstance(kind, JSON):
            return json.loads(cell)
    except ValueError:
        raise BackupError(f"column {column.table.name}.{column.name}: {cell[:40]!r} is not a value of its type") from None
    raise BackupError(f"column {column.table.name}.{column.name}: no CSV form for its type {kind!r}")

"""A bulk-ship file, as staff export it from a spreadsheet or a courier's tool, or paste it:
one row per order with its order number, carrier and tracking number.

Read as XLSX (the first sheet), or as text: CSV (commas, also full-width ，), rows copied
from a spreadsheet (tabs), or words separated by spaces. Columns are found by their header
(Chinese or English: 订单号 / order_no, 快递公司 / carrier, 运单号 / tracking_no...) or,
without a header, taken in that order. Text is UTF-8 (with or without a BOM) or GB18030,
which Excel writes on Chinese Windows. Rows become `ShipLine`s numbered as the file's
lines; checking each is the ship use case's job (`commerce.orders.actions.ship_orders`),
so a bad row is reported, not fatal. Pure.
"""

from __future__ import annotations

import csv
import io
import re

from commerce.errors import ErrorCode, ShopError
from commerce.orders.actions import MAX_SHIP_LINES, ShipLine

MAX_FILE_BYTES = 512 * 1024
HEADERS: dict[str, tuple[str, ...]] = {
    "ref": ("订单号", "订单编号", "订单", "order", "order no", "order number", "order id"),
    "carrier": ("快递公司", "承运商", "物流公司", "快递", "carrier", "courier", "carrier code"),
    "tracking_no": ("运单号", "快递单号", "物流单号", "单号", "tracking", "tracking no", "tracking number", "waybill"),
}
_CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


def _header_key(text: str) -> str:
    return re.sub(r"[\s_\-.#]+", "", text.strip().lstrip("\ufeff").casefold())


_WORDS = {_header_key(word): field for field, words in HEADERS.items() for word in words}


def _decode(data: bytes) -> str:
    """UTF-8 (a BOM or not), else GB18030. Chinese written in GBK may also be valid UTF-8
    (as Armenian or Greek letters): then the reading that gives Chinese wins."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = ""
    else:
        if text.isascii() or _CJK.search(text):
            return text
    try:
        chinese = data.decode("gb18030")
    except UnicodeDecodeError:
        chinese = ""
    if _CJK.search(chinese) or not text:
        if not chinese:
            raise ShopError(ErrorCode.CSV_INVALID, reason="encoding")
        return chinese
    return text


def _cell(row: list[str], index: int | None) -> str:
    if index is None or index >= len(row):
        return ""
    return row[index].strip().lstrip("'")  # a spreadsheet's "keep as text" apostrophe


def _text_rows(text: str) -> list[list[str]]:
    """Each line split by what it holds: tabs (copied from a spreadsheet), else commas
    (CSV; a full-width ，too), else spaces. A quoted CSV cell does not span lines here."""
    if "\x00" in text:
        raise ShopError(ErrorCode.CSV_INVALID, reason="encoding")
    rows = []
    for line in text.splitlines():
        if "\t" in line:
            rows.append(line.split("\t"))
        elif "," in line or "，" in line:
            try:
                rows.append(next(csv.reader([line.replace("，", ",")]), []))
            except csv.Error:
                raise ShopError(ErrorCode.CSV_INVALID, reason="format") from None
        else:
            rows.append(line.split())
    return rows


def _xlsx_cell(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a tracking number the spreadsheet took for a number
    return "" if value is None else str(value)


def _xlsx_rows(data: bytes) -> list[list[str]]:
    """The first sheet's rows as text, at most MAX_SHIP_LINES + 2 of them."""
    from openpyxl import load_workbook  # here: a worker carries its 7 MiB only once a sheet comes

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        rows = []
        for row in book.worksheets[0].iter_rows(values_only=True):
            rows.append([_xlsx_cell(v) for v in row[:20]])
            if len(rows) > MAX_SHIP_LINES + 1:
                break
        book.close()
    except Exception:  # openpyxl raises many kinds on a damaged or foreign file
        raise ShopError(ErrorCode.CSV_INVALID, reason="format") from None
    return rows


def read_ship_file(data: bytes) -> list[ShipLine]:
    """The rows of a bulk-ship file (XLSX, CSV or pasted text); CSV_INVALID (details:
    reason) when it is empty, too large, unreadable, or longer than MAX_SHIP_LINES rows."""
    if len(data) > MAX_FILE_BYTES:
        raise ShopError(ErrorCode.CSV_INVALID, reason="too_large", max_bytes=MAX_FILE_BYTES)
    rows = _xlsx_rows(data) if data[:4] == b"PK\x03\x04" else _text_rows(_decode(data))
    columns: dict[str, int | None] = {"ref": 0, "carrier": 1, "tracking_no": 2}
    lines: list[ShipLine] = []
    header_seen = False
    for number, row in enumerate(rows, 1):
        if not any(cell.strip() for cell in row):
            continue
        names = [_WORDS.get(_header_key(cell)) for cell in row]
        if not header_seen and not lines and any(names):
            header_seen = True
            columns = {field: (names.index(field) if field in names else None) for field in HEADERS}
            continue
        lines.append(
            ShipLine(
                ref=_cell(row, columns["ref"]),
                carrier=_cell(row, columns["carrier"]),
                tracking_no=_cell(row, columns["tracking_no"]),
                line_no=number,
            )
        )
        if len(lines) > MAX_SHIP_LINES:
            raise ShopError(ErrorCode.CSV_INVALID, reason="too_many_lines", max_lines=MAX_SHIP_LINES)
    if not lines:
        raise ShopError(ErrorCode.CSV_INVALID, reason="empty")
    return lines

"""Bulk-ship files as merchants have them (pure): XLSX, CSV in UTF-8 or GBK, rows pasted
from a spreadsheet; and the carrier table they name carriers from."""

from __future__ import annotations

import io

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commerce.errors import ErrorCode, ShopError
from commerce.orders import carriers
from commerce.orders.actions import MAX_SHIP_LINES
from commerce.orders.ship_file import read_ship_file


def test_the_carrier_table_names_each_carrier_and_links_its_tracking_page() -> None:
    codes = [c.code for c in carriers.all_carriers()]
    assert codes == ["SF", "ZTO", "YTO", "YD", "STO", "JD", "EMS", "YZPY"]
    for typed in ("顺丰", "SF", "ｓｆ", "SF Express", "顺丰速运"):
        found = carriers.find(typed)
        assert found is not None and found.code == "SF", typed
    assert carriers.display("中通", "ZT 1/2", "en") == (
        "ZTO Express", "https://www.kuaidi100.com/chaxun?com=zhongtong&nu=ZT%201%2F2")
    assert carriers.display("本地跑腿", "X123", "zh") == ("本地跑腿", "")


def test_an_xlsx_keeps_a_tracking_number_excel_took_for_a_number() -> None:
    book = openpyxl.Workbook()
    book.active.append(["运单号", "快递公司", "订单号"])
    book.active.append([773012345678.0, "中通", "SF2026010100000001"])
    out = io.BytesIO()
    book.save(out)
    (line,) = read_ship_file(out.getvalue())
    assert (line.ref, line.carrier, line.tracking_no) == ("SF2026010100000001", "中通", "773012345678")


def test_rows_pasted_with_spaces_commas_or_tabs() -> None:
    pasted = read_ship_file("SF1 顺丰 T1\nSF2，圆通，T2\n\"SF3\",EMS,T3\nSF4\t中通\tT4".encode())
    assert [(x.ref, x.carrier, x.tracking_no, x.line_no) for x in pasted] == [
        ("SF1", "顺丰", "T1", 1), ("SF2", "圆通", "T2", 2), ("SF3", "EMS", "T3", 3), ("SF4", "中通", "T4", 4)]


def test_a_csv_from_excel_in_gbk_with_english_headers() -> None:
    data = "Tracking,Order No,Carrier\r\nYT123456,SF2026010100000001,圆通\r\n,,\r\n".encode("gb18030")
    (line,) = read_ship_file(data)
    assert (line.ref, line.carrier, line.tracking_no, line.line_no) == ("SF2026010100000001", "圆通", "YT123456", 2)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"\xef\xbb\xbf\r\n\r\n", "empty"),
        (b"PK\x03\x04not really a workbook", "format"),
        (b"a\x00b", "encoding"),
        ("\n".join(f"SF{n} 顺丰 T{n}" for n in range(MAX_SHIP_LINES + 1)).encode(), "too_many_lines"),
        (b"x" * (512 * 1024 + 1), "too_large"),
    ],
)
def test_files_that_cannot_ship_say_why(data: bytes, reason: str) -> None:
    with pytest.raises(ShopError) as refused:
        read_ship_file(data)
    assert (refused.value.code, refused.value.details["reason"]) == (ErrorCode.CSV_INVALID, reason)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300) | st.text(alphabet="SF0123 ,，\t\n\"顺丰运单号", max_size=200).map(str.encode))
def test_any_bytes_are_rows_or_a_reason(data: bytes) -> None:
    try:
        lines = read_ship_file(data)
    except ShopError as exc:
        assert exc.code == ErrorCode.CSV_INVALID
    else:
        assert 1 <= len(lines) <= MAX_SHIP_LINES
        assert all(line.line_no >= 1 for line in lines)

"""Money: integer fen everywhere, and the one way yuan text becomes fen and back.

`parse_yuan` reads what people type ("39.9", "¥39.90", "40元", ".5") exactly, with
integer arithmetic on the digits (no float, no rounding ever); `format_yuan` writes
fen as yuan with two decimals ("39.90", "¥39.90", "-¥1.00"). Refusals are a
`MoneyError` whose `code` says why, so each edge answers in its own words:

- ``not_a_number``: not yuan at all ("abc", "1e3", "1.2.3", "", "🍎");
- ``non_ascii``: digits other than 0-9 (full-width "１２", Arabic-Indic "١٢"): the edges
  that want to accept full-width input normalise it first;
- ``negative``: a sign, when the caller does not allow one;
- ``too_many_decimals``: more decimals than the caller allows, or a part of a fen;
- ``too_large``: more than the caller's `max_fen`.

The defaults are the strict ones (no sign, at most two decimals, at most `MAX_FEN`);
callers that leave the range to the commerce core say so with `signed=True`,
`max_fen=None`.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Final

MAX_FEN: Final = 10**14 - 1  # 999,999,999,999.99 yuan: beyond any order, refund or price
YUAN_SYMBOLS: Final = ("¥", "￥")
YUAN_UNIT: Final = "元"
# an optional sign, then digits with an optional fraction ("12", "12.", "12.5", ".5")
_NUMBER = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?", re.ASCII)
_FOREIGN_DIGIT = re.compile(r"(?![0-9])\d")  # a Unicode digit that is not 0-9 ("１", "١")


class MoneyError(ValueError):
    """Text that is not an amount this caller accepts; `code` says why (see the module)."""

    def __init__(self, code: str, text: str, message: str) -> None:
        super().__init__(f"{message}: {text[:40]!r}")
        self.code = code
        self.text = text


def parse_yuan(
    text: str,
    *,
    signed: bool = False,
    max_decimals: int | None = 2,
    max_fen: int | None = MAX_FEN,
) -> int:
    """Fen for yuan as typed: an optional ¥/￥ (spaces may follow), the number, an optional
    元 (spaces may precede). Surrounding spaces are ignored.

    `signed`: "+"/"-" allowed (else ``negative``). `max_decimals`: at most that many
    digits after the point (None: any, as long as the value is whole fen: "39.900").
    `max_fen`: the largest magnitude accepted (None: unbounded).
    """
    if not isinstance(text, str):
        raise TypeError(f"yuan are parsed from text, not {type(text).__name__}")
    body = text.strip()
    for symbol in YUAN_SYMBOLS:
        if body.startswith(symbol):
            body = body[len(symbol) :].lstrip()
            break
    if body.endswith(YUAN_UNIT):
        body = body[: -len(YUAN_UNIT)].rstrip()
    match = _NUMBER.fullmatch(body)
    if match is None or not (match.group(2) or match.group(3)):
        if _FOREIGN_DIGIT.search(body):
            raise MoneyError("non_ascii", text, "only the digits 0-9 are read")
        raise MoneyError("not_a_number", text, "not an amount in yuan")
    sign, whole, fraction = match.group(1), match.group(2), match.group(3) or ""
    if sign == "-" and not signed:
        raise MoneyError("negative", text, "the amount cannot be negative")
    if sign and not signed:
        raise MoneyError("not_a_number", text, "the amount takes no sign")
    if max_decimals is not None and len(fraction) > max_decimals:
        raise MoneyError("too_many_decimals", text, f"at most {max_decimals} decimals")
    if fraction[2:].strip("0"):
        raise MoneyError("too_many_decimals", text, "a part of a fen cannot be charged")
    if max_fen is not None and len(whole.lstrip("0")) > len(str(max_fen)):
        raise MoneyError("too_large", text, "the amount is too large")  # before building a huge int
    # Decimal only turns the digit string into an int (no float, no rounding): unlike
    # int(str) it has no length limit, for callers that leave huge values to the core
    fen = int(Decimal(whole or "0")) * 100 + int(fraction[:2].ljust(2, "0"))
    if max_fen is not None and fen > max_fen:
        raise MoneyError("too_large", text, "the amount is too large")
    return -fen if sign == "-" else fen


def format_yuan(fen: int, *, symbol: str = "") -> str:
    """Fen as yuan with two decimals: 3990 -> "39.90"; with symbol="¥": "¥39.90", -100 -> "-¥1.00"."""
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise TypeError(f"money is integer fen, not {type(fen).__name__}")
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{symbol}{fen // 100}.{fen % 100:02d}"

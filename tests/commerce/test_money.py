"""commerce.money: the one parser and formatter of yuan, over integer fen."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commerce.money import MAX_FEN, MoneyError, format_yuan, parse_yuan

fen = st.integers(min_value=0, max_value=MAX_FEN)
symbols = st.sampled_from(["", "¥", "￥", "¥ "])
units = st.sampled_from(["", "元", " 元"])


@given(fen, symbols, units)
def test_format_then_parse_gives_the_same_fen(amount: int, symbol: str, unit: str) -> None:
    assert parse_yuan(f"{symbol}{format_yuan(amount)}{unit}") == amount
    assert parse_yuan(format_yuan(amount, symbol="¥")) == amount


@given(st.integers(min_value=-MAX_FEN, max_value=MAX_FEN))
def test_signed_amounts_round_trip_where_signs_are_allowed(amount: int) -> None:
    assert parse_yuan(format_yuan(amount), signed=True) == amount


@given(st.integers(min_value=0, max_value=MAX_FEN))
def test_the_formatted_text_is_exactly_two_decimals(amount: int) -> None:
    text = format_yuan(amount)
    whole, _, cents = text.partition(".")
    assert len(cents) == 2 and int(whole) * 100 + int(cents) == amount
    assert format_yuan(-amount, symbol="¥") == (f"-¥{text}" if amount else "¥0.00")


@given(st.integers(min_value=1, max_value=MAX_FEN))
def test_negative_amounts_are_refused_unless_allowed(amount: int) -> None:
    with pytest.raises(MoneyError) as refused:
        parse_yuan("-" + format_yuan(amount))
    assert refused.value.code == "negative" and "negative" in str(refused.value)


@given(fen, st.integers(min_value=1, max_value=9), st.integers(min_value=1, max_value=6))
def test_more_than_two_decimals_are_refused(amount: int, digit: int, extra: int) -> None:
    text = format_yuan(amount) + "0" * (extra - 1) + str(digit)
    with pytest.raises(MoneyError) as refused:
        parse_yuan(text)
    assert refused.value.code == "too_many_decimals"
    with pytest.raises(MoneyError) as part_of_a_fen:  # even where more decimals may be typed
        parse_yuan(text, max_decimals=None)
    assert part_of_a_fen.value.code == "too_many_decimals"
    assert parse_yuan(format_yuan(amount) + "0" * extra, max_decimals=None) == amount  # "39.900" is exact


# digits that are not 0-9: full-width, Arabic-Indic, Devanagari, mathematical bold
FOREIGN_DIGITS = st.sampled_from(["０１２３４５６７８９", "٠١٢٣٤٥٦٧٨٩", "०१२३४५६७८९", "𝟎𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖𝟗"])


@given(fen, FOREIGN_DIGITS)
def test_digits_other_than_ascii_are_refused(amount: int, digits: str) -> None:
    text = format_yuan(amount).translate(str.maketrans("0123456789", digits))
    with pytest.raises(MoneyError) as refused:
        parse_yuan(text)
    assert refused.value.code == "non_ascii" and "0-9" in str(refused.value)


@given(st.integers(min_value=MAX_FEN + 1, max_value=10**40))
def test_huge_amounts_are_refused(amount: int) -> None:
    with pytest.raises(MoneyError) as refused:
        parse_yuan(format_yuan(amount))
    assert refused.value.code == "too_large" and "too large" in str(refused.value)
    assert parse_yuan(format_yuan(amount), max_fen=None) == amount  # for callers that leave it to the core


def test_huge_text_is_refused_without_building_the_number() -> None:
    with pytest.raises(MoneyError) as refused:
        parse_yuan("9" * 100_000)
    assert refused.value.code == "too_large"


@given(st.text(max_size=30))
def test_any_text_is_fen_or_a_clear_refusal(text: str) -> None:
    try:
        amount = parse_yuan(text)
    except MoneyError as exc:
        assert exc.code in {"not_a_number", "non_ascii", "negative", "too_many_decimals", "too_large"}
    else:
        assert type(amount) is int and 0 <= amount <= MAX_FEN


@pytest.mark.parametrize("text", ["abc", "", ".", "1e3", "1.2.3", "+5", "¥", "元", "12 34", "0x10", "nan", "inf", "🍎"])
def test_what_is_not_an_amount(text: str) -> None:
    with pytest.raises(MoneyError) as refused:
        parse_yuan(text)
    assert refused.value.code == "not_a_number"


@pytest.mark.parametrize("value", [39.9, 3990.0, "3990", None, True])
def test_never_floats_nor_anything_but_int_and_text(value: object) -> None:
    with pytest.raises(TypeError):
        format_yuan(value)  # type: ignore[arg-type]
    if not isinstance(value, str):
        with pytest.raises(TypeError):
            parse_yuan(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "fen"),
    [("39.9", 3990), ("39.90", 3990), (".5", 50), ("¥1", 100), ("￥2.5", 250), ("3元", 300), (" ￥ 19.99 ", 1999),
     ("0.1", 10), ("12", 1200), ("12.", 1200), ("007", 700)],
)
def test_what_people_type(text: str, fen: int) -> None:
    assert parse_yuan(text) == fen

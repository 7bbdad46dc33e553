"""Commands with a number, as customers type them: digits or Chinese numerals, with a
count word or none; a weight is a variant, never a quantity."""

from __future__ import annotations

import cn2an
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.chat.keywords import (
    ADD_TO_CART,
    BUY_NOW,
    command_quantity,
    match_command,
    parse_number,
    quantity,
)


@given(st.integers(min_value=1, max_value=999))
def test_a_chinese_numeral_reads_as_its_number(number: int) -> None:
    written = cn2an.an2cn(number)  # "一百零五", "十二"
    assert quantity(written) == number
    assert quantity(str(number)) == number


@pytest.mark.parametrize(
    ("said", "wanted"),
    [
        ("加入购物车 2", 2), ("加购", 1), ("买", 1), ("买两份", 2), ("来3包", 3), ("要两袋", 2), ("两袋", 2),
        ("2份", 2), ("我要3个", 3), ("再来两条", 2), ("给我来十二瓶", 12), ("来一份吧", 1),
        ("add 2 to cart", 2), ("add to cart", 1), ("add 3", 3), ("I'll take 4", 4),
    ],
)
def test_add_to_cart_with_a_quantity(said: str, wanted: int) -> None:
    found = match_command(ADD_TO_CART, said)
    assert found is not None and command_quantity(found) == wanted


@pytest.mark.parametrize("said", ["要5斤", "要5斤的", "5斤装", "来点苹果", "两个人吃", "三只松鼠"])
def test_a_weight_or_a_sentence_is_not_a_quantity(said: str) -> None:
    assert match_command(ADD_TO_CART, said) is None


def test_buy_now_with_a_quantity() -> None:
    found = match_command(BUY_NOW, "立即购买 两件")
    assert found is not None and command_quantity(found) == 2


@pytest.mark.parametrize(
    ("said", "picked"),
    [("第一个", 1), ("第二个", 2), ("第 3 个", 3), ("三", 3), ("十一", 11), ("2", 2), ("第2款", 2), ("五号", 5)],
)
def test_a_pick_in_words(said: str, picked: int) -> None:
    assert parse_number(said) == picked


@pytest.mark.parametrize("said", ["两个", "三只", "第", "一个苹果"])
def test_a_count_without_第_is_not_a_pick(said: str) -> None:
    assert parse_number(said) is None

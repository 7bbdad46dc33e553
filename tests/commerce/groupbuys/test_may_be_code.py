"""A typed word is checked against the group codes only when it could be one."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from commerce.groupbuys.groups import CODE_ALPHABET, CODE_LENGTH, may_be_code

codes = st.text(alphabet=CODE_ALPHABET, min_size=CODE_LENGTH, max_size=CODE_LENGTH)


@given(codes)
def test_every_code_the_shop_can_draw_may_be_one_in_any_case(code: str) -> None:
    assert may_be_code(code) and may_be_code(code.lower()) and may_be_code(f" {code} ")


@given(codes, st.integers(0, CODE_LENGTH - 1), st.sampled_from("OoIi01"))
def test_a_word_with_a_letter_no_code_uses_is_none(code: str, at: int, letter: str) -> None:
    assert not may_be_code(code[:at] + letter + code[at + 1 :])


def test_pinyin_words_are_no_codes_but_a_full_width_code_is() -> None:
    assert not may_be_code("caomei") and not may_be_code("xigua") and not may_be_code("ABC12")
    assert may_be_code("ＡＢＣ２３４")  # full width reads as "ABC234"

"""What a customer types as a rating (bot/dialogs/review.py): pure, no app."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.dialogs.review import BAD, read_rating


@pytest.mark.parametrize(
    ("said", "rating"),
    [
        ("5", 5), ("５", 5), ("1", 1), ("5分", 5), ("4星", 4), ("五星", 5), ("三颗星", 3), ("打5分", 5),
        ("5星好评", 5), ("★★★★", 4), ("⭐⭐⭐", 3), ("好评", 5), ("中评", 3), ("差评", 1), ("满分", 5),
        ("5 stars", 5), ("great", 5), ("bad", 1), ("4/5", 4),
        ("6", 6), ("0", 0), ("10", 10), ("十", 10), ("4.5", BAD),
        ("abc", None), ("香蕉很甜", None), ("", None), ("5斤", None),
    ],
)
def test_ratings_as_customers_type_them(said: str, rating: int | None) -> None:
    assert read_rating(said) == rating


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=60))
def test_any_text_is_a_rating_a_bad_number_or_none(text: str) -> None:
    found = read_rating(text)
    assert found is None or isinstance(found, int)

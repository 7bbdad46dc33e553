"""Cart lines named in words: by name, spec, English tags, and an English plural of a tag."""

from __future__ import annotations

import pytest

from bot.dialogs.words import lines_named

LINES = [("竹纤维毛巾", "", "竹纤维毛巾，三条装", "home", "towel"), ("纯棉圆领T恤", "M", "", "t-shirt"),
         ("原味开心果", "", "", "nuts", "pistachio"), ("连衣裙", "", "", "dress")]


@pytest.mark.parametrize(
    ("said", "found"),
    [("毛巾", [0]), ("towel", [0]), ("towels", [0]), ("Towels!", [0]), ("t-shirts", [1]), ("pistachios", [2]),
     ("dress", [3]), ("dresses", [3]), ("towelss", []), ("socks", []), ("s", []), ("白T恤", [])],
)
def test_a_line_is_named_in_chinese_english_or_an_english_plural(said: str, found: list[int]) -> None:
    assert lines_named(said, LINES) == found

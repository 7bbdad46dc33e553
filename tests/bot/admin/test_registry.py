"""The registry's argument rules: which commands read `，`/`、` between their values."""

from __future__ import annotations

import pytest

from bot.admin import groups as _groups  # noqa: F401  (registers the commands)
from bot.admin.registry import ALL_ARGS, REGISTRY, split_command, split_commas


@pytest.mark.parametrize(("args", "leading", "expected"), [
    (["SF2026120570066221，圆通，YT888"], ALL_ARGS, ["SF2026120570066221", "圆通", "YT888"]),
    (["阳光玫瑰，36"], ALL_ARGS, ["阳光玫瑰", "36"]),
    (["红心火龙果，２９．９，40，水果"], ALL_ARGS, ["红心火龙果", "29.9", "40", "水果"]),
    (["龙井，", "+10"], ALL_ARGS, ["龙井", "+10"]),  # a comma, then a space
    (["龙井、＋１０"], ALL_ARGS, ["龙井", "+10"]),
    (["，，12，，"], ALL_ARGS, ["12"]),
    (["12，坏果，不退"], 1, ["12", "坏果，不退"]),  # /reject N 原因: the reason keeps its commas
    (["12，，坏果"], 1, ["12", "坏果"]),
    (["12", "坏果，不退"], 1, ["12", "坏果，不退"]),
    (["12，描述，山东，包赔", "(1年)"], 2, ["12", "描述", "山东，包赔", "(1年)"]),
    (["issue", "NEW20，_81093"], 3, ["issue", "NEW20", "_81093"]),
])
def test_chinese_commas_separate_only_the_leading_short_values(
    args: list[str], leading: int, expected: list[str]
) -> None:
    assert split_commas(args, leading=leading) == expected


def test_a_word_with_a_chinese_comma_reaches_the_command_unfolded() -> None:
    """NFKC would make "12，+10" the ASCII "12,+10", one word the comma rule no longer sees."""
    assert split_command("/stock 12，＋10") == ("stock", ["12，＋10"])
    assert REGISTRY.commands["stock"].arguments(["12，＋10"]) == ["12", "+10"]


def test_free_text_commands_keep_their_commas() -> None:
    commands = REGISTRY.commands
    for free in ("reply", "broadcast", "faq", "live", "synonym", "import", "help"):
        assert commands[free].commas == 0, free
        assert commands[free].arguments(["你好，在吗"]) == ["你好，在吗"]
    assert commands["reject"].commas == 1 and commands["edit"].commas == 2 and commands["add"].commas == 4
    for short in ("ship", "price", "stock", "order", "orders", "product", "approve", "refund", "cancel"):
        assert commands[short].commas == ALL_ARGS, short

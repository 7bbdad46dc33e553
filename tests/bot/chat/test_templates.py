"""Every word the bot says exists in Chinese and English, and every error has its sentence."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.chat.render import MESSAGES_DIR, Renderer
from bot.chat.replies import Text
from commerce.errors import ErrorCode

ROOT = Path(__file__).resolve().parents[3]


def _names(locale: str) -> set[str]:
    return {p.stem for p in (MESSAGES_DIR / locale).glob("*.j2")}


def test_english_is_complete() -> None:
    assert _names("zh") == _names("en")


def test_every_template_named_in_code_exists() -> None:
    pattern = re.compile(r"""(?:Text|Card|Notice)\(\s*"([a-z_]+)"|template="([a-z_]+)"|"([a-z_]+)",\s*lambda order""")
    named: set[str] = set()
    for folder in ("bot", "scheduler", "commerce"):
        for path in (ROOT / folder).rglob("*.py"):
            for match in pattern.finditer(path.read_text(encoding="utf-8")):
                named.add(next(g for g in match.groups() if g))
    assert named, "the pattern found nothing: it is out of date"
    assert named - _names("zh") == set()


@pytest.mark.parametrize("locale", ["zh", "en"])
@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_error_code_has_its_own_sentence(locale: str, code: ErrorCode) -> None:
    renderer = Renderer(default_locale="zh", base_url="https://x", shop_name="店")
    generic = renderer.render(Text("shop_error", {"code": "no_such_code", "d": {}}), locale).text
    text = renderer.render(Text("shop_error", {"code": str(code), "d": {}}), locale).text
    assert text and text != generic

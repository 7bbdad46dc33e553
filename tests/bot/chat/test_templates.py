"""Every word the bot says exists in Chinese and English, and every error has its sentence."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from xml.etree import ElementTree

import pytest

from bot.chat.render import MESSAGES_DIR, Renderer, to_xml
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


def test_bug_a_date_in_another_year_showed_without_its_year() -> None:
    """Issue 15: "12-04 18:35 结束" for a date a year on. Within this year (the shop's time
    zone) the year is left out; in another it is shown."""
    now = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)
    renderer = Renderer(default_locale="zh", base_url="https://x", shop_name="店", clock=lambda: now)
    show = renderer.env.filters["mdhm"]
    assert show(datetime(2026, 12, 4, 10, 35, tzinfo=UTC)) == "12-04 18:35"
    assert show(datetime(2027, 12, 4, 10, 35, tzinfo=UTC)) == "2027-12-04 18:35"
    assert show(datetime(2025, 12, 31, 15, 0, tzinfo=UTC)) == "2025-12-31 23:00"
    assert show(datetime(2026, 12, 31, 16, 30, tzinfo=UTC)) == "2027-01-01 00:30"  # already next year in Shanghai
    campaign = {"id": 1, "product": "苹果", "spec": "", "price": 990, "regular_price": 1990, "size": 3, "hours": 24,
                "minutes": 0, "limit": 1, "quota": 0, "ends_at": datetime(2027, 12, 4, 10, 35, tzinfo=UTC)}
    assert "2027-12-04 18:35 结束" in renderer.text("admin/campaign_created", "zh", {"campaign": campaign})


@pytest.mark.parametrize("name", ["苹\x01果", "香蕉\x0b礼盒", "\x1b[31m茶", "坚果\ufffe", "]]>注入"])
def test_a_reply_stays_xml_whatever_characters_its_data_holds(name: str) -> None:
    """A product name imported with a vertical tab (spreadsheets write \\x0b for a line
    break in a cell) or a control character echoed back made the reply no XML, which
    WeChat drops: characters XML cannot carry are left out, and "]]>" cannot close the
    CDATA early."""
    renderer = Renderer(default_locale="zh", base_url="https://x", shop_name="店")
    rendered = renderer.render(Text("not_understood", {"query": name}), "zh")
    xml = to_xml(rendered, openid="o_x", account="gh_x")
    assert xml is not None
    content = ElementTree.fromstring(xml).findtext("Content") or ""
    assert name.strip("\x01\x0b\x1b\ufffe")[:1] in content and not any(c in content for c in "\x01\x0b\x1b\ufffe")

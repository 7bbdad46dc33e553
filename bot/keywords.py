"""Words that work everywhere, in Chinese and English (SPEC section 5).

These are what customers type, not what the bot says, so they live in code. A match
also tells which language the customer is using.
"""

from __future__ import annotations

import re
import unicodedata

KEYWORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "help": {"zh": ("帮助", "帮忙", "菜单", "说明", "？"), "en": ("help", "menu", "?", "h")},
    "cancel": {"zh": ("取消", "退出", "算了"), "en": ("cancel", "quit", "exit", "stop")},
    "next": {"zh": ("下一页", "下页", "更多", "下一个"), "en": ("next", "n", "more", "next page")},
    "prev": {"zh": ("上一页", "上页", "前一页"), "en": ("prev", "previous", "p", "previous page")},
    "back": {"zh": ("返回", "列表", "返回列表"), "en": ("back", "list")},
    "hot": {"zh": ("热卖", "热门", "爆款", "热销"), "en": ("hot", "popular", "best sellers", "bestsellers")},
    "categories": {"zh": ("分类", "类目", "全部分类"), "en": ("categories", "category", "browse")},
}

_TRAILING = re.compile(r"[\s!！。.,，~～]+$")
_INDEX: dict[str, tuple[str, str]] = {
    word: (name, locale)
    for name, by_locale in KEYWORDS.items()
    for locale, words in by_locale.items()
    for word in words
}


def normalize(text: str) -> str:
    """NFKC (full-width to half-width), lower case, trimmed of trailing punctuation."""
    text = unicodedata.normalize("NFKC", text).strip().lower()
    stripped = _TRAILING.sub("", text)
    return stripped or text


def match_keyword(text: str) -> tuple[str, str] | None:
    """(keyword, locale) when the whole message is one of the words above."""
    if len(text) > 40:
        return None
    return _INDEX.get(normalize(text))


def parse_number(text: str) -> int | None:
    """A number picked from a list: "2", "２", "#2", "第2个"; None otherwise."""
    found = re.fullmatch(r"#?\s*(?:第)?\s*(\d{1,4})\s*(?:个|号|项)?", normalize(text))
    return int(found.group(1)) if found else None

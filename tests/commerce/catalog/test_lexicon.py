"""The shop lexicon as the snapshot holds it: synonyms rewrite a query, keywords find an answer."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from commerce.catalog.lexicon import NO_LEXICON, FaqView, Lexicon

LEXICON = Lexicon(
    synonyms=(("保温壶", "保温杯"), ("提子", "巨峰葡萄"), ("红枣", "和田大枣")),
    faqs=(FaqView("会员卡", "暂时没有会员卡"), FaqView("发票", "可以开")),
)


def test_a_synonym_rewrites_the_query() -> None:
    assert LEXICON.rewrite("提子") == "巨峰葡萄"
    assert LEXICON.rewrite("来两斤提子") == "来两斤 巨峰葡萄"
    assert LEXICON.rewrite("苹果") == "苹果"


def test_a_keyword_finds_its_answer() -> None:
    found = LEXICON.answer("你们能开发票吗")
    assert found is not None and found.answer == "可以开"
    assert LEXICON.answer("苹果") is None


@given(st.text(max_size=60))
def test_no_lexicon_changes_nothing(text: str) -> None:
    assert NO_LEXICON.rewrite(text) == text and NO_LEXICON.answer(text) is None

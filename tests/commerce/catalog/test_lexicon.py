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


CATALOG = "巨峰葡萄 葡萄 grape\n316不锈钢保温杯 保温杯\n和田大枣 红枣 dates\n番茄 tomato"


def test_everyday_names_apply_where_the_catalog_uses_what_they_mean() -> None:
    lexicon = NO_LEXICON.with_everyday_names(CATALOG)
    assert lexicon.rewrite("提子") == "葡萄"
    assert lexicon.rewrite("保温壶") == "保温杯"
    assert lexicon.rewrite("红枣") == "红枣"  # the catalog says 红枣 itself
    assert lexicon.rewrite("西红柿") == "番茄" and lexicon.rewrite("番茄") == "番茄"
    assert lexicon.rewrite("土豆") == "土豆"  # no 马铃薯 in this catalog: no effect
    assert NO_LEXICON.with_everyday_names("") is NO_LEXICON


def test_a_staff_synonym_wins_over_an_everyday_name() -> None:
    staff = Lexicon(synonyms=(("提子", "巨峰葡萄"),))
    assert staff.with_everyday_names(CATALOG).rewrite("提子") == "巨峰葡萄"


def test_latin_names_match_whole_words_and_a_rewrite_is_never_rewritten_again() -> None:
    lexicon = Lexicon(synonyms=(("tea", "茶"), ("茶", "咖啡")))
    assert lexicon.rewrite("green tea") == "green 茶"
    assert lexicon.rewrite("steam") == "steam"

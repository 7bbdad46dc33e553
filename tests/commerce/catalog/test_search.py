"""The in-memory product search: every way a customer types a product name.

A small realistic catalog (fruit, tea, rice, phones, clothing, groceries) and
concrete product ids, so that each assertion can fail.
"""

from __future__ import annotations

import random

import pytest

from commerce.catalog.search import SearchDoc, SearchHit, SearchIndex

FUJI_APPLES = 1
AKSU_APPLES = 2
BANANAS = 3
STRAWBERRIES = 4
ORANGES = 5
PINEAPPLE = 6
LONGJING_TEA = 7
TIEGUANYIN_TEA = 8
PUER_TEA = 9
WUCHANG_RICE = 10
JASMINE_RICE = 11
XIAOMI_PHONE = 12
IPHONE = 13
IPHONE_CASE = 14
HUAWEI_PHONE = 15
WHITE_TSHIRT = 16
JEANS = 17
DOWN_JACKET = 18
APPLE_VINEGAR = 19
CHONGQING_NOODLES = 20
MAPLE_SYRUP = 21
MILK = 22
YOGURT = 23
PEANUT_OIL = 24
CHOCOLATE = 25
NUTS = 26
CHIPS = 27
DETERGENT = 28
TISSUES = 29
STINKY_TOFU = 30

APPLES_BY_NAME = [FUJI_APPLES, AKSU_APPLES, APPLE_VINEGAR]  # in popularity order
TEAS = {LONGJING_TEA, TIEGUANYIN_TEA, PUER_TEA}
CLOTHES = {WHITE_TSHIRT, JEANS, DOWN_JACKET}

CATALOG: tuple[SearchDoc, ...] = (
    SearchDoc(
        FUJI_APPLES,
        "烟台红富士苹果",
        "Yantai Fuji apples, crisp and sweet",
        ("水果", "fruit", "新鲜"),
        "水果 Fruit",
        500,
    ),
    SearchDoc(
        AKSU_APPLES,
        "新疆阿克苏冰糖心苹果",
        "Aksu apples with a sugar core",
        ("水果", "fruit"),
        "水果 Fruit",
        300,
    ),
    SearchDoc(BANANAS, "海南香蕉", "Hainan bananas", ("水果", "fruit"), "水果 Fruit", 200),
    SearchDoc(
        STRAWBERRIES,
        "丹东草莓",
        "Dandong strawberries",
        ("水果", "fruit", "新鲜"),
        "水果 Fruit",
        150,
    ),
    SearchDoc(ORANGES, "赣南脐橙", "Gannan navel oranges", ("水果", "fruit"), "水果 Fruit", 250),
    SearchDoc(PINEAPPLE, "菠萝", "Fresh pineapple from Hainan", ("水果",), "水果 Fruit", 80),
    SearchDoc(
        LONGJING_TEA,
        "西湖龙井绿茶",
        "West Lake Longjing green tea",
        ("茶叶", "tea", "绿茶"),
        "茶叶 Tea",
        400,
    ),
    SearchDoc(
        TIEGUANYIN_TEA,
        "安溪铁观音",
        "Anxi Tieguanyin oolong tea",
        ("茶叶", "tea", "乌龙"),
        "茶叶 Tea",
        120,
    ),
    SearchDoc(
        PUER_TEA, "云南普洱茶饼", "Yunnan Pu'er tea cake 357g", ("茶叶", "tea"), "茶叶 Tea", 90
    ),
    SearchDoc(
        WUCHANG_RICE,
        "五常稻花香大米 5kg",
        "Wuchang fragrant rice",
        ("粮油", "rice", "东北"),
        "粮油 Grain & Oil",
        600,
    ),
    SearchDoc(
        JASMINE_RICE, "泰国茉莉香米", "Thai jasmine rice", ("粮油", "rice"), "粮油 Grain & Oil", 110
    ),
    SearchDoc(
        XIAOMI_PHONE,
        "小米 14 手机",
        "Xiaomi 14 smartphone",
        ("手机", "phone", "数码"),
        "数码 Electronics",
        700,
    ),
    SearchDoc(
        IPHONE,
        "Apple iPhone 15 Pro 256GB",
        "苹果手机 titanium",
        ("手机", "phone", "数码"),
        "数码 Electronics",
        900,
    ),
    SearchDoc(
        IPHONE_CASE,
        "iPhone 15 硅胶手机壳",
        "Silicone case for iPhone 15",
        ("配件", "case"),
        "数码 Electronics",
        350,
    ),
    SearchDoc(
        HUAWEI_PHONE,
        "华为 Mate 60 手机",
        "Huawei Mate 60 smartphone",
        ("手机", "phone", "数码"),
        "数码 Electronics",
        650,
    ),
    SearchDoc(
        WHITE_TSHIRT,
        "纯棉白色T恤",
        "Plain white cotton T-shirt",
        ("服装", "clothing", "夏季"),
        "服装 Clothing",
        320,
    ),
    SearchDoc(JEANS, "男士牛仔裤", "Men's slim jeans", ("服装", "clothing"), "服装 Clothing", 210),
    SearchDoc(
        DOWN_JACKET,
        "羽绒服",
        "Warm down jacket for winter",
        ("服装", "clothing", "冬季"),
        "服装 Clothing",
        180,
    ),
    SearchDoc(
        APPLE_VINEGAR,
        "苹果醋饮料",
        "Apple cider vinegar drink",
        ("饮料", "drink"),
        "饮料 Drinks",
        60,
    ),
    SearchDoc(
        CHONGQING_NOODLES,
        "重庆小面调料",
        "Chongqing noodle seasoning",
        ("调料", "spicy"),
        "调味品 Condiments",
        140,
    ),
    SearchDoc(
        MAPLE_SYRUP, "枫糖浆", "Canadian maple syrup", ("调料", "sweet"), "调味品 Condiments", 40
    ),
    SearchDoc(
        MILK, "伊利纯牛奶", "Yili whole milk 250ml x 24", ("乳品", "milk"), "乳品 Dairy", 800
    ),
    SearchDoc(YOGURT, "蒙牛酸奶", "Mengniu yogurt", ("乳品", "yogurt"), "乳品 Dairy", 260),
    SearchDoc(
        PEANUT_OIL, "金龙鱼花生油", "Peanut oil 5L", ("粮油", "oil"), "粮油 Grain & Oil", 190
    ),
    SearchDoc(
        CHOCOLATE,
        "德芙巧克力",
        "Dove chocolate bar",
        ("零食", "snack", "chocolate"),
        "零食 Snacks",
        330,
    ),
    SearchDoc(
        NUTS,
        "三只松鼠坚果礼盒",
        "Mixed nuts gift box",
        ("零食", "snack", "nuts"),
        "零食 Snacks",
        270,
    ),
    SearchDoc(CHIPS, "乐事薯片", "Lay's potato chips", ("零食", "snack"), "零食 Snacks", 230),
    SearchDoc(
        DETERGENT,
        "蓝月亮洗衣液",
        "Laundry detergent 3kg",
        ("日用", "cleaning"),
        "日用品 Household",
        170,
    ),
    SearchDoc(
        TISSUES,
        "维达抽纸",
        "Vinda facial tissues, 24 packs",
        ("日用", "paper"),
        "日用品 Household",
        160,
    ),
    SearchDoc(
        STINKY_TOFU, "长沙臭豆腐", "Changsha stinky tofu", ("小吃", "snack"), "零食 Snacks", 70
    ),
)


@pytest.fixture(scope="module")
def index() -> SearchIndex:
    return SearchIndex(CATALOG)


def ids(hits: list[SearchHit]) -> list[int]:
    return [hit.product_id for hit in hits]


def test_index_counts_its_documents(index: SearchIndex) -> None:
    assert len(index) == len(CATALOG) == 30


# Chinese


def test_chinese_word_finds_products_named_with_it(index: SearchIndex) -> None:
    assert ids(index.search("苹果"))[:3] == APPLES_BY_NAME


def test_chinese_part_of_a_name_finds_it(index: SearchIndex) -> None:
    assert ids(index.search("红富士")) == [FUJI_APPLES]


def test_chinese_words_run_together_find_a_product_holding_them_apart(
    index: SearchIndex,
) -> None:
    assert ids(index.search("烟台苹果")) == [FUJI_APPLES]  # 烟台 红富士 苹果
    assert ids(index.search("新鲜苹果"))[0] == FUJI_APPLES  # 新鲜 is only a tag


def test_single_chinese_character_finds_tea_and_rice(index: SearchIndex) -> None:
    assert set(ids(index.search("茶"))) == TEAS
    assert {WUCHANG_RICE, JASMINE_RICE} <= set(ids(index.search("米")))


def test_chat_filler_around_the_product_is_ignored(index: SearchIndex) -> None:
    assert ids(index.search("我想买苹果"))[:3] == APPLES_BY_NAME


# English


def test_english_word_finds_products_by_subtitle(index: SearchIndex) -> None:
    found = ids(index.search("apple"))
    assert {FUJI_APPLES, AKSU_APPLES, APPLE_VINEGAR, IPHONE} == set(found)


def test_english_is_case_insensitive_and_full_width_tolerant(index: SearchIndex) -> None:
    expected = ids(index.search("apple"))
    assert ids(index.search("APPLE")) == expected
    assert ids(index.search("  Ａｐｐｌｅ  ")) == expected


def test_plural_and_singular_meet(index: SearchIndex) -> None:
    assert ids(index.search("Apples")) == ids(index.search("apple"))
    assert ids(index.search("strawberry")) == [STRAWBERRIES]  # subtitle says strawberries
    assert ids(index.search("tissue")) == [TISSUES]


def test_english_prefix_finds_the_word(index: SearchIndex) -> None:
    assert ids(index.search("choc")) == [CHOCOLATE]


def test_english_words_run_together_are_split(index: SearchIndex) -> None:
    assert ids(index.search("iphonecase"))[0] == IPHONE_CASE


# Pinyin


def test_pinyin_finds_the_chinese_name(index: SearchIndex) -> None:
    assert ids(index.search("pingguo"))[:3] == APPLES_BY_NAME
    assert ids(index.search("hongfushi")) == [FUJI_APPLES]
    assert ids(index.search("tieguanyin")) == [TIEGUANYIN_TEA]


def test_spaced_pinyin_finds_the_chinese_name(index: SearchIndex) -> None:
    assert ids(index.search("ping guo"))[:3] == APPLES_BY_NAME
    assert ids(index.search("hong fu shi")) == [FUJI_APPLES]


def test_spaced_pinyin_must_match_as_one_word(index: SearchIndex) -> None:
    # 蒙牛酸奶 has niu and nai too, but apart; only 纯牛奶 has 牛奶.
    assert ids(index.search("niu nai")) == [MILK]
    assert YOGURT in ids(index.suggest("niu nai"))


def test_pinyin_uses_word_readings_of_polyphones(index: SearchIndex) -> None:
    # 重 alone reads zhong; in 重庆 it reads chong.
    assert ids(index.search("chongqing")) == [CHONGQING_NOODLES]


def test_pinyin_with_tone_marks_or_capitals(index: SearchIndex) -> None:
    assert ids(index.search("PíngGuǒ"))[:3] == APPLES_BY_NAME


def test_pinyin_initials(index: SearchIndex) -> None:
    assert ids(index.search("hfs")) == [FUJI_APPLES]
    assert ids(index.search("pg"))[:3] == APPLES_BY_NAME


# Typos and homophones


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("aple", FUJI_APPLES),
        ("appel", FUJI_APPLES),
        ("strawbery", STRAWBERRIES),
        ("rcie", WUCHANG_RICE),
        ("mlik", MILK),
        ("pinguo", FUJI_APPLES),
        ("xianjao", BANANAS),
        ("hongfshi", FUJI_APPLES),
    ],
)
def test_typo_still_finds_the_product(index: SearchIndex, query: str, expected: int) -> None:
    assert expected in ids(index.search(query))


def test_transposed_letters_find_both_iphone_products(index: SearchIndex) -> None:
    assert set(ids(index.search("iphnoe"))) == {IPHONE, IPHONE_CASE}


def test_chinese_homophone_typo_finds_the_product_by_sound(index: SearchIndex) -> None:
    assert ids(index.search("平果")) == APPLES_BY_NAME  # 平果 for 苹果, both ping guo


# Categories and tags


def test_category_in_chinese_and_english(index: SearchIndex) -> None:
    assert set(ids(index.search("服装"))) == CLOTHES
    assert set(ids(index.search("clothing"))) == CLOTHES
    assert set(ids(index.search("Electronics"))) == {
        XIAOMI_PHONE,
        IPHONE,
        IPHONE_CASE,
        HUAWEI_PHONE,
    }


def test_tag_match(index: SearchIndex) -> None:
    assert ids(index.search("新鲜")) == [FUJI_APPLES, STRAWBERRIES]
    assert ids(index.search("spicy")) == [CHONGQING_NOODLES]


# Ranking


def test_exact_name_match_beats_a_subtitle_mention(index: SearchIndex) -> None:
    chinese = index.search("苹果")  # the iPhone's subtitle says 苹果手机
    assert ids(chinese)[:3] == APPLES_BY_NAME
    assert ids(chinese)[3] == IPHONE
    assert chinese[0].score > chinese[3].score

    english = index.search("apple")  # the iPhone's name says Apple, the fruit's subtitles
    assert ids(english)[0] == IPHONE
    assert english[0].score > english[1].score


def test_ties_go_to_the_more_popular_product(index: SearchIndex) -> None:
    hits = index.search("fruit")
    assert len({hit.score for hit in hits}) == 1
    assert ids(hits) == [FUJI_APPLES, AKSU_APPLES, ORANGES, BANANAS, STRAWBERRIES, PINEAPPLE]


def test_results_are_sorted_and_scored_from_0_to_100(index: SearchIndex) -> None:
    for query in ("苹果", "apple", "aple", "pingguo", "平果", "iphone case"):
        scores = [hit.score for hit in index.search(query)]
        assert scores == sorted(scores, reverse=True)
        assert all(0 <= score <= 100 for score in scores)


def test_apple_does_not_bring_every_product_with_an_a(index: SearchIndex) -> None:
    assert set(ids(index.search("apple"))) <= {FUJI_APPLES, AKSU_APPLES, APPLE_VINEGAR, IPHONE}


def test_close_spelling_does_not_drag_in_a_worse_match(index: SearchIndex) -> None:
    assert ids(index.search("maple")) == [MAPLE_SYRUP]  # not the apples


def test_hits_far_below_the_best_one_are_dropped(index: SearchIndex) -> None:
    assert ids(index.search("iphone case")) == [IPHONE_CASE]  # the iPhone has no case
    assert IPHONE in ids(index.suggest("iphone case"))


def test_limit(index: SearchIndex) -> None:
    assert ids(index.search("fruit", limit=2)) == [FUJI_APPLES, AKSU_APPLES]
    assert index.search("fruit", limit=0) == []


def test_results_are_deduplicated_per_product() -> None:
    variant = SearchDoc(
        FUJI_APPLES, "红富士苹果 礼盒装", "Fuji apples gift box", ("水果",), "水果 Fruit"
    )
    hits = SearchIndex([*CATALOG, variant]).search("红富士")
    assert ids(hits) == [FUJI_APPLES]


# Misses and suggestions


def test_gibberish_finds_nothing_even_as_a_suggestion(index: SearchIndex) -> None:
    assert index.search("zzzzqqq") == []
    assert index.suggest("zzzzqqq") == []
    assert index.suggest("火箭发动机") == []


def test_suggest_offers_a_near_miss_that_search_rejects(index: SearchIndex) -> None:
    assert index.search("strawbery jam") == []
    assert ids(index.suggest("strawbery jam")) == [STRAWBERRIES]

    assert index.search("绿茶礼盒") == []  # green tea, but no gift box
    assert LONGJING_TEA in ids(index.suggest("绿茶礼盒"))


def test_suggest_is_limited_to_three_by_default(index: SearchIndex) -> None:
    assert ids(index.suggest("fruit")) == [FUJI_APPLES, AKSU_APPLES, ORANGES]


# Hostile input


@pytest.mark.parametrize("query", ["", "   ", "!!!", "？？", "🍎🍎🍎", "\x00\n\t", "a" * 10_000])
def test_empty_punctuation_emoji_and_junk_find_nothing(index: SearchIndex, query: str) -> None:
    assert index.search(query) == []
    assert index.suggest(query) == []


def test_ten_kilobytes_of_text_are_capped_not_fatal(index: SearchIndex) -> None:
    assert ids(index.search("苹果 " + "x" * 10_000))[:3] == APPLES_BY_NAME
    assert ids(index.search("🍎" * 5_000 + " apple")) == []  # the cap cuts it off first
    assert index.search("苹果" * 5_000) is not None


def test_empty_index_answers_nothing() -> None:
    empty = SearchIndex([])
    assert len(empty) == 0
    assert empty.search("苹果") == []
    assert empty.suggest("apple") == []


# Determinism


def test_same_results_whatever_the_order_of_documents(index: SearchIndex) -> None:
    shuffled = list(CATALOG)
    random.Random(42).shuffle(shuffled)
    other = SearchIndex(shuffled)
    for query in ("苹果", "apple", "fruit", "aple", "pg", "平果", "茶", "strawbery jam"):
        assert other.search(query) == index.search(query)
        assert other.suggest(query) == index.suggest(query)


def test_repeated_queries_give_identical_results(index: SearchIndex) -> None:
    first = [index.search(query) for query in ("pinguo", "iphnoe", "服装")]
    assert [index.search(query) for query in ("pinguo", "iphnoe", "服装")] == first


# One document in, one out (a staff edit), without a rebuild

QUERIES = (
    "苹果", "apple", "apples", "fruit", "aple", "pg", "平果", "茶", "strawbery jam", "pinguo", "iphnoe",
    "服装", "ping guo", "choc", "rcie", "xiangjiao", "红富士", "烟台苹果", "powerbank", "tea",
)


def answers(index: SearchIndex) -> list[tuple[list[SearchHit], list[SearchHit]]]:
    return [(index.search(query), index.suggest(query)) for query in QUERIES]


def by_popularity(docs: tuple[SearchDoc, ...]) -> list[SearchDoc]:
    return sorted(docs, key=lambda doc: (-doc.popularity, doc.product_id))


def test_documents_added_one_at_a_time_rank_as_a_full_build(index: SearchIndex) -> None:
    ordered = by_popularity(CATALOG)
    grown = SearchIndex(ordered[:10])
    for doc in ordered[10:]:  # as new products: each gets the next number, as a build numbers them
        grown.add(doc)
    assert len(grown) == len(CATALOG)
    assert answers(grown) == answers(index)


def test_a_removed_document_is_never_found_and_the_rest_rank_as_without_it(index: SearchIndex) -> None:
    changed = SearchIndex(CATALOG)
    assert changed.remove(FUJI_APPLES) and not changed.remove(FUJI_APPLES)
    assert FUJI_APPLES not in changed and len(changed) == len(CATALOG) - 1
    assert answers(changed) == answers(SearchIndex([doc for doc in CATALOG if doc.product_id != FUJI_APPLES]))
    assert FUJI_APPLES not in ids(changed.search("红富士")) and FUJI_APPLES in ids(index.search("红富士"))


def test_an_edited_document_ranks_as_a_full_build_of_the_edited_catalog() -> None:
    (banana,) = [doc for doc in CATALOG if doc.product_id == BANANAS]
    renamed = SearchDoc(BANANAS, "海南香蕉 红富士", "Hainan bananas", ("水果",), "水果 Fruit", banana.popularity)
    changed = SearchIndex(CATALOG)
    changed.add(renamed)  # replaces the old version, keeps its number (its popularity did not move)
    rebuilt = SearchIndex([renamed if doc.product_id == BANANAS else doc for doc in CATALOG])
    assert answers(changed) == answers(rebuilt)
    assert BANANAS in ids(changed.search("红富士"))


def test_a_document_taken_out_and_back_ranks_where_it_was(index: SearchIndex) -> None:
    changed = SearchIndex(CATALOG)
    for doc in CATALOG[:8]:
        changed.remove(doc.product_id)
    for doc in reversed(CATALOG[:8]):
        changed.add(doc)
    assert answers(changed) == answers(index)

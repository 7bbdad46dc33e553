"""A list and a card answered in words as customers say them: "第一个", "来3包", "买两份",
"add 2 to cart"; "有什么推荐的" shows the best sellers."""

from __future__ import annotations

import pytest

from bot.devtools.simulator import Reply
from tests.bot.driver import Shop

pytestmark = pytest.mark.sqlite_only  # the words are checked, not the database


def seen(reply: Reply) -> str:
    return "\n".join([reply.text] + [f"{a.title}\n{a.description}" for a in reply.articles])


async def test_a_pick_and_a_quantity_in_chinese_words(shop: Shop) -> None:
    user = shop.user("o_words_card")
    listed = await user.say("苹果")
    assert "烟台红富士苹果" in listed.text
    card = await user.say("第一个")
    assert "烟台红富士苹果" in seen(card) and "3斤装" in seen(card), seen(card)
    await user.say("要5斤的")
    added = await user.say("买两份")
    assert "烟台红富士苹果（5斤装） ×2" in added.text, added.text
    more = await user.say("再来一份吧")
    assert "×1" in more.text and "共 3 件" in more.text, more.text


@pytest.mark.parametrize(("search", "said", "added"), [("香蕉", "来3把", 3), ("bananas", "add 2 to cart", 2)])
async def test_a_quantity_in_words_on_a_card_adds_that_many(shop: Shop, search: str, said: str, added: int) -> None:
    user = shop.user(f"o_words_count_{added}")
    await user.say(search)
    await user.say("1")
    reply = await user.say(said)
    assert f"香蕉 ×{added}" in reply.text, reply.text


async def test_asking_for_a_recommendation_shows_the_best_sellers(shop: Shop) -> None:
    user = shop.user("o_words_recommend")
    for words in ("有什么推荐的", "推荐一下", "what do you recommend"):
        reply = await user.say(words)
        assert ("热卖" in reply.text or "Best sellers" in reply.text or "best" in reply.text.lower()), (words, reply.text)
        assert "没有找到" not in reply.text


async def test_how_much_is_answered_from_what_is_on_screen(shop: Shop) -> None:
    user = shop.user("o_words_price")
    nothing = await user.say("多少钱")
    assert "哪件商品" in nothing.text, nothing.text
    await user.say("苹果")
    listed = await user.say("多少钱一斤")
    assert "价格都在" in listed.text and "烟台红富士苹果 ¥29.90" in listed.text, listed.text
    await user.say("1")
    variants = await user.say("怎么卖")
    assert "3斤装 ¥29.90" in variants.text and "5斤装 ¥45.90" in variants.text, variants.text
    await user.say("2")
    chosen = await user.say("这个多少钱")
    assert "5斤装）¥45.90" in chosen.text, chosen.text


async def test_a_price_without_a_product_narrows_the_list_on_screen(shop: Shop) -> None:
    user = shop.user("o_words_refine")
    listed = await user.say("水果")
    assert "阿克苏冰糖心苹果" in listed.text, listed.text
    cheap = await user.say("有没有便宜一点的")
    assert "没有找到" not in cheap.text and "1. 香蕉 ¥12.90" in cheap.text, cheap.text  # cheapest first
    under = await user.say("40以内的")
    assert "阿克苏冰糖心苹果" not in under.text and "香蕉" in under.text and "¥40" in under.text, under.text
    card = await user.say("1")
    assert "¥" in seen(card)


async def test_small_talk_and_emoji_get_a_friendly_word(shop: Shop) -> None:
    user = shop.user("o_words_smalltalk")
    for words in ("哈哈哈", "[微笑]", "。。。"):
        reply = await user.say(words)
        assert "没有找到" not in reply.text and "热卖" in reply.text, (words, reply.text)
    helped = await user.say("???")
    assert "帮助" in helped.text or "搜索" in helped.text, helped.text


async def test_offers_invites_and_group_rules_in_words(shop: Shop) -> None:
    user = shop.user("o_words_account")
    offers = await user.say("有优惠吗")
    assert "现在的优惠" in offers.text and "积分" not in offers.text, offers.text  # the deals, not the account
    invite = await user.say("怎么邀请好友")
    assert "邀请码" in invite.text, invite.text
    group = await user.say("拼团怎么玩")
    assert "没有找到" not in group.text and "拼团" in group.text, group.text


async def test_a_question_on_a_card_is_answered_from_the_product_with_a_person_offered(shop: Shop) -> None:
    user = shop.user("o_words_card_question")
    await user.say("耳机")
    await user.say("1")
    stock = await user.say("有现货吗")
    assert "白色 ¥399.00" in stock.text and "缺货" in stock.text, stock.text  # black is sold out
    question = await user.say("保修吗")
    assert "主动降噪蓝牙耳机" in question.text and "人工" in question.text, question.text
    assert "没能识别" not in question.text and "没有找到" not in question.text
    still = await user.say("1")  # the card is still on screen
    assert "已选" in still.text and "白色" in still.text, still.text
    other = await user.say("有苹果吗")  # a question that names a product searches it
    assert "烟台红富士苹果" in other.text, other.text


async def test_an_english_sentence_is_answered_in_english_and_pinyin_is_not(shop: Shop) -> None:
    user = shop.user("o_words_english_sentence")
    english = await user.say("do you have bananas")
    assert "香蕉" in english.text and "found" in english.text, english.text
    other = shop.user("o_words_pinyin")
    pinyin = await other.say("xiangjiao")
    assert "香蕉" in pinyin.text and "找到" in pinyin.text, pinyin.text


async def test_a_quantity_said_before_the_variant_is_added_once_it_is_chosen(shop: Shop) -> None:
    user = shop.user("o_words_then")
    await user.say("牛肉干")
    await user.say("1")
    asked = await user.say("来3包")
    assert "3 件" in asked.text and "1. 原味" in asked.text, asked.text
    added = await user.say("2")
    assert "手撕风干牛肉干（香辣） ×3" in added.text, added.text
    chosen = await user.say("1")  # picking again only chooses: the add was done
    assert "已选" in chosen.text and "原味" in chosen.text, chosen.text


async def test_a_size_said_on_a_list_picks_among_it(shop: Shop) -> None:
    user = shop.user("o_words_list_size")
    await user.say("苹果")
    picked = await user.say("有10斤的吗")
    assert "已选" in picked.text and "10斤装" in picked.text, picked.text  # only the Aksu 10斤 is in stock
    await user.say("大米")
    none = await user.say("10斤装的有吗")
    assert "没有「10斤」" in none.text and "五常大米" in none.text, none.text


async def test_english_variant_words_and_an_add_with_nothing_open(shop: Shop) -> None:
    user = shop.user("o_words_english_variant")
    await user.say("i want to buy some apples")
    await user.say("1")
    chosen = await user.say("the 5 jin one")
    assert "5斤装" in chosen.text and "found" not in chosen.text, chosen.text
    lost = shop.user("o_words_add_nothing")
    reply = await lost.say("add 2")
    assert "send its name" in reply.text.lower() or "商品名" in reply.text, reply.text


@pytest.mark.parametrize(("typed", "category"), [("chaye", "茶饮"), ("cha ye", "茶饮"), ("shuiguo", "水果"), ("lingshi", "零食")])
async def test_a_category_typed_in_pinyin_lists_it(shop: Shop, typed: str, category: str) -> None:
    reply = await shop.user("o_words_pinyin_category").say(typed)
    assert f"【{category}】" in reply.text, reply.text


async def test_a_variant_and_a_count_in_one_message_add_it(shop: Shop) -> None:
    user = shop.user("o_words_variant_count")
    await user.say("耳机")
    await user.say("1")
    added = await user.say("白色的来一个")
    assert "主动降噪蓝牙耳机（白色） ×1" in added.text, added.text
    await user.say("苹果")
    await user.say("1")
    more = await user.say("5斤的要两份")
    assert "烟台红富士苹果（5斤装） ×2" in more.text, more.text


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        ("你们是正品吗", "答不上来"),  # a question the shop has no answer for: a person, not look-alikes
        ("Do you have a real shop in Shanghai?", "can't answer"),
        ("李雷 13900139000 北京市海淀区中关村大街1号", "收货地址"),  # an address with nothing to check out
        ("我的快递", "订单"),
        ("上次买的那个", "还没有下过单"),
        ("有赠品吗", "现在的优惠"),  # an offer asked: the deals
        ("能发到新疆吗", "小时内发货"),
        ("还有吗", "有没有货"),
    ],
)
async def test_words_that_are_not_a_product_are_not_answered_with_look_alikes(
    shop: Shop, said: str, expected: str
) -> None:
    reply = await shop.user("o_words_not_a_product").say(said)
    assert expected in reply.text and "您是不是想找" not in reply.text and "Did you mean" not in reply.text, reply.text


async def test_several_products_in_one_message_are_listed_together(shop: Shop) -> None:
    user = shop.user("o_words_several")
    both = await user.say("苹果和香蕉")
    assert "烟台红富士苹果" in both.text and "香蕉" in both.text and "是不是想找" not in both.text, both.text
    whole = await user.say("和田大枣")  # 和 inside a name: searched whole
    assert "和田大枣" in whole.text and "找到 1 件" in whole.text, whole.text


@pytest.mark.parametrize("said", ["买了", "就要这个", "就它了", "拍了", "我要了", "买它", "I'll take it"])
async def test_taking_the_product_on_the_card_adds_one(shop: Shop, said: str) -> None:
    user = shop.user(f"o_words_take_{said.encode().hex()[:20]}")
    await user.say("香蕉")
    await user.say("1")
    reply = await user.say(said)
    assert "香蕉 ×1" in reply.text or "香蕉 x1" in reply.text.lower(), reply.text

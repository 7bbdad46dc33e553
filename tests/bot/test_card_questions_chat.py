"""A question about the product on a card is answered from the product, not searched:
"甜吗", "这个甜不甜", "新不新鲜", "它耐用吗", "送礼合适吗", "is it sweet?". A product named
on the card ("有没有香蕉") still searches it, and with no card the words search as before."""

from __future__ import annotations

import pytest

from tests.bot.driver import ChatUser, Shop

pytestmark = pytest.mark.sqlite_only  # the words are checked, not the database

QUESTIONS = [
    # the A-not-A question
    "这个甜不甜", "甜不甜", "辣不辣", "新不新鲜", "好不好吃", "正不正宗", "耐不耐用", "掉不掉色", "起不起球", "大不大", "酸不酸",
    "请问这个甜不甜", "苹果甜不甜",
    # pointing at it
    "它耐用吗", "这款适合老人吗", "这个甜吗",
    # an attribute asked, nothing else named
    "甜吗", "新鲜吗", "辣吗", "酸吗", "脆吗", "香吗", "正宗吗", "耐用吗", "结实吗", "保暖吗", "透气吗", "防水吗", "掉色吗",
    "起球吗", "偏大吗", "偏小吗", "熟的吗", "合适吗", "送礼合适吗", "适合送人吗", "适合老人吗", "老板，甜吗", "甜不？",
    "is it sweet?", "is it fresh?",
]


async def _apple_card(shop: Shop, openid: str) -> ChatUser:
    user = shop.user(openid)
    await user.say("苹果")
    card = await user.say("1")
    assert "烟台红富士苹果" in card.text or any("烟台红富士苹果" in a.title for a in card.articles)
    return user


@pytest.mark.parametrize("question", QUESTIONS)
async def test_a_question_on_a_card_is_answered_from_the_product_and_the_card_stays(shop: Shop, question: str) -> None:
    user = await _apple_card(shop, "o_card_question")
    answer = await user.say(question)
    assert "关于「烟台红富士苹果」" in answer.text and "山东烟台栖霞" in answer.text, answer.text
    assert f"」{question}：" in answer.text, answer.text  # the question quoted whole
    assert "相关的商品" not in answer.text and "没能识别" not in answer.text, answer.text
    await user.say("2")
    added = await user.say("加入购物车")
    assert "烟台红富士苹果（5斤装） ×1" in added.text, added.text


@pytest.mark.parametrize(("said", "shown"), [("有没有香蕉", "香蕉"), ("有梨吗", "砀山酥梨"), ("我要龙井", "西湖龙井"),
                                             ("香蕉甜不甜", "香蕉"), ("do you have bananas?", "香蕉")])
async def test_a_product_named_on_a_card_is_searched(shop: Shop, said: str, shown: str) -> None:
    user = await _apple_card(shop, "o_card_question_other")
    listed = await user.say(said)
    assert shown in listed.text and "关于「烟台红富士苹果」" not in listed.text, listed.text


async def test_what_a_card_takes_is_taken_as_before(shop: Shop) -> None:
    user = await _apple_card(shop, "o_card_question_takes")
    price = await user.say("多少钱")
    assert "5斤装 ¥45.90" in price.text, price.text
    stock = await user.say("有货吗")
    assert "10斤装 ¥79.90（缺货）" in stock.text, stock.text
    chosen = await user.say("2")
    assert "已选" in chosen.text and "5斤装" in chosen.text, chosen.text
    added = await user.say("来两袋")
    assert "烟台红富士苹果（5斤装） ×2" in added.text, added.text
    cheaper = await user.say("能不能便宜点")  # a discount ask, not a question about the apples
    assert "关于「" not in cheaper.text, cheaper.text


async def test_a_question_with_no_card_searches_as_before(shop: Shop) -> None:
    reply = await shop.user("o_card_question_none").say("甜吗")
    assert "相关的商品" in reply.text and "烟台红富士苹果" in reply.text and "关于「" not in reply.text, reply.text

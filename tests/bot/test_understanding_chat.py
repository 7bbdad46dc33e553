"""Customers talk, the shop understands: greetings, thanks, shop questions, a call for a
person and price or quantity words are answered as such, through the real app (issue 12)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from commerce.customers.models import Handoff
from tests.bot.driver import Shop, db

pytestmark = pytest.mark.sqlite_only  # the words are checked, not the database


def _prices(text: str) -> list[float]:
    """The first price of every numbered line of a result list."""
    return [float(m.group(1)) for m in re.finditer(r"^\d+\. .*?¥(\d+(?:\.\d+)?)", text, re.M)]


@pytest.mark.parametrize("words", ["早上好", "在吗", "老板在吗", "你好呀", "hi", "Hello!", "good morning"])
async def test_a_greeting_is_greeted_with_the_next_step(shop: Shop, words: str) -> None:
    reply = await shop.user().say(words)
    assert "没有找到" not in reply.text and "nothing matches" not in reply.text.lower()
    assert ("热卖" in reply.text) or ('"hot"' in reply.text), reply.text
    if words.isascii():
        assert "welcome" in reply.text.lower()
    else:
        assert "欢迎" in reply.text


@pytest.mark.parametrize("words", ["辛苦了", "谢谢", "谢谢老板", "thx", "Thank you!"])
async def test_thanks_are_answered_not_searched(shop: Shop, words: str) -> None:
    reply = await shop.user().say(words)
    assert "没有找到" not in reply.text
    assert ("不客气" in reply.text) or ("welcome" in reply.text.lower()), reply.text


async def test_a_greeting_mentions_a_cart_that_is_not_empty(shop: Shop) -> None:
    user = shop.user()
    await user.say("香蕉")
    await user.say("1")
    await user.say("加入购物车 2")
    reply = await user.say("你好")
    assert "购物车" in reply.text and "2 件" in reply.text, reply.text
    assert "2 items" in (await user.say("thanks")).text


async def test_a_greeting_keeps_the_open_list(shop: Shop) -> None:
    user = shop.user()
    await user.say("苹果")
    assert "欢迎" in (await user.say("在吗")).text
    assert "苹果" in (await user.say("1")).articles[0].title


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("满多少免运费", "满 ¥99.00 包邮"),
        ("运费多少", "运费 ¥8.00"),
        ("包邮吗", "满 ¥99.00 包邮"),
        ("发什么快递", "快递公司和单号"),
        ("周末发货吗", "周末也发货"),
        ("什么时候发货", "48 小时内发货"),
        ("怎么付款", "模拟支付"),
        ("能开发票吗", "人工"),
        ("is there free shipping?", "free on orders of ¥99.00"),
        ("what is the delivery fee", "Delivery is ¥8.00"),
        ("when do you ship", "within 48 hours"),
        ("how do I pay", "payments are simulated"),
    ],
)
async def test_shop_questions_are_answered_from_the_shops_rules(shop: Shop, words: str, expected: str) -> None:
    reply = await shop.user().say(words)
    assert expected in reply.text, reply.text


async def test_the_free_delivery_answer_follows_the_config(make_shop, db_url: str) -> None:  # type: ignore[no-untyped-def]
    shop = await make_shop(db_url, shop={"free_delivery_threshold_fen": 15800, "delivery_fee_fen": 1200,
                                         "dispatch_hours": 24, "weekend_dispatch": False})
    user = shop.user()
    assert "运费 ¥12.00，商品满 ¥158.00 包邮" in (await user.say("满多少免运费")).text
    weekend = (await user.say("周末发货吗")).text
    assert "24 小时内发货" in weekend and "周末不发货" in weekend
    free = await make_shop(db_url, shop={"free_delivery_threshold_fen": 0})
    assert "全场包邮" in (await free.user("o_other").say("包邮吗")).text


@pytest.mark.parametrize("words", ["东西坏了要找人", "投诉", "人工", "我要投诉", "my order arrived broken", "talk to a human"])
async def test_complaints_and_calls_for_a_person_reach_a_person(shop: Shop, words: str) -> None:
    user = shop.user()
    reply = await user.say(words)
    assert reply.kind == "text" and ("人工客服" in reply.text or "our staff" in reply.text), reply.text
    async with db(shop.client.app)() as session:
        handoff = await session.scalar(select(Handoff))
    assert handoff is not None and handoff.context["message"] == words


async def test_an_address_with_a_road_named_like_a_word_is_not_a_call_for_a_person(shop: Shop) -> None:
    user = shop.user()
    await user.say("香蕉")
    await user.say("1")
    await user.say("加入购物车 1")
    await user.say("结算")
    reply = await user.say("张三 13800138000 上海市人工湖路100号")
    assert "人工客服" not in reply.text


@pytest.mark.parametrize("words", ["怎么买", "how do I buy"])
async def test_how_to_buy_is_the_help(shop: Shop, words: str) -> None:
    reply = await shop.user().say(words)
    assert "使用说明" in reply.text or "help" in reply.text.lower(), reply.text


async def test_a_price_limit_narrows_the_search(shop: Shop) -> None:
    everything = _prices((await shop.user("o_a").say("零食")).text)
    assert everything and max(everything) > 30, everything
    reply = await shop.user("o_b").say("30块以内的零食")
    cheap = _prices(reply.text)
    assert cheap and all(price <= 30 for price in cheap), reply.text
    assert "¥30.00以内" in reply.text
    english = await shop.user("o_c").say("snacks under 30 yuan")
    assert _prices(english.text) and all(price <= 30 for price in _prices(english.text)), english.text


async def test_cheap_puts_the_cheapest_first(shop: Shop) -> None:
    prices = _prices((await shop.user().say("便宜点的零食")).text)
    assert prices and prices == sorted(prices), prices


async def test_a_price_nothing_fits_lists_everything_and_says_so(shop: Shop) -> None:
    reply = await shop.user().say("1块以内的零食")
    assert "没有¥1.00以内的" in reply.text and _prices(reply.text), reply.text


@pytest.mark.parametrize(
    ("words", "expected"),
    [("香蕉3斤", "香蕉"), ("来两袋大米", "大米"), ("给我爸买点龙井", "龙井"), ("我想给妈妈买点苹果", "苹果"),
     ("2 bags of rice", "大米")],
)
async def test_quantity_and_filler_words_do_not_break_search(shop: Shop, words: str, expected: str) -> None:
    reply = await shop.user().say(words)
    first = re.search(r"^1\. (.*)$", reply.text, re.M)
    assert first is not None and expected in first.group(1), reply.text


@pytest.mark.parametrize("words", ["好的", "收到", "嗯嗯", "拜拜", "ok thanks bye"])
async def test_an_acknowledgement_outside_a_dialog_is_answered_not_searched(shop: Shop, words: str) -> None:
    reply = await shop.user().say(words)
    assert "没有找到" not in reply.text and "nothing matches" not in reply.text.lower(), reply.text
    assert ("好的" in reply.text) or ("sure" in reply.text.lower()), reply.text


async def test_ok_still_confirms_at_checkout(shop: Shop) -> None:
    user = shop.user()
    await user.say("香蕉")
    await user.say("1")
    await user.say("加入购物车 1")
    await user.say("结算")
    await user.say("张三 13800138000 上海市浦东新区世纪大道100号")
    await user.say("确认")
    card = await user.say("好的")
    assert card.articles and "订单号" in card.articles[0].description, card.text


@pytest.mark.parametrize("words", ["包裹到哪儿了", "查物流", "我要退款", "where is my package"])
async def test_order_questions_show_the_orders(shop: Shop, words: str) -> None:
    reply = await shop.user().say(words)
    assert "没有找到" not in reply.text
    assert "订单" in reply.text or "order" in reply.text.lower(), reply.text


@pytest.mark.parametrize(("words", "expected"), [("看看购物车", "购物车"), ("show me my cart", "cart"),
                                                 ("我的积分", "积分"), ("my points", "points")])
async def test_cart_and_account_words_in_a_sentence(shop: Shop, words: str, expected: str) -> None:
    reply = await shop.user().say(words)
    assert expected in reply.text.lower() and "没有找到" not in reply.text, reply.text


@pytest.mark.parametrize(("words", "shown"), [("水果", "香蕉"), ("有什么水果", "巨峰葡萄"), ("衣服", "纯棉圆领T恤"),
                                              ("看看数码产品", "静音无线鼠标"), ("fruit", "香蕉")])
async def test_a_category_word_lists_the_whole_category(shop: Shop, words: str, shown: str) -> None:
    user = shop.user()
    reply = await user.say(words)
    listed = reply.text
    for _ in range(3):  # every page of it
        listed += (await user.say("下一页")).text
    assert shown in listed, listed

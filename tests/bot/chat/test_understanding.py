"""The understanding step alone: intents and slots, without the app (issue 12)."""

from __future__ import annotations

import cn2an
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.chat.understanding import (
    Intent,
    Topic,
    after_sales_form,
    parse_amount,
    parse_search,
    question_about_it,
    understand,
)


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("早上好", Intent.GREETING), ("在吗", Intent.GREETING), ("hi", Intent.GREETING), ("Hello there", Intent.GREETING),
        ("辛苦了", Intent.THANKS), ("谢谢", Intent.THANKS), ("thx", Intent.THANKS), ("thanks a lot", Intent.THANKS),
        ("东西坏了要找人", Intent.COMPLAINT), ("投诉", Intent.COMPLAINT), ("人工", Intent.HUMAN), ("客服", Intent.HUMAN),
        ("怎么买", Intent.HELP), ("苹果", Intent.SEARCH), ("/faq add 发票 可以开", Intent.SEARCH),
    ],
)
def test_intents(text: str, intent: Intent) -> None:
    assert understand(text).intent is intent


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("刚才那单怎么付", Intent.PAY_ORDER), ("付款链接发我", Intent.PAY_ORDER), ("pay for my order", Intent.PAY_ORDER),
        ("包裹到哪儿了", Intent.TRACK), ("发货了吗", Intent.TRACK), ("where is my parcel", Intent.TRACK),
        ("催一下发货", Intent.URGE), ("怎么还不发货", Intent.URGE), ("hurry up please", Intent.URGE),
        ("能不能今天发", Intent.URGE), ("快点啊等急了", Intent.URGE), ("I got it, thanks", Intent.THANKS),
        ("东西收到了", Intent.RECEIVED), ("确认收货", Intent.RECEIVED), ("I received my order", Intent.RECEIVED),
        ("取消订单", Intent.CANCEL_ORDER), ("那单不要了", Intent.CANCEL_ORDER), ("cancel my order", Intent.CANCEL_ORDER),
        ("我要退款", Intent.AFTER_SALES), ("申请售后", Intent.AFTER_SALES), ("I want a refund", Intent.AFTER_SALES),
        ("我的订单", Intent.ORDERS), ("能帮我查一下吗", Intent.ORDERS),
        ("清空购物车", Intent.CLEAR_CART), ("多少钱一斤", Intent.PRICE_ASK), ("有现货吗", Intent.STOCK_ASK),
        ("有什么推荐的", Intent.RECOMMEND), ("怎么邀请好友", Intent.INVITE), ("有优惠吗", Intent.DEALS),
        ("拼团怎么玩", Intent.GROUP), ("哈哈哈", Intent.ACK), ("[微笑]", Intent.ACK), ("算了不要了", Intent.ACK), ("先不买了", Intent.ACK), ("没事了", Intent.ACK), ("???", Intent.HELP),
        # a greeting before the message proper is a greeting, not the message
        ("您好，包裹到哪了", Intent.TRACK), ("老板，有优惠吗", Intent.DEALS), ("你好呀", Intent.GREETING),
    ],
)
def test_order_cart_and_shop_intents(text: str, intent: Intent) -> None:
    assert understand(text).intent is intent


@pytest.mark.parametrize(
    ("text", "form"),
    [
        ("退款 葡萄坏了几颗", ("退款", "葡萄坏了几颗")), ("退款 发错地址了", ("退款", "发错地址了")),
        ("退货：发错了，要的是红色", ("退货", "发错了,要的是红色")), ("你好，退款 买错了", ("退款", "买错了")),
    ],
)
def test_a_refund_typed_with_its_reason_is_a_request_whatever_the_reason_says(text: str, form: tuple[str, str] | None) -> None:
    """The form the shop asks for wins over complaint words in the reason (a request, not a
    person); a greeting before it is still the request."""
    assert understand(text).intent is Intent.AFTER_SALES
    assert after_sales_form(text) == form


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("拼团码是多少", Intent.GROUP_CODE), ("我的团码呢", Intent.GROUP_CODE), ("团的链接发我", Intent.GROUP_CODE),
        ("拼团怎么分享", Intent.GROUP_CODE), ("what's my group code", Intent.GROUP_CODE), ("拼团码", Intent.GROUP_CODE),
        ("怎么分享给朋友", Intent.SHARE), ("how do i share", Intent.SHARE), ("怎么邀请好友", Intent.INVITE),
        ("拼团怎么玩", Intent.GROUP), ("我要参团 ABCDEF", Intent.SEARCH), ("拼团码：ABC123 怎么加入", Intent.SEARCH),
    ],
)
def test_a_group_code_asked_for_is_the_customers_own_group(text: str, intent: Intent) -> None:
    """A code in the words is a friend's (bot.handlers.text reads it first); asked for
    without one, it is the customer's own group to pass on."""
    assert understand(text).intent is intent


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("收到啦 苹果很甜👍", Intent.PLEASED), ("到了，很新鲜", Intent.PLEASED), ("收到了，很满意[强]", Intent.PLEASED),
        ("received it, love it", Intent.PLEASED), ("收到啦", Intent.ACK), ("收到了 谢谢", Intent.ACK),
        ("东西收到了", Intent.RECEIVED), ("收到的苹果烂了", Intent.COMPLAINT), ("收到了 不太甜", Intent.SEARCH),
        ("收到了 香蕉好吃吗", Intent.SEARCH),
    ],
)
def test_goods_arrived_and_liked_is_pleased_never_a_receipt(text: str, intent: Intent) -> None:
    assert understand(text).intent is intent


@pytest.mark.parametrize("text", ["退款 进度怎么样了", "退款 到账了吗", "退款：什么时候到账"])
def test_a_refund_question_in_the_request_form_only_asks(text: str) -> None:
    assert understand(text).intent is Intent.REFUND_STATUS and after_sales_form(text) is None


@pytest.mark.parametrize("text", ["葡萄坏了几颗", "葡萄坏了 想退款", "退款退款 东西坏了", "东西坏了，退款"])
def test_a_complaint_without_the_request_form_reaches_a_person(text: str) -> None:
    assert understand(text).intent is Intent.COMPLAINT


@pytest.mark.parametrize(
    "text",
    ["能便宜点吗", "便宜点", "有优惠吗", "优惠吗", "有什么优惠", "有没有优惠", "优惠活动", "有活动吗", "什么活动", "能打折吗",
     "打折吗", "有折扣吗", "有券吗", "有优惠券吗", "领券", "有红包吗", "新人福利", "买两个有优惠吗", "多买有优惠吗", "有啥优惠", "有啥活动", "有没优惠",
     "能不能便宜一点", "再便宜点", "便宜点行不行", "买两个能便宜吗", "any discounts?", "any deals", "any coupons", "cheaper?", "do you have any deals"],
)
def test_asking_for_a_discount_is_a_deals_ask(text: str) -> None:
    assert understand(text).intent is Intent.DEALS


@pytest.mark.parametrize("text", ["我的积分", "我的优惠券", "我的佣金", "邀请码", "my points", "my account", "my coupons"])
def test_the_customers_own_points_and_coupons_are_the_account(text: str) -> None:
    assert understand(text).intent is Intent.ACCOUNT


@pytest.mark.parametrize("text", ["有没有便宜点的", "有没有便宜一点的", "cheaper ones", "便宜点的零食", "有没有能便宜点的苹果"])
def test_cheaper_goods_are_still_searched_not_a_deals_ask(text: str) -> None:
    assert understand(text).intent is Intent.SEARCH and understand(text).slots.cheap


def test_a_greeting_before_a_search_leaves_the_product_words() -> None:
    found = understand("你好，我想买苹果")
    assert found.intent is Intent.SEARCH and found.words == "苹果"


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ("发什么快递", Topic.COURIER), ("满多少免运费", Topic.FREE_DELIVERY), ("运费多少", Topic.DELIVERY_FEE),
        ("周末发货吗", Topic.SHIPPING_TIME), ("怎么付款", Topic.PAYMENT), ("能开发票吗", Topic.INVOICE),
        ("free shipping?", Topic.FREE_DELIVERY), ("can I pay with alipay", Topic.PAYMENT),
    ],
)
def test_shop_questions(text: str, topic: Topic) -> None:
    found = understand(text)
    assert found.intent is Intent.FAQ and found.topic is topic


@pytest.mark.parametrize(
    ("text", "words", "low", "high", "quantity", "unit"),
    [
        ("50块以内的零食", "零食", None, 5000, None, ""),
        ("五十元以下的水果", "水果", None, 5000, None, ""),
        ("100元以下", "100元以下", None, 10000, None, ""),
        ("30到50元的茶", "茶", 3000, 5000, None, ""),
        ("100块左右的礼盒", "礼盒", 8000, 12000, None, ""),
        ("香蕉3斤", "香蕉", None, None, 3, "斤"),
        ("来两袋大米", "大米", None, None, 2, "袋"),
        ("给我爸买点茶叶", "茶叶", None, None, None, ""),
        ("snacks under 30 yuan", "snacks", None, 3000, None, ""),
        ("2 bags of rice", "rice", None, None, 2, "bags"),
        # what it is for, having run out, the budget word, a range without a currency word
        ("办公室用的鼠标", "鼠标", None, None, None, ""),
        ("家里没米了", "米", None, None, None, ""),
        ("洗发水快用完了", "洗发水", None, None, None, ""),
        ("预算300以内买个耳机", "耳机", None, 30000, None, ""),
        ("200到300的键盘", "键盘", 20000, 30000, None, ""),
        ("老板有没有好一点的绿茶", "绿茶", None, None, None, ""),
        ("有没有更便宜的苹果", "苹果", None, None, None, ""),
        ("3到5个苹果", "苹果", None, None, 5, "个"),
    ],
)
def test_search_slots(text: str, words: str, low: int | None, high: int | None, quantity: int | None, unit: str) -> None:
    found = understand(text)
    assert found.intent is Intent.SEARCH
    assert (found.words, found.slots.price_min_fen, found.slots.price_max_fen) == (words, low, high)
    assert (found.slots.quantity, found.slots.unit) == (quantity, unit)


def test_cheap_is_a_slot_not_a_word() -> None:
    found = understand("便宜点的零食")
    assert found.slots.cheap and found.words == "零食"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_text_is_understood_without_crashing(text: str) -> None:
    found = understand(text)
    assert isinstance(found.intent, Intent)
    words, slots = parse_search(text.lower())
    assert isinstance(words, str)
    if slots.price_min_fen is not None and slots.price_max_fen is not None:
        assert slots.price_min_fen <= slots.price_max_fen
    assert slots.quantity is None or 1 <= slots.quantity <= 9999


@given(st.integers(min_value=1, max_value=99_999), st.sampled_from(["块", "元", "块钱"]), st.sampled_from(["以内", "以下"]),
       st.sampled_from(["零食", "水果", "茶"]), st.booleans())
def test_a_price_limit_round_trips(yuan: int, unit: str, below: str, words: str, chinese: bool) -> None:
    number = cn2an.an2cn(yuan) if chinese else str(yuan)
    found = understand(f"{number}{unit}{below}的{words}")
    assert found.intent is Intent.SEARCH
    assert (found.words, found.slots.price_max_fen, found.slots.price_min_fen) == (words, yuan * 100, None)


@given(st.integers(min_value=1, max_value=999), st.sampled_from(["斤", "袋", "箱", "瓶"]),
       st.sampled_from(["香蕉", "大米", "苹果"]), st.booleans(), st.booleans())
def test_a_quantity_round_trips(count: int, unit: str, words: str, chinese: bool, before: bool) -> None:
    number = cn2an.an2cn(count) if chinese else str(count)
    text = f"来{number}{unit}{words}" if before else f"{words}{number}{unit}"
    found = understand(text)
    assert (found.words, found.slots.quantity, found.slots.unit) == (words, count, unit)


@given(st.integers(min_value=0, max_value=10**6))
def test_amounts_in_chinese_numerals(value: int) -> None:
    assert parse_amount(cn2an.an2cn(value)) == value
    assert parse_amount(str(value)) == value


@pytest.mark.parametrize(
    ("text", "words"),
    [("你好，我想问下苹果是什么产地的", "苹果"), ("苹果是哪里产的", "苹果"), ("咨询一下大米", "大米"), ("牛肉干保质期多久", "牛肉干")],
)
def test_a_question_about_a_product_searches_the_product(text: str, words: str) -> None:
    found = understand(text)
    assert found.intent is Intent.SEARCH and found.words == words


@pytest.mark.parametrize(
    ("text", "other"),
    [
        ("甜不甜", ""), ("这个甜不甜", ""), ("新不新鲜", ""), ("新鲜不新鲜", ""), ("好不好吃", ""), ("会不会坏", ""),
        ("甜吗", ""), ("适合老人吗", ""), ("送礼合适吗", ""), ("它耐用吗", ""), ("这款适合老人吗", ""), ("is it sweet?", ""),
        ("苹果甜不甜", "苹果"), ("香蕉甜吗", "香蕉"), ("这个茶正宗吗", "茶"),
    ],
)
def test_a_question_about_the_product_on_screen(text: str, other: str) -> None:
    assert question_about_it(text) == other


@pytest.mark.parametrize(
    "text",
    ["有没有货", "有没有香蕉", "要不要钱", "能不能便宜点", "可不可以便宜", "是不是正品", "贵不贵", "好不好", "有梨吗", "有甜的吗",
     "苹果", "甜", "这个有10斤的吗", "这个能不能便宜点", "这个包邮吗", "do you have bananas?"],
)
def test_not_a_question_about_the_product_on_screen(text: str) -> None:
    assert question_about_it(text) is None


def test_asking_whether_it_is_fresh_is_no_complaint() -> None:
    assert understand("新不新鲜").intent is Intent.SEARCH and understand("新鲜不新鲜").intent is Intent.SEARCH
    assert understand("苹果不新鲜").intent is Intent.COMPLAINT

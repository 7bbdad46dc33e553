"""Questions about an order asked anywhere in the chat ("刚才那单怎么付", "包裹到哪了",
"催一下", "东西收到了", "取消订单", "我要退款"): answered on the order they are about, with
what can be done next, never searched as products; with no such order, the shop's answer.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.keys import SERVICES
from commerce.orders.models import AfterSalesRequest, OrderStatus
from tests.bot.admin.test_orders import (
    CUSTOMER,
    OPERATOR,
    OWNER,
    confirm_code,
    pay,
    place_order,
    texts,
    view,
)
from tests.bot.driver import Shop, db

pytestmark = pytest.mark.sqlite_only  # the words are checked, not the database


def urged(shop: Shop, openid: str) -> list[str]:
    return [t for t in texts(shop, openid) if t.startswith("⏰")]


async def drain_alerts(shop: Shop) -> None:
    await shop.client.app[SERVICES].alerts.drain()


async def test_an_unpaid_order_is_paid_from_anywhere(staffed: Shop) -> None:
    user = staffed.user(CUSTOMER)
    order_no = await place_order(staffed, user)
    await user.say("香蕉")  # the customer has moved on to another search
    for words in ("刚才那单怎么付", "怎么付款", "付款链接发我一下", "包裹到哪了", "pay for my order"):
        card = await user.say(words)
        assert card.kind == "news", (words, card)
        title = card.articles[0].title
        assert order_no in card.articles[0].description and ("待支付" in title or "awaiting payment" in title), words


async def test_a_paid_order_is_followed_from_payment_to_receipt(staffed: Shop) -> None:
    user = staffed.user(CUSTOMER)
    order_no = await place_order(staffed, user)
    await pay(staffed, order_no)
    await drain_alerts(staffed)
    before = len(urged(staffed, OWNER))

    when = await user.say("什么时候能发货")
    assert order_no in when.text and "48 小时内发货" in when.text, when.text

    hurry = await user.say("催一下发货")
    assert "已提醒仓库" in hurry.text and order_no in hurry.text, hurry.text
    await drain_alerts(staffed)
    (alert,) = urged(staffed, OWNER)[before:]
    assert order_no in alert and "/ship" in alert
    await user.say("怎么还不发货啊")  # asked again: staff are not told twice
    await drain_alerts(staffed)
    assert len(urged(staffed, OWNER)) == before + 1
    assert len(urged(staffed, OPERATOR)) >= 1

    no_cancel = await user.say("取消订单")
    assert "不能直接取消" in no_cancel.text and "退款 原因" in no_cancel.text, no_cancel.text
    assert (await view(staffed, order_no)).status == OrderStatus.PAID

    not_yet = await user.say("东西收到了")
    assert "还没有发货" in not_yet.text, not_yet.text
    assert (await view(staffed, order_no)).status == OrderStatus.PAID

    await staffed.user(OPERATOR).say(f"/ship {order_no} 顺丰 SF1234567890")
    where = await user.say("包裹到哪儿了")
    assert "已经发货" in where.text and "SF1234567890" in where.text, where.text
    english = await user.say("where is my package")
    assert "SF1234567890" in english.text and "shipped" in english.text, english.text
    chinese = await user.say("到哪了")  # Chinese again: answered in Chinese
    assert "已经发货" in chinese.text and "SF1234567890" in chinese.text, chinese.text

    done = await user.say("东西收到了")
    assert "已确认收货" in done.text and order_no in done.text, done.text
    assert (await view(staffed, order_no)).status == OrderStatus.COMPLETED


async def test_after_sales_opens_the_order_and_takes_the_reason_next(staffed: Shop) -> None:
    user = staffed.user(CUSTOMER)
    order_no = await place_order(staffed, user)
    await pay(staffed, order_no)
    ask = await user.say("我要退款")
    assert order_no in ask.text and "退款 原因" in ask.text, ask.text
    asked = await user.say("退款 拍错了")
    assert "拍错了" in asked.text and order_no in asked.text, asked.text


async def reasons(shop: Shop) -> list[str]:
    async with db(shop.client.app)() as session:
        return list(await session.scalars(select(AfterSalesRequest.reason).order_by(AfterSalesRequest.id)))


def after_sales_alerts(shop: Shop, openid: str) -> list[str]:
    return [t for t in texts(shop, openid) if "退款申请" in t or "退货申请" in t]


async def test_a_refund_typed_with_its_reason_is_filed_though_the_reason_complains(staffed: Shop) -> None:
    """"退款 葡萄坏了几颗" on a shipped order and "退款 发错地址了" on a paid one, typed away
    from the order's screen, file the request on that order (staff alerted) instead of
    opening a service ticket; the reply says it was received. A complaint without the
    form still reaches a person."""
    user = staffed.user(CUSTOMER)
    shipped = await place_order(staffed, user)
    await pay(staffed, shipped)
    await staffed.user(OPERATOR).say(f"/ship {shipped} 顺丰 SF1234567890")
    await user.say("香蕉")  # away from the order's screen
    filed = await user.say("退款 葡萄坏了几颗")
    assert "已收到订单" in filed.text and shipped in filed.text and "葡萄坏了几颗" in filed.text, filed.text
    assert "人工" not in filed.text, filed.text

    other = staffed.user("o_customer_88")
    paid = await place_order(staffed, other)
    await pay(staffed, paid)
    await drain_alerts(staffed)
    before = len(after_sales_alerts(staffed, OWNER))
    wrong = await other.say("退款 发错地址了")
    assert "已收到订单" in wrong.text and paid in wrong.text and "发错地址了" in wrong.text, wrong.text
    assert await reasons(staffed) == ["葡萄坏了几颗", "发错地址了"]
    await drain_alerts(staffed)
    (alert,) = after_sales_alerts(staffed, OWNER)[before:]
    assert paid in alert and "发错地址了" in alert, alert

    person = await staffed.user("o_customer_99").say("葡萄坏了几颗")
    assert "人工客服" in person.text, person.text


async def test_a_refund_typed_with_its_reason_away_from_the_order_says_it_was_received(staffed: Shop) -> None:
    """"退款 买错了" right after paying, or from the orders list, files the request and says
    so (not the order's "being packed" page); "退款 进度怎么样了" then only asks."""
    user = staffed.user(CUSTOMER)
    order_no = await place_order(staffed, user)
    await pay(staffed, order_no)
    await user.say("订单")
    filed = await user.say("退款 买错了")
    assert "已收到订单" in filed.text and order_no in filed.text and "正在备货" not in filed.text, filed.text
    asked = await user.say("退款 进度怎么样了")
    assert "商家处理中" in asked.text, asked.text
    assert await reasons(staffed) == ["买错了"]


async def test_two_orders_in_the_status_a_typed_refund_is_about_file_nothing_by_a_guess(staffed: Shop) -> None:
    user = staffed.user(CUSTOMER)
    first = await place_order(staffed, user)
    await pay(staffed, first)
    second = await place_order(staffed, user)
    await pay(staffed, second)
    which = await user.say("退款 买错了")
    assert second in which.text and "2 个已付款待发货的订单" in which.text, which.text
    assert await reasons(staffed) == []


async def test_can_it_be_refunded_on_a_paid_order_is_answered_on_that_order(staffed: Shop) -> None:
    """"不想要了能退吗" with a paid order not shipped: it can be refunded now, and how; not
    the shop's rule for delivered orders."""
    user = staffed.user(CUSTOMER)
    order_no = await place_order(staffed, user)
    await pay(staffed, order_no)
    await user.say("香蕉")
    answer = await user.say("不想要了能退吗")
    assert order_no in answer.text and "现在就能退款" in answer.text and "退款 原因" in answer.text, answer.text
    assert "7 天内" not in answer.text, answer.text
    filed = await user.say("退款 不想要了")  # the order is on screen now
    assert "已收到订单" in filed.text, filed.text


async def test_asking_after_a_refund_says_what_became_of_it_and_files_nothing(staffed: Shop) -> None:
    """"买错了 想退款" says how; "退款进度怎么样了" on the order's screen is no new request whose
    reason is "进度怎么样了"; "我的退款呢" anywhere answers on the order refunded, through
    the shop's decision to the money back."""
    user = staffed.user(CUSTOMER)
    order_no = await place_order(staffed, user)
    await pay(staffed, order_no)
    how = await user.say("买错了 想退款")
    assert "退款 原因" in how.text and "正在备货" not in how.text, how.text
    filed = await user.say("退款 买错了")
    assert "买错了" in filed.text, filed.text
    for words in ("退款进度怎么样了", "我的退款呢？钱什么时候到账", "退款到账了吗"):
        status = await user.say(words)
        assert order_no in status.text and "商家处理中" in status.text and "原因：买错了" in status.text, (words, status.text)
    await user.say("香蕉")  # moved on: asked from anywhere, the same order
    assert "商家处理中" in (await user.say("退款怎么样了")).text
    english = await user.say("where is my refund?")
    assert "request is in" in english.text and order_no in english.text, english.text
    async with db(staffed.client.app)() as session:
        reasons = list(await session.scalars(select(AfterSalesRequest.reason)))
    assert reasons == ["买错了"]  # the questions filed nothing

    owner = staffed.user(OWNER)
    ask = await owner.say("/approve 1")
    await owner.say(confirm_code(ask.text))
    assert (await view(staffed, order_no)).status == OrderStatus.REFUNDING  # the provider's word to come
    done = await user.say("钱什么时候到账")
    assert "退款已同意" in done.text and order_no in done.text, done.text


async def test_the_one_unpaid_order_is_cancelled_in_words(staffed: Shop) -> None:
    user = staffed.user(CUSTOMER)
    order_no = await place_order(staffed, user)
    await user.say("香蕉")
    cancelled = await user.say("那单不要了")
    assert order_no in cancelled.text, cancelled.text
    assert (await view(staffed, order_no)).status == OrderStatus.CANCELLED


async def test_with_no_such_order_the_shop_answers_the_question(staffed: Shop) -> None:
    user = staffed.user("o_no_orders")
    for words, expected in (
        ("包裹到哪了", "小时内发货"),
        ("催一下发货", "小时内发货"),
        ("刚才那单怎么付", "微信支付"),
        ("我要退款", "天内可申请售后"),
        ("退款进度怎么样了", "没有退款中的订单"),
        ("取消订单", "没有可以取消的订单"),
        ("东西收到了", "没有待收货的订单"),
    ):
        reply = await user.say(words)
        assert expected in reply.text and "没有找到" not in reply.text, (words, reply.text)
    await drain_alerts(staffed)
    assert urged(staffed, OWNER) == []


async def test_the_cart_is_cleared_in_words_away_from_its_screen(staffed: Shop) -> None:
    user = staffed.user(CUSTOMER)
    await user.say("香蕉")
    await user.say("1")
    await user.say("加入购物车 2")
    await user.say("苹果")  # a search: the cart's screen is gone
    cleared = await user.say("帮我清空购物车")
    assert "购物车已清空" in cleared.text, cleared.text
    empty = await user.say("购物车")
    assert "购物车是空的" in empty.text, empty.text


async def test_a_happy_word_when_the_goods_arrive_is_answered_warmly_and_confirms_nothing(staffed: Shop) -> None:
    """"收到啦 苹果很甜👍" on a shipped order: glad, with "确认收货" and a review offered on that
    order, never a product search and never the receipt itself (it starts the after-sales
    clock, and "收到了" also acknowledges a message); "确认收货" next confirms it."""
    user = staffed.user(CUSTOMER)
    order_no = await place_order(staffed, user)
    await pay(staffed, order_no)
    await staffed.user(OPERATOR).say(f"/ship {order_no} 顺丰 SF1234567890")
    await user.say("苹果")
    await user.say("1")  # a product's card on screen
    glad = await user.say("收到啦 苹果很甜👍")
    assert "很高兴你喜欢" in glad.text and order_no in glad.text and "确认收货" in glad.text, glad.text
    assert "评价" in glad.text and "相近的商品" not in glad.text, glad.text
    assert (await view(staffed, order_no)).status == OrderStatus.SHIPPED
    done = await user.say("确认收货")
    assert "已确认收货" in done.text and order_no in done.text, done.text
    nobody = await staffed.user("o_no_orders").say("收到啦 苹果很甜👍")
    assert "有需要随时找我" in nobody.text and "相近的商品" not in nobody.text, nobody.text

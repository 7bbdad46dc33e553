"""A delivery address changed after the order was placed ("地址写错了", "改地址",
"电话改成…"): read and shown back like checkout's, changed on "确认" until the order
ships, staff told when they may be packing it; never another order's, never at checkout."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.chat.understanding import Intent, understand
from bot.keys import SERVICES
from commerce.customers.addresses import default_address
from commerce.orders.models import Order, OrderStatus
from commerce.staff.models import AuditEntry
from tests.bot.admin.test_orders import CUSTOMER, OPERATOR, OWNER, pay, place_order, texts, view
from tests.bot.driver import Shop, db
from tests.bot.test_group_chat import _campaign

pytestmark = pytest.mark.sqlite_only  # the words and the dialog; the change's UPDATE is tested on both databases in tests/commerce/orders

NEW = "韩梅梅 13700001111 北京市海淀区中关村大街1号"


async def _row(shop: Shop, order_no: str) -> Order:
    async with db(shop.client.app)() as session:
        order = await session.scalar(select(Order).where(Order.order_no == order_no))
        assert order is not None
        return order


def _alerts(shop: Shop, openid: str) -> list[str]:
    return [t for t in texts(shop, openid) if "改了已付款订单" in t]


@pytest.mark.parametrize("words", [
    "地址写错了", "改地址", "我要改一下收货地址", "修改收货地址", "换个地址", "收货地址要改", "能改地址吗",
    "电话改成13900001111", "收货人改成王芳", "搬家了，寄到新地址", "change my address", "wrong address", "收货地址不对",
    "电话有误",
])
def test_the_words_ask_to_change_an_orders_address(words: str) -> None:
    assert understand(words).intent is Intent.CHANGE_ADDRESS, words


@pytest.mark.parametrize("words", ["地址", "换货", "换个颜色", "我想换个口味", "苹果", "我要退款", "包裹到哪了"])
def test_other_words_are_not_an_address_change(words: str) -> None:
    assert understand(words).intent is not Intent.CHANGE_ADDRESS, words


async def test_an_unpaid_order_gets_the_new_address_once_confirmed(staffed: Shop) -> None:
    user = staffed.user(CUSTOMER)
    order_no = await place_order(staffed, user)
    await user.say("苹果")  # moved on: the words still find the order

    asked = await user.say("地址写错了")
    assert order_no in asked.text and "138****8000" in asked.text and "世纪大道100号" in asked.text, asked.text
    assert "现在寄往：张三 138****8000 上海市" in asked.text, asked.text  # the phone masked in the chat
    shown = await user.say(NEW)
    assert "137****1111" in shown.text and "确认" in shown.text, shown.text
    assert (await _row(staffed, order_no)).address_name == "张三"  # nothing changes before 确认

    done = await user.say("确认")
    assert order_no in done.text and "韩梅梅" in done.text and "付款后按这个地址发货" in done.text, done.text
    row = await _row(staffed, order_no)
    assert (row.address_name, row.address_phone) == ("韩梅梅", "13700001111")
    assert (row.address_province, row.address_city, row.address_district) == ("北京市", "北京市", "海淀区")
    assert row.address_detail == "中关村大街1号" and row.address_text == "北京市海淀区中关村大街1号"
    async with db(staffed.client.app)() as session:
        saved = await default_address(session, customer_id=row.customer_id)
        audit = (await session.scalars(select(AuditEntry).where(AuditEntry.command == "order_address"))).all()
    assert saved is not None and saved.name == "韩梅梅"  # the next checkout starts from it
    assert len(audit) == 1 and "张三" in str(audit[0].before) and "韩梅梅" in str(audit[0].after)
    await staffed.client.app[SERVICES].alerts.drain()
    assert _alerts(staffed, OWNER) == []  # nobody packs an unpaid order

    # the next checkout ships to the new address
    await user.say("香蕉")
    await user.say("1")
    await user.say("加入购物车")
    review = await user.say("结算")
    assert "韩梅梅" in review.text, review.text


async def test_a_paid_order_changes_one_detail_and_staff_are_told(staffed: Shop) -> None:
    user = staffed.user(CUSTOMER)
    order_no = await place_order(staffed, user)
    await pay(staffed, order_no)

    shown = await user.say("电话改成13900001111")  # one detail, said at once: the rest kept
    assert "张三" in shown.text and "139****1111" in shown.text and "世纪大道100号" in shown.text, shown.text
    again = await user.say("地址改成文三路2号")  # and another, before confirming
    assert "139****1111" in again.text and "文三路2号" in again.text, again.text
    done = await user.say("确认")
    assert "已通知商家" in done.text, done.text
    row = await _row(staffed, order_no)
    assert (row.address_phone, row.status) == ("13900001111", OrderStatus.PAID.value)
    assert row.address_text == "上海市浦东新区文三路2号"  # a street alone stays in the district it replaced

    await staffed.client.app[SERVICES].alerts.drain()
    (alert,) = _alerts(staffed, OWNER)
    assert order_no in alert and "13900001111" in alert and "文三路2号" in alert and "世纪大道100号" in alert, alert
    assert len(_alerts(staffed, OPERATOR)) == 1


async def test_a_shipped_order_keeps_its_address_and_says_what_to_do(staffed: Shop) -> None:
    user = staffed.user(CUSTOMER)
    order_no = await place_order(staffed, user)
    await pay(staffed, order_no)
    await staffed.user(OPERATOR).say(f"/ship {order_no} 顺丰 SF1234567890")

    refused = await user.say("我要改地址")
    assert order_no in refused.text and "已发货" in refused.text and "人工" in refused.text, refused.text
    after = await user.say(NEW)  # not taken as the order's new address
    assert "确认" not in after.text or "韩梅梅" not in after.text, after.text
    await user.say("确认")
    assert (await _row(staffed, order_no)).address_name == "张三"


async def test_the_order_on_screen_is_the_one_changed(staffed: Shop) -> None:
    user = staffed.user(CUSTOMER)
    first = await place_order(staffed, user)
    await pay(staffed, first)
    second = await place_order(staffed, user)  # newer, unpaid
    await user.say("订单")
    listed = await user.say("2")  # the older, paid one
    assert first in listed.text, listed.text
    asked = await user.say("改地址")
    assert first in asked.text and second not in asked.text, asked.text
    again = await user.say("地址写错了")  # said again while asked: still the order on screen
    assert first in again.text and second not in again.text, again.text
    await user.say(NEW)
    await user.say("确认")
    assert (await _row(staffed, first)).address_name == "韩梅梅"
    assert (await _row(staffed, second)).address_name == "张三"


async def test_back_leaves_the_address_as_it_was(staffed: Shop) -> None:
    user = staffed.user(CUSTOMER)
    order_no = await place_order(staffed, user)
    await user.say("改地址")
    await user.say(NEW)
    listed = await user.say("返回")
    assert order_no in listed.text or "我的订单" in listed.text, listed.text
    assert "没有找到" not in listed.text
    assert (await _row(staffed, order_no)).address_name == "张三"


async def test_at_checkout_the_words_change_the_checkouts_address_not_an_order(staffed: Shop) -> None:
    user = staffed.user(CUSTOMER)
    placed = await place_order(staffed, user)  # an unpaid order the words could be taken for
    await user.say("香蕉")
    await user.say("1")
    await user.say("加入购物车")
    review = await user.say("结算")
    assert "确认订单" in review.text, review.text
    for words in ("改地址", "地址写错了"):
        asked = await user.say(words)
        assert "请发送收货信息" in asked.text and placed not in asked.text, (words, asked.text)
    await user.say(NEW)
    confirmed = await user.say("确认")
    assert "韩梅梅" in confirmed.text and "确认订单" in confirmed.text, confirmed.text
    assert (await _row(staffed, placed)).address_name == "张三"


async def test_with_no_order_to_change_the_customer_is_told(staffed: Shop) -> None:
    reply = await staffed.user("o_no_orders_yet").say("地址写错了")
    assert "没有可以改收货信息的订单" in reply.text, reply.text
    assert (await view(staffed, await place_order(staffed, staffed.user(CUSTOMER)))).address_name == "张三"


async def test_at_a_group_seats_address_step_the_words_ask_for_that_address(staffed: Shop) -> None:
    """A friend joining a group is asked for the seat's address: "改地址" there is about
    the seat, which asks again, never answered as a question about an order."""
    await _campaign(staffed)
    friend = staffed.user("o_group_address_words")
    await friend.say("拼团")
    assert "收货" in (await friend.say("1")).text  # no address yet: asked for
    asked = await friend.say("改地址")
    assert "正在拼团" in asked.text or "收货" in asked.text, asked.text
    assert "没有可以改收货信息的订单" not in asked.text and "改订单" not in asked.text, asked.text

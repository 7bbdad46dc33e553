"""The address step (bot/dialogs/address_step.py) through the real app, in both dialogs
that embed it: checkout and the group-buy dialog answer the same typed addresses with
the same replies, and each goes on with the saved address (the review, the pay card)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from commerce.customers.models import Address, Customer
from tests.bot.driver import ChatUser, Shop, db
from tests.bot.test_group_chat import _campaign, _order_no
from tests.bot.test_shopping_chat import _open

# The dialog's steps are checked; the address rows run on both databases in tests/commerce/customers.
pytestmark = pytest.mark.sqlite_only

WRONG_PHONE = "张三 138001 上海市浦东新区世纪大道100号"
FIRST = "张三 13800138000 上海市浦东新区世纪大道100号"
SECOND = "李四 13900139000 北京市朝阳区建国路88号"


async def _addresses(shop: Shop, user: ChatUser) -> list[tuple[str, bool]]:
    async with db(shop.client.app)() as session:
        rows = await session.execute(
            select(Address.name, Address.is_default)
            .join(Customer, Customer.id == Address.customer_id)
            .where(Customer.openid == user.openid)
        )
        return [(name, bool(default)) for name, default in rows.all()]


async def _through_the_step(user: ChatUser) -> list[Any]:
    """The same typed lines, once asked for an address: an unreadable one, one shown back,
    another instead, then "确认"; the replies, the last one the host's own."""
    return [await user.say(text) for text in (WRONG_PHONE, FIRST, SECOND, "确认")]


async def test_checkout_and_the_group_dialog_share_the_address_step(shop: Shop) -> None:
    await _campaign(shop)
    buyer, joiner = shop.user("o_address_buyer"), shop.user("o_address_group")

    await _open(buyer, "香蕉", "香蕉")
    await buyer.say("加入购物车")
    assert "请发送收货信息" in (await buyer.say("结算")).text
    at_checkout = await _through_the_step(buyer)

    await joiner.event("subscribe")
    await joiner.say("拼团")
    assert "请发送收货信息" in (await joiner.say("1")).text
    in_group = await _through_the_step(joiner)

    for replies in (at_checkout, in_group):
        wrong, first, second, _done = (r.text for r in replies)
        assert "手机号好像不对" in wrong
        assert "请确认收货信息" in first and "138****8000" in first and "世纪大道100号" in first
        assert "请确认收货信息" in second and "139****9000" in second and "建国路88号" in second
    assert [r.text for r in at_checkout[:3]] == [r.text for r in in_group[:3]]

    review = at_checkout[3]
    assert "应付" in review.text and "李四" in review.text and "139****9000" in review.text
    assert _order_no(in_group[3])  # the seat's pay card
    assert await _addresses(shop, buyer) == [("李四", True)]
    assert await _addresses(shop, joiner) == [("李四", True)]

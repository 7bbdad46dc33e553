"""Delivery addresses typed at checkout are read against the country's divisions (issue 15)."""

from __future__ import annotations

from sqlalchemy import select

from commerce.customers.models import Address
from commerce.orders.models import Order
from tests.bot.driver import Shop, db
from tests.bot.test_shopping_chat import _open


async def test_bug_a_made_up_address_was_accepted_at_checkout(sqlite_shop: Shop) -> None:
    """'王五 13800138000 随便写写地址吧' was taken; now it is refused with a good example, and
    an address without its province is placed with the province filled in and its parts kept."""
    user = sqlite_shop.user()
    await _open(user, "香蕉", "香蕉")
    await user.say("加入购物车")
    assert "请发送收货信息" in (await user.say("结算")).text
    refused = (await user.say("王五 13800138000 随便写写地址吧")).text
    assert "没有写明省、市、区县" in refused and "例如：张三 13800138000 浙江省杭州市西湖区文三路1号" in refused
    assert "街道和门牌号" in (await user.say("王五 13800138000 浙江省杭州市西湖区")).text
    shown = (await user.say("王五 13800138000 杭州市西湖区文三路1号")).text
    assert "地址：浙江省杭州市西湖区文三路1号" in shown
    assert "应付" in (await user.say("确认")).text
    # a street alone stays in the region it replaces
    assert "地址：浙江省杭州市西湖区文一路1号" in (await user.say("地址改成文一路1号")).text
    assert "应付" in (await user.say("确认")).text
    assert (await user.say("确认")).kind == "news"  # the pay card: the order is placed
    async with db(sqlite_shop.client.app)() as session:
        order = await session.scalar(select(Order))
        address = await session.scalar(select(Address))
    assert order is not None and address is not None
    assert (order.address_province, order.address_city, order.address_district, order.address_detail) == (
        "浙江省", "杭州市", "西湖区", "文一路1号")
    assert order.address_text == "浙江省杭州市西湖区文一路1号"
    assert (address.province, address.city, address.district, address.detail) == ("浙江省", "杭州市", "西湖区", "文三路1号")


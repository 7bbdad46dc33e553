"""The merchant's day, end to end through the chat (issue "staff run the shop" done-when).

The owner adds a product, a customer buys it and pays, the owner is alerted, ships it
with a tracking number (the customer is told), refunds part of it after confirming,
and sees the order in /stats and in the CSV export; a customer who types the same
commands only gets search results.
"""

from __future__ import annotations

from datetime import date, timedelta
from urllib.parse import urlparse

from tests.bot.admin.test_orders import (
    CUSTOMER,
    OWNER,
    STRANGER,
    confirm_code,
    pay,
    settle_refunds,
    staffed,  # noqa: F401  (fixture)
    texts,
    view,
)
from tests.bot.driver import Shop
from tests.bot.test_search_chat import numbered


async def test_the_merchants_day(staffed: Shop) -> None:  # noqa: F811
    owner, customer = staffed.user(OWNER), staffed.user(CUSTOMER)

    added = await owner.say('/add 云南小粒咖啡 68 30 茶饮 "Yunnan arabica beans"')
    assert "云南小粒咖啡" in added.text

    results = numbered((await customer.say("小粒咖啡")).text)
    number = next(n for n, line in results.items() if "云南小粒咖啡 ¥68.00" in line)
    await customer.say(str(number))
    await customer.say("加入购物车 2")
    await customer.say("结算")
    await customer.say("王五 13700137000 杭州市西湖区文三路1号")
    await customer.say("确认")
    card = await customer.say("确认")
    order_no = card.articles[0].description.split("订单号 ")[1].split()[0]
    paid = await pay(staffed, order_no)
    assert paid.payable_fen == 2 * 6800  # free delivery above ¥99
    assert any(order_no in t and "新订单" in t for t in texts(staffed, OWNER)), texts(staffed, OWNER)

    shipped = await owner.say(f"/ship {order_no} 顺丰 SF1234567890")
    assert "SF1234567890" in shipped.text
    assert any("SF1234567890" in t for t in texts(staffed, CUSTOMER))

    ask = await owner.say(f"/refund {order_no} 20")
    assert "¥20.00" in ask.text and "确认码" in ask.text
    await owner.say(confirm_code(ask.text))
    await settle_refunds(staffed)
    after = await view(staffed, order_no)
    assert after.refunded_fen == 2000 and after.status == "shipped"

    stats = await owner.say("/stats")
    assert "¥136.00" in stats.text and "云南小粒咖啡" in stats.text

    today = date.today()
    link = await owner.say(f"/export orders {today - timedelta(days=1)} {today + timedelta(days=1)}")
    url = next(word for word in link.text.split() if "/export/" in word)
    csv = await staffed.client.get(urlparse(url).path + "/file")
    assert csv.status == 200
    assert order_no in (await csv.read()).decode("utf-8-sig")

    for command in ("/add 假货 1 1 茶饮", f"/ship {order_no} 顺丰 X", f"/refund {order_no}", "/stats"):
        reply = await staffed.user(STRANGER).say(command)
        # a search answer ("找到 N 件…", "没有找到…" or "…您是不是想找"), nothing else
        assert "找到" in reply.text or "是不是想找" in reply.text
        assert "/help" not in reply.text and "员工" not in reply.text and "SF1234567890" not in reply.text
    assert (await view(staffed, order_no)).refunded_fen == 2000
    assert not any("假货" in line for line in numbered((await customer.say("假货")).text).values())

"""Staff alerts through the real app: a new paid order, an after-sales request, a customer
asking for a human, a variant falling to its low-stock threshold; none to a muted member."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import update

from bot.keys import SERVICES
from commerce.catalog.models import Variant
from tests.bot.admin.test_after_sales import ask_for_refund
from tests.bot.admin.test_orders import (
    CUSTOMER,
    OPERATOR,
    OWNER,
    SERVICE,
    open_staffed_shop,
    pay,
    place_order,
    texts,
    view,
)
from tests.bot.driver import Shop, db

# Who on duty hears what is checked, not the database: the rows alerts read run on both
# databases in the domain tests.
pytestmark = pytest.mark.sqlite_only

STAFF = (OWNER, OPERATOR, SERVICE)


@pytest.fixture
async def staffed(db_url: str, unused_tcp_port: int, aiohttp_client: Callable[..., Awaitable[TestClient]]) -> Shop:
    return await open_staffed_shop(db_url, unused_tcp_port, aiohttp_client)


def alerts(shop: Shop, openid: str) -> list[str]:
    return [t for t in texts(shop, openid) if t.startswith("🔔")]


async def drain(shop: Shop) -> None:
    await shop.client.app[SERVICES].alerts.drain()


async def test_a_paid_order_alerts_the_managers_who_have_not_muted(staffed: Shop) -> None:
    assert "已关闭员工提醒" in (await staffed.user(OWNER).say("/mute")).text
    order_no = await place_order(staffed, staffed.user(CUSTOMER))
    paid = await pay(staffed, order_no)  # waits for the payment's side effects, the alert among them

    (alert,) = alerts(staffed, OPERATOR)
    assert f"新订单已付款：{order_no} ¥{paid.paid_fen / 100:.2f}（顾客…mer_77）" in alert
    assert "香蕉 ×2" in alert and f"/ship {order_no}" in alert
    assert CUSTOMER not in alert  # only the tail of the openid
    assert alerts(staffed, OWNER) == []  # muted
    assert alerts(staffed, SERVICE) == []  # shipping is for owners and operators

    await staffed.user(OWNER).say("/unmute")
    second = await place_order(staffed, staffed.user("o_customer_88"))
    await pay(staffed, second)
    assert [second in a for a in alerts(staffed, OWNER)] == [True]
    assert len(alerts(staffed, OPERATOR)) == 2


async def test_an_after_sales_request_alerts_everyone_on_duty(staffed: Shop) -> None:
    await staffed.user(SERVICE).say("/静音")
    order_no, request_id = await ask_for_refund(staffed, staffed.user(CUSTOMER), "退货 颜色和图片不一样")
    await drain(staffed)
    for openid in (OWNER, OPERATOR):
        request_alerts = [a for a in alerts(staffed, openid) if "申请" in a]
        assert len(request_alerts) == 1, openid
        assert f"新的退货申请：订单 {order_no}（已支付" in request_alerts[0]
        assert "颜色和图片不一样" in request_alerts[0] and f"/approve {request_id}" in request_alerts[0]
    assert alerts(staffed, SERVICE) == []


async def test_asking_for_a_human_alerts_staff_with_the_cart_and_last_order(staffed: Shop) -> None:
    customer = staffed.user(CUSTOMER)
    order_no = await place_order(staffed, customer)
    await staffed.user(SERVICE).say("help")  # an English speaker: alerts come in English
    await customer.say("香蕉")
    await customer.say("1")
    await customer.say("加入购物车 3")

    assert "人工客服" in (await customer.say("转人工")).text
    await drain(staffed)
    (zh,) = alerts(staffed, OWNER)
    assert "顾客…mer_77 请求人工客服（「转人工」）" in zh
    assert "购物车（¥38.70）" in zh and "香蕉 ×3" in zh
    assert f"最近订单：{order_no} 待支付" in zh and f"/order {order_no}" in zh
    (en,) = alerts(staffed, SERVICE)
    assert "Customer …mer_77 asks for a human" in en and "Cart (¥38.70)" in en and "awaiting payment" in en
    assert len(alerts(staffed, OPERATOR)) == 1


async def test_low_stock_is_told_once_when_an_order_takes_a_variant_across_its_threshold(staffed: Shop) -> None:
    async with db(staffed.client.app)() as session, session.begin():
        await session.execute(
            update(Variant).where(Variant.sku_code == "FRU-BANANA-3J").values(stock=6, low_stock_threshold=5)
        )
    first = await place_order(staffed, staffed.user(CUSTOMER), quantity=2)
    await drain(staffed)
    for openid in (OWNER, OPERATOR):
        (alert,) = alerts(staffed, openid)
        assert f"库存偏低（订单 {first} 之后）" in alert
        assert "香蕉 剩 4 件（提醒线 5）SKU FRU-BANANA-3J" in alert
    assert alerts(staffed, SERVICE) == []

    await place_order(staffed, staffed.user("o_customer_88"), quantity=1)  # 3 left: already told
    await drain(staffed)
    assert [len(alerts(staffed, openid)) for openid in STAFF] == [1, 1, 0]
    assert (await view(staffed, first)).item_count == 2

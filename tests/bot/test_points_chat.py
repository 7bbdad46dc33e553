"""Points in chat: offered and used at checkout by default, toggled, earned on payment, reversed on refund."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from bot.keys import SERVICES
from commerce.customers.models import Customer
from commerce.loyalty import points
from commerce.orders.models import Order
from tests.bot.admin.test_orders import (
    CUSTOMER,
    OWNER,
    confirm_code,
    pay,
    settle_refunds,
    staffed,  # noqa: F401 (the fixture)
    texts,
    view,
)
from tests.bot.driver import Shop, db
from tests.bot.test_shopping_chat import _open

GIVEN = 1000


async def _give_points(shop: Shop, openid: str, n: int) -> int:
    async with db(shop.client.app)() as session, session.begin():
        customer_id = await session.scalar(select(Customer.id).where(Customer.openid == openid))
        assert customer_id is not None
        await points.award(
            session,
            customer_id=customer_id,
            points=n,
            reason="gift",
            ref="test",
            now=datetime.now(UTC),
        )
    return customer_id


async def _balance(shop: Shop, customer_id: int) -> int:
    async with db(shop.client.app)() as session:
        return await points.balance(session, customer_id)


async def test_checkout_with_points_pay_less_then_a_partial_refund_squares_the_points(
    staffed: Shop,  # noqa: F811
) -> None:
    customer = staffed.user(CUSTOMER)
    rules = staffed.client.app[SERVICES].rules
    await _open(customer, "香蕉", "香蕉")
    await customer.say("加入购物车 3")
    customer_id = await _give_points(staffed, CUSTOMER, GIVEN)

    await customer.say("结算")
    await customer.say("张三 13800138000 上海市浦东新区世纪大道100号")
    review = await customer.say("确认")
    assert "积分：用 " in review.text and f"现有 {GIVEN}" in review.text  # used by default

    kept = await customer.say("不用积分")
    assert f"积分：现有 {GIVEN}，可用" in kept.text and "回复「用积分」使用" in kept.text
    used = await customer.say("use points")
    assert "积分：用 " in used.text

    card = await customer.say("确认")
    assert card.kind == "news", card
    order_no = card.articles[0].description.split("订单号 ")[1].split()[0]
    placed = await view(staffed, order_no)
    async with db(staffed.client.app)() as session:
        spent = await session.scalar(select(Order.points_used).where(Order.order_no == order_no))
    assert spent and placed.points_fen > 0
    assert placed.payable_fen == placed.goods_fen + placed.delivery_fen - placed.points_fen
    assert f"用 {spent} 积分 -¥{placed.points_fen / 100:.2f}" in used.text
    assert await _balance(staffed, customer_id) == GIVEN - spent

    paid = await pay(staffed, order_no)  # the sandbox charges the reduced total
    assert paid.paid_fen == placed.payable_fen
    earned = paid.paid_fen // 100 * rules.points_per_yuan
    assert await _balance(staffed, customer_id) == GIVEN - spent + earned
    told = [t for t in texts(staffed, CUSTOMER) if "支付成功" in t]
    assert len(told) == 1 and f"本单获得 {earned} 积分" in told[0] and "首单达成" in told[0]

    owner = staffed.user(OWNER)
    ask = await owner.say(f"/refund {order_no} 5")
    assert "确认码" in ask.text
    assert "发起退款" in (await owner.say(confirm_code(ask.text))).text
    await settle_refunds(staffed)
    assert (await view(staffed, order_no)).refunded_fen == 500
    back = spent * 500 // paid.paid_fen
    reversed_ = earned * 500 // paid.paid_fen
    assert await _balance(staffed, customer_id) == GIVEN - spent + earned - reversed_ + back

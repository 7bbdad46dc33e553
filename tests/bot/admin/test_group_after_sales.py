"""After-sales on a seat of a group that has not filled: an approval that could not move the
money is refused before anything is decided or told, and every decision shows on the
order, for staff (`/order`) and for the customer (`订单`); through the real app on SQLite."""

from __future__ import annotations

from sqlalchemy import select

from commerce.groupbuys.models import GroupBuy
from commerce.orders.models import AfterSalesRequest, OrderStatus
from tests.bot.admin.test_orders import texts, view
from tests.bot.admin.test_shipping import _group_seat
from tests.bot.conftest import OWNER
from tests.bot.driver import Shop, db
from tests.bot.test_group_chat import LEADER


async def _request(shop: Shop) -> AfterSalesRequest:
    async with db(shop.client.app)() as session:
        request = await session.scalar(select(AfterSalesRequest))
    assert request is not None
    return request


async def test_approving_a_return_on_a_waiting_seat_is_refused_before_the_customer_hears_anything(
    sqlite_staffed: Shop,
) -> None:
    shop = sqlite_staffed
    seat = await _group_seat(shop)
    leader, owner = shop.user(LEADER), shop.user(OWNER)
    await leader.say("订单")
    await leader.say("1")
    asked = (await leader.say("退货 不想要了")).text
    assert "已收到订单" in asked and "成团前不能单独退款：拼团失败会自动全额退款" in asked, asked
    request = await _request(shop)
    heard = len(texts(shop, LEADER))

    refused = await owner.say(f"/approve {request.id}")
    assert "团还没成，现在不能单独退款" in refused.text and "（拼团进度 1/3）" in refused.text, refused.text
    assert "确认" not in refused.text  # refused before the confirmation is even asked
    assert (await _request(shop)).status == "open"
    assert f"#{request.id}" in (await owner.say("/aftersales")).text
    order = await view(shop, seat)
    assert (order.status, order.refunded_fen) == (OrderStatus.PAID, 0)
    async with db(shop.client.app)() as session:
        assert await session.scalar(select(GroupBuy.paid_count)) == 1
    assert texts(shop, LEADER)[heard:] == []  # nothing approved, nothing told

    staff_view = (await owner.say(f"/order {seat}")).text
    assert f"售后：\n#{request.id} 退货（不想要了）：待处理" in staff_view, staff_view
    await leader.say("订单")
    assert "退货申请：商家处理中" in (await leader.say("1")).text

    assert "已拒绝" in (await owner.say(f"/reject {request.id} 拼团成团后再发货，可以收到货后再申请")).text
    assert f"#{request.id} 退货（不想要了）：已拒绝：拼团成团后再发货" in (await owner.say(f"/order {seat}")).text
    await leader.say("订单")
    assert "退货申请：未通过（拼团成团后再发货，可以收到货后再申请）" in (await leader.say("1")).text

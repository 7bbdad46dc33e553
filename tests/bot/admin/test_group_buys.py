"""Group-buy commands through the real app: a campaign by command, /groups, /group CODE,
extend, and close (confirmed) refunding the paid leader once through the payment service.

The shop listens on a real port so the sandbox's refund notifications come back over HTTP.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from commerce.groupbuys.models import GroupBuy, GroupCampaign
from commerce.orders.models import Order, OrderStatus
from tests.bot.admin.test_orders import (
    OPERATOR,
    OWNER,
    SERVICE,
    STRANGER,
    audit_rows,
    open_staffed_shop,
    pay,
    refunds,
    settle_refunds,
    texts,
)
from tests.bot.driver import Shop, db
from tests.bot.test_group_chat import _order_no, _with_address

pytestmark = pytest.mark.sqlite_only  # staff commands through the chat: their use cases run on both databases in tests/commerce

LEADER = "o_group_lead_1"


@pytest.fixture
async def staffed(
    db_url: str, unused_tcp_port: int, aiohttp_client: Callable[..., Awaitable[TestClient]], demo_catalog: None
) -> Shop:
    """The shop on a real port (sandbox refunds notify it over HTTP), with its staff."""
    return await open_staffed_shop(db_url, unused_tcp_port, aiohttp_client)


async def _group(shop: Shop) -> GroupBuy:
    async with db(shop.client.app)() as session:
        group = await session.scalar(select(GroupBuy).order_by(GroupBuy.id.desc()).limit(1))
        assert group is not None
        return group


async def test_campaign_by_command_then_list_extend_and_close_with_one_refund(
    staffed: Shop,
) -> None:
    shop = staffed
    owner, operator, service = shop.user(OWNER), shop.user(OPERATOR), shop.user(SERVICE)
    created = await owner.say("/campaign new FRU-APPLE-3J 19.9 3 hours 24 days 3")
    assert "已新建拼团活动" in created.text and "¥19.90" in created.text, created.text
    assert "3 人成团" in created.text and "每团 24 小时" in created.text
    assert "#" in (await operator.say("/campaign list")).text
    assert "参数不对" in (await owner.say("/campaign new FRU-APPLE-3J 19.9 3 hours")).text
    assert "拼团价要大于 0 且低于原价" in (await owner.say("/campaign new FRU-APPLE-3J 999 3")).text
    assert "不能使用 /campaign" in (await service.say("/campaign list")).text

    leader = shop.user(LEADER)
    await _with_address(shop, leader)
    assert "¥19.90" in (await leader.say("拼团")).text
    paid = await pay(shop, _order_no(await leader.say("1")))
    group = await _group(shop)
    code, deadline = group.code, group.deadline

    listing = (await service.say("/groups")).text
    assert (
        code in listing and "烟台红富士苹果" in listing and "1/3" in listing and "截止" in listing
    )
    assert code not in (await service.say("/groups filled")).text
    detail = (await service.say(f"/group {code.lower()}")).text
    assert f"拼团 {code}（拼团中）" in detail and "（团长） 已付款" in detail

    extended = await operator.say(f"/group {code} extend 2")
    assert "已延长 2 小时" in extended.text, extended.text
    later = await _group(shop)
    assert deadline is not None and later.deadline is not None
    assert (later.deadline - deadline).total_seconds() == 2 * 3600

    refused = await service.say(f"/group {code} close")
    assert "不能使用 /group close" in refused.text
    assert (await _group(shop)).status == "open"

    ask = await owner.say(f"/group {code} close")
    assert "将关闭拼团" in ask.text and "1 位已付款成员" in ask.text and "¥19.90" in ask.text, (
        ask.text
    )
    done = await owner.say("确认")
    assert f"拼团 {code} 已关闭" in done.text and "已为 1 位成员发起退款" in done.text, done.text
    await settle_refunds(shop)
    assert "这个团已经关闭了" in (await owner.say(f"/group {code} close")).text

    (refund,) = await refunds(shop)
    assert refund.order_id == paid.id and refund.amount_fen == paid.paid_fen
    async with db(shop.client.app)() as session:
        order = await session.get(Order, paid.id)
        assert order is not None and order.status == OrderStatus.REFUNDED
    told = texts(shop, LEADER)
    assert sum("已关闭" in t and "原路退回" in t for t in told) == 1, told

    outcomes = [(e.actor, e.command, e.outcome) for e in await audit_rows(shop)]
    assert (OWNER, "campaign", "ok") in outcomes and (OPERATOR, "group", "ok") in outcomes
    assert (SERVICE, "group", "refused") in outcomes and (OWNER, "group", "failed") in outcomes
    closes = [e for e in await audit_rows(shop, "group") if e.actor == OWNER and e.outcome == "ok"]
    assert (
        len(closes) == 1
        and closes[0].after["status"] == "closed"
        and closes[0].after["refunds"] == 1
    )

    async with db(shop.client.app)() as session:
        campaign_id = await session.scalar(select(GroupCampaign.id))
    assert "已关闭" in (await owner.say(f"/campaign close {campaign_id}")).text
    async with db(shop.client.app)() as session:
        assert await session.scalar(select(GroupCampaign.status)) == "closed"


async def test_a_stranger_hears_nothing_of_group_commands(staffed: Shop) -> None:
    stranger = staffed.user(STRANGER)
    groups = (await stranger.say("/groups")).text
    unknown = (await stranger.say("/qqzzx")).text
    assert groups.replace("groups", "WORD") == unknown.replace("qqzzx", "WORD")
    assert "拼团" not in (await stranger.say("/group ABCDEF close")).text
    assert [e.outcome for e in await audit_rows(staffed, "groups")] == ["refused"]


async def test_closing_a_group_tells_the_friend_whose_seat_was_unpaid(staffed: Shop) -> None:
    """The unpaid seat's order is cancelled with the group, and its holder is told so."""
    shop = staffed
    owner = shop.user(OWNER)
    assert "已新建拼团活动" in (await owner.say("/campaign new FRU-APPLE-3J 19.9 3")).text
    leader, friend = shop.user(LEADER), shop.user("o_group_friend")
    for user in (leader, friend):
        await _with_address(shop, user)
    await leader.say("拼团")
    await pay(shop, _order_no(await leader.say("1")))
    code = (await _group(shop)).code
    await friend.say(f"参团 {code}")
    _order_no(await friend.say("参团"))  # a seat, not paid

    await owner.say(f"/group {code} close")
    await owner.say("确认")
    await settle_refunds(shop)

    told = texts(shop, "o_group_friend")
    assert sum("已关闭" in t and "未支付订单已取消" in t for t in told) == 1, told

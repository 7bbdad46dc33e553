"""Issue 6's done-when, as customers and staff live it in the chat, through the real app.

Customer A starts a 3-person group and pays; B, a new follower, scans A's invite (one
welcome reply: bound to A as a referral, the new-customer coupon, the group's card) and
joins; C types A's code and joins; both pay and all three are told the group filled. A
second group expires with two paid members: the scheduler refunds them (once, even when
it runs twice) and tells them. B's later ordinary order earns A a frozen commission that
"我的" shows with its date, freed by the scheduler after completion and the return window.

The shop listens on a real port so the sandbox's refund notifications come back over HTTP.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import timedelta

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.keys import JOBS
from bot.wechat.scenes import GroupInvite
from commerce.customers.models import Customer
from commerce.groupbuys.models import GroupBuy, GroupStatus
from commerce.orders.models import Order, OrderStatus
from commerce.promotions.models import CustomerCoupon
from commerce.referrals.models import Commission, CommissionStatus
from commerce.rules import utcnow
from scheduler.runner import run_job
from tests.bot.admin.test_orders import (
    OWNER,
    open_staffed_shop,
    pay,
    place_order,
    settle_refunds,
    texts,
)
from tests.bot.driver import ChatUser, Shop, db
from tests.bot.test_group_chat import _order_no

A, B, C = "o_journey_aa", "o_journey_bb", "o_journey_cc"
D, E = "o_journey_dd", "o_journey_ee"
ADDRESS = "李四 13900139000 北京市朝阳区建国路88号"


async def _customer(shop: Shop, openid: str) -> Customer:
    async with db(shop.client.app)() as session:
        found = await session.scalar(select(Customer).where(Customer.openid == openid))
        assert found is not None, openid
        return found


async def _group_of(shop: Shop, leader: str) -> GroupBuy:
    leader_id = (await _customer(shop, leader)).id
    async with db(shop.client.app)() as session:
        group = await session.scalar(select(GroupBuy).where(GroupBuy.leader_id == leader_id))
        assert group is not None
        return group


async def _join_with_new_address(user: ChatUser) -> str:
    """"参团" from the group's card; a newcomer is asked for the address first."""
    asked = await user.say("参团")
    assert "请发送收货信息" in asked.text, asked.text
    assert "请确认收货信息" in (await user.say(ADDRESS)).text
    return _order_no(await user.say("确认"))


async def _start_group(shop: Shop, user: ChatUser) -> str:
    await user.event("subscribe")
    listing = await user.say("拼团")
    assert "¥19.90" in listing.text, listing.text
    assert "请发送收货信息" in (await user.say("1")).text
    await user.say(ADDRESS)
    order_no = _order_no(await user.say("确认"))
    await pay(shop, order_no)
    return order_no


async def test_the_group_the_referral_and_the_commission(
    db_url: str, unused_tcp_port: int, aiohttp_client: Callable[..., Awaitable[TestClient]]
) -> None:
    shop = await open_staffed_shop(
        db_url,
        unused_tcp_port,
        aiohttp_client,
        shop={"new_customer_coupon": "WELCOME"},
        referral={"commission_rate_bp": 1000},
    )
    owner = shop.user(OWNER)
    assert "WELCOME" in (await owner.say("/coupon new WELCOME off 5 over 50 days 30 title 见面礼")).text
    created = await owner.say("/campaign new FRU-APPLE-3J 19.9 3 hours 24 days 7")
    assert "已新建拼团活动" in created.text, created.text

    # A starts a 3-person group and pays; the invite (code and page) reaches A
    a, b, c = shop.user(A), shop.user(B), shop.user(C)
    await _start_group(shop, a)
    group = await _group_of(shop, A)
    code = group.code
    assert group.status == GroupStatus.OPEN
    [invite] = [m.articles[0] for m in shop.outbox.for_user(A) if m.kind == "news"]
    assert invite.url.endswith(f"/g/{code}") and code in invite.description  # a card to forward

    # B follows through A's invite: bound to A, the coupon, the group's card, in one reply
    welcome = await b.event("subscribe", key=f"qrscene_{GroupInvite(code).pack()}", Ticket="t")
    assert "欢迎关注" in welcome.text and "好友邀请" in welcome.text, welcome.text
    assert "新人券「见面礼」" in welcome.text and code in welcome.text and "1/3" in welcome.text
    alice, bob = await _customer(shop, A), await _customer(shop, B)
    assert bob.referrer_id == alice.id
    async with db(shop.client.app)() as session:
        held = await session.scalar(select(CustomerCoupon).where(CustomerCoupon.customer_id == bob.id))
    assert held is not None
    b_order = await _join_with_new_address(b)

    # C follows without a scene (no referrer) and types A's code
    await c.event("subscribe")
    assert code in (await c.say(code)).text
    c_order = await _join_with_new_address(c)
    assert (await _customer(shop, C)).referrer_id is None

    await pay(shop, b_order)
    await pay(shop, c_order)
    assert (await _group_of(shop, A)).status == GroupStatus.FILLED
    for openid in (A, B, C):
        assert sum("已满员" in text for text in texts(shop, openid)) == 1, texts(shop, openid)

    # a second group expires with two paid members: refunded once and told
    d, e = shop.user(D), shop.user(E)
    await _start_group(shop, d)
    second = await _group_of(shop, D)
    await e.event("subscribe", key=f"qrscene_{GroupInvite(second.code).pack()}", Ticket="t")
    await pay(shop, await _join_with_new_address(e))
    jobs = shop.client.app[JOBS]
    assert second.deadline is not None
    after = dataclasses.replace(jobs, clock=lambda: second.deadline + timedelta(minutes=1))
    assert await run_job("expire_group_buys", after) >= 1
    await run_job("expire_group_buys", after)  # a second run refunds nothing twice
    await settle_refunds(shop)
    async with db(shop.client.app)() as session:
        statuses = (await session.scalars(select(Order.status).where(Order.group_id == second.id))).all()
        refunds = (await session.scalars(select(Order.refunded_fen).where(Order.group_id == second.id))).all()
    assert sorted(statuses) == [OrderStatus.REFUNDED, OrderStatus.REFUNDED]
    assert all(amount > 0 for amount in refunds)
    for openid in (D, E):
        told = texts(shop, openid)
        assert sum("未成团" in text for text in told) == 1, told
        assert sum("退款" in text for text in told) >= 1, told

    # B's later ordinary order earns A a frozen commission; freed after completion + the return window
    ordinary = await place_order(shop, b)
    paid = await pay(shop, ordinary)
    expected = (paid.paid_fen - paid.delivery_fen) * 1000 // 10000
    assert expected > 0
    async with db(shop.client.app)() as session:
        earned = await session.scalar(select(Commission).where(Commission.order_id == paid.id))
    assert earned is not None and (earned.amount_fen, earned.status) == (expected, CommissionStatus.FROZEN)
    me = await a.say("我的")
    assert f"冻结中佣金：¥{expected / 100:.2f}" in me.text, me.text

    assert "已发货" in (await owner.say(f"/ship {ordinary} SF SF1234567")).text
    await b.say("订单")
    await b.say("1")
    assert "确认收货" in (await b.say("确认收货")).text
    not_yet = dataclasses.replace(jobs, clock=lambda: utcnow() + timedelta(days=6))
    assert await run_job("unfreeze_commission", not_yet) == 0
    freed = dataclasses.replace(jobs, clock=lambda: utcnow() + timedelta(days=8))
    assert await run_job("unfreeze_commission", freed) == 1
    assert await run_job("unfreeze_commission", freed) == 0
    assert f"可提现：¥{expected / 100:.2f}" in (await a.say("我的")).text

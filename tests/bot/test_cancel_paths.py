"""Cancelling an unpaid order is one use case (`commerce.orders.actions`): from the
customer's chat, from the staff command `/cancel` and from the expiry job it has the same
effects. Each path cancels an order that holds stock, a coupon and points, and the test
compares what each left behind: the order's status, the stock in the database and in a
search (the catalog snapshot), the coupon, the points, the audit entry and the one
message the customer got, in the words that fit who cancelled.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from bot.keys import DELIVERY, JOBS, PAYMENTS
from commerce.catalog.models import Variant
from commerce.customers.models import Customer
from commerce.groupbuys import campaigns as group_campaigns
from commerce.groupbuys.models import GroupBuy
from commerce.loyalty import points
from commerce.orders.models import Order
from commerce.promotions import coupons
from commerce.promotions.models import CouponKind, CustomerCoupon
from commerce.rules import ShopRules, utcnow
from scheduler.runner import run_job
from tests.bot.admin.test_orders import (
    OPERATOR,
    audit_rows,
    pay,
    staffed,  # noqa: F401 (the fixture)
    texts,
    view,
)
from tests.bot.driver import ChatUser, Shop, db
from tests.bot.test_group_chat import _order_no, _with_address
from tests.bot.test_shopping_chat import _open, _sku, _stock

STOCK = 5
BOUGHT = 3
POINTS = 1000
COUPON = "BACK1"
# what the customer reads, by who cancelled (templates order_cancelled, _by_shop, order_expired)
WORDS = {"chat": "已取消，库存已释放", "staff": "已被商家取消", "timeout": "超时未支付"}


async def _prepare(shop: Shop, user: ChatUser, banana: str) -> None:
    """The customer exists, holds a coupon and points; the banana has STOCK left."""
    await user.say("你好")
    async with db(shop.client.app)() as session, session.begin():
        await session.execute(update(Variant).where(Variant.sku_code == banana).values(stock=STOCK))
        customer_id = await session.scalar(select(Customer.id).where(Customer.openid == user.openid))
        assert customer_id is not None
        await coupons.issue_coupon(session, code=COUPON, openid=user.openid)
        await points.award(
            session, customer_id=customer_id, points=POINTS, reason="gift", ref="test", now=datetime.now(UTC)
        )


async def _place(user: ChatUser) -> str:
    await _open(user, "香蕉", "香蕉")
    await user.say(f"加入购物车 {BOUGHT}")
    await user.say("结算")
    await user.say("张三 13800138000 上海市浦东新区世纪大道100号")
    review = await user.say("确认")
    assert "积分：用 " in review.text and "-¥1.00" in review.text, review.text  # points and coupon used
    card = await user.say("确认")
    assert card.kind == "news", card
    return card.articles[0].description.split("订单号 ")[1].split()[0]


async def _banana_in_search(user: ChatUser) -> str:
    """How the banana's stock reads in a search (the catalog snapshot, not the database)."""
    line = next(line for line in (await user.say("香蕉")).text.splitlines() if "香蕉" in line and "¥" in line)
    found = re.search(r"（(.+?)）$", line.strip())
    assert found is not None, line
    return found.group(1)


async def _held(shop: Shop, user: ChatUser) -> dict[str, Any]:
    """The customer's coupon and points, as the database keeps them."""
    async with db(shop.client.app)() as session:
        customer_id = await session.scalar(select(Customer.id).where(Customer.openid == user.openid))
        assert customer_id is not None
        coupon = await session.scalar(select(CustomerCoupon.status).where(CustomerCoupon.customer_id == customer_id))
        return {"coupon": coupon, "points": await points.balance(session, customer_id)}


async def _cancel(shop: Shop, path: str, user: ChatUser, order_no: str) -> list[str]:
    """Cancel the order by `path`; what the customer was told about it."""
    if path == "chat":
        await user.say("订单")
        assert (await user.say("1")).kind == "news"  # the unpaid order's pay card
        return [(await user.say("取消订单")).text] + texts(shop, user.openid)
    if path == "staff":
        staff = shop.user(OPERATOR)
        assert "确认码" in (await staff.say(f"/cancel {order_no}")).text
        assert "已通知顾客" in (await staff.say("确认")).text
        return texts(shop, user.openid)
    placed = await view(shop, order_no)
    later = placed.expires_at + timedelta(seconds=1)
    jobs = dataclasses.replace(shop.client.app[JOBS], clock=lambda: later)
    assert await run_job("expire_unpaid_orders", jobs) == 1
    await shop.client.app[DELIVERY].drain()  # the notices the job's transaction wrote: first attempt made
    return texts(shop, user.openid)


async def test_cancel_has_the_same_effects_from_the_chat_the_staff_and_the_clock(
    staffed: Shop,  # noqa: F811
) -> None:
    shop = staffed
    banana = await _sku(shop, "香蕉", "")
    async with db(shop.client.app)() as session, session.begin():
        await coupons.create_coupon(
            session, code=COUPON, title="退回测试", kind=CouponKind.AMOUNT_OFF, amount_off_fen=100
        )
    effects: dict[str, dict[str, Any]] = {}
    for number, path in enumerate(("chat", "staff", "timeout")):
        user = shop.user(f"o_cancel_{path}_{number}")
        await _prepare(shop, user, banana)
        before = await _held(shop, user)
        order_no = await _place(user)
        assert await _stock(shop, banana) == STOCK - BOUGHT
        assert await _banana_in_search(user) == f"仅剩 {STOCK - BOUGHT} 件"
        assert await _held(shop, user) == {"coupon": "used", "points": 0}

        told = await _cancel(shop, path, user, order_no)

        order = await view(shop, order_no)
        async with db(shop.client.app)() as session:
            order_id = await session.scalar(select(Order.id).where(Order.order_no == order_no))
        (entry,) = [e for e in await audit_rows(shop, "order_cancel") if e.args["order_no"] == order_no]
        assert len(told) == 1, told  # one message, not a reply and a push
        (message,) = told
        assert order_no in message and WORDS[path] in message, message
        assert entry.after["status"] == "cancelled" and order_id is not None
        effects[path] = {
            "status": str(order.status),
            "stock": await _stock(shop, banana),
            "search": await _banana_in_search(user),
            "held": await _held(shop, user),
            "held_before": before,
            "audit": (entry.before["status"], entry.after["status"]),
            "events": [(e.from_status, e.to_status) for e in order.events],
        }

    expected = {
        "status": "cancelled",
        "stock": STOCK,
        "search": f"仅剩 {STOCK} 件",
        "held": {"coupon": "available", "points": POINTS},
        "held_before": {"coupon": "available", "points": POINTS},
    }
    for path, seen in effects.items():
        assert {k: seen[k] for k in expected} == expected, path
    assert effects["chat"]["audit"] == effects["staff"]["audit"] == effects["timeout"]["audit"]
    assert effects["chat"]["events"] == effects["staff"]["events"] == effects["timeout"]["events"]


async def test_a_failed_groups_unpaid_seat_is_cancelled_by_the_same_action(staffed: Shop) -> None:  # noqa: F811
    """A group that runs out of time cancels its unpaid seats through the same use case:
    the stock comes back and a search sees it, the order's history and the audit say so,
    and the member hears it once, in the group's words."""
    shop = staffed
    banana = await _sku(shop, "香蕉", "")
    leader, friend = shop.user("o_group_leader_1"), shop.user("o_group_friend_1")
    async with db(shop.client.app)() as session, session.begin():
        await session.execute(update(Variant).where(Variant.sku_code == banana).values(stock=STOCK))
        variant = await session.scalar(select(Variant).where(Variant.sku_code == banana))
        assert variant is not None
        await group_campaigns.create_campaign(
            session, variant_id=variant.id, group_price_fen=max(1, variant.price_fen // 2), group_size=3,
            starts_at=utcnow() - timedelta(hours=1), ends_at=utcnow() + timedelta(days=3), rules=ShopRules(),
        )
    for user in (leader, friend):
        await _with_address(shop, user)
    await leader.say("拼团")
    await pay(shop, _order_no(await leader.say("1")))
    async with db(shop.client.app)() as session:
        group = await session.scalar(select(GroupBuy))
        assert group is not None and group.deadline is not None
    await friend.say(f"参团 {group.code}")
    seat_no = _order_no(await friend.say("参团"))
    assert await _stock(shop, banana) == STOCK - 2
    assert await _banana_in_search(friend) == f"仅剩 {STOCK - 2} 件"
    before = len(texts(shop, friend.openid))

    after_deadline = group.deadline + timedelta(seconds=1)
    await run_job("expire_group_buys", dataclasses.replace(shop.client.app[JOBS], clock=lambda: after_deadline))
    await shop.client.app[PAYMENTS].drain()
    await shop.client.app[DELIVERY].drain()

    seat = await view(shop, seat_no)
    assert str(seat.status) == "cancelled" and seat.events[-1].note == "group_failed"
    # the seat's unit is back, in the database and in a search; the leader's comes back
    # too when its refund lands, which may be at any moment here
    assert await _stock(shop, banana) >= STOCK - 1
    assert await _banana_in_search(friend) in {f"仅剩 {STOCK - 1} 件", f"仅剩 {STOCK} 件"}
    (entry,) = [e for e in await audit_rows(shop, "order_cancel") if e.args["order_no"] == seat_no]
    assert entry.args["by"] == "group" and entry.after["status"] == "cancelled"
    (told,) = texts(shop, friend.openid)[before:]
    assert "未支付订单已取消" in told, told

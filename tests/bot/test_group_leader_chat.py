"""A group buy from the customer's side, beyond the journey: a paid seat of an unfilled
group shows "waiting for the group (1/3)" in the orders, and a leader alone withdraws
the group ("取消拼团"), paid (refunded once, through the payment service) or not.

The shop listens on a real port so the sandbox's refund notifications come back over HTTP.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from commerce.groupbuys.models import GroupBuy
from commerce.orders.models import Order, OrderStatus
from tests.bot.admin.test_orders import open_staffed_shop, pay, refunds, settle_refunds, view
from tests.bot.driver import Shop, db
from tests.bot.test_group_chat import _campaign, _order_no, _with_address

pytestmark = pytest.mark.sqlite_only  # what the test checks is the conversation, not the database

LEADER, FRIEND = "o_leader_0042", "o_friend_0042"


@pytest.fixture
async def shop(
    db_url: str, unused_tcp_port: int, aiohttp_client: Callable[..., Awaitable[TestClient]]
) -> Shop:
    return await open_staffed_shop(db_url, unused_tcp_port, aiohttp_client)


async def _group(shop: Shop) -> GroupBuy:
    async with db(shop.client.app)() as session:
        group = await session.scalar(select(GroupBuy).order_by(GroupBuy.id.desc()).limit(1))
        assert group is not None
        return group


async def _lead(shop: Shop) -> str:
    """A campaign for groups of 3; the leader starts a group: their order number."""
    await _campaign(shop)
    leader = shop.user(LEADER)
    await _with_address(shop, leader)
    await leader.say("拼团")
    return _order_no(await leader.say("1"))


async def test_a_paid_seat_waits_for_its_group_in_the_orders(shop: Shop) -> None:
    await pay(shop, await _lead(shop))
    leader = shop.user(LEADER)
    listing = (await leader.say("订单")).text
    assert "待成团 (1/3)" in listing and "已支付" not in listing, listing
    detail = (await leader.say("1")).text
    assert "待成团 (1/3)，成团后发货" in detail, detail
    english = (await leader.say("orders")).text
    assert "waiting for the group (1 of 3)" in english, english


async def test_a_leader_alone_withdraws_and_is_refunded_once(shop: Shop) -> None:
    paid = await pay(shop, await _lead(shop))
    leader = shop.user(LEADER)
    withdrawn = await leader.say("取消拼团")
    assert "已取消拼团" in withdrawn.text and "原路退回" in withdrawn.text, withdrawn.text
    await settle_refunds(shop)
    assert (await _group(shop)).status == "closed"
    (refund,) = await refunds(shop)
    assert refund.order_id == paid.id and refund.amount_fen == paid.paid_fen
    assert (await view(shop, paid.order_no)).status == OrderStatus.REFUNDED
    again = await leader.say("cancel group")
    assert "no group to cancel" in again.text, again.text
    assert len(await refunds(shop)) == 1


async def test_a_leader_cannot_withdraw_once_a_friend_joined(shop: Shop) -> None:
    await pay(shop, await _lead(shop))
    code = (await _group(shop)).code
    friend = shop.user(FRIEND)
    await _with_address(shop, friend)
    await friend.say(f"参团 {code}")
    _order_no(await friend.say("参团"))
    refused = await shop.user(LEADER).say(f"取消拼团 {code}")
    assert "已经有好友参团（2/3）" in refused.text, refused.text
    assert (await _group(shop)).status == "open" and await refunds(shop) == []
    assert "没有可以取消的拼团" in (await friend.say(f"取消拼团 {code}")).text  # not theirs


async def test_a_leader_who_has_not_paid_withdraws_by_cancelling_the_order(shop: Shop) -> None:
    order_no = await _lead(shop)
    withdrawn = await shop.user(LEADER).say("取消拼团")
    assert "未支付订单已取消" in withdrawn.text, withdrawn.text
    assert (await _group(shop)).status == "closed"
    async with db(shop.client.app)() as session:
        status = await session.scalar(select(Order.status).where(Order.order_no == order_no))
    assert status == OrderStatus.CANCELLED


async def test_the_product_card_offers_its_group_price_and_group_starts_it(shop: Shop) -> None:
    from commerce.catalog.models import Product, Variant
    from commerce.groupbuys import campaigns as group_campaigns
    from commerce.rules import ShopRules, utcnow
    from tests.bot.test_shopping_chat import _open

    async with db(shop.client.app)() as session:
        banana = await session.scalar(
            select(Variant).join(Product).where(Product.name == "香蕉").limit(1)
        )
        apple = await session.scalar(
            select(Variant).join(Product).where(Product.name == "烟台红富士苹果").limit(1)
        )
        assert banana is not None and apple is not None
        for variant, size in ((banana, 2), (apple, 3)):  # the apple's campaign is the newer
            await group_campaigns.create_campaign(
                session,
                variant_id=variant.id,
                group_price_fen=variant.price_fen - 1,
                group_size=size,
                starts_at=utcnow() - timedelta(hours=1),
                ends_at=utcnow() + timedelta(days=1),
                rules=ShopRules(),
            )
        await session.commit()
        banana_price = banana.price_fen - 1
    user = shop.user(LEADER)
    await _with_address(shop, user)
    card = await _open(user, "香蕉", "香蕉")
    description = card.articles[0].description
    assert f"2人团¥{banana_price / 100:.2f}" in description and "「拼团」开团" in description, description
    offered = (await user.say("拼团")).text
    assert "香蕉" in offered and "烟台红富士苹果" not in offered, offered
    order_no = _order_no(await user.say("1"))
    async with db(shop.client.app)() as session:
        order = await session.scalar(select(Order).where(Order.order_no == order_no))
        assert order is not None and order.group_id is not None
    everything = (await shop.user(FRIEND).say("拼团")).text
    assert "香蕉" in everything and "烟台红富士苹果" in everything

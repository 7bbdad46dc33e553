"""The group-buy jobs through the real app's JobContext: a reminder once before the
deadline, and a group that runs out of time failing once, its unpaid seat cancelled and
its two paid members refunded exactly once, even when the job runs twice."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.keys import JOBS, SERVICES
from commerce.groupbuys.models import GroupBuy
from commerce.orders.models import Order, OrderStatus
from scheduler.runner import run_job
from tests.bot.admin.test_orders import open_staffed_shop, pay, refunds, settle_refunds, texts
from tests.bot.driver import Shop, db
from tests.bot.test_group_chat import _campaign, _order_no, _with_address

LEADER, FRIEND, LATE = "o_job_leader1", "o_job_friend2", "o_job_unpaid3"


@pytest.fixture
async def shop(
    db_url: str, unused_tcp_port: int, aiohttp_client: Callable[..., Awaitable[TestClient]], demo_catalog: None
) -> Shop:
    return await open_staffed_shop(db_url, unused_tcp_port, aiohttp_client)


def _at(shop: Shop, when: datetime):  # type: ignore[no-untyped-def]
    return dataclasses.replace(shop.client.app[JOBS], clock=lambda: when)


async def _two_paid_one_unpaid(shop: Shop) -> tuple[GroupBuy, list[str], str]:
    """A group of 3: the leader and a friend paid, a third took a seat without paying."""
    await _campaign(shop)
    users = [shop.user(openid) for openid in (LEADER, FRIEND, LATE)]
    for user in users:
        await _with_address(shop, user)
    await users[0].say("拼团")
    paid = [_order_no(await users[0].say("1"))]
    await pay(shop, paid[0])
    async with db(shop.client.app)() as session:
        code = await session.scalar(select(GroupBuy.code))
    await users[1].say(f"参团 {code}")
    paid.append(_order_no(await users[1].say("参团")))
    await pay(shop, paid[1])
    await users[2].say(f"参团 {code}")
    unpaid = _order_no(await users[2].say("参团"))
    async with db(shop.client.app)() as session:
        group = await session.scalar(select(GroupBuy))
    assert group is not None and group.deadline is not None
    return group, paid, unpaid


async def _status(shop: Shop, order_no: str) -> str | None:
    async with db(shop.client.app)() as session:
        return await session.scalar(select(Order.status).where(Order.order_no == order_no))


async def test_members_are_reminded_once_before_the_deadline(shop: Shop) -> None:
    group, _paid, _unpaid = await _two_paid_one_unpaid(shop)
    assert group.deadline is not None
    assert await run_job("remind_group_buys", _at(shop, group.deadline - timedelta(hours=2))) == 0
    soon = group.deadline - timedelta(minutes=30)
    assert await run_job("remind_group_buys", _at(shop, soon)) == 1
    assert await run_job("remind_group_buys", _at(shop, soon)) == 0  # twice is harmless
    await shop.client.app[SERVICES].payments.drain()
    for openid in (LEADER, FRIEND):
        reminders = [t for t in texts(shop, openid) if "⏰" in t and "还差 1 人" in t]
        assert len(reminders) == 1, (openid, texts(shop, openid))


async def test_an_expired_group_refunds_its_paid_members_once(shop: Shop) -> None:
    group, paid, unpaid = await _two_paid_one_unpaid(shop)
    assert group.deadline is not None
    before = group.deadline - timedelta(minutes=1)
    assert await run_job("expire_group_buys", _at(shop, before)) == 0
    later = group.deadline + timedelta(minutes=1)
    assert await run_job("expire_group_buys", _at(shop, later)) == 2
    assert await run_job("expire_group_buys", _at(shop, later)) == 0  # twice refunds nothing twice
    await settle_refunds(shop)

    async with db(shop.client.app)() as session:
        assert await session.scalar(select(GroupBuy.status)) == "failed"
    assert sorted(r.order_id for r in await refunds(shop)) == sorted(
        [o.id for o in [await _order(shop, no) for no in paid]]
    )
    for order_no in paid:
        assert await _status(shop, order_no) == OrderStatus.REFUNDED
    assert await _status(shop, unpaid) == OrderStatus.CANCELLED
    for openid in (LEADER, FRIEND):
        failed = [t for t in texts(shop, openid) if "到时间未成团" in t and "原路退回" in t]
        assert len(failed) == 1, (openid, texts(shop, openid))
    assert any("未支付订单已取消" in t for t in texts(shop, LATE))


async def _order(shop: Shop, order_no: str) -> Order:
    async with db(shop.client.app)() as session:
        order = await session.scalar(select(Order).where(Order.order_no == order_no))
        assert order is not None
        return order

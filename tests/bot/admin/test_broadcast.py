"""Broadcast through the real app: restated with the 48-hour audience, confirmed, sent in
the background, throttled, and the owner told how many it reached."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import update

from bot.keys import JOBS, SERVICES
from commerce.customers.models import Customer
from scheduler.runner import run_job
from tests.bot.admin.test_orders import (
    OPERATOR,
    OWNER,
    STRANGER,
    audit_rows,
    expire_confirmation,
    open_staffed_shop,
    texts,
)
from tests.bot.driver import Shop, db
from tests.bot.world import WorldFactory

pytestmark = pytest.mark.sqlite_only  # staff commands through the chat: their use cases run on both databases in tests/commerce

FANS = ("o_fan_000001", "o_fan_000002", "o_fan_000003")
LAPSED = "o_lapsed_0001"
MESSAGE = "新品上架！\n全场 8 折，仅限今天"


@pytest.fixture
async def staffed(db_url: str, unused_tcp_port: int, aiohttp_client: Callable[..., Awaitable[TestClient]]) -> Shop:
    return await open_staffed_shop(db_url, unused_tcp_port, aiohttp_client)


async def _audience(shop: Shop) -> None:
    """Three customers who wrote just now, one whose 48 hours ran out."""
    for openid in (*FANS, LAPSED):
        await shop.user(openid).say("你好")
    async with db(shop.client.app)() as session, session.begin():
        await session.execute(
            update(Customer).where(Customer.openid == LAPSED)
            .values(last_message_at=datetime.now(UTC) - timedelta(days=3))
        )


async def test_broadcast_reaches_the_48_hour_window_after_confirmation(staffed: Shop) -> None:
    await _audience(staffed)
    owner = staffed.user(OWNER)
    reachable = len(FANS) + 1  # the owner wrote too: staff see what customers see

    ask = await owner.say(f"/群发 {MESSAGE}")
    assert f"将群发以下内容给 {reachable} 位顾客" in ask.text and MESSAGE in ask.text and "确认码" in ask.text
    assert all(texts(staffed, fan) == [] for fan in FANS)

    started = await owner.say("确认")
    assert f"正在群发给 {reachable} 位顾客" in started.text
    await staffed.client.app[SERVICES].broadcasts.drain()
    for fan in FANS:
        assert texts(staffed, fan) == [MESSAGE]  # line breaks and all
    assert texts(staffed, LAPSED) == []
    assert texts(staffed, OWNER)[-1].startswith("📣 群发「新品上架！")
    assert f"已完成：共 {reachable} 位，已发出 {reachable}。" in texts(staffed, OWNER)[-1]

    (entry,) = await audit_rows(staffed, "broadcast")
    assert (entry.actor, entry.outcome, entry.args) == (OWNER, "ok", [MESSAGE])
    assert entry.after == {"recipients": reachable, "chars": len(MESSAGE)}


async def test_broadcast_is_for_owners_and_can_be_called_off(staffed: Shop) -> None:
    await _audience(staffed)
    owner = staffed.user(OWNER)
    assert "不能使用 /broadcast" in (await staffed.user(OPERATOR).say(f"/broadcast {MESSAGE}")).text
    stranger = await staffed.user(STRANGER).say("/broadcast 中奖了")
    assert "确认码" not in stranger.text and "群发" not in stranger.text

    await owner.say("/broadcast 今晚八点直播")
    assert "已取消，/broadcast 没有执行" in (await owner.say("不发了")).text
    await owner.say("/broadcast 今晚八点直播")
    await expire_confirmation(staffed, OWNER)
    assert "确认已超时" in (await owner.say("确认")).text
    assert "参数不对" in (await owner.say("/broadcast")).text
    assert "参数不对" in (await owner.say("/broadcast " + "长" * 601)).text

    await staffed.client.app[SERVICES].broadcasts.drain()
    assert all(texts(staffed, fan) == [] for fan in FANS)
    outcomes = [(e.actor, e.outcome) for e in await audit_rows(staffed, "broadcast")]
    assert outcomes == [(OPERATOR, "refused"), (STRANGER, "refused"), (OWNER, "cancelled"), (OWNER, "expired")]


async def test_nobody_in_the_window_means_nothing_to_confirm(staffed: Shop) -> None:
    async with db(staffed.client.app)() as session, session.begin():
        await session.execute(update(Customer).values(subscribed=False))
    reply = await staffed.user(OWNER).say("/broadcast 有人吗")
    assert "没有可以接收群发的顾客" in reply.text and "确认码" not in reply.text
    (entry,) = await audit_rows(staffed, "broadcast")
    assert entry.outcome == "failed" and entry.after == {"recipients": 0}


async def test_the_report_counts_sent_waiting_and_failed_and_comes_again_when_the_waiting_are_done(
    make_world: WorldFactory, sqlite_url: str
) -> None:
    """One run once reported "已送达 5/5" with nothing sent: the report is counted from the
    outbox rows, as WeChat answered them."""
    world = await make_world(sqlite_url, staff={"owners": [OWNER]}, broadcast={"max_age_hours": 1})
    owner = world.shop.user(OWNER)
    fans = ("o_bc_sent_1", "o_bc_sent_2", "o_bc_gone_3", "o_bc_wait_4", "o_bc_late_5")
    for openid in fans:
        await world.shop.user(openid).say("你好")
    world.wechat.refuse("o_bc_gone_3", 43004)  # unfollowed meanwhile
    world.wechat.refuse("o_bc_wait_4", 45015)  # WeChat says the window is closed
    world.wechat.refuse("o_bc_late_5", 45015)
    await owner.say("/broadcast 今晚八点直播")
    assert "正在群发给 6 位顾客" in (await owner.say("确认")).text
    services = world.shop.client.app[SERVICES]
    await services.broadcasts.drain()
    await world.settle()
    (first,) = [m["text"]["content"] for m in world.delivered_to(OWNER) if "📣" in m["text"]["content"]]
    assert "第一轮结束：共 6 位，已发出 3，等待中 2，失败 1。" in first  # the owner counts as one of the 6

    world.wechat.refusals.pop("o_bc_wait_4")
    world.forget_touch("o_bc_wait_4")
    await world.shop.user("o_bc_wait_4").say("在吗")  # the window opens again: the waiting one goes out
    await world.make_due()
    await world.deliver_job()
    await world.settle()
    assert [m["text"]["content"] for m in world.delivered_to("o_bc_wait_4")][-1] == "今晚八点直播"
    jobs = world.shop.client.app[JOBS]
    assert await run_job("settle_broadcasts", jobs) == 0  # one still waits

    later = dataclasses.replace(jobs, clock=lambda: datetime.now(UTC) + timedelta(hours=2))
    assert await run_job("settle_broadcasts", later) == 1  # too old: failed, not sent stale
    await world.settle()
    world.wechat.refusals.pop("o_bc_late_5")
    world.forget_touch("o_bc_late_5")
    await world.shop.user("o_bc_late_5").say("在吗")
    await world.make_due()
    await world.deliver_job()
    await world.settle()
    assert [m for m in world.delivered_to("o_bc_late_5") if "直播" in m["text"]["content"]] == []
    reports = [m["text"]["content"] for m in world.delivered_to(OWNER) if "📣" in m["text"]["content"]]
    assert len(reports) == 2 and "最终结果：共 6 位，已发出 4，失败 2。" in reports[-1]
    assert await run_job("settle_broadcasts", later) == 0  # told once

"""The service inbox through the real app and a fake WeChat server: a customer asks for a
person, staff get the ticket with what was said before, answer it from the chat with
/reply (a customer-service message WeChat records), the customer's next words reach staff
and not the shop, /close ends it and the customer shops again; strangers are refused."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from bot.keys import JOBS
from commerce.customers.models import Handoff, HandoffMessage
from scheduler.jobs import close_idle_tickets
from tests.bot.conftest import OWNER, STRANGER
from tests.bot.driver import db
from tests.bot.world import World, WorldFactory

CUSTOMER = "o_inbox_cust1"


def texts(world: World, openid: str) -> list[str]:
    return [m["text"]["content"] for m in world.delivered_to(openid) if m.get("msgtype") == "text"]


async def open_ticket(world: World) -> int:
    async with db(world.shop.client.app)() as session:
        ticket = await session.scalar(select(Handoff).where(Handoff.status == "open"))
    assert ticket is not None
    return ticket.id


async def test_a_customer_is_answered_from_the_shop_and_shops_again(make_world: WorldFactory, sqlite_url: str) -> None:
    world = await make_world(sqlite_url, staff={"owners": [OWNER]})
    owner, customer, stranger = (world.shop.user(o) for o in (OWNER, CUSTOMER, STRANGER))
    await owner.say("/help")  # the owner's window is open: alerts go as customer-service messages
    assert "苹果" in (await customer.say("苹果")).text

    opened = await customer.say("人工")
    assert opened.kind == "text" and "人工客服" in opened.text and "结束人工" in opened.text
    number = await open_ticket(world)
    await world.settle()
    (alert,) = [t for t in texts(world, OWNER) if t.startswith("🔔")]
    assert "请求人工客服" in alert and "顾客：苹果" in alert and f"/reply {number}" in alert

    listed = (await owner.say("/inbox")).text
    assert f"{number} 号" in listed and "未接待" in listed

    # a stranger's commands are only searched: nothing reaches the customer, the ticket stays
    await stranger.say(f"/reply {number} 我是客服")
    await stranger.say(f"/close {number}")
    await world.settle()
    assert texts(world, CUSTOMER) == []
    assert await open_ticket(world) == number

    replied = await owner.say(f"/reply {number} 您好，请问订单号是多少？")
    assert "已回复" in replied.text
    await world.settle()
    assert texts(world, CUSTOMER) == ["【客服】您好，请问订单号是多少？"]

    told = await customer.say("苹果烂了两个")  # to staff, not a search
    assert told.kind in ("none", "") and not told.text
    await world.settle()
    assert any("苹果烂了两个" in t and f"{number} 号" in t for t in texts(world, OWNER))
    async with db(world.shop.client.app)() as session:
        lines = (await session.scalars(select(HandoffMessage.text).where(HandoffMessage.handoff_id == number))).all()
    assert list(lines) == ["您好，请问订单号是多少？", "苹果烂了两个"]
    assert "苹果烂了两个" in (await owner.say(f"/inbox {number}")).text

    assert "已结束" in (await owner.say(f"/close {number}")).text
    await world.settle()
    assert "客服已结束本次会话" in texts(world, CUSTOMER)[-1]
    assert "苹果" in (await customer.say("苹果")).text  # shopping again
    assert "已经结束" in (await owner.say(f"/reply {number} 还在吗")).text


async def test_the_customer_ends_it_and_a_closed_window_is_said_plainly(
    make_world: WorldFactory, sqlite_url: str
) -> None:
    world = await make_world(sqlite_url, wechat={"window_messages": 1}, staff={"owners": [OWNER]})
    owner, customer = world.shop.user(OWNER), world.shop.user(CUSTOMER)
    await owner.say("/help")
    await customer.say("我要投诉")
    number = await open_ticket(world)
    assert "已回复" in (await owner.say(f"/reply {number} 您好")).text
    await world.settle()
    used_up = (await owner.say(f"/reply {number} 还有吗")).text  # WeChat allows one per customer message here
    assert "没有发出" in used_up and "上限" in used_up
    await world.close_window(CUSTOMER)
    refused = (await owner.say(f"/reply {number} 抱歉")).text
    assert "没有发出" in refused and "48 小时" in refused
    await world.settle()
    assert texts(world, CUSTOMER) == ["【客服】您好"]

    world.forget_touch(OWNER)
    await owner.say("/inbox")  # the owner's one message of the window is used: writing opens another
    world.forget_touch(CUSTOMER)
    ended = await customer.say("结束人工")
    assert "已结束人工客服" in ended.text
    await world.settle()
    assert any("结束了" in t and f"{number} 号" in t for t in texts(world, OWNER))
    assert "苹果" in (await customer.say("苹果")).text


async def test_an_idle_ticket_closes_and_the_message_is_answered_as_usual(
    make_world: WorldFactory, sqlite_url: str
) -> None:
    world = await make_world(sqlite_url, staff={"owners": [OWNER]}, service={"idle_minutes": 30})
    customer = world.shop.user(CUSTOMER)
    await customer.say("客服")
    number = await open_ticket(world)
    long_ago = datetime.now(UTC) - timedelta(minutes=31)
    await world.execute(update(Handoff).where(Handoff.id == number).values(last_activity_at=long_ago))
    assert "苹果" in (await customer.say("苹果")).text
    await world.settle()
    assert any("一段时间没有消息" in t for t in texts(world, CUSTOMER))
    async with db(world.shop.client.app)() as session:
        ticket = await session.get(Handoff, number)
        assert ticket is not None and (ticket.status, ticket.closed_by) == ("closed", "idle")


async def test_an_alert_to_an_owner_whose_window_is_closed_goes_as_a_template_message(
    make_world: WorldFactory, sqlite_url: str
) -> None:
    world = await make_world(
        sqlite_url, wechat={"staff_alert_template_id": "TPL_STAFF_ALERT"}, staff={"owners": [OWNER]}
    )
    await world.shop.user(CUSTOMER).say("人工")  # the owner never wrote: no window
    await world.settle()
    assert world.cs_to(OWNER) == []
    (sent,) = world.templates_to(OWNER)
    assert sent["template_id"] == "TPL_STAFF_ALERT" and "请求人工客服" in sent["data"]["first"]["value"]


async def test_the_job_closes_idle_tickets_and_deletes_old_ones_with_their_lines(
    make_world: WorldFactory, sqlite_url: str
) -> None:
    world = await make_world(sqlite_url, staff={"owners": [OWNER]})
    customer = world.shop.user(CUSTOMER)
    await customer.say("客服")
    await customer.say("在吗")  # a line on the ticket
    number = await open_ticket(world)
    jobs = world.shop.client.app[JOBS]
    soon = dataclasses.replace(jobs, clock=lambda: datetime.now(UTC) + timedelta(minutes=61))
    assert await close_idle_tickets(soon) == 1
    await world.settle()
    assert any("一段时间没有消息" in t for t in texts(world, CUSTOMER))
    assert await close_idle_tickets(soon) == 0  # once
    assert "苹果" in (await customer.say("苹果")).text

    later = dataclasses.replace(jobs, clock=lambda: datetime.now(UTC) + timedelta(days=31))
    await close_idle_tickets(later)
    async with db(world.shop.client.app)() as session:
        assert await session.get(Handoff, number) is None
        assert (await session.scalars(select(HandoffMessage))).all() == []

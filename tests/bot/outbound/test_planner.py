"""The notification planner through the real app and a fake WeChat server over HTTP.

Every notification goes through the database outbox: a customer-service message inside
the 48-hour window and under its count, else the event's template message, else it
waits for the customer to write; an unreachable WeChat is retried by the scheduler's
`deliver_outbox` job; the last failed attempt tells staff.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from bot.chat.render import Rendered
from bot.keys import INBOX, NOTIFIER
from bot.outbound.planner import CS, TEMPLATE, parse_template_ids, template_data
from bot.wechat.inbox import Inbox
from commerce.customers.models import Customer
from commerce.messaging.models import OutboxStatus
from commerce.messaging.outbox import WAITING
from tests.bot.admin.test_orders import pay, place_order
from tests.bot.driver import db
from tests.bot.world import CUSTOMER, WorldFactory
from tests.fakes.wechat import Failure

OWNER = "o_planner_owner"
PAID_TEMPLATE = "TPL_ORDER_PAID_1"


# ---- unit-sized -------------------------------------------------------------------------------


def test_template_ids_parse_into_a_mapping() -> None:
    assert parse_template_ids(" order_paid=A1 , order_shipped=B2,") == {"order_paid": "A1", "order_shipped": "B2"}
    assert parse_template_ids("") == {}
    with pytest.raises(ValueError):
        parse_template_ids("order_paid")


def test_template_data_carries_the_text_and_plain_values() -> None:
    data = template_data(Rendered("text", text="支付成功"), {"order_no": "SO1", "amount_fen": 3990, "items": [1]})
    assert data == {"first": "支付成功", "order_no": "SO1", "amount": "¥39.90", "amount_fen": "3990", "remark": ""}


# ---- through the app ----------------------------------------------------------------------------


async def test_paid_order_sends_one_customer_service_message(make_world: WorldFactory, db_url: str) -> None:
    world = await make_world(db_url)
    user = world.shop.user(CUSTOMER)
    order_no = await place_order(world.shop, user)
    await pay(world.shop, order_no)
    await world.settle()
    [sent] = world.cs_to(CUSTOMER)
    assert sent["msgtype"] == "text" and "支付成功" in sent["text"]["content"] and order_no in sent["text"]["content"]
    assert world.templates_to(CUSTOMER) == []
    [row] = await world.rows()
    assert (row.status, row.channel, row.event, row.attempts) == ("sent", CS, "order_paid", 1)
    async with db(world.shop.client.app)() as session:
        assert await session.scalar(select(Customer.window_sent).where(Customer.openid == CUSTOMER)) == 1
    assert await world.deliver_job() == 0  # nothing left to do
    assert len(world.cs_to(CUSTOMER)) == 1


async def test_late_reply_arrives_once_as_a_customer_service_message(make_world: WorldFactory, sqlite_url: str) -> None:
    world = await make_world(sqlite_url, server={"reply_deadline_seconds": 0.5})
    inbox: Inbox = world.shop.client.app[INBOX]
    original = inbox.respond

    async def slow(msg):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.9)
        return await original(msg)

    inbox.respond = slow
    user = world.shop.user(CUSTOMER)
    xml = user.xml("text", content="苹果", msg_id=424242)
    assert (await user.send(xml)).kind == "none"
    assert (await user.send(xml)).kind == "none"  # WeChat's retry
    await world.settle()
    [sent] = world.cs_to(CUSTOMER)
    assert sent["msgtype"] == "text" and "烟台红富士苹果" in sent["text"]["content"]
    [row] = await world.rows()
    assert (row.status, row.event) == ("sent", "message")


async def test_closed_window_falls_back_to_the_template(make_world: WorldFactory, sqlite_url: str) -> None:
    world = await make_world(sqlite_url, wechat={"template_ids": f"order_paid={PAID_TEMPLATE}"})
    await world.shop.user(CUSTOMER).say("你好")
    world.wechat.refuse(CUSTOMER, 45015)
    await world.notify_paid("SO45015")
    [template] = world.templates_to(CUSTOMER)
    assert template["template_id"] == PAID_TEMPLATE
    assert template["data"]["order_no"] == {"value": "SO45015"} and "支付成功" in template["data"]["first"]["value"]
    [row] = await world.rows()
    assert (row.status, row.channel) == ("sent", TEMPLATE) and row.template_msgid
    # WeChat's report on the template message is recorded on its row
    await world.shop.user(CUSTOMER).event(
        "TEMPLATESENDJOBFINISH", MsgID=str(row.template_msgid), Status="success"
    )
    [row] = await world.rows()
    assert row.delivery_status == "success"
    # the window is believed closed now: the next notification goes straight to a template
    await world.notify_paid("SO45015B")
    assert len(world.cs_to(CUSTOMER)) == 1 and len(world.templates_to(CUSTOMER)) == 2


async def test_window_older_than_48_hours_uses_the_template_without_trying(make_world: WorldFactory, sqlite_url: str) -> None:
    world = await make_world(sqlite_url, wechat={"template_ids": f"order_paid={PAID_TEMPLATE}"})
    await world.shop.user(CUSTOMER).say("你好")
    long_ago = datetime.now(UTC) - timedelta(hours=49)
    await world.execute(update(Customer).where(Customer.openid == CUSTOMER).values(last_message_at=long_ago))
    await world.notify_paid()
    assert world.cs_to(CUSTOMER) == [] and len(world.templates_to(CUSTOMER)) == 1


async def test_closed_window_without_template_waits_for_the_customer(make_world: WorldFactory, sqlite_url: str) -> None:
    world = await make_world(sqlite_url)
    await world.shop.user(CUSTOMER).say("你好")
    long_ago = datetime.now(UTC) - timedelta(hours=49)
    await world.execute(update(Customer).where(Customer.openid == CUSTOMER).values(last_message_at=long_ago))
    await world.notify_paid()
    [row] = await world.rows()
    assert (row.status, row.last_error, row.attempts) == ("pending", WAITING, 0)
    assert world.cs_to(CUSTOMER) == [] and world.templates_to(CUSTOMER) == []
    assert await world.deliver_job() == 0  # not due: it waits for the customer
    world.forget_touch()
    await world.shop.user(CUSTOMER).say("在吗")  # the window opens again: the message is due
    assert await world.deliver_job() == 1
    [sent] = world.cs_to(CUSTOMER)
    assert "支付成功" in sent["text"]["content"]
    [row] = await world.rows()
    assert (row.status, row.channel) == ("sent", CS)


async def test_unreachable_wechat_leaves_it_pending_and_the_job_sends_it_once(
    make_world: WorldFactory, db_url: str
) -> None:
    world = await make_world(db_url)
    await world.shop.user(CUSTOMER).say("你好")
    world.wechat.fail_next(Failure(status=500), times=2)
    world.wechat.fail_next(Failure(errcode=-1), times=2)  # the client's own retries run out
    await world.notify_paid()
    [row] = await world.rows()
    assert (row.status, row.attempts) == ("pending", 1) and row.last_error.startswith("-1")
    async with db(world.shop.client.app)() as session:
        assert await session.scalar(select(Customer.window_sent).where(Customer.openid == CUSTOMER)) == 0
    assert await world.deliver_job() == 0  # its pause has not passed
    await world.make_due()
    assert await world.deliver_job() == 1
    assert await world.deliver_job() == 0
    [row] = await world.rows()
    assert (row.status, row.channel, row.attempts) == ("sent", CS, 2)
    delivered = [r for r in world.wechat.api_requests("/message/custom/send")]
    assert len(delivered) == 5  # 4 failed calls, then the one that went through


async def test_over_the_count_uses_the_template_or_waits(make_world: WorldFactory, sqlite_url: str) -> None:
    world = await make_world(
        sqlite_url, wechat={"window_messages": 1, "template_ids": f"order_paid={PAID_TEMPLATE}"}
    )
    await world.shop.user(CUSTOMER).say("你好")
    await world.notify_paid("SO1")
    await world.notify_paid("SO2")  # the count is used up: template
    await world.shop.client.app[NOTIFIER].notify(
        openid=CUSTOMER, template="order_expired", data={"order_no": "SO3"}
    )  # no template for this event: it waits
    await world.planner.drain()
    assert len(world.cs_to(CUSTOMER)) == 1 and len(world.templates_to(CUSTOMER)) == 1
    rows = await world.rows()
    assert [(r.status, r.channel) for r in rows] == [("sent", CS), ("sent", TEMPLATE), ("pending", "")]
    assert rows[2].last_error == WAITING


async def test_a_payment_opens_a_larger_window(make_world: WorldFactory, sqlite_url: str) -> None:
    """WeChat allows more customer-service messages after a payment than after a message,
    and a payment reopens a window the customer's messages had let close."""
    world = await make_world(sqlite_url, wechat={"window_messages": 1, "window_messages_after_payment": 3})
    user = world.shop.user(CUSTOMER)
    order_no = await place_order(world.shop, user)
    long_ago = datetime.now(UTC) - timedelta(hours=49)
    await world.execute(update(Customer).where(Customer.openid == CUSTOMER).values(last_message_at=long_ago))
    await pay(world.shop, order_no)
    await world.settle()
    [paid] = world.cs_to(CUSTOMER)
    assert "支付成功" in paid["text"]["content"]
    notifier = world.shop.client.app[NOTIFIER]
    for number in ("SO-A", "SO-B", "SO-C"):  # two more fit in the window, the third waits
        await notifier.notify(openid=CUSTOMER, template="order_expired", data={"order_no": number})
    await world.planner.drain()
    assert len(world.cs_to(CUSTOMER)) == 3
    rows = await world.rows()  # the three attempts race for the window's last two places
    assert sorted(r.status for r in rows) == ["pending", "sent", "sent", "sent"]
    assert [r.last_error for r in rows if r.status == "pending"] == [WAITING]


async def test_after_the_last_attempt_the_row_fails_and_staff_are_told(make_world: WorldFactory, sqlite_url: str) -> None:
    world = await make_world(sqlite_url, wechat={"outbox_max_attempts": 2}, staff={"owners": [OWNER]})
    await world.shop.user(OWNER).say("你好")  # the owner's window is open
    await world.shop.user(CUSTOMER).say("你好")
    world.wechat.refuse(CUSTOMER, 40003)
    await world.notify_paid()
    [row] = await world.rows()
    assert (row.status, row.attempts) == ("pending", 1)
    await world.make_due()
    assert await world.deliver_job() == 1
    await world.planner.drain()  # the staff alert goes out through the outbox too
    [row] = await world.rows()
    assert (row.status, row.attempts) == ("failed", 2) and row.last_error.startswith("40003")
    [alert] = world.cs_to(OWNER)
    assert "仍未送达" in alert["text"]["content"] and "支付成功" in alert["text"]["content"]
    assert CUSTOMER not in alert["text"]["content"]  # only the openid's tail
    assert await world.deliver_job() == 0


async def test_unsubscribed_customer_fails_at_once_without_alert(make_world: WorldFactory, sqlite_url: str) -> None:
    world = await make_world(sqlite_url, staff={"owners": [OWNER]})
    await world.shop.user(OWNER).say("你好")
    await world.shop.user(CUSTOMER).say("你好")
    world.wechat.refuse(CUSTOMER, 43004)
    await world.notify_paid()
    [row] = await world.rows()
    assert (row.status, row.attempts) == (OutboxStatus.FAILED.value, 1)
    assert world.cs_to(OWNER) == []


async def test_issue_13_a_message_within_a_minute_of_the_last_wakes_the_notice_45015_held(
    make_world: WorldFactory, db_url: str
) -> None:
    """Every message wakes what waits for the window (it was skipped for a minute per worker),
    and the window's count starts over. On PostgreSQL the wake rides in the message's claim
    (`commerce.messaging.inbound._claim_and_wake`), on SQLite it follows it."""
    world = await make_world(db_url)
    await world.shop.user(CUSTOMER).say("你好")
    world.wechat.refuse(CUSTOMER, 45015)
    await world.notify_paid()
    [row] = await world.rows()
    assert (row.status, row.last_error) == ("pending", WAITING)
    world.wechat.refusals.clear()
    await world.execute(update(Customer).where(Customer.openid == CUSTOMER).values(window_sent=5))
    await world.shop.user(CUSTOMER).say("在吗")  # seconds later: the customer touch is cached
    assert await world.scalar(select(Customer.window_sent).where(Customer.openid == CUSTOMER)) == 0
    assert await world.deliver_job() == 1
    refused, sent = world.cs_to(CUSTOMER)  # the first try met 45015
    assert "支付成功" in refused["text"]["content"] and "支付成功" in sent["text"]["content"]
    [row] = await world.rows()
    assert (row.status, row.channel) == ("sent", CS)

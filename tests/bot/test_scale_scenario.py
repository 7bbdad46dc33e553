"""Issue 5's "done when", as one scenario: two workers, one PostgreSQL, one Redis, fake WeChat.

WeChat (and WeChat Pay) may deliver any copy of a request to any worker. With both
workers sharing the database, Redis (dialog state, de-duplication, per-user order,
the access token) and the fake WeChat server:

(a) a paid order, whose payment notification reaches both workers (WeChat Pay's retry),
    produces exactly one "payment received" customer-service message;
(b) a reply that took longer than WeChat waits (6 s against a 4.5 s deadline; here scaled
    down: 2 s against a deadline of 1.5 s, which ordinary turns meet even on a loaded test
    machine) arrives once, as a customer-service message, though WeChat retried the message to the other worker;
(c) when the customer's 48-hour window has closed (the order ships two days later),
    "shipped" falls back to the template message configured in `wechat.template_ids`;
(d) while WeChat is unreachable the message stays in the outbox, and the scheduler's
    `deliver_outbox` job delivers it later, once (run on both workers).
"""

from __future__ import annotations

import asyncio

import pytest

from bot.keys import INBOX, PAYMENTS, SERVICES
from bot.outbound.planner import CS, TEMPLATE
from bot.wechat.inbox import Inbox
from commerce.payments.sandbox import build_notification
from tests.bot.admin.test_orders import place_order, view
from tests.bot.world import CUSTOMER, World, WorldFactory
from tests.fakes.wechat import Failure

pytestmark = pytest.mark.slow

OWNER = "o_scale_owner01"
PAID_TEMPLATE = "TPL_ORDER_PAID_SCALE"
SHIPPED_TEMPLATE = "TPL_ORDER_SHIPPED_SCALE"


async def pay_at_both(one: World, two: World, order_no: str) -> None:
    """WeChat Pay notifies worker one, then retries the same transaction at worker two."""
    order = await view(one.shop, order_no)
    secret = one.shop.config.pay.sandbox_secret
    for world in (one, two):
        signed = build_notification(
            secret=secret,
            order_no=order_no,
            amount_fen=order.payable_fen,
            transaction_id=f"TX{order_no}",
        )
        response = await world.shop.client.post(
            "/pay/notify/sandbox", data=signed.body, headers=signed.headers
        )
        assert response.status == 200
    for world in (one, two):
        await world.shop.client.app[PAYMENTS].drain()
        await world.settle()


def paid_messages(world: World, order_no: str) -> list[str]:
    return [
        m["text"]["content"]
        for m in world.delivered_to(CUSTOMER)
        if m["msgtype"] == "text"
        and order_no in m["text"]["content"]
        and "支付成功" in m["text"]["content"]
    ]


class SlowReplies:
    """Every worker's replies take `seconds` (0: as fast as they are); `calls` counts them."""

    def __init__(self, *worlds: World) -> None:
        self.seconds = 0.0
        self.calls = 0
        for world in worlds:
            inbox: Inbox = world.shop.client.app[INBOX]
            original = inbox.respond

            async def respond(msg, original=original):  # type: ignore[no-untyped-def]
                self.calls += 1
                await asyncio.sleep(self.seconds)
                return await original(msg)

            inbox.respond = respond


async def test_two_workers_on_postgres_and_redis_deliver_every_notification_once(
    make_world: WorldFactory, postgres_url: str, redis_url: str
) -> None:
    sections = {
        "redis": {"url": redis_url},
        "server": {"reply_deadline_seconds": 1.5},
        "wechat": {"template_ids": f"order_paid={PAID_TEMPLATE},order_shipped={SHIPPED_TEMPLATE}"},
        "staff": {"owners": [OWNER]},
    }
    one = await make_world(postgres_url, **sections)
    two = await make_world(postgres_url, join=one, **sections)
    customer_at = {"one": one.shop.user(CUSTOMER), "two": two.shop.user(CUSTOMER)}
    replies = SlowReplies(one, two)
    for world in (one, two):  # the catalog read before the clock matters: a cold first search
        await world.shop.client.app[SERVICES].catalog.snapshot()  # can pass the deadline

    # (a) a paid order: one "payment received", though both workers got the notification
    order_a = await place_order(one.shop, customer_at["one"])
    await pay_at_both(one, two, order_a)
    assert len(paid_messages(one, order_a)) == 1
    assert one.templates_to(CUSTOMER) == []  # the window is open: no template
    [row] = await one.rows()
    assert (row.status, row.channel, row.event) == ("sent", CS, "order_paid")
    token_fetches = one.wechat.requests("/stable_token")
    assert len(token_fetches) == 1  # one access token for both workers (in Redis)

    # (b) a slow reply: "success" to both deliveries, then one customer-service message
    replies.seconds, replies.calls = 2.0, 0
    xml = customer_at["one"].xml("text", content="苹果", msg_id=919191)
    assert (await customer_at["one"].send(xml)).kind == "none"  # past the deadline: "success"
    # WeChat's retry reaches the other worker while the first is still working on it
    assert (await customer_at["two"].send(xml)).kind == "none"
    for world in (one, two):
        await world.settle()
    assert (await customer_at["two"].send(xml)).kind == "none"  # a last retry changes nothing
    for world in (one, two):
        await world.settle()
    assert replies.calls == 1
    late = [
        m
        for m in one.delivered_to(CUSTOMER)
        if "烟台红富士苹果" in m.get("text", {}).get("content", "")
    ]
    assert len(late) == 1
    assert [r.event for r in await one.rows()] == ["order_paid", "message"]
    replies.seconds = 0.0

    # (c) two days later the order ships: the window has closed, so "shipped" goes out as
    # the template message configured for it
    await one.close_window(CUSTOMER)
    sent_before = len(one.cs_to(CUSTOMER))
    shipped = await two.shop.user(OWNER).say(f"/ship {order_a} 顺丰 SF1234567890")
    assert "已发货" in shipped.text
    for world in (one, two):
        await world.settle()
    [template] = one.delivered_to(CUSTOMER, "/message/template/send")
    assert template["template_id"] == SHIPPED_TEMPLATE
    assert len(one.cs_to(CUSTOMER)) == sent_before  # not even tried: the window is closed
    assert [(r.event, r.channel) for r in await one.rows()][-1] == ("order_shipped", TEMPLATE)

    # (d) WeChat unreachable: the message waits in the outbox; the job delivers it later, once
    for world in (one, two):
        world.forget_touch()  # a minute later: writing again opens the window
    order_c = await place_order(one.shop, customer_at["one"])
    one.wechat.fail_next(Failure(status=503), times=100)  # WeChat is down
    await pay_at_both(one, two, order_c)
    assert paid_messages(one, order_c) == []
    row_c = [r for r in await one.rows() if r.event == "order_paid"][-1]
    assert (row_c.status, row_c.attempts) == ("pending", 1)
    one.wechat.recover()
    await one.make_due()  # the outbox's pause has passed
    assert await two.deliver_job() >= 1  # (the owner's "order paid" alert waited too)
    assert await one.deliver_job() == 0  # the other worker's run finds nothing left
    assert len(paid_messages(one, order_c)) == 1
    row_c = [r for r in await one.rows() if r.event == "order_paid"][-1]
    assert (row_c.status, row_c.channel, row_c.attempts) == ("sent", CS, 2)
    # and nothing was sent twice over the whole scenario
    assert [len(paid_messages(one, o)) for o in (order_a, order_c)] == [1, 1]

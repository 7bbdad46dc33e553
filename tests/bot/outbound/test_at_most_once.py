"""Issue 13: a slow WeChat API (slower than the client's timeout) made customers receive
the same notice 2-5 times. A notice is now sent at most once per outbox row.

Through the real app and the fake WeChat server over HTTP: a send whose answer never
came is never repeated (the row is "uncertain": counted in /metrics, staff told); a send
WeChat certainly refused is retried and arrives once; a template message's row is
settled by WeChat's TEMPLATESENDJOBFINISH report; an attempt left unfinished by a dead
worker is not repeated when a call may have gone out.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from bot.outbound.planner import CS, TEMPLATE
from commerce.messaging.models import OutboxMessage
from tests.bot.admin.test_orders import pay, place_order
from tests.bot.test_metrics import scrape, value
from tests.bot.world import CUSTOMER, World, WorldFactory
from tests.fakes.wechat import Failure

OWNER = "o_at_most_once_owner"
PAID_TEMPLATE = "TPL_ORDER_PAID_1"
TIMEOUT = 0.3  # the client's answer timeout in these tests (wechat.api_timeout_seconds)
SLOW = 0.8  # the fake's answers come this late: after the client gave up


async def slow_world(make_world: WorldFactory, db_url: str, *, staffed: bool = True, **wechat: object) -> World:
    """`staffed`: with an owner whose window is open (alerts reach them); else no staff, so
    that every call to WeChat is about the customer."""
    world = await make_world(
        db_url, wechat={"api_timeout_seconds": TIMEOUT, **wechat}, staff={"owners": [OWNER] if staffed else []}
    )
    if staffed:
        await world.shop.user(OWNER).say("你好")
    await world.shop.user(CUSTOMER).say("你好")
    return world


def paid_notices(world: World, openid: str = CUSTOMER) -> list[str]:
    """The "支付成功" messages WeChat took for `openid` (whether or not it answered in time)."""
    return [m["text"]["content"] for m in world.delivered_to(openid) if "支付成功" in m["text"]["content"]]


async def run_the_scheduler(world: World, times: int = 3) -> None:
    """`deliver_outbox` again and again, every lease run out in between."""
    past = datetime.now(UTC) - timedelta(seconds=1)
    for _ in range(times):
        await world.execute(update(OutboxMessage).values(next_attempt_at=past))
        await world.deliver_job()
        await world.settle()


async def test_a_notice_to_a_slow_wechat_arrives_at_most_once(make_world: WorldFactory, db_url: str) -> None:
    world = await slow_world(make_world, db_url)
    order_no = await place_order(world.shop, world.shop.user(CUSTOMER))
    world.wechat.answer_delay = SLOW  # WeChat takes each message, and answers too late
    await pay(world.shop, order_no)
    await world.settle()
    await run_the_scheduler(world)

    [paid] = paid_notices(world)  # the old client sent it 4 times, and the job more
    assert order_no in paid
    [row] = [r for r in await world.rows() if r.event == "order_paid"]
    assert (row.status, row.channel, row.attempts) == ("uncertain", CS, 1)
    assert row.last_error.startswith("uncertain:")
    samples = await scrape(world.shop)  # the customer's row, and the staff's alerts (as slow)
    uncertain = [r for r in await world.rows() + await world.rows(OWNER) if r.status == "uncertain"]
    assert value(samples, "storefront_outbox_messages", status="uncertain") == len(uncertain) >= 1
    assert value(samples, "storefront_outbox_messages", status="pending") == 0
    # staff are told to check with the customer (their alert is not resent either)
    [alert] = [m["text"]["content"] for m in world.delivered_to(OWNER) if "可能没有送达" in m["text"]["content"]]
    assert "支付成功" in alert and CUSTOMER not in alert


@pytest.mark.parametrize(
    "failures", [[Failure(errcode=-1)] * 4, [Failure(errcode=45009)], [Failure(status=503)] * 4],
    ids=["busy", "quota", "http503"],
)
async def test_a_send_wechat_refused_is_retried_and_arrives_exactly_once(
    make_world: WorldFactory, sqlite_url: str, failures: list[Failure]
) -> None:
    world = await slow_world(make_world, sqlite_url, staffed=False)
    order_no = await place_order(world.shop, world.shop.user(CUSTOMER))
    for failure in failures:  # -1 and 503: the client's own retries run out first
        world.wechat.fail_next(failure)
    await pay(world.shop, order_no)
    await world.settle()
    [row] = [r for r in await world.rows() if r.event == "order_paid"]
    assert (row.status, row.attempts) == ("pending", 1) and paid_notices(world) == []

    await run_the_scheduler(world)
    [paid] = paid_notices(world)
    assert order_no in paid
    [row] = [r for r in await world.rows() if r.event == "order_paid"]
    assert (row.status, row.channel, row.attempts) == ("sent", CS, 2)


async def test_an_unanswered_template_message_is_settled_by_wechats_report(
    make_world: WorldFactory, sqlite_url: str
) -> None:
    world = await slow_world(make_world, sqlite_url, template_ids=f"order_paid={PAID_TEMPLATE}")
    await world.close_window()  # the customer-service window is closed: a template message
    world.wechat.answer_delay = SLOW
    await world.notify_paid("SO_TPL_1")
    await run_the_scheduler(world)
    assert len(world.delivered_to(CUSTOMER, "/message/template/send")) == 1
    [row] = await world.rows()
    assert (row.status, row.channel, row.template_msgid) == ("uncertain", TEMPLATE, None)

    world.wechat.answer_delay = 0
    world.forget_touch()
    await world.shop.user(CUSTOMER).event("TEMPLATESENDJOBFINISH", MsgID="208000001", Status="success")
    [row] = await world.rows()
    assert (row.status, row.template_msgid, row.delivery_status) == ("sent", 208000001, "success")
    await run_the_scheduler(world)
    assert len(world.delivered_to(CUSTOMER, "/message/template/send")) == 1


@pytest.mark.parametrize(("channel", "sent_again"), [(CS, False), ("", True)], ids=["call_begun", "no_call"])
async def test_an_attempt_a_dead_worker_left_unfinished_is_repeated_only_if_no_call_was_begun(
    make_world: WorldFactory, sqlite_url: str, channel: str, sent_again: bool
) -> None:
    world = await slow_world(make_world, sqlite_url)
    world.wechat.fail_next(Failure(errcode=-1), times=4)
    await world.notify_paid("SO_DEAD_1")
    [row] = await world.rows()
    past = datetime.now(UTC) - timedelta(seconds=1)
    await world.execute(  # as a worker killed during its attempt leaves it, lease run out
        update(OutboxMessage)
        .where(OutboxMessage.id == row.id)
        .values(status="sending", channel=channel, next_attempt_at=past)
    )
    await run_the_scheduler(world)
    [row] = await world.rows()
    assert len(paid_notices(world)) == (1 if sent_again else 0)
    assert row.status == ("sent" if sent_again else "uncertain")
    told = [m["text"]["content"] for m in world.delivered_to(OWNER) if "可能没有送达" in m["text"]["content"]]
    assert len(told) == (0 if sent_again else 1)  # staff check with the customer

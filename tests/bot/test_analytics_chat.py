"""Analytics through the real app: a customer's journey leaves exactly the rows the
dashboard counts (a search that found something and one that found nothing, a card, a
cart add, a checkout, an order, its payment by a signed notify, a review), under the
shop's customer ids and never an openid; a WeChat retry counts once, a message taken over
after its changes were committed not at all; a follow through a friend's invite names
the friend; events are written in a few batches, never while a reply is being made, and
a database that refuses them costs the customer nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.analytics import EventBuffer, NoEvents
from bot.chat.middleware import opens_window
from bot.keys import ENGINE, INBOX, JOBS, METRICS, SERVICES
from bot.wechat.inbox import Inbox
from bot.wechat.intake import DurableReplyStore, Sweeper, row_key
from bot.wechat.protocol import Inbound
from commerce.analytics.events import Event
from commerce.analytics.models import ShopEvent
from commerce.customers.customers import touch_customer
from commerce.customers.models import Customer
from commerce.db import create_engine
from commerce.messaging import inbound
from commerce.orders.models import Order
from commerce.wiring import shop_uows
from scheduler.runner import run_job
from tests.bot.admin.test_orders import pay, place_order
from tests.bot.conftest import OWNER, ShopFactory
from tests.bot.driver import Shop, db
from tests.bot.test_group_chat import _campaign, _order_no, _with_address

# Which events a conversation leaves is checked; the batch insert runs on both databases in
# tests/commerce/analytics/test_events.py.
pytestmark = pytest.mark.sqlite_only

QUIET = {"flush_seconds": 300.0}  # written when the test flushes (or the app stops), not on a timer
CUSTOMER, FRIEND = "o_analytics_buyer", "o_analytics_friend"


async def counted(shop: Shop) -> list[ShopEvent]:
    """Every event row, once what waits in memory is written."""
    await shop.client.app[SERVICES].events.flush()
    async with db(shop.client.app)() as session:
        return list((await session.scalars(select(ShopEvent).order_by(ShopEvent.id))).all())


async def customer_id(shop: Shop, openid: str) -> int:
    async with db(shop.client.app)() as session:
        found = await session.scalar(select(Customer.id).where(Customer.openid == openid))
        assert found is not None
        return found


def columns(row: ShopEvent) -> dict[str, Any]:
    return {c.name: getattr(row, c.name) for c in ShopEvent.__table__.columns}


def no_openid_in(rows: list[ShopEvent], openids: tuple[str, ...]) -> None:
    for row in rows:
        for value in columns(row).values():
            assert not any(openid in str(value) for openid in openids), columns(row)


def insert_counter(engine: AsyncEngine) -> list[bool]:
    """The INSERT statements into shop_events (each: whether it was one executemany)."""
    seen: list[bool] = []

    def before(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT INTO SHOP_EVENTS"):
            seen.append(executemany)

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    return seen


async def test_a_journey_leaves_exactly_the_rows_the_dashboard_counts(make_shop: ShopFactory, db_url: str) -> None:
    shop = await make_shop(db_url, staff={"owners": [OWNER]}, analytics=QUIET, scheduler={"enabled": False})
    inserts = insert_counter(shop.client.app[ENGINE])
    user, owner = shop.user(CUSTOMER), shop.user(OWNER)
    sent = 0

    nothing = await user.say("量子隐形传送门")
    assert "没有找到" in nothing.text or "没找到" in nothing.text, nothing.text
    order_no = await place_order(shop, user)  # 香蕉: a search, a card, add 2, checkout (with an address), place
    await pay(shop, order_no)  # the sandbox's signed notification
    await owner.say(f"/ship {order_no} 顺丰 SF1234567890")
    for said in ("订单", "1", "确认收货", "5", "香蕉很甜", "完成"):
        await user.say(said)
    assert not inserts  # nothing written while replies were made: all of it waits in memory
    sent = len(user.sent)

    rows = await counted(shop)
    assert inserts == [True]  # one executemany INSERT for the whole journey
    buyer, staff = await customer_id(shop, CUSTOMER), await customer_id(shop, OWNER)
    async with db(shop.client.app)() as session:
        order = await session.scalar(select(Order).where(Order.order_no == order_no))
        assert order is not None
    mine = [r for r in rows if r.customer_id == buyer]
    assert Counter(r.kind for r in mine) == Counter(
        {"message": sent, "search": 2, "card": 1, "cart_add": 1, "checkout": 1, "order": 1, "paid": 1, "review": 1}
    )
    assert [(r.kind, r.customer_id) for r in rows if r.customer_id != buyer] == [("message", staff)]
    searches = [(r.query, r.results) for r in mine if r.kind == "search"]
    assert searches[0] == ("量子隐形传送门", 0)  # a search that found nothing, as typed
    assert searches[1][0] == "香蕉" and searches[1][1] >= 1
    (card,) = [r for r in mine if r.kind == "card"]
    (added,) = [r for r in mine if r.kind == "cart_add"]
    (reviewed,) = [r for r in mine if r.kind == "review"]
    assert card.product_id == added.product_id == reviewed.product_id is not None
    by_kind = {r.kind: r for r in mine}
    assert (by_kind["order"].order_id, by_kind["order"].amount_fen) == (order.id, order.payable_fen)
    assert (by_kind["paid"].order_id, by_kind["paid"].amount_fen) == (order.id, order.paid_fen)
    assert reviewed.order_id == order.id
    no_openid_in(rows, (CUSTOMER, OWNER))


@pytest.mark.sqlite_only
async def test_a_retried_message_counts_once(make_shop: ShopFactory, sqlite_url: str) -> None:
    shop = await make_shop(sqlite_url, analytics=QUIET)
    user = shop.user(CUSTOMER)
    xml = user.xml("text", content="苹果", msg_id=747474)
    first = await user.send(xml)
    again = await user.send(xml)  # WeChat's retry: the first delivery's reply
    assert again.text == first.text
    rows = await counted(shop)
    assert Counter(r.kind for r in rows) == Counter({"message": 1, "search": 1})


@pytest.mark.sqlite_only
async def test_a_turn_whose_message_another_worker_took_counts_nothing_here(
    make_shop: ShopFactory, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its transaction refused (the other worker answers and counts it); a handler that
    fails for its own reasons still counts the customer's message, not what it recorded."""
    shop = await make_shop(sqlite_url, analytics=QUIET)
    search = shop.client.app[SERVICES].dialogs.search
    original = search.search
    failure: Exception = inbound.TakenOver()

    async def refused(ctx, query, **kwargs):  # type: ignore[no-untyped-def]
        await original(ctx, query, **kwargs)  # recorded its search...
        raise failure  # ...then its commit was refused

    monkeypatch.setattr(search, "search", refused)
    user = shop.user(CUSTOMER)
    assert "开小差" in (await user.say("香蕉")).text
    assert await counted(shop) == []
    failure = RuntimeError("a bug")
    assert "开小差" in (await user.say("苹果")).text
    assert [r.kind for r in await counted(shop)] == ["message"]


@pytest.mark.sqlite_only
async def test_analytics_off_counts_nothing(make_shop: ShopFactory, sqlite_url: str) -> None:
    shop = await make_shop(sqlite_url, analytics={"enabled": False})
    assert isinstance(shop.client.app[SERVICES].events, NoEvents)
    await place_order(shop, shop.user(CUSTOMER))  # a search, a card, a cart add, a checkout, an order
    assert await counted(shop) == []


@pytest.mark.sqlite_only
async def test_a_message_taken_over_after_its_changes_were_committed_counts_nothing_more(
    make_shop: ShopFactory, sqlite_url: str
) -> None:
    """A worker died between its turn's commit and its reply: the sweeper of another
    answers it with a notice, and no event of it is recorded again."""
    shop = await make_shop(sqlite_url, analytics=QUIET, scheduler={"enabled": False})
    inbox: Inbox = shop.client.app[INBOX]
    engine = create_engine(sqlite_url)
    msg = Inbound(openid="o_taken_over", account="gh", kind="text", create_time=1_700_000_000, msg_id="919", text="苹果")
    try:
        dead = DurableReplyStore(engine, opens_window=opens_window, lease_seconds=0.2)
        assert await dead.claim(msg.dedupe_key, msg=msg)
        with inbound.fenced(key=row_key(msg.dedupe_key), owner=dead.owner):
            async with shop_uows(engine)() as uow:
                await touch_customer(uow.session, msg.openid, messaged=True)
        if dead._renewer is not None:  # the worker is killed before it wrote its reply down
            dead._renewer.cancel()
        dead._held.clear()
    finally:
        await engine.dispose()
    await asyncio.sleep(0.3)
    assert isinstance(inbox.replies, DurableReplyStore)
    await Sweeper(inbox, inbox.replies).sweep()  # or the shop's own sweeper, each second, took it first
    await inbox.drain()
    [sent] = await shop.outbox.wait_for(msg.openid, 1)
    assert "已经处理好了" in sent.text
    assert await counted(shop) == []


async def test_a_follow_through_a_friends_invite_names_the_friend(make_shop: ShopFactory, db_url: str) -> None:
    shop = await make_shop(db_url, analytics=QUIET, scheduler={"enabled": False})
    sharer, friend = shop.user(CUSTOMER), shop.user(FRIEND)
    invite = await sharer.say("邀请")
    code = invite.text.split("你的邀请码：")[1].split()[0]
    follow = friend.xml("event", event="subscribe", event_key=f"qrscene_v1.r.{code}", Ticket="t")
    welcome = await friend.send(follow)
    assert "好友邀请" in welcome.text, welcome.text
    assert (await friend.send(follow)).text == welcome.text  # WeChat's retry of the same event
    rows = await counted(shop)
    sharer_id, friend_id = await customer_id(shop, CUSTOMER), await customer_id(shop, FRIEND)
    assert [(r.kind, r.customer_id, r.referrer_id) for r in rows if r.kind in ("share", "follow")] == [
        ("share", sharer_id, None),
        ("follow", friend_id, sharer_id),
    ]
    no_openid_in(rows, (CUSTOMER, FRIEND))


async def test_a_group_leaders_paid_seat_counts_its_order_payment_and_the_invite_sent(
    make_shop: ShopFactory, db_url: str
) -> None:
    shop = await make_shop(db_url, analytics=QUIET, scheduler={"enabled": False})
    await _campaign(shop)
    leader = shop.user(CUSTOMER)
    await _with_address(shop, leader)
    await leader.say("拼团")
    order_no = _order_no(await leader.say("1"))
    await pay(shop, order_no)
    async with db(shop.client.app)() as session:
        order = await session.scalar(select(Order).where(Order.order_no == order_no))
        assert order is not None
    leader_id = await customer_id(shop, CUSTOMER)
    rows = [(r.kind, r.customer_id, r.order_id) for r in await counted(shop) if r.kind != "message"]
    assert sorted(rows, key=str) == [  # payment and invite: one transaction, counted together
        ("order", leader_id, order.id), ("paid", leader_id, order.id), ("share", leader_id, None)
    ]


async def test_the_prune_job_deletes_events_past_keep_days_once(make_shop: ShopFactory, db_url: str) -> None:
    shop = await make_shop(db_url, analytics={**QUIET, "keep_days": 30}, scheduler={"enabled": False})
    await shop.user(CUSTOMER).say("香蕉")
    assert len(await counted(shop)) == 2  # the message and its search, now
    jobs = shop.client.app[JOBS]
    month_later = dataclasses.replace(jobs, clock=lambda: datetime.now(UTC) + timedelta(days=29))
    assert await run_job("prune_events", month_later) == 0  # 29 days old: kept
    later = dataclasses.replace(jobs, clock=lambda: datetime.now(UTC) + timedelta(days=31))
    assert await run_job("prune_events", later) == 2
    assert await run_job("prune_events", later) == 0  # another worker's tick: nothing left
    assert await counted(shop) == []


@pytest.mark.sqlite_only
async def test_events_are_written_in_batches_off_the_reply_path(make_shop: ShopFactory, sqlite_url: str) -> None:
    shop = await make_shop(sqlite_url, analytics={"flush_seconds": 0.3}, scheduler={"enabled": False})
    inserts = insert_counter(shop.client.app[ENGINE])
    buffer = shop.client.app[SERVICES].events
    assert isinstance(buffer, EventBuffer)
    users = [shop.user(f"o_batch_{n}") for n in range(4)]
    started = time.monotonic()
    for said in ("苹果", "1", "香蕉", "帮助", "苹果"):
        await asyncio.gather(*(user.say(said) for user in users))
    await asyncio.sleep(0.8)  # the timer writes them: nobody flushed
    ticks = (time.monotonic() - started) / 0.3
    async with db(shop.client.app)() as session:
        rows = list((await session.scalars(select(ShopEvent))).all())
    assert Counter(r.kind for r in rows)["message"] == 20
    # 20 messages and their searches and cards: a few INSERTs, each carrying several events, however
    # slow the machine (a slow one spreads the turns over more flush ticks: more, smaller batches)
    assert 1 <= len(inserts) <= len(rows) / 4 and all(inserts), (len(inserts), ticks, len(rows))
    assert len(buffer) == 0


@pytest.mark.sqlite_only
async def test_a_database_that_refuses_events_costs_the_reply_nothing(
    make_shop: ShopFactory, sqlite_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = await make_shop(sqlite_url, analytics=QUIET)
    buffer = shop.client.app[SERVICES].events
    assert isinstance(buffer, EventBuffer)

    async def refused(batch: list[Event]) -> None:
        raise ConnectionError("database away")

    monkeypatch.setattr(buffer, "_write", refused)
    user = shop.user(CUSTOMER)
    caplog.set_level(logging.WARNING, logger="bot.analytics")
    found = await user.say("香蕉")
    assert "香蕉" in found.text and "开小差" not in found.text, found.text
    await buffer.flush()  # fails: logged, counted, not raised
    helped = await user.say("帮助")
    assert helped.text and "开小差" not in helped.text, helped.text  # answered as ever
    await buffer.flush()
    warned = [r for r in caplog.records if r.name == "bot.analytics"]
    assert len(warned) == 1 and "ConnectionError" in warned[0].getMessage()
    assert "香蕉" not in warned[0].getMessage() and CUSTOMER not in warned[0].getMessage()
    dropped = shop.client.app[METRICS].events_dropped.labels("failed")._value.get()
    assert dropped == 3  # the first message and its search, then the second message

    monkeypatch.undo()  # the database is back: the next events are written
    await user.say("苹果")
    assert Counter(r.kind for r in await counted(shop)) == Counter({"message": 1, "search": 1})

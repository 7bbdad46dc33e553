"""Scheduled jobs through the real app: idempotent, catching up, telling the customer."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from bot.keys import ENGINE, JOBS, SERVICES
from commerce.orders.actions import CancelledBy, cancel_order
from commerce.orders.models import Order, OrderStatus
from commerce.payments import records as payment_records
from commerce.payments.models import Refund, RefundStatus
from scheduler.runner import run_job
from tests.bot.admin.test_orders import open_staffed_shop, settle_refunds
from tests.bot.driver import Shop, db
from tests.bot.test_shopping_chat import _open, _sku, _stock


async def _buy_banana(shop: Shop, openid: str) -> str:
    user = shop.user(openid)
    await _open(user, "香蕉", "香蕉")
    await user.say("加入购物车 3")
    await user.say("结算")
    await user.say("张三 13800138000 上海市浦东新区世纪大道100号")
    await user.say("确认")
    card = await user.say("确认")
    assert card.kind == "news"
    return card.articles[0].description.split("订单号 ")[1].split()[0]


def _at(shop: Shop, when: datetime):  # type: ignore[no-untyped-def]
    return dataclasses.replace(shop.client.app[JOBS], clock=lambda: when)


async def test_expiry_releases_stock_once_and_tells_the_customer(make_shop, db_url: str) -> None:
    shop = await make_shop(db_url, scheduler={"enabled": False})
    banana = await _sku(shop, "香蕉", "")
    before = await _stock(shop, banana)
    order_no = await _buy_banana(shop, "o_late_payer")
    assert await _stock(shop, banana) == before - 3

    later = datetime.now(UTC) + timedelta(minutes=31)
    assert await run_job("expire_unpaid_orders", _at(shop, later)) == 1
    assert await run_job("expire_unpaid_orders", _at(shop, later)) == 0  # twice is harmless
    assert await _stock(shop, banana) == before
    async with db(shop.client.app)() as session:
        status = await session.scalar(select(Order.status).where(Order.order_no == order_no))
    assert status == OrderStatus.CANCELLED
    told = shop.outbox.for_user("o_late_payer")
    assert len(told) == 1 and order_no in told[0].text and "已自动取消" in told[0].text


async def test_downtime_is_caught_up(make_shop, sqlite_url: str) -> None:
    shop = await make_shop(sqlite_url, scheduler={"enabled": False})
    first, second = await _buy_banana(shop, "o_a"), await _buy_banana(shop, "o_b")
    two_days_later = datetime.now(UTC) + timedelta(days=2)
    assert await run_job("expire_unpaid_orders", _at(shop, two_days_later)) == 2
    texts = [s.message.text for s in shop.outbox.sent]
    assert len(texts) == 2 and all(any(no in t for t in texts) for no in (first, second))


async def test_a_reminder_before_expiry_goes_out_once_with_the_pay_link(make_shop, sqlite_url: str) -> None:
    shop = await make_shop(sqlite_url, scheduler={"enabled": False})
    await _buy_banana(shop, "o_slow")
    soon = datetime.now(UTC) + timedelta(minutes=25)
    assert await run_job("remind_unpaid_orders", _at(shop, soon)) == 1
    assert await run_job("remind_unpaid_orders", _at(shop, soon)) == 0
    (reminder,) = shop.outbox.for_user("o_slow")
    assert "将在" in reminder.text and "https://shop.example.com/pay/" in reminder.text


async def test_shipped_orders_complete_by_themselves(make_shop, sqlite_url: str) -> None:
    shop = await make_shop(sqlite_url, scheduler={"enabled": False})
    order_no = await _buy_banana(shop, "o_quiet")
    long_ago = datetime.now(UTC) - timedelta(days=11)
    async with db(shop.client.app)() as session, session.begin():
        await session.execute(
            update(Order).where(Order.order_no == order_no)
            .values(status=OrderStatus.SHIPPED.value, shipped_at=long_ago, paid_fen=Order.payable_fen)
        )
    assert await run_job("complete_shipped_orders", _at(shop, datetime.now(UTC))) == 1
    async with db(shop.client.app)() as session:
        assert await session.scalar(select(Order.status).where(Order.order_no == order_no)) == OrderStatus.COMPLETED
    completed, invited = shop.outbox.for_user("o_quiet")  # the invitation to review follows, in that order
    assert "自动确认收货" in completed.text
    assert "「评价」" in invited.text and order_no in invited.text, invited.text


async def test_jobs_close_the_provider_order_of_what_they_expire(make_shop, sqlite_url: str) -> None:
    shop = await make_shop(sqlite_url, scheduler={"enabled": False})
    jobs = shop.client.app[JOBS]
    assert jobs.payments is shop.client.app[SERVICES].payments
    closed: list[str] = []

    class Closer:
        async def close(self, *, order_no: str) -> None:
            closed.append(order_no)

    order_no = await _buy_banana(shop, "o_gone")
    later = dataclasses.replace(jobs, payments=Closer(), clock=lambda: datetime.now(UTC) + timedelta(hours=1))
    await run_job("expire_unpaid_orders", later)
    assert closed == [order_no]


async def test_owed_refunds_are_settled_through_the_shops_payment_service(
    sqlite_url: str, unused_tcp_port: int, aiohttp_client, demo_catalog: None
) -> None:
    """The job reaches the app's PaymentService; a late payment whose refund never started
    (the process stopped) is refunded through the sandbox and settled by its notification."""
    shop = await open_staffed_shop(sqlite_url, unused_tcp_port, aiohttp_client)
    services = shop.client.app[SERVICES]
    order_no = await _buy_banana(shop, "o_late")
    async with db(shop.client.app)() as session, session.begin():
        order_id = await session.scalar(select(Order.id).where(Order.order_no == order_no))
        await cancel_order(session, order_id=order_id, by=CancelledBy.TIMEOUT, now=datetime.now(UTC))
        await payment_records.record_payment(
            session, provider=services.payments.provider.name, order_no=order_no, transaction_id="T-OWED",
            amount_fen=1, paid_at=datetime.now(UTC), payload={},
        )
    jobs = shop.client.app[JOBS]
    assert await run_job("settle_owed_refunds", jobs) == 0  # within the grace period
    later = dataclasses.replace(jobs, clock=lambda: datetime.now(UTC) + timedelta(minutes=11))
    assert await run_job("settle_owed_refunds", later) == 1
    await settle_refunds(shop)
    async with db(shop.client.app)() as session:
        refund = await session.scalar(select(Refund))
    assert refund is not None and (refund.status, refund.amount_fen) == (RefundStatus.SUCCEEDED, 1)
    assert await run_job("settle_owed_refunds", later) == 0


async def test_settled_messages_are_pruned_after_the_shops_retention_and_pending_ones_never(
    make_shop, db_url: str
) -> None:
    from commerce.messaging import outbox
    from commerce.messaging.models import OutboxMessage, OutboxStatus

    shop = await make_shop(db_url, scheduler={"enabled": False})
    long_ago = datetime.now(UTC) - timedelta(days=40)
    statuses = [OutboxStatus.SENT, OutboxStatus.FAILED, OutboxStatus.UNCERTAIN, OutboxStatus.PENDING,
                OutboxStatus.SENDING]
    async with db(shop.client.app)() as session, session.begin():
        for when in (long_ago, datetime.now(UTC)):  # five old rows, five of today
            for status in statuses:
                item = await outbox.enqueue(session, openid="o_told", event="test", payload={"text": "x"},
                                            template=None, now=when, lease=timedelta(0))
                await session.execute(
                    update(OutboxMessage).where(OutboxMessage.id == item.id).values(status=status.value)
                )
    now = datetime.now(UTC)
    assert await run_job("prune_outbox", _at(shop, now)) == 3  # the old sent, failed and uncertain
    assert await run_job("prune_outbox", _at(shop, now)) == 0
    async with db(shop.client.app)() as session:
        left = (await session.execute(select(OutboxMessage.status, OutboxMessage.created_at))).all()
    old_left = sorted(status for status, created in left if created.replace(tzinfo=UTC) < now - timedelta(days=30))
    assert old_left == [OutboxStatus.PENDING.value, OutboxStatus.SENDING.value]  # never pruned while unsent
    assert len(left) == 7  # today's five stay whatever their status


async def test_dialogs_past_keeping_are_pruned_and_live_ones_stay(make_shop, db_url: str) -> None:
    from commerce.messaging.dialog_states import save_dialog
    from commerce.messaging.models import DialogState

    shop = await make_shop(db_url, scheduler={"enabled": False})
    now = datetime.now(UTC)
    engine = shop.client.app[ENGINE]
    async with engine.begin() as conn:
        for key, keep in (("o_gone", -timedelta(days=2)), ("o_gone:parked", -timedelta(seconds=1)),
                          ("o_here", timedelta(hours=1))):
            await conn.run_sync(lambda sync, k=key, d=keep: save_dialog(sync, k, "{}", keep_until=now + d))
    assert await run_job("prune_dialogs", _at(shop, now)) == 2
    assert await run_job("prune_dialogs", _at(shop, now)) == 0
    async with db(shop.client.app)() as session:
        assert list((await session.scalars(select(DialogState.key))).all()) == ["o_here"]

"""A worker killed between a payment's commit and the message send: "payment received" still
arrives, once, from the outbox (issue: nothing a customer pays is lost); so does the staff's
new-order alert, written in the payment's own transaction.

The payment is applied in a separate process that dies (os._exit) the moment its unit of
work has committed, before anything is sent: the real PaymentService, the real database,
no cleanup. The shop (another process's view of the same database) then finds the rows
once their writer's lease has run out and sends them; a second run and WeChat Pay's retry
of the same notification send nothing more.
"""

from __future__ import annotations

import asyncio
import sys
import textwrap
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from bot.keys import JOBS, SERVICES
from commerce.messaging.models import OutboxMessage
from commerce.orders.models import Order, OrderStatus
from commerce.payments.base import Notification
from scheduler.runner import run_job
from tests.bot.admin.test_orders import place_order, view
from tests.bot.driver import Shop

KILLED = 17
BUYER = "o_paid_then_killed"
OWNER = "o_owner_of_killed"

# Runs in its own process: apply one verified payment notification, die right after the commit.
WORKER = textwrap.dedent(
    """
    import asyncio, os, sys
    from datetime import UTC, datetime

    from bot.outbound.alerts import StaffAlerts
    from commerce.db import create_engine
    from commerce.payments.base import Notification
    from commerce.payments.service import PaymentService
    from commerce.rules import ShopRules
    from commerce.uow import UnitOfWorkFactory
    from commerce.wiring import shop_sessions

    url, order_no, amount = sys.argv[1], sys.argv[2], int(sys.argv[3])
    owners = [o for o in sys.argv[4:5] for o in o.split(",") if o]  # staff told of a new paid order

    class DieAfterCommit:
        def dispatch(self, message_ids):
            os._exit({killed})  # killed: committed, nothing sent, nothing cleaned up

    class NoProvider:
        name = "sandbox"

    async def main():
        uows = UnitOfWorkFactory(shop_sessions(create_engine(url)), ShopRules(), DieAfterCommit())
        service = PaymentService(
            provider=NoProvider(), uows=uows, appid="wx_app", mchid="sandbox",
            notify_url="", refund_notify_url="",
            on_paid=StaffAlerts(uows=uows, owners=owners).order_paid if owners else None,
        )
        await service.handle_notification(Notification(
            kind="payment", provider="sandbox", order_no=order_no, amount_fen=amount,
            succeeded=True, mchid="sandbox", appid="wx_app", transaction_id="4200000001",
            occurred_at=datetime.now(UTC), payload={{}},
        ))
        print("not killed")

    asyncio.run(main())
    """
).format(killed=KILLED)


async def _order(shop: Shop) -> tuple[str, int]:
    order_no = await place_order(shop, shop.user(BUYER))
    return order_no, (await view(shop, order_no)).payable_fen


async def _rows(shop: Shop, openid: str = BUYER) -> list[OutboxMessage]:
    async with shop.client.app[SERVICES].uow() as uow:
        return list((await uow.session.scalars(select(OutboxMessage).where(OutboxMessage.openid == openid))).all())


async def _pay_and_die(shop: Shop, order_no: str, payable: int, *owners: str) -> None:
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WORKER, shop.config.database.url, order_no, str(payable), ",".join(owners),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await worker.communicate()
    assert worker.returncode == KILLED, (out, err[-2000:])


async def _lease_runs_out(shop: Shop) -> None:
    async with shop.client.app[SERVICES].uow() as uow:
        await uow.session.execute(
            update(OutboxMessage).values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
        )


def _paid_messages(shop: Shop) -> list[str]:
    return [m.text for m in shop.outbox.for_user(BUYER) if "支付成功" in m.text]


async def test_payment_received_is_delivered_once_after_the_worker_dies_between_commit_and_send(
    make_shop, db_url: str
) -> None:
    shop = await make_shop(db_url, scheduler={"enabled": False})
    order_no, payable = await _order(shop)
    before = len(shop.outbox.for_user(BUYER))

    await _pay_and_die(shop, order_no, payable)

    # the payment and its notice were committed together; nothing reached the customer
    async with shop.client.app[SERVICES].uow() as uow:
        status = await uow.session.scalar(select(Order.status).where(Order.order_no == order_no))
    assert status == OrderStatus.PAID
    [row] = await _rows(shop)
    assert (row.event, row.status, row.attempts) == ("order_paid", "pending", 0)
    assert len(shop.outbox.for_user(BUYER)) == before

    # within the dead writer's lease the scheduler keeps its hands off
    assert await run_job("deliver_outbox", shop.client.app[JOBS]) == 0
    assert _paid_messages(shop) == []

    # seconds later the writer's head start has run out: the scheduler sends it, once
    await _lease_runs_out(shop)
    assert await run_job("deliver_outbox", shop.client.app[JOBS]) == 1
    [paid] = _paid_messages(shop)
    assert order_no in paid and "支付成功" in paid

    # again, and WeChat Pay's retry of the notification the dead worker never answered
    assert await run_job("deliver_outbox", shop.client.app[JOBS]) == 0
    retry = Notification(
        kind="payment", provider="sandbox", order_no=order_no, amount_fen=payable, succeeded=True,
        mchid="sandbox", appid=shop.client.app[SERVICES].payments.appid, transaction_id="4200000001",
        occurred_at=datetime.now(UTC), payload={},
    )
    assert await shop.client.app[SERVICES].payments.handle_notification(retry) is True
    await shop.client.app[SERVICES].payments.drain()
    await run_job("deliver_outbox", shop.client.app[JOBS])
    assert len(_paid_messages(shop)) == 1
    assert [r.status for r in await _rows(shop)] == ["sent"]


async def test_the_new_order_alert_is_committed_with_the_payment_and_sent_once_after_the_crash(
    make_shop, sqlite_url: str
) -> None:
    shop = await make_shop(sqlite_url, scheduler={"enabled": False}, staff={"owners": [OWNER]})
    order_no, payable = await _order(shop)

    await _pay_and_die(shop, order_no, payable, OWNER)

    # the alert is an outbox row of the payment's transaction (it was a background task after it)
    [alert] = await _rows(shop, OWNER)
    assert (alert.event, alert.status, alert.attempts) == ("alert_order_paid", "pending", 0)
    [paid] = await _rows(shop)
    assert paid.created_at == alert.created_at and paid.id < alert.id  # one transaction, the customer first
    assert shop.outbox.for_user(OWNER) == []

    await _lease_runs_out(shop)
    assert await run_job("deliver_outbox", shop.client.app[JOBS]) == 2
    assert await run_job("deliver_outbox", shop.client.app[JOBS]) == 0
    [told] = [m.text for m in shop.outbox.for_user(OWNER)]
    assert order_no in told and told.startswith("🔔")
    assert [r.status for r in await _rows(shop, OWNER)] == ["sent"]

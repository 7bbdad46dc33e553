"""Direct delivery (no WeChat credentials): notices a unit of work committed reach the
outbound sender once, rendered in the customer's language; one that cannot be rendered
is failed at once instead of coming back every lease."""

from __future__ import annotations

from sqlalchemy import select

from bot.keys import DELIVERY, JOBS, SERVICES
from commerce.customers.customers import touch_customer
from commerce.messaging.models import OutboxMessage
from scheduler.runner import run_job
from tests.bot.driver import Shop, db

BUYER = "o_direct_delivery"


async def _rows(shop: Shop) -> list[OutboxMessage]:
    async with db(shop.client.app)() as session:
        return list((await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all())


async def test_a_notice_is_rendered_in_the_customers_language_and_sent_once(make_shop, db_url: str) -> None:
    shop = await make_shop(db_url, scheduler={"enabled": False})
    async with shop.client.app[SERVICES].uow() as uow:
        await touch_customer(uow.session, BUYER, locale="en")
        uow.notify(BUYER, "refund_succeeded", {"order_no": "SO-1", "amount_fen": 1250})
    await shop.client.app[DELIVERY].drain()
    [message] = shop.outbox.for_user(BUYER)
    assert "SO-1" in message.text and "12.50" in message.text
    assert not any("\u4e00" <= ch <= "\u9fff" for ch in message.text)  # English, as the customer chose
    [row] = await _rows(shop)
    assert (row.status, row.channel) == ("sent", "direct")
    assert await run_job("deliver_outbox", shop.client.app[JOBS]) == 0
    assert len(shop.outbox.for_user(BUYER)) == 1


async def test_a_notice_that_cannot_be_rendered_is_failed_not_retried_forever(make_shop, db_url: str) -> None:
    shop = await make_shop(db_url, scheduler={"enabled": False})
    async with shop.client.app[SERVICES].uow() as uow:
        uow.notify(BUYER, "no_such_template", {"order_no": "SO-2"})
        uow.notify(BUYER, "refund_succeeded", {"order_no": "SO-3", "amount_fen": 100})
    await shop.client.app[DELIVERY].drain()
    broken, good = await _rows(shop)
    assert broken.status == "failed" and broken.last_error.startswith("render: no_such_template")
    assert good.status == "sent"  # the one after it in the same transaction still goes
    assert [m.text for m in shop.outbox.for_user(BUYER) if "SO-2" in m.text] == []
    assert await run_job("deliver_outbox", shop.client.app[JOBS]) == 0

"""The shop wired to a fake WeChat server over HTTP (the notification planner in use).

`make_world` (tests/bot/conftest.py) builds one; `join=` builds another worker of the
same world: the same database, the same fake WeChat server (and Redis when configured).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from bot.keys import INBOX, JOBS, NOTIFIER, OUTBOUND, SERVICES
from bot.outbound.planner import NotificationPlanner
from commerce.customers.models import Customer
from commerce.messaging.models import OutboxMessage
from scheduler.runner import run_job
from tests.bot.driver import Shop, db
from tests.fakes.wechat import FakeWeChat

CUSTOMER = "o_planner_cust1"


class World:
    def __init__(self, shop: Shop, wechat: FakeWeChat, wechat_url: str) -> None:
        self.shop = shop
        self.wechat = wechat
        self.wechat_url = wechat_url  # the fake's base URL, for another worker of this world

    @property
    def planner(self) -> NotificationPlanner:
        planner = self.shop.client.app[OUTBOUND]
        assert isinstance(planner, NotificationPlanner)
        return planner

    async def settle(self) -> None:
        await self.shop.client.app[INBOX].drain()
        await self.planner.drain()

    def cs_to(self, openid: str) -> list[dict[str, Any]]:
        return [
            r.json
            for r in self.wechat.api_requests("/message/custom/send")
            if r.json and r.json["touser"] == openid
        ]

    def templates_to(self, openid: str) -> list[dict[str, Any]]:
        return [
            r.json
            for r in self.wechat.api_requests("/message/template/send")
            if r.json and r.json["touser"] == openid
        ]

    def delivered_to(
        self, openid: str, path_part: str = "/message/custom/send"
    ) -> list[dict[str, Any]]:
        """What WeChat accepted (failed attempts left out): customer-service messages by default."""
        return [
            r.json
            for r in self.wechat.delivered
            if path_part in r.path and r.json and r.json["touser"] == openid
        ]

    async def rows(self, openid: str = CUSTOMER) -> list[OutboxMessage]:
        async with db(self.shop.client.app)() as session:
            found = await session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.openid == openid)
                .order_by(OutboxMessage.id)
            )
            return list(found.all())

    async def execute(self, statement: Any) -> None:
        async with db(self.shop.client.app)() as session, session.begin():
            await session.execute(statement)

    async def scalar(self, statement: Any) -> Any:
        async with db(self.shop.client.app)() as session:
            return await session.scalar(statement)

    async def close_window(self, openid: str = CUSTOMER) -> None:
        """As if 49 hours had passed since the customer last wrote (or paid): the window is closed."""
        long_ago = datetime.now(UTC) - timedelta(hours=49)
        values = {"last_message_at": long_ago}
        if hasattr(Customer, "paid_window_at"):  # a payment opens a window too
            values["paid_window_at"] = long_ago
        await self.execute(update(Customer).where(Customer.openid == openid).values(**values))

    async def make_due(self) -> None:
        past = datetime.now(UTC) - timedelta(seconds=1)
        await self.execute(
            update(OutboxMessage)
            .where(OutboxMessage.status == "pending")
            .values(next_attempt_at=past)
        )

    async def deliver_job(self) -> int:
        return await run_job("deliver_outbox", self.shop.client.app[JOBS])

    async def notify_paid(self, order_no: str = "SO123") -> None:
        data = {
            "order_no": order_no,
            "amount_fen": 3990,
            "items": [{"name": "香蕉", "spec": "", "quantity": 2}],
        }
        await self.shop.client.app[NOTIFIER].notify(
            openid=CUSTOMER, template="order_paid", data=data
        )
        await self.planner.drain()

    def forget_touch(self, openid: str = CUSTOMER) -> None:
        """The once-a-minute customer touch cache: as if a minute had passed."""
        self.shop.client.app[SERVICES].customers._recent.pop(openid, None)


WorldFactory = Callable[..., Awaitable[World]]

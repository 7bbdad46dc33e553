"""Fault: PostgreSQL stopped and started under customers and payments (issue 13).

The real `storefront serve --workers 2` on PostgreSQL and Redis, a fake WeChat API
server, customers walking search -> card -> add to cart (tests/faults/test_kill_worker.py
plays WeChat: a 5xx or a timeout is retried with the same MsgId) while WeChat Pay sends
their payment notifications (again until SUCCESS). The database is stopped for a few
seconds mid-load, then started again.

Asserted: during the outage a message is refused (so WeChat retries) or answered
honestly, and afterwards every message got its answer and no cart add was processed
twice; every order paid once, each payer told "支付成功" once, the stock ledger balanced.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from bot.devtools.simulator import WebhookClient
from commerce.db import create_engine
from commerce.payments.sandbox import build_notification
from tests.fakes.wechat import APPID, FakeWeChat
from tests.faults.test_kill_worker import (
    WECHAT_TIMEOUT,
    WeChatSide,
    _serving,
    _start,
    _wait_healthy,
    journey,
)
from tests.faults.test_payment_burst import (
    SECRET,
    WeChatPay,
    _paid_notices,
    _pending_orders,
    until_told,
)
from tests.servers import PostgresServer
from tests.test_cli import STOREFRONT, TOKEN

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(STOREFRONT is None, reason="the storefront console script is not installed"),
]

CUSTOMERS = 10
PAYERS = 10
OUTAGE_AFTER = 0.5  # seconds into the load
OUTAGE = 3.0  # seconds the database is down: shorter than WeChat's retries
TOLD_DEADLINE = 15.0


async def _rows(url: str, sql: str) -> Sequence[Any]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(sql))).all()
    finally:
        await engine.dispose()


async def _stock_ledger(url: str) -> int:
    [(stock,)] = await _rows(url, "SELECT COALESCE(SUM(stock), 0) FROM variants")
    [(held,)] = await _rows(
        url, "SELECT COALESCE(SUM(l.quantity), 0) FROM order_lines l JOIN orders o ON o.id = l.order_id "
        "WHERE o.status != 'cancelled'")
    return int(stock) + int(held)


async def test_postgres_stopped_and_started_loses_no_message_and_no_payment(
    tmp_path: Path, postgres_server: PostgresServer, postgres_url: str, redis_url: str,
    fake_wechat: tuple[FakeWeChat, str], demo_catalog: None,
) -> None:
    fake, api = fake_wechat
    ledger = await _stock_ledger(postgres_url)
    orders = (await _pending_orders(postgres_url))[:PAYERS]
    server = _start(tmp_path, tmp_path / "unused.db", redis_url, api, STOREFRONT_PAY__SANDBOX_SECRET=SECRET,
                    STOREFRONT_DATABASE__URL=postgres_url)
    halted = False
    try:
        await _wait_healthy(server)
        pids = [int(pid) for pid in server.stdout().split("pids ")[1].split()[:2]]
        await _serving(pids, server.port)
        began = time.monotonic()
        openids = [f"o_pgdown_{n:03d}" for n in range(CUSTOMERS)]
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True), timeout=aiohttp.ClientTimeout(total=6)
        ) as session:
            client = WebhookClient(url=f"{server.base}/wechat", token=TOKEN, appid=APPID, encoding_aes_key="",
                                   aes=False, session=session, timeout=WECHAT_TIMEOUT)
            wechat = WeChatSide(client, fake)
            pay = WeChatPay(session, f"{server.base}/pay/notify/sandbox")

            async def payments() -> None:
                for order in orders:  # one every 0.3 s: some meet the outage
                    signed = build_notification(secret=SECRET, order_no=order.order_no, amount_fen=order.payable_fen)
                    await pay.notify(signed)
                    await asyncio.sleep(0.3)

            before, during = openids[: CUSTOMERS // 2], openids[CUSTOMERS // 2 :]
            load = asyncio.gather(payments(), *(journey(wechat, openid) for openid in before),
                                  return_exceptions=True)
            await asyncio.sleep(OUTAGE_AFTER)
            await asyncio.to_thread(postgres_server.halt)
            halted = True
            # these customers' first messages certainly meet the outage
            met = asyncio.gather(*(journey(wechat, openid) for openid in during), return_exceptions=True)
            await asyncio.sleep(OUTAGE)
            await asyncio.to_thread(postgres_server.resume)
            halted = False
            outcomes = [*await load, *await met]
        # a message met the outage: refused (WeChat sent it again) or answered later, never
        # answered at once with anything but its real answer (journey checks each answer)
        assert wechat.retried + wechat.later >= len(during)
        failures = [repr(o) for o in outcomes if isinstance(o, BaseException)]
        assert not failures, "\n".join(failures)

        carts = dict(await _rows(postgres_url, (
            "SELECT c.openid, SUM(l.quantity) FROM cart_lines l JOIN customers c ON c.id = l.customer_id "
            "JOIN variants v ON v.id = l.variant_id JOIN products p ON p.id = v.product_id "
            "WHERE p.name LIKE '%香蕉%' GROUP BY c.openid")))
        assert carts == dict.fromkeys(openids, 1)  # no add processed twice
        paid = dict(await _rows(postgres_url, (
            "SELECT o.order_no, COUNT(e.id) FROM orders o JOIN payment_events e ON e.order_id = o.id "
            "WHERE o.status = 'paid' GROUP BY o.order_no")))
        assert paid == {o.order_no: 1 for o in orders}
        assert await _stock_ledger(postgres_url) == ledger

        payers = {o.openid for o in orders}
        await until_told(fake, payers, TOLD_DEADLINE)
        assert _paid_notices(fake) == dict.fromkeys(payers, 1)
        print(f"load {time.monotonic() - began:.1f} s: passive {wechat.passive}, later {wechat.later}, "
              f"retried deliveries {wechat.retried}, notifications sent again {pay.retried}")
    finally:
        if halted:
            postgres_server.resume()
        server.stop()

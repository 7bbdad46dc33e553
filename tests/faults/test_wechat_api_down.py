"""Fault: the WeChat API refusing, erroring and slower than the timeout (issue 13).

The real `storefront serve --workers 2` on SQLite and Redis, paid through signed sandbox
notifications, tells its customers "支付成功" through a fake WeChat API that first
answers errcode -1 (busy), then HTTP 503, then answers only after the shop's
`wechat.api_timeout_seconds` has passed (the message is still delivered, as WeChat
does), then recovers.

Asserted: every order paid once, the stock ledger balanced, and every customer told
exactly once: a send WeChat certainly refused is sent again after recovery, once; a send
that timed out may have arrived (here it did) and is never sent again.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy.engine import make_url

from commerce.payments.sandbox import build_notification
from tests.fakes.wechat import Failure, FakeWeChat
from tests.faults.test_kill_worker import _serving, _start, _wait_healthy
from tests.faults.test_payment_burst import (
    SECRET,
    WeChatPay,
    _paid_notices,
    _pending_orders,
    _stock_ledger,
    until_told,
)
from tests.test_cli import STOREFRONT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(STOREFRONT is None, reason="the storefront console script is not installed"),
]

API_TIMEOUT = 0.5  # the shop's wait for WeChat's answer
BUSY, REFUSING, SLOW = 4, 4, 3  # calls answered errcode -1, HTTP 503, after the timeout
TOLD_DEADLINE = 20.0  # refused sends go again at the next outbox ticks (every 5 s)


def _outbox_status(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT openid, status FROM outbox WHERE event = 'order_paid'").fetchall())


async def test_wechat_refusing_erroring_and_slow_tells_every_paid_customer_once(
    tmp_path: Path, sqlite_url: str, redis_url: str, fake_wechat: tuple[FakeWeChat, str], demo_catalog: None
) -> None:
    fake, api = fake_wechat
    db = Path(make_url(sqlite_url).database or "")
    ledger = _stock_ledger(db)
    orders = (await _pending_orders(sqlite_url))[:12]
    server = _start(
        tmp_path, db, redis_url, api, STOREFRONT_PAY__SANDBOX_SECRET=SECRET,
        STOREFRONT_WECHAT__API_TIMEOUT_SECONDS=str(API_TIMEOUT), STOREFRONT_WECHAT__OUTBOX_RETRY_SECONDS="1",
    )
    try:
        await _wait_healthy(server)
        pids = [int(pid) for pid in server.stdout().split("pids ")[1].split()[:2]]
        await _serving(pids, server.port)
        fake.fail_next(Failure(errcode=-1), times=BUSY)
        fake.fail_next(Failure(status=503), times=REFUSING)
        fake.fail_next(Failure(delay=API_TIMEOUT * 3), times=SLOW)
        began = time.monotonic()
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True), timeout=aiohttp.ClientTimeout(total=5)
        ) as session:
            pay = WeChatPay(session, f"{server.base}/pay/notify/sandbox")
            for order in orders:  # one after the other: the failures meet the first sends
                await pay.notify(build_notification(secret=SECRET, order_no=order.order_no,
                                                    amount_fen=order.payable_fen))

        with sqlite3.connect(db) as conn:
            paid = dict(conn.execute(
                "SELECT o.order_no, COUNT(e.id) FROM orders o JOIN payment_events e ON e.order_id = o.id "
                "WHERE o.status = 'paid' GROUP BY o.order_no").fetchall())
        assert paid == {o.order_no: 1 for o in orders}
        assert _stock_ledger(db) == ledger

        openids = {o.openid for o in orders}
        await until_told(fake, openids, TOLD_DEADLINE)
        statuses = _outbox_status(db)
        assert _paid_notices(fake) == dict.fromkeys(openids, 1), statuses
        assert not fake._failures  # every failure was met
        # the timed-out sends were delivered by WeChat and never repeated; the refused ones were,
        # once each: one request per order, one more per refusal
        assert sorted(statuses.values()) == ["sent"] * (len(orders) - SLOW) + ["uncertain"] * SLOW, statuses
        assert len(fake.api_requests("custom/send")) == len(orders) + BUSY + REFUSING
        print(f"told everyone in {time.monotonic() - began:.1f} s; outbox {sorted(statuses.values())}")
    finally:
        server.stop()

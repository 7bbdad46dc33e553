"""Fault: a worker killed with -9 during a burst of payment notifications (issue 13).

The real `storefront serve --workers 2` runs in subprocesses on SQLite and Redis, with a
fake WeChat API server recording the customer-service messages. Pending orders are in
the database (stock reserved, as placement leaves them); then every order's signed
sandbox payment notification arrives at once, a third of them twice (WeChat Pay sends
again when it is unsure), over a connection each, so the kernel spreads them over both
workers. WeChat Pay's side is played as it plays it: a notification not answered
SUCCESS (an error, a dropped connection) is sent again, the same body, until it is.
One worker is killed mid-burst; the supervisor restarts it. At the end the supervisor
itself is killed -9: its workers must stop by themselves.

Asserted: every order paid exactly once (one payment event each, no order doubled),
every customer told "支付成功" by the fake WeChat once and never twice, the stock ledger
balanced (stock plus the units of non-cancelled orders unchanged).

The one exception is the outbox's at-most-once rule (commerce/messaging/outbox.py): a
notice whose send the killed worker had begun (its channel written, the call maybe made)
is never sent again, because WeChat cannot be asked whether it arrived. Such a notice
stays `sending` until its lease runs out and then shows to staff as uncertain. Only the
few sends in flight at the kill can end so.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import make_url

from commerce.catalog.models import Variant
from commerce.db import create_engine, session_factory
from commerce.payments.sandbox import SignedNotification, build_notification
from tests.fakes import PlacedOrder, insert_order
from tests.fakes.wechat import FakeWeChat
from tests.faults.test_kill_worker import _restarted, _serving, _start, _wait_healthy
from tests.test_cli import STOP_TIMEOUT, STOREFRONT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(STOREFRONT is None, reason="the storefront console script is not installed"),
]

ORDERS = 30
QUANTITY = 2
SECRET = "fault-sandbox-secret"
RETRY_PAUSE = 0.5  # WeChat Pay waits 15 s, 15 s, 30 s...; the test does not
NOTIFY_DEADLINE = 20.0  # every notification answered SUCCESS by then
TOLD_DEADLINE = 15.0  # every "支付成功" at the fake WeChat by then: a dead writer's within ~10 s
SETTLE = 2.0  # then this long without a second one
KILL_AFTER = ORDERS // 3  # SUCCESS answers before the kill: mid-burst
PAID_TEXT = "支付成功"
IN_FLIGHT_AT_MOST = 5  # notices a worker can have begun and not finished when it is killed


async def _pending_orders(url: str) -> list[PlacedOrder]:
    """One pending order per customer, its stock reserved as `place_order` reserves it."""
    engine = create_engine(url)
    try:
        sessions = session_factory(engine)
        placed = []
        for n in range(ORDERS):
            order = await insert_order(sessions, openid=f"o_payer_{n:03d}", quantity=QUANTITY)
            async with sessions() as session, session.begin():
                first = select(Variant.id).order_by(Variant.id).limit(1).scalar_subquery()
                await session.execute(update(Variant).where(Variant.id == first).values(stock=Variant.stock - QUANTITY))
            placed.append(order)
        return placed
    finally:
        await engine.dispose()


def _stock_ledger(db: Path) -> int:
    """Stock on the shelves plus the units in orders that still hold theirs."""
    with sqlite3.connect(db) as conn:
        stock = conn.execute("SELECT COALESCE(SUM(stock), 0) FROM variants").fetchone()[0]
        held = conn.execute(
            "SELECT COALESCE(SUM(l.quantity), 0) FROM order_lines l JOIN orders o ON o.id = l.order_id "
            "WHERE o.status != 'cancelled'"
        ).fetchone()[0]
    return int(stock) + int(held)


async def until_told(fake: FakeWeChat, openids: set[str], timeout: float) -> None:
    """Until each of `openids` was told "支付成功" (or `timeout`), then `SETTLE` more for a second notice."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if set(_paid_notices(fake)) >= openids:
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(SETTLE)


def _outbox(db: Path, openids: set[str]) -> list[tuple[str, ...]]:
    """The outbox rows of these customers: what became of their notices."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT openid, event, status, channel, attempts, next_attempt_at, last_error, created_at FROM outbox"
        ).fetchall()
    return [row for row in rows if row[0] in openids]


class WeChatPay:
    """Sends notifications as WeChat Pay does: again, the same body, until SUCCESS."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url
        self.succeeded = 0
        self.retried = 0
        self.midway = asyncio.Event()

    async def notify(self, signed: SignedNotification) -> None:
        deadline = time.monotonic() + NOTIFY_DEADLINE
        while True:
            try:
                async with self.session.post(self.url, data=signed.body, headers=signed.headers) as response:
                    body = await response.text()
                    if response.status == 200 and '"SUCCESS"' in body:
                        self.succeeded += 1
                        if self.succeeded >= KILL_AFTER:
                            self.midway.set()
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass  # the worker died under the connection: sent again
            assert time.monotonic() < deadline, "a payment notification was never answered SUCCESS"
            self.retried += 1
            await asyncio.sleep(RETRY_PAUSE)


def _paid_notices(fake: FakeWeChat) -> dict[str, int]:
    told: dict[str, int] = {}
    for received in fake.delivered:
        data = received.json or {}
        if "custom/send" in received.path and PAID_TEXT in str(data.get("text", {}).get("content", "")):
            told[data["touser"]] = told.get(data["touser"], 0) + 1
    return told


async def test_a_worker_killed_during_a_payment_burst_pays_each_order_once_and_tells_no_customer_twice(
    tmp_path: Path, sqlite_url: str, redis_url: str, fake_wechat: tuple[FakeWeChat, str], demo_catalog: None
) -> None:
    fake, api = fake_wechat
    db = Path(make_url(sqlite_url).database or "")
    ledger = _stock_ledger(db)
    orders = await _pending_orders(sqlite_url)
    assert _stock_ledger(db) == ledger
    server = _start(tmp_path, db, redis_url, api, STOREFRONT_PAY__SANDBOX_SECRET=SECRET)
    try:
        began = time.monotonic()
        await _wait_healthy(server)
        pids = [int(pid) for pid in server.stdout().split("pids ")[1].split()[:2]]
        await _serving(pids, server.port)
        burst_began = time.monotonic()
        signed = [build_notification(secret=SECRET, order_no=o.order_no, amount_fen=o.payable_fen) for o in orders]
        deliveries = signed + signed[::3]  # a third sent twice, at the same time
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True), timeout=aiohttp.ClientTimeout(total=5)
        ) as session:
            pay = WeChatPay(session, f"{server.base}/pay/notify/sandbox")
            burst = asyncio.gather(*(pay.notify(s) for s in deliveries), return_exceptions=True)
            await asyncio.wait_for(pay.midway.wait(), NOTIFY_DEADLINE)
            os.kill(pids[0], signal.SIGKILL)
            outcomes = await burst
        failures = [repr(o) for o in outcomes if isinstance(o, BaseException)]
        assert not failures, "\n".join(failures)
        burst_took = time.monotonic() - burst_began

        with sqlite3.connect(db) as conn:
            statuses = dict(conn.execute("SELECT order_no, status FROM orders").fetchall())
            events = dict(conn.execute(
                "SELECT o.order_no, COUNT(e.id) FROM orders o LEFT JOIN payment_events e "
                "ON e.order_id = o.id AND e.kind = 'payment' GROUP BY o.order_no").fetchall())
        assert statuses == {o.order_no: "paid" for o in orders}  # no order doubled, none left unpaid
        assert events == {o.order_no: 1 for o in orders}  # each payment recorded once
        assert _stock_ledger(db) == ledger

        openids = {o.openid for o in orders}
        await until_told(fake, openids, TOLD_DEADLINE)
        told = _paid_notices(fake)
        assert set(told.values()) == {1}, told  # nobody twice
        cut_short = _outbox(db, openids - set(told))  # the killed worker's sends under way, if any
        assert len(cut_short) <= IN_FLIGHT_AT_MOST, cut_short
        assert all(row[2:4] == ("sending", "customer_service") for row in cut_short), cut_short
        await _restarted(server, 0)
        print(f"healthy after {burst_began - began:.1f} s, burst {burst_took:.1f} s, "
              f"{len(deliveries)} notifications, {pay.retried} sent again")

        # the supervisor itself killed: its workers stop by themselves (no orphan keeps the port)
        workers = _children(server.proc.pid)
        assert len(workers) >= 2
        server.proc.kill()
        server.proc.wait()
        for _ in range(5 * (STOP_TIMEOUT + 10)):  # 0.2-s looks
            if not any(_running(pid) for pid in workers):
                break
            await asyncio.sleep(0.2)
        assert not any(_running(pid) for pid in workers), server.stderr()
        assert "this worker stops" in server.stderr()
    finally:
        server.stop()


def _children(pid: int) -> list[int]:
    """The supervisor's worker processes (Linux /proc), the resource tracker left out."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if "spawn_main" in Path(f"/proc/{child}/cmdline").read_text(errors="replace"):
                found.append(int(child))
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie (a worker whose parent is gone is reaped by init)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False

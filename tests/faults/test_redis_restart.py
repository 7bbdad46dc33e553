"""Fault: Redis stopped, then restarted empty, under two workers mid-journey (issue 13).

The real `storefront serve --workers 2` on PostgreSQL and a Redis of the test's own
(tests/servers.py `RestartableRedis`), with the fake WeChat API. Customers open the
banana card while Redis is up; Redis is stopped as they add it to the cart, check out
and give their address (WeChat played as in tests/faults/test_kill_worker.py: a 5xx or a
timeout is sent again with the same MsgId); Redis is started again, empty (what a Redis
without persistence is after a restart), and they confirm, get the pay card and pay.

Asserted: `/healthz` says Redis is degraded while it is down (and still answers 200);
every message got its real answer (passive or customer-service); the checkout begun
while Redis was down continues after it came back empty (the dialog is also kept in
the `dialog_states` table); each customer has one order holding the one bag added (no
cart line doubled), paid once, and was told "支付成功" once; the stock ledger balanced.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from bot.devtools.simulator import WebhookClient
from commerce.payments.sandbox import build_notification
from tests.bot.test_search_chat import numbered
from tests.fakes.wechat import APPID, FakeWeChat
from tests.faults.test_kill_worker import (
    WECHAT_TIMEOUT,
    WeChatSide,
    _serving,
    _start,
    _wait_healthy,
)
from tests.faults.test_payment_burst import SECRET, WeChatPay, _paid_notices, until_told
from tests.faults.test_postgres_outage import _rows, _stock_ledger
from tests.servers import RestartableRedis
from tests.test_cli import STOREFRONT, TOKEN

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(STOREFRONT is None, reason="the storefront console script is not installed"),
]

CUSTOMERS = 6
ADDRESS = "张三 13800138000 上海市浦东新区世纪大道100号"
TOLD_DEADLINE = 15.0


@pytest.fixture
def redis_of_its_own() -> Iterator[RestartableRedis]:
    server = RestartableRedis()
    try:
        yield server
    finally:
        server.close()


async def _open_card(wechat: WeChatSide, openid: str) -> None:
    results = numbered(await wechat.ask(openid, "香蕉"))
    number = next(n for n, line in results.items() if "香蕉" in line)
    assert "香蕉" in await wechat.ask(openid, str(number))


async def _add_and_check_out(wechat: WeChatSide, openid: str) -> None:
    added = await wechat.ask(openid, "加入购物车")
    assert "已加入购物车" in added and "香蕉" in added, added
    asked = await wechat.ask(openid, "结算")
    assert "请发送收货信息" in asked, asked
    parsed = await wechat.ask(openid, ADDRESS)
    assert "138****8000" in parsed, parsed


async def _confirm(wechat: WeChatSide, openid: str) -> None:
    review = await wechat.ask(openid, "确认")  # the checkout's address step, kept through the restart
    assert "应付" in review, review
    card = await wechat.ask(openid, "确认")
    assert card.startswith("订单待支付"), card


async def _health(session: aiohttp.ClientSession, base: str) -> tuple[int, dict[str, object]]:
    async with session.get(f"{base}/healthz") as response:
        return response.status, await response.json()


async def test_redis_stopped_and_restarted_empty_keeps_every_journey_and_doubles_nothing(
    tmp_path: Path, postgres_url: str, redis_of_its_own: RestartableRedis,
    fake_wechat: tuple[FakeWeChat, str], demo_catalog: None,
) -> None:
    fake, api = fake_wechat
    redis = redis_of_its_own
    ledger = await _stock_ledger(postgres_url)
    server = _start(tmp_path, tmp_path / "unused.db", redis.url, api, STOREFRONT_DATABASE__URL=postgres_url,
                    STOREFRONT_PAY__SANDBOX_SECRET=SECRET, STOREFRONT_SERVER__HEALTH_TIMEOUT_SECONDS="0.5")
    stopped = False
    try:
        await _wait_healthy(server)
        pids = [int(pid) for pid in server.stdout().split("pids ")[1].split()[:2]]
        await _serving(pids, server.port)
        began = time.monotonic()
        openids = [f"o_redis_{n:03d}" for n in range(CUSTOMERS)]
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True), timeout=aiohttp.ClientTimeout(total=6)
        ) as session:
            client = WebhookClient(url=f"{server.base}/wechat", token=TOKEN, appid=APPID, encoding_aes_key="",
                                   aes=False, session=session, timeout=WECHAT_TIMEOUT)
            wechat = WeChatSide(client, fake)

            async def phase(step: Callable[[WeChatSide, str], Awaitable[None]]) -> None:
                outcomes = await asyncio.gather(*(step(wechat, o) for o in openids), return_exceptions=True)
                failures = [f"{o}: {r!r}" for o, r in zip(openids, outcomes, strict=True) if isinstance(r, BaseException)]
                assert not failures, "\n".join(failures)

            await phase(_open_card)
            checkouts = asyncio.create_task(phase(_add_and_check_out))
            await asyncio.to_thread(redis.stop)  # as the customers' first messages of the phase arrive
            stopped = True
            # every worker that answers /healthz (the kernel picks one per connection) pings Redis
            for _ in range(4):
                status, health = await _health(session, server.base)
                assert (status, health["status"]) == (200, "degraded"), health
                assert health["checks"] == {"database": "ok", "redis": "degraded", "scheduler": "ok"}, health
            await checkouts
            await asyncio.to_thread(redis.start)  # empty: every dialog it cached is gone
            stopped = False
            await phase(_confirm)

            placed = await _rows(postgres_url, (
                "SELECT c.openid, o.order_no FROM orders o JOIN customers c ON c.id = o.customer_id"))
            assert sorted(openid for openid, _no in placed) == sorted(openids)  # one order each, none doubled
            orders = dict(placed)
            amounts = dict(await _rows(postgres_url, "SELECT order_no, payable_fen FROM orders"))
            pay = WeChatPay(session, f"{server.base}/pay/notify/sandbox")
            paid = await asyncio.gather(*(
                pay.notify(build_notification(secret=SECRET, order_no=no, amount_fen=amounts[no]))
                for no in orders.values()), return_exceptions=True)
            assert not [repr(p) for p in paid if isinstance(p, BaseException)]

        lines = await _rows(postgres_url, (
            "SELECT c.openid, SUM(l.quantity) FROM order_lines l JOIN orders o ON o.id = l.order_id "
            "JOIN customers c ON c.id = o.customer_id GROUP BY c.openid"))
        assert dict(lines) == dict.fromkeys(openids, 1)  # the one bag: no add processed twice
        events = await _rows(postgres_url, (
            "SELECT o.order_no, COUNT(e.id) FROM orders o JOIN payment_events e ON e.order_id = o.id "
            "WHERE o.status = 'paid' AND e.kind = 'payment' GROUP BY o.order_no"))
        assert dict(events) == dict.fromkeys(orders.values(), 1)
        assert await _stock_ledger(postgres_url) == ledger
        await until_told(fake, set(openids), TOLD_DEADLINE)
        assert _paid_notices(fake) == dict.fromkeys(openids, 1)
        print(f"journeys and payments {time.monotonic() - began:.1f} s: passive {wechat.passive}, "
              f"later {wechat.later}, retried deliveries {wechat.retried}")
    finally:
        if stopped:
            redis.start()
        server.stop()

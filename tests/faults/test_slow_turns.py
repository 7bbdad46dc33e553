"""Faults that make chat turns slow: SQLite's write lock held by another process past the
busy timeout, and the late answers then going out through a WeChat API that refuses
(issue 13).

One real `storefront serve --workers 2` on a SQLite file and Redis, with the fake WeChat
API, serves both parts of the test (`shop`: a start-up costs more than a part). The busy
timeout is short (`BUSY_TIMEOUT`), so is WeChat's passive wait
(`server.reply_deadline_seconds`, 0.5 s), and a refused send is retried at the outbox
job's next tick. WeChat is played as in
tests/faults/test_kill_worker.py (a 5xx or a timeout is sent again with the same MsgId;
"success" means the answer comes as a customer-service message).

The lock is taken by a separate process (`HOLDER`, plain `sqlite3`: `BEGIN IMMEDIATE`)
the moment a message is being worked on (claimed, not yet answered), and held `HOLD`
seconds, longer than the busy timeout: the turn's writes fail with "database is locked"
and are run again, the reply cannot be stored until the lock is gone, so WeChat's wait
passes and that answer goes out as a customer-service message.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy.engine import make_url

from bot.devtools.simulator import WebhookClient, build_message_xml
from tests.bot.test_search_chat import numbered
from tests.fakes.wechat import APPID, Failure, FakeWeChat
from tests.faults.test_kill_worker import (
    WECHAT_TIMEOUT,
    WeChatSide,
    _alive,
    _serving,
    _start,
    _wait_healthy,
    sent_to,
)
from tests.faults.test_payment_burst import _stock_ledger
from tests.test_cli import STOREFRONT, TOKEN, Server

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(STOREFRONT is None, reason="the storefront console script is not installed"),
]

BUSY_TIMEOUT = 0.3  # database.busy_timeout_seconds
HOLD = 1.5  # the other process holds the write lock this long: five busy timeouts, past WeChat's wait
ADDRESS = "张三 13800138000 上海市浦东新区世纪大道100号"
OUTBOX_DONE_DEADLINE = 20.0  # refused sends go again at the outbox job's ticks (every 5 s)

# The other process: waits for a message being worked on, takes the write lock (checking,
# lock in hand, that the message is still unanswered), holds it, then gives it back.
HOLDER = r"""
import sqlite3, sys, time
db, hold, deadline = sys.argv[1], float(sys.argv[2]), time.monotonic() + float(sys.argv[3])
conn = sqlite3.connect(db, isolation_level=None, timeout=30)
working = "SELECT 1 FROM inbound_messages WHERE status = 'processing' LIMIT 1"
print("armed", flush=True)
while time.monotonic() < deadline:
    if conn.execute(working).fetchone():
        conn.execute("BEGIN IMMEDIATE")
        if conn.execute(working).fetchone():
            print("locked", flush=True)
            time.sleep(hold)
            conn.execute("COMMIT")
            print("released", flush=True)
            sys.exit(0)
        conn.execute("COMMIT")
    time.sleep(0.002)
print("missed", flush=True)
"""


@dataclass
class SlowShop:
    server: Server
    fake: FakeWeChat
    db: Path


@pytest.fixture
async def shop(
    tmp_path: Path, sqlite_url: str, redis_url: str, fake_wechat: tuple[FakeWeChat, str], demo_catalog: None
) -> AsyncIterator[SlowShop]:
    """The server, its fake WeChat and its database."""
    fake, api = fake_wechat
    db = Path(make_url(sqlite_url).database or "")
    server = _start(
        tmp_path, db, redis_url, api, STOREFRONT_DATABASE__BUSY_TIMEOUT_SECONDS=str(BUSY_TIMEOUT),
        STOREFRONT_SERVER__REPLY_DEADLINE_SECONDS="0.5", STOREFRONT_WECHAT__OUTBOX_RETRY_SECONDS="0.2",
    )
    try:
        await _wait_healthy(server)
        pids = [int(pid) for pid in server.stdout().split("pids ")[1].split()[:2]]
        await _serving(pids, server.port)
        yield SlowShop(server, fake, db)
    finally:
        server.stop()


@asynccontextmanager
async def lock_while_working(db: Path, *, hold: float = HOLD, within: float = 15.0) -> AsyncIterator[None]:
    """Another process takes SQLite's write lock as soon as a message is being worked on
    (meanwhile, within `within` seconds) and holds it `hold` seconds; on leaving, wait until
    it gave it back. Fails when it never found a message to lock on."""
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, str(db), str(hold), str(within), stdout=asyncio.subprocess.PIPE
    )
    assert holder.stdout is not None
    try:
        assert await holder.stdout.readline() == b"armed\n"
        yield
        said = (await asyncio.wait_for(holder.stdout.read(), within + hold + 5)).decode()
        assert said.split() == ["locked", "released"], said
    finally:
        if holder.returncode is None:
            holder.kill()
        await holder.wait()


def _side(session: aiohttp.ClientSession, shop: SlowShop) -> WeChatSide:
    client = WebhookClient(url=f"{shop.server.base}/wechat", token=TOKEN, appid=APPID, encoding_aes_key="",
                           aes=False, session=session, timeout=WECHAT_TIMEOUT)
    return WeChatSide(client, shop.fake)


async def _each(openids: list[str], step: Callable[[str], Awaitable[None]]) -> None:
    """`step` for every customer at once; every failure named."""
    outcomes = await asyncio.gather(*(step(openid) for openid in openids), return_exceptions=True)
    failures = [f"{o}: {r!r}" for o, r in zip(openids, outcomes, strict=True) if isinstance(r, BaseException)]
    assert not failures, "\n".join(failures)


async def _open_card(wechat: WeChatSide, openid: str) -> None:
    results = numbered(await wechat.ask(openid, "香蕉"))
    number = next(n for n, line in results.items() if "香蕉" in line)
    assert "香蕉" in await wechat.ask(openid, str(number))


async def _add(wechat: WeChatSide, openid: str) -> None:
    added = await wechat.ask(openid, "加入购物车")
    assert "已加入购物车" in added and "香蕉" in added, added


async def _to_review(wechat: WeChatSide, openid: str) -> None:
    assert "请发送收货信息" in (asked := await wechat.ask(openid, "结算")), asked
    assert "138****8000" in (parsed := await wechat.ask(openid, ADDRESS)), parsed
    assert "应付" in (review := await wechat.ask(openid, "确认")), review


async def _place(wechat: WeChatSide, openid: str) -> None:
    card = await wechat.ask(openid, "确认")
    assert card.startswith("订单待支付"), card


def _orders(db: Path, openids: list[str]) -> dict[str, list[int]]:
    """Each customer's orders, as the banana bags in each."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT c.openid, o.id, SUM(l.quantity) FROM orders o JOIN customers c ON c.id = o.customer_id "
            "JOIN order_lines l ON l.order_id = o.id GROUP BY c.openid, o.id").fetchall()
    orders: dict[str, list[int]] = {}
    for openid, _order, bags in rows:
        if openid in openids:
            orders.setdefault(openid, []).append(int(bags))
    return orders


def _busy_retries(server: Server) -> int:
    return server.stderr().count("database busy; the turn runs again")


async def test_turns_slowed_by_another_process_holding_the_write_lock_lose_no_answer_and_no_order(
    shop: SlowShop,
) -> None:
    """Both parts on one server: a start-up costs more than either part. First, without the
    lock, what two workers on one port do anyway: a retry sent while its first delivery
    is still being answered gets the same answer, whichever worker each reaches. Last,
    Ctrl-C stops both workers cleanly."""
    owed = await _retries_answered_once_across_workers(shop)
    await _orders_under_the_lock(shop)
    await _late_answers_through_a_refusing_wechat(shop)
    sent = {openid: len(sent_to(shop.fake, openid)) for openid in owed}
    assert sent == owed  # seconds later: no answer of the first part came a second time
    pids = [int(pid) for pid in shop.server.stdout().split("pids ")[1].split()[:2]]
    assert await asyncio.to_thread(shop.server.stop) == 0, shop.server.stderr()
    assert not any(_alive(pid) for pid in pids)


async def _retries_answered_once_across_workers(shop: SlowShop) -> dict[str, int]:
    """Each message sent twice at once: one reply for both deliveries (or, when WeChat's
    0.5-s wait passed, none and one customer-service message), and the message written
    down and processed once. The customer-service messages each customer is owed."""
    openids = [f"o_twice_{n:03d}" for n in range(12)]
    owed: dict[str, int] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        wechat = _side(session, shop)
        messages = [
            build_message_xml(to_user="gh_fault", from_user=openid, kind="text", create_time=int(time.time()),
                              msg_id=900_000 + n, content="pingguo")
            for n, openid in enumerate(openids)
        ]
        replies = await asyncio.gather(*(wechat.client.send(m) for m in messages + messages))
        for n, openid in enumerate(openids):
            passive = {replies[n].text, replies[len(openids) + n].text} - {""}
            assert len(passive) <= 1, passive  # the retry got its first delivery's reply
            owed[openid] = 0 if passive else 1
            answer = passive.pop() if passive else await wechat.customer_service(openid)
            assert "烟台红富士苹果" in answer, answer
    with sqlite3.connect(shop.db) as conn:
        rows = conn.execute("SELECT openid, status, attempts FROM inbound_messages WHERE openid LIKE 'o_twice_%'")
        journal = {openid: (status, attempts) for openid, status, attempts in rows}
    assert journal == dict.fromkeys(openids, ("answered", 1))  # written down once, processed once
    return owed


async def _orders_under_the_lock(shop: SlowShop) -> None:
    """Customers add to the cart and place their orders while the lock is held past the
    busy timeout: every message gets its real answer (as a customer-service message when
    late), one order of one bag each, none doubled, the stock ledger balanced."""
    openids = [f"o_locked_{n:03d}" for n in range(6)]
    ledger = _stock_ledger(shop.db)
    retried_before = _busy_retries(shop.server)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        wechat = _side(session, shop)
        await _each(openids, lambda openid: _open_card(wechat, openid))
        async with lock_while_working(shop.db):
            await _each(openids, lambda openid: _add(wechat, openid))
        await _each(openids, lambda openid: _to_review(wechat, openid))
        async with lock_while_working(shop.db):
            await _each(openids, lambda openid: _place(wechat, openid))
    assert _orders(shop.db, openids) == {openid: [1] for openid in openids}  # one order of one bag: none doubled
    assert _stock_ledger(shop.db) == ledger
    assert wechat.later >= 2  # the messages the lock caught were answered late, as customer-service messages
    assert _busy_retries(shop.server) > retried_before  # turns met the lock past the busy timeout
    print(f"passive {wechat.passive}, later {wechat.later}, retried deliveries {wechat.retried}, "
          f"turns run again {_busy_retries(shop.server) - retried_before}")


def _outbox(db: Path, openids: list[str]) -> list[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT openid, status FROM outbox").fetchall()
    return sorted(status for openid, status in rows if openid in openids)


async def _late_answers_through_a_refusing_wechat(shop: SlowShop) -> None:
    """Pay cards made late by the lock go out as customer-service messages while WeChat
    refuses (errcode -1, then HTTP 503), then takes them: each arrives exactly once."""
    openids = [f"o_refused_{n:03d}" for n in range(3)]
    ledger = _stock_ledger(shop.db)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        wechat = _side(session, shop)
        await _each(openids, lambda openid: _open_card(wechat, openid))
        await _each(openids, lambda openid: _add(wechat, openid))
        await _each(openids, lambda openid: _to_review(wechat, openid))
        later_before = wechat.later
        shop.fake.fail_next(Failure(errcode=-1))  # busy
        shop.fake.fail_next(Failure(status=503))
        async with lock_while_working(shop.db):
            await _each(openids, lambda openid: _place(wechat, openid))  # the pay card, late for some
        late = wechat.later - later_before
        assert late >= 1
        deadline = time.monotonic() + OUTBOX_DONE_DEADLINE
        while _outbox(shop.db, openids) != ["sent"] * late:  # every late answer settled, none left to retry
            assert time.monotonic() < deadline, _outbox(shop.db, openids)
            await asyncio.sleep(0.1)
    assert not shop.fake._failures  # WeChat refused sends of these answers, and then took them
    sends = [r for r in shop.fake.api_requests("custom/send") if (r.json or {}).get("touser") in openids]
    assert len(sends) == late + 2  # each late answer sent until WeChat took it, once
    cards = {openid: [t for t in sent_to(shop.fake, openid) if t.startswith("订单待支付")] for openid in openids}
    assert sum(len(c) for c in cards.values()) == late and all(len(c) <= 1 for c in cards.values()), cards
    assert _orders(shop.db, openids) == {openid: [1] for openid in openids}
    assert _stock_ledger(shop.db) == ledger
    print(f"passive {wechat.passive}, later {wechat.later}")

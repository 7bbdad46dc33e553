"""Search at catalog scale: `python bench/search.py [--sizes 10000 100000] [--queries 500]`.

Generates N synthetic products deterministically (Chinese names composed from word
lists of origins, brands, adjectives and products, English subtitles, tags and
categories). With the default `--vocabulary realistic`, every product also carries
made-up brand and descriptive words drawn from a Zipf-distributed vocabulary of
400k words (over 100k distinct terms at 100k products, as a real catalog has);
`--vocabulary small` keeps the old 165 words. Then, per size:

1. builds a `SearchIndex` in memory and times a mixed query set (Chinese, English,
   plurals, pinyin, initials, typos, homophones, misses, junk, the made-up words);
2. writes the products into a SQLite file (migrated, bulk inserts) and, in a fresh
   process, loads the catalog as a worker does (`commerce.catalog.read.Catalog`): the
   first load, a full rebuild in the background and a CSV import (each with a 5 ms
   loop-lag probe running: max and p99 of how late it woke), one staff edit applied
   incrementally (median and max of 20), and the process's memory (RSS by column, as
   after hours of searches, and each swap's own peak).

Lives outside the test suite on purpose: timings are not assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import random
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

if __name__ == "__main__" and not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

from commerce.catalog.search import SearchDoc, SearchIndex


@dataclass(frozen=True, slots=True)
class Product:
    """A product noun with everything needed to describe it in both languages."""

    zh: str
    en: str
    pinyin: str
    category_zh: str
    category_en: str


PRODUCTS: tuple[Product, ...] = (
    Product("苹果", "apple", "pingguo", "水果", "Fruit"),
    Product("香蕉", "banana", "xiangjiao", "水果", "Fruit"),
    Product("草莓", "strawberry", "caomei", "水果", "Fruit"),
    Product("脐橙", "navel orange", "qicheng", "水果", "Fruit"),
    Product("葡萄", "grape", "putao", "水果", "Fruit"),
    Product("猕猴桃", "kiwi", "mihoutao", "水果", "Fruit"),
    Product("芒果", "mango", "mangguo", "水果", "Fruit"),
    Product("西瓜", "watermelon", "xigua", "水果", "Fruit"),
    Product("樱桃", "cherry", "yingtao", "水果", "Fruit"),
    Product("荔枝", "lychee", "lizhi", "水果", "Fruit"),
    Product("绿茶", "green tea", "lvcha", "茶叶", "Tea"),
    Product("红茶", "black tea", "hongcha", "茶叶", "Tea"),
    Product("乌龙茶", "oolong tea", "wulongcha", "茶叶", "Tea"),
    Product("普洱茶", "pu'er tea", "puercha", "茶叶", "Tea"),
    Product("大米", "rice", "dami", "粮油", "Grain & Oil"),
    Product("香米", "jasmine rice", "xiangmi", "粮油", "Grain & Oil"),
    Product("花生油", "peanut oil", "huashengyou", "粮油", "Grain & Oil"),
    Product("挂面", "noodles", "guamian", "粮油", "Grain & Oil"),
    Product("手机", "smartphone", "shouji", "数码", "Electronics"),
    Product("耳机", "earphones", "erji", "数码", "Electronics"),
    Product("充电宝", "power bank", "chongdianbao", "数码", "Electronics"),
    Product("平板电脑", "tablet", "pingbandiannao", "数码", "Electronics"),
    Product("T恤", "t-shirt", "txu", "服装", "Clothing"),
    Product("牛仔裤", "jeans", "niuzaiku", "服装", "Clothing"),
    Product("羽绒服", "down jacket", "yurongfu", "服装", "Clothing"),
    Product("运动鞋", "sneakers", "yundongxie", "服装", "Clothing"),
    Product("连衣裙", "dress", "lianyiqun", "服装", "Clothing"),
    Product("纯牛奶", "milk", "chunniunai", "乳品", "Dairy"),
    Product("酸奶", "yogurt", "suannai", "乳品", "Dairy"),
    Product("奶酪", "cheese", "nailao", "乳品", "Dairy"),
    Product("巧克力", "chocolate", "qiaokeli", "零食", "Snacks"),
    Product("坚果", "nuts", "jianguo", "零食", "Snacks"),
    Product("薯片", "potato chips", "shupian", "零食", "Snacks"),
    Product("饼干", "biscuits", "binggan", "零食", "Snacks"),
    Product("洗衣液", "laundry detergent", "xiyiye", "日用品", "Household"),
    Product("抽纸", "facial tissues", "chouzhi", "日用品", "Household"),
    Product("牙膏", "toothpaste", "yagao", "日用品", "Household"),
    Product("洗发水", "shampoo", "xifashui", "日用品", "Household"),
)

ORIGINS: tuple[tuple[str, str], ...] = (
    ("烟台", "Yantai"),
    ("新疆", "Xinjiang"),
    ("海南", "Hainan"),
    ("云南", "Yunnan"),
    ("四川", "Sichuan"),
    ("山东", "Shandong"),
    ("五常", "Wuchang"),
    ("东北", "Northeast"),
    ("西湖", "West Lake"),
    ("安溪", "Anxi"),
    ("赣南", "Gannan"),
    ("丹东", "Dandong"),
    ("泰国", "Thai"),
    ("日本", "Japanese"),
    ("澳洲", "Australian"),
    ("内蒙古", "Inner Mongolia"),
)

BRANDS: tuple[tuple[str, str], ...] = (
    ("伊利", "Yili"),
    ("蒙牛", "Mengniu"),
    ("华为", "Huawei"),
    ("小米", "Xiaomi"),
    ("三只松鼠", "Three Squirrels"),
    ("良品铺子", "Bestore"),
    ("百草味", "Be&Cheery"),
    ("农夫山泉", "Nongfu"),
    ("金龙鱼", "Arawana"),
    ("李宁", "Li-Ning"),
    ("安踏", "Anta"),
    ("蓝月亮", "Bluemoon"),
    ("维达", "Vinda"),
    ("德芙", "Dove"),
    ("优衣库", "Uniqlo"),
    ("百雀羚", "Pechoin"),
)

ADJECTIVES: tuple[tuple[str, str], ...] = (
    ("新鲜", "fresh"),
    ("有机", "organic"),
    ("精选", "selected"),
    ("特级", "premium"),
    ("进口", "imported"),
    ("礼盒装", "gift box"),
    ("家庭装", "family pack"),
    ("冰糖心", "sugar core"),
    ("红富士", "Fuji"),
    ("脆甜", "crisp and sweet"),
    ("低脂", "low fat"),
    ("加厚", "thick"),
    ("轻薄", "light"),
    ("爆款", "best seller"),
    ("限量", "limited"),
    ("经典", "classic"),
)

SPECS: tuple[str, ...] = ("500g", "1kg", "2.5kg", "5kg", "250ml", "1L", "12枚", "6只", "XL", "M")

SELLING_LINES: tuple[str, ...] = (
    "ships within 24 hours",
    "direct from the farm",
    "great value",
    "customer favourite",
    "satisfaction guaranteed",
    "new season",
)

HOMOPHONES: tuple[str, ...] = ("平果", "香焦", "草梅", "巧克利", "洗衣夜", "牛崽裤", "酸乃")

FIXED_MISSES: tuple[str, ...] = ("zzzzqqq", "qwxzvbn", "火箭发动机", "xyzzyplugh")

WORST_CASES: tuple[str, ...] = (
    "烟台红富士苹果新疆阿克苏冰糖心苹果海南香蕉丹东草莓赣南脐橙菠萝西湖龙井绿茶安溪铁观音云南普洱茶饼",
    "qwer asdf zxcv tyui ghjk bnmq wert sdfg xcvb yuio hjkl",
    "fresh apple banana strawberry organic premium imported milk yogurt cheese",
    "ping guo xiang jiao cao mei li zhi mang guo xi gua ying tao",
    "苹果 apple pingguo 香蕉 banana xiangjiao 草莓 strawberry caomei",
    "yantaihongfushipingguoxinjiangakesubingtangxinpingguo",
)
"""Long, many-word queries: the most work one query can ask for."""


VOCABULARY_SIZE = 400_000
"""Made-up words a realistic catalog draws from (brands, models, materials, styles)."""
_SYLLABLES = tuple(
    c + v for c in ("b", "c", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "st", "tr")
    for v in ("a", "e", "i", "o", "u", "ar", "en", "ix", "on", "or")
)


def made_up_words(count: int, *, seed: int = 99) -> list[str]:
    """`count` distinct pronounceable words ("brenix", "tasor"), most common first."""
    rng = random.Random(seed)
    words: dict[str, None] = {}
    while len(words) < count:
        words["".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))] = None
    return list(words)


def make_docs(count: int, *, seed: int = 20240601, vocabulary: str = "realistic") -> list[SearchDoc]:
    """`count` synthetic products, identical for the same seed."""
    rng = random.Random(seed)
    docs = [_make_doc(product_id, rng) for product_id in range(1, count + 1)]
    if vocabulary == "small":
        return docs
    words = made_up_words(VOCABULARY_SIZE)
    weights = list(itertools.accumulate(1.0 / rank for rank in range(1, len(words) + 1)))  # Zipf
    drawn = iter(rng.choices(words, cum_weights=weights, k=5 * count))
    return [
        replace(
            doc,
            name=f"{doc.name} {next(drawn).capitalize()}",  # a brand or model word in the name
            subtitle=f"{doc.subtitle} {next(drawn)} {next(drawn)} {next(drawn)} {next(drawn)}",
        )
        for doc in docs
    ]


def _make_doc(product_id: int, rng: random.Random) -> SearchDoc:
    product = rng.choice(PRODUCTS)
    origin_zh, origin_en = rng.choice(ORIGINS)
    brand_zh, brand_en = rng.choice(BRANDS)
    adjective_zh, adjective_en = rng.choice(ADJECTIVES)
    spec = rng.choice(SPECS)
    style = rng.randrange(3)
    if style == 0:
        name = f"{origin_zh}{adjective_zh}{product.zh} {spec}"
    elif style == 1:
        name = f"{brand_zh}{adjective_zh}{product.zh}"
    else:
        name = f"{brand_zh} {origin_zh}{product.zh} {spec} {rng.randrange(1, 99)}号"
    subtitle = (
        f"{adjective_en.capitalize()} {product.en}s from {origin_en} by {brand_en}, "
        f"{rng.choice(SELLING_LINES)}"
    )
    tags = (product.category_zh, product.category_en.lower(), adjective_zh, product.en)
    category = f"{product.category_zh} {product.category_en}"
    popularity = int(rng.paretovariate(1.2) * 10)
    return SearchDoc(product_id, name, subtitle, tags, category, popularity)


def make_queries(count: int, *, seed: int = 7, vocabulary: str = "realistic") -> list[str]:
    """A deterministic mix of what customers type, misses and junk included."""
    rng = random.Random(seed)
    words = made_up_words(2_000) if vocabulary == "realistic" else ["apple"]
    makers: tuple[Callable[[random.Random], str], ...] = (
        lambda r: r.choice(words),  # a brand or model word, among the commonest
        lambda r: _typo(r.choice(words), r),
        lambda r: f"{r.choice(words)} {r.choice(PRODUCTS).en}",
        lambda r: r.choice(PRODUCTS).zh,
        lambda r: r.choice(ORIGINS)[0] + r.choice(PRODUCTS).zh,
        lambda r: r.choice(BRANDS)[0],
        lambda r: r.choice(PRODUCTS).en,
        lambda r: r.choice(PRODUCTS).en.title() + "s",
        lambda r: r.choice(PRODUCTS).pinyin,
        lambda r: _spaced_pinyin(r.choice(PRODUCTS).pinyin),
        lambda r: _typo(r.choice(PRODUCTS).en, r),
        lambda r: _typo(r.choice(PRODUCTS).pinyin, r),
        lambda r: r.choice(HOMOPHONES),
        lambda r: f"{r.choice(ADJECTIVES)[1]} {r.choice(PRODUCTS).en}",
        lambda r: "我想买" + r.choice(PRODUCTS).zh,
        lambda r: r.choice(FIXED_MISSES),
        lambda r: "".join(r.choice("bcdfghjklmnpqrstvwxz") for _ in range(r.randint(3, 9))),
        lambda r: "茶",
        lambda r: "pg",
        lambda r: "🍎" * 50 + " " + "x" * 10_000,
    )
    return [makers[index % len(makers)](rng) for index in range(count)]


def _spaced_pinyin(pinyin: str) -> str:
    """Roughly split joined pinyin into syllables ("pingguo" -> "ping guo")."""
    out: list[str] = []
    for index, char in enumerate(pinyin):
        if index and char not in "aeiouvgnr" and pinyin[index - 1] in "aeioungr":
            out.append(" ")
        out.append(char)
    return "".join(out)


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


def measure_memory(docs: Sequence[SearchDoc]) -> tuple[float, float]:
    """(retained, peak) MiB allocated by building an index, traced by tracemalloc.

    A separate build, because tracing slows allocation down several times. Shared
    caches (pypinyin's dictionaries, our lru_caches) are warmed first and excluded.
    """
    SearchIndex(docs[:1000])
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        index = SearchIndex(docs)
        gc.collect()
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del index
    return (after - before) / 2**20, (peak - before) / 2**20


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def bench_size(
    size: int, queries: Sequence[str], *, trace_memory: bool, vocabulary: str, database: bool, app_imports: bool
) -> None:
    """Build an index of `size` docs and print build cost and query latency; then the catalog
    of a worker over a SQLite file of them (in a fresh process)."""
    docs = make_docs(size, vocabulary=vocabulary)
    SearchIndex(docs[:100])  # load pypinyin's dictionaries outside the timing
    gc.collect()
    started = time.perf_counter()
    index = SearchIndex(docs)
    build_seconds = time.perf_counter() - started

    for query in queries[:50]:  # warm caches (pinyin of query words)
        index.search(query)
    search_ms = _time_calls(index.search, queries)
    suggest_ms = _time_calls(index.suggest, queries)
    worst_ms = _time_calls(index.search, WORST_CASES * 5)
    empty = sum(1 for query in queries if not index.search(query))
    memory = ""
    if trace_memory:
        retained, peak = measure_memory(docs)
        memory = f"  memory retained {retained:.1f} MiB, peak {peak:.1f} MiB"
    print(f"{size:>7} docs  {index.term_count} distinct terms  index build {build_seconds:6.2f} s{memory}")
    print(f"         search  {_summary(search_ms)}  ({empty}/{len(queries)} queries found nothing)")
    print(f"         suggest {_summary(suggest_ms)}")
    print(f"         worst-case queries: max {worst_ms[-1]:5.2f} ms")
    del index
    if database:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "catalog.db"
            started = time.perf_counter()
            asyncio.run(fill_database(path, docs))
            print(f"         sqlite file written in {time.perf_counter() - started:5.1f} s")
            del docs
            gc.collect()
            subprocess.run(
                [sys.executable, __file__, "--worker", str(path), *(["--app-imports"] if app_imports else [])], check=True
            )
            print(f"         a worker of the app (bot.app imported) before its catalog: RSS {app_worker_baseline():.0f} MiB")


# ---- the catalog of a worker, over a real database ---------------------------------------


async def fill_database(path: Path, docs: Sequence[SearchDoc]) -> None:
    """The docs as products (two variants, an image and tags each) in a migrated SQLite file."""
    from sqlalchemy import insert

    from commerce.catalog.models import Category, Product, ProductImage, Tag, Variant, product_tags
    from commerce.db import create_engine
    from commerce.migrate import upgrade

    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await upgrade(engine)
    categories = {name: number for number, name in enumerate(dict.fromkeys(d.category for d in docs), 1)}
    tags = {tag: number for number, tag in enumerate(dict.fromkeys(t for d in docs for t in d.tags), 1)}
    async with engine.begin() as conn:
        await conn.execute(insert(Category), [
            {"id": n, "name": name.split()[0], "name_en": " ".join(name.split()[1:]), "sort_order": n}
            for name, n in categories.items()
        ])
        await conn.execute(insert(Tag), [{"id": n, "name": name} for name, n in tags.items()])
        for at in range(0, len(docs), 5000):
            chunk = docs[at : at + 5000]
            await conn.execute(insert(Product), [
                {"id": d.product_id, "category_id": categories[d.category], "name": d.name[:100],
                 "subtitle": d.subtitle[:200], "description": "", "status": "on_sale", "sort_order": d.product_id,
                 "sales_count": d.popularity}
                for d in chunk
            ])
            await conn.execute(insert(Variant), [
                {"product_id": d.product_id, "sku_code": f"B{d.product_id}-{n}", "spec": {"规格": spec},
                 "price_fen": 990 + 100 * n + d.product_id % 50, "stock": (d.product_id * 7 + n) % 40,
                 "low_stock_threshold": 5}
                for d in chunk for n, spec in enumerate(("小份", "大份"), 1)
            ])
            await conn.execute(insert(ProductImage), [
                {"product_id": d.product_id, "url": f"/static/p/{d.product_id}.jpg", "position": 0} for d in chunk
            ])
            await conn.execute(insert(product_tags), [
                {"product_id": d.product_id, "tag_id": tags[t]} for d in chunk for t in dict.fromkeys(d.tags)
            ])
    await engine.dispose()


class LoopLag:
    """A 5 ms ticker: how late each tick woke is how long the event loop was held (or, on a
    busy machine, how long the process waited for a CPU). The event loop thread's own CPU
    time between two ticks tells the two apart: it is what our code held the loop for."""

    def __init__(self, every: float = 0.005) -> None:
        self.every = every
        self.lags: list[float] = []
        self.held: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        cpu = time.thread_time()
        while True:
            due = loop.time() + self.every
            await asyncio.sleep(self.every)
            self.lags.append(max(0.0, loop.time() - due) * 1000)
            now = time.thread_time()
            self.held.append((now - cpu) * 1000)
            cpu = now

    async def __aenter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def summary(self) -> str:
        lags = sorted(self.lags) or [0.0]
        held = sorted(self.held) or [0.0]
        return (
            f"loop lag max {lags[-1]:6.1f} ms  p99 {percentile(lags, 0.99):5.1f} ms "
            f"(loop's own CPU between ticks: max {held[-1]:5.1f} ms)  ({len(lags)} ticks)"
        )


def memory_mib() -> dict[str, float]:
    """This process's resident memory, MiB, from /proc: VmRSS (all of it) = RssAnon (its heap)
    + RssFile (pages of mapped files: the catalog built elsewhere, and the libraries) + RssShmem;
    VmHWM, the peak of VmRSS."""
    status = dict(
        line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line
    )
    return {
        name: int(status[name].split()[0]) / 1024 for name in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem")
    }


def reset_peak() -> None:
    """Start VmHWM again from the RSS of now (Linux), so that each phase reports its own peak."""
    Path("/proc/self/clear_refs").write_text("5")


def _columns(memory: dict[str, float]) -> str:
    return (f"RSS {memory['VmRSS']:.0f} MiB (anon {memory['RssAnon']:.0f} + file {memory['RssFile']:.0f} "
            f"+ shmem {memory['RssShmem']:.0f})")


def touch_every_page(snapshot: Any) -> float:
    """Read every page of the file a catalog built elsewhere is mapped from, as hours of
    searches would (a page is resident once touched, and counts in RSS): MiB mapped."""
    mapping = getattr(snapshot, "mapping", None)  # None: built here (or by a version without the mapping)
    if mapping is None:
        return 0.0
    import numpy as np

    pages = np.frombuffer(mapping, dtype=np.uint8)
    int(pages[::4096].sum())
    del pages
    return len(mapping) / 2**20


ANSWERS_CACHED = 4096
"""Distinct searches a worker's catalog keeps the answers of (`search.query_cache_size`)."""


def as_after_hours(snapshot: Any) -> float:
    """The catalog as after hours of searches: every page of its file touched
    (`touch_every_page`), its answer cache full (`ANSWERS_CACHED` distinct searches of 50
    hits) and the products of each first page made (`ProductTable` keeps the last 4096).
    MiB mapped."""
    for query in list(dict.fromkeys(make_queries(5 * ANSWERS_CACHED)))[:ANSWERS_CACHED]:
        for hit in snapshot.search(query, limit=50)[:5]:
            snapshot.products[hit.product_id]
    return touch_every_page(snapshot)


def app_worker_baseline() -> float:
    """RSS, MiB, of a fresh process that imports what a worker of the app imports (`bot.app`,
    and `bot.cli`, whose function starts it),
    before it loads any catalog: this bench's worker imports only the catalog's modules."""
    code = (
        "import bot.app, bot.cli, pathlib; "
        "print(next(l.split()[1] for l in pathlib.Path('/proc/self/status').read_text().splitlines() "
        "if l.startswith('VmRSS')))"
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=root)
    return int(done.stdout.split()[-1]) / 1024


async def bench_worker(path: Path, *, app_imports: bool = False) -> None:
    """The catalog of one worker over the SQLite file: load, rebuild, edits, an import. With
    `app_imports`, the process first imports what a worker of the app imports (`bot.app`)."""
    if app_imports:
        import bot.app  # noqa: F401
        import bot.cli  # noqa: F401  (a worker is started with bot.cli's function)
    from sqlalchemy import select

    from commerce.catalog import admin as catalog_admin
    from commerce.catalog.csv_io import import_catalog_csv
    from commerce.catalog.models import Product, Variant
    from commerce.catalog.read import Catalog
    from commerce.db import create_engine
    from commerce.wiring import shop_bus, shop_sessions, shop_uows, tell_catalog

    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    bus = shop_bus()
    catalog = Catalog(shop_sessions(engine, bus=bus), refresh_seconds=0, rebuild_seconds=0)
    tell_catalog(bus, catalog)
    uows = shop_uows(engine, bus=bus)
    before = memory_mib()
    print(f"         worker before the load: {_columns(before)}")

    started = time.perf_counter()
    snapshot = await catalog.snapshot()
    load_seconds = time.perf_counter() - started
    memory = memory_mib()
    print(f"         worker: first load {load_seconds:5.2f} s  ({len(snapshot.products)} products)  "
          f"{_columns(memory)} (peak {memory['VmHWM']:.0f}){_elsewhere(catalog)}")
    mapped = as_after_hours(snapshot)
    loaded = memory_mib()
    print(f"         as after hours of searches (every page of the catalog's file, {mapped:.0f} MiB mapped, touched; "
          f"{ANSWERS_CACHED} answers cached): {_columns(loaded)}")
    del snapshot  # as a turn lets go of it: a replaced catalog is freed once nobody holds it

    reset_peak()
    async with LoopLag() as lag:
        started = time.perf_counter()
        await catalog.rebuild()
        rebuild_seconds = time.perf_counter() - started
        for _ in range(4):  # the old catalog is freed at the next tick of the background loop
            await asyncio.sleep(0.05)
        await catalog.tick()
    memory = memory_mib()
    rebuild_peak = memory["VmHWM"]
    as_after_hours(await catalog.snapshot())
    rebuilt = memory_mib()
    print(f"         rebuild in the background {rebuild_seconds:5.2f} s  {lag.summary()}  "
          f"{_columns(memory)} (peak {memory['VmHWM']:.0f}){_elsewhere(catalog)}; as after hours: "
          f"{_columns(rebuilt)}")

    async with engine.connect() as conn:
        ids = list((await conn.scalars(select(Product.id).order_by(Product.id).limit(20))).all())
    edits: list[float] = []
    applies: list[float] = []
    async with LoopLag() as lag:
        for number, product_id in enumerate(ids):
            info = (await catalog.snapshot()).products[product_id]
            started = time.perf_counter()
            async with uows() as uow:
                await catalog_admin.edit_product(uow.session, product_id=product_id, name=f"改名{number} {info.name}"[:100])
                await uow.commit()
            edits.append((time.perf_counter() - started) * 1000)
            snap = await catalog.snapshot()
            renamed = snap.products[product_id]
            started = time.perf_counter()
            snap.apply(current=[renamed])  # the in-memory part alone: one product out, one in
            applies.append((time.perf_counter() - started) * 1000)
            assert snap.search(f"改名{number}")
    edits.sort()
    applies.sort()
    print(f"         one staff edit: whole transaction p50 {percentile(edits, 0.5):5.2f} ms max {edits[-1]:5.2f} ms; "
          f"in memory p50 {percentile(applies, 0.5):5.2f} ms max {applies[-1]:5.2f} ms  {lag.summary()}")

    async with engine.connect() as conn:
        rows = (await conn.execute(
            select(Variant.sku_code, Product.name, Variant.price_fen, Variant.stock, Variant.spec)
            .join(Product, Product.id == Variant.product_id)
            .order_by(Variant.id).limit(1000)
        )).all()
    products = (await catalog.snapshot()).products
    csv_text = "sku_code,name,category,price_yuan,stock,spec\n" + "".join(
        f"{row.sku_code},{row.name.replace(',', ' ')},{products[int(row.sku_code[1:].split('-')[0])].category},"
        f"{(row.price_fen + 100) / 100:.2f},{row.stock},{';'.join(f'{k}={v}' for k, v in row.spec.items())}\n"
        for row in rows
    )
    del products, snap, info, renamed  # as turns let go of the catalog: the replaced one is freed
    as_after_hours(await catalog.snapshot())  # the edits emptied the answer cache
    reset_peak()
    async with LoopLag() as lag:
        started = time.perf_counter()
        async with uows() as uow:
            report = await import_catalog_csv(uow.session, text=csv_text, max_rows=5000)
            await uow.commit()
        imported = time.perf_counter() - started
        await catalog.settled()  # the import is applied by a background rebuild
        applied = time.perf_counter() - started
        for _ in range(4):
            await asyncio.sleep(0.05)
        await catalog.tick()
    memory = memory_mib()
    import_peak = memory["VmHWM"]
    as_after_hours(await catalog.snapshot())
    final = memory_mib()
    print(f"         CSV import of {len(rows)} rows ({report.updated} updated): {imported:5.2f} s, searchable after "
          f"{applied:5.2f} s  {lag.summary()}  {_columns(memory)} (peak {import_peak:.0f}); as after hours: "
          f"{_columns(final)}")
    print(f"         worker RSS (as after hours of searches): after the first load {loaded['VmRSS']:.0f} MiB, "
          f"after a rebuild {rebuilt['VmRSS']:.0f} MiB, after the import {final['VmRSS']:.0f} MiB; "
          f"peak {max(rebuild_peak, import_peak):.0f} MiB (at the rebuild's swap {rebuild_peak:.0f}, at the import's "
          f"{import_peak:.0f}; before the load {before['VmRSS']:.0f})")
    await catalog.close()
    await engine.dispose()


def _elsewhere(catalog: Any) -> str:
    """Where the last build ran (a large catalog's, in a subprocess: its own peak RSS)."""
    peak = catalog.build_peak_mib
    return f"  [built in a subprocess, its peak RSS {peak:.0f} MiB]" if peak is not None else "  [built here]"


def _time_calls(call: Callable[[str], object], queries: Sequence[str]) -> list[float]:
    timings: list[float] = []
    for query in queries:
        started = time.perf_counter_ns()
        call(query)
        timings.append((time.perf_counter_ns() - started) / 1e6)
    timings.sort()
    return timings


def _summary(timings_ms: Sequence[float]) -> str:
    return (
        f"p50 {percentile(timings_ms, 0.50):5.2f} ms  p95 {percentile(timings_ms, 0.95):5.2f} ms  "
        f"p99 {percentile(timings_ms, 0.99):5.2f} ms  max {timings_ms[-1]:5.2f} ms  "
        f"mean {statistics.fmean(timings_ms):5.2f} ms"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--vocabulary", choices=("realistic", "small"), default="realistic")
    parser.add_argument(
        "--no-memory", action="store_true", help="skip the (slow) tracemalloc build"
    )
    parser.add_argument("--no-database", action="store_true", help="the index in memory only")
    parser.add_argument(
        "--app-imports", action="store_true",
        help="the worker process imports what a worker of the app does (bot.app) before its catalog",
    )
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # the fresh process of one size
    args = parser.parse_args(argv)
    if args.worker is not None:
        asyncio.run(bench_worker(args.worker, app_imports=args.app_imports))
        return
    queries = make_queries(args.queries, vocabulary=args.vocabulary)
    print(f"python {sys.version.split()[0]}, {len(queries)} mixed queries per size, {args.vocabulary} vocabulary")
    for size in args.sizes:
        bench_size(
            size, queries, trace_memory=not args.no_memory, vocabulary=args.vocabulary,
            database=not args.no_database, app_imports=args.app_imports,
        )
        sys.stdout.flush()


if __name__ == "__main__":
    main()

"""Checkout race, below the chat: N ordinary checkouts at once for M units; no oversell, ever.

What it measures, plainly: `place_order` called directly (no webhook, no flash sale,
no Redis gate), and it counts refused checkouts as decisions too. The rush through the
real webhook, with the flash sale's gate, is `bench/rush.py`.

`python bench/flash_rush.py [--buyers 1000] [--units 100] [--db sqlite|postgres|both]
[--processes 1] [--rounds 1]`

1. Makes a fresh migrated database: a temporary SQLite file, and/or a database on an
   embedded PostgreSQL server started here with `tests.servers.PostgresServer`.
2. Adds one variant with M units and N customers, each with an address and one unit
   of that variant in the cart (bulk inserts, not timed).
3. Starts every checkout at the same moment: `place_order` in its own session and
   unit of work (`asyncio.gather`), exactly as N webhook requests would. With
   `--processes P` the buyers are split over P worker processes, each with its own
   engine and connection pool (the scale-out deployment); they start together.
4. After the clock stops it checks the database: orders, units sold, stock left.

Prints elapsed time, checkouts/s and orders/s, latency percentiles, the oversell count
(units sold beyond M, or negative stock: must be 0) and the refusals by error code.
Timings are not assertions: this lives outside the test suite on purpose.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, insert, select  # noqa: E402

from commerce.cart.models import CartLine
from commerce.catalog.models import Category, Product, Variant
from commerce.customers.models import Address, Customer
from commerce.db import create_engine  # noqa: E402
from commerce.errors import ShopError  # noqa: E402
from commerce.migrate import upgrade  # noqa: E402
from commerce.orders.models import Order, OrderLine
from commerce.orders.placement import place_order
from commerce.rules import ShopRules  # noqa: E402
from commerce.wiring import shop_sessions

RULES = ShopRules()


@dataclass
class Outcome:
    results: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    last_done: float = 0.0  # time.time() when the last checkout finished
    last_order: float = 0.0  # time.time() when the last successful order was committed


@dataclass
class Report:
    db: str
    buyers: int
    units: int
    processes: int
    elapsed: float
    sell_out: float  # common start to the last successful order
    results: Counter[str]
    latencies: list[float]
    orders: int
    sold: int
    stock_left: int

    @property
    def oversell(self) -> int:
        return max(0, self.sold - self.units) + max(0, -self.stock_left)

    @property
    def consistent(self) -> bool:
        return self.sold + self.stock_left == self.units and self.orders == self.results["ordered"]


async def prepare(url: str, *, buyers: int, units: int) -> list[tuple[int, int]]:
    """The product, the buyers, their addresses and carts; returns (customer_id, address_id)."""
    engine = create_engine(url)
    try:
        await upgrade(engine)
        async with shop_sessions(engine)() as session:
            category = Category(name="秒杀", name_en="Flash sale")
            product = Product(
                category=category,
                name="限量秒杀茶具",
                variants=[
                    Variant(sku_code="FLASH-1", spec={"规格": "一套"}, price_fen=9900, stock=units)
                ],
            )
            session.add(product)
            await session.flush()
            variant_id = product.variants[0].id
            await session.execute(
                insert(Customer),
                [{"openid": f"rush-{n}", "subscribed": True} for n in range(buyers)],
            )
            customer_ids = list(
                await session.scalars(
                    select(Customer.id).where(Customer.openid.like("rush-%")).order_by(Customer.id)
                )
            )
            await session.execute(
                insert(Address),
                [
                    {
                        "customer_id": c,
                        "name": "买家",
                        "phone": "13800138000",
                        "address": "上海市浦东新区世纪大道100号",
                        "is_default": True,
                    }
                    for c in customer_ids
                ],
            )
            await session.execute(
                insert(CartLine),
                [{"customer_id": c, "variant_id": variant_id, "quantity": 1} for c in customer_ids],
            )
            rows = await session.execute(
                select(Address.customer_id, Address.id).order_by(Address.customer_id)
            )
            pairs = [(c, a) for c, a in rows]
            await session.commit()
        return pairs
    finally:
        await engine.dispose()


async def rush(url: str, buyers: Sequence[tuple[int, int]], start_at: float) -> Outcome:
    """Check out every buyer at once (after `start_at`, a time.time() shared by processes)."""
    engine = create_engine(url)
    sessions = shop_sessions(engine)
    outcome = Outcome()

    async def checkout(customer_id: int, address_id: int) -> None:
        began = time.perf_counter()
        async with sessions() as session:
            try:
                await place_order(
                    session,
                    customer_id=customer_id,
                    address_id=address_id,
                    idempotency_key="flash",
                    rules=RULES,
                )
                await session.commit()
                result = "ordered"
            except ShopError as exc:
                await session.rollback()
                result = exc.code.value
            except Exception as exc:  # noqa: BLE001 - counted and shown, never hidden
                await session.rollback()
                result = f"error:{type(exc).__name__}"
        outcome.results[result] += 1
        outcome.latencies.append(time.perf_counter() - began)
        outcome.last_done = max(outcome.last_done, time.time())
        if result == "ordered":
            outcome.last_order = max(outcome.last_order, time.time())

    try:
        # open the pool's connections before the start, as a running server would have
        await asyncio.gather(*(_touch(sessions) for _ in range(10)))
        await asyncio.sleep(max(0.0, start_at - time.time()))
        await asyncio.gather(*(checkout(c, a) for c, a in buyers))
    finally:
        await engine.dispose()
    return outcome


async def _touch(sessions) -> None:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        await session.scalar(select(1))


def _worker(url: str, buyers: list[tuple[int, int]], start_at: float, queue) -> None:  # type: ignore[no-untyped-def]
    outcome = asyncio.run(rush(url, buyers, start_at))
    queue.put((dict(outcome.results), outcome.latencies, outcome.last_done, outcome.last_order))


async def measure(url: str) -> tuple[int, int, int]:
    engine = create_engine(url)
    try:
        async with shop_sessions(engine)() as session:
            orders = await session.scalar(select(func.count()).select_from(Order)) or 0
            sold = await session.scalar(select(func.coalesce(func.sum(OrderLine.quantity), 0))) or 0
            stock = await session.scalar(select(Variant.stock).where(Variant.sku_code == "FLASH-1"))
            return int(orders), int(sold), int(stock if stock is not None else 0)
    finally:
        await engine.dispose()


def run_one(db: str, url: str, *, buyers: int, units: int, processes: int) -> Report:
    pairs = asyncio.run(prepare(url, buyers=buyers, units=units))
    outcome = Outcome()
    if processes == 1:
        start_at = time.time() + 0.5
        outcome = asyncio.run(rush(url, pairs, start_at))
    else:
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        shares = [pairs[i::processes] for i in range(processes)]
        start_at = time.time() + 3.0  # spawned interpreters need a moment to import
        workers = [
            ctx.Process(target=_worker, args=(url, share, start_at, queue)) for share in shares
        ]
        for w in workers:
            w.start()
        for _ in workers:
            results, latencies, last_done, last_order = queue.get()
            outcome.results.update(results)
            outcome.latencies.extend(latencies)
            outcome.last_done = max(outcome.last_done, last_done)
            outcome.last_order = max(outcome.last_order, last_order)
        for w in workers:
            w.join()
    elapsed = outcome.last_done - start_at  # from the common start to the last checkout done
    sell_out = max(0.0, outcome.last_order - start_at)
    orders, sold, stock = asyncio.run(measure(url))
    return Report(
        db,
        buyers,
        units,
        processes,
        elapsed,
        sell_out,
        outcome.results,
        outcome.latencies,
        orders,
        sold,
        stock,
    )


def print_report(report: Report) -> None:
    elapsed = report.elapsed
    lat = sorted(report.latencies)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else 0.0

    errors = {k: v for k, v in sorted(report.results.items()) if k != "ordered"}
    print(
        f"{report.db:<9} buyers={report.buyers} units={report.units} processes={report.processes}\n"
        f"  elapsed        {elapsed:8.3f} s   (common start to last checkout done)\n"
        f"  checkouts/s    {report.buyers / elapsed if elapsed else 0:8.0f}   (every attempt, refused ones too)\n"
        f"  sold out in    {report.sell_out:8.3f} s   (common start to the last order committed)\n"
        f"  orders/s       {report.orders / report.sell_out if report.sell_out else 0:8.0f}   ({report.orders} orders, over the sell-out time)\n"
        f"  latency ms     p50 {pct(0.5):.0f}  p90 {pct(0.9):.0f}  p99 {pct(0.99):.0f}  max {pct(1.0):.0f}"
        f"  (mean {statistics.fmean(lat) * 1000 if lat else 0:.0f})\n"
        f"  sold           {report.sold} of {report.units}, stock left {report.stock_left}\n"
        f"  OVERSELL       {report.oversell}   {'ok' if report.oversell == 0 else '!!! OVERSOLD !!!'}\n"
        f"  consistent     {'yes' if report.consistent else 'NO'} (sold + left == units, orders == successes)\n"
        f"  refusals       {errors or 'none'}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buyers", type=int, default=1000)
    parser.add_argument("--units", type=int, default=100)
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument(
        "--processes", type=int, default=1, help="worker processes sharing the rush"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="repeat on a fresh database each time"
    )
    args = parser.parse_args(argv)

    failures = 0
    with tempfile.TemporaryDirectory(prefix="flash-rush-") as tmp:
        root = Path(tmp)
        postgres = None
        try:
            for db in ("sqlite", "postgres") if args.db == "both" else (args.db,):
                for round_no in range(args.rounds):
                    if db == "sqlite":
                        url = f"sqlite+aiosqlite:///{root / f'rush-{round_no}.db'}"
                    else:
                        if postgres is None:
                            from tests.servers import PostgresServer

                            postgres = PostgresServer(root / "postgres")
                        url = asyncio.run(postgres.new_database())
                    report = run_one(
                        db, url, buyers=args.buyers, units=args.units, processes=args.processes
                    )
                    print_report(report)
                    failures += report.oversell > 0 or not report.consistent
        finally:
            if postgres is not None:
                postgres.stop()
    print(f"cpu count {os.cpu_count()}; python {sys.version.split()[0]}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

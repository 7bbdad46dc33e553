"""The catalog in memory around its first load: an edit committed while it reads is not lost."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import tempfile
import time
import weakref
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from commerce.catalog import admin as catalog_admin
from commerce.catalog import read
from commerce.catalog.read import Catalog, CatalogSnapshot
from commerce.wiring import shop_bus, shop_sessions, tell_catalog


async def _added_during_the_first_load(engine: AsyncEngine) -> tuple[Catalog, asyncio.Task[CatalogSnapshot], int]:
    """A catalog whose first load read its rows, then a product (天津麻花) committed before the
    load installed what it read: the catalog, the first load (let go on), the product's id."""
    bus = shop_bus()
    sessions = shop_sessions(engine, bus=bus)
    catalog = Catalog(sessions, refresh_seconds=0, rebuild_seconds=0)
    tell_catalog(bus, catalog)
    read_rows, go_on = asyncio.Event(), asyncio.Event()
    build = catalog._build

    async def slow_build():  # type: ignore[no-untyped-def]
        built = await build()  # the rows are read...
        read_rows.set()
        await go_on.wait()  # ...and the edit commits before they are installed
        return built

    catalog._build = slow_build  # type: ignore[method-assign]
    first_load = asyncio.create_task(catalog.snapshot())
    await read_rows.wait()
    async with sessions() as session:  # the demo's 零食 is there
        created, _ = await catalog_admin.create_product(
            session, name="天津麻花", price_fen=1500, stock=40, category="零食"
        )
        await session.commit()
    go_on.set()
    return catalog, first_load, created.id


@pytest.mark.usefixtures("demo_catalog")
async def test_a_product_added_while_the_first_load_reads_is_searchable_once_it_is_done(engine: AsyncEngine) -> None:
    """Regression: the first load read its rows, an import committed, the load installed what it
    had read and the edit was dropped ("the first load reads it all"): the new product stayed
    unsearchable until the next refresh (test_an_import_with_picture_links_... was flaky so)."""
    catalog, first_load, created = await _added_during_the_first_load(engine)
    snapshot = await first_load
    assert created in [hit.product_id for hit in snapshot.search("麻花")]
    await catalog.close()


@pytest.mark.usefixtures("demo_catalog")
async def test_no_search_is_handed_the_first_catalog_before_what_changed_during_its_load_is_in(
    engine: AsyncEngine,
) -> None:
    """Regression (CI, under load): the first load installed its catalog, then read again what
    an import had changed meanwhile; a search arriving in between was handed the catalog
    without the new product. Now the catalog is installed only once that is read."""
    catalog, first_load, created = await _added_during_the_first_load(engine)
    while catalog._snapshot is None:  # noqa: ASYNC110 (polls every turn of the loop: another customer, the moment there is a catalog)
        await asyncio.sleep(0)
    handed = await catalog.snapshot()
    assert created in [hit.product_id for hit in handed.search("麻花")]
    await first_load
    await catalog.close()


@pytest.mark.usefixtures("demo_catalog")
async def test_a_product_read_in_its_transaction_before_the_first_load_is_not_taken_for_gone(
    engine: AsyncEngine,
) -> None:
    """Regression: the edit's transaction read its product while no catalog was loaded (no
    categories known), the first load came in, then the commit applied the product as one with
    no category: gone. The transaction reads the categories it sees itself."""
    bus = shop_bus()
    sessions = shop_sessions(engine, bus=bus)
    catalog = Catalog(sessions, refresh_seconds=0, rebuild_seconds=0)
    tell_catalog(bus, catalog)
    async with sessions() as session:
        created, _ = await catalog_admin.create_product(
            session, name="天津麻花", price_fen=1500, stock=40, category="零食"
        )
        loaded = await catalog.snapshot()  # in its own session: the product is not committed yet
        assert created.id not in loaded.products
        await session.commit()
    assert created.id in [hit.product_id for hit in (await catalog.snapshot()).search("麻花")]
    await catalog.close()


def answers(snapshot: CatalogSnapshot) -> list[object]:
    asked = ("苹果", "pingguo", "apple", "平果", "茶", "xiangjiao", "零食", "zzzq")
    return [
        [(hit.product_id, hit.score) for hit in snapshot.search(query)] for query in asked
    ] + [snapshot.best_sellers(10), snapshot.categories, dict(snapshot.products), sorted(snapshot._words.items())]


@pytest.mark.usefixtures("demo_catalog")
async def test_a_large_catalog_built_in_another_process_is_the_one_built_here(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(read, "LARGE_CATALOG", 0)  # the demo counts as large
    sessions = shop_sessions(engine, bus=shop_bus())
    here = Catalog(sessions, refresh_seconds=0, rebuild_seconds=0, build_elsewhere=False)
    elsewhere = Catalog(sessions, refresh_seconds=0, rebuild_seconds=0)

    async def not_here() -> None:
        raise AssertionError("built here: the subprocess build failed (see the log)")

    elsewhere._read_and_build = not_here  # type: ignore[method-assign, assignment]
    assert answers(await elsewhere.snapshot()) == answers(await here.snapshot())
    assert elsewhere._recent == here._recent and elsewhere._watermark == here._watermark
    await elsewhere.close()
    await here.close()


@pytest.mark.sqlite_only
@pytest.mark.usefixtures("demo_catalog")
async def test_searches_are_answered_from_the_old_catalog_while_a_rebuild_runs_elsewhere(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(read, "LARGE_CATALOG", 0)
    catalog = Catalog(shop_sessions(engine, bus=shop_bus()), refresh_seconds=0, rebuild_seconds=0)
    old = await catalog.snapshot()
    found = [hit.product_id for hit in old.search("苹果")]
    assert found
    catalog.rebuild_soon()
    answered = 0
    while catalog._rebuilding is not None and not catalog._rebuilding.done():
        snapshot = await catalog.snapshot()  # never waits: the old catalog until the swap
        if snapshot is old:
            assert [hit.product_id for hit in snapshot.search("苹果")] == found
            answered += 1
        await asyncio.sleep(0.005)
    await catalog.settled()
    assert answered > 10  # the loop kept turning while the other process built
    assert await catalog.snapshot() is not old and catalog.builds == 2
    assert [hit.product_id for hit in (await catalog.snapshot()).search("苹果")] == found
    await catalog.close()


@pytest.mark.sqlite_only
@pytest.mark.usefixtures("demo_catalog")
async def test_closing_during_a_rebuild_elsewhere_stops_its_subprocess_at_once(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(read, "LARGE_CATALOG", 0)
    catalog = Catalog(shop_sessions(engine, bus=shop_bus()), refresh_seconds=0, rebuild_seconds=0)
    await catalog.snapshot()
    catalog.rebuild_soon()
    for _ in range(400):  # until the subprocess is started
        if multiprocessing.active_children():
            break
        await asyncio.sleep(0.005)
    assert multiprocessing.active_children()
    started = time.perf_counter()
    await catalog.close()
    assert time.perf_counter() - started < 1.0  # killed, not waited for
    assert not multiprocessing.active_children()


def _mapped_catalog_files(folder: str) -> list[str]:
    """The catalog files this process maps (unlinked: /proc says "(deleted)")."""
    with open("/proc/self/maps") as maps:
        return sorted({line.split(None, 5)[5].strip() for line in maps if folder in line})


@pytest.mark.sqlite_only
@pytest.mark.usefixtures("demo_catalog")
async def test_a_build_elsewhere_is_mapped_from_a_file_and_the_old_catalog_freed_at_the_swap(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The arrays of a build in another process stay in the file it wrote them to, mapped
    read-only and unlinked at once: nothing is left in the folder, and a rebuild's swap lets go
    of the old catalog and its mapping (the worker's peak is not two whole catalogs)."""
    monkeypatch.setattr(read, "LARGE_CATALOG", 0)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the worker makes the file
    catalog = Catalog(shop_sessions(engine, bus=shop_bus()), refresh_seconds=0, rebuild_seconds=0)
    old = await catalog.snapshot()
    assert old.mapping is not None and catalog.build_peak_mib is not None
    assert not old.index._data.flags.writeable  # a view of the mapping, not a copy
    assert os.listdir(tmp_path) == []
    first_file = _mapped_catalog_files(str(tmp_path))
    assert len(first_file) == 1 and first_file[0].endswith("(deleted)")
    found = [hit.product_id for hit in old.search("苹果")]
    retired, old_mapping = weakref.ref(old), old.mapping
    del old
    await catalog.rebuild()
    assert retired() is None
    assert old_mapping.closed  # unmapped (in a thread) once the old catalog is freed
    new = await catalog.snapshot()
    second_file = _mapped_catalog_files(str(tmp_path))
    assert len(second_file) == 1 and second_file != first_file  # the old file is unmapped
    assert [hit.product_id for hit in new.search("苹果")] == found
    assert os.listdir(tmp_path) == []
    await catalog.close()


@pytest.mark.sqlite_only
@pytest.mark.usefixtures("demo_catalog")
async def test_an_answer_from_the_snapshots_cache_is_the_index_answer(engine: AsyncEngine) -> None:
    """The cache keeps answers as arrays of ids and scores: given back, they are the hits the
    index gave, scores to the last bit."""
    catalog = Catalog(shop_sessions(engine, bus=shop_bus()), refresh_seconds=0, rebuild_seconds=0)
    snapshot = await catalog.snapshot()
    for asked in ("苹果", "pingguo", "apple", "平果", "茶", "零食", "zzzq"):
        query = snapshot.lexicon.rewrite(asked)
        fresh = [hit for hit in snapshot.index.search(query, limit=50) if hit.product_id in snapshot.products]
        assert fresh or asked == "zzzq"
        assert snapshot.search(asked) == fresh  # computed, then kept
        assert snapshot.search(asked) == fresh  # from the cache
        suggested = [hit for hit in snapshot.index.suggest(query, limit=3) if hit.product_id in snapshot.products]
        assert snapshot.suggest(asked) == snapshot.suggest(asked) == suggested
    assert snapshot._search.cache_info().hits > 0  # type: ignore[attr-defined]
    await catalog.close()


@pytest.mark.sqlite_only
@pytest.mark.usefixtures("demo_catalog")
async def test_a_failed_build_elsewhere_leaves_no_file_and_the_catalog_is_built_here(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(read, "LARGE_CATALOG", 0)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    catalog = Catalog(shop_sessions(engine, bus=shop_bus()), refresh_seconds=0, rebuild_seconds=0)
    catalog._url = f"sqlite+aiosqlite:///{tmp_path}/missing/catalog.db"  # the subprocess cannot open it
    snapshot = await catalog.snapshot()
    assert snapshot.mapping is None and catalog.build_peak_mib is None  # built here instead
    assert [hit.product_id for hit in snapshot.search("苹果")]
    assert os.listdir(tmp_path) == []
    await catalog.close()

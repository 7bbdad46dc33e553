"""The catalog in memory around its first load: an edit committed while it reads is not lost."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from commerce.catalog import admin as catalog_admin
from commerce.catalog.read import Catalog
from commerce.wiring import shop_bus, shop_sessions, tell_catalog


@pytest.mark.usefixtures("demo_catalog")
async def test_a_product_added_while_the_first_load_reads_is_searchable_once_it_is_done(engine: AsyncEngine) -> None:
    """Regression: the first load read its rows, an import committed, the load installed what it
    had read and the edit was dropped ("the first load reads it all"): the new product stayed
    unsearchable until the next refresh (test_an_import_with_picture_links_... was flaky so)."""
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
    snapshot = await first_load
    assert created.id in [hit.product_id for hit in snapshot.search("麻花")]
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

"""The catalog in memory: orders never rebuild it, staff edits are searchable at once, and
edits made by another worker arrive at its next refresh. Through the real app."""

from __future__ import annotations

import re
import weakref

import pytest
from sqlalchemy import event, select, update
from sqlalchemy.engine import Engine

from bot.keys import SERVICES
from commerce.catalog import admin as catalog_admin
from commerce.catalog import read
from commerce.catalog.models import Product, Variant
from commerce.db import SqliteBusy, create_engine
from commerce.wiring import shop_uows
from tests.bot.admin.test_orders import pay, place_order
from tests.bot.conftest import OWNER
from tests.bot.driver import Shop, db
from tests.bot.test_search_chat import numbered

CATALOG_TABLES = r"\b(products|variants|product_images|product_tags|categories)\b"


def line_of(text: str, name: str) -> str:
    return next(line for line in numbered(text).values() if name in line)


async def product_id(shop: Shop, name: str) -> int:
    async with db(shop.client.app)() as session:
        found = await session.scalar(select(Product.id).where(Product.name == name))
    assert found is not None
    return found


async def test_a_paid_order_moves_the_stock_shown_and_never_rebuilds_the_catalog(shop: Shop) -> None:
    catalog = shop.client.app[SERVICES].catalog
    user = shop.user()
    banana = await product_id(shop, "香蕉")
    async with db(shop.client.app)() as session, session.begin():
        await session.execute(update(Variant).where(Variant.product_id == banana).values(stock=12))
    assert "有货" in line_of((await user.say("香蕉")).text, "香蕉")  # stock is read when shown
    loaded = await catalog.snapshot()
    index, builds = loaded.index, catalog.builds

    await pay(shop, await place_order(shop, user, quantity=3))

    assert "仅剩 9 件" in line_of((await shop.user("o_next_customer").say("香蕉")).text, "香蕉")
    assert await catalog.snapshot() is loaded and loaded.index is index and catalog.builds == builds


async def test_a_staff_edit_is_searchable_at_once_without_a_rebuild(staffed: Shop) -> None:
    catalog = staffed.client.app[SERVICES].catalog
    customer, owner = staffed.user(), staffed.user(OWNER)
    banana = await product_id(staffed, "香蕉")
    assert "香蕉" in (await customer.say("香蕉")).text
    builds = catalog.builds

    assert "菲律宾甜蕉" in (await owner.say(f"/edit {banana} name 菲律宾甜蕉")).text
    assert "菲律宾甜蕉" in line_of((await customer.say("甜蕉")).text, "菲律宾甜蕉")
    assert "feilvbin" not in (await customer.say("香蕉")).text
    assert "菲律宾甜蕉" in line_of((await customer.say("feilvbin")).text, "菲律宾甜蕉")

    added = await owner.say("/add 海南椰子 12.5 30 水果 coconut")
    assert "海南椰子" in added.text, added.text
    assert "¥12.50" in line_of((await customer.say("椰子")).text, "海南椰子")
    assert "海南椰子" in line_of((await customer.say("coconut")).text, "海南椰子")
    assert catalog.builds == builds


async def test_an_edit_made_by_another_worker_arrives_at_the_next_refresh(shop: Shop, db_url: str) -> None:
    catalog = shop.client.app[SERVICES].catalog
    customer = shop.user()
    banana = await product_id(shop, "香蕉")
    assert "香蕉" in (await customer.say("香蕉")).text
    builds = catalog.builds

    elsewhere = create_engine(db_url)  # another worker: its own engine, no catalog of ours
    try:
        async with shop_uows(elsewhere)() as uow:
            await catalog_admin.edit_product(uow.session, product_id=banana, name="菲律宾甜蕉")
            await uow.commit()
    finally:
        await elsewhere.dispose()
    assert "菲律宾甜蕉" not in (await customer.say("甜蕉")).text  # not yet: this worker has not looked

    assert await catalog.refresh() == 1  # what the background loop does every search.cache_seconds
    assert "菲律宾甜蕉" in line_of((await customer.say("甜蕉")).text, "菲律宾甜蕉")
    assert await catalog.refresh() == 0  # seen once, applied once
    assert catalog.builds == builds


async def test_a_card_is_one_query_and_shows_the_database_as_it_is_now(shop: Shop) -> None:
    """The card's picture, tags and category come from memory; its name, description,
    prices and stock from one query, as they are now (changed here behind the catalog's
    back, as another worker's edit would be before this worker's next refresh)."""
    catalog = shop.client.app[SERVICES].catalog
    user = shop.user()
    banana = await product_id(shop, "香蕉")
    assert "香蕉" in (await user.say("香蕉")).text
    async with db(shop.client.app)() as session, session.begin():
        await session.execute(update(Product).where(Product.id == banana).values(description="海南当季 现摘现发"))
        await session.execute(update(Variant).where(Variant.product_id == banana).values(price_fen=990, stock=3))

    reads: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and re.search(CATALOG_TABLES, statement):
            reads.append(statement)

    event.listen(Engine, "before_cursor_execute", note)
    try:
        card = await catalog.product(banana)
    finally:
        event.remove(Engine, "before_cursor_execute", note)
    assert card is not None and card.description == "海南当季 现摘现发"
    assert [v.price_fen for v in card.variants] == [990] and card.total_stock == 3
    assert card.image_url and card.category == "水果"
    assert len(reads) == 1, reads


async def test_a_rebuild_swaps_the_catalog_whole_and_frees_the_old_one_once_no_turn_holds_it(shop: Shop) -> None:
    catalog = shop.client.app[SERVICES].catalog
    user = shop.user()
    assert "香蕉" in (await user.say("香蕉")).text
    held = await catalog.snapshot()  # as a turn between two awaits holds it
    found = [hit.product_id for hit in held.search("香蕉")]
    builds = catalog.builds

    await catalog.rebuild()

    assert await catalog.snapshot() is not held and catalog.builds == builds + 1
    assert [hit.product_id for hit in held.search("香蕉")] == found  # still whole: a turn holds it
    gone = weakref.ref(held)
    del held
    await catalog.tick()  # the background loop's turn: nobody holds it now
    assert gone() is None
    assert "香蕉" in (await user.say("香蕉")).text


async def test_stock_read_on_the_loop_falls_back_when_sqlite_says_busy(
    sqlite_shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite a page's stock is read on the event loop over a connection that never waits;
    a busy database sends the read the usual way, and the page is the same."""
    catalog = sqlite_shop.client.app[SERVICES].catalog
    banana = await product_id(sqlite_shop, "香蕉")
    async with db(sqlite_shop.client.app)() as session, session.begin():
        await session.execute(update(Variant).where(Variant.product_id == banana).values(stock=4))
    on_loop = await catalog.stock([banana])

    def busy(*_args: object) -> None:
        raise SqliteBusy()

    monkeypatch.setattr(read, "run_nonblocking_sqlite", busy)
    assert await catalog.stock([banana]) == on_loop
    assert [v.stock for v in on_loop[banana]] == [4]

"""The analytics' events: a checked value, written in one batch, pruned by age, and counted
from a shop transaction only once it commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from commerce.analytics import events
from commerce.analytics.events import Event
from commerce.analytics.models import QUERY_MAX, EventKind, ShopEvent
from commerce.cart import cart
from commerce.rules import ShopRules
from commerce.wiring import shop_sessions
from tests.commerce.factories import make_customer, make_variant

NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


@given(st.text(max_size=300))
def test_a_query_is_normalised_and_cut(text: str) -> None:
    query = events.normalise_query(text)
    assert len(query) <= QUERY_MAX
    assert query == query.strip() and "  " not in query
    assert events.normalise_query(query) == query  # once is enough
    assert events.search(1, text, 0).query == query


def test_full_width_capitals_and_spaces_fold_into_one_query() -> None:
    assert events.normalise_query("  ＡＰＰＬＥ   Pie ") == "apple pie"
    assert events.search(3, "x" * 500, 0).query == "x" * QUERY_MAX


@pytest.mark.parametrize("bad", ["o_openid_123", True, 0, -4, 2**31, 1.5])
def test_ids_are_the_shops_own_positive_integers_never_an_openid(bad: object) -> None:
    with pytest.raises(ValueError):
        Event(EventKind.CARD, customer_id=bad, product_id=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Event(EventKind.FOLLOW, customer_id=1, referrer_id=bad)  # type: ignore[arg-type]


def test_a_count_is_never_negative_and_a_kind_is_known() -> None:
    with pytest.raises(ValueError):
        events.search(1, "苹果", -1)
    with pytest.raises(ValueError):
        Event("visit")  # type: ignore[arg-type]
    assert events.message(0).customer_id is None  # a turn without a known customer
    assert events.order(1, 2, 10**12).amount_fen == 2**31 - 1  # the column's most: the order goes on


async def _rows(engine: AsyncEngine) -> list[ShopEvent]:
    async with shop_sessions(engine)() as session:
        return list((await session.scalars(select(ShopEvent).order_by(ShopEvent.id))).all())


async def test_a_batch_is_one_insert_and_old_events_are_pruned_once(engine: AsyncEngine) -> None:
    inserts: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT INTO SHOP_EVENTS"):
            inserts.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    batch = [
        Event(EventKind.SEARCH, customer_id=7, query="旧的", results=0, at=NOW - timedelta(days=401)),
        *[events.card(7, n) for n in range(1, 41)],
        events.paid(7, 12, 2590),
    ]
    await events.write_events(engine, batch)
    assert len(inserts) == 1
    rows = await _rows(engine)
    assert len(rows) == 42 and rows[-1].amount_fen == 2590 and rows[-1].order_id == 12
    assert (rows[0].kind, rows[0].query, rows[0].results) == ("search", "旧的", 0)

    async with shop_sessions(engine).begin() as session:
        assert await events.prune_events(session, before=NOW - timedelta(days=400), batch=10) == 1
    async with shop_sessions(engine).begin() as session:  # another worker, at once: nothing left
        assert await events.prune_events(session, before=NOW - timedelta(days=400)) == 0
        assert await session.scalar(select(func.count()).select_from(ShopEvent)) == 41


async def test_what_a_transaction_noted_counts_when_it_commits_and_never_when_it_rolls_back(
    engine: AsyncEngine,
) -> None:
    counted: list[Event] = []

    def sink(noted: Sequence[Event]) -> None:
        counted.extend(noted)

    sessions = shop_sessions(engine, counted=sink)
    async with sessions() as session:
        customer_id = await make_customer(session)
        variant_id = await make_variant(session)
        await session.commit()
    counted.clear()

    async with sessions() as session:  # rolled back: not counted
        await cart.add_to_cart(session, customer_id=customer_id, variant_id=variant_id, quantity=1, rules=ShopRules())
        assert counted == []
        await session.rollback()
    async with sessions() as session:  # committed: counted once
        view = await cart.add_to_cart(
            session, customer_id=customer_id, variant_id=variant_id, quantity=2, rules=ShopRules()
        )
        await session.commit()
        await session.commit()  # nothing new: nothing counted again
    assert [(e.kind, e.customer_id) for e in counted] == [(EventKind.CART_ADD, customer_id)]
    assert counted[0].product_id == view.lines[0].product_id

    async with shop_sessions(engine)() as session:  # a session without a sink counts nothing
        await cart.add_to_cart(session, customer_id=customer_id, variant_id=variant_id, quantity=1, rules=ShopRules())
        await session.commit()
    assert len(counted) == 1


async def test_what_a_rolled_back_savepoint_noted_is_never_counted_and_what_came_before_it_is(
    engine: AsyncEngine,
) -> None:
    """A flash winner's order written inside a savepoint that rolls back (the last unit went to
    another winner) was never placed: its events go with it; the transaction's own stay."""
    counted: list[Event] = []
    sessions = shop_sessions(engine, counted=counted.extend)
    async with sessions() as session:
        customer_id = await make_customer(session)
        before, inside, after = [await make_variant(session) for _ in range(3)]
        await session.commit()
    counted.clear()

    async def add(session: AsyncSession, variant_id: int) -> int:
        view = await cart.add_to_cart(
            session, customer_id=customer_id, variant_id=variant_id, quantity=1, rules=ShopRules()
        )
        return next(line.product_id for line in view.lines if line.variant_id == variant_id)

    async with sessions() as session:
        kept = [await add(session, before)]
        with pytest.raises(RuntimeError):
            async with session.begin_nested():
                await add(session, inside)
                raise RuntimeError("the savepoint rolls back")
        async with session.begin_nested():  # a released savepoint keeps what it noted
            kept.append(await add(session, after))
        await session.commit()
    assert [(e.kind, e.product_id) for e in counted] == [(EventKind.CART_ADD, p) for p in kept]


async def test_what_a_released_savepoint_noted_waits_for_its_transaction(engine: AsyncEngine) -> None:
    """SQLAlchemy announces a savepoint's release as a commit: counting then, a flash winner's
    order was counted although its transaction rolled back after it (the last unit gone)."""
    counted: list[Event] = []
    sessions = shop_sessions(engine, counted=counted.extend)
    async with sessions() as session:
        customer_id = await make_customer(session)
        variant_id = await make_variant(session)
        await session.commit()
    counted.clear()
    async with sessions() as session:
        async with session.begin_nested():
            await cart.add_to_cart(session, customer_id=customer_id, variant_id=variant_id, quantity=1, rules=ShopRules())
        assert counted == []  # released, not committed
        await session.rollback()
    assert counted == []

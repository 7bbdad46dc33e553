"""Stock reservations: conditional, never below zero, also under concurrency."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from commerce.catalog import inventory
from commerce.catalog.models import Variant
from commerce.events import CatalogChanged
from commerce.wiring import shop_bus, shop_sessions
from tests.commerce.factories import make_variant, stock_of


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return shop_sessions(engine)


async def _variant(sessions: async_sessionmaker[AsyncSession], stock: int) -> int:
    async with sessions() as session:
        variant_id = await make_variant(session, stock=stock)
        await session.commit()
    return variant_id


async def test_reserve_takes_stock(sessions: async_sessionmaker[AsyncSession]) -> None:
    variant_id = await _variant(sessions, 5)
    async with sessions() as session:
        assert await inventory.reserve(session, variant_id=variant_id, quantity=3)
        await session.commit()
    assert await stock_of(sessions, variant_id) == 2


async def test_reserve_refuses_more_than_there_is_and_changes_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    variant_id = await _variant(sessions, 2)
    async with sessions() as session:
        assert not await inventory.reserve(session, variant_id=variant_id, quantity=3)
        assert await inventory.reserve(session, variant_id=variant_id, quantity=2)
        assert not await inventory.reserve(session, variant_id=variant_id, quantity=1)
        await session.commit()
    assert await stock_of(sessions, variant_id) == 0


async def test_reserve_unknown_variant_is_false(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        assert not await inventory.reserve(session, variant_id=999_999, quantity=1)


async def test_release_gives_stock_back(sessions: async_sessionmaker[AsyncSession]) -> None:
    variant_id = await _variant(sessions, 0)
    async with sessions() as session:
        await inventory.release(session, variant_id=variant_id, quantity=4)
        await session.commit()
    assert await stock_of(sessions, variant_id) == 4


@pytest.mark.parametrize("quantity", [0, -1])
async def test_quantities_must_be_positive(
    sessions: async_sessionmaker[AsyncSession], quantity: int
) -> None:
    variant_id = await _variant(sessions, 5)
    async with sessions() as session:
        with pytest.raises(ValueError):
            await inventory.reserve(session, variant_id=variant_id, quantity=quantity)
        with pytest.raises(ValueError):
            await inventory.release(session, variant_id=variant_id, quantity=quantity)
    assert await stock_of(sessions, variant_id) == 5


async def test_the_database_itself_refuses_negative_stock(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The CHECK constraint is the last net under the conditional UPDATE."""
    variant_id = await _variant(sessions, 1)
    async with sessions() as session:
        with pytest.raises(IntegrityError):
            await session.execute(
                update(Variant).where(Variant.id == variant_id).values(stock=Variant.stock - 2)
            )


async def test_concurrent_reservations_never_oversell(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    variant_id = await _variant(sessions, 10)

    async def buy() -> bool:
        async with sessions() as session:
            ok = await inventory.reserve(session, variant_id=variant_id, quantity=1)
            await session.commit()
            return ok

    results = await asyncio.gather(*(buy() for _ in range(30)))
    assert results.count(True) == 10
    assert await stock_of(sessions, variant_id) == 0


async def test_every_stock_change_says_the_catalog_changed_and_a_refusal_does_not(engine: AsyncEngine) -> None:
    heard: list[CatalogChanged] = []

    async def listen(session: AsyncSession, event: CatalogChanged) -> None:
        heard.append(event)

    bus = shop_bus()
    bus.subscribe(CatalogChanged, listen)
    sessions = shop_sessions(engine, bus=bus)
    variant_id = await _variant(sessions, 2)
    async with sessions() as session, session.begin():
        assert await inventory.reserve(session, variant_id=variant_id, quantity=2)
        assert not await inventory.reserve(session, variant_id=variant_id, quantity=1)  # none left
        await inventory.release(session, variant_id=variant_id, quantity=1)
    assert heard == [CatalogChanged(variant_ids=(variant_id,)), CatalogChanged(variant_ids=(variant_id,))]

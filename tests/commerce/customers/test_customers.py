"""Customers are created once, even when their first messages race on two workers."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from commerce.customers.customers import touch_customer
from commerce.customers.models import Customer
from commerce.wiring import shop_sessions


async def test_first_contact_creates_then_updates(engine: AsyncEngine) -> None:
    sessions = shop_sessions(engine)
    async with sessions() as session, session.begin():
        first = await touch_customer(session, "o_new")
    async with sessions() as session, session.begin():
        again = await touch_customer(session, "o_new", locale="en", subscribed=False)
    assert first.is_new and not again.is_new
    assert again.id == first.id and again.locale == "en" and not again.subscribed


async def test_racing_first_messages_make_one_customer(engine: AsyncEngine) -> None:
    sessions = shop_sessions(engine)

    async def touch() -> bool:
        async with sessions() as session, session.begin():
            return (await touch_customer(session, "o_racer")).is_new

    results = await asyncio.gather(*(touch() for _ in range(8)))
    assert results.count(True) == 1
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Customer)) == 1


async def test_a_rolled_back_first_contact_leaves_nothing(engine: AsyncEngine) -> None:
    """Regression: a SAVEPOINT opened first on SQLite committed the new customer for good."""
    sessions = shop_sessions(engine)
    async with sessions() as session:
        await session.begin()
        await touch_customer(session, "o_undone")
        await session.rollback()
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Customer)) == 0

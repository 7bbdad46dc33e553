"""Badges: given once per customer, announced once, after the commit."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from commerce.loyalty import badges
from commerce.loyalty.badges import Badge
from commerce.messaging import notices
from commerce.wiring import shop_sessions
from tests.commerce.factories import make_customer
from tests.commerce.orders.test_orders import NOW


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return shop_sessions(engine)


async def _award(
    sessions: async_sessionmaker[AsyncSession], customer_id: int, badge: Badge
) -> tuple[bool, list]:
    async with sessions() as session:
        given = await badges.award(session, customer_id=customer_id, badge=badge, now=NOW)
        await session.commit()
        return given, notices.take(session)


async def test_a_badge_is_given_once_and_announced_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        customer = await make_customer(session, "o-badge")
        await session.commit()
    given, told = await _award(sessions, customer, Badge.FIRST_ORDER)
    assert given is True
    assert [(n.openid, n.template, n.data) for n in told] == [
        ("o-badge", "badge_awarded", {"badge": "first_order"})
    ]
    assert await _award(sessions, customer, Badge.FIRST_ORDER) == (False, [])
    assert (await _award(sessions, customer, Badge.FIVE_REFERRALS))[0] is True
    async with sessions() as session:
        assert await badges.badges_of(session, customer_id=customer) == [
            "first_order",
            "five_referrals",
        ]


async def test_racing_awards_give_one_badge(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        customer = await make_customer(session)
        await session.commit()

    async def award() -> tuple[bool, list] | str:
        try:
            return await _award(sessions, customer, Badge.FIRST_GROUP)
        except Exception as exc:  # SQLite may refuse the second writer: it then gave nothing
            return type(exc).__name__

    results = await asyncio.gather(*(award() for _ in range(5)))
    winners = [r for r in results if isinstance(r, tuple) and r[0]]
    assert len(winners) == 1 and len(winners[0][1]) == 1
    async with sessions() as session:
        assert await badges.badges_of(session, customer_id=customer) == ["first_group"]


async def test_nothing_is_announced_when_the_unit_of_work_rolls_back(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        customer = await make_customer(session)
        await session.commit()
    async with sessions() as session:
        assert await badges.award(session, customer_id=customer, badge=Badge.FIRST_ORDER, now=NOW)
        await session.rollback()
        notices.discard(session)
    given, told = await _award(sessions, customer, Badge.FIRST_ORDER)
    assert given and len(told) == 1  # the rolled-back award left nothing behind

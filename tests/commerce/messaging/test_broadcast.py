"""Who a broadcast may reach: subscribed customers inside WeChat's 48-hour window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from commerce.customers.models import Customer
from commerce.messaging.broadcast import count_reachable, reachable_customers
from commerce.wiring import shop_sessions
from tests.commerce.orders.test_queries import run

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return shop_sessions(engine)


@pytest.fixture
async def customers(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        session.add_all(
            [
                Customer(openid="just-now", last_message_at=NOW),
                Customer(openid="yesterday", last_message_at=NOW - 24 * H),
                Customer(openid="almost-closed", last_message_at=NOW - 47 * H - 59 * H / 60),
                Customer(openid="closed", last_message_at=NOW - 48 * H),
                Customer(openid="long-ago", last_message_at=NOW - 30 * 24 * H),
                Customer(openid="never-wrote", last_message_at=None),
                Customer(openid="unsubscribed", last_message_at=NOW - H, subscribed=False),
            ]
        )
        await session.commit()


@pytest.mark.usefixtures("customers")
async def test_reachable_customers_closing_windows_first(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    assert await run(sessions, reachable_customers, now=NOW) == [
        "almost-closed",
        "yesterday",
        "just-now",
    ]
    assert await run(sessions, count_reachable, now=NOW) == 3
    assert await run(sessions, reachable_customers, now=NOW, limit=2) == [
        "almost-closed",
        "yesterday",
    ]
    assert await run(sessions, reachable_customers, now=NOW, window=2 * H) == ["just-now"]
    # a day later only the one who wrote just now is left
    assert await run(sessions, reachable_customers, now=NOW + 25 * H) == ["just-now"]
    assert await run(sessions, count_reachable, now=NOW + 48 * H) == 0

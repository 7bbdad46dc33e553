"""The services handlers may call, built once by the app factory (no globals)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Config
from bot.dialogs.base import DialogRuntime
from commerce.catalog import Catalog
from commerce.customers import CustomerInfo, touch_customer

TOUCH_INTERVAL_SECONDS = 60.0


@dataclass(slots=True)
class Customers:
    """Records customers, writing at most once a minute per customer unless something changed."""

    sessions: async_sessionmaker[AsyncSession]
    _recent: dict[str, tuple[CustomerInfo, float]] = field(default_factory=dict)

    async def touch(
        self, openid: str, *, locale: str | None = None, subscribed: bool | None = None
    ) -> CustomerInfo:
        cached = self._recent.get(openid)
        now = time.monotonic()
        if (
            cached is not None
            and now - cached[1] < TOUCH_INTERVAL_SECONDS
            and (locale is None or locale == cached[0].locale)
            and subscribed is None
        ):
            return cached[0]
        async with self.sessions() as session, session.begin():
            info = await touch_customer(session, openid, locale=locale, subscribed=subscribed)
        if len(self._recent) > 50_000:
            self._recent.clear()
        self._recent[openid] = (info, now)
        return info


@dataclass(slots=True)
class Services:
    config: Config
    sessions: async_sessionmaker[AsyncSession]
    catalog: Catalog
    dialogs: DialogRuntime
    customers: Customers

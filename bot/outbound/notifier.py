"""The bot's `Notifier`: a template in the customer's language, out through the outbound sender."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.chat.render import Renderer
from bot.outbound.sender import OutboundSender
from commerce.customers.models import Customer


class OutboundNotifier:
    def __init__(
        self, *, renderer: Renderer, outbound: OutboundSender, sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        self._renderer = renderer
        self._outbound = outbound
        self._sessions = sessions

    async def _locale(self, openid: str) -> str:
        async with self._sessions() as session:
            locale = await session.scalar(select(Customer.locale).where(Customer.openid == openid))
        return locale or self._renderer.default_locale

    async def notify(self, *, openid: str, template: str, data: dict[str, Any]) -> None:
        rendered = self._renderer.message(template, await self._locale(openid), data)
        await self._outbound.send(openid, rendered)

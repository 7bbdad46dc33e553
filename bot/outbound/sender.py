"""Messages sent after the passive-reply window: the outbound-sender interface.

A later issue adds the WeChat customer-service sender behind this interface; the
in-memory outbox records what would be sent, for tests and the local simulator.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from bot.chat.render import Rendered


class OutboundSender(Protocol):
    async def send(self, openid: str, message: Rendered) -> None: ...


@dataclass(frozen=True, slots=True)
class Sent:
    openid: str
    message: Rendered


class MemoryOutbox:
    """Keeps the latest messages in memory; `wait_for` lets tests await a delivery."""

    def __init__(self, *, keep: int = 1000) -> None:
        self.sent: deque[Sent] = deque(maxlen=keep)
        self._changed = asyncio.Condition()

    async def send(self, openid: str, message: Rendered) -> None:
        async with self._changed:
            self.sent.append(Sent(openid, message))
            self._changed.notify_all()

    def for_user(self, openid: str) -> list[Rendered]:
        return [s.message for s in self.sent if s.openid == openid]

    async def wait_for(self, openid: str, count: int = 1, timeout: float = 5.0) -> list[Rendered]:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.for_user(openid)) >= count)
        return self.for_user(openid)

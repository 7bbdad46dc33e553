"""What a handler gets: the message, who sent it, and the services it may call.

What a route's filters found is not here: it is handed to the handler as arguments
(bot.chat.router)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.wechat.protocol import Inbound
from commerce.analytics.events import Event
from commerce.staff.models import StaffRole
from commerce.uow import UnitOfWorkFactory

if TYPE_CHECKING:
    from bot.services import Services


@dataclass(slots=True)
class Context:
    msg: Inbound
    services: Services
    locale: str
    customer_id: int = 0
    staff_role: StaffRole | None = None
    turn_uow: UnitOfWorkFactory | None = None  # the turn's, from the unit-of-work middleware
    events: list[Event] = field(default_factory=list)  # analytics: counted once the turn answered

    def record(self, event: Event) -> None:
        """Count `event` (a search, a card shown...) when this turn answers: a turn that
        fails, or runs again, counts nothing of what it recorded (bot/analytics.py)."""
        self.events.append(event)

    @property
    def uow(self) -> UnitOfWorkFactory:
        """Opens this turn's units of work: `async with ctx.uow() as uow:` (their messages
        go out once the turn has its answer)."""
        return self.turn_uow if self.turn_uow is not None else self.services.uow

    @property
    def is_staff(self) -> bool:
        return self.staff_role is not None

    @property
    def openid(self) -> str:
        return self.msg.openid

"""What a handler gets: the message, who sent it, and the services it may call."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.wechat.protocol import Inbound
from commerce.staff.models import StaffRole

if TYPE_CHECKING:
    from bot.services import Services


@dataclass(slots=True)
class Context:
    msg: Inbound
    services: Services
    locale: str
    customer_id: int = 0
    staff_role: StaffRole | None = None
    match: re.Match[str] | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def is_staff(self) -> bool:
        return self.staff_role is not None

    @property
    def openid(self) -> str:
        return self.msg.openid

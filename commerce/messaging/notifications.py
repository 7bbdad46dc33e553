"""How the core and the scheduler tell a customer something, without knowing WeChat.

`bot/` implements `Notifier` (render the template in the customer's language, send it
through the outbound sender); tests use `RecordingNotifier`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class Notifier(Protocol):
    async def notify(self, *, openid: str, template: str, data: dict[str, Any]) -> None: ...


@dataclass(frozen=True, slots=True)
class Notification:
    openid: str
    template: str
    data: dict[str, Any]


@dataclass
class RecordingNotifier:
    sent: list[Notification] = field(default_factory=list)

    async def notify(self, *, openid: str, template: str, data: dict[str, Any]) -> None:
        self.sent.append(Notification(openid, template, dict(data)))

    def templates(self, openid: str | None = None) -> list[str]:
        return [n.template for n in self.sent if openid is None or n.openid == openid]

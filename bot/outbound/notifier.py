"""The bot's `Notifier`: a notice through the outbox, in a unit of work of its own.

For a message whose cause is not a transaction of ours (a provider accepted a refund,
a staff member wrote to a customer). A message caused by a change in the database is
queued on that change's own unit of work (`uow.notify`), never through here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from commerce.uow import UnitOfWorkFactory


class OutboundNotifier:
    def __init__(self, *, uows: UnitOfWorkFactory) -> None:
        self._uows = uows

    async def notify(self, *, openid: str, template: str, data: Mapping[str, Any]) -> None:
        async with self._uows() as uow:
            uow.notify(openid, template, data)

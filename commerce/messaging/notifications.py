"""A message to a customer, as the core decides it: who, which template, with what data.

The core never sends: a unit of work queues a `Notification` (`commerce.uow`,
`commerce.messaging.notices`) and the commit writes it to the outbox; `bot/` renders it
in the customer's language and delivers it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Notification:
    openid: str
    template: str
    data: dict[str, Any]

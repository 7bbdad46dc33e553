"""Messages a unit of work decided to send, sent only after it commits.

A core function that learns, inside a transaction, that a customer must hear something
(their group filled, a badge earned) does not send it there: the transaction may still
roll back, and a message must never leave the process while rows are locked. It calls
`queue(session, ...)`; whoever commits the session calls `take(session)` afterwards and
hands the list to a `Notifier` (`send`). A session that rolls back is thrown away with
its queue.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from commerce.messaging.notifications import Notification, Notifier

log = logging.getLogger(__name__)

_KEY = "storefront.notices"


def queue(session: AsyncSession, *, openid: str, template: str, data: dict[str, Any]) -> None:
    session.info.setdefault(_KEY, []).append(Notification(openid, template, dict(data)))


def take(session: AsyncSession) -> list[Notification]:
    """The queued messages, removed from the session (call after the commit)."""
    return session.info.pop(_KEY, [])


def discard(session: AsyncSession) -> None:
    """Forget the queue (the unit of work rolled back and will be retried)."""
    session.info.pop(_KEY, None)


async def send(notifier: Notifier, items: Iterable[Notification]) -> int:
    """Send each message; one failure is logged and does not stop the others."""
    sent = 0
    for item in items:
        try:
            await notifier.notify(openid=item.openid, template=item.template, data=item.data)
            sent += 1
        except Exception:
            log.exception("notification failed", extra={"template": item.template})
    return sent

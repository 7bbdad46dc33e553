"""The inbound journal: every customer message written down, claimed with a lease, answered once.

A worker that takes a message from WeChat writes it down (`claim`) before answering
anything but its real reply; the row's unique key (WeChat's de-duplication key) is the
claim across workers: an INSERT that does nothing on a conflict, so of two workers
exactly one gets the row (PostgreSQL makes the second wait for the first, SQLite
serialises writers). The claimer holds a lease (`lease_owner`, `lease_until`) and
renews it while it works (`renew`); when it dies the lease runs out and the message is
taken over (`claim` by WeChat's retry, or `take_expired` by another worker's sweeper).

The finishing write (`finish`) is fenced: it stores the reply only while its writer
still holds the lease, so of a slow worker and the one that took over exactly one
answers. An answered row keeps its reply for WeChat's retries until `lease_until` (the
end of the de-duplication window), then `prune` deletes it.

`claim` also wakes what waited for the customer to write (`outbox.note_inbound`: the
48-hour window's count starts over, notices held by 45015 are due) in the same
transaction, for every message that opens the window. Each function commits nothing;
the caller's unit of work does.

    (none) --claim--> processing --finish--> answered --prune--> (none)
    processing --lease runs out--> (taken over: claim / take_expired) --> processing
    processing --release (a stopping worker)--> received --take_expired--> processing
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.db import rowcount, upsert_insert
from commerce.messaging import outbox
from commerce.messaging.models import InboundMessage, InboundStatus
from commerce.rules import as_utc

OPEN = (InboundStatus.RECEIVED.value, InboundStatus.PROCESSING.value)
PRUNE_BATCH = 500


@dataclass(frozen=True, slots=True)
class Claimed:
    """A message this worker now holds: `attempts` > 1 when it was taken over."""

    key: str
    openid: str
    message: dict[str, Any]
    attempts: int
    deferred: bool


@dataclass(frozen=True, slots=True)
class Entry:
    """What a delivery that does not hold the message sees of it."""

    status: str
    deferred: bool
    reply: dict[str, Any] | None
    lease_until: datetime

    @property
    def answered(self) -> bool:
        return self.status == InboundStatus.ANSWERED.value


async def claim(
    session: AsyncSession,
    *,
    key: str,
    openid: str,
    message: dict[str, Any],
    owner: str,
    now: datetime,
    lease: timedelta,
    opens_window: bool,
) -> Claimed | None:
    """Write the message down and hold it, or take it over when its lease ran out.

    None: another worker holds it (a live lease) or it was answered already.
    """
    until = as_utc(now + lease)
    table = InboundMessage.__table__
    stmt = upsert_insert(session, InboundMessage).values(
        key=key, openid=openid, message=message, status=InboundStatus.PROCESSING.value,
        lease_owner=owner, lease_until=until, attempts=1, deferred=False, received_at=as_utc(now),
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[InboundMessage.key],
        set_={
            "status": InboundStatus.PROCESSING.value,
            "lease_owner": owner,
            "lease_until": until,
            "attempts": table.c.attempts + 1,
        },
        where=table.c.status.in_(OPEN) & (table.c.lease_until < as_utc(now)),
    ).returning(InboundMessage.attempts, InboundMessage.deferred)
    row = (await session.execute(stmt)).first()
    if row is None:
        return None
    if row.attempts == 1 and opens_window:
        await outbox.note_inbound(session, openid, now=now)
    return Claimed(key, openid, message, int(row.attempts), bool(row.deferred))


async def entry(session: AsyncSession, key: str) -> Entry | None:
    row = (
        await session.execute(
            select(InboundMessage.status, InboundMessage.deferred, InboundMessage.reply, InboundMessage.lease_until)
            .where(InboundMessage.key == key)
        )
    ).first()
    if row is None:
        return None
    return Entry(row.status, bool(row.deferred), dict(row.reply) if row.reply else None, as_utc(row.lease_until))


async def give_up(session: AsyncSession, key: str) -> Entry | None:
    """A delivery stops waiting: an unanswered message is deferred (its reply will go out as a
    customer-service message); an answered one is returned as it is (the reply came in time)."""
    await session.execute(
        update(InboundMessage)
        .where(InboundMessage.key == key, InboundMessage.status.in_(OPEN))
        .values(deferred=True)
        .execution_options(synchronize_session=False)
    )
    return await entry(session, key)


async def finish(
    session: AsyncSession, *, key: str, owner: str, reply: dict[str, Any], now: datetime, keep: timedelta
) -> bool | None:
    """Store the reply if `owner` still holds the message (the fence): whether it was deferred
    (no delivery waits for it), or None when the lease was lost to another worker."""
    row = (
        await session.execute(
            update(InboundMessage)
            .where(
                InboundMessage.key == key,
                InboundMessage.lease_owner == owner,
                InboundMessage.status == InboundStatus.PROCESSING.value,
            )
            .values(
                status=InboundStatus.ANSWERED.value, reply=reply, answered_at=as_utc(now),
                lease_until=as_utc(now + keep),
            )
            .returning(InboundMessage.deferred)
            .execution_options(synchronize_session=False)
        )
    ).first()
    return None if row is None else bool(row.deferred)


async def renew(session: AsyncSession, *, owner: str, keys: list[str], now: datetime, lease: timedelta) -> int:
    """Push the leases of the messages `owner` works on forward; how many it still holds."""
    result = await session.execute(
        update(InboundMessage)
        .where(
            InboundMessage.key.in_(keys),
            InboundMessage.lease_owner == owner,
            InboundMessage.status == InboundStatus.PROCESSING.value,
        )
        .values(lease_until=as_utc(now + lease))
        .execution_options(synchronize_session=False)
    )
    return rowcount(result)


async def expired_keys(session: AsyncSession, *, now: datetime, limit: int = 100) -> list[str]:
    """Unanswered messages nobody holds (a dead worker's, a released one), oldest first."""
    rows = await session.scalars(
        select(InboundMessage.key)
        .where(InboundMessage.status.in_(OPEN), InboundMessage.lease_until < as_utc(now))
        .order_by(InboundMessage.received_at, InboundMessage.key)
        .limit(limit)
    )
    return list(rows.all())


async def take_expired(
    session: AsyncSession, key: str, *, owner: str, now: datetime, lease: timedelta
) -> Claimed | None:
    """Take over a message whose lease ran out; None when another worker was first.

    Nobody waits for its reply any more (the delivery that did died with its worker), so
    it is deferred: the reply goes out as a customer-service message.
    """
    row = (
        await session.execute(
            update(InboundMessage)
            .where(
                InboundMessage.key == key,
                InboundMessage.status.in_(OPEN),
                InboundMessage.lease_until < as_utc(now),
            )
            .values(
                status=InboundStatus.PROCESSING.value, lease_owner=owner, lease_until=as_utc(now + lease),
                attempts=InboundMessage.attempts + 1, deferred=True,
            )
            .returning(InboundMessage.openid, InboundMessage.message, InboundMessage.attempts)
            .execution_options(synchronize_session=False)
        )
    ).first()
    if row is None:
        return None
    return Claimed(key, row.openid, dict(row.message), int(row.attempts), True)


async def release(session: AsyncSession, *, owner: str, keys: list[str], now: datetime) -> int:
    """A stopping worker hands back what it did not finish: due for the sweepers at once."""
    result = await session.execute(
        update(InboundMessage)
        .where(
            InboundMessage.key.in_(keys),
            InboundMessage.lease_owner == owner,
            InboundMessage.status == InboundStatus.PROCESSING.value,
        )
        .values(status=InboundStatus.RECEIVED.value, lease_owner="", lease_until=as_utc(now))
        .execution_options(synchronize_session=False)
    )
    return rowcount(result)


async def prune(session: AsyncSession, *, now: datetime, limit: int = PRUNE_BATCH) -> int:
    """Delete up to `limit` answered rows whose de-duplication window is over."""
    old = (
        select(InboundMessage.key)
        .where(InboundMessage.status == InboundStatus.ANSWERED.value, InboundMessage.lease_until < as_utc(now))
        .limit(limit)
    )
    result = await session.execute(
        delete(InboundMessage).where(InboundMessage.key.in_(old)).execution_options(synchronize_session=False)
    )
    return rowcount(result)

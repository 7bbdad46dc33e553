"""Who a staff broadcast may reach: WeChat lets an account send customer-service
messages to a user only within 48 hours of that user's last message to it.

`Customer.last_message_at` is the start of that window (set whenever they write).
A broadcast is one outbox row per recipient (`start`), tied to its `Broadcast`: the staff
member who sent it hears how it stands after the first attempts (`report_first`: sent,
waiting for the customer's window, failed) and once more when nothing waits any more
(`settle`, from the scheduler), and rows still waiting when the broadcast is older than
`broadcast.max_age_hours` are failed, never sent stale. The callers commit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.customers.models import Customer
from commerce.messaging import notices
from commerce.messaging.models import Broadcast, OutboxMessage, OutboxStatus
from commerce.rules import as_utc

WECHAT_WINDOW = timedelta(hours=48)


def _reachable(now: datetime, window: timedelta) -> tuple[ColumnElement[bool], ...]:
    now = as_utc(now)
    return (
        Customer.subscribed.is_(True),
        Customer.last_message_at.is_not(None),
        Customer.last_message_at > now - window,
        Customer.last_message_at <= now,
    )


async def reachable_customers(
    session: AsyncSession,
    *,
    now: datetime,
    window: timedelta = WECHAT_WINDOW,
    limit: int = 10_000,
) -> list[str]:
    """Openids of subscribed customers whose window is still open at `now`.

    Those whose window closes soonest come first, so a broadcast sent down the list
    (and cut at `limit`) reaches first the ones it could soon no longer reach."""
    rows = await session.scalars(
        select(Customer.openid)
        .where(*_reachable(now, window))
        .order_by(Customer.last_message_at, Customer.id)
        .limit(limit)
    )
    return list(rows)


async def count_reachable(
    session: AsyncSession, *, now: datetime, window: timedelta = WECHAT_WINDOW
) -> int:
    """How many `reachable_customers` would return without a limit (for a confirmation)."""
    count = await session.scalar(
        select(func.count()).select_from(Customer).where(*_reachable(now, window))
    )
    return int(count or 0)


# ---- a broadcast's rows and its reports ------------------------------------------------------

BROADCAST_EVENT = "broadcast"  # the outbox event of a broadcast's rows
MESSAGE_TEMPLATE = "admin/broadcast_message"
REPORT_TEMPLATE = "alert_broadcast_report"  # a staff alert: template-message fallback, no alert loops
EXPIRED = "expired: the broadcast is too old to send"
ORPHANED_AFTER = timedelta(minutes=30)  # a broadcast its sender never reported (it died): settled by the job


@dataclass(frozen=True, slots=True)
class Started:
    broadcast_id: int
    message_ids: list[int]


@dataclass(frozen=True, slots=True)
class Tally:
    """Where a broadcast's rows stand: sent; waiting (for the customer's window, or a retry);
    failed (refused, unfollowed, expired); uncertain (WeChat may have it: never sent again)."""

    total: int
    sent: int
    waiting: int
    failed: int
    uncertain: int


async def start(
    session: AsyncSession,
    *,
    staff_openid: str,
    text: str,
    recipients: Sequence[str],
    now: datetime,
    max_age: timedelta,
    lease: timedelta,
    template: str = MESSAGE_TEMPLATE,
    data: Mapping[str, Any] | None = None,
) -> Started:
    """The broadcast and one outbox row per recipient (a notice rendered in each customer's
    language), leased to the caller for `lease` so that it makes the first attempts. The
    notice is staff's `text`, or `template` with `data` (a live drop's card)."""
    broadcast = Broadcast(
        staff_openid=staff_openid, text=text, total=len(recipients), created_at=as_utc(now),
        expires_at=as_utc(now + max_age),
    )
    session.add(broadcast)
    await session.flush()
    notice = {"text": text} if data is None else data
    payload = {"notice": {"template": template, "data": notices.encode(notice)}}
    rows = [
        OutboxMessage(
            openid=openid, event=BROADCAST_EVENT, payload=payload, template=None,
            status=OutboxStatus.PENDING.value, channel="", attempts=0, next_attempt_at=as_utc(now + lease),
            last_error="", delivery_status="", created_at=as_utc(now), broadcast_id=broadcast.id,
        )
        for openid in recipients
    ]
    session.add_all(rows)
    await session.flush()
    return Started(broadcast.id, [row.id for row in rows])


async def tally(session: AsyncSession, *, broadcast_id: int) -> Tally:
    rows = await session.execute(
        select(OutboxMessage.status, func.count())
        .where(OutboxMessage.broadcast_id == broadcast_id)
        .group_by(OutboxMessage.status)
    )
    by_status = {str(status): int(count) for status, count in rows.all()}
    waiting = by_status.get(OutboxStatus.PENDING.value, 0) + by_status.get(OutboxStatus.SENDING.value, 0)
    return Tally(
        total=sum(by_status.values()),
        sent=by_status.get(OutboxStatus.SENT.value, 0),
        waiting=waiting,
        failed=by_status.get(OutboxStatus.FAILED.value, 0),
        uncertain=by_status.get(OutboxStatus.UNCERTAIN.value, 0),
    )


def _report(session: AsyncSession, broadcast: Broadcast, counts: Tally, *, final: bool) -> None:
    data = {
        "total": counts.total, "sent": counts.sent, "waiting": counts.waiting, "failed": counts.failed,
        "uncertain": counts.uncertain, "final": final, "first": broadcast.first_report_at is None,
        "text": broadcast.text[:30], "expires_at": as_utc(broadcast.expires_at),
    }
    notices.queue(session, openid=broadcast.staff_openid, template=REPORT_TEMPLATE, data=data)


async def report_first(session: AsyncSession, *, broadcast_id: int, now: datetime) -> Tally:
    """After the first attempts: the staff member hears how it stands (the final word too,
    when nothing waits)."""
    broadcast = await session.get(Broadcast, broadcast_id)
    assert broadcast is not None
    counts = await tally(session, broadcast_id=broadcast_id)
    final = counts.waiting == 0
    _report(session, broadcast, counts, final=final)
    broadcast.first_report_at = as_utc(now)
    if final:
        broadcast.reported_at = as_utc(now)
    await session.flush()
    return counts


async def settle(session: AsyncSession, *, now: datetime, limit: int = 50) -> int:
    """The broadcasts still waiting: rows past the broadcast's age are failed (never sent
    stale); a broadcast with nothing waiting any more is reported a last time (also one whose
    sender died before its first report). How many were."""
    waiting = (
        await session.scalars(
            select(Broadcast)
            .where(
                Broadcast.reported_at.is_(None),
                # reported once by its sender, or its sender died before that
                Broadcast.first_report_at.is_not(None) | (Broadcast.created_at < as_utc(now - ORPHANED_AFTER)),
            )
            .order_by(Broadcast.id)
            .limit(limit)
        )
    ).all()
    reported = 0
    for broadcast in waiting:
        if as_utc(broadcast.expires_at) <= as_utc(now):
            await session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.broadcast_id == broadcast.id,
                    OutboxMessage.status == OutboxStatus.PENDING.value,
                )
                .values(status=OutboxStatus.FAILED.value, last_error=EXPIRED)
                .execution_options(synchronize_session=False)
            )
        counts = await tally(session, broadcast_id=broadcast.id)
        if counts.waiting:
            continue
        _report(session, broadcast, counts, final=True)
        broadcast.reported_at = as_utc(now)
        reported += 1
    await session.flush()
    return reported

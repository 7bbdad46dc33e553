"""The outbox: messages to customers, kept in the database until WeChat took them.

A row is written (`enqueue`, or `commerce.messaging.notices` in the cause's own
transaction) before any delivery attempt, so a crash, a restart or an unreachable
WeChat loses nothing. Rows are claimed with a lease (`claim`): a conditional UPDATE
pushes `next_attempt_at` forward, so two workers (or the immediate attempt and the
scheduler) do not both pick a row while its lease runs.

At most once per row. WeChat's customer-service send has no idempotency key and no
way to ask whether a message arrived, so a send is never repeated unless it certainly
did not happen: a doubled "支付成功" is worse than a late one that staff can see.

    pending --begin_send--> sending --WeChat took it (errcode 0)-----------> sent
                            sending --certainly not sent (-1, 45009, no
                                      connection...)--mark_retry/waiting---> pending
                            sending --no answer (timeout, reset...)-------> uncertain
                            sending --lease ran out (the sender died)-----> uncertain
                                      (or pending when no call was begun: channel "")
                            uncertain --TEMPLATESENDJOBFINISH (template)--> sent

`begin_send` is the gate: a conditional UPDATE from pending, so one attempt at a time
holds a row whoever else read it. The channel is written (`mark_channel`) before the
call is made, so a row found `sending` after its lease tells whether a call may have
gone out. An `uncertain` row is never picked up again: for a template message WeChat's
report of the job (`template_finished`) settles it; a customer-service message cannot
be asked about, so it stays uncertain, counted in the metrics and shown to staff.

Settled rows (sent, failed, uncertain) are the record of what the shop told its
customers; they are kept for the shop's retention (`service.keep_days`, as the messages
customers sent) and then deleted by `prune_settled`. Pending and sending rows never are.

WeChat's customer-service window is tracked on the customer: `last_message_at` (the
window opens when the customer writes) and `window_sent` (customer-service messages
sent since then; WeChat caps them). `use_window` reserves one message atomically;
every message the customer sends wakes the rows that were waiting for the window
(`wake_waiting`, run by `commerce.messaging.inbound.claim` in the transaction that writes
the message down; it resets the count when something was waiting), and the customer's
touch (`commerce.customers.customers.touch_customer`) starts the count over.
The callers commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, Update, bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.customers.models import Customer
from commerce.db import rowcount
from commerce.messaging.models import OutboxMessage, OutboxStatus
from commerce.rules import as_utc

WINDOW = timedelta(hours=48)
WAITING = "waiting for the 48-hour window"  # last_error of a row waiting for the customer to write
UNFINISHED = "uncertain: the attempt never finished (the sender stopped?)"
ERROR_LIMIT = 200
TEMPLATE_CHANNEL = "template"
SETTLED = (OutboxStatus.SENT.value, OutboxStatus.FAILED.value, OutboxStatus.UNCERTAIN.value)
PRUNE_BATCH = 500  # the channel of a template message (the planner's TEMPLATE)


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One message to deliver, as plain values."""

    id: int
    openid: str
    event: str
    payload: dict[str, Any]
    template: dict[str, Any] | None
    attempts: int
    created_at: datetime


def _item(row: OutboxMessage) -> OutboxItem:
    return OutboxItem(
        id=row.id,
        openid=row.openid,
        event=row.event,
        payload=dict(row.payload),
        template=dict(row.template) if row.template else None,
        attempts=row.attempts,
        created_at=as_utc(row.created_at),
    )


async def enqueue(
    session: AsyncSession,
    *,
    openid: str,
    event: str,
    payload: dict[str, Any],
    template: dict[str, Any] | None,
    now: datetime,
    lease: timedelta,
) -> OutboxItem:
    """A new pending row, leased to the caller (who attempts it at once)."""
    row = OutboxMessage(
        openid=openid,
        event=event[:40],
        payload=payload,
        template=template,
        status=OutboxStatus.PENDING.value,
        channel="",
        attempts=0,
        next_attempt_at=as_utc(now + lease),
        last_error="",
        delivery_status="",
        created_at=as_utc(now),
    )
    session.add(row)
    await session.flush()
    return _item(row)


async def claim(session: AsyncSession, message_id: int, *, now: datetime, lease: timedelta) -> bool:
    """Take a due pending row for `lease`; False when it is not due or someone else has it."""
    result = await session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.id == message_id,
            OutboxMessage.status == OutboxStatus.PENDING.value,
            OutboxMessage.next_attempt_at <= as_utc(now),
        )
        .values(next_attempt_at=as_utc(now + lease), last_error="")
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) == 1


async def due_ids(session: AsyncSession, *, now: datetime, limit: int = 100) -> list[int]:
    """Pending rows whose next attempt is due, oldest first."""
    rows = await session.scalars(
        select(OutboxMessage.id)
        .where(OutboxMessage.status == OutboxStatus.PENDING.value, OutboxMessage.next_attempt_at <= as_utc(now))
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    return list(rows.all())


async def get(session: AsyncSession, message_id: int) -> OutboxItem | None:
    row = await session.get(OutboxMessage, message_id, populate_existing=True)
    return _item(row) if row is not None else None


async def _update_row(session: AsyncSession, message_id: int, *when: ColumnElement[bool], **values: Any) -> bool:
    """Set `values` on one row (only if every `when` holds); True when it changed."""
    result = await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, *when)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) == 1


async def mark_sent(
    session: AsyncSession, message_id: int, *, channel: str, now: datetime, template_msgid: int | None = None
) -> None:
    await _update_row(
        session,
        message_id,
        status=OutboxStatus.SENT.value,
        channel=channel,
        attempts=OutboxMessage.attempts + 1,
        sent_at=as_utc(now),
        last_error="",
        template_msgid=template_msgid,
    )


async def begin_send(session: AsyncSession, message_id: int, *, now: datetime, lease: timedelta) -> bool:
    """Start an attempt: pending -> sending until `now + lease`; False when the row is not
    pending (sent, uncertain, or another attempt has it): then nothing may be sent."""
    return await _update_row(
        session,
        message_id,
        OutboxMessage.status == OutboxStatus.PENDING.value,
        status=OutboxStatus.SENDING.value,
        channel="",
        next_attempt_at=as_utc(now + lease),
    )


async def mark_channel(session: AsyncSession, message_id: int, channel: str) -> None:
    """Written (and committed) just before a call on `channel` is made: should the attempt
    never finish, the row tells that a message may have gone out, and how."""
    await _update_row(session, message_id, OutboxMessage.status == OutboxStatus.SENDING.value, channel=channel)


async def mark_retry(
    session: AsyncSession, message_id: int, *, error: str, attempts: int, next_attempt_at: datetime
) -> None:
    """An attempt that certainly sent nothing: try again at `next_attempt_at`."""
    await _update_row(
        session,
        message_id,
        status=OutboxStatus.PENDING.value,
        channel="",
        attempts=attempts,
        last_error=error[:ERROR_LIMIT],
        next_attempt_at=as_utc(next_attempt_at),
    )


async def mark_waiting(session: AsyncSession, message_id: int, *, until: datetime) -> None:
    """No way to reach the customer now: wait for them to write (`wake_waiting`) or `until`."""
    await _update_row(
        session, message_id, status=OutboxStatus.PENDING.value, channel="", last_error=WAITING,
        next_attempt_at=as_utc(until),
    )


async def mark_uncertain(session: AsyncSession, message_id: int, *, channel: str, error: str, attempts: int) -> None:
    """WeChat may have the message on `channel`, or not: never sent again (see the docstring)."""
    await _update_row(
        session,
        message_id,
        status=OutboxStatus.UNCERTAIN.value,
        channel=channel,
        attempts=attempts,
        last_error=f"uncertain: {error}"[:ERROR_LIMIT],
    )


async def expire_sending(session: AsyncSession, *, now: datetime) -> list[int]:
    """Attempts whose lease ran out (their sender died or hung): a row whose call was never
    begun (no channel) is pending again; one whose call may have gone out is uncertain.
    Returns the ids made uncertain."""
    stale = (OutboxMessage.status == OutboxStatus.SENDING.value, OutboxMessage.next_attempt_at <= as_utc(now))
    await session.execute(
        update(OutboxMessage)
        .where(*stale, OutboxMessage.channel == "")
        .values(status=OutboxStatus.PENDING.value)
        .execution_options(synchronize_session=False)
    )
    ids = list((await session.scalars(select(OutboxMessage.id).where(*stale))).all())
    if ids:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), *stale)
            .values(status=OutboxStatus.UNCERTAIN.value, last_error=UNFINISHED)
            .execution_options(synchronize_session=False)
        )
    return ids


async def mark_failed(session: AsyncSession, message_id: int, *, error: str, attempts: int | None = None) -> None:
    values: dict[str, Any] = {"status": OutboxStatus.FAILED.value, "last_error": error[:ERROR_LIMIT]}
    if attempts is not None:
        values["attempts"] = attempts
    await _update_row(session, message_id, **values)


async def record_delivery(session: AsyncSession, *, msgid: int, status: str) -> bool:
    """WeChat's report on a template message (TEMPLATESENDJOBFINISH); False for an unknown msgid."""
    result = await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.template_msgid == msgid)
        .values(delivery_status=status[:40])
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) > 0


async def template_finished(session: AsyncSession, *, openid: str, msgid: int, status: str, now: datetime) -> bool:
    """WeChat finished a template-message job (TEMPLATESENDJOBFINISH) for `openid`.

    A row that knows the msgid records the report. A msgid no row knows is the answer
    WeChat could not give us: the send happened, so the oldest uncertain template row of
    that customer is marked sent (whatever the job's status: WeChat took it, and sending
    it again would not be "at most once"). False when no row was concerned."""
    if await record_delivery(session, msgid=msgid, status=status):
        return True
    row_id = await session.scalar(
        select(OutboxMessage.id)
        .where(
            OutboxMessage.openid == openid,
            OutboxMessage.status == OutboxStatus.UNCERTAIN.value,
            OutboxMessage.channel == TEMPLATE_CHANNEL,
        )
        .order_by(OutboxMessage.id)
        .limit(1)
    )
    if row_id is None:
        return False
    return await _update_row(
        session,
        row_id,
        OutboxMessage.status == OutboxStatus.UNCERTAIN.value,
        status=OutboxStatus.SENT.value,
        template_msgid=msgid,
        delivery_status=status[:40],
        sent_at=as_utc(now),
        last_error="",
    )


# ---- the customer-service window ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    opened_at: datetime | None
    sent: int

    def is_open(self, now: datetime) -> bool:
        return self.opened_at is not None and as_utc(self.opened_at) > now - WINDOW


async def window(session: AsyncSession, openid: str) -> Window:
    row = (
        await session.execute(select(Customer.last_message_at, Customer.window_sent).where(Customer.openid == openid))
    ).first()
    if row is None:
        return Window(None, 0)
    return Window(row[0], int(row[1] or 0))


async def use_window(
    session: AsyncSession, openid: str, *, now: datetime, limit: int, paid_limit: int | None = None
) -> bool:
    """Reserve one customer-service message in the open window, if any is left (atomic).

    The window is opened by the customer's last message (`limit` messages) or by their
    last payment (`paid_limit`, WeChat allows more after a payment); either will do.
    """
    cutoff = as_utc(now - WINDOW)
    opened_by_message = (
        Customer.last_message_at.is_not(None) & (Customer.last_message_at > cutoff) & (Customer.window_sent < limit)
    )
    condition = opened_by_message
    if paid_limit is not None:
        condition = opened_by_message | (
            Customer.paid_window_at.is_not(None)
            & (Customer.paid_window_at > cutoff)
            & (Customer.window_sent < paid_limit)
        )
    result = await session.execute(
        update(Customer)
        .where(Customer.openid == openid, condition)
        .values(window_sent=Customer.window_sent + 1)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) == 1


async def note_payment(session: AsyncSession, *, customer_id: int, now: datetime) -> None:
    """The customer paid: a fresh (larger) window opens and its count starts over."""
    await session.execute(
        update(Customer)
        .where(Customer.id == customer_id)
        .values(paid_window_at=as_utc(now), window_sent=0)
        .execution_options(synchronize_session=False)
    )


async def release_window(session: AsyncSession, openid: str) -> None:
    """Give back a reserved message that WeChat did not take (network, busy)."""
    await session.execute(
        update(Customer)
        .where(Customer.openid == openid, Customer.window_sent > 0)
        .values(window_sent=Customer.window_sent - 1)
        .execution_options(synchronize_session=False)
    )


async def close_window(session: AsyncSession, openid: str, *, limit: int) -> None:
    """WeChat said the window is closed or used up (45015/45047): believe it until they write."""
    await session.execute(
        update(Customer)
        .where(Customer.openid == openid)
        .values(window_sent=limit)
        .execution_options(synchronize_session=False)
    )


async def wake_waiting(session: AsyncSession, openid: str, *, now: datetime) -> int:
    """The customer wrote: messages waiting for the window are due now (one indexed UPDATE,
    cheap enough for every message); when any was waiting, the window's count starts over
    too (a 45015 had used it up), so that they go out as customer-service messages."""
    woken = rowcount(await session.execute(WAKE, {"p_openid": openid, "p_now": as_utc(now)}))
    if woken:
        await _reset_window_count(session, openid)
    return woken


def _wake_statement() -> Update:
    rows = cast(Table, OutboxMessage.__table__)
    return (
        update(rows)
        .where(
            rows.c.openid == bindparam("p_openid"),
            rows.c.status == OutboxStatus.PENDING.value,
            rows.c.last_error == WAITING,
            rows.c.next_attempt_at > bindparam("p_now"),
        )
        .values(next_attempt_at=bindparam("p_now"))
    )


def _reset_count_statement() -> Update:
    customers = cast(Table, Customer.__table__)
    return (
        update(customers)
        .where(customers.c.openid == bindparam("p_openid"), customers.c.window_sent != 0)
        .values(window_sent=0)
    )


# built once with bound parameters (`p_openid`, `p_now`): every customer message runs WAKE
WAKE = _wake_statement()  # the rows of a customer waiting for the window become due now
RESET_COUNT = _reset_count_statement()  # the window's count of customer-service messages starts over


async def _reset_window_count(session: AsyncSession, openid: str) -> None:
    await session.execute(RESET_COUNT, {"p_openid": openid})


async def prune_settled(session: AsyncSession, *, now: datetime, keep: timedelta, limit: int = PRUNE_BATCH) -> int:
    """Delete up to `limit` settled rows whose last attempt and creation are older than
    `keep`; how many. Bounded so that one run never holds the write lock for long: the job
    runs again soon and takes the next batch."""
    cutoff = as_utc(now - keep)
    old = (
        select(OutboxMessage.id)
        .where(
            OutboxMessage.status.in_(SETTLED),
            OutboxMessage.next_attempt_at < cutoff,  # the (status, next_attempt_at) index
            OutboxMessage.created_at < cutoff,
        )
        .limit(limit)
    )
    ids = list((await session.scalars(old)).all())
    if not ids:
        return 0
    return rowcount(await session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(ids))))

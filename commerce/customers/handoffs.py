"""A customer asked for a human: a service ticket that staff answer from the shop's chat.

`record_handoff` opens the ticket (or finds the one already open) with what staff need to
help at once: the cart, the last order, the recent conversation. While it is open the
customer's messages are kept on it (`customer_said`) and go to the staff who hold it;
staff answer with `staff_reply` (a customer-service message, so only within WeChat's
48-hour window: `WINDOW_CLOSED` otherwise, nothing sent) and end it with `close`; the
customer ends it with their own words (`close` by "customer"), and `close_idle` ends
tickets nobody spoke on for the shop's `service_idle` (the customer is told).

    (none) --record_handoff--> open --close (staff | customer | idle)--> closed --prune--> (none)

Every message a customer sends is written down by the intake journal
(`commerce.messaging.inbound`, kept `conversation_keep`); a ticket's own lines are here,
kept as long, then pruned with the ticket (`prune_closed`). The callers commit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.cart import cart
from commerce.customers.models import Customer, Handoff, HandoffMessage, HandoffStatus
from commerce.db import rowcount
from commerce.errors import ErrorCode, ShopError
from commerce.messaging import notices, outbox
from commerce.orders import placement as orders
from commerce.rules import as_utc

MAX_RECENT = 20
MAX_RECENT_CHARS = 300
MAX_LINE_CHARS = 1000  # a line kept on a ticket (WeChat's text messages are at most ~2000 bytes)
CUSTOMER, STAFF = "customer", "staff"
BY_STAFF, BY_CUSTOMER, BY_IDLE = "staff", "customer", "idle"


@dataclass(frozen=True, slots=True)
class Ticket:
    """A ticket as plain values: `openid` is the customer's; `assignee` the staff member
    holding it ("" before anyone answered); `already_open`: `record_handoff` found it open."""

    id: int
    customer_id: int
    openid: str
    status: str
    assignee: str
    context: dict[str, Any]
    created_at: datetime
    last_activity_at: datetime
    lines: int = 0
    last_text: str = ""
    already_open: bool = False

    @property
    def is_open(self) -> bool:
        return self.status == HandoffStatus.OPEN


@dataclass(frozen=True, slots=True)
class TicketLine:
    at: datetime
    speaker: str  # customer | staff
    text: str


def _ticket(row: Handoff, openid: str, **extra: Any) -> Ticket:
    return Ticket(
        id=row.id, customer_id=row.customer_id, openid=openid, status=row.status, assignee=row.assignee,
        context=dict(row.context or {}), created_at=as_utc(row.created_at),
        last_activity_at=as_utc(row.last_activity_at), **extra,
    )


async def record_handoff(
    session: AsyncSession,
    *,
    customer_id: int,
    message: str = "",
    recent: Sequence[Mapping[str, str]] = (),
    now: datetime,
) -> Ticket:
    """Open a ticket with the customer's cart, last order and the recent conversation
    (`recent`: lines {at, from: "customer" | "shop", text}, oldest first, as the caller kept
    them); the customer's open ticket instead (`already_open`) when they have one."""
    found = await open_ticket_of(session, customer_id=customer_id)
    if found is not None:
        return replace(found, already_open=True)
    view = await cart.get_cart(session, customer_id=customer_id)
    last = await orders.list_orders(session, customer_id=customer_id, limit=1)
    context: dict[str, Any] = {
        "message": message[:500],
        "cart": [
            {"name": line.name, "spec": line.spec_label, "quantity": line.quantity, "price_fen": line.unit_price_fen}
            for line in view.lines
        ],
        "cart_total_fen": view.total_fen,
        "last_order": (
            {"order_no": last[0].order_no, "status": str(last[0].status), "payable_fen": last[0].payable_fen}
            if last
            else None
        ),
        "recent": [
            {"at": line["at"], "from": line["from"], "text": line["text"][:MAX_RECENT_CHARS]}
            for line in recent[-MAX_RECENT:]
        ],
    }
    row = Handoff(
        customer_id=customer_id, context=context, status=HandoffStatus.OPEN, assignee="",
        created_at=as_utc(now), last_activity_at=as_utc(now), closed_by="",
    )
    session.add(row)
    await session.flush()
    openid = await session.scalar(select(Customer.openid).where(Customer.id == customer_id))
    return _ticket(row, openid or "")


async def open_ticket_of(session: AsyncSession, *, customer_id: int) -> Ticket | None:
    """The customer's open ticket, if any (the newest)."""
    row = (
        await session.execute(
            select(Handoff, Customer.openid)
            .join(Customer, Customer.id == Handoff.customer_id)
            .where(Handoff.customer_id == customer_id, Handoff.status == HandoffStatus.OPEN)
            .order_by(Handoff.id.desc())
            .limit(1)
        )
    ).first()
    return None if row is None else _ticket(row[0], row[1])


async def get_ticket(session: AsyncSession, *, ticket_id: int) -> Ticket:
    """TICKET_NOT_FOUND when there is no such ticket."""
    row = (
        await session.execute(
            select(Handoff, Customer.openid)
            .join(Customer, Customer.id == Handoff.customer_id)
            .where(Handoff.id == ticket_id)
            .execution_options(populate_existing=True)
        )
    ).first()
    if row is None:
        raise ShopError(ErrorCode.TICKET_NOT_FOUND, ticket_id=ticket_id)
    return _ticket(row[0], row[1])


async def _open(session: AsyncSession, ticket_id: int) -> Ticket:
    ticket = await get_ticket(session, ticket_id=ticket_id)
    if not ticket.is_open:
        raise ShopError(ErrorCode.TICKET_CLOSED, ticket_id=ticket_id)
    return ticket


async def lines_of(session: AsyncSession, *, ticket_id: int, limit: int = 20) -> list[TicketLine]:
    """The ticket's last `limit` lines, oldest first."""
    rows = await session.execute(
        select(HandoffMessage.at, HandoffMessage.speaker, HandoffMessage.text)
        .where(HandoffMessage.handoff_id == ticket_id)
        .order_by(HandoffMessage.id.desc())
        .limit(limit)
    )
    return [TicketLine(as_utc(r.at), r.speaker, r.text) for r in reversed(rows.all())]


async def list_open(session: AsyncSession, *, limit: int = 20) -> list[Ticket]:
    """Open tickets, the one waiting longest first, with their line count and last line."""
    count = (
        select(func.count(HandoffMessage.id)).where(HandoffMessage.handoff_id == Handoff.id).scalar_subquery()
    )
    last = (
        select(HandoffMessage.text)
        .where(HandoffMessage.handoff_id == Handoff.id)
        .order_by(HandoffMessage.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    rows = await session.execute(
        select(Handoff, Customer.openid, count, last)
        .join(Customer, Customer.id == Handoff.customer_id)
        .where(Handoff.status == HandoffStatus.OPEN)
        .order_by(Handoff.last_activity_at, Handoff.id)
        .limit(limit)
    )
    return [
        _ticket(row[0], row[1], lines=int(row[2] or 0), last_text=row[3] or str(row[0].context.get("message", "")))
        for row in rows.all()
    ]


async def _add_line(
    session: AsyncSession, ticket: Ticket, *, speaker: str, text: str, now: datetime, staff_openid: str = ""
) -> None:
    session.add(
        HandoffMessage(
            handoff_id=ticket.id, speaker=speaker, staff_openid=staff_openid, text=text[:MAX_LINE_CHARS],
            at=as_utc(now),
        )
    )
    values: dict[str, Any] = {"last_activity_at": as_utc(now)}
    if staff_openid and not ticket.assignee:
        values["assignee"] = staff_openid  # the first to answer holds the ticket
    await session.execute(
        update(Handoff).where(Handoff.id == ticket.id).values(**values).execution_options(synchronize_session=False)
    )


async def customer_said(
    session: AsyncSession, *, ticket_id: int, text: str, now: datetime, idle: timedelta
) -> Ticket | None:
    """The customer wrote while their ticket is open: kept on it. None when the ticket is no
    longer open, or nobody spoke on it for `idle` (then it is closed now, as `close_idle`
    would: the customer is told, and their message is theirs to shop with again)."""
    try:
        ticket = await _open(session, ticket_id)
    except ShopError:
        return None
    if ticket.last_activity_at < as_utc(now) - idle:
        await close(session, ticket_id=ticket_id, by=BY_IDLE, now=now)
        return None
    await _add_line(session, ticket, speaker=CUSTOMER, text=text, now=now)
    return ticket


async def staff_reply(
    session: AsyncSession,
    *,
    ticket_id: int,
    staff_openid: str,
    text: str,
    now: datetime,
    limit: int,
    paid_limit: int,
) -> Ticket:
    """A staff member answers: kept on the ticket (which they hold from now on if nobody did)
    and sent to the customer as a customer-service message (queued in this transaction).

    TICKET_NOT_FOUND, TICKET_CLOSED; WINDOW_CLOSED when WeChat would refuse it (nothing is
    sent nor kept): the customer has not written (nor paid) within its 48 hours (`reason`
    "closed"), or the messages it allows since (`limit`, `paid_limit` after a payment,
    as the notification planner counts them) are used up ("used_up")."""
    ticket = await _open(session, ticket_id)
    row = (
        await session.execute(
            select(Customer.last_message_at, Customer.paid_window_at, Customer.window_sent)
            .where(Customer.id == ticket.customer_id)
            .execution_options(populate_existing=True)
        )
    ).one()
    cutoff = as_utc(now) - outbox.WINDOW
    by_message = row.last_message_at is not None and as_utc(row.last_message_at) > cutoff
    by_payment = row.paid_window_at is not None and as_utc(row.paid_window_at) > cutoff
    if not (by_message or by_payment):
        raise ShopError(ErrorCode.WINDOW_CLOSED, ticket_id=ticket_id, reason="closed")
    allowed = max(limit if by_message else 0, paid_limit if by_payment else 0)
    if int(row.window_sent or 0) >= allowed:
        raise ShopError(ErrorCode.WINDOW_CLOSED, ticket_id=ticket_id, reason="used_up", limit=allowed)
    await _add_line(session, ticket, speaker=STAFF, text=text, now=now, staff_openid=staff_openid)
    notices.queue(session, openid=ticket.openid, template="service_reply", data={"text": text[:MAX_LINE_CHARS]})
    return replace(ticket, assignee=ticket.assignee or staff_openid)


async def close(session: AsyncSession, *, ticket_id: int, by: str, now: datetime) -> Ticket:
    """End an open ticket (`by`: staff, customer or idle); the customer is told unless they
    ended it themselves (their reply says so). TICKET_NOT_FOUND, TICKET_CLOSED."""
    ticket = await _open(session, ticket_id)
    result = await session.execute(
        update(Handoff)
        .where(Handoff.id == ticket_id, Handoff.status == HandoffStatus.OPEN)
        .values(status=HandoffStatus.CLOSED, closed_at=as_utc(now), closed_by=by, last_activity_at=as_utc(now))
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) != 1:  # closed meanwhile by someone else
        raise ShopError(ErrorCode.TICKET_CLOSED, ticket_id=ticket_id)
    if by != BY_CUSTOMER:
        notices.queue(session, openid=ticket.openid, template="service_closed", data={"by": by})
    return replace(ticket, status=HandoffStatus.CLOSED)


async def customer_closed(session: AsyncSession, *, ticket_id: int, now: datetime) -> Ticket | None:
    """The customer ended their ticket ("结束人工"); None when it was not open any more."""
    try:
        return await close(session, ticket_id=ticket_id, by=BY_CUSTOMER, now=now)
    except ShopError:
        return None


async def close_idle(session: AsyncSession, *, now: datetime, idle: timedelta, limit: int = 100) -> list[Ticket]:
    """Tickets nobody spoke on for `idle` are closed and their customers told."""
    ids = (
        await session.scalars(
            select(Handoff.id)
            .where(Handoff.status == HandoffStatus.OPEN, Handoff.last_activity_at < as_utc(now - idle))
            .order_by(Handoff.id)
            .limit(limit)
        )
    ).all()
    closed = []
    for ticket_id in ids:
        try:
            closed.append(await close(session, ticket_id=ticket_id, by=BY_IDLE, now=now))
        except ShopError:  # closed meanwhile
            continue
    return closed


async def prune_closed(session: AsyncSession, *, now: datetime, keep: timedelta, limit: int = 500) -> int:
    """Delete tickets closed more than `keep` ago, with their lines; how many tickets."""
    old = (
        select(Handoff.id)
        .where(Handoff.status == HandoffStatus.CLOSED, Handoff.last_activity_at < as_utc(now - keep))
        .limit(limit)
    )
    ids = list((await session.scalars(old)).all())
    if not ids:
        return 0
    await session.execute(delete(HandoffMessage).where(HandoffMessage.handoff_id.in_(ids)))
    result = await session.execute(delete(Handoff).where(Handoff.id.in_(ids)))
    return rowcount(result)

"""Group buys and the clock: groups that run out of time, reminders, staff extending or
closing a group, a leader withdrawing, and the refunds all of these leave owed.

A group ends once (FAILED or CLOSED, by a conditional UPDATE on its status); its unpaid
seats are cancelled in the same transaction. The paid seats are refunded afterwards,
outside any transaction, by `refund_ended_groups`: it looks for member orders of ended
groups that are *still paid*, and starting a full refund moves an order to refunding,
so each order is refunded (and its customer told) once, however often it runs.

Nothing here commits except `refund_ended_groups`, which runs its own units of work.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.customers.models import Customer
from commerce.db import rowcount
from commerce.errors import ErrorCode, ShopError
from commerce.groupbuys.groups import ENDED, G, GroupView, M, get_group
from commerce.groupbuys.models import GroupBuy
from commerce.messaging import notices
from commerce.messaging.notifications import Notification
from commerce.orders.actions import CancelledBy, cancel_if_unpaid, cancel_order
from commerce.orders.models import Order, OrderStatus
from commerce.rules import as_utc
from commerce.uow import UnitOfWorkFactory

log = logging.getLogger(__name__)
S = OrderStatus
REMIND_WITHIN = timedelta(hours=1)
MAX_EXTEND_HOURS = 72


async def _end_group(
    session: AsyncSession, *, group_id: int, to: G, reason: str, now: datetime, frm: tuple[str, ...]
) -> bool:
    """Move the group to FAILED/CLOSED once; cancel its unpaid seats' orders and tell those members."""
    ended = await session.execute(
        update(GroupBuy)
        .where(GroupBuy.id == group_id, GroupBuy.status.in_(frm))
        .values(status=to.value, close_reason=reason[:32], closed_at=now)
        .execution_options(synchronize_session=False)
    )
    if rowcount(ended) != 1:
        return False
    group = await get_group(session, group_id=group_id)
    for member in group.members:
        if member.status == M.RESERVED and member.order_id is not None:
            await cancel_if_unpaid(
                session, order_id=member.order_id, by=CancelledBy.GROUP, note=f"group_{to.value}", now=now
            )
            notices.queue(
                session,
                openid=member.openid,
                template="group_failed",
                data={**group.data(now), "refund": False, "reason": reason},
            )
    return True


async def fail_due_groups(session: AsyncSession, *, now: datetime, limit: int = 100) -> list[int]:
    """OPEN groups past their deadline become FAILED (once); returns the ids this call failed."""
    now = as_utc(now)
    due = (
        await session.scalars(
            select(GroupBuy.id)
            .where(GroupBuy.status == G.OPEN.value, GroupBuy.deadline <= now)
            .order_by(GroupBuy.deadline, GroupBuy.id)
            .limit(limit)
        )
    ).all()
    return [
        gid
        for gid in due
        if await _end_group(
            session, group_id=gid, to=G.FAILED, reason="expired", now=now, frm=(G.OPEN.value,)
        )
    ]


async def close_group(session: AsyncSession, *, code: str, reason: str, now: datetime) -> GroupView:
    """Staff end a forming or open group; paid members are refunded by `refund_ended_groups`."""
    group = await get_group(session, code=code)
    if not await _end_group(
        session,
        group_id=group.id,
        to=G.CLOSED,
        reason=reason,
        now=as_utc(now),
        frm=(G.FORMING.value, G.OPEN.value),
    ):
        raise ShopError(ErrorCode.GROUP_CLOSED, group_code=group.code, status=str(group.status))
    return await get_group(session, group_id=group.id)


async def leader_cancel_group(
    session: AsyncSession, *, code: str, customer_id: int, now: datetime
) -> GroupView:
    """The leader withdraws before anyone joined: the group closes (their payment is refunded).

    Only while the leader holds the only seat (a conditional UPDATE on seats_taken = 1),
    so a friend joining at the same moment keeps the group alive.
    """
    group = await get_group(session, code=code)
    if group.leader_id != customer_id:
        raise ShopError(ErrorCode.GROUP_NOT_FOUND, group_code=group.code)
    closed = await session.execute(
        update(GroupBuy)
        .where(GroupBuy.id == group.id, GroupBuy.status == G.OPEN.value, GroupBuy.seats_taken == 1)
        .values(status=G.CLOSED.value, close_reason="leader_cancelled", closed_at=as_utc(now))
        .execution_options(synchronize_session=False)
    )
    if rowcount(closed) != 1:
        if group.status == G.FORMING:  # not paid: cancelling the order closes the group
            leader = next(m for m in group.members if m.is_leader)
            assert leader.order_id is not None
            await cancel_order(
                session, order_id=leader.order_id, by=CancelledBy.CUSTOMER, customer_id=customer_id, now=now
            )
            return await get_group(session, group_id=group.id)
        raise ShopError(
            ErrorCode.GROUP_CLOSED,
            group_code=group.code,
            status=str(group.status),
            reason="members",
        )
    return await get_group(session, group_id=group.id)


async def extend_group(session: AsyncSession, *, code: str, hours: int, now: datetime) -> GroupView:
    """Staff give an open group more time (and another reminder before the new deadline).

    Only before its deadline (GROUP_EXPIRED after it, even if the expiry job has not run
    yet): a payment that arrived after the deadline was not counted in paid_count (the
    group was to fail and refund it), so a group revived past it would keep that paid
    seat uncounted and could never fill.
    """
    if not 1 <= hours <= MAX_EXTEND_HOURS:
        raise ShopError(ErrorCode.CAMPAIGN_INVALID, field="hours", max_hours=MAX_EXTEND_HOURS)
    now = as_utc(now)
    group = await get_group(session, code=code)
    if group.status != G.OPEN or group.deadline is None:
        raise ShopError(ErrorCode.GROUP_CLOSED, group_code=group.code, status=str(group.status))
    if group.deadline <= now:
        raise ShopError(ErrorCode.GROUP_EXPIRED, group_code=group.code)
    moved = await session.execute(
        update(GroupBuy)
        .where(
            GroupBuy.id == group.id,
            GroupBuy.status == G.OPEN.value,
            GroupBuy.deadline == group.deadline,
            GroupBuy.deadline > now,
        )
        .values(deadline=group.deadline + timedelta(hours=hours), reminded_at=None)
        .execution_options(synchronize_session=False)
    )
    if rowcount(moved) != 1:
        raise ShopError(ErrorCode.GROUP_CLOSED, group_code=group.code, status="changed")
    return await get_group(session, group_id=group.id)


async def remind_due_groups(
    session: AsyncSession, *, now: datetime, within: timedelta = REMIND_WITHIN, limit: int = 100
) -> int:
    """Open groups within `within` of their deadline: each member told the progress, once per deadline."""
    now = as_utc(now)
    due = (
        await session.scalars(
            select(GroupBuy.id)
            .where(
                GroupBuy.status == G.OPEN.value,
                GroupBuy.reminded_at.is_(None),
                GroupBuy.deadline > now,
                GroupBuy.deadline <= now + within,
            )
            .order_by(GroupBuy.deadline)
            .limit(limit)
        )
    ).all()
    reminded = 0
    for gid in due:
        claimed = await session.execute(
            update(GroupBuy)
            .where(
                GroupBuy.id == gid, GroupBuy.reminded_at.is_(None), GroupBuy.status == G.OPEN.value
            )
            .values(reminded_at=now)
            .execution_options(synchronize_session=False)
        )
        if rowcount(claimed) != 1:
            continue
        reminded += 1
        group = await get_group(session, group_id=gid)
        for member in group.members:
            if member.status == M.PAID:
                notices.queue(
                    session, openid=member.openid, template="group_reminder", data=group.data(now)
                )
    return reminded


# ---- refunds of ended groups ----------------------------------------------------------------


@dataclass(frozen=True)
class RefundTarget:
    order_id: int
    order_no: str
    openid: str
    amount_fen: int
    group_id: int


async def refund_targets(
    session: AsyncSession, *, group_id: int | None = None, limit: int = 100
) -> list[RefundTarget]:
    """Member orders of failed or closed groups (or of the one group) that are still paid."""
    query = (
        select(
            Order.id,
            Order.order_no,
            Customer.openid,
            Order.paid_fen,
            Order.refunded_fen,
            Order.group_id,
        )
        .join(GroupBuy, GroupBuy.id == Order.group_id)
        .join(Customer, Customer.id == Order.customer_id)
        .where(GroupBuy.status.in_(ENDED), Order.status == S.PAID.value)
        .order_by(Order.id)
        .limit(limit)
    )
    if group_id is not None:
        query = query.where(GroupBuy.id == group_id)
    rows = await session.execute(query)
    return [
        RefundTarget(r.id, r.order_no, r.openid, r.paid_fen - r.refunded_fen, r.group_id)
        for r in rows.all()
        if r.paid_fen > r.refunded_fen
    ]


Refund = Callable[
    ..., Awaitable[Any]
]  # PaymentService.refund(order_id=, amount_fen=, reason=, actor=)


async def refund_ended_groups(
    uows: UnitOfWorkFactory,
    *,
    refund: Refund,
    now: datetime,
    group_id: int | None = None,
    actor: str = "system",
    tell: bool = True,
) -> int:
    """Ask the provider to refund every paid seat of an ended group, and tell its member.

    Each refund is its own unit of work (in `refund`), the provider call outside any
    transaction; the member's "group failed, refunded" notice is written in the refund's
    transaction (`notice=`), so it is kept exactly when the refund is.
    NOTHING_TO_REFUND means another run got there first: skipped, untold.
    `group_id`: only that group's seats (staff closing one group refund it at once).
    `tell=False`: the caller tells the member itself (the leader closing their own group).
    """
    async with uows() as uow:
        targets = await refund_targets(uow.session, group_id=group_id)
        groups = {t.group_id: await get_group(uow.session, group_id=t.group_id) for t in targets}
    started = 0
    for target in targets:
        group = groups[target.group_id]
        data = {
            **group.data(now),
            "refund": True,
            "amount_fen": target.amount_fen,
            "reason": group.close_reason,
        }
        notice = Notification(target.openid, "group_failed", data) if tell else None
        try:
            await refund(
                order_id=target.order_id,
                amount_fen=target.amount_fen,
                reason="group_failed",
                actor=actor,
                notice=notice,
            )
        except ShopError as exc:
            log.info("group refund skipped: order=%s code=%s", target.order_no, exc.code)
            continue
        except Exception:
            log.exception("group refund failed: order=%s", target.order_no)
            continue
        started += 1
    return started

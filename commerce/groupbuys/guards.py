"""What group buys refuse or prepare before an order changes (guards on `commerce.events`).

A seat is an order whose `group_id` names its group. Three rules keep a group honest,
and the order and payment modules know none of them (`commerce.wiring` subscribes these):

- a seat ships only once its group filled (`ShipRequested`): a group that may still fail
  refunds its members, it must not have sent them the goods;
- a seat's money does not go back whole while its group is forming or open
  (`RefundRequested`): its seat is counted in the group's paid_count, so the next payer
  would fill a group one of whose members has their money back. The money goes back when
  the group ends (`commerce.groupbuys.deadlines`, or staff close it); a partial refund
  keeps the seat and is allowed;
- a seat's payment locks its group before its order (`PaymentArriving`), the order in
  which the expiry job and a staff close take them: no deadlock on PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.errors import ErrorCode, ShopError
from commerce.events import PaymentArriving, RefundRequested, ShipRequested
from commerce.groupbuys.models import GroupBuy, GroupStatus
from commerce.orders.models import Order

OPEN = (GroupStatus.FORMING.value, GroupStatus.OPEN.value)


async def _seat_group(session: AsyncSession, order_id: int) -> tuple[int, str, str, int, int] | None:
    """The seat's group: id, code, status, paid count and size (None: not a seat)."""
    row = (
        await session.execute(
            select(GroupBuy.id, GroupBuy.code, GroupBuy.status, GroupBuy.paid_count, GroupBuy.size)
            .join(Order, Order.group_id == GroupBuy.id)
            .where(Order.id == order_id)
        )
    ).first()
    return (row.id, row.code, row.status, row.paid_count, row.size) if row is not None else None


async def ship_only_filled_seats(session: AsyncSession, event: ShipRequested) -> None:
    """GROUP_NOT_FILLED for a seat in a group that has not filled (yet, or ever)."""
    seat = await _seat_group(session, event.order_id)
    if seat is not None and seat[2] != GroupStatus.FILLED.value:
        raise ShopError(
            ErrorCode.GROUP_NOT_FILLED, order_id=event.order_id, group_code=seat[1], status=seat[2],
            paid_count=seat[3], size=seat[4],
        )


async def keep_seats_of_open_groups(session: AsyncSession, event: RefundRequested) -> None:
    """GROUP_NOT_FILLED (details: action "refund", or the event's `purpose`) for a whole
    refund of a forming or open seat."""
    if not event.whole:
        return
    seat = await _seat_group(session, event.order_id)
    if seat is not None and seat[2] in OPEN:
        raise ShopError(
            ErrorCode.GROUP_NOT_FILLED, order_id=event.order_id, group_code=seat[1], status=seat[2],
            action=event.purpose, paid_count=seat[3], size=seat[4],
        )


async def lock_the_group_first(session: AsyncSession, event: PaymentArriving) -> None:
    group_id = await session.scalar(select(Order.group_id).where(Order.id == event.order_id))
    if group_id is not None:
        await session.execute(select(GroupBuy.id).where(GroupBuy.id == group_id).with_for_update())

"""After-sales requests as staff handle them: the open queue, approve, reject.

Customers open requests through `commerce.orders.status.request_after_sales`. Approving only
marks the request: the refund itself is started by the caller (`orders.start_refund`,
then the payment provider, outside the transaction). Each decision is one conditional
UPDATE on an open request, so of two staff deciding at once exactly one wins; the
other gets REQUEST_NOT_OPEN. Nothing here commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.customers.models import Customer
from commerce.db import rowcount
from commerce.errors import ErrorCode, ShopError
from commerce.orders.models import (
    AfterSalesKind,
    AfterSalesRequest,
    AfterSalesStatus,
    Order,
    OrderStatus,
)
from commerce.payments import refunds
from commerce.rules import as_utc, maybe_utc, utcnow
from commerce.staff.audit import Change

REJECT_REASON = (2, 300)
MAX_LIMIT = 100


@dataclass(frozen=True)
class AfterSalesView:
    id: int
    order_id: int
    order_no: str
    openid: str
    kind: AfterSalesKind
    reason: str
    status: AfterSalesStatus
    created_at: datetime
    refundable_fen: int  # what may still be refunded on the order (paid - refunded - pending)
    resolution: str = ""
    resolved_at: datetime | None = None
    order_status: OrderStatus | None = None
    paid_fen: int = 0


async def _views(session: AsyncSession, where: Any, *, limit: int) -> list[AfterSalesView]:
    rows = (
        await session.execute(
            select(AfterSalesRequest, Order.order_no, Order.status, Order.paid_fen, Customer.openid)
            .join(Order, Order.id == AfterSalesRequest.order_id)
            .join(Customer, Customer.id == AfterSalesRequest.customer_id)
            .where(where)
            .order_by(AfterSalesRequest.created_at, AfterSalesRequest.id)
            .limit(limit)
            .execution_options(populate_existing=True)
        )
    ).all()
    return [
        AfterSalesView(
            id=request.id,
            order_id=request.order_id,
            order_no=order_no,
            openid=openid,
            kind=AfterSalesKind(request.kind),
            reason=request.reason,
            status=AfterSalesStatus(request.status),
            created_at=as_utc(request.created_at),
            refundable_fen=await refunds.refundable_fen(session, order_id=request.order_id),
            resolution=request.resolution,
            resolved_at=maybe_utc(request.resolved_at),
            order_status=OrderStatus(order_status),
            paid_fen=paid_fen,
        )
        for request, order_no, order_status, paid_fen, openid in rows
    ]


def _snapshot(view: AfterSalesView) -> dict[str, Any]:
    return {
        "id": view.id,
        "order_no": view.order_no,
        "kind": view.kind.value,
        "status": view.status.value,
        "resolution": view.resolution,
    }


async def list_open(session: AsyncSession, *, limit: int = 20) -> list[AfterSalesView]:
    """Open requests, oldest first (the queue staff work through)."""
    await session.flush()
    return await _views(
        session,
        AfterSalesRequest.status == AfterSalesStatus.OPEN.value,
        limit=max(1, min(limit, MAX_LIMIT)),
    )


async def get_request(session: AsyncSession, *, request_id: int) -> AfterSalesView:
    """One request, whatever its status; REQUEST_NOT_FOUND."""
    await session.flush()
    views = await _views(session, AfterSalesRequest.id == request_id, limit=1)
    if not views:
        raise ShopError(ErrorCode.REQUEST_NOT_FOUND, request_id=request_id)
    return views[0]


async def _decide(
    session: AsyncSession,
    *,
    request_id: int,
    status: AfterSalesStatus,
    resolution: str,
    now: datetime,
) -> tuple[AfterSalesView, Change]:
    before = await get_request(session, request_id=request_id)
    result = await session.execute(
        update(AfterSalesRequest)
        .where(
            AfterSalesRequest.id == request_id,
            AfterSalesRequest.status == AfterSalesStatus.OPEN.value,
        )
        .values(status=status.value, resolution=resolution[:300], resolved_at=now)
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) != 1:
        current = await get_request(session, request_id=request_id)
        raise ShopError(
            ErrorCode.REQUEST_NOT_OPEN, request_id=request_id, status=current.status.value
        )
    after = await get_request(session, request_id=request_id)
    return after, (_snapshot(before), _snapshot(after))


async def approve(
    session: AsyncSession, *, request_id: int, actor: str, now: datetime | None = None
) -> tuple[AfterSalesView, Change]:
    """open -> approved. REQUEST_NOT_FOUND; REQUEST_NOT_OPEN (details: status) when
    decided already. The caller then refunds `refundable_fen` (or less)."""
    return await _decide(
        session,
        request_id=request_id,
        status=AfterSalesStatus.APPROVED,
        resolution="approved",
        now=as_utc(now or utcnow()),
    )


async def reject(
    session: AsyncSession,
    *,
    request_id: int,
    reason: str,
    actor: str,
    now: datetime | None = None,
) -> tuple[AfterSalesView, Change]:
    """open -> rejected, with the reason the customer will be told (2-300 characters:
    REASON_INVALID). REQUEST_NOT_FOUND, REQUEST_NOT_OPEN as `approve`."""
    reason = (reason or "").strip()
    low, high = REJECT_REASON
    if not low <= len(reason) <= high:
        raise ShopError(ErrorCode.REASON_INVALID, min_length=low, max_length=high)
    return await _decide(
        session,
        request_id=request_id,
        status=AfterSalesStatus.REJECTED,
        resolution=reason,
        now=as_utc(now or utcnow()),
    )


async def of_order(session: AsyncSession, *, order_id: int) -> list[AfterSalesView]:
    """Every request made on one order, oldest first, whatever became of it."""
    await session.flush()
    return await _views(session, AfterSalesRequest.order_id == order_id, limit=MAX_LIMIT)


async def latest_of_orders(session: AsyncSession, *, order_ids: list[int]) -> AfterSalesView | None:
    """The newest request made on any of these orders ("我的退款呢": the one asked about), or None."""
    if not order_ids:
        return None
    await session.flush()
    newest = await session.scalar(
        select(AfterSalesRequest.id)
        .where(AfterSalesRequest.order_id.in_(order_ids))
        .order_by(AfterSalesRequest.created_at.desc(), AfterSalesRequest.id.desc())
        .limit(1)
    )
    return None if newest is None else await get_request(session, request_id=newest)


def decisions_data(views: list[AfterSalesView]) -> list[dict[str, Any]]:
    """What an order's page (the customer's detail, staff's /order) shows of its requests."""
    return [
        {
            "id": v.id,
            "kind": v.kind.value,
            "status": v.status.value,
            "reason": v.reason,
            "resolution": v.resolution if v.status == AfterSalesStatus.REJECTED else "",
            "created_at": v.created_at,
            "resolved_at": v.resolved_at,
        }
        for v in views
    ]

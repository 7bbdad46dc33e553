"""After-sales requests as staff handle them: the open queue, approve, reject."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from commerce.errors import ErrorCode, ShopError
from commerce.orders import after_sales
from commerce.orders import placement as orders
from commerce.orders import status as order_status
from commerce.orders import views as order_views
from commerce.orders.models import AfterSalesKind, AfterSalesStatus, OrderStatus
from commerce.payments import refunds
from commerce.wiring import shop_sessions
from tests.commerce.orders.test_queries import NOW, RULES, expect_error, run, shop_order, variant

LATER = NOW + timedelta(hours=1)


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return shop_sessions(engine)


async def request(
    sessions: async_sessionmaker[AsyncSession],
    order: order_views.OrderView,
    *,
    kind: AfterSalesKind = AfterSalesKind.REFUND,
    reason: str = "不想要了",
    minutes: int = 0,
) -> int:
    created = await run(
        sessions,
        order_status.request_after_sales,
        order_id=order.id,
        customer_id=order.customer_id,
        kind=kind,
        reason=reason,
        rules=RULES,
        now=NOW + timedelta(minutes=10 + minutes),
    )
    return created.id


async def paid(sessions: async_sessionmaker[AsyncSession], quantity: int = 2) -> order_views.OrderView:
    v = await variant(sessions, price_fen=2500)
    return await shop_order(sessions, [(v, quantity)], paid_at=NOW + timedelta(minutes=1))


async def test_the_open_queue_oldest_first(sessions: async_sessionmaker[AsyncSession]) -> None:
    first, second = await paid(sessions), await paid(sessions, 3)
    later = await request(sessions, second, kind=AfterSalesKind.RETURN, reason="坏了", minutes=5)
    earlier = await request(sessions, first)

    queue = await run(sessions, after_sales.list_open)
    assert [r.id for r in queue] == [earlier, later]
    view = queue[0]
    assert (view.order_id, view.order_no, view.openid) == (first.id, first.order_no, first.openid)
    assert (view.kind, view.reason, view.status) == (
        AfterSalesKind.REFUND,
        "不想要了",
        AfterSalesStatus.OPEN,
    )
    assert view.created_at == NOW + timedelta(minutes=10)
    assert view.refundable_fen == first.paid_fen == 5000 + RULES.delivery_fee_fen
    assert view.order_status == OrderStatus.PAID and view.resolved_at is None
    assert [r.id for r in await run(sessions, after_sales.list_open, limit=1)] == [earlier]
    assert await run(sessions, after_sales.get_request, request_id=later) == queue[1]


async def test_refundable_follows_refunds_in_progress(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    order = await paid(sessions)
    request_id = await request(sessions, order)
    await run(
        sessions,
        refunds.start_refund,
        order_id=order.id,
        amount_fen=1000,
        reason="部分退款",
        actor="staff:x",
        now=LATER,
    )
    view = await run(sessions, after_sales.get_request, request_id=request_id)
    assert view.refundable_fen == order.paid_fen - 1000


async def test_approve(sessions: async_sessionmaker[AsyncSession]) -> None:
    order = await paid(sessions)
    request_id = await request(sessions, order)
    view, (before, after) = await run(
        sessions, after_sales.approve, request_id=request_id, actor="cs-1", now=LATER
    )
    assert view.status == AfterSalesStatus.APPROVED and view.resolved_at == LATER
    assert before == {
        "id": request_id,
        "order_no": order.order_no,
        "kind": "refund",
        "status": "open",
        "resolution": "",
    }
    assert after == before | {"status": "approved", "resolution": "approved"}
    assert await run(sessions, after_sales.list_open) == []
    details = await expect_error(
        ErrorCode.REQUEST_NOT_OPEN,
        run(sessions, after_sales.reject, request_id=request_id, reason="不行", actor="cs-2"),
    )
    assert details["status"] == "approved"
    # the order itself is untouched: the refund is the caller's next step
    assert (await run(sessions, orders.get_order, order_id=order.id)).status == OrderStatus.PAID


async def test_reject(sessions: async_sessionmaker[AsyncSession]) -> None:
    order = await paid(sessions)
    request_id = await request(sessions, order)
    for reason in ("", " x ", "字" * 301):
        await expect_error(
            ErrorCode.REASON_INVALID,
            run(sessions, after_sales.reject, request_id=request_id, reason=reason, actor="cs"),
        )
    view, (before, after) = await run(
        sessions,
        after_sales.reject,
        request_id=request_id,
        reason=" 已超过退货期 ",
        actor="cs",
        now=LATER,
    )
    assert view.status == AfterSalesStatus.REJECTED and view.resolution == "已超过退货期"
    assert (before["status"], after["status"], after["resolution"]) == (
        "open",
        "rejected",
        "已超过退货期",
    )
    await expect_error(
        ErrorCode.REQUEST_NOT_OPEN,
        run(sessions, after_sales.approve, request_id=request_id, actor="cs"),
    )


async def test_unknown_requests(sessions: async_sessionmaker[AsyncSession]) -> None:
    await expect_error(
        ErrorCode.REQUEST_NOT_FOUND, run(sessions, after_sales.get_request, request_id=999)
    )
    await expect_error(
        ErrorCode.REQUEST_NOT_FOUND, run(sessions, after_sales.approve, request_id=999, actor="x")
    )
    await expect_error(
        ErrorCode.REQUEST_NOT_FOUND,
        run(sessions, after_sales.reject, request_id=999, reason="不行的", actor="x"),
    )


async def test_two_staff_deciding_at_once_one_wins(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    order = await paid(sessions)
    request_id = await request(sessions, order)

    async def decide(approve: bool) -> str:
        try:
            if approve:
                view, _ = await run(sessions, after_sales.approve, request_id=request_id, actor="a")
            else:
                view, _ = await run(
                    sessions, after_sales.reject, request_id=request_id, reason="不行的", actor="b"
                )
        except ShopError as exc:
            assert exc.code == ErrorCode.REQUEST_NOT_OPEN
            return "lost"
        return view.status.value

    results = await asyncio.gather(*(decide(i % 2 == 0) for i in range(6)))
    assert results.count("lost") == 5
    final = await run(sessions, after_sales.get_request, request_id=request_id)
    assert final.status.value in results

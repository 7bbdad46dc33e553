"""Orders as staff look them up; also the helpers the staff-side tests share
(`shop_order`: an order placed, and optionally paid, through the order core)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from commerce.cart.cart import add_to_cart
from commerce.customers.models import Address, Customer
from commerce.errors import ErrorCode, ShopError
from commerce.orders import placement as orders
from commerce.orders import views as order_views
from commerce.orders.models import Order, OrderStatus
from commerce.orders.queries import find_order, list_orders_by_status
from commerce.payments import records as payment_records
from commerce.rules import ShopRules
from commerce.wiring import shop_sessions
from tests.commerce.factories import make_address, make_variant

RULES = ShopRules()
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
_seq = itertools.count(1)


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return shop_sessions(engine)


async def expect_error(code: ErrorCode, awaitable: Any) -> dict[str, Any]:
    with pytest.raises(ShopError) as caught:
        await awaitable
    assert caught.value.code == code, caught.value
    return caught.value.details


async def run(sessions: async_sessionmaker[AsyncSession], fn: Any, **kwargs: Any) -> Any:
    """Call one core function in its own committed unit of work."""
    async with sessions() as session:
        result = await fn(session, **kwargs)
        await session.commit()
        return result


async def variant(
    sessions: async_sessionmaker[AsyncSession],
    *,
    name: str = "苹果",
    price_fen: int = 1000,
    stock: int = 100,
) -> int:
    async with sessions() as session:
        variant_id = await make_variant(session, name=name, price_fen=price_fen, stock=stock)
        await session.commit()
    return variant_id


async def customer(sessions: async_sessionmaker[AsyncSession], openid: str | None = None) -> int:
    async with sessions() as session:
        found = Customer(openid=openid or f"buyer-{next(_seq)}")
        session.add(found)
        await session.flush()
        await make_address(session, found.id)
        await session.commit()
        return found.id


async def shop_order(
    sessions: async_sessionmaker[AsyncSession],
    lines: Sequence[tuple[int, int]],
    *,
    customer_id: int | None = None,
    placed_at: datetime = NOW,
    paid_at: datetime | None = None,
) -> order_views.OrderView:
    """An order of (variant_id, quantity) lines, placed at `placed_at` and paid at `paid_at`."""
    if customer_id is None:
        customer_id = await customer(sessions)
    async with sessions() as session:
        for variant_id, quantity in lines:
            await add_to_cart(
                session,
                customer_id=customer_id,
                variant_id=variant_id,
                quantity=quantity,
                rules=RULES,
            )
        address_id = await session.scalar(
            select(Address.id).where(Address.customer_id == customer_id)
        )
        order = await orders.place_order(
            session,
            customer_id=customer_id,
            address_id=address_id,
            idempotency_key=f"k{next(_seq)}",
            rules=RULES,
            now=placed_at,
        )
        await session.commit()
    if paid_at is None:
        return order
    async with sessions() as session:
        outcome = await payment_records.record_payment(
            session,
            provider="sandbox",
            order_no=order.order_no,
            transaction_id=f"T{next(_seq)}",
            amount_fen=order.payable_fen,
            paid_at=paid_at,
            payload={},
        )
        await session.commit()
    assert outcome.result == "applied" and outcome.order is not None
    return outcome.order


# ---- tests --------------------------------------------------------------------------------


async def test_orders_by_status_newest_first_with_the_total(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    v = await variant(sessions)
    pending = [
        await shop_order(sessions, [(v, 1)], placed_at=NOW + timedelta(minutes=i)) for i in range(3)
    ]
    paid = await shop_order(sessions, [(v, 2)], placed_at=NOW, paid_at=NOW + timedelta(minutes=1))

    page, total = await run(
        sessions, list_orders_by_status, statuses=[OrderStatus.PENDING_PAYMENT], limit=2
    )
    assert total == 3 and [o.id for o in page] == [pending[2].id, pending[1].id]
    page, total = await run(
        sessions, list_orders_by_status, statuses=[OrderStatus.PENDING_PAYMENT], limit=2, offset=2
    )
    assert total == 3 and [o.id for o in page] == [pending[0].id]

    page, total = await run(sessions, list_orders_by_status, statuses=[OrderStatus.PAID])
    assert total == 1 and page[0].order_no == paid.order_no and page[0].paid_fen == paid.paid_fen
    assert page[0].lines[0].quantity == 2 and page[0].openid == paid.openid

    page, total = await run(sessions, list_orders_by_status, statuses=None)
    assert total == 4 and len(page) == 4
    page, total = await run(sessions, list_orders_by_status, statuses=[OrderStatus.SHIPPED])
    assert (page, total) == ([], 0)


async def test_find_an_order_by_number_or_id(sessions: async_sessionmaker[AsyncSession]) -> None:
    v = await variant(sessions)
    order = await shop_order(sessions, [(v, 1)])
    assert (await run(sessions, find_order, ref=order.order_no)).id == order.id
    assert (await run(sessions, find_order, ref=f" {order.order_no.lower()} ")).id == order.id
    assert (await run(sessions, find_order, ref=order.order_no[2:])).id == order.id
    assert (await run(sessions, find_order, ref=str(order.id))).order_no == order.order_no
    assert (await run(sessions, find_order, ref=f"#{order.id}")).order_no == order.order_no


async def _renumber(sessions: async_sessionmaker[AsyncSession], order_id: int, order_no: str) -> None:
    async with sessions() as session:
        await session.execute(update(Order).where(Order.id == order_id).values(order_no=order_no))
        await session.commit()


async def test_bug_an_orders_short_number_was_not_found(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Found playing a merchant's day: `/order 34103120` (the last 8 digits, read off a
    parcel) said 没有找到这个订单. An end of 6 digits or more names the order it ends;
    one that ends several lists them, newest first; shorter digits stay an id."""
    v = await variant(sessions)
    first, second, third = [await shop_order(sessions, [(v, 1)]) for _ in range(3)]
    await _renumber(sessions, first.id, "SF2026120534103120")
    await _renumber(sessions, second.id, "SF2026120599103120")
    await _renumber(sessions, third.id, "SF2026120600000042")

    assert (await run(sessions, find_order, ref="34103120")).id == first.id
    assert (await run(sessions, find_order, ref="#4103120")).id == first.id
    assert (await run(sessions, find_order, ref="000042")).id == third.id
    assert (await run(sessions, find_order, ref=str(second.id))).id == second.id  # an id, as before
    details = await expect_error(ErrorCode.ORDER_AMBIGUOUS, run(sessions, find_order, ref="103120"))
    assert details["ref"] == "103120" and details["more"] is False
    assert [o["order_no"] for o in details["orders"]] == ["SF2026120599103120", "SF2026120534103120"]
    assert details["orders"][0]["status"] == "pending_payment" and details["orders"][0]["payable_fen"] > 0
    await expect_error(ErrorCode.ORDER_NOT_FOUND, run(sessions, find_order, ref="55103120"))
    await expect_error(ErrorCode.ORDER_NOT_FOUND, run(sessions, find_order, ref="03120"))  # 5 digits: an id


async def test_digits_that_end_one_order_and_are_anothers_id_are_ambiguous(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    v = await variant(sessions)
    first, second = [await shop_order(sessions, [(v, 1)]) for _ in range(2)]
    tail = f"{second.id:06d}"  # "000002": the end of the first's number, and the second's id
    await _renumber(sessions, first.id, f"SF20261205{second.id:08d}")
    found = await expect_error(ErrorCode.ORDER_AMBIGUOUS, run(sessions, find_order, ref=tail))
    assert {o["order_no"] for o in found["orders"]} == {f"SF20261205{second.id:08d}", second.order_no}
    # a caller whose short numbers name something else (/approve: a request's id) reads no id
    assert (await run(sessions, find_order, ref=tail, by_id=False)).id == first.id
    with pytest.raises(ShopError):
        await run(sessions, find_order, ref=f"{second.id}", by_id=False)


@pytest.mark.parametrize("ref", ["", "SF2026050100000000", "999999", "abc", "99999999999999999999"])
async def test_an_unknown_order_is_not_found(
    sessions: async_sessionmaker[AsyncSession], ref: str
) -> None:
    await expect_error(ErrorCode.ORDER_NOT_FOUND, run(sessions, find_order, ref=ref))

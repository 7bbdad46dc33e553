"""Orders: placing, the status machine, the clock, payments, refunds and after-sales."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from commerce.cart import pricing
from commerce.cart.cart import add_to_cart, get_cart
from commerce.cart.models import CartLine
from commerce.catalog.models import Product, Variant
from commerce.customers.addresses import AddressView
from commerce.errors import ErrorCode, ShopError
from commerce.messaging.models import OutboxMessage
from commerce.orders import placement as orders
from commerce.orders.actions import (
    CancelledBy,
    cancel_order,
    change_address,
    complete_due_orders,
    confirm_receipt,
    correct_shipment,
    expire_due_orders,
    ship_order,
)
from commerce.orders.models import AfterSalesKind, AfterSalesStatus, Order, OrderEvent, OrderStatus
from commerce.orders.placement import get_order, list_orders, place_order
from commerce.orders.status import (
    ALLOWED,
    orders_to_remind,
    request_after_sales,
    transition,
)
from commerce.orders.views import OrderView
from commerce.payments import records as payment_records
from commerce.payments import refunds
from commerce.payments.models import PaymentEvent, Refund, RefundStatus
from commerce.payments.records import record_payment
from commerce.payments.refunds import (
    late_refund_source,
    record_refund_result,
    start_late_refund,
    start_refund,
)
from commerce.promotions.models import CouponKind, CustomerCoupon
from commerce.rules import ShopRules
from commerce.staff.models import AuditEntry
from commerce.wiring import shop_sessions
from tests.commerce.factories import (
    make_address,
    make_coupon,
    make_customer,
    make_variant,
    stock_of,
)

S = OrderStatus
RULES = ShopRules()
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return shop_sessions(engine)


@dataclass(frozen=True)
class Buyer:
    customer_id: int
    address_id: int
    variant_ids: tuple[int, ...]
    openid: str


async def buyer_with_cart(
    sessions: async_sessionmaker[AsyncSession],
    items: Sequence[tuple[int, int, int]] = ((2500, 10, 2),),
    *,
    coupon: dict[str, Any] | None = None,
) -> Buyer:
    """A customer with an address and a cart of (price_fen, stock, quantity) lines."""
    async with sessions() as session:
        openid = f"o-{id(items)}-{datetime.now().timestamp()}"
        customer = await make_customer(session, openid)
        address = await make_address(session, customer)
        variants = []
        for price, stock, quantity in items:
            variant = await make_variant(session, price_fen=price, stock=stock)
            await add_to_cart(
                session, customer_id=customer, variant_id=variant, quantity=quantity, rules=RULES
            )
            variants.append(variant)
        if coupon is not None:
            await make_coupon(session, customer, **coupon)
        await session.commit()
    return Buyer(customer, address, tuple(variants), openid)


async def place(
    sessions: async_sessionmaker[AsyncSession], buyer: Buyer, key: str = "key-1", **kwargs: Any
) -> OrderView:
    async with sessions() as session:
        kwargs.setdefault("now", NOW)
        order = await place_order(
            session,
            customer_id=buyer.customer_id,
            address_id=buyer.address_id,
            idempotency_key=key,
            rules=RULES,
            **kwargs,
        )
        await session.commit()
    return order


async def add_one_more(sessions: async_sessionmaker[AsyncSession], buyer: Buyer) -> None:
    """One more unit of the buyer's first variant in the cart (for another order)."""
    async with sessions() as session:
        await add_to_cart(
            session,
            customer_id=buyer.customer_id,
            variant_id=buyer.variant_ids[0],
            quantity=1,
            rules=RULES,
        )
        await session.commit()


async def run(sessions: async_sessionmaker[AsyncSession], fn: Any, **kwargs: Any) -> Any:
    """Call one core function in its own committed unit of work."""
    async with sessions() as session:
        result = await fn(session, **kwargs)
        await session.commit()
        return result


async def count(sessions: async_sessionmaker[AsyncSession], model: Any, *where: Any) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def events(
    sessions: async_sessionmaker[AsyncSession], order_id: int
) -> list[tuple[str | None, str, str]]:
    async with sessions() as session:
        rows = await session.execute(
            select(OrderEvent.from_status, OrderEvent.to_status, OrderEvent.actor)
            .where(OrderEvent.order_id == order_id)
            .order_by(OrderEvent.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


async def pay(
    sessions: async_sessionmaker[AsyncSession],
    order: OrderView,
    txn: str = "T1",
    amount: int | None = None,
) -> payment_records.PaymentOutcome:
    return await run(
        sessions,
        record_payment,
        provider="sandbox",
        order_no=order.order_no,
        transaction_id=txn,
        amount_fen=order.payable_fen if amount is None else amount,
        paid_at=NOW + timedelta(minutes=1),
        payload={"transaction_id": txn},
    )


async def paid_order(
    sessions: async_sessionmaker[AsyncSession],
    items: Sequence[tuple[int, int, int]] = ((2500, 10, 2),),
) -> tuple[Buyer, OrderView]:
    buyer = await buyer_with_cart(sessions, items)
    order = await place(sessions, buyer)
    outcome = await pay(sessions, order)
    assert outcome.result == "applied" and outcome.order is not None
    return buyer, outcome.order


async def expect_error(code: ErrorCode, awaitable: Any) -> dict[str, Any]:
    with pytest.raises(ShopError) as caught:
        await awaitable
    assert caught.value.code == code, caught.value
    return caught.value.details


# ---- placing orders ----------------------------------------------------------------------


async def test_place_order_snapshots_reserves_uses_the_coupon_and_empties_the_cart(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    buyer = await buyer_with_cart(
        sessions,
        [(2500, 10, 2), (1200, 5, 1)],
        coupon={"kind": CouponKind.AMOUNT_OFF, "amount_off_fen": 1000},
    )
    order = await place(sessions, buyer, note="  请下午送  ")

    assert (
        order.status == S.PENDING_PAYMENT
        and order.customer_id == buyer.customer_id
        and order.openid == buyer.openid
    )
    assert order.order_no.startswith("SF20260501") and len(order.order_no) == 18
    assert [(ln.unit_price_fen, ln.quantity, ln.subtotal_fen) for ln in order.lines] == [
        (2500, 2, 5000),
        (1200, 1, 1200),
    ]
    assert order.lines[0].name == "烟台红富士苹果" and order.lines[0].sku_code.startswith("SKU-")
    assert (order.goods_fen, order.discount_fen, order.delivery_fen, order.points_fen) == (
        6200,
        1000,
        800,
        0,
    )
    assert order.payable_fen == 6000 and order.paid_fen == 0 and order.refunded_fen == 0
    assert (order.address_name, order.address_phone) == ("张三", "13800138000")
    assert order.address_text == "上海市浦东新区世纪大道100号" and order.note == "请下午送"
    assert order.created_at == NOW and order.expires_at == NOW + RULES.order_timeout
    assert [(e.from_status, e.to_status, e.actor) for e in order.events] == [
        (None, "pending_payment", "customer")
    ]

    assert await stock_of(sessions, buyer.variant_ids[0]) == 8
    assert await stock_of(sessions, buyer.variant_ids[1]) == 4
    assert await count(sessions, CartLine, CartLine.customer_id == buyer.customer_id) == 0
    async with sessions() as session:
        held = await session.get(CustomerCoupon, order.customer_coupon_id)
        assert held is not None and held.status == "used"

    # the snapshot does not follow later catalog changes
    async with sessions() as session:
        await session.execute(
            update(Variant).where(Variant.id == buyer.variant_ids[0]).values(price_fen=9999)
        )
        await session.execute(update(Product).values(name="改名了"))
        await session.commit()
    again = await run(sessions, get_order, order_id=order.id)
    assert again.lines == order.lines


async def test_the_same_idempotency_key_returns_the_same_order(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    buyer = await buyer_with_cart(sessions)
    first = await place(sessions, buyer, key="checkout-42")
    # the customer fills the cart again and the confirm message is delivered twice
    async with sessions() as session:
        await add_to_cart(
            session,
            customer_id=buyer.customer_id,
            variant_id=buyer.variant_ids[0],
            quantity=1,
            rules=RULES,
        )
        await session.commit()
    second = await place(sessions, buyer, key="checkout-42")
    assert second.id == first.id and second == first
    assert await count(sessions, Order) == 1
    assert await stock_of(sessions, buyer.variant_ids[0]) == 8  # reserved once
    assert (await run(sessions, get_cart, customer_id=buyer.customer_id)).count == 1  # untouched


async def test_two_racing_calls_with_one_key_make_one_order(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    buyer = await buyer_with_cart(sessions)
    first, second = await asyncio.gather(
        place(sessions, buyer, key="twice"), place(sessions, buyer, key="twice")
    )
    assert first.id == second.id
    assert await count(sessions, Order) == 1
    assert await stock_of(sessions, buyer.variant_ids[0]) == 8


async def test_idempotency_keys_belong_to_their_customer(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    alice, bob = await buyer_with_cart(sessions), await buyer_with_cart(sessions)
    first, second = (
        await place(sessions, alice, key="msg-1"),
        await place(sessions, bob, key="msg-1"),
    )
    assert first.id != second.id and (first.customer_id, second.customer_id) == (
        alice.customer_id,
        bob.customer_id,
    )
    long_key = "x" * 300
    async with sessions() as session:
        await add_to_cart(
            session,
            customer_id=alice.customer_id,
            variant_id=alice.variant_ids[0],
            quantity=1,
            rules=RULES,
        )
        await session.commit()
    assert (await place(sessions, alice, key=long_key)).id != first.id
    assert (await place(sessions, alice, key=long_key)).id == (
        await place(sessions, alice, key=long_key)
    ).id


async def test_an_empty_cart_cannot_be_ordered(sessions: async_sessionmaker[AsyncSession]) -> None:
    buyer = await buyer_with_cart(sessions, [])
    await expect_error(ErrorCode.CART_EMPTY, place(sessions, buyer))
    assert await count(sessions, Order) == 0


async def test_someone_elses_address_is_not_found(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    buyer = await buyer_with_cart(sessions)
    other = await buyer_with_cart(sessions)
    await expect_error(
        ErrorCode.ADDRESS_NOT_FOUND,
        place(sessions, Buyer(buyer.customer_id, other.address_id, (), buyer.openid)),
    )


async def assert_nothing_happened(
    sessions: async_sessionmaker[AsyncSession], buyer: Buyer, stocks: Sequence[int]
) -> None:
    assert await count(sessions, Order) == 0
    assert [await stock_of(sessions, v) for v in buyer.variant_ids] == list(stocks)
    assert await count(sessions, CartLine, CartLine.customer_id == buyer.customer_id) == len(
        buyer.variant_ids
    )
    assert await count(sessions, CustomerCoupon, CustomerCoupon.status == "used") == 0


async def test_a_line_out_of_stock_since_the_quote_refuses_the_whole_order(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    buyer = await buyer_with_cart(
        sessions, [(1000, 10, 2), (500, 3, 3)], coupon={"amount_off_fen": 100}
    )
    async with sessions() as session:
        await session.execute(
            update(Variant).where(Variant.id == buyer.variant_ids[1]).values(stock=1)
        )
        await session.commit()
    details = await expect_error(ErrorCode.OUT_OF_STOCK, place(sessions, buyer))
    assert details["available"] == 1
    assert [(p["variant_id"], p["problem"], p["available"]) for p in details["problems"]] == [
        (buyer.variant_ids[1], "not_enough_stock", 1)
    ]
    await assert_nothing_happened(sessions, buyer, [10, 1])


async def test_an_off_sale_line_refuses_the_order(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    buyer = await buyer_with_cart(sessions, [(1000, 10, 1)])
    async with sessions() as session:
        await session.execute(update(Product).values(status="off_sale"))
        await session.commit()
    details = await expect_error(ErrorCode.NOT_ON_SALE, place(sessions, buyer))
    assert details["problems"][0]["problem"] == "off_sale"
    await assert_nothing_happened(sessions, buyer, [10])


async def test_a_price_change_since_the_quote_is_refused(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    buyer = await buyer_with_cart(sessions, [(1000, 10, 2)])
    async with sessions() as session:
        shown = await pricing.quote(session, customer_id=buyer.customer_id, rules=RULES, now=NOW)
        await session.execute(
            update(Variant).where(Variant.id == buyer.variant_ids[0]).values(price_fen=1100)
        )
        await session.commit()
    details = await expect_error(
        ErrorCode.PRICE_CHANGED, place(sessions, buyer, expected_payable_fen=shown.payable_fen)
    )
    assert details == {"expected_fen": 2800, "payable_fen": 3000}
    await assert_nothing_happened(sessions, buyer, [10])
    order = await place(
        sessions, buyer, expected_payable_fen=3000
    )  # confirmed again at the new price
    assert order.payable_fen == 3000


async def test_stock_taken_between_quote_and_reservation_leaves_nothing_behind(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another buyer empties the second line after this checkout priced the cart: the
    first line's reservation and the coupon are undone even if the caller commits."""
    buyer = await buyer_with_cart(
        sessions, [(1000, 10, 2), (500, 3, 3)], coupon={"amount_off_fen": 100}
    )
    real_quote = pricing.quote

    async def quote_then_someone_buys(session: AsyncSession, **kwargs: Any) -> Any:
        priced = await real_quote(session, **kwargs)
        async with sessions() as rival:
            await rival.execute(
                update(Variant).where(Variant.id == buyer.variant_ids[1]).values(stock=2)
            )
            await rival.commit()
        return priced

    monkeypatch.setattr(orders, "quote", quote_then_someone_buys)
    async with sessions() as session:
        details = await expect_error(
            ErrorCode.OUT_OF_STOCK,
            place_order(
                session,
                customer_id=buyer.customer_id,
                address_id=buyer.address_id,
                idempotency_key="k",
                rules=RULES,
            ),
        )
        await session.commit()  # a careless caller: still nothing may stick
    assert details["problems"][0]["available"] == 2
    await assert_nothing_happened(sessions, buyer, [10, 2])


async def test_a_coupon_used_elsewhere_meanwhile_refuses_the_order(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    buyer = await buyer_with_cart(sessions, [(1000, 10, 1)], coupon={"amount_off_fen": 100})
    real_quote = pricing.quote

    async def quote_then_coupon_used(session: AsyncSession, **kwargs: Any) -> Any:
        priced = await real_quote(session, **kwargs)
        async with sessions() as rival:
            await rival.execute(update(CustomerCoupon).values(status="used"))
            await rival.commit()
        return priced

    monkeypatch.setattr(orders, "quote", quote_then_coupon_used)
    details = await expect_error(ErrorCode.COUPON_INVALID, place(sessions, buyer))
    assert details["reason"] == "used"
    assert (
        await count(sessions, Order) == 0 and await stock_of(sessions, buyer.variant_ids[0]) == 10
    )


async def test_get_and_list_orders(sessions: async_sessionmaker[AsyncSession]) -> None:
    buyer = await buyer_with_cart(sessions, [(1000, 100, 1)])
    placed = []
    for n in range(3):
        await add_one_more(sessions, buyer)
        placed.append(await place(sessions, buyer, key=f"k{n}", now=NOW + timedelta(minutes=n)))
    stranger = await buyer_with_cart(sessions)
    await run(sessions, cancel_order, order_id=placed[1].id, by=CancelledBy.CUSTOMER, now=NOW)

    newest_first = await run(sessions, list_orders, customer_id=buyer.customer_id)
    assert [o.id for o in newest_first] == [placed[2].id, placed[1].id, placed[0].id]
    assert [
        o.id
        for o in await run(sessions, list_orders, customer_id=buyer.customer_id, limit=1, offset=1)
    ] == [placed[1].id]
    assert [
        o.id
        for o in await run(
            sessions, list_orders, customer_id=buyer.customer_id, statuses=[S.CANCELLED]
        )
    ] == [placed[1].id]
    assert await run(sessions, list_orders, customer_id=stranger.customer_id) == []

    assert (await run(sessions, get_order, order_no=placed[0].order_no)).id == placed[0].id
    assert (
        await run(sessions, get_order, order_id=placed[0].id, customer_id=buyer.customer_id)
    ).id == placed[0].id
    await expect_error(
        ErrorCode.ORDER_NOT_FOUND,
        run(sessions, get_order, order_id=placed[0].id, customer_id=stranger.customer_id),
    )
    await expect_error(ErrorCode.ORDER_NOT_FOUND, run(sessions, get_order, order_no="SF-nope"))


# ---- the status machine ------------------------------------------------------------------


def test_the_machine_is_the_documented_one() -> None:
    assert ALLOWED == {
        S.PENDING_PAYMENT: {S.PAID, S.CANCELLED},
        S.PAID: {S.SHIPPED, S.REFUNDING},
        S.SHIPPED: {S.COMPLETED, S.REFUNDING},
        S.COMPLETED: {S.REFUNDING},
        S.REFUNDING: {S.REFUNDED, S.PAID, S.SHIPPED, S.COMPLETED},
        S.CANCELLED: set(),
        S.REFUNDED: set(),
    }


PATHS = [
    [S.CANCELLED],
    [S.PAID, S.SHIPPED, S.COMPLETED, S.REFUNDING, S.REFUNDED],
    [S.PAID, S.REFUNDING, S.PAID, S.SHIPPED, S.REFUNDING, S.SHIPPED, S.REFUNDING, S.REFUNDED],
    [S.PAID, S.SHIPPED, S.COMPLETED, S.REFUNDING, S.COMPLETED],
]


@pytest.mark.parametrize(
    "path", PATHS, ids=["cancel", "happy-then-refund", "refund-back-and-forth", "completed-back"]
)
async def test_every_allowed_transition_is_recorded(
    sessions: async_sessionmaker[AsyncSession], path: list[OrderStatus]
) -> None:
    buyer = await buyer_with_cart(sessions)
    order = await place(sessions, buyer)
    statuses = [S.PENDING_PAYMENT, *path]
    for frm, to in zip(statuses, path, strict=False):
        view = await run(
            sessions,
            transition,
            order_id=order.id,
            to=to,
            actor="staff:op",
            note=f"{frm}->{to}",
            expect=frm,
        )
        assert view.status == to
    recorded = await events(sessions, order.id)
    assert recorded == [(None, "pending_payment", "customer")] + [
        (str(frm), str(to), "staff:op") for frm, to in zip(statuses, path, strict=False)
    ]
    final = await run(sessions, get_order, order_id=order.id)
    assert [e.note for e in final.events[1:]] == [
        f"{frm}->{to}" for frm, to in zip(statuses, path, strict=False)
    ]
    if path[-1] in (S.CANCELLED, S.REFUNDED):
        assert final.closed_at is not None
    if S.SHIPPED in path:
        assert final.shipped_at is not None


@pytest.mark.parametrize(
    ("path", "illegal"),
    [
        ([], S.SHIPPED),
        ([], S.COMPLETED),
        ([], S.REFUNDED),
        ([S.CANCELLED], S.PAID),
        ([S.PAID], S.CANCELLED),
        ([S.PAID], S.COMPLETED),
        ([S.PAID, S.SHIPPED, S.COMPLETED], S.SHIPPED),
        ([S.PAID, S.REFUNDING, S.REFUNDED], S.PAID),
    ],
)
async def test_illegal_transitions_are_refused(
    sessions: async_sessionmaker[AsyncSession], path: list[OrderStatus], illegal: OrderStatus
) -> None:
    buyer = await buyer_with_cart(sessions)
    order = await place(sessions, buyer)
    for to in path:
        await run(sessions, transition, order_id=order.id, to=to, actor="staff:op")
    before = await events(sessions, order.id)
    details = await expect_error(
        ErrorCode.ILLEGAL_TRANSITION,
        run(sessions, transition, order_id=order.id, to=illegal, actor="x"),
    )
    current = path[-1] if path else S.PENDING_PAYMENT
    assert details["from"] == current and details["to"] == illegal
    assert await events(sessions, order.id) == before
    assert (await run(sessions, get_order, order_id=order.id)).status == current


async def test_a_stale_expectation_is_refused(sessions: async_sessionmaker[AsyncSession]) -> None:
    buyer = await buyer_with_cart(sessions)
    order = await place(sessions, buyer)
    await run(sessions, transition, order_id=order.id, to=S.PAID, actor="x")
    details = await expect_error(
        ErrorCode.ILLEGAL_TRANSITION,
        run(
            sessions,
            transition,
            order_id=order.id,
            to=S.CANCELLED,
            actor="x",
            expect=S.PENDING_PAYMENT,
        ),
    )
    assert details["from"] == "paid"
    await expect_error(
        ErrorCode.ORDER_NOT_FOUND, run(sessions, transition, order_id=999_999, to=S.PAID, actor="x")
    )


async def test_two_racing_transitions_cannot_both_win(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    _, order = await paid_order(sessions)

    async def ship(tracking: str) -> OrderView | ShopError:
        try:
            return await run(
                sessions,
                ship_order,
                order_id=order.id,
                carrier="SF",
                tracking_no=tracking,
                actor="staff:a",
                now=datetime.now(UTC),
            )
        except ShopError as exc:
            return exc

    results = await asyncio.gather(ship("A1"), ship("B2"))
    winners = [r for r in results if isinstance(r, OrderView)]
    losers = [r for r in results if isinstance(r, ShopError)]
    assert len(winners) == 1 and len(losers) == 1
    assert losers[0].code == ErrorCode.ILLEGAL_TRANSITION and losers[0].details["from"] == "shipped"
    assert [e for e in await events(sessions, order.id) if e[1] == "shipped"] == [
        ("paid", "shipped", "staff:a")
    ]
    final = await run(sessions, get_order, order_id=order.id)
    assert final.tracking_no == winners[0].tracking_no and final.carrier == "SF"


async def test_ship_and_confirm_receipt(sessions: async_sessionmaker[AsyncSession]) -> None:
    buyer, order = await paid_order(sessions)
    stranger = await buyer_with_cart(sessions)
    await expect_error(
        ErrorCode.ILLEGAL_TRANSITION,
        run(sessions, confirm_receipt, order_id=order.id, customer_id=buyer.customer_id, now=datetime.now(UTC)),
    )
    shipped = await run(
        sessions,
        ship_order,
        order_id=order.id,
        carrier="顺丰",
        tracking_no=" SF123 ",
        actor="staff:o1",
        now=datetime.now(UTC),
    )
    assert (shipped.status, shipped.carrier, shipped.tracking_no) == (S.SHIPPED, "顺丰", "SF123")
    assert shipped.shipped_at is not None
    await expect_error(
        ErrorCode.ORDER_NOT_FOUND,
        run(sessions, confirm_receipt, order_id=order.id, customer_id=stranger.customer_id, now=datetime.now(UTC)),
    )
    done = await run(sessions, confirm_receipt, order_id=order.id, customer_id=buyer.customer_id, now=datetime.now(UTC))
    assert done.status == S.COMPLETED and done.completed_at is not None
    assert done.events[-1][:3] == ("shipped", "completed", "customer")


async def test_a_wrong_tracking_number_is_corrected_only_while_the_order_is_shipped(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    buyer, order = await paid_order(sessions)
    correct = {"order_id": order.id, "carrier": "圆通", "tracking_no": "YT888888", "actor": "staff:o1", "now": NOW}
    await expect_error(ErrorCode.ILLEGAL_TRANSITION, run(sessions, correct_shipment, **correct))  # paid, not shipped
    await run(sessions, ship_order, order_id=order.id, carrier="顺丰", tracking_no="SF1234567890", actor="staff:o1",
              now=NOW)

    same = await run(sessions, correct_shipment, **correct | {"carrier": "SF", "tracking_no": "SF1234567890"})
    assert not same.changed and same.order.tracking_no == "SF1234567890"  # "SF" is 顺丰: nothing to correct
    assert await count(sessions, OutboxMessage, OutboxMessage.event == "order_tracking_corrected") == 0
    await expect_error(ErrorCode.TRACKING_INVALID, run(sessions, correct_shipment, **correct | {"tracking_no": "运单"}))

    fixed = await run(sessions, correct_shipment, **correct)
    assert fixed.changed and (fixed.carrier, fixed.tracking_no) == ("顺丰", "SF1234567890")
    assert (fixed.order.status, fixed.order.carrier, fixed.order.tracking_no) == (S.SHIPPED, "圆通", "YT888888")
    async with sessions() as session:
        (told,) = (await session.scalars(
            select(OutboxMessage).where(OutboxMessage.event == "order_tracking_corrected")
        )).all()
        (entry,) = (await session.scalars(select(AuditEntry).where(AuditEntry.command == "ship_correct"))).all()
    assert told.openid == buyer.openid
    assert told.payload["notice"]["data"]["tracking_no"] == "YT888888"
    assert told.payload["notice"]["data"]["before_tracking_no"] == "SF1234567890"
    assert (entry.actor, entry.before["tracking_no"], entry.after["tracking_no"]) == ("staff:o1", "SF1234567890",
                                                                                   "YT888888")
    assert [e for e in await events(sessions, order.id) if e[1] == "shipped"] == [("paid", "shipped", "staff:o1")]

    await run(sessions, confirm_receipt, order_id=order.id, customer_id=buyer.customer_id, now=NOW)
    with pytest.raises(ShopError) as completed:
        await run(sessions, correct_shipment, **correct | {"tracking_no": "YT999999"})
    assert completed.value.code == ErrorCode.ILLEGAL_TRANSITION and completed.value.details["from"] == "completed"
    assert (await run(sessions, get_order, order_id=order.id)).tracking_no == "YT888888"


# ---- cancelling and the clock ------------------------------------------------------------------


async def test_cancel_releases_stock_and_frees_the_coupon(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    buyer = await buyer_with_cart(sessions, [(3000, 5, 2)], coupon={"amount_off_fen": 500})
    stranger = await buyer_with_cart(sessions)
    order = await place(sessions, buyer)
    assert await stock_of(sessions, buyer.variant_ids[0]) == 3
    await expect_error(
        ErrorCode.ORDER_NOT_FOUND,
        run(
            sessions,
            cancel_order,
            order_id=order.id,
            by=CancelledBy.CUSTOMER,
            now=NOW,
            customer_id=stranger.customer_id,
        ),
    )
    cancelled = (await run(
        sessions, cancel_order, order_id=order.id, by=CancelledBy.CUSTOMER, now=NOW, customer_id=buyer.customer_id
    )).order
    assert cancelled.status == S.CANCELLED and cancelled.closed_at is not None
    assert await stock_of(sessions, buyer.variant_ids[0]) == 5
    async with sessions() as session:
        held = await session.get(CustomerCoupon, order.customer_coupon_id)
        assert held is not None and held.status == "available" and held.used_at is None
    await expect_error(
        ErrorCode.ILLEGAL_TRANSITION,
        run(sessions, cancel_order, order_id=order.id, by=CancelledBy.CUSTOMER, now=NOW),
    )
    assert await stock_of(sessions, buyer.variant_ids[0]) == 5


async def test_cancel_twice_at_once_releases_stock_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    buyer = await buyer_with_cart(sessions, [(3000, 5, 2), (100, 9, 4)])
    order = await place(sessions, buyer)

    async def cancel() -> str:
        try:
            await run(
                sessions,
                cancel_order,
                order_id=order.id,
                by=CancelledBy.CUSTOMER,
                now=NOW,
                customer_id=buyer.customer_id,
            )
            return "cancelled"
        except ShopError as exc:
            return exc.code

    assert sorted(await asyncio.gather(cancel(), cancel())) == ["cancelled", "illegal_transition"]
    assert [await stock_of(sessions, v) for v in buyer.variant_ids] == [5, 9]
    assert [e[1] for e in await events(sessions, order.id)] == ["pending_payment", "cancelled"]


async def test_a_paid_order_cannot_be_cancelled(sessions: async_sessionmaker[AsyncSession]) -> None:
    buyer, order = await paid_order(sessions)
    details = await expect_error(
        ErrorCode.ILLEGAL_TRANSITION,
        run(sessions, cancel_order, order_id=order.id, by=CancelledBy.CUSTOMER, now=NOW),
    )
    assert details["from"] == "paid"
    assert await stock_of(sessions, buyer.variant_ids[0]) == 8


async def test_expiry_releases_stock_once_and_catches_up(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    buyer = await buyer_with_cart(sessions, [(1000, 50, 1)])
    placed = []
    for n in range(4):  # placed 0, 10, 20 and 30 minutes after NOW, one unit each
        if n:
            await add_one_more(sessions, buyer)
        placed.append(
            await place(sessions, buyer, key=f"k{n}", now=NOW + timedelta(minutes=10 * n))
        )
    await pay(sessions, placed[1])
    assert await stock_of(sessions, buyer.variant_ids[0]) == 46

    # the scheduler was down for an hour: every overdue unpaid order goes at once
    later = NOW + timedelta(minutes=55)
    expired = await run(sessions, expire_due_orders, now=later)
    assert [o.id for o in expired] == [placed[0].id, placed[2].id]
    assert all(
        o.status == S.CANCELLED and o.events[-1][2:4] == ("system", "expired") for o in expired
    )
    assert await stock_of(sessions, buyer.variant_ids[0]) == 48
    assert await run(sessions, expire_due_orders, now=later) == []  # idempotent
    assert await stock_of(sessions, buyer.variant_ids[0]) == 48
    assert [
        o.id for o in await run(sessions, expire_due_orders, now=NOW + timedelta(minutes=60))
    ] == [placed[3].id]
    statuses = [(await run(sessions, get_order, order_id=o.id)).status for o in placed]
    assert statuses == [S.CANCELLED, S.PAID, S.CANCELLED, S.CANCELLED]


async def test_expiry_in_batches(sessions: async_sessionmaker[AsyncSession]) -> None:
    buyer = await buyer_with_cart(sessions, [(1000, 50, 1)])
    for n in range(3):
        await add_one_more(sessions, buyer)
        await place(sessions, buyer, key=f"k{n}")
    later = NOW + timedelta(hours=1)
    assert len(await run(sessions, expire_due_orders, now=later, limit=2)) == 2
    assert len(await run(sessions, expire_due_orders, now=later, limit=2)) == 1
    assert await stock_of(sessions, buyer.variant_ids[0]) == 50


async def test_expiry_running_on_two_workers_expires_each_order_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    buyer = await buyer_with_cart(sessions, [(1000, 5, 3)])
    order = await place(sessions, buyer)
    later = NOW + timedelta(hours=1)
    first, second = await asyncio.gather(
        run(sessions, expire_due_orders, now=later), run(sessions, expire_due_orders, now=later)
    )
    assert len(first) + len(second) == 1
    assert await stock_of(sessions, buyer.variant_ids[0]) == 5
    assert [e[1] for e in await events(sessions, order.id)] == ["pending_payment", "cancelled"]


async def test_reminders_go_out_once_shortly_before_expiry(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    buyer = await buyer_with_cart(sessions)
    order = await place(sessions, buyer)  # expires at NOW + 30 min, reminders from NOW + 20 min
    assert await run(sessions, orders_to_remind, now=NOW + timedelta(minutes=19), rules=RULES) == []
    due = await run(sessions, orders_to_remind, now=NOW + timedelta(minutes=21), rules=RULES)
    assert [(o.id, o.openid) for o in due] == [(order.id, buyer.openid)]
    assert await run(sessions, orders_to_remind, now=NOW + timedelta(minutes=22), rules=RULES) == []
    other = await buyer_with_cart(sessions)
    paid = await place(sessions, other)
    await pay(sessions, paid)
    assert await run(sessions, orders_to_remind, now=NOW + timedelta(minutes=25), rules=RULES) == []


NEW_ADDRESS = AddressView(
    id=0, name="韩梅梅", phone="13700001111", address="北京市海淀区中关村大街1号", is_default=True,
    province="北京市", city="北京市", district="海淀区", detail="中关村大街1号",
)


async def test_an_address_changes_until_the_order_ships(sessions: async_sessionmaker[AsyncSession]) -> None:
    buyer, order = await paid_order(sessions)
    stranger = await buyer_with_cart(sessions)
    await expect_error(
        ErrorCode.ORDER_NOT_FOUND,
        run(sessions, change_address, order_id=order.id, customer_id=stranger.customer_id, address=NEW_ADDRESS, now=NOW),
    )
    changed = await run(
        sessions, change_address, order_id=order.id, customer_id=buyer.customer_id, address=NEW_ADDRESS, now=NOW
    )
    assert changed.before == "张三 13800138000 上海市浦东新区世纪大道100号"
    assert (changed.order.address_name, changed.order.address_text) == ("韩梅梅", "北京市海淀区中关村大街1号")
    await run(sessions, ship_order, order_id=order.id, carrier="顺丰", tracking_no="SF1", actor="staff:o1", now=NOW)
    with pytest.raises(ShopError) as refused:
        await run(sessions, change_address, order_id=order.id, customer_id=buyer.customer_id, address=NEW_ADDRESS, now=NOW)
    assert refused.value.code == ErrorCode.ADDRESS_FIXED and refused.value.details["status"] == "shipped"


async def test_a_shipment_racing_an_address_change_ships_the_address_it_sees(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Staff ship while the customer confirms a new address: either the change is refused
    (the shipment came first) or the shipped order carries the new address; never a change
    reported done on an order that had shipped with the old one."""
    buyer, order = await paid_order(sessions)
    ship = run(sessions, ship_order, order_id=order.id, carrier="顺丰", tracking_no="SF2", actor="staff:o1", now=NOW)
    change = run(
        sessions, change_address, order_id=order.id, customer_id=buyer.customer_id, address=NEW_ADDRESS, now=NOW
    )
    shipped, changed = await asyncio.gather(ship, change, return_exceptions=True)
    assert not isinstance(shipped, BaseException), shipped
    final = await run(sessions, get_order, order_id=order.id)
    assert final.status == S.SHIPPED
    if isinstance(changed, ShopError):
        assert changed.code == ErrorCode.ADDRESS_FIXED and final.address_name == "张三"
    else:
        assert not isinstance(changed, BaseException), changed
        assert final.address_name == "韩梅梅"


async def test_shipped_orders_complete_themselves(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    _, order = await paid_order(sessions)
    await run(
        sessions,
        ship_order,
        order_id=order.id,
        carrier="SF",
        tracking_no="1",
        actor="staff:x",
        now=NOW,
    )
    rules = ShopRules(auto_complete_after=timedelta(days=10))
    assert await run(sessions, complete_due_orders, now=NOW + timedelta(days=9), rules=rules) == []
    done = await run(sessions, complete_due_orders, now=NOW + timedelta(days=10), rules=rules)
    assert [(o.id, o.status, o.events[-1][2]) for o in done] == [(order.id, S.COMPLETED, "system")]
    assert await run(sessions, complete_due_orders, now=NOW + timedelta(days=11), rules=rules) == []


async def test_payable_order_says_whether_the_payment_page_may_charge(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    buyer = await buyer_with_cart(sessions)
    stranger = await buyer_with_cart(sessions)
    order = await place(sessions, buyer)

    def check(**kw: Any) -> Any:
        kw.setdefault("now", NOW + timedelta(minutes=5))
        return run(sessions, orders.payable_order, order_no=order.order_no, **kw)

    assert (await check(customer_id=buyer.customer_id)).id == order.id
    await expect_error(ErrorCode.ORDER_NOT_FOUND, check(customer_id=stranger.customer_id))
    await expect_error(
        ErrorCode.ORDER_EXPIRED, check(now=NOW + timedelta(minutes=30))
    )  # due, not yet swept
    await run(sessions, expire_due_orders, now=NOW + timedelta(minutes=31))
    await expect_error(ErrorCode.ORDER_EXPIRED, check())
    other = await buyer_with_cart(sessions)
    paid = await place(sessions, other)
    await pay(sessions, paid)
    details = await expect_error(
        ErrorCode.ILLEGAL_TRANSITION,
        run(sessions, orders.payable_order, order_no=paid.order_no, now=NOW),
    )
    assert details["from"] == "paid"


async def test_one_expiry_batch_releases_shared_variants_in_one_pass(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    first = await buyer_with_cart(sessions, [(100, 20, 2), (200, 20, 3)])
    second = await buyer_with_cart(sessions, [(300, 20, 1)])
    async with (
        sessions() as session
    ):  # the second buyer also takes the first buyer's variants, other way round
        for variant, quantity in ((first.variant_ids[1], 4), (first.variant_ids[0], 5)):
            await add_to_cart(
                session,
                customer_id=second.customer_id,
                variant_id=variant,
                quantity=quantity,
                rules=RULES,
            )
        await session.commit()
    await place(sessions, first)
    await place(sessions, second)
    assert [await stock_of(sessions, v) for v in first.variant_ids] == [13, 13]
    assert len(await run(sessions, expire_due_orders, now=NOW + timedelta(hours=1))) == 2
    assert [await stock_of(sessions, v) for v in (*first.variant_ids, *second.variant_ids)] == [
        20,
        20,
        20,
    ]


# ---- payments ------------------------------------------------------------------------------------


async def test_a_payment_is_applied(sessions: async_sessionmaker[AsyncSession]) -> None:
    buyer = await buyer_with_cart(sessions)
    order = await place(sessions, buyer)
    outcome = await pay(sessions, order, txn="4200001")
    assert outcome.result == "applied" and outcome.order is not None
    paid = outcome.order
    assert (paid.status, paid.paid_fen, paid.pay_provider, paid.pay_transaction_id) == (
        S.PAID,
        order.payable_fen,
        "sandbox",
        "4200001",
    )
    assert paid.paid_at == NOW + timedelta(minutes=1)
    assert paid.events[-1][:3] == ("pending_payment", "paid", "provider:sandbox")
    async with sessions() as session:
        event = await session.scalar(select(PaymentEvent))
        assert event is not None
        assert (event.kind, event.event_key, event.outcome, event.order_id) == (
            "payment",
            "4200001",
            "applied",
            order.id,
        )
        assert event.payload == {"transaction_id": "4200001"}
        assert await session.scalar(select(Product.sales_count)) == 2


async def test_the_tenth_copy_changes_nothing(sessions: async_sessionmaker[AsyncSession]) -> None:
    buyer = await buyer_with_cart(sessions)
    order = await place(sessions, buyer)
    results = [(await pay(sessions, order)).result for _ in range(10)]
    assert results == ["applied"] + ["duplicate"] * 9
    assert await count(sessions, PaymentEvent) == 1
    assert [e[1] for e in await events(sessions, order.id)] == ["pending_payment", "paid"]


async def test_ten_copies_at_once_apply_once(sessions: async_sessionmaker[AsyncSession]) -> None:
    buyer = await buyer_with_cart(sessions)
    order = await place(sessions, buyer)
    outcomes = await asyncio.gather(*(pay(sessions, order) for _ in range(10)))
    assert sorted(o.result for o in outcomes) == ["applied"] + ["duplicate"] * 9
    assert all(o.order is not None and o.order.status == S.PAID for o in outcomes)
    assert await count(sessions, PaymentEvent) == 1
    assert [e[1] for e in await events(sessions, order.id)] == ["pending_payment", "paid"]


async def test_a_wrong_amount_leaves_the_order_alone(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    buyer = await buyer_with_cart(sessions)
    order = await place(sessions, buyer)
    outcome = await pay(sessions, order, amount=1)
    assert outcome.result == "amount_mismatch" and outcome.order is not None
    assert outcome.order.status == S.PENDING_PAYMENT and outcome.order.paid_fen == 0
    async with sessions() as session:
        assert await session.scalar(select(PaymentEvent.outcome)) == "amount_mismatch"
    assert (await pay(sessions, order, txn="T2")).result == "applied"


async def test_an_unknown_order(sessions: async_sessionmaker[AsyncSession]) -> None:
    outcome = await run(
        sessions,
        record_payment,
        provider="sandbox",
        order_no="SF000",
        transaction_id="X",
        amount_fen=100,
        paid_at=NOW,
        payload={},
    )
    assert outcome == payment_records.PaymentOutcome("unknown_order", None)
    async with sessions() as session:
        assert (await session.scalar(select(PaymentEvent.outcome))) == "unknown_order"


async def test_money_after_expiry_is_late_and_refunded_not_reserved(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    buyer = await buyer_with_cart(sessions)
    order = await place(sessions, buyer)
    await run(sessions, expire_due_orders, now=NOW + timedelta(hours=1))
    assert await stock_of(sessions, buyer.variant_ids[0]) == 10
    outcome = await pay(sessions, order, txn="LATE1")
    assert (
        outcome.result == "late"
        and outcome.order is not None
        and outcome.order.status == S.CANCELLED
    )
    assert outcome.order.paid_fen == 0
    assert await stock_of(sessions, buyer.variant_ids[0]) == 10  # not re-reserved

    refund = await run(
        sessions,
        start_late_refund,
        provider="sandbox",
        order_no=order.order_no,
        transaction_id="LATE1",
        amount_fen=order.payable_fen,
    )
    assert refund.refund_no.startswith("RL") and refund.amount_fen == order.payable_fen
    assert late_refund_source(refund) == refunds.LateRefundSource("late", "sandbox", "LATE1")
    again = await run(
        sessions,
        start_late_refund,
        provider="sandbox",
        order_no=order.order_no,
        transaction_id="LATE1",
        amount_fen=order.payable_fen,
    )
    assert again.id == refund.id  # idempotent
    async with sessions() as session:
        assert await session.scalar(select(PaymentEvent.outcome)) == "late_refund_pending"

    result = await run(
        sessions,
        record_refund_result,
        provider="sandbox",
        refund_no=refund.refund_no,
        succeeded=True,
        provider_refund_id="R-1",
        payload={},
    )
    assert result == "applied"
    final = await run(sessions, get_order, order_id=order.id)
    assert (final.status, final.paid_fen, final.refunded_fen) == (
        S.CANCELLED,
        0,
        0,
    )  # the order is not touched
    async with sessions() as session:
        outcomes = dict(
            (await session.execute(select(PaymentEvent.kind, PaymentEvent.outcome))).all()
        )
        assert outcomes == {"payment": "late_refunded", "refund": "succeeded"}
        assert (await session.get(Refund, refund.id)).status == "succeeded"  # type: ignore[union-attr]
    await expect_error(
        ErrorCode.NOTHING_TO_REFUND,
        run(
            sessions,
            start_late_refund,
            provider="sandbox",
            order_no=order.order_no,
            transaction_id="NOPE",
            amount_fen=1,
        ),
    )


async def test_a_failed_late_refund_can_be_tried_again(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    buyer, order = await paid_order(sessions)
    assert (await pay(sessions, order, txn="DUP")).result == "already_paid"
    refund = await run(
        sessions,
        start_late_refund,
        provider="sandbox",
        order_no=order.order_no,
        transaction_id="DUP",
        amount_fen=order.payable_fen,
    )
    await run(
        sessions,
        record_refund_result,
        provider="sandbox",
        refund_no=refund.refund_no,
        succeeded=False,
        provider_refund_id="",
        payload={},
    )
    async with sessions() as session:
        assert (
            await session.scalar(
                select(PaymentEvent.outcome).where(PaymentEvent.event_key == "DUP")
            )
            == "already_paid_refund_failed"
        )
    retry = await run(
        sessions,
        start_late_refund,
        provider="sandbox",
        order_no=order.order_no,
        transaction_id="DUP",
        amount_fen=order.payable_fen,
    )
    assert retry.id != refund.id and retry.status == "pending"
    final = await run(sessions, get_order, order_id=order.id)
    assert (final.status, final.paid_fen, final.refunded_fen, final.pay_transaction_id) == (
        S.PAID,
        order.payable_fen,
        0,
        "T1",
    )


async def test_two_different_payments_at_once_pay_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    buyer = await buyer_with_cart(sessions)
    order = await place(sessions, buyer)
    first, second = await asyncio.gather(
        pay(sessions, order, txn="A"), pay(sessions, order, txn="B")
    )
    assert sorted([first.result, second.result]) == ["already_paid", "applied"]
    winner = "A" if first.result == "applied" else "B"
    final = await run(sessions, get_order, order_id=order.id)
    assert (final.status, final.pay_transaction_id, final.paid_fen) == (
        S.PAID,
        winner,
        order.payable_fen,
    )
    assert await count(sessions, PaymentEvent) == 2
    assert [e[1] for e in await events(sessions, order.id)] == ["pending_payment", "paid"]


async def test_payment_racing_expiry_has_one_winner(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    buyer = await buyer_with_cart(sessions)
    order = await place(sessions, buyer)
    outcome, expired = await asyncio.gather(
        pay(sessions, order), run(sessions, expire_due_orders, now=NOW + timedelta(hours=1))
    )
    final = await run(sessions, get_order, order_id=order.id)
    if outcome.result == "applied":
        assert (
            expired == []
            and final.status == S.PAID
            and await stock_of(sessions, buyer.variant_ids[0]) == 8
        )
    else:
        assert outcome.result == "late" and len(expired) == 1
        assert final.status == S.CANCELLED and await stock_of(sessions, buyer.variant_ids[0]) == 10


# ---- refunds -------------------------------------------------------------------------------------


async def refund_result(
    sessions: async_sessionmaker[AsyncSession],
    refund: Refund,
    *,
    ok: bool = True,
    key: str | None = None,
) -> str:
    return await run(
        sessions,
        record_refund_result,
        provider="sandbox",
        refund_no=refund.refund_no,
        succeeded=ok,
        provider_refund_id=key if key is not None else f"P-{refund.refund_no}",
        payload={},
    )


async def test_a_partial_refund_then_the_rest(sessions: async_sessionmaker[AsyncSession]) -> None:
    buyer, order = await paid_order(sessions)  # 2 x 25.00 + 8.00 delivery = 58.00
    first = await run(
        sessions,
        start_refund,
        order_id=order.id,
        amount_fen=1000,
        reason="少发一件",
        actor="staff:o",
    )
    assert first.refund_no.startswith("RF") and first.status == "pending"
    assert (
        await run(sessions, get_order, order_id=order.id)
    ).status == S.PAID  # partial: status kept
    details = await expect_error(
        ErrorCode.REFUND_TOO_LARGE,
        run(
            sessions, start_refund, order_id=order.id, amount_fen=4801, reason="x", actor="staff:o"
        ),
    )
    assert details["available"] == 4800  # the pending 10.00 counts
    assert await refund_result(sessions, first) == "applied"
    partial = await run(sessions, get_order, order_id=order.id)
    assert (partial.status, partial.refunded_fen) == (S.PAID, 1000)

    rest = await run(
        sessions, start_refund, order_id=order.id, amount_fen=4800, reason="退货", actor="staff:o"
    )
    assert (await run(sessions, get_order, order_id=order.id)).status == S.REFUNDING
    await expect_error(
        ErrorCode.NOTHING_TO_REFUND,
        run(sessions, start_refund, order_id=order.id, amount_fen=1, reason="x", actor="s"),
    )
    assert await refund_result(sessions, rest) == "applied"
    final = await run(sessions, get_order, order_id=order.id)
    assert (final.status, final.refunded_fen, final.paid_fen) == (S.REFUNDED, 5800, 5800)
    assert [e[1] for e in final.events] == ["pending_payment", "paid", "refunding", "refunded"]
    assert await stock_of(sessions, buyer.variant_ids[0]) == 10  # never shipped: back on the shelf
    await expect_error(
        ErrorCode.NOTHING_TO_REFUND,
        run(sessions, start_refund, order_id=order.id, amount_fen=1, reason="x", actor="s"),
    )


async def test_a_refund_after_shipping_keeps_the_stock_as_it_is(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    buyer, order = await paid_order(sessions)
    await run(sessions, ship_order, order_id=order.id, carrier="SF", tracking_no="1", actor="s", now=datetime.now(UTC))
    refund = await run(
        sessions,
        start_refund,
        order_id=order.id,
        amount_fen=order.paid_fen,
        reason="拒收",
        actor="staff:o",
    )
    await refund_result(sessions, refund)
    assert (await run(sessions, get_order, order_id=order.id)).status == S.REFUNDED
    assert await stock_of(sessions, buyer.variant_ids[0]) == 8


@pytest.mark.parametrize("amount", [0, -5])
async def test_refund_amounts_must_be_positive(
    sessions: async_sessionmaker[AsyncSession], amount: int
) -> None:
    _, order = await paid_order(sessions)
    await expect_error(
        ErrorCode.AMOUNT_INVALID,
        run(sessions, start_refund, order_id=order.id, amount_fen=amount, reason="x", actor="s"),
    )


async def test_nothing_to_refund_before_payment(sessions: async_sessionmaker[AsyncSession]) -> None:
    buyer = await buyer_with_cart(sessions)
    order = await place(sessions, buyer)
    details = await expect_error(
        ErrorCode.NOTHING_TO_REFUND,
        run(sessions, start_refund, order_id=order.id, amount_fen=1, reason="x", actor="s"),
    )
    assert details["status"] == "pending_payment"
    assert await count(sessions, Refund) == 0


async def test_a_failed_full_refund_goes_back_where_it_was(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    _, order = await paid_order(sessions)
    await run(sessions, ship_order, order_id=order.id, carrier="SF", tracking_no="1", actor="s", now=datetime.now(UTC))
    refund = await run(
        sessions,
        start_refund,
        order_id=order.id,
        amount_fen=order.paid_fen,
        reason="x",
        actor="staff:o",
    )
    assert (await run(sessions, get_order, order_id=order.id)).status == S.REFUNDING
    assert await refund_result(sessions, refund, ok=False) == "applied"
    back = await run(sessions, get_order, order_id=order.id)
    assert (back.status, back.refunded_fen) == (S.SHIPPED, 0)
    assert back.events[-1][:2] == ("refunding", "shipped")
    async with sessions() as session:
        assert (await session.get(Refund, refund.id)).status == RefundStatus.FAILED.value  # type: ignore[union-attr]
    again = await run(
        sessions,
        start_refund,
        order_id=order.id,
        amount_fen=order.paid_fen,
        reason="x",
        actor="staff:o",
    )
    assert again.id != refund.id  # the money can be refunded again


async def test_duplicate_refund_results_are_ignored(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    _, order = await paid_order(sessions)
    refund = await run(
        sessions, start_refund, order_id=order.id, amount_fen=1000, reason="x", actor="staff:o"
    )
    assert await refund_result(sessions, refund, key="W1") == "applied"
    assert await refund_result(sessions, refund, key="W1") == "duplicate"
    # the same refund reported again under another key (e.g. a query, then the notify)
    assert await refund_result(sessions, refund, key="") == "duplicate"
    assert await refund_result(sessions, refund, ok=False, key="W2") == "duplicate"
    final = await run(sessions, get_order, order_id=order.id)
    assert (final.status, final.refunded_fen) == (S.PAID, 1000)
    async with sessions() as session:
        refund_row = await session.get(Refund, refund.id)
        assert (
            refund_row is not None
            and refund_row.status == "succeeded"
            and refund_row.provider_refund_id == "W1"
        )
    stray = Refund(refund_no="RF-unknown")
    assert await refund_result(sessions, stray) == "unknown_refund"


async def test_refund_results_at_once_count_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    _, order = await paid_order(sessions)
    refund = await run(
        sessions,
        start_refund,
        order_id=order.id,
        amount_fen=order.paid_fen,
        reason="x",
        actor="staff:o",
    )
    results = await asyncio.gather(*(refund_result(sessions, refund, key="W1") for _ in range(5)))
    assert sorted(results) == ["applied"] + ["duplicate"] * 4
    final = await run(sessions, get_order, order_id=order.id)
    assert (final.status, final.refunded_fen) == (S.REFUNDED, order.paid_fen)


# ---- after-sales ---------------------------------------------------------------------------------


async def test_after_sales_requests(sessions: async_sessionmaker[AsyncSession]) -> None:
    buyer, order = await paid_order(sessions)
    stranger = await buyer_with_cart(sessions)

    def ask(
        customer_id: int = buyer.customer_id, reason: str = "不想要了，申请退款", **kw: Any
    ) -> Any:
        return run(
            sessions,
            request_after_sales,
            order_id=order.id,
            customer_id=customer_id,
            kind=AfterSalesKind.REFUND,
            reason=reason,
            rules=RULES,
            **kw,
        )

    await expect_error(ErrorCode.REASON_INVALID, ask(reason=" x "))
    await expect_error(ErrorCode.REASON_INVALID, ask(reason="x" * 301))
    await expect_error(ErrorCode.ORDER_NOT_FOUND, ask(customer_id=stranger.customer_id))
    request = await ask()
    assert (request.kind, request.status, request.order_id) == ("refund", "open", order.id)
    details = await expect_error(ErrorCode.AFTER_SALES_NOT_ALLOWED, ask())
    assert details["reason"] == "open_request"
    async with sessions() as session:
        row = await session.get(type(request), request.id)
        row.status = AfterSalesStatus.REJECTED.value  # type: ignore[union-attr]
        await session.commit()
    await run(sessions, ship_order, order_id=order.id, carrier="SF", tracking_no="1", actor="s", now=datetime.now(UTC))
    await run(sessions, confirm_receipt, order_id=order.id, customer_id=buyer.customer_id, now=NOW)
    assert (await ask(now=NOW + timedelta(days=7))).kind == "refund"


async def test_after_sales_only_while_it_makes_sense(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    buyer = await buyer_with_cart(sessions)
    order = await place(sessions, buyer)

    def ask(**kw: Any) -> Any:
        return run(
            sessions,
            request_after_sales,
            order_id=order.id,
            customer_id=buyer.customer_id,
            kind=AfterSalesKind.RETURN,
            reason="质量问题",
            rules=RULES,
            **kw,
        )

    assert (await expect_error(ErrorCode.AFTER_SALES_NOT_ALLOWED, ask()))[
        "reason"
    ] == "status"  # unpaid
    await pay(sessions, order)
    await run(sessions, ship_order, order_id=order.id, carrier="SF", tracking_no="1", actor="s", now=datetime.now(UTC))
    await run(sessions, confirm_receipt, order_id=order.id, customer_id=buyer.customer_id, now=NOW)
    details = await expect_error(
        ErrorCode.AFTER_SALES_NOT_ALLOWED, ask(now=NOW + timedelta(days=7, seconds=1))
    )
    assert details["reason"] == "window_closed"

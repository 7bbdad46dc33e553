"""Points: earned on payment, referral and first share; spent at checkout; given back and reversed."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from commerce.cart.cart import get_cart
from commerce.cart.pricing import points_saving, quote
from commerce.customers.models import Customer
from commerce.errors import ErrorCode
from commerce.loyalty import points
from commerce.loyalty.badges import badges_of
from commerce.loyalty.models import CustomerBadge, PointsEntry
from commerce.messaging import notices
from commerce.orders.actions import CancelledBy, cancel_order, expire_due_orders
from commerce.orders.models import Order
from commerce.orders.placement import place_order
from commerce.payments.refunds import start_refund
from commerce.rules import ShopRules
from commerce.wiring import shop_sessions
from tests.commerce.factories import make_customer, stock_of
from tests.commerce.orders.test_orders import (
    NOW,
    RULES,
    add_one_more,
    buyer_with_cart,
    expect_error,
    pay,
    place,
    refund_result,
    run,
)

EARNING = ShopRules(points_per_yuan=2, points_referral=100, points_first_share=20)


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions carrying the rules, as the app makes them (the hooks read them there)."""
    factory = shop_sessions(engine, rules=EARNING)
    return factory


async def give(sessions: async_sessionmaker[AsyncSession], customer_id: int, n: int) -> None:
    await run(
        sessions,
        points.award,
        customer_id=customer_id,
        points=n,
        reason="gift",
        ref=f"test-{n}",
        now=NOW,
    )


async def balance(sessions: async_sessionmaker[AsyncSession], customer_id: int) -> int:
    async with sessions() as session:
        return await points.balance(session, customer_id)


async def ledger(sessions: async_sessionmaker[AsyncSession], customer_id: int) -> list[tuple]:
    async with sessions() as session:
        rows = await session.execute(
            select(PointsEntry.reason, PointsEntry.delta, PointsEntry.ref)
            .where(PointsEntry.customer_id == customer_id)
            .order_by(PointsEntry.id)
        )
        return [tuple(r) for r in rows]


async def assert_balance_is_the_ledger(
    sessions: async_sessionmaker[AsyncSession], customer_id: int
) -> None:
    rows = await ledger(sessions, customer_id)
    assert await balance(sessions, customer_id) == sum(r[1] for r in rows)


async def pay_with_notices(
    sessions: async_sessionmaker[AsyncSession], order: Any, txn: str
) -> list:
    from commerce.payments.records import record_payment

    async with sessions() as session:
        outcome = await record_payment(
            session,
            provider="sandbox",
            order_no=order.order_no,
            transaction_id=txn,
            amount_fen=order.payable_fen,
            paid_at=NOW + timedelta(minutes=1),
            payload={},
        )
        await session.commit()
        assert outcome.result in ("applied", "duplicate")
        return notices.take(session)


async def refund(sessions: async_sessionmaker[AsyncSession], order_id: int, amount: int) -> None:
    started = await run(
        sessions, start_refund, order_id=order_id, amount_fen=amount, reason="退货", actor="s"
    )
    assert await refund_result(sessions, started) == "applied"


# ---- the arithmetic ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("balance", "base", "rules", "expected"),
    [
        (10_000, 5000, ShopRules(), (2500, 2500)),  # capped at 50% of the goods after coupon
        (1234, 5000, ShopRules(), (1234, 1234)),  # 100 points = 1 yuan: one point per fen
        (99, 5000, ShopRules(redeem_points_per_yuan=1000), (9, 90)),  # 10 points per fen
        (1001, 5000, ShopRules(redeem_points_per_yuan=150), (667, 1001)),  # 1.5/fen, rounded up
        (1000, 5000, ShopRules(redeem_points_per_yuan=150), (666, 999)),
        (1, 5000, ShopRules(redeem_points_per_yuan=150), (0, 0)),  # not enough for a fen
        (10_000, 999, ShopRules(redeem_max_percent=10), (99, 99)),  # 99.9 floors
        (10_000, 5000, ShopRules(redeem_max_percent=0), (0, 0)),
        (10_000, 0, ShopRules(), (0, 0)),
        (0, 5000, ShopRules(), (0, 0)),
    ],
)
def test_points_saving_is_exact(
    balance: int, base: int, rules: ShopRules, expected: tuple[int, int]
) -> None:
    fen, used = points_saving(balance=balance, base_fen=base, max_fen=10**9, rules=rules)
    assert (fen, used) == expected
    assert used <= balance
    assert used * 100 >= fen * rules.redeem_points_per_yuan  # the points pay for the saving


def test_the_total_never_reaches_zero() -> None:
    rules = ShopRules(redeem_max_percent=100)
    assert points_saving(balance=10**6, base_fen=5000, max_fen=4999, rules=rules) == (4999, 4999)


# ---- spending at checkout ---------------------------------------------------------------


async def test_a_quote_offers_points_and_uses_them_only_when_asked(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # 2 x 25.00, a 10.00 coupon: 40.00 after the coupon, so at most 20.00 of points
    buyer = await buyer_with_cart(sessions, coupon={"amount_off_fen": 1000})
    await give(sessions, buyer.customer_id, 3456)
    async with sessions() as session:
        plain = await quote(session, customer_id=buyer.customer_id, rules=RULES)
        used = await quote(session, customer_id=buyer.customer_id, rules=RULES, use_points=True)
    assert (plain.points_fen, plain.points_used, plain.points_balance) == (0, 0, 3456)
    assert (plain.points_offer_fen, plain.points_offer_used) == (2000, 2000)
    assert (used.points_fen, used.points_used) == (2000, 2000)
    assert used.payable_fen == 5000 - 1000 + 800 - 2000 == plain.payable_fen - 2000
    assert used.fingerprint != plain.fingerprint


async def test_placing_an_order_spends_the_points_it_was_quoted(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    buyer = await buyer_with_cart(sessions)
    await give(sessions, buyer.customer_id, 1500)
    order = await place(sessions, buyer, use_points=True, expected_payable_fen=5800 - 1500)
    assert (order.points_fen, order.payable_fen) == (1500, 4300)
    assert await balance(sessions, buyer.customer_id) == 0
    async with sessions() as session:
        row = await session.get(Order, order.id)
        assert row is not None and (row.points_used, row.points_fen) == (1500, 1500)
    assert ("redeem", -1500, str(order.id)) in await ledger(sessions, buyer.customer_id)
    await assert_balance_is_the_ledger(sessions, buyer.customer_id)


async def test_points_spent_meanwhile_refuse_the_order_and_leave_nothing_behind(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    from commerce.orders import placement

    buyer = await buyer_with_cart(sessions, coupon={"amount_off_fen": 500})
    await give(sessions, buyer.customer_id, 1000)
    real_quote = placement.quote

    async def quote_then_spend_elsewhere(session: AsyncSession, **kwargs: Any) -> Any:
        priced = await real_quote(session, **kwargs)
        async with sessions() as other:  # another checkout spends them after the quote
            await other.execute(
                update(Customer)
                .where(Customer.id == buyer.customer_id)
                .values(points_balance=Customer.points_balance - 900)
            )
            await other.commit()
        return priced

    monkeypatch.setattr(placement, "quote", quote_then_spend_elsewhere)
    details = await expect_error(ErrorCode.POINTS_CHANGED, place(sessions, buyer, use_points=True))
    assert details == {"points_used": 1000, "balance": 100}
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 0
        assert len((await get_cart(session, customer_id=buyer.customer_id)).lines) == 1
    assert await stock_of(sessions, buyer.variant_ids[0]) == 10
    assert await ledger(sessions, buyer.customer_id) == [("gift", 1000, "test-1000")]


async def test_concurrent_spending_never_goes_below_zero(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    buyer = await buyer_with_cart(sessions, [(1000, 100, 1)])
    order_ids = []
    for n in range(8):
        if n:
            await add_one_more(sessions, buyer)
        order_ids.append((await place(sessions, buyer, key=f"k{n}")).id)
    await give(sessions, buyer.customer_id, 1000)

    async def spend(order_id: int) -> bool:
        return await run(
            sessions,
            points.spend,
            customer_id=buyer.customer_id,
            points=300,
            order_id=order_id,
            now=NOW,
        )

    results = await asyncio.gather(*(spend(o) for o in order_ids), return_exceptions=True)
    won = [r for r in results if r is True]
    assert len(won) == 3  # 3 x 300 of 1000
    assert await balance(sessions, buyer.customer_id) == 100
    await assert_balance_is_the_ledger(sessions, buyer.customer_id)


# ---- earning on payment ----------------------------------------------------------------


async def test_payment_earns_points_and_the_first_order_badge_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    buyer = await buyer_with_cart(sessions, [(2550, 10, 2)])  # 51.00 + 8.00 delivery
    order = await place(sessions, buyer)
    first = await pay_with_notices(sessions, order, "T1")
    again = await pay_with_notices(sessions, order, "T1")  # a duplicate notification
    assert await balance(sessions, buyer.customer_id) == 59 * 2  # 59.00 paid, 2 per yuan
    assert [(n.template, n.data) for n in first] == [
        ("points_earned", {"points": 118, "balance": 118}),  # rides on "payment received"
        ("badge_awarded", {"badge": "first_order"}),
    ]
    assert again == []
    async with sessions() as session:
        assert await points.earned_on(session, order_id=order.id) == 118

    await add_one_more(sessions, buyer)
    order2 = await place(sessions, buyer, key="key-2")
    second_notices = await pay_with_notices(sessions, order2, "T2")
    assert [n.template for n in second_notices] == ["points_earned"]  # no second badge
    async with sessions() as session:
        assert await badges_of(session, customer_id=buyer.customer_id) == ["first_order"]
    await assert_balance_is_the_ledger(sessions, buyer.customer_id)


async def test_the_referrer_earns_once_for_the_first_paid_order(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        referrer = await make_customer(session)
        await session.commit()
    buyer = await buyer_with_cart(sessions)
    async with sessions() as session:
        await session.execute(
            update(Customer).where(Customer.id == buyer.customer_id).values(referrer_id=referrer)
        )
        await session.commit()
    order = await place(sessions, buyer)
    await pay(sessions, order)
    await pay(sessions, order, txn="T1")  # duplicate
    await add_one_more(sessions, buyer)
    await pay(sessions, await place(sessions, buyer, key="key-2"), txn="T2")
    assert await ledger(sessions, referrer) == [("referral", 100, str(buyer.customer_id))]
    assert await balance(sessions, referrer) == 100


async def test_a_refunded_friends_order_takes_back_the_referrers_points(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The README says refunds take back what they gave: the referral points too."""
    async with sessions() as session:
        referrer = await make_customer(session)
        await session.commit()
    buyer = await buyer_with_cart(sessions)  # 2 x 25.00 + 8.00 delivery
    async with sessions() as session:
        await session.execute(update(Customer).where(Customer.id == buyer.customer_id).values(referrer_id=referrer))
        await session.commit()
    order = await place(sessions, buyer)
    await pay(sessions, order)
    assert await balance(sessions, referrer) == 100
    await refund(sessions, order.id, order.payable_fen // 2)  # half the money: half the points
    assert await balance(sessions, referrer) == 50
    await refund(sessions, order.id, order.payable_fen - order.payable_fen // 2)
    assert await balance(sessions, referrer) == 0
    assert [r[0] for r in await ledger(sessions, referrer)] == ["referral", "referral_refund", "referral_refund"]
    await assert_balance_is_the_ledger(sessions, referrer)


async def test_first_share_points_once(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        customer = await make_customer(session)
        await session.commit()
    for expected in (20, 0):
        assert (
            await run(
                sessions, points.award_first_share, customer_id=customer, rules=EARNING, now=NOW
            )
            == expected
        )
    assert await balance(sessions, customer) == 20


# ---- giving back and reversing --------------------------------------------------------------


async def test_cancelling_or_expiring_an_unpaid_order_gives_its_points_back_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    buyer = await buyer_with_cart(sessions)
    await give(sessions, buyer.customer_id, 800)
    order = await place(sessions, buyer, use_points=True)
    assert await balance(sessions, buyer.customer_id) == 0
    await run(sessions, cancel_order, order_id=order.id, by=CancelledBy.CUSTOMER, now=NOW)
    await expect_error(
        ErrorCode.ILLEGAL_TRANSITION, run(sessions, cancel_order, order_id=order.id, by=CancelledBy.CUSTOMER, now=NOW)
    )
    assert await balance(sessions, buyer.customer_id) == 800

    await add_one_more(sessions, buyer)
    expiring = await place(sessions, buyer, key="key-2", use_points=True)
    assert expiring.points_fen == 800 and await balance(sessions, buyer.customer_id) == 0
    later = NOW + RULES.order_timeout + timedelta(minutes=1)
    assert len(await run(sessions, expire_due_orders, now=later)) == 1
    assert await run(sessions, expire_due_orders, now=later) == []
    assert await balance(sessions, buyer.customer_id) == 800
    await assert_balance_is_the_ledger(sessions, buyer.customer_id)


async def test_partial_then_full_refund_reverses_points_in_proportion(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    buyer = await buyer_with_cart(sessions)  # 2 x 25.00 + 8.00 delivery
    await give(sessions, buyer.customer_id, 3000)
    order = await place(sessions, buyer, use_points=True)  # 25.00 of points (the cap)
    assert (order.points_fen, order.payable_fen) == (2500, 3300)
    await pay(sessions, order)
    assert await balance(sessions, buyer.customer_id) == 3000 - 2500 + 66  # 33 yuan x 2

    await refund(sessions, order.id, 1000)  # 10/33 of the money
    # purchase points back: floor(66 * 1000 / 3300) = 20; spent points: floor(2500 * 10 / 33) = 757
    assert await balance(sessions, buyer.customer_id) == 566 - 20 + 757
    await refund(sessions, order.id, 2300)  # the rest: everything is square again
    assert await balance(sessions, buyer.customer_id) == 3000
    reasons = [r[0] for r in await ledger(sessions, buyer.customer_id)]
    assert reasons.count("purchase_refund") == 2 and reasons.count("redeem_refund") == 2
    await assert_balance_is_the_ledger(sessions, buyer.customer_id)


async def test_reversal_beyond_the_balance_is_clamped_and_the_shortfall_recorded(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    buyer = await buyer_with_cart(sessions, [(2500, 10, 1)])  # 25.00 + 8.00 delivery
    order = await place(sessions, buyer)
    await pay(sessions, order)
    assert await balance(sessions, buyer.customer_id) == 66
    await add_one_more(sessions, buyer)
    other = await place(sessions, buyer, key="key-2", use_points=True)  # spends all 66
    assert other.points_fen == 66
    await give(sessions, buyer.customer_id, 6)

    await refund(sessions, order.id, 3300)
    assert await balance(sessions, buyer.customer_id) == 0
    rows = await ledger(sessions, buyer.customer_id)
    assert ("purchase_refund", -6, f"{order.id}@3300") in rows
    assert ("shortfall", 0, f"purchase_refund:{order.id}@3300:60") in rows
    await assert_balance_is_the_ledger(sessions, buyer.customer_id)
    async with sessions() as session:
        history = await points.history(session, customer_id=buyer.customer_id)
    assert [m.reason for m in history] == ["purchase_refund", "gift", "redeem", "purchase"]


async def test_an_order_without_points_refunds_without_points(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    buyer = await buyer_with_cart(sessions, [(50, 10, 1)])  # 0.50 + 8.00: 8 yuan, 16 points
    order = await place(sessions, buyer)
    await pay(sessions, order)
    await refund(sessions, order.id, 1)  # a fen: floor(16 / 850) = 0 points back
    assert await balance(sessions, buyer.customer_id) == 16
    await refund(sessions, order.id, 849)
    assert await balance(sessions, buyer.customer_id) == 0
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(CustomerBadge)) == 1


async def test_place_order_without_points_is_unchanged(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    buyer = await buyer_with_cart(sessions)
    await give(sessions, buyer.customer_id, 1000)
    async with sessions() as session:
        order = await place_order(
            session,
            customer_id=buyer.customer_id,
            address_id=buyer.address_id,
            idempotency_key="k",
            rules=RULES,
            now=NOW,
        )
        await session.commit()
    assert (order.points_fen, order.payable_fen) == (0, 5800)
    assert await balance(sessions, buyer.customer_id) == 1000

"""Referrals and commission: binding rules, commission frozen / freed / reversed, withdrawals."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from commerce.customers.models import Customer
from commerce.errors import ErrorCode
from commerce.loyalty.models import CustomerBadge
from commerce.messaging import notices
from commerce.orders.actions import confirm_receipt, ship_order
from commerce.orders.models import Order
from commerce.payments.refunds import start_refund
from commerce.promotions.models import CustomerCoupon
from commerce.referrals import commission, referrals
from commerce.referrals.commission import Balances
from commerce.referrals.models import (
    Commission,
    CommissionEntry,
    CommissionStatus,
    WithdrawalStatus,
)
from commerce.referrals.referrals import BindOutcome
from commerce.rules import SESSION_RULES, ShopRules
from commerce.wiring import shop_sessions
from tests.commerce.factories import make_customer
from tests.commerce.orders.test_orders import (
    NOW,
    Buyer,
    buyer_with_cart,
    expect_error,
    pay,
    place,
    refund_result,
    run,
)

RULES = ShopRules()
WEEK = timedelta(days=7)


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    made = shop_sessions(engine, rules=RULES)
    return made


async def customer(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        cid = await make_customer(session)
        await session.commit()
    return cid


async def code_of(sessions: async_sessionmaker[AsyncSession], cid: int) -> str:
    return await run(sessions, referrals.referral_code_for, customer_id=cid)


async def bind(
    sessions: async_sessionmaker[AsyncSession], cid: int, referrer: int, *, now=NOW, rules=RULES
) -> BindOutcome:
    code = await code_of(sessions, referrer)
    return await run(sessions, referrals.bind, customer_id=cid, code=code, now=now, rules=rules)


async def referred_buyer(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, Buyer]:
    referrer = await customer(sessions)
    buyer = await buyer_with_cart(sessions)  # 2 x 25.00 + 8.00 delivery
    assert await bind(sessions, buyer.customer_id, referrer) == BindOutcome.BOUND
    return referrer, buyer


async def paid(sessions: async_sessionmaker[AsyncSession], buyer: Buyer, key: str = "k1"):
    order = await place(sessions, buyer, key=key)
    outcome = await pay(sessions, order, txn=f"T-{order.order_no}")
    assert outcome.result == "applied"
    return outcome.order


async def completed(sessions: async_sessionmaker[AsyncSession], buyer: Buyer, order, *, at=NOW):
    await run(
        sessions, ship_order, order_id=order.id, carrier="SF", tracking_no="1", actor="s", now=at
    )
    await run(sessions, confirm_receipt, order_id=order.id, customer_id=buyer.customer_id, now=at)


async def balances(sessions: async_sessionmaker[AsyncSession], cid: int) -> Balances:
    return await run(sessions, commission.balances, customer_id=cid, rules=RULES)


async def ledger_sums(sessions: async_sessionmaker[AsyncSession], cid: int) -> tuple[int, ...]:
    async with sessions() as session:
        row = (
            await session.execute(
                select(
                    func.coalesce(func.sum(CommissionEntry.frozen_delta), 0),
                    func.coalesce(func.sum(CommissionEntry.available_delta), 0),
                    func.coalesce(func.sum(CommissionEntry.withdrawing_delta), 0),
                    func.coalesce(func.sum(CommissionEntry.paid_out_delta), 0),
                ).where(CommissionEntry.customer_id == cid)
            )
        ).one()
    return tuple(int(x) for x in row)


async def the_commission(
    sessions: async_sessionmaker[AsyncSession], order_id: int
) -> Commission | None:
    async with sessions() as session:
        return await session.scalar(select(Commission).where(Commission.order_id == order_id))


# ---- codes and binding -----------------------------------------------------------------


async def test_a_code_is_given_once_and_fits_the_scene_rule(sessions) -> None:
    cid = await customer(sessions)
    first = await code_of(sessions, cid)
    assert first == await code_of(sessions, cid)
    assert 6 <= len(first) <= 8 and all(c in referrals.CODE_ALPHABET for c in first)
    other = await code_of(sessions, await customer(sessions))
    assert other != first


async def test_two_racing_requests_agree_on_one_code(sessions) -> None:
    cid = await customer(sessions)
    codes = await asyncio.gather(
        *(code_of(sessions, cid) for _ in range(5)), return_exceptions=True
    )
    assert len({c for c in codes if isinstance(c, str)}) == 1


async def test_binding_is_first_touch_and_lasts_the_configured_time(sessions) -> None:
    a, b, new = await customer(sessions), await customer(sessions), await customer(sessions)
    assert await bind(sessions, new, a) == BindOutcome.BOUND
    assert await bind(sessions, new, b) == BindOutcome.NOT_NEW  # first touch wins
    async with sessions() as session:
        row = await session.get(Customer, new)
        assert row is not None and row.referrer_id == a
        assert row.referral_until is not None
        assert row.referral_until.replace(tzinfo=None) == (NOW + RULES.referral_binding).replace(
            tzinfo=None
        )


async def test_never_self_never_unknown(sessions) -> None:
    a = await customer(sessions)
    assert await bind(sessions, a, a) == BindOutcome.SELF
    got = await run(sessions, referrals.bind, customer_id=a, code="ZZZZZZ", now=NOW, rules=RULES)
    assert got == BindOutcome.UNKNOWN_CODE


async def test_never_a_cycle(sessions) -> None:
    a, b, c = await customer(sessions), await customer(sessions), await customer(sessions)
    assert await bind(sessions, b, a) == BindOutcome.BOUND  # a -> b
    assert await bind(sessions, c, b) == BindOutcome.BOUND  # b -> c
    assert await bind(sessions, a, b) == BindOutcome.CYCLE  # b -> a would close a -> b -> a
    assert await bind(sessions, a, c) == BindOutcome.CYCLE  # and a -> b -> c -> a


async def test_a_customer_who_has_paid_is_not_new(sessions) -> None:
    referrer = await customer(sessions)
    buyer = await buyer_with_cart(sessions)
    await paid(sessions, buyer)
    assert await bind(sessions, buyer.customer_id, referrer) == BindOutcome.NOT_NEW


async def test_five_referrals_earn_the_badge(sessions) -> None:
    referrer = await customer(sessions)
    for _ in range(5):
        assert await bind(sessions, await customer(sessions), referrer) == BindOutcome.BOUND
    async with sessions() as session:
        badges = (
            await session.scalars(
                select(CustomerBadge.badge).where(CustomerBadge.customer_id == referrer)
            )
        ).all()
    assert badges == ["five_referrals"]


# ---- commission ------------------------------------------------------------------------


async def test_commission_is_frozen_on_paid_and_floored(sessions) -> None:
    referrer, buyer = await referred_buyer(sessions)
    order = await paid(sessions, buyer)
    made = await the_commission(sessions, order.id)
    assert made is not None
    assert (made.base_fen, made.rate_bp, made.amount_fen, made.status) == (5000, 500, 250, "frozen")
    got = await balances(sessions, referrer)
    assert (got.frozen_fen, got.available_fen, got.referrals) == (250, 0, 1)
    assert got.frozen_until is None and got.frozen_waiting  # not completed yet
    assert await ledger_sums(sessions, referrer) == (250, 0, 0, 0)


async def test_the_amount_is_rounded_down(sessions) -> None:
    odd = ShopRules(commission_rate_bp=333)
    sessions.configure(info={**sessions.kw["info"], SESSION_RULES: odd})
    referrer, buyer = await referred_buyer(sessions)
    order = await paid(sessions, buyer)
    made = await the_commission(sessions, order.id)
    assert made is not None and made.amount_fen == 5000 * 333 // 10000 == 166


async def test_no_commission_past_the_binding_or_without_one(sessions) -> None:
    referrer = await customer(sessions)
    buyer = await buyer_with_cart(sessions)
    short = ShopRules(referral_binding=timedelta(minutes=1))
    assert await bind(
        sessions, buyer.customer_id, referrer, now=NOW - timedelta(days=1), rules=short
    )
    order = await paid(sessions, buyer)
    assert await the_commission(sessions, order.id) is None
    stranger = await buyer_with_cart(sessions)
    assert await the_commission(sessions, (await paid(sessions, stranger)).id) is None


async def test_no_commission_on_group_orders_unless_configured(sessions) -> None:
    referrer, buyer = await referred_buyer(sessions)
    order = await place(sessions, buyer, key="g1")
    async with sessions() as session:  # paid as a group order (the hook's view of it)
        group_id = await _a_group(session, buyer)
        await session.execute(
            update(Order)
            .where(Order.id == order.id)
            .values(group_id=group_id, paid_fen=order.payable_fen, paid_at=NOW, status="paid")
        )
        assert (
            await commission.earn_on_paid(session, order_id=order.id, now=NOW, rules=RULES) is None
        )
        on = ShopRules(commission_on_group_orders=True)
        assert (
            await commission.earn_on_paid(session, order_id=order.id, now=NOW, rules=on) is not None
        )
        await session.commit()
    made = await the_commission(sessions, order.id)
    assert made is not None and made.amount_fen == 250


async def _a_group(session: AsyncSession, buyer: Buyer) -> int:
    """A bare campaign and group-buy row (only the group's id matters here)."""
    from commerce.catalog.models import Variant
    from commerce.groupbuys.models import GroupBuy, GroupCampaign

    product_id = await session.scalar(
        select(Variant.product_id).where(Variant.id == buyer.variant_ids[0])
    )
    campaign = GroupCampaign(
        product_id=product_id,
        variant_id=buyer.variant_ids[0],
        group_price_fen=2000,
        group_size=2,
        time_limit_minutes=60,
        starts_at=NOW,
        ends_at=NOW + WEEK,
    )
    session.add(campaign)
    await session.flush()
    group = GroupBuy(
        code="GRP1", campaign_id=campaign.id, leader_id=buyer.customer_id, size=2, price_fen=2000
    )
    session.add(group)
    await session.flush()
    return group.id


async def test_freed_once_after_completion_plus_the_return_window(sessions) -> None:
    referrer, buyer = await referred_buyer(sessions)
    order = await paid(sessions, buyer)
    await completed(sessions, buyer, order, at=NOW)
    got = await balances(sessions, referrer)
    assert got.frozen_until is not None and got.frozen_until == NOW + RULES.return_window
    async with sessions() as session:
        assert (
            await commission.unfreeze_due(
                session, now=NOW + WEEK - timedelta(seconds=1), rules=RULES
            )
            == 0
        )
        await session.commit()
    async with sessions() as session:
        assert await commission.unfreeze_due(session, now=NOW + WEEK, rules=RULES) == 1
        told = notices.take(session)
        await session.commit()
    assert [(n.template, n.data["amount_fen"]) for n in told] == [("commission_available", 250)]
    async with sessions() as session:  # the job again: nothing more
        assert await commission.unfreeze_due(session, now=NOW + 2 * WEEK, rules=RULES) == 0
        await session.commit()
    assert await ledger_sums(sessions, referrer) == (0, 250, 0, 0)
    made = await the_commission(sessions, order.id)
    assert made is not None and made.status == CommissionStatus.AVAILABLE


async def refund(sessions, order, amount: int) -> None:
    started = await run(
        sessions, start_refund, order_id=order.id, amount_fen=amount, reason="退货", actor="s"
    )
    assert await refund_result(sessions, started) == "applied"


async def test_a_full_refund_reverses_it_all(sessions) -> None:
    referrer, buyer = await referred_buyer(sessions)
    order = await paid(sessions, buyer)
    await refund(sessions, order, 5800)
    made = await the_commission(sessions, order.id)
    assert made is not None and (made.reversed_fen, made.status) == (250, CommissionStatus.REVERSED)
    assert await ledger_sums(sessions, referrer) == (0, 0, 0, 0)


async def test_partial_refunds_reverse_their_share_floored_and_never_more(sessions) -> None:
    referrer, buyer = await referred_buyer(sessions)
    order = await paid(sessions, buyer)
    await refund(sessions, order, 1001)  # 1001 / 5000 of 250 = 50.05 -> 50
    made = await the_commission(sessions, order.id)
    assert made is not None and (made.reversed_fen, made.status) == (50, CommissionStatus.FROZEN)
    assert (await balances(sessions, referrer)).frozen_fen == 200
    await refund(sessions, order, 1999)  # 3000 / 5000 -> 150 in all
    made = await the_commission(sessions, order.id)
    assert made is not None and made.reversed_fen == 150
    await refund(sessions, order, 2800)  # the rest (delivery included): all of it
    made = await the_commission(sessions, order.id)
    assert made is not None and (made.reversed_fen, made.status) == (250, CommissionStatus.REVERSED)
    assert await ledger_sums(sessions, referrer) == (0, 0, 0, 0)


async def test_a_refund_after_the_payout_leaves_available_negative(sessions) -> None:
    referrer, buyer = await referred_buyer(sessions)
    order = await paid(sessions, buyer)
    await completed(sessions, buyer, order)
    await run(sessions, commission.unfreeze_due, now=NOW + WEEK, rules=RULES)
    low = ShopRules(withdrawal_min_fen=100)
    request = await run(
        sessions, commission.request_withdrawal, customer_id=referrer, now=NOW + WEEK, rules=low
    )
    await run(
        sessions,
        commission.approve_withdrawal,
        withdrawal_id=request.id,
        staff_openid="boss",
        transfer_ref="WX1",
        now=NOW + WEEK,
    )
    await refund(sessions, order, 2500)  # half the goods: 125 back
    assert await ledger_sums(sessions, referrer) == (0, -125, 0, 250)
    await expect_error(
        ErrorCode.NOTHING_TO_WITHDRAW,
        run(
            sessions, commission.request_withdrawal, customer_id=referrer, now=NOW + WEEK, rules=low
        ),
    )


# ---- withdrawals -----------------------------------------------------------------------


async def available_referrer(sessions) -> int:
    referrer, buyer = await referred_buyer(sessions)
    order = await paid(sessions, buyer)
    await completed(sessions, buyer, order)
    await run(sessions, commission.unfreeze_due, now=NOW + WEEK, rules=RULES)
    return referrer


async def test_withdrawal_checks_minimum_amount_and_one_at_a_time(sessions) -> None:
    referrer = await available_referrer(sessions)  # 2.50 available; minimum 10.00
    details = await expect_error(
        ErrorCode.WITHDRAWAL_BELOW_MINIMUM,
        run(sessions, commission.request_withdrawal, customer_id=referrer, now=NOW, rules=RULES),
    )
    assert (details["min_fen"], details["available_fen"]) == (1000, 250)
    low = ShopRules(withdrawal_min_fen=100)
    await expect_error(
        ErrorCode.WITHDRAWAL_TOO_LARGE,
        run(
            sessions,
            commission.request_withdrawal,
            customer_id=referrer,
            amount_fen=251,
            now=NOW,
            rules=low,
        ),
    )
    got = await run(
        sessions,
        commission.request_withdrawal,
        customer_id=referrer,
        amount_fen=200,
        now=NOW,
        rules=low,
    )
    assert (got.amount_fen, got.status) == (200, WithdrawalStatus.PENDING)
    assert await ledger_sums(sessions, referrer) == (0, 50, 200, 0)
    await expect_error(
        ErrorCode.WITHDRAWAL_PENDING,
        run(
            sessions,
            commission.request_withdrawal,
            customer_id=referrer,
            amount_fen=50,
            now=NOW,
            rules=low,
        ),
    )
    await expect_error(
        ErrorCode.NOTHING_TO_WITHDRAW,
        run(
            sessions,
            commission.request_withdrawal,
            customer_id=await customer(sessions),
            now=NOW,
            rules=low,
        ),
    )


async def test_approve_and_reject_move_the_money_and_tell_the_customer(sessions) -> None:
    referrer = await available_referrer(sessions)
    low = ShopRules(withdrawal_min_fen=100)
    first = await run(
        sessions, commission.request_withdrawal, customer_id=referrer, now=NOW, rules=low
    )
    async with sessions() as session:
        view, (before, after) = await commission.reject_withdrawal(
            session, withdrawal_id=first.id, staff_openid="boss", reason="信息不全", now=NOW
        )
        told = notices.take(session)
        await session.commit()
    assert view.status == WithdrawalStatus.REJECTED and before["status"] == "pending"
    assert [n.template for n in told] == ["withdrawal_rejected"]
    assert await ledger_sums(sessions, referrer) == (0, 250, 0, 0)
    await expect_error(
        ErrorCode.WITHDRAWAL_NOT_PENDING,
        run(
            sessions,
            commission.approve_withdrawal,
            withdrawal_id=first.id,
            staff_openid="b",
            transfer_ref="X",
            now=NOW,
        ),
    )
    second = await run(
        sessions, commission.request_withdrawal, customer_id=referrer, now=NOW, rules=low
    )
    async with sessions() as session:
        view, _ = await commission.approve_withdrawal(
            session,
            withdrawal_id=second.id,
            staff_openid="boss",
            transfer_ref="WX20260501",
            now=NOW,
        )
        told = notices.take(session)
        await session.commit()
    assert (view.status, view.transfer_ref) == (WithdrawalStatus.PAID, "WX20260501")
    assert told[0].template == "withdrawal_paid" and told[0].data["amount_fen"] == 250
    assert await ledger_sums(sessions, referrer) == (0, 0, 0, 250)
    got = await balances(sessions, referrer)
    assert (got.available_fen, got.withdrawing_fen, got.paid_out_fen) == (0, 0, 250)
    await expect_error(
        ErrorCode.WITHDRAWAL_NOT_FOUND,
        run(
            sessions,
            commission.approve_withdrawal,
            withdrawal_id=999,
            staff_openid="b",
            transfer_ref="X",
            now=NOW,
        ),
    )


async def test_top_referrers(sessions) -> None:
    referrer = await available_referrer(sessions)
    other = await customer(sessions)
    assert await bind(sessions, await customer(sessions), other) == BindOutcome.BOUND
    assert await bind(sessions, await customer(sessions), other) == BindOutcome.BOUND
    top = await run(sessions, referrals.top_referrers)
    assert [(t.customer_id, t.referrals, t.earned_fen) for t in top] == [
        (referrer, 1, 250),
        (other, 2, 0),
    ]


# ---- the welcome coupon ----------------------------------------------------------------


async def test_the_welcome_coupon_goes_once_to_a_new_customer(sessions) -> None:
    from commerce.promotions.coupons import create_coupon
    from commerce.promotions.models import CouponKind

    async with sessions() as session:
        await create_coupon(
            session,
            code="HELLO",
            title="新人券",
            kind=CouponKind.AMOUNT_OFF,
            amount_off_fen=500,
            per_user_limit=3,
        )
        await session.commit()
    rules = ShopRules(new_customer_coupon="hello")
    cid = await customer(sessions)
    welcome = await run(
        sessions, referrals.welcome_new_follower, customer_id=cid, now=NOW, rules=rules
    )
    assert welcome == referrals.Welcome(referred=False, coupon_title="新人券")
    again = await run(
        sessions, referrals.welcome_new_follower, customer_id=cid, now=NOW, rules=rules
    )
    assert again.coupon_title == ""  # a re-follow: still one, whatever the coupon's limit
    none = await run(
        sessions, referrals.welcome_new_follower, customer_id=cid, now=NOW, rules=RULES
    )
    assert none.coupon_title == ""
    async with sessions() as session:
        held = await session.scalar(select(func.count()).select_from(CustomerCoupon))
    assert held == 1

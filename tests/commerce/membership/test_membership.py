"""Membership in the core, on both databases: codes (hashed, expiring, few tries, rate-limited,
one phone one member), total spent following payments and refunds, levels and their discount."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from commerce.cart.pricing import quote
from commerce.customers.models import Customer
from commerce.errors import ErrorCode, ShopError
from commerce.membership import codes, levels
from commerce.membership.account import MemberDiscount, member_discount, standing
from commerce.membership.models import Member, SmsCode
from commerce.payments.refunds import start_refund
from commerce.rules import MemberLevel, ShopRules
from commerce.wiring import shop_sessions
from tests.commerce.factories import make_customer
from tests.commerce.orders.test_orders import (
    NOW,
    buyer_with_cart,
    expect_error,
    pay,
    place,
    refund_result,
    run,
)

KEY = b"test-signing-key"
PHONE, OTHER_PHONE = "13812345678", "15900001111"
# low thresholds so that one small order reaches a level
LEVELS = (MemberLevel("普通会员", 0, 0), MemberLevel("银卡", 5000, 200), MemberLevel("金卡", 20000, 500))
RULES = ShopRules(member_levels=LEVELS)


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return shop_sessions(engine, rules=RULES)


async def customer(sessions: async_sessionmaker[AsyncSession], openid: str) -> int:
    async with sessions() as session:
        customer_id = await make_customer(session, openid)
        await session.commit()
    return customer_id


async def ask(sessions: async_sessionmaker[AsyncSession], customer_id: int, phone: str = PHONE, *, at: Any = NOW) -> codes.IssuedCode:
    return await run(sessions, codes.request_code, customer_id=customer_id, phone=phone, now=at, key=KEY)


async def answer(
    sessions: async_sessionmaker[AsyncSession], customer_id: int, typed: str, *, at: Any = NOW
) -> codes.CodeCheck:
    return await run(sessions, codes.confirm_code, customer_id=customer_id, typed=typed, now=at, key=KEY, rules=RULES)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


async def test_a_code_is_kept_hashed_takes_a_few_wrong_tries_and_makes_a_member(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    me = await customer(sessions, "o-member-1")
    issued = await ask(sessions, me, "+86 138-1234-5678")
    assert issued.phone == PHONE and len(issued.code) == 6 and issued.code not in repr(issued)
    async with sessions() as session:
        row = (await session.scalars(select(SmsCode))).one()
    assert issued.code not in (row.code_hash, row.salt) and len(row.code_hash) == 64
    assert row.expires_at.replace(tzinfo=None) == (NOW + codes.CODE_TTL).replace(tzinfo=None)

    first = await answer(sessions, me, wrong(issued.code))
    assert (first.outcome, first.tries_left) == ("wrong", codes.MAX_TRIES - 1)
    joined = await answer(sessions, me, issued.code, at=NOW + timedelta(minutes=4))
    assert joined.outcome == "joined" and joined.phone_tail == "5678" and joined.level == LEVELS[0]
    async with sessions() as session:
        assert (await session.scalars(select(Member.phone))).all() == [PHONE]
        assert await session.scalar(select(Customer.member_level).where(Customer.id == me)) == "普通会员"
    again = await answer(sessions, me, issued.code)  # spent: no second membership
    assert again.outcome == "already"
    await expect_error(ErrorCode.ALREADY_MEMBER, ask(sessions, me, OTHER_PHONE, at=NOW + timedelta(hours=1)))


async def test_an_expired_code_and_one_tried_too_often_are_spent(sessions: async_sessionmaker[AsyncSession]) -> None:
    me = await customer(sessions, "o-member-2")
    issued = await ask(sessions, me)
    late = await answer(sessions, me, issued.code, at=NOW + codes.CODE_TTL + timedelta(seconds=1))
    assert late.outcome == "expired"
    assert (await answer(sessions, me, issued.code)).outcome == "no_code"  # expired is spent

    issued = await ask(sessions, me, at=NOW + timedelta(minutes=10))
    for left in range(codes.MAX_TRIES - 1, 0, -1):
        assert (await answer(sessions, me, wrong(issued.code), at=NOW + timedelta(minutes=10))).tries_left == left
    last = await answer(sessions, me, wrong(issued.code), at=NOW + timedelta(minutes=10))
    assert last.outcome == "too_many"
    assert (await answer(sessions, me, issued.code, at=NOW + timedelta(minutes=10))).outcome == "no_code"
    async with sessions() as session:
        assert await session.scalar(select(Member.id)) is None


async def test_codes_are_rate_limited_per_phone_and_per_customer(sessions: async_sessionmaker[AsyncSession]) -> None:
    me, other = await customer(sessions, "o-member-3"), await customer(sessions, "o-member-4")
    await ask(sessions, me)
    soon = await expect_error(ErrorCode.CODE_TOO_SOON, ask(sessions, me, at=NOW + timedelta(seconds=20)))
    assert soon["wait_seconds"] == 40
    # the same phone from another customer, and another phone from the same customer, wait too
    await expect_error(ErrorCode.CODE_TOO_SOON, ask(sessions, other, at=NOW + timedelta(seconds=30)))
    await expect_error(ErrorCode.CODE_TOO_SOON, ask(sessions, me, OTHER_PHONE, at=NOW + timedelta(seconds=30)))
    for n in range(1, codes.DAILY_MAX):
        await ask(sessions, me, at=NOW + n * codes.RESEND_AFTER)
    over = await expect_error(ErrorCode.CODE_LIMIT, ask(sessions, me, OTHER_PHONE, at=NOW + timedelta(hours=1)))
    assert over["max"] == codes.DAILY_MAX
    await expect_error(ErrorCode.CODE_LIMIT, ask(sessions, other, at=NOW + timedelta(hours=1)))  # the phone's limit
    await ask(sessions, other, OTHER_PHONE, at=NOW + timedelta(hours=1))  # another phone, another customer: fine
    await ask(sessions, me, at=NOW + timedelta(hours=24, minutes=10))  # a day later


async def test_one_phone_is_one_member(sessions: async_sessionmaker[AsyncSession]) -> None:
    first, second = await customer(sessions, "o-member-5"), await customer(sessions, "o-member-6")
    theirs = await ask(sessions, second)  # asked first, confirmed last
    mine = await ask(sessions, first, at=NOW + timedelta(minutes=2))
    assert (await answer(sessions, first, mine.code, at=NOW + timedelta(minutes=2))).outcome == "joined"
    await expect_error(ErrorCode.PHONE_TAKEN, ask(sessions, second, at=NOW + timedelta(minutes=3)))
    late = await answer(sessions, second, theirs.code, at=NOW + timedelta(minutes=3))
    assert late.outcome == "taken"
    for bad in ("1381234567", "23812345678", "12812345678", "abc", "138123456789"):
        await expect_error(ErrorCode.PHONE_INVALID, ask(sessions, second, bad, at=NOW + timedelta(hours=2)))


async def join(sessions: async_sessionmaker[AsyncSession], customer_id: int, phone: str) -> None:
    issued = await ask(sessions, customer_id, phone, at=NOW - timedelta(hours=1))
    assert (await answer(sessions, customer_id, issued.code, at=NOW - timedelta(hours=1))).outcome == "joined"


async def spent(sessions: async_sessionmaker[AsyncSession], customer_id: int) -> tuple[int, str, int]:
    async with sessions() as session:
        row = (
            await session.execute(
                select(Customer.total_spent_fen, Customer.member_level, Customer.member_discount_bp).where(
                    Customer.id == customer_id
                )
            )
        ).one()
    return int(row[0]), row[1], int(row[2])


async def test_total_spent_follows_payments_and_refunds_and_a_member_level_with_it(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    buyer = await buyer_with_cart(sessions, ((2500, 10, 2),))  # 50.00 + 8.00 delivery
    await join(sessions, buyer.customer_id, PHONE)
    order = await place(sessions, buyer)
    assert order.level_discount_fen == 0  # 普通会员: no discount
    assert (await pay(sessions, order)).result == "applied"
    assert await spent(sessions, buyer.customer_id) == (5800, "银卡", 200)
    refund = await run(sessions, start_refund, order_id=order.id, amount_fen=1000, reason="少发", actor="staff:o")
    assert await refund_result(sessions, refund) == "applied"
    assert await spent(sessions, buyer.customer_id) == (4800, "普通会员", 0)  # below 银卡 again

    async with sessions() as session:
        view = await standing(session, customer_id=buyer.customer_id, rules=RULES)
    assert view.member and view.next_level == LEVELS[1] and view.to_next_fen == 200
    async with sessions() as session:  # "有优惠吗": nothing off yet, 银卡 ¥2.00 away
        off = await member_discount(session, customer_id=buyer.customer_id, rules=RULES)
    assert off == MemberDiscount(member=True, level=None, better=LEVELS[1], to_better_fen=200)


async def test_a_customer_who_joins_later_starts_at_the_level_spent_before(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    buyer = await buyer_with_cart(sessions, ((12000, 10, 2),))
    order = await place(sessions, buyer)
    await pay(sessions, order)
    assert await spent(sessions, buyer.customer_id) == (24000, "", 0)  # no member: no level, no discount
    async with sessions() as session:
        view = await standing(session, customer_id=buyer.customer_id, rules=RULES)
    assert not view.member and view.would_be == LEVELS[2]
    async with sessions() as session:  # joining gives 金卡 at once, the top
        off = await member_discount(session, customer_id=buyer.customer_id, rules=RULES)
    assert off == MemberDiscount(member=False, level=LEVELS[2], better=None, to_better_fen=0)
    await join(sessions, buyer.customer_id, OTHER_PHONE)
    assert await spent(sessions, buyer.customer_id) == (24000, "金卡", 500)


async def test_the_level_discount_comes_after_the_coupon_and_only_for_members(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    coupon = {"amount_off_fen": 1000, "threshold_fen": 0}
    buyer = await buyer_with_cart(sessions, ((3333, 10, 3),), coupon=coupon)  # 99.99: free delivery
    async with sessions() as session:
        plain = await quote(session, customer_id=buyer.customer_id, rules=RULES)
    assert plain.level_discount_fen == 0 and plain.discount_fen == 1000
    await join(sessions, buyer.customer_id, PHONE)
    async with sessions() as session:  # staff made 普通会员 worth 2.5%
        await session.execute(update(Customer).where(Customer.id == buyer.customer_id).values(total_spent_fen=0))
        await levels.set_level(session, name="普通会员", threshold_fen=0, discount_bp=250, rules=RULES)
        await session.commit()
    async with sessions() as session:
        priced = await quote(session, customer_id=buyer.customer_id, rules=RULES)
    assert priced.level_discount_fen == (9999 - 1000) * 250 // 10000 == 224 and priced.level_name == "普通会员"
    assert priced.payable_fen == 9999 - 1000 - 224 + priced.delivery_fen
    order = await place(sessions, buyer, expected_payable_fen=priced.payable_fen)
    assert (order.level_discount_fen, order.member_level) == (224, "普通会员")
    async with sessions() as session:
        levels_now = await levels.current_levels(session, RULES)
    assert [lv.name for lv in levels_now] == ["普通会员", "银卡", "金卡"]  # the rules' others kept


async def test_setting_a_level_moves_the_members_it_concerns(sessions: async_sessionmaker[AsyncSession]) -> None:
    rich, poor = await customer(sessions, "o-member-7"), await customer(sessions, "o-member-8")
    await join(sessions, rich, PHONE)
    await join(sessions, poor, OTHER_PHONE)
    async with sessions() as session:
        await session.execute(update(Customer).where(Customer.id == rich).values(total_spent_fen=30000))
        await session.commit()
    async with sessions() as session:
        change = await levels.set_level(session, name="钻石", threshold_fen=25000, discount_bp=900, rules=RULES)
        await session.commit()
    assert change.before is None and change.members_moved == 1
    assert await spent(sessions, rich) == (30000, "钻石", 900)
    assert await spent(sessions, poor) == (0, "普通会员", 0)
    async with sessions() as session:
        await expect_error(
            ErrorCode.LEVEL_INVALID,
            levels.set_level(session, name="黑卡", threshold_fen=0, discount_bp=5001, rules=RULES),
        )


async def test_two_requests_at_once_send_one_code(sessions: async_sessionmaker[AsyncSession]) -> None:
    me = await customer(sessions, "o-member-9")
    results = await asyncio.gather(ask(sessions, me), ask(sessions, me, OTHER_PHONE), return_exceptions=True)
    sent = [r for r in results if isinstance(r, codes.IssuedCode)]
    refused = [r for r in results if isinstance(r, ShopError)]
    assert len(sent) == 1 and [e.code for e in refused] == [ErrorCode.CODE_TOO_SOON], results
    async with sessions() as session:
        assert len((await session.scalars(select(SmsCode))).all()) == 1

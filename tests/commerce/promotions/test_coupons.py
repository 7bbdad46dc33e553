"""Coupons as staff manage them: define, issue (also all at once), list."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from commerce.cart.cart import add_to_cart
from commerce.cart.pricing import quote
from commerce.errors import ErrorCode, ShopError
from commerce.promotions import coupons
from commerce.promotions.models import Coupon, CouponKind, CustomerCoupon, CustomerCouponStatus
from commerce.wiring import shop_sessions
from tests.commerce.factories import make_customer, make_variant
from tests.commerce.orders.test_queries import RULES, expect_error, run

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
K = CouponKind


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return shop_sessions(engine)


async def create(
    sessions: async_sessionmaker[AsyncSession], **kwargs: object
) -> coupons.CouponView:
    values: dict[str, object] = {
        "code": "SPRING10",
        "title": "满50减10",
        "kind": K.AMOUNT_OFF,
        "amount_off_fen": 1000,
        "threshold_fen": 5000,
    }
    view, _change = await run(sessions, coupons.create_coupon, **(values | kwargs))
    return view


async def customers(sessions: async_sessionmaker[AsyncSession], count: int) -> list[str]:
    async with sessions() as session:
        openids = [f"c-{n}" for n in range(count)]
        for openid in openids:
            await make_customer(session, openid)
        await session.commit()
    return openids


async def issued(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(CustomerCoupon)) or 0)


async def test_create_an_amount_off_coupon(sessions: async_sessionmaker[AsyncSession]) -> None:
    until = NOW + timedelta(days=7)
    view, (before, after) = await run(
        sessions,
        coupons.create_coupon,
        code=" spring10 ",
        title="满50减10",
        kind=K.AMOUNT_OFF,
        amount_off_fen=1000,
        threshold_fen=5000,
        valid_until=until,
        per_user_limit=2,
        total_quantity=100,
    )
    assert (view.code, view.kind, view.amount_off_fen, view.threshold_fen) == (
        "SPRING10",
        K.AMOUNT_OFF,
        1000,
        5000,
    )
    assert (view.valid_from, view.valid_until, view.per_user_limit, view.total_quantity) == (
        None,
        until,
        2,
        100,
    )
    assert view.issued_count == 0 and view.active and view.remaining == 100
    assert before is None
    assert after is not None and after["code"] == "SPRING10" and after["kind"] == "amount_off"
    assert after["valid_until"] == until.isoformat() and after["total_quantity"] == 100


async def test_create_a_percent_off_coupon(sessions: async_sessionmaker[AsyncSession]) -> None:
    view = await create(
        sessions, code="P15", kind=K.PERCENT_OFF, amount_off_fen=0, percent_off=15, cap_fen=3000
    )
    assert (view.kind, view.percent_off, view.cap_fen, view.remaining) == (
        K.PERCENT_OFF,
        15,
        3000,
        None,
    )


@pytest.mark.parametrize(("typed", "kept"), [("满50减10", "满50减10"), ("周末", "周末"), ("ＳＡＶＥ２０", "SAVE20"),
                                            ("spring-10", "SPRING-10")])
async def test_bug_a_chinese_code_was_refused(
    sessions: async_sessionmaker[AsyncSession], typed: str, kept: str
) -> None:
    """Only staff type a code (customers pick held coupons by number at checkout), so
    a Chinese one is as good as a Latin one; full width is folded, Latin upper-cased."""
    view = await create(sessions, code=typed)
    assert view.code == kept
    assert (await run(sessions, coupons.get_coupon, code=typed)).id == view.id


@pytest.mark.parametrize(
    ("kwargs", "code", "field"),
    [
        ({"code": "x"}, ErrorCode.NAME_INVALID, "code"),
        ({"code": "满 50"}, ErrorCode.NAME_INVALID, "code"),
        ({"code": "周末!"}, ErrorCode.NAME_INVALID, "code"),
        ({"code": "_AB"}, ErrorCode.NAME_INVALID, "code"),
        ({"code": "A" * 33}, ErrorCode.NAME_INVALID, "code"),
        ({"title": " "}, ErrorCode.NAME_INVALID, "title"),
        ({"amount_off_fen": 0}, ErrorCode.PRICE_INVALID, "amount_off_fen"),
        ({"amount_off_fen": 10**9 + 1}, ErrorCode.PRICE_INVALID, "amount_off_fen"),
        ({"percent_off": 10}, ErrorCode.PRICE_INVALID, "percent_off"),
        ({"threshold_fen": -1}, ErrorCode.PRICE_INVALID, "threshold_fen"),
        (
            {"kind": K.PERCENT_OFF, "amount_off_fen": 0, "percent_off": 100},
            ErrorCode.PRICE_INVALID,
            "percent_off",
        ),
        (
            {"kind": K.PERCENT_OFF, "amount_off_fen": 0, "percent_off": 0},
            ErrorCode.PRICE_INVALID,
            "percent_off",
        ),
        ({"kind": K.PERCENT_OFF, "percent_off": 10}, ErrorCode.PRICE_INVALID, "amount_off_fen"),
        ({"cap_fen": -5}, ErrorCode.PRICE_INVALID, "cap_fen"),
        ({"per_user_limit": 0}, ErrorCode.QUANTITY_INVALID, "per_user_limit"),
        ({"total_quantity": 0}, ErrorCode.QUANTITY_INVALID, "total_quantity"),
        (
            {"valid_from": NOW, "valid_until": NOW},
            ErrorCode.DATE_RANGE_INVALID,
            None,
        ),
    ],
)
async def test_create_validation(
    sessions: async_sessionmaker[AsyncSession],
    kwargs: dict[str, object],
    code: ErrorCode,
    field: str | None,
) -> None:
    details = await expect_error(code, create(sessions, **kwargs))
    assert details.get("field") == field
    assert await run(sessions, coupons.list_coupons) == []


async def test_a_code_is_used_once(sessions: async_sessionmaker[AsyncSession]) -> None:
    await create(sessions, code="SPRING10")
    await expect_error(ErrorCode.COUPON_EXISTS, create(sessions, code="spring10"))


async def test_issue_a_coupon(sessions: async_sessionmaker[AsyncSession]) -> None:
    await create(sessions, per_user_limit=2, total_quantity=10)
    [openid] = await customers(sessions, 1)
    view, (before, after) = await run(
        sessions, coupons.issue_coupon, code="spring10", openid=openid, now=NOW
    )
    assert view.issued_count == 1 and view.remaining == 9
    assert before == {"code": "SPRING10", "openid": openid, "issued_count": 0, "held": 0}
    assert after is not None and (after["issued_count"], after["held"]) == (1, 1)
    view, _ = await run(sessions, coupons.issue_coupon, code="SPRING10", openid=openid, now=NOW)
    assert view.issued_count == 2
    details = await expect_error(
        ErrorCode.COUPON_LIMIT_REACHED,
        run(sessions, coupons.issue_coupon, code="SPRING10", openid=openid, now=NOW),
    )
    assert details["per_user_limit"] == 2
    assert await issued(sessions) == 2
    assert (await run(sessions, coupons.get_coupon, code="SPRING10")).issued_count == 2


async def test_the_issued_coupon_prices_the_cart(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await create(sessions)
    async with sessions() as session:
        customer_id = await make_customer(session, "buyer")
        variant_id = await make_variant(session, price_fen=3000, stock=5)
        await add_to_cart(
            session, customer_id=customer_id, variant_id=variant_id, quantity=2, rules=RULES
        )
        await session.commit()
    await run(sessions, coupons.issue_coupon, code="SPRING10", openid="buyer", now=NOW)
    priced = await run(sessions, quote, customer_id=customer_id, rules=RULES, now=NOW)
    assert priced.coupon is not None and priced.discount_fen == 1000


async def test_issue_refusals(sessions: async_sessionmaker[AsyncSession]) -> None:
    [openid] = await customers(sessions, 1)
    await create(sessions, code="OLD", valid_until=NOW)
    await create(sessions, code="STOPPED")
    await run(sessions, coupons.set_active, code="STOPPED", active=False)
    await expect_error(
        ErrorCode.CUSTOMER_NOT_FOUND,
        run(sessions, coupons.issue_coupon, code="OLD", openid="nobody", now=NOW),
    )
    await expect_error(
        ErrorCode.COUPON_NOT_FOUND,
        run(sessions, coupons.issue_coupon, code="NOPE", openid=openid, now=NOW),
    )
    details = await expect_error(
        ErrorCode.COUPON_INVALID,
        run(sessions, coupons.issue_coupon, code="OLD", openid=openid, now=NOW),
    )
    assert details["reason"] == "expired"
    details = await expect_error(
        ErrorCode.COUPON_INVALID,
        run(sessions, coupons.issue_coupon, code="STOPPED", openid=openid, now=NOW),
    )
    assert details["reason"] == "inactive"
    assert await issued(sessions) == 0


async def test_a_limited_coupon_runs_out(sessions: async_sessionmaker[AsyncSession]) -> None:
    await create(sessions, total_quantity=1)
    first, second = await customers(sessions, 2)
    await run(sessions, coupons.issue_coupon, code="SPRING10", openid=first, now=NOW)
    await expect_error(
        ErrorCode.COUPON_EXHAUSTED,
        run(sessions, coupons.issue_coupon, code="SPRING10", openid=second, now=NOW),
    )


async def issue_all(
    sessions: async_sessionmaker[AsyncSession], openids: list[str]
) -> list[ErrorCode | None]:
    async def one(openid: str) -> ErrorCode | None:
        try:
            await run(sessions, coupons.issue_coupon, code="SPRING10", openid=openid, now=NOW)
        except ShopError as exc:
            return exc.code
        return None

    return await asyncio.gather(*(one(o) for o in openids))


async def test_issuing_at_once_never_passes_the_total(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await create(sessions, total_quantity=5)
    results = await issue_all(sessions, await customers(sessions, 20))
    assert results.count(None) == 5 and results.count(ErrorCode.COUPON_EXHAUSTED) == 15
    assert await issued(sessions) == 5
    async with sessions() as session:
        assert await session.scalar(select(Coupon.issued_count)) == 5


async def test_issuing_at_once_to_one_customer_keeps_the_per_user_limit(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await create(sessions, per_user_limit=2, total_quantity=50)
    [openid] = await customers(sessions, 1)
    results = await issue_all(sessions, [openid] * 8)
    assert results.count(None) == 2 and results.count(ErrorCode.COUPON_LIMIT_REACHED) == 6
    assert await issued(sessions) == 2
    assert (await run(sessions, coupons.get_coupon, code="SPRING10")).issued_count == 2


async def test_list_coupons(sessions: async_sessionmaker[AsyncSession]) -> None:
    await create(sessions, code="A1")
    await create(sessions, code="OLD", valid_until=NOW - timedelta(days=1))
    await create(sessions, code="STOPPED")
    before, after = await run(sessions, coupons.set_active, code="STOPPED", active=False)
    assert (before["active"], after["active"]) == (True, False)
    assert {c.code for c in await run(sessions, coupons.list_coupons)} == {"A1", "OLD", "STOPPED"}
    active = await run(sessions, coupons.list_coupons, active_only=True, now=NOW)
    assert [c.code for c in active] == ["A1"]


async def test_the_coupons_usable_now_come_best_first(sessions: async_sessionmaker[AsyncSession]) -> None:
    terms: dict[str, dict[str, object]] = {
        "OFF5": {"amount_off_fen": 500, "threshold_fen": 0},
        "OFF10": {"amount_off_fen": 1000, "threshold_fen": 5000},
        "OFF10LOW": {"amount_off_fen": 1000, "threshold_fen": 3000},  # as much off on a smaller order: before OFF10
        "PCT3CAP": {"kind": K.PERCENT_OFF, "amount_off_fen": 0, "percent_off": 30, "cap_fen": 300},
        "PCT10": {"kind": K.PERCENT_OFF, "amount_off_fen": 0, "percent_off": 10},  # no cap: any amount
        "SHORT": {"amount_off_fen": 2000, "valid_until": NOW + timedelta(days=1)},
        "USED": {"amount_off_fen": 3000},
    }
    for code, values in terms.items():
        await create(sessions, code=code, title=code, **values)
    [openid] = await customers(sessions, 1)
    for code in terms:
        await run(sessions, coupons.issue_coupon, code=code, openid=openid, now=NOW)
    async with sessions() as session:
        customer_id = await session.scalar(select(CustomerCoupon.customer_id).limit(1))
        used = await session.scalar(select(CustomerCoupon).join(Coupon).where(Coupon.code == "USED"))
        assert customer_id is not None and used is not None
        used.status = CustomerCouponStatus.USED.value
        await session.commit()
    later = NOW + timedelta(days=2)  # SHORT has expired by then
    held = await run(sessions, coupons.usable_coupons, customer_id=customer_id, now=later)
    assert [c.coupon.title for c in held] == ["PCT10", "OFF10LOW", "OFF10", "OFF5", "PCT3CAP"]
    assert await run(sessions, coupons.usable_count, customer_id=customer_id, now=later) == len(held)

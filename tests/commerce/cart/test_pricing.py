"""Pricing the cart: coupons (amount off, percent off with cap), the best one, delivery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from commerce.cart.cart import add_to_cart
from commerce.cart.pricing import NO_COUPON, coupon_discount, quote
from commerce.catalog.models import Variant
from commerce.errors import ErrorCode, ShopError
from commerce.promotions.models import Coupon, CouponKind, CustomerCoupon, CustomerCouponStatus
from commerce.rules import ShopRules
from commerce.wiring import shop_sessions
from tests.commerce.factories import make_coupon, make_customer, make_variant

RULES = ShopRules(delivery_fee_fen=800, free_delivery_threshold_fen=9900)
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _coupon(kind: CouponKind, **fields: int) -> Coupon:
    return Coupon(
        kind=kind.value,
        **{"amount_off_fen": 0, "percent_off": 0, "cap_fen": 0, "threshold_fen": 0, **fields},
    )


@pytest.mark.parametrize(
    ("fields", "goods", "discount"),
    [
        ({"amount_off_fen": 1000, "threshold_fen": 5000}, 4999, 0),  # below the threshold
        ({"amount_off_fen": 1000, "threshold_fen": 5000}, 5000, 1000),  # reaching it is enough
        ({"amount_off_fen": 1000}, 600, 600),  # never more than the goods
        ({"amount_off_fen": 1000}, 0, 0),
    ],
)
def test_amount_off(fields: dict, goods: int, discount: int) -> None:
    assert coupon_discount(_coupon(CouponKind.AMOUNT_OFF, **fields), goods) == discount


@pytest.mark.parametrize(
    ("fields", "goods", "discount"),
    [
        ({"percent_off": 20}, 1000, 200),
        ({"percent_off": 15}, 999, 149),  # 149.85 floors to 149 fen
        ({"percent_off": 33}, 1, 0),
        ({"percent_off": 20, "cap_fen": 500}, 10_000, 500),  # capped
        ({"percent_off": 20, "cap_fen": 0}, 10_000, 2000),  # 0 = no cap
        ({"percent_off": 20, "threshold_fen": 3000}, 2999, 0),
        ({"percent_off": 99}, 10_001, 9900),
    ],
)
def test_percent_off(fields: dict, goods: int, discount: int) -> None:
    assert coupon_discount(_coupon(CouponKind.PERCENT_OFF, **fields), goods) == discount


def test_unknown_kind_gives_nothing() -> None:
    assert (
        coupon_discount(
            Coupon(kind="mystery", amount_off_fen=100, percent_off=0, cap_fen=0, threshold_fen=0),
            1000,
        )
        == 0
    )


async def _cart(session: AsyncSession, *, price_fen: int, quantity: int = 1) -> tuple[int, int]:
    customer = await make_customer(session)
    variant = await make_variant(session, price_fen=price_fen, stock=100)
    await add_to_cart(
        session, customer_id=customer, variant_id=variant, quantity=quantity, rules=RULES
    )
    return customer, variant


async def test_best_valid_coupon_is_applied_and_others_offered(engine: AsyncEngine) -> None:
    async with shop_sessions(engine)() as session:
        customer, _ = await _cart(session, price_fen=3000, quantity=2)  # 60.00
        small = await make_coupon(session, customer, amount_off_fen=500, title="减5")
        best = await make_coupon(
            session,
            customer,
            kind=CouponKind.PERCENT_OFF,
            percent_off=20,
            cap_fen=1500,
            title="8折",
        )
        await make_coupon(
            session, customer, amount_off_fen=3000, threshold_fen=10_000, title="满100减30"
        )  # not reached
        await make_coupon(
            session, customer, amount_off_fen=5000, valid_until=NOW - timedelta(seconds=1)
        )  # expired
        await make_coupon(
            session, customer, amount_off_fen=5000, valid_from=NOW + timedelta(days=1)
        )  # not yet
        await make_coupon(session, customer, amount_off_fen=5000, active=False)  # withdrawn
        used = await make_coupon(session, customer, amount_off_fen=5000)
        await session.execute(
            update(CustomerCoupon)
            .where(CustomerCoupon.id == used)
            .values(status=CustomerCouponStatus.USED.value)
        )
        other_customer = await make_customer(session)
        await make_coupon(session, other_customer, amount_off_fen=5000)  # someone else's

        priced = await quote(session, customer_id=customer, rules=RULES, now=NOW)
        assert priced.coupon is not None
        assert (
            priced.coupon.customer_coupon_id,
            priced.coupon.title,
            priced.coupon.discount_fen,
        ) == (best, "8折", 1200)
        assert [o.customer_coupon_id for o in priced.other_coupons] == [small]
        assert (priced.goods_fen, priced.discount_fen, priced.delivery_fen, priced.points_fen) == (
            6000,
            1200,
            800,
            0,
        )
        assert priced.payable_fen == 6000 - 1200 + 800

        chosen = await quote(
            session, customer_id=customer, rules=RULES, customer_coupon_id=small, now=NOW
        )
        assert chosen.discount_fen == 500 and [
            o.customer_coupon_id for o in chosen.other_coupons
        ] == [best]
        none = await quote(
            session, customer_id=customer, rules=RULES, customer_coupon_id=NO_COUPON, now=NOW
        )
        assert none.coupon is None and none.discount_fen == 0 and len(none.other_coupons) == 2
        assert none.payable_fen == 6800


async def test_a_coupon_is_valid_until_its_end(engine: AsyncEngine) -> None:
    async with shop_sessions(engine)() as session:
        customer, _ = await _cart(session, price_fen=3000)
        ending = await make_coupon(
            session,
            customer,
            amount_off_fen=100,
            valid_from=NOW,
            valid_until=NOW + timedelta(hours=1),
        )
        assert (
            await quote(session, customer_id=customer, rules=RULES, now=NOW)
        ).coupon.customer_coupon_id == ending  # type: ignore[union-attr]
        later = await quote(
            session, customer_id=customer, rules=RULES, now=NOW + timedelta(hours=1)
        )
        assert later.coupon is None


async def test_equal_discounts_prefer_the_coupon_expiring_first(engine: AsyncEngine) -> None:
    async with shop_sessions(engine)() as session:
        customer, _ = await _cart(session, price_fen=3000)
        await make_coupon(session, customer, amount_off_fen=500)
        soon = await make_coupon(
            session, customer, amount_off_fen=500, valid_until=NOW + timedelta(days=1)
        )
        await make_coupon(
            session, customer, amount_off_fen=500, valid_until=NOW + timedelta(days=9)
        )
        assert (
            await quote(session, customer_id=customer, rules=RULES, now=NOW)
        ).coupon.customer_coupon_id == soon  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"amount_off_fen": 500, "valid_until": NOW - timedelta(days=1)}, "expired"),
        ({"amount_off_fen": 500, "valid_from": NOW + timedelta(days=1)}, "not_started"),
        ({"amount_off_fen": 500, "active": False}, "inactive"),
        ({"amount_off_fen": 500, "threshold_fen": 99_999}, "below_threshold"),
    ],
)
async def test_naming_an_unusable_coupon_says_why(
    engine: AsyncEngine, fields: dict, reason: str
) -> None:
    async with shop_sessions(engine)() as session:
        customer, _ = await _cart(session, price_fen=3000)
        held = await make_coupon(session, customer, **fields)
        with pytest.raises(ShopError) as caught:
            await quote(
                session, customer_id=customer, rules=RULES, customer_coupon_id=held, now=NOW
            )
        assert (
            caught.value.code == ErrorCode.COUPON_INVALID
            and caught.value.details["reason"] == reason
        )
        # not applied automatically either
        assert (await quote(session, customer_id=customer, rules=RULES, now=NOW)).coupon is None


async def test_someone_elses_coupon_is_not_found(engine: AsyncEngine) -> None:
    async with shop_sessions(engine)() as session:
        customer, _ = await _cart(session, price_fen=3000)
        stranger = await make_customer(session)
        theirs = await make_coupon(session, stranger, amount_off_fen=500)
        with pytest.raises(ShopError) as caught:
            await quote(
                session, customer_id=customer, rules=RULES, customer_coupon_id=theirs, now=NOW
            )
        assert caught.value.details["reason"] == "not_found"


@pytest.mark.parametrize(
    ("price", "quantity", "delivery"),
    [(9899, 1, 800), (9900, 1, 0), (3300, 3, 0), (3299, 3, 800)],
)
async def test_free_delivery_from_the_threshold(
    engine: AsyncEngine, price: int, quantity: int, delivery: int
) -> None:
    async with shop_sessions(engine)() as session:
        customer, _ = await _cart(session, price_fen=price, quantity=quantity)
        priced = await quote(session, customer_id=customer, rules=RULES, now=NOW)
        assert priced.delivery_fen == delivery
        assert priced.payable_fen == price * quantity + delivery


async def test_the_threshold_is_on_goods_before_the_discount(engine: AsyncEngine) -> None:
    async with shop_sessions(engine)() as session:
        customer, _ = await _cart(session, price_fen=10_000)
        await make_coupon(session, customer, amount_off_fen=2000)
        priced = await quote(session, customer_id=customer, rules=RULES, now=NOW)
        assert (priced.discount_fen, priced.delivery_fen, priced.payable_fen) == (2000, 0, 8000)


async def test_an_empty_cart_costs_nothing(engine: AsyncEngine) -> None:
    async with shop_sessions(engine)() as session:
        customer = await make_customer(session)
        await make_coupon(session, customer, amount_off_fen=500)
        priced = await quote(session, customer_id=customer, rules=RULES, now=NOW)
        assert (
            priced.is_empty
            and priced.payable_fen == 0
            and priced.delivery_fen == 0
            and priced.coupon is None
        )


async def test_lines_that_cannot_be_bought_are_problems_not_goods(engine: AsyncEngine) -> None:
    async with shop_sessions(engine)() as session:
        customer, fine = await _cart(session, price_fen=2000)
        short = await make_variant(session, price_fen=5000, stock=5)
        await add_to_cart(session, customer_id=customer, variant_id=short, quantity=3, rules=RULES)
        await session.execute(update(Variant).where(Variant.id == short).values(stock=1))
        before = await quote(session, customer_id=customer, rules=RULES, now=NOW)
        assert [ln.variant_id for ln in before.lines] == [fine]
        assert [(p.variant_id, p.problem, p.stock) for p in before.problems] == [
            (short, "not_enough_stock", 1)
        ]
        assert before.goods_fen == 2000 and before.payable_fen == 2800
        await session.execute(update(Variant).where(Variant.id == fine).values(price_fen=2100))
        after = await quote(session, customer_id=customer, rules=RULES, now=NOW)
        assert after.payable_fen == 2900 and after.fingerprint != before.fingerprint
        assert (
            await quote(session, customer_id=customer, rules=RULES, now=NOW)
        ).fingerprint == after.fingerprint

"""Pricing as pure functions: property tests, no database (commerce/cart/calculations.py)."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from commerce.cart.calculations import (
    AMOUNT_OFF,
    PERCENT_OFF,
    Terms,
    cart_totals,
    coupon_discount,
    delivery_fee,
    points_saving,
)
from commerce.promotions.models import CouponKind
from commerce.rules import ShopRules

FAST = settings(max_examples=300, deadline=None, database=None)
fen = st.integers(min_value=0, max_value=10_000_000)
rules_st = st.builds(
    ShopRules,
    delivery_fee_fen=st.integers(min_value=0, max_value=5_000),
    free_delivery_threshold_fen=st.integers(min_value=0, max_value=50_000),
    redeem_points_per_yuan=st.integers(min_value=0, max_value=1_000),
    redeem_max_percent=st.integers(min_value=-10, max_value=150),
)
terms_st = st.builds(
    Terms,
    kind=st.sampled_from([AMOUNT_OFF, PERCENT_OFF, "mystery"]),
    threshold_fen=fen,
    amount_off_fen=fen,
    percent_off=st.integers(min_value=0, max_value=100),
    cap_fen=fen,
)


def test_the_coupon_kinds_are_the_models() -> None:
    assert {AMOUNT_OFF, PERCENT_OFF} == {kind.value for kind in CouponKind}


# ---- delivery: one rule --------------------------------------------------------------------


@FAST
@given(rules=rules_st)
def test_delivery_is_free_exactly_from_the_threshold(rules: ShopRules) -> None:
    threshold = rules.free_delivery_threshold_fen
    assert delivery_fee(threshold, rules=rules) == 0
    if threshold > 1:
        assert delivery_fee(threshold - 1, rules=rules) == rules.delivery_fee_fen
    assert delivery_fee(threshold + 1, rules=rules) == 0


@FAST
@given(goods=st.integers(min_value=-1000, max_value=10_000_000), rules=rules_st)
def test_delivery_is_the_fee_or_nothing_and_nothing_for_nothing(goods: int, rules: ShopRules) -> None:
    fee = delivery_fee(goods, rules=rules)
    assert fee in (0, rules.delivery_fee_fen)
    if goods <= 0:
        assert fee == 0


# ---- coupons -----------------------------------------------------------------------------


@FAST
@given(terms=terms_st, goods=st.integers(min_value=-1000, max_value=10_000_000))
def test_a_discount_is_never_negative_nor_more_than_the_goods(terms: Terms, goods: int) -> None:
    discount = coupon_discount(terms, goods)
    assert 0 <= discount <= max(0, goods)
    if goods < terms.threshold_fen or goods <= 0:
        assert discount == 0


@FAST
@given(terms=terms_st, goods=fen)
def test_a_percent_coupon_respects_its_cap_and_rate(terms: Terms, goods: int) -> None:
    discount = coupon_discount(Terms(PERCENT_OFF, terms.threshold_fen, 0, terms.percent_off, terms.cap_fen), goods)
    assert discount * 100 <= goods * terms.percent_off
    if terms.cap_fen > 0:
        assert discount <= terms.cap_fen


# ---- points ------------------------------------------------------------------------------


@FAST
@given(balance=st.integers(min_value=-100, max_value=10_000_000), base=fen, max_fen=fen, rules=rules_st)
def test_points_redemption_is_capped_by_the_percentage_and_paid_for(
    balance: int, base: int, max_fen: int, rules: ShopRules
) -> None:
    off, used = points_saving(balance=balance, base_fen=base, max_fen=max_fen, rules=rules)
    percent = max(0, min(rules.redeem_max_percent, 100))
    assert 0 <= off <= max_fen
    assert off * 100 <= base * percent  # the cap
    assert 0 <= used <= max(0, balance)  # never more points than held
    rate = rules.redeem_points_per_yuan
    if off:
        assert used * 100 >= off * rate  # the points pay for the saving...
        assert (used - 1) * 100 < off * rate  # ...and are the fewest that do
    else:
        assert used == 0


@FAST
@given(balance=st.integers(min_value=1, max_value=10_000_000), base=st.integers(min_value=1, max_value=10_000_000))
@example(balance=1, base=10_000)  # one point at 100 a yuan: a fen is a hundredth of it
def test_the_saving_is_the_most_the_balance_covers(balance: int, base: int) -> None:
    rules = ShopRules(redeem_points_per_yuan=100, redeem_max_percent=50)
    off, _ = points_saving(balance=balance, base_fen=base, max_fen=10**12, rules=rules)
    assert off == min(balance, base * 50 // 100)  # 100 points a yuan: a point a fen


# ---- the totals --------------------------------------------------------------------------


@FAST
@given(
    goods=st.integers(min_value=-1000, max_value=10_000_000),
    discount=st.integers(min_value=-1000, max_value=20_000_000),
    balance=st.integers(min_value=0, max_value=10_000_000),
    use_points=st.booleans(),
    rules=rules_st,
)
def test_totals_add_up_and_are_never_negative(
    goods: int, discount: int, balance: int, use_points: bool, rules: ShopRules
) -> None:
    t = cart_totals(goods_fen=goods, discount_fen=discount, points_balance=balance, use_points=use_points, rules=rules)
    assert t.payable_fen == t.goods_fen - t.discount_fen + t.delivery_fen - t.points_fen
    assert t.payable_fen >= 0 and t.goods_fen >= 0
    assert 0 <= t.discount_fen <= t.goods_fen  # the discount never exceeds the subtotal
    assert t.delivery_fen == delivery_fee(t.goods_fen, rules=rules)  # on the goods before the discount
    assert (t.points_fen, t.points_used) == ((t.points_offer_fen, t.points_offer_used) if use_points else (0, 0))
    if t.goods_fen > 0:  # neither the coupon nor the points bring it to nothing
        assert t.payable_fen >= 1


@FAST
@given(goods=st.integers(min_value=1, max_value=10_000_000), balance=st.integers(min_value=0, max_value=10**8), rules=rules_st)
def test_using_points_never_costs_more(goods: int, balance: int, rules: ShopRules) -> None:
    without = cart_totals(goods_fen=goods, discount_fen=0, points_balance=balance, use_points=False, rules=rules)
    using = cart_totals(goods_fen=goods, discount_fen=0, points_balance=balance, use_points=True, rules=rules)
    assert using.payable_fen <= without.payable_fen
    assert using.payable_fen == without.payable_fen - using.points_fen


def test_an_empty_cart_costs_nothing() -> None:
    t = cart_totals(goods_fen=0, discount_fen=0, points_balance=10_000, use_points=True, rules=ShopRules())
    assert (t.payable_fen, t.delivery_fen, t.points_fen, t.points_used) == (0, 0, 0, 0)


def test_a_coupon_worth_all_the_goods_of_a_free_delivery_cart_leaves_a_fen_to_pay() -> None:
    """Regression: an amount-off coupon of at least the goods, on a cart past the free
    delivery threshold, made an order of 0 fen, which no payment provider can charge."""
    rules = ShopRules(free_delivery_threshold_fen=9900)
    coupon = Terms(AMOUNT_OFF, threshold_fen=0, amount_off_fen=20_000)
    goods = 10_000
    t = cart_totals(
        goods_fen=goods, discount_fen=coupon_discount(coupon, goods), points_balance=0, use_points=False, rules=rules
    )
    assert (t.delivery_fen, t.discount_fen, t.payable_fen) == (0, 9_999, 1)
    below = cart_totals(goods_fen=5_000, discount_fen=5_000, points_balance=0, use_points=False, rules=rules)
    assert (below.delivery_fen, below.discount_fen, below.payable_fen) == (800, 5_000, 800)  # delivery is paid

"""Commission arithmetic as pure functions: property tests, no database
(commerce/referrals/calculations.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from commerce.referrals.calculations import (
    BASIS_POINTS,
    Binding,
    PaidOrder,
    commission_amount,
    commission_base,
    earned_commission,
    reversal_target,
)
from commerce.rules import ShopRules

FAST = settings(max_examples=300, deadline=None, database=None)
fen = st.integers(min_value=0, max_value=10_000_000)
rate = st.integers(min_value=0, max_value=BASIS_POINTS)
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


@FAST
@given(base=st.integers(min_value=-1000, max_value=10_000_000), rate_bp=rate)
def test_commission_rounding_never_exceeds_the_rate(base: int, rate_bp: int) -> None:
    amount = commission_amount(base, rate_bp)
    assert 0 <= amount
    assert amount * BASIS_POINTS <= max(0, base) * rate_bp  # floored: never above the rate
    assert (amount + 1) * BASIS_POINTS > max(0, base) * rate_bp  # and only by less than a fen


@FAST
@given(paid=fen, delivery=fen)
def test_the_base_is_the_goods_paid_for_never_negative(paid: int, delivery: int) -> None:
    base = commission_base(paid, delivery)
    assert base == max(0, paid - delivery) and base <= paid


@FAST
@given(
    paid=fen,
    delivery=st.integers(min_value=0, max_value=2_000),
    is_group=st.booleans(),
    on_groups=st.booleans(),
    rate_bp=rate,
    referrer=st.one_of(st.none(), st.integers(min_value=1, max_value=100)),
    bound_for=st.one_of(st.none(), st.timedeltas(min_value=timedelta(days=-30), max_value=timedelta(days=30))),
)
def test_who_earns_what(
    paid: int,
    delivery: int,
    is_group: bool,
    on_groups: bool,
    rate_bp: int,
    referrer: int | None,
    bound_for: timedelta | None,
) -> None:
    rules = ShopRules(commission_rate_bp=rate_bp, commission_on_group_orders=on_groups)
    order = PaidOrder(paid_fen=paid, delivery_fen=delivery, is_group=is_group, paid_at=NOW)
    binding = Binding(referrer_id=referrer, until=None if bound_for is None else NOW + bound_for)
    earned = earned_commission(order, binding, rules)
    bound = referrer is not None and bound_for is not None and bound_for > timedelta(0)
    if not bound or (is_group and not on_groups):
        assert earned is None
        return
    base = commission_base(paid, delivery)
    amount = commission_amount(base, rate_bp)
    assert earned == ((base, amount) if amount > 0 else None)


@FAST
@given(amount=st.integers(min_value=0, max_value=1_000_000), base=fen, paid=st.integers(min_value=1, max_value=10_000_000), data=st.data())
def test_reversals_only_grow_never_past_the_amount_and_all_on_a_full_refund(
    amount: int, base: int, paid: int, data: st.DataObject
) -> None:
    refunds = data.draw(st.lists(st.integers(min_value=0, max_value=paid), max_size=6))
    reversed_fen = 0
    for refunded in sorted(refunds):  # the refunded total only grows
        target = reversal_target(
            amount_fen=amount, base_fen=base, reversed_fen=reversed_fen, refunded_fen=refunded, paid_fen=paid
        )
        assert reversed_fen <= target <= amount
        reversed_fen = target
    full = reversal_target(amount_fen=amount, base_fen=base, reversed_fen=reversed_fen, refunded_fen=paid, paid_fen=paid)
    assert full == amount

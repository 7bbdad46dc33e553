"""Commission arithmetic, as pure functions over small frozen values (no database).

`commerce.referrals.commission` fetches the order and the buyer's binding, then calls
these; their invariants are property-tested in tests/commerce/referrals/test_calculations.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from commerce.rules import ShopRules

BASIS_POINTS = 10_000  # rate_bp / BASIS_POINTS is the rate: 500 = 5%


@dataclass(frozen=True, slots=True)
class PaidOrder:
    """What decides an order's commission, fetched first."""

    paid_fen: int
    delivery_fen: int
    is_group: bool
    paid_at: datetime


@dataclass(frozen=True, slots=True)
class Binding:
    """The buyer's referrer, and until when the referral binds."""

    referrer_id: int | None
    until: datetime | None


def commission_base(paid_fen: int, delivery_fen: int) -> int:
    """What the buyer paid for goods (points and coupons already came off), never negative."""
    return max(0, paid_fen - delivery_fen)


def commission_amount(base_fen: int, rate_bp: int) -> int:
    """base x rate, floored to the fen: never more than the rate of the base."""
    return max(0, base_fen) * max(0, rate_bp) // BASIS_POINTS


def earned_commission(order: PaidOrder, binding: Binding, rules: ShopRules) -> tuple[int, int] | None:
    """(base, amount) the referrer earns on `order`, or None when it earns nothing: group
    orders (unless the shop pays on them), no referrer, a binding that ended before the
    payment, or an amount that rounds to nothing."""
    if order.is_group and not rules.commission_on_group_orders:
        return None
    if binding.referrer_id is None or binding.until is None or order.paid_at >= binding.until:
        return None
    base = commission_base(order.paid_fen, order.delivery_fen)
    amount = commission_amount(base, rules.commission_rate_bp)
    return (base, amount) if amount > 0 else None


def reversal_target(
    *, amount_fen: int, base_fen: int, reversed_fen: int, refunded_fen: int, paid_fen: int
) -> int:
    """How much of a commission should stand reversed once `refunded_fen` of `paid_fen` is
    back: the refunded share of the base, floored; all of it on a full refund; never less
    than is reversed already, never more than the amount."""
    full = refunded_fen >= paid_fen or base_fen <= 0
    target = amount_fen if full else amount_fen * min(max(0, refunded_fen), base_fen) // base_fen
    return min(amount_fen, max(target, reversed_fen))

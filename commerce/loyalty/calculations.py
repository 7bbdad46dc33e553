"""Points arithmetic, as pure functions (no database): what a payment earns, and the
share of points a (partial) refund takes back or returns.

`commerce.loyalty.points` fetches the order and the ledger, then calls these; their
invariants are property-tested in tests/commerce/loyalty/test_calculations.py.
"""

from __future__ import annotations

from commerce.rules import ShopRules


def purchase_points(paid_fen: int, rules: ShopRules) -> int:
    """Points earned for paying `paid_fen`: per whole yuan, never for the fen beyond."""
    return max(0, paid_fen) // 100 * max(0, rules.points_per_yuan)


def refund_share(total: int, refunded_fen: int, paid_fen: int) -> int:
    """The part of `total` that `refunded_fen` of `paid_fen` stands for: floored, all when all."""
    if paid_fen <= 0 or refunded_fen >= paid_fen:
        return total
    return total * max(0, refunded_fen) // paid_fen


def refund_part(total: int, *, before_fen: int, after_fen: int, paid_fen: int) -> int:
    """This refund's part of `total`: the cumulative share after it minus the one before
    it, so partial refunds add up to exactly `total` when all the money is back."""
    return refund_share(total, after_fen, paid_fen) - refund_share(total, before_fen, paid_fen)

"""What a cart costs, as pure functions over small frozen values (no database).

`commerce.cart.pricing.quote` fetches the cart, the coupons held and the points
balance, then calls these; the group-seat order (`commerce.orders.placement`) uses the
same delivery rule. Their invariants are property-tested in
tests/commerce/cart/test_calculations.py.

Points: `redeem_points_per_yuan` points take 100 fen off, up to `redeem_max_percent` of
the goods after the coupon. The saving is the largest whole number of fen the balance
covers within that cap, and the points used are the fewest that pay for it (rounded up
when a fen costs a fraction of a point), all in integers.

The member level (`commerce.membership`) takes its percentage off after the coupon: on the
goods less the coupon, floored to the fen (a level of 2% on ¥12.34 takes 24 fen off, not
24.68), and the points are counted on what is left after both. Coupon, then level, then
points: each discount is figured on what the one before it left.

A cart with goods in it never costs nothing, whatever the coupon and the points: the
payment provider cannot charge zero. A coupon worth all the goods of a cart that ships
free leaves one fen to pay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from commerce.rules import ShopRules

# the coupon kinds (commerce.promotions.models.CouponKind values; a test keeps them equal)
AMOUNT_OFF = "amount_off"
PERCENT_OFF = "percent_off"


class CouponTerms(Protocol):
    """What a coupon's discount depends on (a `Coupon` row has these, and so has `Terms`)."""

    @property
    def kind(self) -> str: ...
    @property
    def threshold_fen(self) -> int: ...
    @property
    def amount_off_fen(self) -> int: ...
    @property
    def percent_off(self) -> int: ...
    @property
    def cap_fen(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Terms:
    """A coupon's terms as a plain value."""

    kind: str
    threshold_fen: int = 0
    amount_off_fen: int = 0
    percent_off: int = 0
    cap_fen: int = 0


@dataclass(frozen=True, slots=True)
class Totals:
    """What the cart costs: goods - discount - level discount + delivery - points = payable."""

    goods_fen: int
    discount_fen: int
    delivery_fen: int
    points_fen: int  # taken off (0 unless the customer uses points)
    points_used: int
    payable_fen: int
    # what the points could take off (and cost) on this cart, used or not: checkout offers it
    points_offer_fen: int
    points_offer_used: int
    level_discount_fen: int = 0  # the member level's discount, after the coupon


def delivery_fee(goods_fen: int, *, rules: ShopRules) -> int:
    """The one delivery rule: free for nothing, and free from the threshold on the goods
    (before any discount); else the shop's fee."""
    if goods_fen <= 0 or goods_fen >= rules.free_delivery_threshold_fen:
        return 0
    return rules.delivery_fee_fen


def coupon_discount(coupon: CouponTerms, goods_fen: int) -> int:
    """The discount a coupon gives on `goods_fen` (0 below its threshold); floored to the fen,
    never more than the goods."""
    if goods_fen <= 0 or goods_fen < coupon.threshold_fen:
        return 0
    if coupon.kind == AMOUNT_OFF:
        discount = coupon.amount_off_fen
    elif coupon.kind == PERCENT_OFF:
        discount = goods_fen * coupon.percent_off // 100
        if coupon.cap_fen > 0:
            discount = min(discount, coupon.cap_fen)
    else:
        return 0
    return max(0, min(discount, goods_fen))


def points_saving(*, balance: int, base_fen: int, max_fen: int, rules: ShopRules) -> tuple[int, int]:
    """(fen off, points used) for `balance` points on `base_fen` of goods after the coupon.

    At most `redeem_max_percent` of `base_fen` and at most `max_fen`; (0, 0) when the
    shop does not redeem points.
    """
    rate = rules.redeem_points_per_yuan
    if rate <= 0 or balance <= 0 or base_fen <= 0:
        return 0, 0
    cap = base_fen * max(0, min(rules.redeem_max_percent, 100)) // 100
    fen = max(0, min(balance * 100 // rate, cap, max_fen))
    return fen, -(-fen * rate // 100)  # the points for `fen`, rounded up


def level_discount(base_fen: int, discount_bp: int) -> int:
    """What a member level of `discount_bp` basis points (200 = 2%) takes off `base_fen` (the
    goods after the coupon): floored to the fen, never negative, never more than the base."""
    if base_fen <= 0 or discount_bp <= 0:
        return 0
    return min(base_fen, base_fen * min(discount_bp, 10_000) // 10_000)


def cart_totals(
    *,
    goods_fen: int,
    discount_fen: int,
    points_balance: int,
    use_points: bool,
    rules: ShopRules,
    level_discount_bp: int = 0,
) -> Totals:
    """The totals of a cart of `goods_fen` with a coupon worth `discount_fen` (see
    `coupon_discount`), a member level of `level_discount_bp` and `points_balance` points,
    used or only offered."""
    goods = max(0, goods_fen)
    delivery = delivery_fee(goods, rules=rules)
    discount = max(0, min(discount_fen, goods, goods + delivery - 1))
    level = max(0, min(level_discount(goods - discount, level_discount_bp), goods - discount + delivery - 1))
    base = goods - discount - level
    offer_fen, offer_used = points_saving(
        balance=points_balance,
        base_fen=base,
        max_fen=base + delivery - 1,
        rules=rules,
    )
    points, used = (offer_fen, offer_used) if use_points else (0, 0)
    return Totals(
        goods_fen=goods,
        discount_fen=discount,
        delivery_fen=delivery,
        points_fen=points,
        points_used=used,
        payable_fen=base + delivery - points,
        points_offer_fen=offer_fen,
        points_offer_used=offer_used,
        level_discount_fen=level,
    )

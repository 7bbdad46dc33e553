"""What the current cart costs: goods, the coupon, the member level, delivery, points, the total.

`quote` always starts from the cart as it is now (today's prices and stock), so what
checkout shows and what `place_order` charges come from the same function. It fetches
(the cart, the coupons held, the points balance, the member level's discount that
`commerce.membership` keeps on the customer), then calculates with the pure
functions of `commerce.cart.calculations` (saleor's fetch/calculate split), where the
points rules are written down.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.cart.calculations import cart_totals
from commerce.cart.calculations import coupon_discount as coupon_discount
from commerce.cart.calculations import points_saving as points_saving
from commerce.cart.cart import CartLineView, get_cart
from commerce.customers.models import Customer
from commerce.errors import ErrorCode, ShopError
from commerce.promotions.models import Coupon, CustomerCoupon, CustomerCouponStatus
from commerce.rules import ShopRules, as_utc, maybe_utc, utcnow

NO_COUPON = -1  # customer_coupon_id meaning "do not apply a coupon"


@dataclass(frozen=True)
class CouponOffer:
    customer_coupon_id: int
    title: str
    discount_fen: int


@dataclass(frozen=True)
class Quote:
    lines: tuple[CartLineView, ...]  # the buyable lines, the ones an order would contain
    goods_fen: int
    discount_fen: int
    delivery_fen: int
    points_fen: int
    payable_fen: int
    coupon: CouponOffer | None
    other_coupons: tuple[CouponOffer, ...]  # the other coupons valid for this cart, best first
    problems: tuple[CartLineView, ...]  # lines that cannot be bought as they are (see `problem`)
    points_used: int = 0  # the points spent for points_fen
    points_balance: int = 0  # the customer's points now
    # what the points could take off (and cost) on this cart, used or not: checkout offers it
    points_offer_fen: int = 0
    points_offer_used: int = 0
    level_discount_fen: int = 0  # the member level's discount, after the coupon
    level_name: str = ""  # the level it is for ("" none)

    @property
    def is_empty(self) -> bool:
        return not self.lines and not self.problems

    @property
    def fingerprint(self) -> str:
        """A short digest of lines, prices and amounts: equal fingerprints, same order."""
        parts = [f"{ln.variant_id}x{ln.quantity}@{ln.unit_price_fen}" for ln in self.lines]
        parts += [f"p:{ln.variant_id}:{ln.problem}" for ln in self.problems]
        coupon = self.coupon.customer_coupon_id if self.coupon else 0
        parts.append(
            f"{self.goods_fen}-{self.discount_fen}+{self.delivery_fen}-{self.points_fen}c{coupon}"
            f"p{self.points_used}l{self.level_discount_fen}"
        )
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def coupon_problem(
    coupon: Coupon, holding: CustomerCoupon, *, goods_fen: int, now: datetime
) -> str | None:
    """Why this held coupon cannot be used on this cart now, or None."""
    if holding.status != CustomerCouponStatus.AVAILABLE.value:
        return "used"
    if not coupon.active:
        return "inactive"
    valid_from, valid_until = maybe_utc(coupon.valid_from), maybe_utc(coupon.valid_until)
    if valid_from is not None and now < valid_from:
        return "not_started"
    if valid_until is not None and now >= valid_until:
        return "expired"
    if goods_fen < coupon.threshold_fen:
        return "below_threshold"
    if coupon_discount(coupon, goods_fen) <= 0:
        return "no_discount"
    return None


async def quote(
    session: AsyncSession,
    *,
    customer_id: int,
    rules: ShopRules,
    customer_coupon_id: int | None = None,
    now: datetime | None = None,
    use_points: bool = False,
) -> Quote:
    """Price the current cart. `customer_coupon_id`: None = best valid coupon, -1 = none.

    `use_points`: take the customer's points off (see the module docstring); the offer
    (`points_offer_fen`, `points_offer_used`) is filled in either way.

    A named coupon that cannot be used raises COUPON_INVALID (details: reason, and
    threshold_fen when the cart is below it).
    """
    now = as_utc(now or utcnow())
    cart = await get_cart(session, customer_id=customer_id)
    lines = cart.buyable_lines
    goods = sum(line.subtotal_fen for line in lines)

    held = (
        await session.execute(
            select(CustomerCoupon, Coupon)
            .join(Coupon, Coupon.id == CustomerCoupon.coupon_id)
            .where(CustomerCoupon.customer_id == customer_id)
            .order_by(CustomerCoupon.id)
            .execution_options(populate_existing=True)
        )
    ).all()
    offers = []
    for holding, coupon in held:
        if coupon_problem(coupon, holding, goods_fen=goods, now=now) is None:
            offer = CouponOffer(holding.id, coupon.title, coupon_discount(coupon, goods))
            expiry = maybe_utc(coupon.valid_until)
            offers.append((-offer.discount_fen, expiry is None, expiry or now, holding.id, offer))
    offers.sort(key=lambda item: item[:4])  # biggest discount, then the one expiring first
    valid = [item[-1] for item in offers]

    chosen: CouponOffer | None
    if customer_coupon_id is None:
        chosen = valid[0] if valid else None
    elif customer_coupon_id == NO_COUPON:
        chosen = None
    else:
        chosen = next((o for o in valid if o.customer_coupon_id == customer_coupon_id), None)
        if chosen is None:
            raise _coupon_error(held, customer_coupon_id, goods_fen=goods, now=now)
    others = tuple(
        o for o in valid if chosen is None or o.customer_coupon_id != chosen.customer_coupon_id
    )

    held_by = (
        await session.execute(
            select(Customer.points_balance, Customer.member_level, Customer.member_discount_bp)
            .where(Customer.id == customer_id)
            .execution_options(populate_existing=True)
        )
    ).first()
    balance, level_name, level_bp = (int(held_by[0] or 0), held_by[1], int(held_by[2] or 0)) if held_by else (0, "", 0)
    totals = cart_totals(
        goods_fen=goods,
        discount_fen=chosen.discount_fen if chosen else 0,
        points_balance=balance,
        use_points=use_points,
        rules=rules,
        level_discount_bp=level_bp,
    )
    return Quote(
        lines=lines,
        goods_fen=totals.goods_fen,
        discount_fen=totals.discount_fen,
        delivery_fen=totals.delivery_fen,
        points_fen=totals.points_fen,
        payable_fen=totals.payable_fen,
        coupon=chosen,
        other_coupons=others,
        problems=cart.problems,
        points_used=totals.points_used,
        points_balance=balance,
        points_offer_fen=totals.points_offer_fen,
        points_offer_used=totals.points_offer_used,
        level_discount_fen=totals.level_discount_fen,
        level_name=level_name if totals.level_discount_fen else "",
    )


def _coupon_error(
    held: Sequence[Row[CustomerCoupon, Coupon]], customer_coupon_id: int, *, goods_fen: int, now: datetime
) -> ShopError:
    for holding, coupon in held:
        if holding.id == customer_coupon_id:
            reason = (
                coupon_problem(coupon, holding, goods_fen=goods_fen, now=now) or "not_applicable"
            )
            return ShopError(
                ErrorCode.COUPON_INVALID,
                reason=reason,
                title=coupon.title,
                threshold_fen=coupon.threshold_fen,
                customer_coupon_id=customer_coupon_id,
            )
    return ShopError(
        ErrorCode.COUPON_INVALID, reason="not_found", customer_coupon_id=customer_coupon_id
    )

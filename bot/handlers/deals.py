"""What the shop takes off now, and how to get it: "有优惠吗", "能便宜点吗", "any discounts?".

One short reply (templates/messages/*/deals.j2), a line for each thing that applies now,
each read by its own capability and each saying how to use it:

- the member discount: a member's level, else what joining gives (「会员」), and the next
  level up that takes more off;
- the coupons held and usable now, the biggest named (checkout applies the best one);
- the flash sales running and coming, the nearest named (「秒杀」);
- the group offer of the product on screen (a product's card), else how many products
  have one (「拼团」);
- top-up plans with a bonus (「充值」);
- free delivery, in the first line.

With none of them, the reply says there is no promotion now and points to 热卖 and 会员.
The personal page ("我的积分", "我的优惠券") stays `bot.handlers.account.me`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.chat.context import Context
from bot.chat.replies import Reply, Text
from bot.dialogs.base import Active
from bot.dialogs.search import SearchData, SearchState
from commerce.balance import topups
from commerce.groupbuys import campaigns as group_campaigns
from commerce.membership import account as membership
from commerce.promotions import coupons, flash_sales
from commerce.promotions.flash_sales import SaleView


async def deals(ctx: Context) -> Reply:
    product_id = await _product_on_card(ctx)
    async with ctx.uow() as uow:
        session, now, rules = uow.session, uow.now, uow.rules
        member = await membership.member_discount(session, customer_id=ctx.customer_id, rules=rules)
        held = await coupons.usable_coupons(session, customer_id=ctx.customer_id, now=now)
        sales = await flash_sales.list_sales(session, now=now, for_customers=True)
        offer = await group_campaigns.offer_for(session, product_id=product_id, now=now) if product_id else None
        on_offer = 0 if offer else await group_campaigns.products_on_offer(session, now=now)
        plans = [p for p in await topups.list_plans(session) if p.bonus_fen > 0]
    level, better = member.level, member.better
    nearest = _nearest(sales, now)
    return Text(
        "deals",
        {
            "is_member": member.member,
            "level_name": level.name if level else "",
            "discount_bp": level.discount_bp if level else 0,
            "next_level": better.name if better else "",
            "next_discount_bp": better.discount_bp if better else 0,
            "to_next_fen": member.to_better_fen,
            "coupons_usable": len(held),
            "coupon": {"title": held[0].coupon.title, "threshold_fen": held[0].coupon.threshold_fen} if held else None,
            "running": sum(1 for s in sales if s.phase(now) == "running"),
            "coming": sum(1 for s in sales if s.phase(now) == "coming"),
            "sale": nearest.data(now) if nearest else None,
            "campaign": _offered(offer) if offer else None,
            "group_products": on_offer,
            "plans": [{"pay_fen": p.pay_fen, "bonus_fen": p.bonus_fen} for p in plans],
            "delivery_fee": rules.delivery_fee_fen,
            "free_threshold": rules.free_delivery_threshold_fen,
        },
    )


async def _product_on_card(ctx: Context) -> int | None:
    """The product whose card is on screen (the search dialog's card), if any."""
    loaded = await ctx.services.dialogs.load(ctx.openid)
    if isinstance(loaded, Active) and loaded.state == SearchState.CARD and isinstance(loaded.data, SearchData):
        return loaded.data.product_id
    return None


def _nearest(sales: list[SaleView], now: datetime) -> SaleView | None:
    """The sale worth naming: one on now with units left, else the next to start, else
    the first (sold out); `sales` come soonest first."""
    return (
        next((s for s in sales if s.phase(now) == "running" and s.left > 0), None)
        or next((s for s in sales if s.phase(now) == "coming"), None)
        or next(iter(sales), None)
    )


def _offered(offer: group_campaigns.CampaignView) -> dict[str, Any]:
    return {
        "product": offer.product_name,
        "spec": offer.spec_label,
        "price": offer.group_price_fen,
        "regular_price": offer.regular_price_fen,
        "size": offer.group_size,
    }

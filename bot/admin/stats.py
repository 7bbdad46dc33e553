"""Stats for staff: today and the last 7 days, and what is running low on stock."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from bot.admin.registry import MANAGERS, REGISTRY, AdminContext, Outcome, UsageError
from bot.chat.replies import Text
from bot.dialogs.common import unit_of_work
from bot.outbound.alerts import openid_tail
from commerce.referrals import referrals
from commerce.reports import stats
from commerce.rules import utcnow

TOP_REFERRERS = 5


def period_data(period: stats.PeriodStats) -> dict[str, Any]:
    return {
        "orders": period.orders,
        "paid_orders": period.paid_orders,
        "gmv": period.gmv_fen,
        "paying": period.paying_customers,
        "carts": period.carts,
        "conversion": f"{period.conversion * 100:.1f}",
        "average": period.average_order_fen,
        "refunds": period.refunds_fen,
        "top": [{"name": name, "quantity": quantity, "revenue": revenue}
                for name, quantity, revenue in period.top_products],
    }


@REGISTRY.command("stats", "统计", "数据", roles=MANAGERS, group="stats")
async def show_stats(actx: AdminContext) -> Outcome:
    """/stats: orders, GMV, paying customers, conversion, average order, top products, low stock."""
    if actx.args:
        raise UsageError
    now = utcnow()
    async with unit_of_work(actx.ctx) as session:
        found = await stats.shop_stats(session, now=now, tz=ZoneInfo(actx.services.config.shop.timezone))
        top_referrers = await referrals.top_referrers(session, limit=TOP_REFERRERS)  # referrals
    return Outcome(Text("admin/stats", {
        "now": now,
        "today": period_data(found.today),
        "week": period_data(found.last_7_days),
        "low_stock": list(found.low_stock),
        "top_referrers": [  # referrals: all time, by commission earned
            {"customer": openid_tail(t.openid), "referrals": t.referrals, "earned_fen": t.earned_fen}
            for t in top_referrers
        ],
    }))

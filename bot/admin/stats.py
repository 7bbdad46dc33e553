"""Stats for staff: today and the last 7 days, and what is running low on stock (`/stats`),
or the days named (`/stats 昨天`, `本周`, `12-01`: `bot.admin.days`); the link to the
dashboard's charts (`/dashboard`, and at the end of `/stats`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.admin.days import Days, parse_days
from bot.admin.registry import MANAGERS, REGISTRY, AdminContext, Outcome, UsageError
from bot.chat.replies import Text
from bot.dialogs.common import unit_of_work
from bot.outbound.alerts import openid_tail
from bot.web.dashboard import dashboard_url
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
    """/stats: orders, GMV, paying customers, conversion, average order, top products, low
    stock, top referrers, and the link to the dashboard. /stats DAYS (今天, 昨天, 本周,
    本月, 12-01…): those figures for those days alone."""
    if len(actx.args) > 1:
        raise UsageError
    now = utcnow()
    tz = ZoneInfo(actx.services.config.shop.timezone)
    if actx.args:
        days = parse_days(actx.arg(0), today=now.astimezone(tz).date())
        if days is None:
            raise UsageError
        return await _days_stats(actx, days, now=now, tz=tz)
    url, expires_at = dashboard_url(actx.services.config, openid=actx.actor, now=now)
    async with unit_of_work(actx.ctx) as session:
        found = await stats.shop_stats(session, now=now, tz=tz)
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
        "dashboard_url": url,
        "dashboard_expires_at": expires_at,
    }))


async def _days_stats(actx: AdminContext, days: Days, *, now: datetime, tz: ZoneInfo) -> Outcome:
    url, expires_at = dashboard_url(actx.services.config, openid=actx.actor, now=now)
    async with unit_of_work(actx.ctx) as session:
        found = await stats.days_stats(session, first=days.first, last=days.last, now=now, tz=tz)
    today = now.astimezone(tz).date()
    return Outcome(Text("admin/stats_days", {
        "span": days.span,
        "start": days.first,
        "end": days.last,
        "now": now,
        "running": days.first <= today <= days.last,  # counted up to now
        "period": period_data(found),
        "dashboard_url": url,
        "dashboard_expires_at": expires_at,
    }), None, {"start": days.first, "end": days.last})


@REGISTRY.command("dashboard", "看板", "数据看板", roles=MANAGERS, group="stats")
async def dashboard(actx: AdminContext) -> Outcome:
    """/dashboard: a link to the charts of the shop's figures (`bot.web.dashboard`), for whoever asked."""
    if actx.args:
        raise UsageError
    url, expires_at = dashboard_url(actx.services.config, openid=actx.actor)
    return Outcome(Text("admin/dashboard_link", {"url": url, "expires_at": expires_at}), None,
                   {"expires_at": expires_at})

"""`GET /dashboard/{token}`: the staff dashboard, charts of the shop's figures behind a sealed link.

Staff send `/dashboard` (or `/stats`, which links here too) in the chat and get a link that
works for LINK_LIFETIME; the page can be reloaded and its range changed as often as wanted
within it (nothing is downloaded, nothing is written). The token (`bot.web.signed_links`,
its own domain label) binds the staff member who asked and the expiry; whoever reads the
link learns neither. Its payload:

    expires_at as unix seconds (4 bytes) | openid (`signed_links.pack_id`)

The page checks the token (404 when cut, 403 when altered or another kind of link), the
expiry (410), and that whoever asked is still staff allowed `/stats` (403). Its range comes
from the query: `?days=7|30|90` (30 by default) ending today in the shop's time zone, or
`?start=YYYY-MM-DD&end=YYYY-MM-DD` (at most `MAX_DAYS` days; a bad range is 400). The
figures (`commerce.analytics.dashboard`, for the range and the period before it) go into
the page as JSON (`templates/pages/dashboard.html`), and `static/dashboard.js` draws them
with ECharts, which the shop serves itself (`static/vendor/echarts/`, never a CDN). A
content security policy lets the page run only those two scripts from this server.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from bot.admin.registry import MANAGERS
from bot.config import Config
from bot.keys import CONFIG, SERVICES
from bot.outbound.alerts import openid_tail
from bot.web import signed_links
from bot.web.product import page_lang, render_page
from bot.web.signed_links import LinkError
from commerce.analytics import dashboard as figures
from commerce.analytics.period import MAX_DAYS, Period

log = logging.getLogger(__name__)

LINK_LIFETIME = timedelta(minutes=30)
DASHBOARD_ROLES = MANAGERS  # those of /stats
PRESETS = (7, 30, 90)
DEFAULT_DAYS = 30
_DOMAIN = b"storefront/dashboard/v1"
_HEAD = struct.Struct(">I")  # expires_at


@dataclass(frozen=True, slots=True)
class DashboardClaim:
    openid: str
    expires_at: datetime


def make_dashboard_token(*, key: bytes, openid: str, expires_at: datetime) -> str:
    if expires_at.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    seconds = int(expires_at.timestamp())
    if not 0 <= seconds < 2**32:
        raise ValueError("expires_at is out of range")
    payload = _HEAD.pack(seconds) + signed_links.pack_id(openid)
    return signed_links.seal(key=key, domain=_DOMAIN, payload=payload)


def read_dashboard_token(*, key: bytes, token: str, now: datetime | None = None) -> DashboardClaim:
    """The claim of a good token; `LinkError` (malformed, bad_signature, expired)."""
    payload = signed_links.unseal(key=key, domain=_DOMAIN, token=token)
    if len(payload) < _HEAD.size:
        raise LinkError("malformed")
    (seconds,) = _HEAD.unpack_from(payload)
    openid, offset = signed_links.unpack_id(payload, _HEAD.size)
    if offset != len(payload):
        raise LinkError("malformed")
    claim = DashboardClaim(openid, datetime.fromtimestamp(seconds, UTC))
    if (now or datetime.now(UTC)) >= claim.expires_at:
        raise LinkError("expired")
    return claim


def dashboard_url(config: Config, *, openid: str, now: datetime | None = None) -> tuple[str, datetime]:
    """The link to the dashboard and when it stops working."""
    expires_at = (now or datetime.now(UTC)) + LINK_LIFETIME
    token = make_dashboard_token(key=config.signing_key, openid=openid, expires_at=expires_at)
    return f"{config.public_base_url}/dashboard/{token}", expires_at


# ---- the page ----------------------------------------------------------------------------------

_MINUTES = int(LINK_LIFETIME.total_seconds() // 60)
REFUSALS: dict[str, tuple[int, str]] = {
    "malformed": (404, "找不到这个数据看板链接，请检查链接是否完整。\nThis dashboard link was not found: check that the whole link was opened."),
    "bad_signature": (403, "这个数据看板链接无效（可能被修改过）。\nThis dashboard link is not valid (it may have been altered)."),
    "expired": (410, f"数据看板链接已过期（{_MINUTES} 分钟内有效），请在对话中重新发送 /dashboard。\nThis dashboard link has expired (links last {_MINUTES} minutes): send /dashboard again in the chat."),
    "not_staff": (403, "您已没有查看数据的权限。\nYou may no longer see the shop's figures."),
    "invalid": (400, f"日期范围无效（最长 {MAX_DAYS} 天，结束不能早于开始，日期如 2026-11-01），请返回修改。\nThe date range is not valid (at most {MAX_DAYS} days, ending after it starts, dates like 2026-11-01): go back and change it."),
}
CSP = "; ".join((
    "default-src 'none'",
    "script-src 'self'",  # the page's own script and ECharts, both from /static
    "style-src 'self' 'unsafe-inline'",  # the page's <style>, and the tooltips ECharts styles inline
    "img-src 'self' data:",  # ECharts' "save as image" and canvas exports
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the token is in the address
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": CSP,
}


def _refuse(reason: str) -> web.Response:
    status, text = REFUSALS[reason]
    return web.Response(status=status, text=text, content_type="text/plain", charset="utf-8", headers=HEADERS)


def period_from_query(query: Any, *, today: date, tz: ZoneInfo) -> tuple[Period, int | None]:
    """The range the query asks for and its preset (None for a custom range); ValueError if bad."""
    if query.get("start") or query.get("end"):
        start, end = date.fromisoformat(query.get("start", "")), date.fromisoformat(query.get("end", ""))
        return Period(start, end, tz), None  # ValueError when end < start or too long
    raw = query.get("days") or str(DEFAULT_DAYS)
    if not raw.isdigit() or int(raw) not in PRESETS:
        raise ValueError("not a preset")
    days = int(raw)
    return Period.last_days(days, today=today, tz=tz), days


def _day(day: Any) -> str:
    return day.isoformat()


def chart_data(board: figures.Dashboard) -> dict[str, Any]:
    """What the page's script draws: the period's figures and the previous period's, in JSON
    (money in fen; shares as fractions; days as ISO dates, the previous period's day by day
    beside this one's)."""

    def one(f: figures.Figures) -> dict[str, Any]:
        return {
            "start": _day(f.period.start),
            "end": _day(f.period.end),
            "days": [_day(d.day) for d in f.days],
            "visitors": [d.visitors for d in f.days],
            "payers": [d.payers for d in f.days],
            "paid_orders": [d.paid_orders for d in f.days],
            "revenue_fen": [d.revenue_fen for d in f.days],
            "average_fen": [d.average_fen for d in f.days],
            "refunds_fen": [d.refunds_fen for d in f.days],
            "totals": {
                "visitors": f.totals.visitors,
                "payers": f.totals.payers,
                "paid_orders": f.totals.paid_orders,
                "revenue_fen": f.totals.revenue_fen,
                "average_fen": f.totals.average_fen,
                "refunds_fen": f.totals.refunds_fen,
            },
            "funnel": [{"step": step, "customers": n} for step, n in f.funnel],
            "retention": [
                {"week": _day(c.week), "customers": c.customers, "returned": list(c.returned)}
                for c in f.retention
            ],
            "provinces": [
                {"province": p.province, "orders": p.orders, "revenue_fen": p.revenue_fen} for p in f.provinces
            ],
            "categories": [
                {"name": c.name, "name_en": c.name_en, "units": c.units, "revenue_fen": c.revenue_fen}
                for c in f.categories
            ],
            "products": [{"name": p.name, "units": p.units, "revenue_fen": p.revenue_fen} for p in f.products],
            "failed_searches": [{"query": q, "count": n} for q, n in f.failed_searches],
            "referrers": [
                {"customer": openid_tail(r.openid), "shares": r.shares, "follows": r.follows, "orders": r.orders}
                for r in f.referrers
            ],
            "groups": {"opened": f.groups.opened, "filled": f.groups.filled, "rate": f.groups.rate},
        }

    return {"current": one(board.current), "previous": one(board.previous)}


async def dashboard_page(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    services = request.app[SERVICES]
    now = datetime.now(UTC)
    try:
        claim = read_dashboard_token(key=config.signing_key, token=request.match_info["token"], now=now)
    except LinkError as exc:
        log.info("dashboard link refused", extra={"reason": exc.reason})
        return _refuse(exc.reason)
    if await services.staff.role(claim.openid) not in DASHBOARD_ROLES:
        log.info("dashboard link refused", extra={"reason": "not_staff"})
        return _refuse("not_staff")
    tz = ZoneInfo(config.shop.timezone)
    today = now.astimezone(tz).date()
    try:
        period, preset = period_from_query(request.query, today=today, tz=tz)
    except ValueError:
        return _refuse("invalid")
    async with services.uow() as uow:
        board = await figures.dashboard(uow.session, period, now=now)
    lang = page_lang(request)
    return render_page(
        request,
        "dashboard.html",
        {
            "data": chart_data(board),
            "period": period,
            "previous": board.previous.period,
            "preset": preset,
            "presets": PRESETS,
            "today": today,
            "max_days": MAX_DAYS,
            "expires_at": claim.expires_at.astimezone(tz).strftime("%H:%M"),
        },
        lang=lang,
        headers=HEADERS,
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/dashboard/{token}", dashboard_page, allow_head=False)

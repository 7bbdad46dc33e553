"""/export: a link to the export page of orders (dates, status, XLSX or CSV) or of the catalog;
`/export 今天` (昨天, 本周, 本月, 12-01…) presets the orders' dates to those days.

The link (`bot.web.export`) downloads once, within 10 minutes, and names (sealed, unreadable
to whoever holds it) the kind, the dates and who asked; the file itself is generated
when the link is opened. The audit row keeps the kind, the dates and the expiry, never
the token (it is a key to customers' data).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.admin.days import parse_date, parse_days
from bot.admin.registry import ALL_ARGS, MANAGERS, REGISTRY, AdminContext, Outcome, UsageError
from bot.chat.replies import Text
from bot.web.export import Kind, export_url
from commerce.errors import ErrorCode, ShopError
from commerce.reports.export import MAX_DAYS

DEFAULT_DAYS = 30
KIND_WORDS: dict[str, Kind] = {"orders": "orders", "订单": "orders", "products": "products", "商品": "products"}


def parse_day(word: str, *, today: date) -> date:
    """2026-11-01 (also 2026/11/01 and 20261101), or 11-01 (the latest not after today)."""
    day = parse_date(word, today=today)
    if day is None:
        raise UsageError
    return day


@REGISTRY.command("export", "导出", roles=MANAGERS, group="stats", commas=ALL_ARGS)
async def export(actx: AdminContext) -> Outcome:
    """/export [orders [START END | DAYS]] | /export DAYS | /export products: the link to the
    export page (the orders' dates there default to START-END, to the days named, 今天,
    本周, 12-01… (`bot.admin.days`), or to the last DEFAULT_DAYS days)."""
    today = datetime.now(ZoneInfo(actx.services.config.shop.timezone)).date()
    args = list(actx.args)
    if args and (days := parse_days(args[0], today=today)) is not None:
        args = ["orders", *args]  # /export 今天: the orders of those days
    kind = KIND_WORDS.get(args[0].lower()) if args else "orders"
    if kind is None:
        raise UsageError
    start = end = None
    if kind == "orders":
        if len(args) <= 1:
            end = today
            start = end - timedelta(days=DEFAULT_DAYS - 1)
        elif len(args) == 2 and (days := parse_days(args[1], today=today)) is not None:
            start, end = days.first, days.last
        elif len(args) != 3:
            raise UsageError
        else:
            start, end = parse_day(args[1], today=today), parse_day(args[2], today=today)
        if end < start or (end - start).days + 1 > MAX_DAYS:
            raise ShopError(ErrorCode.DATE_RANGE_INVALID, start=start.isoformat(), end=end.isoformat(),
                            max_days=MAX_DAYS)
    elif len(args) != 1:
        raise UsageError
    url, expires_at = export_url(actx.services.config, kind=kind, openid=actx.actor, start=start, end=end)
    after = {"kind": kind, "start": start, "end": end, "expires_at": expires_at}
    return Outcome(Text("admin/export_link", {**after, "url": url}), None, after)

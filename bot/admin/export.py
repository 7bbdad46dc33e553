"""/export: a link to the export page of orders (dates, status, XLSX or CSV) or of the catalog.

The link (`bot.web.export`) downloads once, within 10 minutes, and names (sealed, unreadable
to whoever holds it) the kind, the dates and who asked; the file itself is generated
when the link is opened. The audit row keeps the kind, the dates and the expiry, never
the token (it is a key to customers' data).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.admin.registry import ALL_ARGS, MANAGERS, REGISTRY, AdminContext, Outcome, UsageError
from bot.chat.replies import Text
from bot.web.export import Kind, export_url
from commerce.errors import ErrorCode, ShopError
from commerce.reports.export import MAX_DAYS

DEFAULT_DAYS = 30
KIND_WORDS: dict[str, Kind] = {"orders": "orders", "订单": "orders", "products": "products", "商品": "products"}


def parse_day(word: str) -> date:
    """2026-11-01 (also 2026/11/01 and 20261101)."""
    text = word.strip().replace("/", "-")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError from None


@REGISTRY.command("export", "导出", roles=MANAGERS, group="stats", commas=ALL_ARGS)
async def export(actx: AdminContext) -> Outcome:
    """/export [orders [START END]] | /export products: the link to the export page (the
    orders' dates there default to START-END, or the last DEFAULT_DAYS days)."""
    kind = KIND_WORDS.get(actx.arg(0).lower()) if actx.args else "orders"
    if kind is None:
        raise UsageError
    start = end = None
    if kind == "orders":
        if len(actx.args) <= 1:
            end = datetime.now(ZoneInfo(actx.services.config.shop.timezone)).date()
            start = end - timedelta(days=DEFAULT_DAYS - 1)
        elif len(actx.args) != 3:
            raise UsageError
        else:
            start, end = parse_day(actx.arg(1)), parse_day(actx.arg(2))
        if end < start or (end - start).days + 1 > MAX_DAYS:
            raise ShopError(ErrorCode.DATE_RANGE_INVALID, start=start.isoformat(), end=end.isoformat(),
                            max_days=MAX_DAYS)
    elif len(actx.args) != 1:
        raise UsageError
    url, expires_at = export_url(actx.services.config, kind=kind, openid=actx.actor, start=start, end=end)
    after = {"kind": kind, "start": start, "end": end, "expires_at": expires_at}
    return Outcome(Text("admin/export_link", {**after, "url": url}), None, after)

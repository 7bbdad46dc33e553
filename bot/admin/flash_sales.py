"""Flash-sale commands (秒杀): create, list, show, close.

    /flash new SKU_OR_ID PRICE UNITS START DURATION [limit 1] [pay 15]
    /flash list
    /flash show ID
    /flash close ID            (restated, then confirmed)

PRICE is yuan ("9.9"); START is `now`, `+30m` / `+2h` / `+1d`, `20:00` (today in the
shop's time zone, tomorrow once past) or `2026-12-06T20:00`; DURATION is `30m`, `2h`,
`1d` (`30分钟`, `2小时`, `1天`); `limit` the units one customer may take, `pay` the minutes
an unpaid unit is held before it goes back on sale. A new sale is restated first, with
the line customers will see for it (a preview), and made only after `确认` or the code:
it sells below the price, so it is a money change, like closing one.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import datetime, timedelta
from typing import Any

from bot.admin.catalog import parse_yuan
from bot.admin.registry import ALL_ARGS, MANAGERS, REGISTRY, AdminContext, Outcome, UsageError
from bot.chat.replies import Text
from bot.dialogs.common import unit_of_work
from commerce.catalog import admin as catalog_admin
from commerce.errors import ErrorCode, ShopError
from commerce.promotions import flash_sales
from commerce.promotions.flash_sales import SaleView
from commerce.rules import utcnow

ACTIONS = {
    "new": "new", "create": "new", "新建": "new", "创建": "new",
    "list": "list", "列表": "list",
    "show": "show", "查看": "show", "详情": "show",
    "close": "close", "end": "close", "关闭": "close", "结束": "close",
}
OPTIONS = {"limit": "limit", "每人": "limit", "限购": "limit", "pay": "pay", "支付": "pay", "付款": "pay"}
DEFAULT_PAY_MINUTES = 15
_SPAN = re.compile(r"(\d{1,5})\s*(m|min|分|分钟|h|小时|d|天)", re.IGNORECASE)
_UNITS = {"m": 1, "min": 1, "分": 1, "分钟": 1, "h": 60, "小时": 60, "d": 1440, "天": 1440}


def parse_span(word: str) -> timedelta:
    """"30m", "2h", "1d", "2小时" as a length of time; UsageError otherwise."""
    found = _SPAN.fullmatch(word.strip())
    if found is None or int(found.group(1)) == 0:
        raise UsageError
    return timedelta(minutes=int(found.group(1)) * _UNITS[found.group(2).lower()])


def parse_start(word: str, *, now: datetime, timezone: str) -> datetime:
    """When a sale starts: "now"/"现在", "+30m", "20:00" (the next such time in the shop's
    zone), "2026-12-06T20:00" (the shop's zone); UsageError otherwise."""
    word = word.strip()
    if word.lower() in ("now", "现在", "立即"):
        return now
    if word.startswith("+"):
        return now + parse_span(word[1:])
    zone = zoneinfo.ZoneInfo(timezone)
    clock = re.fullmatch(r"(\d{1,2})[:：](\d{2})", word)
    if clock is not None:
        hour, minute = int(clock.group(1)), int(clock.group(2))
        if hour > 23 or minute > 59:
            raise UsageError
        local = now.astimezone(zone).replace(hour=hour, minute=minute, second=0, microsecond=0)
        if local <= now:
            local += timedelta(days=1)
        return local
    try:
        when = datetime.fromisoformat(word.replace("_", "T"))
    except ValueError:
        raise UsageError from None
    return when if when.tzinfo is not None else when.replace(tzinfo=zone)


def parse_options(args: list[str]) -> dict[str, int]:
    if len(args) % 2:
        raise UsageError
    given: dict[str, int] = {}
    for word, value in zip(args[::2], args[1::2], strict=True):
        option = OPTIONS.get(word.lower())
        if option is None or option in given or not (value.isascii() and value.isdigit()) or len(value) > 6:
            raise UsageError
        given[option] = int(value)
    return given


def sale_data(view: SaleView) -> dict[str, Any]:
    return view.data(utcnow())


def _state(view: SaleView) -> dict[str, Any]:
    """What the audit log keeps of a sale."""
    return {
        "id": view.id, "sku": view.sku_code, "price_fen": view.price_fen, "units": view.units,
        "limit": view.per_user_limit, "pay_minutes": view.pay_minutes, "starts_at": view.starts_at.isoformat(),
        "ends_at": view.ends_at.isoformat(), "status": str(view.status), "sold": view.sold, "held": view.held,
    }


def _sale_id(word: str) -> int:
    if not (word.isascii() and word.isdigit()) or not 1 <= int(word) < 2**31:
        raise UsageError
    return int(word)


@REGISTRY.command("flash", "秒杀", roles=MANAGERS, group="flash", confirm=True, commas=ALL_ARGS)
async def flash(actx: AdminContext) -> Outcome:
    action = ACTIONS.get(actx.arg(0).lower())
    if action == "new":
        return await _new(actx)
    if action == "list":
        if len(actx.args) != 1:
            raise UsageError
        async with unit_of_work(actx.ctx) as session:
            views = await flash_sales.list_sales(session, now=utcnow())
        return Outcome(Text("admin/flash_list", {"sales": [sale_data(v) for v in views]}))
    if len(actx.args) != 2:
        raise UsageError
    sale_id = _sale_id(actx.arg(1))
    if action == "show":
        async with unit_of_work(actx.ctx) as session:
            view = await flash_sales.get_sale(session, sale_id=sale_id)
        return Outcome(Text("admin/flash_show", {"sale": sale_data(view)}))
    if action == "close":
        return await _close(actx, sale_id)
    raise UsageError


async def _new(actx: AdminContext) -> Outcome:
    if len(actx.args) < 6:
        raise UsageError
    ref, price_fen = actx.arg(1), parse_yuan(actx.arg(2))
    units_word = actx.arg(3)
    if not (units_word.isascii() and units_word.isdigit()) or len(units_word) > 7:
        raise UsageError
    now = utcnow()
    starts_at = parse_start(actx.arg(4), now=now, timezone=actx.services.config.shop.timezone)
    ends_at = starts_at + parse_span(actx.arg(5))
    options = parse_options(actx.args[6:])
    terms: dict[str, Any] = {
        "price_fen": price_fen, "units": int(units_word), "starts_at": starts_at, "ends_at": ends_at,
        "per_user_limit": options.get("limit", 1), "pay_minutes": options.get("pay", DEFAULT_PAY_MINUTES), "now": now,
    }
    try:
        async with unit_of_work(actx.ctx) as session:
            _product, variant = await catalog_admin.resolve_variant(session, ref=ref)
            if not actx.confirmed:
                preview = await flash_sales.preview_sale(session, variant_id=variant.id, **terms)
                data = {"sale": sale_data(preview), "stock": preview.stock, "preview": True}
                return Outcome(Text("admin/flash_confirm", data), confirm_first=True)
            view = await flash_sales.create_sale(session, variant_id=variant.id, created_by=actx.actor, **terms)
    except ShopError as exc:
        variants = exc.details.get("variants")
        if exc.code == ErrorCode.VARIANT_NOT_FOUND and variants:  # a product of several variants: which SKU
            data = {"id": exc.details.get("product_id"), "name": exc.details.get("name", ""), "variants": variants,
                    "command": "flash new", "value": " ".join(actx.args[2:])}
            return Outcome(Text("admin/choose_sku", data), outcome="failed", after={"error": str(exc.code)})
        raise
    return Outcome(Text("admin/flash_created", {"sale": sale_data(view)}), None, _state(view))


async def _close(actx: AdminContext, sale_id: int) -> Outcome:
    async with unit_of_work(actx.ctx) as session:
        before = await flash_sales.get_sale(session, sale_id=sale_id)
        waiting = await flash_sales.reminders_waiting(session, sale_id=sale_id)
    if not actx.confirmed:
        if before.phase(utcnow()) == "over":
            return Outcome(Text("admin/flash_show", {"sale": sale_data(before)}))
        data = {"sale": sale_data(before), "waiting": waiting}
        return Outcome(Text("admin/flash_close_confirm", data), confirm_first=True)
    async with unit_of_work(actx.ctx) as session:
        after = await flash_sales.close_sale(session, sale_id=sale_id, now=utcnow())
    return Outcome(Text("admin/flash_closed", {"sale": sale_data(after)}), _state(before), _state(after))

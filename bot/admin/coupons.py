"""Coupon commands: define one, issue it to a customer, list them.

    /coupon new CODE off 20 over 100 [days 30] [limit 1] [qty 500] [title ...]
    /coupon new CODE pct 10 [cap 50] [over 0] [days 30] [limit 1] [qty 500] [title ...]
    /coupon issue CODE CUSTOMER
    /coupon list        (also /coupon alone)

Amounts are yuan ("20", "9.9"), read exactly; `title` takes every word after it.
Without a title the code is the title. A code may be Chinese (满50减10, 周末): only staff
type it (`commerce.promotions.coupons.CODE_PATTERN`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.admin.args import customer_openid
from bot.admin.catalog import parse_yuan
from bot.admin.registry import MANAGERS, REGISTRY, AdminContext, Outcome, UsageError
from bot.chat.replies import Text
from bot.dialogs.common import unit_of_work
from bot.outbound.alerts import openid_tail
from commerce.promotions import coupons
from commerce.promotions.coupons import CouponView
from commerce.promotions.models import CouponKind
from commerce.rules import utcnow

LIST_LIMIT = 15
MAX_DAYS = 3650
ACTIONS = {
    "new": "new", "create": "new", "新建": "new", "创建": "new",
    "issue": "issue", "give": "issue", "发放": "issue", "发": "issue",
    "list": "list", "列表": "list",
}
# the words of /coupon new, zh and en, and what each sets
OPTIONS = {
    "off": "off", "减": "off",
    "pct": "pct", "percent": "pct", "百分比": "pct",
    "cap": "cap", "封顶": "cap",
    "over": "over", "满": "over",
    "days": "days", "天": "days", "天数": "days",
    "limit": "limit", "每人": "limit",
    "qty": "qty", "数量": "qty", "总量": "qty",
    "title": "title", "标题": "title",
}


def coupon_data(view: CouponView) -> dict[str, Any]:
    expired = view.valid_until is not None and view.valid_until <= utcnow()
    return {
        "code": view.code,
        "title": view.title,
        "kind": str(view.kind),
        "off": view.amount_off_fen,
        "pct": view.percent_off,
        "cap": view.cap_fen,
        "over": view.threshold_fen,
        "until": view.valid_until,
        "limit": view.per_user_limit,
        "qty": view.total_quantity,
        "issued": view.issued_count,
        "active": view.active,
        "expired": expired,
    }


def _whole(word: str, *, low: int, high: int) -> int:
    if not (word.isascii() and word.isdigit()) or not low <= int(word) <= high:
        raise UsageError
    return int(word)


def parse_new(args: list[str]) -> dict[str, Any]:
    """The keyword arguments of `commerce.promotions.coupons.create_coupon` from the words after the code."""
    given: dict[str, Any] = {}
    index = 0
    while index < len(args):
        option = OPTIONS.get(args[index].lower())
        if option is None or option in given:
            raise UsageError
        if option == "title":
            given["title"] = " ".join(args[index + 1 :])
            if not given["title"]:
                raise UsageError
            break
        if index + 1 >= len(args):
            raise UsageError
        value = args[index + 1]
        if option in ("off", "cap", "over"):
            given[option] = parse_yuan(value)
        elif option == "pct":
            given[option] = _whole(value, low=0, high=100)  # the core names the range (1-99)
        elif option == "days":
            given[option] = _whole(value, low=1, high=MAX_DAYS)
        else:
            given[option] = _whole(value, low=0, high=10**9)
        index += 2
    if ("off" in given) == ("pct" in given) or ("cap" in given and "off" in given):
        raise UsageError
    now = utcnow()
    fields: dict[str, Any] = {
        "kind": CouponKind.AMOUNT_OFF if "off" in given else CouponKind.PERCENT_OFF,
        "amount_off_fen": given.get("off", 0),
        "percent_off": given.get("pct", 0),
        "cap_fen": given.get("cap", 0),
        "threshold_fen": given.get("over", 0),
        "valid_from": now,
        "valid_until": now + timedelta(days=given["days"]) if "days" in given else None,
        "per_user_limit": given.get("limit", 1),
        "total_quantity": given.get("qty"),
    }
    if "title" in given:
        fields["title"] = given["title"]
    return fields


@REGISTRY.command("coupon", "优惠券", "券", roles=MANAGERS, group="coupons", commas=3)
async def coupon(actx: AdminContext) -> Outcome:
    action = ACTIONS.get(actx.arg(0).lower()) if actx.args else "list"
    if action == "new":
        code = actx.arg(1)
        fields = parse_new(actx.args[2:])
        fields.setdefault("title", code.upper())
        async with unit_of_work(actx.ctx) as session:
            view, (before, after) = await coupons.create_coupon(session, code=code, **fields)
        return Outcome(Text("admin/coupon_created", {"coupon": coupon_data(view)}), before, after)
    if action == "issue":
        if len(actx.args) != 3:
            raise UsageError
        code, openid = actx.arg(1), await customer_openid(actx, actx.arg(2))
        async with unit_of_work(actx.ctx) as session:
            view, (before, after) = await coupons.issue_coupon(session, code=code, openid=openid)
        held = after["held"] if after else 0
        return Outcome(Text("admin/coupon_issued", {"coupon": coupon_data(view), "customer": openid_tail(openid), "held": held}),
                       before, after)
    if action == "list":
        if len(actx.args) > 1:
            raise UsageError
        async with unit_of_work(actx.ctx) as session:
            views = await coupons.list_coupons(session, active_only=False)
        return Outcome(Text("admin/coupon_list", {
            "coupons": [coupon_data(v) for v in views[:LIST_LIMIT]],
            "more": max(0, len(views) - LIST_LIMIT),
        }))
    raise UsageError

"""Group-buy commands: campaigns (create, list, close) and the groups themselves.

    /campaign new SKU_OR_ID GROUP_PRICE SIZE [hours 24] [limit 1] [days 7] [quota 100]
    /campaign list
    /campaign close ID
    /groups [open|filled|failed|closed|forming]
    /group CODE
    /group CODE extend HOURS
    /group CODE close            (restated, then confirmed: paid members are refunded)

Prices are yuan ("19.9"). `hours` is each group's own time limit (the shop's default
without it), `days` the campaign's window from now, `limit` the groups one customer
may be in, `quota` the units the campaign may sell at all.

Service staff may look (/groups, /group CODE); changes need an owner or operator.
`/group` is one command for every role, so a look stays open to service while its
`extend` and `close` check the role themselves (and are audited as refused).
Closing refunds the paid members at once through the payment service, the same path
the scheduler's `expire_group_buys` takes, found by state: a refund it already
started is not started again.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.admin.catalog import parse_yuan, which_variant
from bot.admin.registry import (
    ALL_ARGS,
    ALL_ROLES,
    MANAGERS,
    REGISTRY,
    AdminContext,
    Outcome,
    UsageError,
)
from bot.chat.replies import Text
from bot.dialogs.common import unit_of_work
from bot.outbound.alerts import openid_tail
from bot.wechat.scenes import CODE_MAX, CODE_MIN
from commerce.catalog import admin as catalog_admin
from commerce.errors import ErrorCode, ShopError
from commerce.groupbuys import campaigns as group_campaigns
from commerce.groupbuys import deadlines as group_deadlines
from commerce.groupbuys import groups as group_buys
from commerce.groupbuys.campaigns import CampaignView
from commerce.groupbuys.groups import GroupView
from commerce.groupbuys.models import GroupMemberStatus, GroupStatus
from commerce.rules import utcnow

LIST_LIMIT = 15
MAX_DAYS = 365
DEFAULT_DAYS = 7
CAMPAIGN_ACTIONS = {
    "new": "new",
    "create": "new",
    "新建": "new",
    "创建": "new",
    "list": "list",
    "列表": "list",
    "close": "close",
    "end": "close",
    "关闭": "close",
    "结束": "close",
}
CAMPAIGN_OPTIONS = {
    "hours": "hours",
    "小时": "hours",
    "时限": "hours",
    "limit": "limit",
    "每人": "limit",
    "days": "days",
    "天": "days",
    "天数": "days",
    "quota": "quota",
    "总量": "quota",
    "数量": "quota",
}
GROUP_ACTIONS = {"extend": "extend", "延长": "extend", "close": "close", "关闭": "close"}
STATUS_WORDS: dict[str, GroupStatus] = {
    "open": GroupStatus.OPEN,
    "进行中": GroupStatus.OPEN,
    "拼团中": GroupStatus.OPEN,
    "filled": GroupStatus.FILLED,
    "成团": GroupStatus.FILLED,
    "已成团": GroupStatus.FILLED,
    "failed": GroupStatus.FAILED,
    "失败": GroupStatus.FAILED,
    "未成团": GroupStatus.FAILED,
    "closed": GroupStatus.CLOSED,
    "关闭": GroupStatus.CLOSED,
    "已关闭": GroupStatus.CLOSED,
    "forming": GroupStatus.FORMING,
    "待付款": GroupStatus.FORMING,
}
CLOSE_REASON = "staff"


# ---- view data ------------------------------------------------------------------------------


def campaign_data(view: CampaignView) -> dict[str, Any]:
    return {
        "id": view.id,
        "product": view.product_name,
        "spec": view.spec_label,
        "sku": view.sku_code,
        "price": view.group_price_fen,
        "regular_price": view.regular_price_fen,
        "size": view.group_size,
        "hours": view.time_limit_minutes // 60,
        "minutes": view.time_limit_minutes % 60,
        "limit": view.per_user_limit,
        "quota": view.stock_quota,
        "used": view.quota_used,
        "ends_at": view.ends_at,
        "active": view.is_active(utcnow()),
        "status": str(view.status),
    }


def group_row(group: GroupView) -> dict[str, Any]:
    return {
        **group.data(utcnow()),
        "leader": next((openid_tail(m.openid) for m in group.members if m.is_leader), ""),
    }


def group_detail(group: GroupView) -> dict[str, Any]:
    return {
        **group_row(group),
        "close_reason": group.close_reason,
        "members": [
            {"who": openid_tail(m.openid), "leader": m.is_leader, "status": str(m.status)}
            for m in group.members
        ],
    }


def _state(group: GroupView) -> dict[str, Any]:
    """What the audit log keeps of a group before and after a staff action."""
    return {
        "code": group.code,
        "status": str(group.status),
        "paid_count": group.paid_count,
        "seats_taken": group.seats_taken,
        "deadline": group.deadline.isoformat() if group.deadline else None,
    }


def _whole(word: str, *, low: int, high: int) -> int:
    if not (word.isascii() and word.isdigit()) or not low <= int(word) <= high:
        raise UsageError
    return int(word)


def parse_campaign_options(args: list[str]) -> dict[str, int]:
    """{"hours": 24, "days": 7, ...} from "hours 24 days 7" (each at most once)."""
    if len(args) % 2:
        raise UsageError
    given: dict[str, int] = {}
    for word, value in zip(args[::2], args[1::2], strict=True):
        option = CAMPAIGN_OPTIONS.get(word.lower())
        if option is None or option in given:
            raise UsageError
        high = MAX_DAYS if option == "days" else 10**6
        given[option] = _whole(value, low=1, high=high)
    return given


# ---- campaigns --------------------------------------------------------------------------------


@REGISTRY.command("campaign", "拼团活动", roles=MANAGERS, group="group_buys", commas=ALL_ARGS)
async def campaign(actx: AdminContext) -> Outcome:
    action = CAMPAIGN_ACTIONS.get(actx.arg(0).lower())
    if action == "new":
        return await _new_campaign(actx)
    if action == "list":
        if len(actx.args) != 1:
            raise UsageError
        async with unit_of_work(actx.ctx) as session:
            views = await group_campaigns.list_campaigns(session, now=utcnow(), limit=LIST_LIMIT)
        return Outcome(
            Text("admin/campaign_list", {"campaigns": [campaign_data(v) for v in views]})
        )
    if action == "close":
        if len(actx.args) != 2:
            raise UsageError
        campaign_id = _whole(actx.arg(1), low=1, high=2**31 - 1)
        async with unit_of_work(actx.ctx) as session:
            before = await group_campaigns.get_campaign(session, campaign_id=campaign_id)
            after = await group_campaigns.close_campaign(session, campaign_id=campaign_id)
        return Outcome(
            Text("admin/campaign_closed", {"campaign": campaign_data(after)}),
            {"id": before.id, "status": str(before.status)},
            {"id": after.id, "status": str(after.status)},
        )
    raise UsageError


async def _new_campaign(actx: AdminContext) -> Outcome:
    """/campaign new REF PRICE SIZE [options]: active from now for `days` (7 by default)."""
    if len(actx.args) < 4:
        raise UsageError
    ref, price_fen = actx.arg(1), parse_yuan(actx.arg(2))
    size = _whole(actx.arg(3), low=0, high=10**6)  # the core names the range
    options = parse_campaign_options(actx.args[4:])
    now = utcnow()
    try:
        async with unit_of_work(actx.ctx) as session:
            _product, variant = await catalog_admin.resolve_variant(session, ref=ref)
            view = await group_campaigns.create_campaign(
                session,
                variant_id=variant.id,
                group_price_fen=price_fen,
                group_size=size,
                starts_at=now,
                ends_at=now + timedelta(days=options.get("days", DEFAULT_DAYS)),
                rules=actx.services.rules,
                time_limit=timedelta(hours=options["hours"]) if "hours" in options else None,
                per_user_limit=options.get("limit", 1),
                stock_quota=options.get("quota"),
                created_by=actx.actor,
            )
    except ShopError as exc:
        return which_variant(exc, actx)
    after = {k: v for k, v in campaign_data(view).items() if k != "ends_at"}
    return Outcome(Text("admin/campaign_created", {"campaign": campaign_data(view)}), None, after)


# ---- groups -------------------------------------------------------------------------------------


@REGISTRY.command("groups", "拼团列表", "团", roles=ALL_ROLES, group="group_buys", commas=ALL_ARGS)
async def list_groups(actx: AdminContext) -> Outcome:
    """/groups [status]: newest first; open ones by default."""
    if len(actx.args) > 1:
        raise UsageError
    status = GroupStatus.OPEN
    if actx.args:
        found = STATUS_WORDS.get(actx.arg(0).lower())
        if found is None:
            raise UsageError
        status = found
    async with unit_of_work(actx.ctx) as session:
        groups = await group_buys.list_groups(session, statuses=[status], limit=LIST_LIMIT)
    data = {"status": str(status), "groups": [group_row(g) for g in groups]}
    return Outcome(Text("admin/groups", data))


@REGISTRY.command("group", "拼团", roles=ALL_ROLES, group="group_buys", confirm=True, commas=ALL_ARGS)
async def group(actx: AdminContext) -> Outcome:
    """/group CODE [extend HOURS | close]"""
    if not 1 <= len(actx.args) <= 3:
        raise UsageError
    code = group_buys.normalise_code(actx.arg(0))
    if not CODE_MIN <= len(code) <= CODE_MAX:  # not a code (nor 10 KB of one echoed back)
        raise UsageError
    if len(actx.args) == 1:
        async with unit_of_work(actx.ctx) as session:
            view = await group_buys.get_group(session, code=code)
        return Outcome(Text("admin/group", group_detail(view)))
    action = GROUP_ACTIONS.get(actx.arg(1).lower())
    if action is None or (action == "extend") != (len(actx.args) == 3):
        raise UsageError
    if actx.role not in MANAGERS:
        return Outcome(
            Text("admin/not_allowed", {"command": f"group {action}", "role": str(actx.role)}),
            outcome="refused",
        )
    if action == "extend":
        return await _extend(actx, code, _whole(actx.arg(2), low=0, high=10**6))
    return await _close(actx, code)


async def _extend(actx: AdminContext, code: str, hours: int) -> Outcome:
    async with unit_of_work(actx.ctx) as session:
        before = await group_buys.get_group(session, code=code)
        after = await group_deadlines.extend_group(session, code=code, hours=hours, now=utcnow())
    data = {**group_row(after), "hours": hours}
    return Outcome(Text("admin/group_extended", data), _state(before), _state(after))


async def _close(actx: AdminContext, code: str) -> Outcome:
    """Restated first (who paid, how much goes back); confirmed, the group closes, its unpaid
    seats are cancelled and every paid seat is refunded through the payment service."""
    async with unit_of_work(actx.ctx) as session:
        before = await group_buys.get_group(session, code=code)
    if before.status not in (GroupStatus.FORMING, GroupStatus.OPEN):
        raise ShopError(ErrorCode.GROUP_CLOSED, group_code=before.code, status=str(before.status))
    paid = [m for m in before.members if m.status == GroupMemberStatus.PAID]
    if not actx.confirmed:
        data = {
            **group_detail(before),
            "paid": len(paid),
            "refund_total": len(paid) * before.price_fen,
        }
        return Outcome(Text("admin/group_close_confirm", data), confirm_first=True)
    async with unit_of_work(actx.ctx) as session:
        after = await group_deadlines.close_group(
            session, code=code, reason=CLOSE_REASON, now=utcnow()
        )
    refunds = await group_deadlines.refund_ended_groups(
        actx.ctx.uow,
        refund=actx.services.payments.refund,
        now=utcnow(),
        group_id=after.id,
        actor=f"staff:{actx.actor}",
    )
    data = {**group_row(after), "refunds": refunds, "owed": len(paid) - refunds}
    return Outcome(
        Text("admin/group_closed", data), _state(before), _state(after) | {"refunds": refunds}
    )

"""Commands every staff member has: help, alerts on/off; and the owners' audit log."""

from __future__ import annotations

from bot.admin.registry import (
    ALL_ARGS,
    ALL_ROLES,
    OWNERS,
    REGISTRY,
    AdminContext,
    Outcome,
    UsageError,
)
from bot.chat.replies import Text
from bot.dialogs.common import unit_of_work
from commerce.staff import audit, staff

GROUP_ORDER = (
    "general", "service", "catalog", "orders", "after_sales", "group_buys", "flash", "referrals", "balance", "reviews",
    "coupons", "members", "stats", "broadcast", "staff",
)


GROUP_WORDS = {
    "general": ("general", "通用"), "service": ("service", "inbox", "客服"), "catalog": ("catalog", "商品"), "orders": ("orders", "订单"),
    "after_sales": ("aftersales", "售后"), "coupons": ("coupons", "优惠券"), "stats": ("stats", "数据"),
    "broadcast": ("broadcast", "群发"), "staff": ("staff", "员工"),
    "group_buys": ("groupbuys", "拼团"), "flash": ("flash", "秒杀"), "referrals": ("referrals", "推荐", "分销"),
    "reviews": ("reviews", "评价"), "balance": ("balance", "余额", "储值"),
    "members": ("members", "levels", "会员", "等级"),
}


@REGISTRY.command("help", "帮助", "命令", roles=ALL_ROLES, group="general")
async def help_(actx: AdminContext) -> Outcome:
    """/help: the caller's commands by group; /help GROUP or /help COMMAND: their usage lines,
    and one command alone (`/help coupon`, a group of one) its every form, as a wrong
    `/coupon` shows it.

    Usage lines for everything would not fit WeChat's 2 KB text reply, hence two levels.
    """
    mine = sorted(
        REGISTRY.for_role(actx.role),
        key=lambda c: (GROUP_ORDER.index(c.group) if c.group in GROUP_ORDER else 99, c.name),
    )
    if not actx.args:
        groups: dict[str, list[dict[str, str]]] = {}
        for c in mine:
            groups.setdefault(c.group, []).append({"name": c.name, "alias": c.aliases[0] if c.aliases else ""})
        overview = [{"group": g, "commands": cmds} for g, cmds in groups.items()]
        return Outcome(Text("admin/help", {"role": str(actx.role), "groups": overview}))
    word = actx.arg(0).lower().lstrip("/／")
    group = next((g for g, words in GROUP_WORDS.items() if word in words or word == g), None)
    if group is not None:
        names = [c.name for c in mine if c.group == group]
    else:
        command = REGISTRY.find(word)
        names = [command.name] if command is not None and command in mine else []
    if not names:
        raise UsageError
    return Outcome(Text("admin/usage", {"commands": names, "wrong": False, "full": len(names) == 1}))


@REGISTRY.command("mute", "静音", roles=ALL_ROLES, group="general")
async def mute(actx: AdminContext) -> Outcome:
    return await _set_muted(actx, True)


@REGISTRY.command("unmute", "取消静音", roles=ALL_ROLES, group="general")
async def unmute(actx: AdminContext) -> Outcome:
    return await _set_muted(actx, False)


async def _set_muted(actx: AdminContext, muted: bool) -> Outcome:
    async with unit_of_work(actx.ctx) as session:
        before, after = await staff.set_alerts_muted(
            session, openid=actx.actor, muted=muted, owners=actx.services.staff.owners
        )
    return Outcome(Text("admin/muted", {"muted": muted}), before, after)


@REGISTRY.command("audit", "审计", "日志", roles=OWNERS, group="staff", commas=ALL_ARGS)
async def show_audit(actx: AdminContext) -> Outcome:
    limit = 10
    if actx.args:
        if not actx.args[0].isdigit() or not 1 <= int(actx.args[0]) <= 50:
            raise UsageError
        limit = int(actx.args[0])
    async with unit_of_work(actx.ctx) as session:
        entries = await audit.latest(session, limit=limit)
    rows = [
        {
            "when": e.created_at, "actor": e.actor[-6:], "role": e.role, "command": e.command,
            "args": " ".join(str(a) for a in (e.args or []))[:40] if isinstance(e.args, list) else str(e.args)[:40],
            "outcome": e.outcome,
        }
        for e in entries
    ]
    return Outcome(Text("admin/audit", {"entries": rows}))

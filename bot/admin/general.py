"""Commands every staff member has: help, alerts on/off; and the owners' audit log."""

from __future__ import annotations

from bot.admin.registry import ALL_ROLES, OWNERS, REGISTRY, AdminContext, Outcome, UsageError
from bot.dialogs.common import unit_of_work
from bot.replies import Text
from commerce import audit, staff

GROUP_ORDER = ("general", "catalog", "orders", "after_sales", "coupons", "stats", "broadcast", "staff")


@REGISTRY.command("help", "帮助", "命令", roles=ALL_ROLES, group="general")
async def help_(actx: AdminContext) -> Outcome:
    commands = sorted(
        REGISTRY.for_role(actx.role),
        key=lambda c: (GROUP_ORDER.index(c.group) if c.group in GROUP_ORDER else 99, c.name),
    )
    return Outcome(Text("admin/help", {"role": str(actx.role), "commands": [c.name for c in commands]}))


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


@REGISTRY.command("audit", "审计", "日志", roles=OWNERS, group="staff")
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

"""Member levels: list them, set or remove one (a discount is money: restated, then confirmed).

    /level list
    /level set NAME THRESHOLD DISCOUNT     e.g. /level set 金卡 2000 5  (¥2000 spent, 5% off)
    /level del NAME                        its members fall to the level below (the last stays)

THRESHOLD is yuan spent (paid minus refunded), DISCOUNT a percentage with at most two
decimals ("5", "2.5", "2.5%"). A new name adds a level, a known one changes it; every
member's level is worked out again in the same transaction (`commerce.membership.levels`).
"""

from __future__ import annotations

import re
from typing import Any

from bot.admin.catalog import parse_yuan
from bot.admin.registry import ALL_ARGS, MANAGERS, REGISTRY, AdminContext, Outcome, UsageError
from bot.chat.replies import Text
from bot.dialogs.common import unit_of_work
from commerce.membership import levels
from commerce.rules import MemberLevel

ACTIONS = {
    "list": "list", "列表": "list", "set": "set", "设置": "set", "修改": "set",
    "del": "del", "delete": "del", "remove": "del", "删除": "del", "删": "del",
}
PERCENT = re.compile(r"^(\d{1,2})(?:\.(\d{1,2}))?%?$")


def parse_percent(word: str) -> int:
    """Basis points from a percentage typed by staff: "5" → 500, "2.5%" → 250, "0.05" → 5."""
    found = PERCENT.match(word.strip().replace("％", "%"))
    if found is None:
        raise UsageError
    whole, decimals = found.group(1), (found.group(2) or "").ljust(2, "0")
    return int(whole) * 100 + int(decimals)


def level_data(level: MemberLevel) -> dict[str, Any]:
    return {"name": level.name, "threshold_fen": level.threshold_fen, "discount_bp": level.discount_bp}


@REGISTRY.command("level", "等级", "会员等级", roles=MANAGERS, group="members", confirm=True, commas=ALL_ARGS)
async def level(actx: AdminContext) -> Outcome:
    action = ACTIONS.get(actx.arg(0).lower())
    rules = actx.services.rules
    if action == "list":
        if len(actx.args) != 1:
            raise UsageError
        async with unit_of_work(actx.ctx) as session:
            now_in_force = await levels.current_levels(session, rules)
        return Outcome(Text("admin/level_list", {"levels": [level_data(lv) for lv in now_in_force]}))
    if action == "del":
        return await _remove(actx)
    if action != "set" or len(actx.args) != 4:
        raise UsageError
    wanted = levels.check_level(actx.arg(1), parse_yuan(actx.arg(2)), parse_percent(actx.arg(3)))
    async with unit_of_work(actx.ctx) as session:
        if not actx.confirmed:
            known = {lv.name: lv for lv in await levels.current_levels(session, rules)}
            before = known.get(wanted.name)
            data = {"level": level_data(wanted), "before": level_data(before) if before else None}
            return Outcome(Text("admin/level_confirm", data), confirm_first=True)
        change = await levels.set_level(
            session, name=wanted.name, threshold_fen=wanted.threshold_fen, discount_bp=wanted.discount_bp, rules=rules
        )
    return Outcome(
        Text("admin/level_set", {
            "level": level_data(change.after), "levels": [level_data(lv) for lv in change.levels],
            "moved": change.members_moved,
        }),
        level_data(change.before) if change.before else None,
        level_data(change.after),
    )


async def _remove(actx: AdminContext) -> Outcome:
    """/level del NAME: restated with who it concerns, then confirmed."""
    if len(actx.args) != 2:
        raise UsageError
    rules = actx.services.rules
    async with unit_of_work(actx.ctx) as session:
        if not actx.confirmed:  # refused now, in words, rather than after the code
            doomed, members = await levels.removable(session, name=actx.arg(1), rules=rules)
            data = {"level": level_data(doomed), "members": members}
            return Outcome(Text("admin/level_remove_confirm", data), confirm_first=True)
        removal = await levels.remove_level(session, name=actx.arg(1), rules=rules)
    return Outcome(
        Text("admin/level_removed", {
            "level": level_data(removal.removed), "levels": [level_data(lv) for lv in removal.levels],
            "moved": removal.members_moved,
        }),
        level_data(removal.removed),
        None,
    )

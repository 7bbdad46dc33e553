"""Owners manage staff from the chat: list, add, remove (confirmed), change role, invite."""

from __future__ import annotations

from datetime import timedelta

from bot.admin.args import customer_openid
from bot.admin.registry import OWNERS, REGISTRY, AdminContext, Outcome, UsageError
from bot.chat.replies import Text
from bot.dialogs.common import unit_of_work
from commerce.staff import staff
from commerce.staff.models import StaffRole

ROLE_WORDS = {
    "owner": StaffRole.OWNER, "店主": StaffRole.OWNER,
    "operator": StaffRole.OPERATOR, "运营": StaffRole.OPERATOR,
    "service": StaffRole.SERVICE, "客服": StaffRole.SERVICE,
}


def _role(word: str) -> StaffRole:
    role = ROLE_WORDS.get(word.lower())
    if role is None:
        raise UsageError
    return role


@REGISTRY.command("staff", "员工", roles=OWNERS, group="staff", confirm=True, commas=3)
async def staff_command(actx: AdminContext) -> Outcome:
    """/staff list | add OPENID ROLE | remove OPENID | role OPENID ROLE | invite ROLE"""
    action = actx.arg(0).lower()
    owners = actx.services.staff.owners
    if action in ("list", "列表"):
        async with unit_of_work(actx.ctx) as session:
            members = await staff.list_staff(session, owners=owners)
        rows = [{"openid": m.openid, "role": str(m.role), "name": m.name, "muted": m.alerts_muted,
                 "from_config": m.from_config} for m in members]
        return Outcome(Text("admin/staff_list", {"members": rows}))
    if action in ("remove", "删除", "移除"):
        openid = await customer_openid(actx, actx.arg(1))
        if len(actx.args) != 2:
            raise UsageError
        if not actx.confirmed:
            return Outcome(Text("admin/staff_remove_confirm", {"openid": openid}), confirm_first=True)
        async with unit_of_work(actx.ctx) as session:
            before, after = await staff.remove_staff(session, openid=openid, owners=owners)
        actx.services.staff.forget(openid)
        return Outcome(Text("admin/staff_removed", {"openid": openid}), before, after)
    if action in ("add", "添加"):
        openid, role = await customer_openid(actx, actx.arg(1)), _role(actx.arg(2))
        name = " ".join(actx.args[3:])[:32]
        async with unit_of_work(actx.ctx) as session:
            member, (before, after) = await staff.add_staff(
                session, openid=openid, role=role, added_by=actx.actor, name=name
            )
        actx.services.staff.forget(openid)
        return Outcome(Text("admin/staff_added", {"openid": member.openid, "role": str(member.role)}), before, after)
    if action in ("role", "角色"):
        openid, role = await customer_openid(actx, actx.arg(1)), _role(actx.arg(2))
        async with unit_of_work(actx.ctx) as session:
            before, after = await staff.change_role(session, openid=openid, role=role, owners=owners)
        actx.services.staff.forget(openid)
        return Outcome(Text("admin/staff_role_changed", {"openid": openid, "role": str(role)}), before, after)
    if action in ("invite", "邀请"):
        role = _role(actx.arg(1))
        async with unit_of_work(actx.ctx) as session:
            invite = await staff.create_invite(session, role=role, created_by=actx.actor, ttl=timedelta(hours=24))
        return Outcome(
            Text("admin/staff_invite", {"code": invite.code, "role": str(role), "expires_at": invite.expires_at}),
            None, {"invite_role": str(role), "expires_at": invite.expires_at.isoformat()},
        )
    raise UsageError

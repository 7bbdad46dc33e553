"""/backup: an owner's one-time link to a backup of the whole shop (`bot.web.backup`).

The backup itself is made when the link's file is opened; the audit row keeps the link's
expiry, never its token (it is a key to every customer's data).
"""

from __future__ import annotations

from bot.admin.registry import OWNERS, REGISTRY, AdminContext, Outcome, UsageError
from bot.chat.replies import Text
from bot.web.backup import backup_url


@REGISTRY.command("backup", "备份", roles=OWNERS, group="stats")
async def backup(actx: AdminContext) -> Outcome:
    """/backup"""
    if actx.args:
        raise UsageError
    url, expires_at = backup_url(actx.services.config, openid=actx.actor)
    return Outcome(Text("admin/backup_link", {"url": url, "expires_at": expires_at}), None, {"expires_at": expires_at})

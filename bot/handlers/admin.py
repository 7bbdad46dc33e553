"""Staff commands: "/..." from staff runs a command; from anyone else it is just a search.

A stranger who types "/stats" gets search results, exactly like any other text, so
nothing reveals that commands exist; the attempt is still written to the audit log.
Every command run (and every refusal of a role that may not run it) is audited.
"""

from __future__ import annotations

import logging
import re
import secrets
from typing import Any

from bot.admin import groups as _groups  # noqa: F401  (registers the commands)
from bot.admin import registry as admin_registry
from bot.admin.registry import REGISTRY, AdminContext, Outcome, UsageError, split_command, usage
from bot.chat.context import Context
from bot.chat.keywords import normalize
from bot.chat.replies import Reply, Text
from bot.chat.router import Router
from bot.dialogs.common import error_reply, unit_of_work
from bot.dialogs.confirm import ConfirmData
from commerce.errors import ShopError
from commerce.staff import audit, staff

log = logging.getLogger(__name__)
router = Router()

JOIN_WORDS = ("join", "加入")


def is_command(ctx: Context) -> dict[str, tuple[str, list[str]]] | None:
    """A "/word args..." text: the handler gets `command`, the word and its arguments."""
    found = split_command(ctx.msg.text) if ctx.msg.kind == "text" else None
    return None if found is None else {"command": found}


async def _audit(
    ctx: Context, *, command: str, args: list[str], outcome: str, before: Any = None, after: Any = None
) -> None:
    async with unit_of_work(ctx) as session:
        await audit.record(
            session, actor=ctx.openid, role=str(ctx.staff_role or ""), command=command[:32], args=args[:20],
            outcome=outcome, before=before, after=after,
        )


@router.route(is_command)
async def admin_command(ctx: Context, command: tuple[str, list[str]]) -> Reply | None:
    word, args = command
    if ctx.staff_role is None:
        if word.lower() in JOIN_WORDS and args:
            return await _join(ctx, args[0])
        await _audit(ctx, command=word, args=args, outcome="refused")
        return None  # treated as ordinary text: a search
    found = REGISTRY.find(word)
    if found is None:
        return Text("admin/unknown", {"word": word[:20]})
    if ctx.staff_role not in found.roles:
        await _audit(ctx, command=found.name, args=args, outcome="refused")
        return Text("admin/not_allowed", {"command": found.name, "role": str(ctx.staff_role)})
    actx = AdminContext(ctx, ctx.staff_role, found, found.arguments(args))
    return await _run(actx)


# What staff ask in words, without a "/": a few questions answered by the read-only
# command that answers them ("今天卖了多少" is /stats). Nothing that changes the shop is
# ever run from words; a customer saying the same is searched as before.
STAFF_WORDS: tuple[tuple[re.Pattern[str], str, tuple[str, ...]], ...] = (
    (re.compile(
        r"今天(?:卖了|卖得|销售|营业|成交|生意)|(?:今日|今天的?)(?:数据|销售额?|营业额|成交额?|业绩|统计)|卖了多少|营业额|销售额"
        r"|成交额|生意怎么样|^(?:看看?|查一?下)?(?:数据|统计|业绩)$|\bhow (?:are|were) (?:the )?sales\b|\bsales today\b"
    ), "stats", ()),
    (re.compile(
        r"^(?:有|还有)?(?:新的?|待发货的?|要发货的?|没发货的?|未发货的?)订单(?:吗|么|没有?|呢)?$|(?:哪些|什么|有没有)(?:订单)?(?:要|待|没|还没)发货"
        r"|^(?:有|还有)(?:要|待)发(?:货)?的(?:吗|没有?)?$|\b(?:any )?new orders?\b|\borders? to ship\b"
    ), "orders", ("待发货",)),
    (re.compile(
        r"^(?:有|还有)(?:新的?)?(?:退款|退货|售后)(?:申请)?(?:吗|么|没有?|要处理)?$|(?:待处理|要处理)的?(?:退款|退货|售后)"
        r"|\b(?:refund|return|after-sales) requests?\b"
    ), "aftersales", ()),
    (re.compile(
        r"^(?:有|还有)(?:人|顾客|客人|客户)(?:找|问|留言|咨询)(?:我|我们)?(?:吗|么|没有?)?$|客服消息|^(?:有|还有)(?:新)?消息吗?$"
        r"|\bany(?:one| customers?) waiting\b"
    ), "inbox", ()),
    (re.compile(
        r"库存(?:不够|不足|低|少|快没)|^(?:看看?|查一?下|查查)?库存(?:情况|怎么样)?$|(?:哪些|什么)(?:快)?(?:卖完|没货|缺货)|缺货的|\blow (?:on )?stock\b|\bwhat(?:'s| is) running low\b"
    ), "stock", ()),
)
STAFF_WORDS_MAX = 30  # characters: a longer text is something else (a note, an address, a paste)


def staff_words(ctx: Context) -> dict[str, tuple[str, list[str]]] | None:
    """A staff member's question in words (`STAFF_WORDS`): the command that answers it."""
    if ctx.staff_role is None or ctx.msg.kind != "text" or len(ctx.msg.text) > STAFF_WORDS_MAX:
        return None
    text = normalize(ctx.msg.text)
    for pattern, word, args in STAFF_WORDS:
        if pattern.search(text):
            return {"command": (word, list(args))}
    return None


@router.route(staff_words)
async def staff_question(ctx: Context, command: tuple[str, list[str]]) -> Reply | None:
    """"今天卖了多少", "有新订单吗", "库存不够的有哪些": answered as /stats, /orders 待发货,
    /stock would answer them (audited and role-checked the same way)."""
    return await admin_command(ctx, command)


async def _run(actx: AdminContext) -> Reply:
    ctx, command = actx.ctx, actx.command
    try:
        result = await command.handler(actx)
    except UsageError:
        return usage(command)
    except ShopError as exc:
        await _audit(ctx, command=command.name, args=actx.args, outcome="failed", after={"error": str(exc.code)})
        return error_reply(exc)
    if result.confirm_first and command.confirm and not actx.confirmed:
        code = f"{secrets.randbelow(10_000):04d}"
        reply = result.reply
        assert isinstance(reply, Text), "a confirmation restates the action as text"
        reply = Text(reply.template, {**reply.data, "confirm_code": code}, reply.notices)
        return await ctx.services.dialogs.confirm.ask(ctx, command=command.name, args=actx.args, code=code, reply=reply)
    await _audit(ctx, command=command.name, args=actx.args, outcome=result.outcome,
                 before=result.before, after=result.after)
    return result.reply


async def run_confirmed(ctx: Context, data: ConfirmData, *, outcome: str) -> Reply:
    """The second step of a confirmed command: act, or record that it was called off."""
    command = REGISTRY.commands.get(data.command)
    if command is None or ctx.staff_role is None or ctx.staff_role not in command.roles:
        return Text("admin/confirm_aborted", {"command": data.command, "why": "role"})
    if outcome != "ok":
        await _audit(ctx, command=command.name, args=data.args, outcome=outcome)
        return Text("admin/confirm_aborted", {"command": command.name, "why": outcome})
    actx = AdminContext(ctx, ctx.staff_role, command, data.args, confirmed=True)
    return await _run(actx)


async def run_beside_confirmation(ctx: Context) -> Reply | None:
    """A staff command typed while another waits for its confirmation: it runs (None when
    the message is no command, or the sender no staff)."""
    found = is_command(ctx)
    if found is None or ctx.staff_role is None:
        return None
    return await admin_command(ctx, found["command"])


async def _join(ctx: Context, code: str) -> Reply | None:
    """A new staff member sends the one-time invite code an owner gave them."""
    async with unit_of_work(ctx) as session:
        joined = await staff.redeem_invite(session, code=code.upper(), openid=ctx.openid)
        await audit.record(
            session, actor=ctx.openid, role=str(joined.role) if joined else "", command="join",
            args=["***"], outcome="ok" if joined else "refused",
        )
    if joined is None:
        return None  # a wrong code says nothing: it is just text
    ctx.services.staff.forget(ctx.openid)
    return Text("admin/joined", {"role": str(joined.role)})


def outcome_text(template: str, **data: object) -> Outcome:
    return Outcome(Text(template, dict(data)))


__all__ = ["admin_command", "admin_registry", "outcome_text", "router", "run_beside_confirmation", "run_confirmed"]

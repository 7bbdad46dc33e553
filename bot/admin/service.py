"""The service inbox: the customers who asked for a person, answered from the chat.

    /inbox            the open tickets, the one waiting longest first
    /inbox N          ticket N: the context it opened with and its conversation
    /reply N TEXT     TEXT to ticket N's customer, as a customer-service message (within
                      WeChat's 48-hour window: staff are told plainly when it is closed)
    /close N          end ticket N; the customer is told and shops again

Every role may run them (the service role is for this). The customer's messages on an
open ticket reach the staff member who answered it first (everyone on duty before).
"""

from __future__ import annotations

from typing import Any

from bot.admin.registry import (
    ALL_ARGS,
    ALL_ROLES,
    PREFIXES,
    REGISTRY,
    AdminContext,
    Outcome,
    UsageError,
)
from bot.chat.replies import Text
from bot.dialogs.common import unit_of_work
from bot.outbound.alerts import openid_tail
from commerce.customers import handoffs
from commerce.customers.handoffs import Ticket
from commerce.rules import utcnow

LIST_SIZE = 20
SHOWN_LINES = 12
MAX_REPLY_CHARS = 600  # WeChat cuts a text at 2048 bytes


def ticket_id(word: str) -> int:
    word = word.strip().lstrip("#")
    if not (word.isascii() and word.isdigit()) or not 0 < int(word) < 2**31:
        raise UsageError
    return int(word)


def ticket_data(ticket: Ticket) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "customer": openid_tail(ticket.openid),
        "status": ticket.status,
        "opened_at": ticket.created_at,
        "last_activity_at": ticket.last_activity_at,
        "held": bool(ticket.assignee),
        "lines": ticket.lines,
        "last_text": ticket.last_text,
        "message": str(ticket.context.get("message", "")),
    }


def reply_text(actx: AdminContext) -> str:
    """What follows "/reply N" as typed, line breaks included (the parsed arguments lose them)."""
    text = actx.ctx.msg.text.strip()
    if text.startswith(PREFIXES):
        text = text[1:]
    parts = text.split(maxsplit=2)
    return parts[2].strip() if len(parts) == 3 else ""


@REGISTRY.command("inbox", "客服会话", roles=ALL_ROLES, group="service", commas=ALL_ARGS)
async def inbox(actx: AdminContext) -> Outcome:
    """/inbox: the open tickets; /inbox N: one ticket with its conversation."""
    if len(actx.args) > 1:
        raise UsageError
    async with unit_of_work(actx.ctx) as session:
        if not actx.args:
            found = await handoffs.list_open(session, limit=LIST_SIZE)
            return Outcome(Text("admin/inbox", {"tickets": [ticket_data(t) for t in found]}))
        ticket = await handoffs.get_ticket(session, ticket_id=ticket_id(actx.arg(0)))
        lines = await handoffs.lines_of(session, ticket_id=ticket.id, limit=SHOWN_LINES)
    before = [
        {"speaker": line.get("from", ""), "text": line.get("text", "")}
        for line in list(ticket.context.get("recent") or [])[-6:]
    ]
    data = {
        **ticket_data(ticket),
        "before": before,
        "said": [{"at": line.at, "speaker": line.speaker, "text": line.text} for line in lines],
    }
    return Outcome(Text("admin/ticket", data))


@REGISTRY.command("reply", "回复", roles=ALL_ROLES, group="service")
async def reply(actx: AdminContext) -> Outcome:
    """/reply N TEXT: sent to the customer within WeChat's window; the ticket is kept open."""
    number = ticket_id(actx.arg(0))
    text = reply_text(actx)
    if not 1 <= len(text) <= MAX_REPLY_CHARS:
        raise UsageError
    async with unit_of_work(actx.ctx) as session:
        wechat = actx.services.config.wechat
        ticket = await handoffs.staff_reply(
            session, ticket_id=number, staff_openid=actx.actor, text=text, now=utcnow(),
            limit=wechat.window_messages, paid_limit=wechat.window_messages_after_payment,
        )
    return Outcome(
        Text("admin/ticket_replied", {"id": ticket.id, "customer": openid_tail(ticket.openid)}),
        None, {"ticket": ticket.id, "chars": len(text)},
    )


@REGISTRY.command("close", "结束会话", roles=ALL_ROLES, group="service", commas=ALL_ARGS)
async def close(actx: AdminContext) -> Outcome:
    """/close N: the ticket ends; the customer is told and shops again."""
    if len(actx.args) != 1:
        raise UsageError
    number = ticket_id(actx.arg(0))
    async with unit_of_work(actx.ctx) as session:
        ticket = await handoffs.close(session, ticket_id=number, by=handoffs.BY_STAFF, now=utcnow())
    return Outcome(
        Text("admin/ticket_closed", {"id": ticket.id, "customer": openid_tail(ticket.openid)}),
        {"ticket": ticket.id, "status": "open"}, {"ticket": ticket.id, "status": "closed"},
    )

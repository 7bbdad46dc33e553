"""A customer with a person: their messages go to the staff who hold their service ticket.

```mermaid
stateDiagram-v2
    [*] --> WITH_STAFF: "客服" / "人工" / a complaint: a ticket is opened (or the open one found), staff alerted
    WITH_STAFF --> WITH_STAFF: anything said: kept on the ticket, forwarded to staff, no reply
    WITH_STAFF --> [*]: "结束人工" / "继续购物": the ticket closes, the customer shops again
    WITH_STAFF --> [*]: the ticket was closed (/close N, idle): the message is answered as usual
```
The ticket in the database (`commerce.customers.handoffs`) is the truth; this dialog only
saves a database read on every other customer's message. So it lives long (`ttl_seconds`:
staff may answer hours later), and each message checks the ticket: one closed by staff or
for idleness lets the message through to the shop. Staff commands typed by a staff member
with a ticket of their own go through too. The customer is told once, when the ticket
opens, that a person will answer and how to go back to shopping.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from bot.admin.registry import PREFIXES
from bot.chat.context import Context
from bot.chat.keywords import normalize
from bot.chat.replies import Reply, Silence, Text
from bot.chat.transcript import said, tidy
from bot.dialogs.base import Dialog, Step, on
from commerce.customers import handoffs

# the words that end a ticket from the customer's side (compared whole, normalised)
END_WORDS = frozenset(
    normalize(word)
    for word in (
        "结束人工", "结束客服", "退出人工", "退出客服", "继续购物", "返回购物", "不用人工了",
        "end service", "stop service", "back to shop", "back to shopping", "continue shopping",
    )
)


# the same said in other words: "我不要人工了", "不用客服了", "结束会话", "退出人工服务"
END_SAID = re.compile(
    r"^(?:我)?(?:不要|不用|不需要)(?:了)?(?:人工|客服)(?:了)?(?:服务)?(?:了)?$|^(?:结束|退出|关闭)(?:人工|客服)?(?:服务|会话|对话)$"
    r"|^(?:我)?(?:要)?(?:回去|继续)(?:购物|买东西|逛逛)$"
)


class ServiceState(enum.StrEnum):
    WITH_STAFF = "with_staff"


@dataclass(slots=True)
class ServiceData:
    ticket_id: int = 0


class ServiceDialog(Dialog[ServiceState, ServiceData]):
    name = "service"
    State = ServiceState
    Data = ServiceData
    version = 1
    exclusive = True  # what the customer says goes to the person, not to search
    ttl_seconds = 7 * 24 * 3600  # the ticket decides when it ends (idle: service.idle_minutes)
    initial = frozenset({ServiceState.WITH_STAFF})
    transitions = {ServiceState.WITH_STAFF: frozenset({ServiceState.WITH_STAFF})}

    async def open(self, ctx: Context) -> Reply:
        """Open a ticket (or find the open one) with the cart, the last order and what was said
        before; staff on duty are alerted in the ticket's transaction."""
        recent = [line.record() for line in await ctx.services.transcripts.recent(ctx.openid)]
        async with ctx.uow() as uow:
            ticket = await handoffs.record_handoff(
                uow.session, customer_id=ctx.customer_id, message=ctx.msg.text, recent=recent, now=uow.now
            )
            if not ticket.already_open:
                await ctx.services.alerts.handoff(uow.session, ticket)
        hours = ctx.services.config.shop.service_hours
        reply = Text("service_opened", {"ticket": ticket.id, "already": ticket.already_open, "hours": hours})
        return await ctx.services.dialogs.start(ctx, self, Step(reply, ServiceState.WITH_STAFF, ServiceData(ticket.id)))

    def expects(self, ctx: Context) -> bool:
        return False

    @on(ServiceState.WITH_STAFF)
    async def with_staff(self, ctx: Context, data: ServiceData) -> Step[ServiceState, ServiceData] | None:
        text = said(ctx.msg)
        if ctx.msg.kind == "event" or text is None or not text.strip():
            return None  # a follow, a menu link...: answered as usual, the ticket stays open
        if ctx.staff_role is not None and ctx.msg.kind == "text" and ctx.msg.text.lstrip().startswith(PREFIXES):
            return None  # a staff member's own command
        ending = ctx.msg.kind == "text" and (
            normalize(ctx.msg.text) in END_WORDS or bool(END_SAID.search(normalize(ctx.msg.text)))
        )
        async with ctx.uow() as uow:
            if ending:
                ticket = await handoffs.customer_closed(uow.session, ticket_id=data.ticket_id, now=uow.now)
                if ticket is not None:
                    await ctx.services.alerts.ticket_message(uow.session, ticket, text=tidy(text), closed=True)
            else:
                ticket = await handoffs.customer_said(
                    uow.session, ticket_id=data.ticket_id, text=tidy(text), now=uow.now, idle=ctx.services.rules.service_idle
                )
                if ticket is not None:
                    await ctx.services.alerts.ticket_message(uow.session, ticket, text=tidy(text))
        if ending:
            return Step(Text("service_ended"))
        if ticket is None:  # closed by staff or for idleness: back to the shop, this message included
            await ctx.services.dialogs.store.delete(ctx.openid)
            return None
        return Step(Silence(), ServiceState.WITH_STAFF, data)

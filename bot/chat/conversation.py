"""One turn of the conversation: which dialog is open, what to answer.

`Conversation` is the last step of the middleware chain (bot.chat.middleware): by
then the turn knows the customer and their staff role. Order of precedence: the
routes that work everywhere (events, menu clicks, help, cancel…), then the open
dialog, then the fallback (any other text is a search).
"""

from __future__ import annotations

import logging

from bot.chat.context import Context
from bot.chat.middleware import Answer, Next, Turn, opens_window
from bot.chat.replies import Notice, Reply, Text, with_notice
from bot.chat.router import Routed, Router
from bot.dialogs.base import Active, Expired
from bot.dialogs.store import one_turn
from bot.services import Services
from commerce.analytics import events
from commerce.db import must_run_again
from commerce.messaging.inbound import TakenOver

log = logging.getLogger(__name__)


class Conversation:
    def __init__(self, services: Services, *, routes: Router, fallback: Router) -> None:
        self.services = services
        self.routes = routes
        self.fallback = fallback

    async def __call__(self, turn: Turn, call_next: Next) -> Answer:
        """The route step: answers, never calls on."""
        ctx = Context(
            msg=turn.msg,
            services=self.services,
            locale=turn.locale,
            customer_id=turn.customer_id,
            staff_role=turn.staff_role,
            turn_uow=turn.uow,
        )
        try:
            with one_turn():  # the dialog store is read once per key in this turn
                routed = await self._route(ctx)
        except Exception as exc:
            if must_run_again(exc):  # not the handler's fault: the turn runs again (middleware.retry_when_busy)
                raise
            log.exception("handler failed", extra={"kind": turn.msg.kind, "event": turn.msg.event})
            if not isinstance(exc, TakenOver):  # taken over: the worker that took it counts it
                self._count(ctx, answered=False)
            return Answer(Text("error"), turn.locale)
        self._count(ctx, answered=True)
        return Answer(routed.reply, routed.said_in or turn.locale, said_in=routed.said_in)

    def _count(self, ctx: Context, *, answered: bool) -> None:
        """Analytics: the customer's message (a message, or a tap: events that open WeChat's
        window), and what the route recorded when it answered. Once per turn that ran here:
        a retry of the message never runs one, a message taken over after its changes were
        committed is answered before this step (`bot.wechat.intake.fence`)."""
        counted = [events.message(ctx.customer_id)] if opens_window(ctx.msg) else []
        self.services.events.add([*counted, *ctx.events] if answered else counted)

    async def _route(self, ctx: Context) -> Routed:
        loaded = await self.services.dialogs.load(ctx.openid)
        notice = None
        if isinstance(loaded, Expired):
            await self.services.dialogs.end(ctx.openid)
            if loaded.dialog.expects(ctx):
                return Routed(Text("dialog_expired", {"dialog": loaded.dialog.name}))
            notice = Notice("dialog_expired", {"dialog": loaded.dialog.name})
        routed = None
        if isinstance(loaded, Active) and loaded.dialog.exclusive:
            routed = _routed(await self.services.dialogs.advance(ctx, loaded))
        if routed is None:
            routed = await self.routes.dispatch(ctx)
        if routed is None and isinstance(loaded, Active) and not loaded.dialog.exclusive:
            routed = _routed(await self.services.dialogs.advance(ctx, loaded))
        if routed is None:
            routed = await self.fallback.dispatch(ctx)
        if routed is None:
            routed = Routed(Text("unsupported", {"kind": ctx.msg.kind}))
        if notice:
            routed = Routed(with_notice(routed.reply, notice), routed.said_in)
        return routed


def _routed(reply: Reply | None) -> Routed | None:
    return None if reply is None else Routed(reply)

"""One turn of the conversation: who is talking, which dialog is open, what to answer.

Order of precedence: the routes that work everywhere (events, menu clicks, help,
cancel…), then the open dialog, then the fallback (any other text is a search).
"""

from __future__ import annotations

import logging

from bot.chat.context import Context
from bot.chat.replies import Notice, Reply, Text, with_notice
from bot.chat.router import Router
from bot.dialogs.base import Active, Expired
from bot.services import Services
from bot.wechat.protocol import Inbound

log = logging.getLogger(__name__)


# Events by which the customer opens WeChat's 48-hour customer-service window (besides
# every message they send); VIEW, LOCATION reports, TEMPLATESENDJOBFINISH... do not.
WINDOW_EVENTS = frozenset({"subscribe", "scan", "click", "scancode_push", "scancode_waitmsg"})


def opens_window(msg: Inbound) -> bool:
    return msg.kind != "event" or msg.event in WINDOW_EVENTS


class Conversation:
    def __init__(self, services: Services, *, routes: Router, fallback: Router) -> None:
        self.services = services
        self.routes = routes
        self.fallback = fallback

    async def respond(self, msg: Inbound) -> tuple[Reply, str]:
        """The reply to one message, and the locale to say it in."""
        services = self.services
        customer = await services.customers.touch(msg.openid, messaged=opens_window(msg))
        ctx = Context(
            msg=msg,
            services=services,
            locale=customer.locale or services.config.shop.locale,
            customer_id=customer.id,
            # a downgraded (unsigned plaintext) request never acts as staff: anyone could forge it
            staff_role=None if msg.downgraded else await services.staff.role(msg.openid),
        )
        try:
            reply = await self._route(ctx)
        except Exception:
            log.exception("handler failed", extra={"kind": msg.kind, "event": msg.event})
            return Text("error"), ctx.locale
        keyword_locale = ctx.extras.get("keyword_locale")
        if keyword_locale and keyword_locale != customer.locale:
            await services.customers.touch(msg.openid, locale=keyword_locale)
        return reply, keyword_locale or ctx.locale

    async def _route(self, ctx: Context) -> Reply:
        loaded = await self.services.dialogs.load(ctx.openid)
        notice = None
        if isinstance(loaded, Expired):
            await self.services.dialogs.end(ctx.openid)
            if loaded.dialog.expects(ctx):
                return Text("dialog_expired", {"dialog": loaded.dialog.name})
            notice = Notice("dialog_expired", {"dialog": loaded.dialog.name})
        reply = None
        if isinstance(loaded, Active) and loaded.dialog.exclusive:
            reply = await self.services.dialogs.advance(ctx, loaded)
        if reply is None:
            reply = await self.routes.dispatch(ctx)
        if reply is None and isinstance(loaded, Active) and not loaded.dialog.exclusive:
            reply = await self.services.dialogs.advance(ctx, loaded)
        if reply is None:
            reply = await self.fallback.dispatch(ctx)
        if reply is None:
            reply = Text("unsupported", {"kind": ctx.msg.kind})
        if notice:
            reply = with_notice(reply, notice)
        return reply

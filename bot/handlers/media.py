"""Images, voice without recognition, locations, links and unknown message types."""

from __future__ import annotations

from bot.chat.context import Context
from bot.chat.replies import Reply, Text
from bot.chat.router import MsgType, Router

router = Router()
fallback = Router()


@router.route(MsgType("location"))
async def location(ctx: Context) -> Reply:
    label = str(ctx.msg.fields.get("Label") or "")[:100]
    return Text("location_received", {"label": label})


@fallback.route()
async def unsupported(ctx: Context) -> Reply:
    """Anything without a better answer: a polite note and how to search instead."""
    return Text("unsupported", {"kind": ctx.msg.kind})

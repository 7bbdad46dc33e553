"""Images, voice without recognition, locations, links and unknown message types."""

from __future__ import annotations

from bot.chat.context import Context
from bot.chat.replies import Reply, Text
from bot.chat.router import MsgType, Router, staff_only

router = Router()
fallback = Router()


@router.route(MsgType("location"))
async def location(ctx: Context) -> Reply:
    label = str(ctx.msg.fields.get("Label") or "")[:100]
    return Text("location_received", {"label": label})


@fallback.route(MsgType("image"), staff_only)
async def staff_image(ctx: Context) -> Reply:
    """A picture from staff outside a /photo step (bot/dialogs/photo.py): how to give it to a
    product, not the customers' "thanks for the picture"."""
    return Text("admin/photo_hint")


@fallback.route()
async def unsupported(ctx: Context) -> Reply:
    """Anything without a better answer: a polite note and how to search instead."""
    return Text("unsupported", {"kind": ctx.msg.kind})

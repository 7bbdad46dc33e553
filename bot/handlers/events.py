"""Events: follow / unfollow, QR scans, menu clicks and the events that need no answer."""

from __future__ import annotations

import re

from bot.context import Context
from bot.replies import Reply, Silence, Text
from bot.router import Event, MenuKey, MsgType, Router
from commerce import outbox

router = Router()

# Custom-menu keys (pushed by a later `storefront menu push`): see config.example.toml.
MENU_HOT = "HOT"
MENU_CATEGORIES = "CATEGORIES"
MENU_HELP = "HELP"
MENU_CATEGORY_PREFIX = "CATEGORY_"


@router.route(Event("subscribe"))
async def subscribe(ctx: Context) -> Reply:
    await ctx.services.customers.touch(ctx.openid, subscribed=True)
    return Text("welcome", {"scene": ctx.msg.scene})


@router.route(Event("unsubscribe"))
async def unsubscribe(ctx: Context) -> Reply:
    await ctx.services.customers.touch(ctx.openid, subscribed=False)
    await ctx.services.dialogs.end(ctx.openid)
    return Silence()  # WeChat delivers nothing to someone who just left


@router.route(Event("scan"))
async def scan(ctx: Context) -> Reply:
    return Text("welcome_back", {"scene": ctx.msg.scene})


@router.route(MenuKey(MENU_HOT))
async def menu_hot(ctx: Context) -> Reply:
    return await ctx.services.dialogs.get("search").hot(ctx)


@router.route(MenuKey(MENU_CATEGORIES))
async def menu_categories(ctx: Context) -> Reply:
    return await ctx.services.dialogs.get("search").categories(ctx)


@router.route(MenuKey(MENU_HELP))
async def menu_help(ctx: Context) -> Reply:
    return Text("help")


@router.route(MenuKey(prefix=MENU_CATEGORY_PREFIX))
async def menu_category(ctx: Context) -> Reply:
    found = re.fullmatch(r"\d{1,9}", ctx.msg.event_key.removeprefix(MENU_CATEGORY_PREFIX))
    if not found:
        return Text("category_missing")
    return await ctx.services.dialogs.get("search").category(ctx, int(found.group()))


@router.route(Event("click"))
async def unknown_click(ctx: Context) -> Reply:
    return Text("help")


@router.route(Event("templatesendjobfinish"))
async def template_delivered(ctx: Context) -> Reply:
    """WeChat's report on a template message we sent: MsgID + Status go on its outbox row."""
    msgid = ctx.msg.fields.get("MsgID") or ctx.msg.fields.get("MsgId") or ""
    if msgid.isdigit():
        async with ctx.services.sessions() as session, session.begin():
            await outbox.record_delivery(session, msgid=int(msgid), status=ctx.msg.fields.get("Status", ""))
    return Silence()


@router.route(MsgType("event"))
async def quiet_event(ctx: Context) -> Reply:
    """VIEW, LOCATION reports and unknown events need no answer."""
    return Silence()

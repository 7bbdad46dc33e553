"""Events: follow / unfollow, QR scans, menu clicks and the events that need no answer."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from bot.chat.context import Context
from bot.chat.replies import News, Notice, Reply, Silence, Text, with_notice
from bot.chat.router import Event, MenuKey, MsgType, Router
from bot.handlers import account  # referrals: the follow welcome
from bot.wechat import scenes
from bot.wechat.scenes import GroupInvite, ProductShare
from commerce.messaging import outbox

router = Router()

# Custom-menu keys (`storefront menu push`, menu.example.toml): each click answers as the
# word it stands for would.
MENU_HOT = "HOT"
MENU_CATEGORIES = "CATEGORIES"
MENU_HELP = "HELP"
MENU_CATEGORY_PREFIX = "CATEGORY_"
MENU_CART = "CART"
MENU_ORDERS = "ORDERS"
MENU_GROUP = "GROUP"
MENU_ME = "ME"
MENU_INVITE = "INVITE"
MENU_KEYS = (MENU_HOT, MENU_CATEGORIES, MENU_HELP, MENU_CART, MENU_ORDERS, MENU_GROUP, MENU_ME, MENU_INVITE)
"""The keys a menu click is answered for; `CATEGORY_<id>` too. Others get the help text."""


@router.route(Event("subscribe"))
async def subscribe(ctx: Context) -> Reply:
    """A follow, maybe through a parametric QR code (`ctx.msg.scene`, qrscene_ stripped).

    Through a product-share code the reply is that product's card with the welcome
    as its first line: a passive reply is one message and a news reply cannot carry
    a text, so the card wins and the welcome is kept to a line (the full welcome is
    one "帮助" away). Anything else gets the normal welcome.
    """
    await ctx.services.customers.touch(ctx.openid, subscribed=True)
    # referrals: a new follower through a referral QR is bound; the welcome coupon (bot/handlers/account.py)
    told = await account.welcome(ctx, scenes.parse(ctx.msg.scene) if ctx.msg.scene else None)
    return await _scene_reply(ctx, welcome="welcome", told=told)


@router.route(Event("unsubscribe"))
async def unsubscribe(ctx: Context) -> Reply:
    await ctx.services.customers.touch(ctx.openid, subscribed=False)
    await ctx.services.dialogs.end(ctx.openid)
    return Silence()  # WeChat delivers nothing to someone who just left


@router.route(Event("scan"))
async def scan(ctx: Context) -> Reply:
    """A follower scanned a parametric QR code: the same routing, a "welcome back"."""
    return await _scene_reply(ctx, welcome="welcome_back")


async def _scene_reply(ctx: Context, *, welcome: str, told: dict[str, Any] | None = None) -> Reply:
    """`told`: what the follow's welcome did (bound to a referrer, the coupon given)."""
    scene = scenes.parse(ctx.msg.scene) if ctx.msg.scene else None
    greeting = Text(welcome, {"scene": ctx.msg.scene, "welcome": told or {}})
    if isinstance(scene, ProductShare):
        reply = await ctx.services.dialogs.search.open_product(ctx, scene.product_id)
        if reply is None:  # missing or off sale since the code was made
            return Text(welcome, greeting.data, (Notice("scene_product_gone"),))
        if welcome == "welcome" and isinstance(reply, News):
            first, *rest = reply.cards
            reply = News((replace(first, data={**first.data, "welcome": True}), *rest))
        return reply
    if isinstance(scene, GroupInvite):  # --- group buys: the group's card, the welcome as a notice ---
        reply = await ctx.services.dialogs.group.open_card(ctx, scene.group_code)
        return with_notice(reply, Notice(welcome, greeting.data)) if welcome == "welcome" else reply
    # referrals (a ReferralInvite): a follow through it bound the follower already
    # (account.welcome), and the greeting says so; a scan by a follower binds nobody: just
    # the welcome back
    return greeting


@router.route(MenuKey(MENU_HOT))
async def menu_hot(ctx: Context) -> Reply:
    return await ctx.services.dialogs.search.hot(ctx)


@router.route(MenuKey(MENU_CATEGORIES))
async def menu_categories(ctx: Context) -> Reply:
    return await ctx.services.dialogs.search.categories(ctx)


@router.route(MenuKey(MENU_HELP))
async def menu_help(ctx: Context) -> Reply:
    return Text("help")


@router.route(MenuKey(MENU_CART))
async def menu_cart(ctx: Context) -> Reply:
    return await ctx.services.dialogs.cart.show(ctx)


@router.route(MenuKey(MENU_ORDERS))
async def menu_orders(ctx: Context) -> Reply:
    return await ctx.services.dialogs.orders.show(ctx)


@router.route(MenuKey(MENU_GROUP))
async def menu_group(ctx: Context) -> Reply:
    return await ctx.services.dialogs.group.show(ctx, product_id=None)


@router.route(MenuKey(MENU_ME))
async def menu_me(ctx: Context) -> Reply | None:
    return await account.me(ctx)


@router.route(MenuKey(MENU_INVITE))
async def menu_invite(ctx: Context) -> Reply | None:
    return await account.invite(ctx)


@router.route(MenuKey(prefix=MENU_CATEGORY_PREFIX))
async def menu_category(ctx: Context) -> Reply:
    found = re.fullmatch(r"\d{1,9}", ctx.msg.event_key.removeprefix(MENU_CATEGORY_PREFIX))
    if not found:
        return Text("category_missing")
    return await ctx.services.dialogs.search.category(ctx, int(found.group()))


@router.route(Event("click"))
async def unknown_click(ctx: Context) -> Reply:
    return Text("help")


@router.route(Event("templatesendjobfinish"))
async def template_delivered(ctx: Context) -> Reply:
    """WeChat's report on a template message we sent: MsgID + Status go on its outbox row,
    and a row whose send went unanswered (uncertain) is thereby known to be sent."""
    msgid = ctx.msg.fields.get("MsgID") or ctx.msg.fields.get("MsgId") or ""
    # ASCII digits a BIGINT holds: "²".isdigit() is true and 20 nines overflow the column
    if re.fullmatch(r"[0-9]{1,18}", msgid):
        async with ctx.uow() as uow:
            await outbox.template_finished(
                uow.session, openid=ctx.openid, msgid=int(msgid), status=ctx.msg.fields.get("Status", ""), now=uow.now
            )
    return Silence()


@router.route(MsgType("event"))
async def quiet_event(ctx: Context) -> Reply:
    """VIEW, LOCATION reports and unknown events need no answer."""
    return Silence()

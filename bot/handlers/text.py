"""Text (and recognised voice): the words that work everywhere, and search for the rest."""

from __future__ import annotations

from bot.context import Context
from bot.keywords import parse_number
from bot.replies import Reply, Text
from bot.router import Keyword, MsgType, Router

router = Router()
fallback = Router()

MAX_QUERY_CHARS = 64


def _search_dialog(ctx: Context):  # type: ignore[no-untyped-def]
    return ctx.services.dialogs.get("search")


@router.route(Keyword("help"))
async def help_(ctx: Context) -> Reply:
    return Text("help")


@router.route(Keyword("cancel"))
async def cancel(ctx: Context) -> Reply:
    had_dialog = await ctx.services.dialogs.store.get(ctx.openid) is not None
    await ctx.services.dialogs.end(ctx.openid)
    return Text("cancelled" if had_dialog else "nothing_to_cancel")


@router.route(Keyword("hot"))
async def hot(ctx: Context) -> Reply:
    return await _search_dialog(ctx).hot(ctx)


@router.route(Keyword("categories"))
async def categories(ctx: Context) -> Reply:
    return await _search_dialog(ctx).categories(ctx)


@fallback.route(MsgType("text", "voice"))
async def search(ctx: Context) -> Reply | None:
    query = ctx.msg.text.strip()
    if not query:
        return None  # e.g. voice without recognition: the media fallback answers
    if parse_number(query) is not None:
        return Text("nothing_to_pick", {"number": parse_number(query)})
    return await _search_dialog(ctx).search(ctx, query[:MAX_QUERY_CHARS])

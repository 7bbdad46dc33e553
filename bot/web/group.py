"""GET /g/{code}: a group buy's page, where the invite link lands (`/s/v1.g.CODE` redirects here).

It shows what a friend needs to decide (product, group price against the regular one,
how many joined of how many, time left, the status) and how to join: joining needs the
visitor's openid and a payment, which only the chat gives, so the page's button copies
the words to send there ("参团 CODE"), says where to paste them, and, when WeChat can make
one, shows the group's QR code (a long press opens the group's card in the chat).
Without a WeChat client (the demo) there is no QR code.
"""

from __future__ import annotations

from aiohttp import web

from bot.keys import RENDERER, SERVICES
from bot.web.product import page_lang, render_page
from bot.wechat.scenes import GroupInvite
from commerce.errors import ShopError
from commerce.groupbuys import groups as group_buys
from commerce.groupbuys.models import GroupStatus
from commerce.rules import utcnow

JOIN_WORD = {"zh": "参团", "en": "join"}
"""Sent with the code in the chat, it opens the group's card (bot/handlers/text.py)."""


async def _qr_url(request: web.Request, code: str) -> str:
    return await request.app[SERVICES].invites.image_url(GroupInvite(code))  # "" without a WeChat client


async def group_page(request: web.Request) -> web.Response:
    code = group_buys.normalise_code(request.match_info["code"])
    services = request.app[SERVICES]
    lang = page_lang(request)
    group = None
    if 4 <= len(code) <= 16:
        try:
            async with services.uow() as uow:
                session = uow.session
                group = await group_buys.get_group(session, code=code)
        except ShopError:
            group = None
    if group is None:
        return render_page(request, "group.html", {"group": None}, lang=lang, status=404)
    product = await services.catalog.product(group.product_id)
    image = (
        request.app[RENDERER].absolute(product.image_url) if product and product.image_url else ""
    )
    joinable = group.status == GroupStatus.OPEN and group.seats_taken < group.size
    data = {
        "group": group.data(utcnow()),
        "joinable": joinable,
        "image": image,
        "qr_url": await _qr_url(request, group.code) if joinable else "",
        "join_word": f"{JOIN_WORD[lang]} {group.code}",
    }
    return render_page(request, "group.html", data, lang=lang)


def add_routes(app: web.Application) -> None:
    app.router.add_get(r"/g/{code}", group_page)

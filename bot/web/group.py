"""GET /g/{code}: a group buy's page, where the invite link lands (`/s/v1.g.CODE` redirects here).

It shows what a friend needs to decide (product, group price against the regular one,
how many joined of how many, time left, the status) and how to join: joining needs the
visitor's openid and a payment, which only the chat gives, so the page shows the code
to type there and, when WeChat can make one, the group's QR code (its scene opens the
group's card in the chat). Without a WeChat client (the demo) it shows the code only.
"""

from __future__ import annotations

from aiohttp import web

from bot.keys import CONFIG, RENDERER, SERVICES
from bot.web.product import PAGES
from bot.wechat.scenes import GroupInvite
from commerce.errors import ShopError
from commerce.groupbuys import groups as group_buys
from commerce.groupbuys.models import GroupStatus
from commerce.rules import utcnow


async def _qr_url(request: web.Request, code: str) -> str:
    return await request.app[SERVICES].invites.image_url(GroupInvite(code))  # "" without a WeChat client


async def group_page(request: web.Request) -> web.Response:
    code = group_buys.normalise_code(request.match_info["code"])
    services = request.app[SERVICES]
    env = request.app[PAGES]
    shop = request.app[CONFIG].shop.name
    group = None
    if 4 <= len(code) <= 16:
        try:
            async with services.uow() as uow:
                session = uow.session
                group = await group_buys.get_group(session, code=code)
        except ShopError:
            group = None
    if group is None:
        html = env.get_template("group.html").render(shop=shop, group=None)
        return web.Response(status=404, text=html, content_type="text/html")
    product = await services.catalog.product(group.product_id)
    image = (
        request.app[RENDERER].absolute(product.image_url) if product and product.image_url else ""
    )
    joinable = group.status == GroupStatus.OPEN and group.seats_taken < group.size
    html = env.get_template("group.html").render(
        shop=shop,
        group=group.data(utcnow()),
        joinable=joinable,
        image=image,
        qr_url=await _qr_url(request, group.code) if joinable else "",
    )
    return web.Response(text=html, content_type="text/html")


def add_routes(app: web.Application) -> None:
    app.router.add_get(r"/g/{code}", group_page)

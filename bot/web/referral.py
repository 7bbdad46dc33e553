"""GET /r/{code}: where a referral share link lands (`/s/v1.r.CODE` redirects here).

A visitor outside WeChat's follow flow cannot be bound by a web page (the binding needs
their openid, which only a follow gives), so the page asks them to follow the account
through the referrer's QR code, which carries the referral scene; without a WeChat
client (the demo) it shows the code to type instead.
"""

from __future__ import annotations

from aiohttp import web

from bot.keys import CONFIG, SERVICES
from bot.web.product import PAGES
from bot.wechat.scenes import CODE_PATTERN, ReferralInvite
from commerce.referrals import referrals


async def referral_page(request: web.Request) -> web.Response:
    code = referrals.normalize_code(request.match_info["code"])
    services = request.app[SERVICES]
    env = request.app[PAGES]
    shop = request.app[CONFIG].shop.name
    referrer = None
    if CODE_PATTERN.fullmatch(code):
        async with services.uow() as uow:
            session = uow.session
            referrer = await referrals.referrer_by_code(session, code)
    if referrer is None:
        html = env.get_template("referral.html").render(shop=shop, code="", qr_url="")
        return web.Response(status=404, text=html, content_type="text/html")
    qr_url = await services.invites.image_url(ReferralInvite(code), permanent=True)  # "" without one
    html = env.get_template("referral.html").render(shop=shop, code=code, qr_url=qr_url)
    return web.Response(text=html, content_type="text/html")


def add_routes(app: web.Application) -> None:
    app.router.add_get(r"/r/{code}", referral_page)

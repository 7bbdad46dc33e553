"""GET /r/{code}: where a referral share link lands (`/s/v1.r.CODE` redirects here).

A visitor outside WeChat's follow flow cannot be bound by a web page (the binding needs
their openid, which only a follow gives), so the page shows the referrer's QR code, which
carries the referral scene, and asks for a long press on it. It never asks for a scan it
cannot show: without a QR code, a development shop (no WeChat client) says that the code
appears once the shop is connected and how to try the follow in the chat simulators; a
live shop whose WeChat did not answer asks to open the page again in a moment.
"""

from __future__ import annotations

from aiohttp import web

from bot.keys import CONFIG, SERVICES
from bot.web.product import page_lang, render_page
from bot.wechat.scenes import CODE_PATTERN, ReferralInvite
from commerce.referrals import referrals


async def referral_page(request: web.Request) -> web.Response:
    code = referrals.normalize_code(request.match_info["code"])
    services = request.app[SERVICES]
    lang = page_lang(request)
    referrer = None
    if CODE_PATTERN.fullmatch(code):
        async with services.uow() as uow:
            session = uow.session
            referrer = await referrals.referrer_by_code(session, code)
    if referrer is None:
        return render_page(request, "referral.html", {"code": "", "qr_url": "", "scene": ""}, lang=lang, status=404)
    scene = ReferralInvite(code)
    qr_url = await services.invites.image_url(scene, permanent=True)  # "" without one
    data = {
        "code": code,
        "qr_url": qr_url,
        "demo": request.app[CONFIG].is_development,
        "scene": scene.pack(),
    }
    return render_page(request, "referral.html", data, lang=lang)


def add_routes(app: web.Application) -> None:
    app.router.add_get(r"/r/{code}", referral_page)

"""The top-up page: pay a stored-balance top-up (`充值`) through the same payment service.

`GET /topup/{token}`: the token is a payment link (`bot.web.paylink`) sealed for the
top-up's number and its customer, valid while the top-up is open. The page offers WeChat
Pay (JSAPI, in WeChat), Alipay where the shop enabled it, or in the sandbox a "simulate"
button that posts a signed sandbox notification to the real notify endpoint. The balance
is credited by that notification only (`commerce.balance.topups`), never by this page.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import aiohttp
from aiohttp import web
from yarl import URL

from bot.devtools.dev_chat import DEV_CHAT, loopback_origin
from bot.keys import CONFIG, PAYMENTS, SERVICES
from bot.web.pay import (
    PAGE_HEADERS,
    REFUSALS,
    Refused,
    error_page,
    in_wechat_browser,
    is_sandbox,
    json_refusal,
    pay_claim,
)
from bot.web.product import page_lang, render_page
from commerce.balance import topups
from commerce.balance.models import TopUpStatus
from commerce.balance.topups import TopUpView
from commerce.customers.customers import openid_of
from commerce.errors import ErrorCode, ShopError
from commerce.payments import PaymentError, PaymentRequest, sandbox

log = logging.getLogger(__name__)


async def _topup(request: web.Request, *, payable: bool = True) -> TopUpView:
    claim = pay_claim(request, now=datetime.now(UTC), allow_expired=not payable)
    async with request.app[SERVICES].uow() as uow:
        found = await topups.get_topup(uow.session, topup_no=claim.order_no)
        owner = await openid_of(uow.session, found.customer_id) if found is not None else None
    if found is None or not topups.TopUps().owns(claim.order_no):
        raise Refused("not_found")
    if owner != claim.openid:
        raise Refused("foreign")
    if payable and found.status != TopUpStatus.PENDING:
        raise Refused("paid")
    return found


async def topup_page(request: web.Request) -> web.Response:
    try:
        topup = await _topup(request)
    except Refused as exc:
        return error_page(request, exc.refusal)
    config = request.app[CONFIG]
    in_wechat = in_wechat_browser(request)
    sandbox_mode = is_sandbox(request)
    if request.query.get("pay") == "alipay" and "alipay" in config.pay.methods and not in_wechat:
        back = config.public_base_url + request.rel_url.path
        try:
            payment = await _prepay(request, topup, provider="alipay", return_url=back)
        except (PaymentError, Refused):
            return error_page(request, REFUSALS["provider"])
        if payment.pay_url:
            raise web.HTTPFound(payment.pay_url, headers=PAGE_HEADERS)
    seconds_left = max(0, int((topup.expires_at - datetime.now(UTC)).total_seconds()))
    data = {
        "topup": topup,
        "seconds_left": seconds_left,
        "sandbox": sandbox_mode,
        "wechat_pay": in_wechat and not sandbox_mode,
        "open_in_wechat": not in_wechat and not sandbox_mode,
        "alipay": "alipay" in config.pay.methods,
        "alipay_guide": "alipay" in config.pay.methods and in_wechat,
        "contact": config.shop.contact,
    }
    return render_page(request, "topup.html", data, lang=page_lang(request), headers=PAGE_HEADERS)


async def _prepay(
    request: web.Request, topup: TopUpView, *, provider: str = "", return_url: str = ""
) -> PaymentRequest:
    claim = pay_claim(request, now=datetime.now(UTC))
    try:
        return await request.app[PAYMENTS].pay(
            order_no=topup.topup_no, openid=claim.openid, provider=provider, return_url=return_url
        )
    except ShopError as exc:  # the top-up changed between our check and the service's
        if exc.code == ErrorCode.ILLEGAL_TRANSITION:
            raise Refused("paid") from None
        raise Refused("expired" if exc.code == ErrorCode.ORDER_EXPIRED else "not_found") from None


async def jsapi_params(request: web.Request) -> web.Response:
    if is_sandbox(request):
        raise web.HTTPNotFound()
    try:
        topup = await _topup(request)
        payment = await _prepay(request, topup)
    except Refused as exc:
        return json_refusal(exc.refusal)
    except PaymentError as exc:
        return web.json_response({"error": "provider", "code": exc.code}, status=502)
    if payment.kind != "jsapi" or not payment.jsapi_params:
        return web.json_response({"error": "provider", "code": payment.kind}, status=502)
    return web.json_response({"jsapi_params": payment.jsapi_params})


async def simulate(request: web.Request) -> web.Response:
    """Sandbox: pay the top-up through the real notify path, as the provider would."""
    if not is_sandbox(request):
        raise web.HTTPNotFound()
    try:
        topup = await _topup(request)
        await _prepay(request, topup)
    except Refused as exc:
        return json_refusal(exc.refusal)
    claim = pay_claim(request, now=datetime.now(UTC))
    notification = sandbox.build_notification(
        secret=request.app[CONFIG].pay.sandbox_secret,
        order_no=topup.topup_no,
        amount_fen=topup.pay_fen,
        openid=claim.openid,
    )
    url = loopback_origin(request) + URL(request.app[PAYMENTS].notify_url).path
    try:
        async with request.app[DEV_CHAT].session.post(
            url,
            data=notification.body,
            headers=notification.headers,
            timeout=aiohttp.ClientTimeout(total=10),
        ) as response:
            status = response.status
    except (aiohttp.ClientError, TimeoutError):
        status = 599
    if status != 200:
        return web.json_response({"error": "notify", "http_status": status}, status=502)
    return web.json_response({"ok": True})


async def status(request: web.Request) -> web.Response:
    try:
        topup = await _topup(request, payable=False)
    except Refused as exc:
        return json_refusal(exc.refusal)
    return web.json_response(
        {"status": topup.status, "paid": topup.status == TopUpStatus.CREDITED},
        headers={"Cache-Control": "no-store"},
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get(r"/topup/{token:[A-Za-z0-9_.-]+}", topup_page)
    app.router.add_post(r"/topup/{token:[A-Za-z0-9_.-]+}/jsapi", jsapi_params)
    app.router.add_post(r"/topup/{token:[A-Za-z0-9_.-]+}/simulate", simulate)
    app.router.add_get(r"/topup/{token:[A-Za-z0-9_.-]+}/status", status)

"""`/pay/{token}`: the H5 payment page of one order (SPEC section 5, "Payment link").

The token (`bot.web.paylink`) is the authority: it names the order and the customer and
expires with the order's stock reservation. Routes:

- ``GET  /pay/{token}``           the page: shop, lines, amounts, countdown, the pay buttons of
                                  the methods the shop offers (`pay.methods`). Alipay is a
                                  link (``?pay=alipay``: redirected to Alipay's cashier);
                                  inside WeChat, which blocks Alipay, the page shows the
                                  "open in your browser" guide instead, and the same link
                                  works once the page is opened in a browser;
- ``POST /pay/{token}/jsapi``     WeChat Pay (real providers, inside WeChat): the
                                  parameters for ``WeixinJSBridge.invoke('getBrandWCPayRequest')``;
- ``POST /pay/{token}/simulate``  sandbox provider only: pay without money. The app signs
                                  a sandbox notification and posts it over HTTP to its own
                                  ``/pay/notify/sandbox``, the same notify path real money takes;
- ``GET  /pay/{token}/status``    JSON ``{"status": ...}``, polled by the page after paying.

The page speaks the customer's language (their chat locale; `?lang=zh|en` switches) and
shows what a customer checks before paying: where it goes (the delivery address), what
it is (each line with its picture), what it costs, and how to reach a person
(`shop.contact`, `shop.service_hours`).

A link that cannot be paid gets `pay_error.html` with the reason in the page's language:
403 altered or someone else's, 404 unknown, 410 expired, 409 already paid or cancelled.
The POST routes answer JSON with the same codes. They need no CSRF token: without the
link's token (which a third party does not have) there is nothing to post to. The HTML
carries no token, openid or secret: the page's script posts to its own address.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
from aiohttp import web
from yarl import URL

from bot.devtools.dev_chat import DEV_CHAT, loopback_origin
from bot.keys import CONFIG, PAYMENTS, RENDERER, SERVICES
from bot.web.paylink import PayClaim, PayLinkError, read_pay_token
from bot.web.product import page_lang, render_page
from commerce.customers.customers import locale_of
from commerce.errors import ErrorCode, ShopError
from commerce.orders.models import OrderStatus
from commerce.orders.placement import get_order
from commerce.orders.views import OrderView
from commerce.payments import PaymentError, PaymentRequest, sandbox

log = logging.getLogger(__name__)

PAID_STATES = frozenset(
    {OrderStatus.PAID, OrderStatus.SHIPPED, OrderStatus.COMPLETED, OrderStatus.REFUNDING, OrderStatus.REFUNDED}
)
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the token is in the address
    "X-Frame-Options": "DENY",  # no clickjacking of the pay button
    "X-Content-Type-Options": "nosniff",
}


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a link cannot be paid: an HTTP status and words for the customer."""

    status: int
    reason: str
    zh: str
    en: str


REFUSALS: dict[str, Refusal] = {
    r.reason: r
    for r in (
        Refusal(404, "malformed", "找不到这个支付链接，请检查链接是否完整。",
                "We cannot find this payment link. Check that the whole link was opened."),
        Refusal(403, "bad_signature", "这个支付链接无效（可能被修改过）。请回到对话中重新打开订单。",
                "This payment link is not valid (it may have been altered). Open the order again from the chat."),
        Refusal(410, "expired", "支付链接已过期，订单已关闭。请回到对话中重新下单。",
                "This payment link has expired and the order is closed. Order again in the chat."),
        Refusal(404, "not_found", "找不到这个订单。", "We cannot find this order."),
        Refusal(403, "foreign", "这不是您的订单，无法在这里支付。",
                "This order belongs to someone else and cannot be paid here."),
        Refusal(409, "paid", "这个订单已经支付过了，无需再付。发送「订单」查看进度。",
                "This order is already paid; nothing more to pay. Send \"orders\" in the chat to follow it."),
        Refusal(409, "cancelled", "这个订单已取消，无法支付。请回到对话中重新下单。",
                "This order was cancelled and cannot be paid. Order again in the chat."),
        Refusal(502, "provider", "支付渠道暂时无法使用，请稍后重试或换一种支付方式。",
                "This payment method is unavailable right now. Try again later or pay another way."),
    )
}


class Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.refusal = REFUSALS[reason]


# --------------------------------------------------------------------------- checks


def pay_claim(request: web.Request, *, now: datetime, allow_expired: bool = False) -> PayClaim:
    key = request.app[CONFIG].signing_key
    try:
        return read_pay_token(
            key=key, token=request.match_info["token"], now=now, allow_expired=allow_expired
        )
    except PayLinkError as exc:
        raise Refused(exc.reason) from None


async def _order(request: web.Request, claim: PayClaim) -> OrderView:
    """The token's order, which must be the token's customer's."""
    try:
        async with request.app[SERVICES].uow() as uow:
            session = uow.session
            order = await get_order(session, order_no=claim.order_no)
    except ShopError as exc:
        if exc.code == ErrorCode.ORDER_NOT_FOUND:
            raise Refused("not_found") from None
        raise
    if order.openid != claim.openid:
        raise Refused("foreign")
    return order


async def _payable_order(request: web.Request) -> OrderView:
    """The order behind a valid, unexpired link that is still waiting for its payment.

    A genuine link's order is told as it is, expired link or not: a customer who opens
    the link of a paid order an hour later learns it is paid, not that it expired.
    """
    now = datetime.now(UTC)
    claim = pay_claim(request, now=now, allow_expired=True)  # the signature is still checked
    order = await _order(request, claim)
    if order.status in PAID_STATES:
        raise Refused("paid")
    expired = now >= claim.expires_at or now >= _aware(order.expires_at)
    if expired:  # also when the expiry job has already closed (cancelled) it
        raise Refused("expired")
    if order.status != OrderStatus.PENDING_PAYMENT:
        raise Refused("cancelled")
    return order


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def is_sandbox(request: web.Request) -> bool:
    return request.app[CONFIG].pay.provider == "sandbox"


def error_page(request: web.Request, refusal: Refusal) -> web.Response:
    return render_page(
        request, "pay_error.html", {"refusal": refusal}, lang=page_lang(request),
        status=refusal.status, headers=PAGE_HEADERS,
    )


def masked_phone(phone: str) -> str:
    """138****8000, as Chinese shops show a phone number on a page."""
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 11 else phone


async def _line_pictures(request: web.Request, order: OrderView) -> dict[int, str]:
    """product id -> its picture's URL, from the catalog in memory (no query); a product
    taken off sale since has none."""
    snapshot = await request.app[SERVICES].catalog.snapshot()
    renderer = request.app[RENDERER]
    pictures = {}
    for line in order.lines:
        product = snapshot.products.get(line.product_id)
        if product is not None and product.image_url:
            pictures[line.product_id] = renderer.absolute(product.image_url)
    return pictures


def json_refusal(refusal: Refusal) -> web.Response:
    return web.json_response(
        {"error": refusal.reason, "message_zh": refusal.zh, "message_en": refusal.en},
        status=refusal.status,
    )


# --------------------------------------------------------------------------- handlers


def in_wechat_browser(request: web.Request) -> bool:
    """WeChat's in-app browser says MicroMessenger in its User-Agent."""
    return "micromessenger" in request.headers.get("User-Agent", "").lower()


async def pay_page(request: web.Request) -> web.Response:
    if request.query.get("from") == "alipay" and "alipay" in request.app[CONFIG].pay.methods:
        await _ask_alipay(request)  # back from Alipay's cashier: paid there? then it says so
    try:
        order = await _payable_order(request)
    except Refused as exc:
        return error_page(request, exc.refusal)
    config = request.app[CONFIG]
    in_wechat = in_wechat_browser(request)
    alipay = "alipay" in config.pay.methods
    if request.query.get("pay") == "alipay" and alipay and not in_wechat:
        return await _to_alipay(request, order)
    sandbox_mode = is_sandbox(request)
    seconds_left = max(0, int((_aware(order.expires_at) - datetime.now(UTC)).total_seconds()))
    async with request.app[SERVICES].uow() as uow:
        customer_locale = await locale_of(uow.session, order.openid)
    data = {
        "order": order,
        "phone": masked_phone(order.address_phone),
        "pictures": await _line_pictures(request, order),
        "contact": config.shop.contact,
        "service_hours": config.shop.service_hours,
        "seconds_left": seconds_left,
        "sandbox": sandbox_mode,
        "wechat_pay": in_wechat and not sandbox_mode,
        "open_in_wechat": not in_wechat and not sandbox_mode,
        "alipay": alipay,
        "alipay_guide": alipay and in_wechat,  # WeChat blocks Alipay: open the page in a browser
    }
    return render_page(request, "pay.html", data, lang=page_lang(request, customer_locale), headers=PAGE_HEADERS)


async def _ask_alipay(request: web.Request) -> None:
    """The browser came back from Alipay (`return_url`), maybe before Alipay's notification:
    ask Alipay (`alipay.trade.query`) and record a payment it reports, as its notification
    would. What the return itself says is never trusted; failures leave the page as it was."""
    try:
        order = await _order(request, pay_claim(request, now=datetime.now(UTC), allow_expired=True))
        if order.status == OrderStatus.PENDING_PAYMENT:
            await request.app[PAYMENTS].check_payment(order_no=order.order_no, provider="alipay")
    except Refused:
        return  # the page itself says why
    except PaymentError as exc:
        log.warning("alipay query failed: code=%s", exc.code)


async def _to_alipay(request: web.Request, order: OrderView) -> web.Response:
    """To Alipay's cashier for this order (its signed link, made now); Alipay brings the
    browser back to this page (`?from=alipay`)."""
    back = request.app[CONFIG].public_base_url + request.rel_url.path + "?from=alipay"
    if page_lang(request) == "en":
        back += "&lang=en"
    try:
        payment = await _prepay(request, order, provider="alipay", return_url=back)
    except Refused as exc:
        return error_page(request, exc.refusal)
    except PaymentError as exc:
        log.warning("alipay link failed: order=%s code=%s", order.order_no, exc.code)
        return error_page(request, REFUSALS["provider"])
    if not payment.pay_url:
        return error_page(request, REFUSALS["provider"])
    raise web.HTTPFound(payment.pay_url, headers=PAGE_HEADERS)


async def jsapi_params(request: web.Request) -> web.Response:
    """WeChat Pay's parameters for this order (a prepay made now, outside any transaction)."""
    if is_sandbox(request):
        raise web.HTTPNotFound()
    try:
        order = await _payable_order(request)
        payment = await _prepay(request, order)
    except Refused as exc:
        return json_refusal(exc.refusal)
    except PaymentError as exc:
        log.warning("prepay failed: order=%s code=%s", order.order_no, exc.code)
        return web.json_response({"error": "provider", "code": exc.code}, status=502)
    if payment.kind != "jsapi" or not payment.jsapi_params:
        return web.json_response({"error": "provider", "code": payment.kind}, status=502)
    return web.json_response({"jsapi_params": payment.jsapi_params})


async def simulate(request: web.Request) -> web.Response:
    """Sandbox: pay through the real notify path, as the provider's server would call it."""
    if not is_sandbox(request):
        raise web.HTTPNotFound()
    try:
        order = await _payable_order(request)
        await _prepay(request, order)  # the same checks and call a real payment goes through
    except Refused as exc:
        return json_refusal(exc.refusal)
    status, answer = await _post_sandbox_notification(request, order=order)
    if status != 200:
        log.warning("sandbox notify refused: order=%s http_status=%s", order.order_no, status)
        return web.json_response({"error": "notify", "http_status": status, "answer": answer[:200]}, status=502)
    return web.json_response({"ok": True, "status": await _current_status(request, order.order_no)})


async def _prepay(
    request: web.Request, order: OrderView, *, provider: str = "", return_url: str = ""
) -> PaymentRequest:
    """Ask the payment service for this order's payment (provider call, no transaction held)."""
    try:
        return await request.app[PAYMENTS].pay(
            order_no=order.order_no, openid=order.openid, provider=provider, return_url=return_url
        )
    except ShopError as exc:  # the order changed between our check and the service's
        if exc.code == ErrorCode.ORDER_EXPIRED:
            raise Refused("expired") from None
        if exc.code == ErrorCode.ORDER_NOT_FOUND:
            raise Refused("not_found") from None
        if exc.code == ErrorCode.ILLEGAL_TRANSITION:
            status = await _current_status(request, order.order_no)
            raise Refused("paid" if status in PAID_STATES else "cancelled") from None
        raise


async def _post_sandbox_notification(request: web.Request, *, order: OrderView) -> tuple[int, str]:
    """Build the signed sandbox notification and POST it to our own notify endpoint.

    The path is the one the payment service gives the provider (`notify_url`); the host
    is the socket this request came in on, so it works before any public URL exists.
    """
    notification = sandbox.build_notification(
        secret=request.app[CONFIG].pay.sandbox_secret,
        order_no=order.order_no,
        amount_fen=order.due_fen,  # the provider's part: stored balance pays the rest
        openid=order.openid,
    )
    url = loopback_origin(request) + URL(request.app[PAYMENTS].notify_url).path
    try:
        async with request.app[DEV_CHAT].session.post(
            url,
            data=notification.body,
            headers=notification.headers,
            timeout=aiohttp.ClientTimeout(total=10),
        ) as response:
            return response.status, await response.text()
    except (aiohttp.ClientError, TimeoutError) as exc:
        return 599, f"{type(exc).__name__}: {exc}"


async def _current_status(request: web.Request, order_no: str) -> str:
    async with request.app[SERVICES].uow() as uow:
        session = uow.session
        return str((await get_order(session, order_no=order_no)).status)


async def status(request: web.Request) -> web.Response:
    """The order's status for the page's polling; answers after the link expired too."""
    try:
        order = await _order(request, pay_claim(request, now=datetime.now(UTC), allow_expired=True))
    except Refused as exc:
        return json_refusal(exc.refusal)
    return web.json_response(
        {"status": str(order.status), "paid": order.status in PAID_STATES},
        headers={"Cache-Control": "no-store"},
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get(r"/pay/{token:[A-Za-z0-9_.-]+}", pay_page)
    app.router.add_post(r"/pay/{token:[A-Za-z0-9_.-]+}/jsapi", jsapi_params)
    app.router.add_post(r"/pay/{token:[A-Za-z0-9_.-]+}/simulate", simulate)
    app.router.add_get(r"/pay/{token:[A-Za-z0-9_.-]+}/status", status)

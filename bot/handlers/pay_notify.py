"""`/pay/notify/{provider}` and `/pay/refund-notify/{provider}`: WeChat Pay, Alipay (or sandbox) tell us.

Authenticated first: the raw body is verified (signature, decryption, freshness) by the
configured provider before anything else; a forged or broken notification gets the
provider's failure answer with a 4xx and touches nothing. Verified notifications go to
`PaymentService.handle_notification`, and the answer is whatever the provider expects.
"""

from __future__ import annotations

import logging

from aiohttp import hdrs, web

from bot.keys import PAYMENTS
from commerce.payments.base import MAX_BODY_BYTES, NotificationRejected, PaymentProvider

log = logging.getLogger(__name__)


def _answer(status: int, content_type: str, body: str) -> web.Response:
    if not body:
        return web.Response(status=status)
    return web.Response(status=status, text=body, content_type=content_type)


def _refuse_unread(provider: PaymentProvider, status: int, message: str) -> web.Response:
    _status, content_type, text = provider.acknowledge(ok=False, message=message)
    refused = _answer(status, content_type, text)
    refused.force_close()  # what is left of the body goes with the connection
    return refused


async def _read_body(request: web.Request) -> bytes | None:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return None
    body = await request.content.read(MAX_BODY_BYTES + 1)
    return None if len(body) > MAX_BODY_BYTES else body


async def _receive(request: web.Request, expected_kind: str) -> web.Response:
    service = request.app[PAYMENTS]
    provider = service.provider_named(request.match_info["provider"])
    if provider is None:  # not a provider this shop uses
        raise web.HTTPNotFound()
    if request.headers.get(hdrs.CONTENT_ENCODING, "").strip().lower() not in ("", "identity"):
        # providers never compress; what a stranger compressed is not even inflated
        return _refuse_unread(provider, 415, "content encoding")
    try:
        body = await _read_body(request)
    except web.RequestPayloadError as exc:  # cut short, a broken chunk
        log.warning("payment notification body unreadable: %s", exc)
        return _refuse_unread(provider, 400, "unreadable body")
    if body is None:
        status, content_type, text = provider.acknowledge(ok=False, message="body too large")
        return _answer(413, content_type, text)
    try:
        notification = provider.verify_notification(headers=request.headers, body=body)
    except NotificationRejected as exc:
        log.warning("payment notification rejected: %s", exc)
        return _answer(*provider.acknowledge(ok=False, message="verification failed"))
    if notification.kind != expected_kind:
        log.warning("%s notification arrived on the %s URL", notification.kind, expected_kind)
    try:
        ok = await service.handle_notification(notification)
    except Exception:
        log.exception("payment notification could not be recorded: order=%s", notification.order_no)
        _status, content_type, text = provider.acknowledge(ok=False, message="try again later")
        return _answer(500, content_type, text)
    return _answer(*provider.acknowledge(ok=ok, message="" if ok else "refused"))


async def payment_notify(request: web.Request) -> web.Response:
    return await _receive(request, "payment")


async def refund_notify(request: web.Request) -> web.Response:
    return await _receive(request, "refund")


def add_routes(app: web.Application) -> None:
    app.router.add_post("/pay/notify/{provider}", payment_notify)
    app.router.add_post("/pay/refund-notify/{provider}", refund_notify)

"""The sandbox provider: HMAC-signed JSON notifications, refunds delivered over HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from commerce.payments.base import NotificationRejected
from commerce.payments.sandbox import SandboxProvider, build_notification

SECRET = "sandbox-secret"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def make_provider(http: aiohttp.ClientSession | None = None) -> SandboxProvider:
    return SandboxProvider(secret=SECRET, mchid="sandbox", appid="wx_test_app", http=http, timeout_seconds=5)


def test_a_signed_notification_is_accepted_and_names_this_shop() -> None:
    signed = build_notification(secret=SECRET, order_no="SF1", amount_fen=4990, openid="o_1")
    n = make_provider().verify_notification(headers=signed.headers, body=signed.body)
    assert (n.kind, n.provider, n.order_no, n.amount_fen, n.succeeded) == ("payment", "sandbox", "SF1", 4990, True)
    assert (n.mchid, n.appid) == ("sandbox", "wx_test_app")
    assert n.transaction_id.startswith("SB")


def test_a_notification_signed_by_hand_is_accepted() -> None:
    body = json.dumps(
        {
            "kind": "payment",
            "order_no": "SF2",
            "amount_fen": 100,
            "succeeded": True,
            "mchid": "sandbox",
            "appid": "wx_test_app",
            "transaction_id": "T2",
            "occurred_at": datetime.now(UTC).isoformat(),
        }
    ).encode()
    ts = str(int(time.time()))
    sig = hmac.new(SECRET.encode(), ts.encode() + b"\n" + body, hashlib.sha256).hexdigest()
    n = make_provider().verify_notification(
        headers={"X-Sandbox-Timestamp": ts, "X-Sandbox-Signature": sig}, body=body
    )
    assert (n.order_no, n.transaction_id) == ("SF2", "T2")


@pytest.mark.parametrize("case", ["other_secret", "tampered", "stale", "no_headers", "not_json", "amount_text"])
def test_forged_or_broken_notifications_are_rejected(case: str) -> None:
    signed = build_notification(secret=SECRET, order_no="SF1", amount_fen=4990)
    headers, body = dict(signed.headers), signed.body
    if case == "other_secret":
        other = build_notification(secret="guess", order_no="SF1", amount_fen=4990)
        headers, body = dict(other.headers), other.body
    elif case == "tampered":
        body = body.replace(b"4990", b"1")
    elif case == "stale":
        old = build_notification(secret=SECRET, order_no="SF1", amount_fen=4990, clock=lambda: time.time() - 301)
        headers, body = dict(old.headers), old.body
    elif case == "no_headers":
        headers = {}
    else:
        body = b"not json" if case == "not_json" else body.replace(b"4990", b'"4990"')
        ts = headers["X-Sandbox-Timestamp"]
        headers["X-Sandbox-Signature"] = hmac.new(
            SECRET.encode(), ts.encode() + b"\n" + body, hashlib.sha256
        ).hexdigest()
    with pytest.raises(NotificationRejected):
        make_provider().verify_notification(headers=headers, body=body)


async def test_payment_needs_no_network(http: aiohttp.ClientSession) -> None:
    payment = await make_provider(http).create_payment(
        order_no="SF1", amount_fen=1, description="x", openid="o", expires_at=datetime.now(UTC), notify_url="x"
    )
    assert (payment.provider, payment.kind, payment.jsapi_params) == ("sandbox", "sandbox", None)


async def test_refund_notification_is_posted_in_the_background(
    http: aiohttp.ClientSession, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    received: list[tuple[dict[str, str], bytes]] = []

    async def notify(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.read()))
        return web.json_response({"code": "SUCCESS"})

    app = web.Application()
    app.router.add_post("/pay/refund-notify/sandbox", notify)
    server = await aiohttp_server(app)
    provider = make_provider(http)

    await provider.refund(
        order_no="SF1",
        refund_no="RF1",
        amount_fen=300,
        total_fen=4990,
        reason="x",
        notify_url=str(server.make_url("/pay/refund-notify/sandbox")),
    )
    await provider.aclose()

    ((headers, body),) = received
    n = provider.verify_notification(headers=headers, body=body)
    assert (n.kind, n.order_no, n.refund_no, n.amount_fen, n.succeeded) == ("refund", "SF1", "RF1", 300, True)
    assert n.provider_refund_id == "SBRRF1"


def test_acknowledgements() -> None:
    provider = make_provider()
    assert provider.acknowledge(ok=True)[0] == 200
    assert provider.acknowledge(ok=False)[0] == 400

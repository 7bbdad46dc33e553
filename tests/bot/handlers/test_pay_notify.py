"""End to end through the real app (SQLite and PostgreSQL): WeChat Pay's notifications arrive
over HTTP at /pay/notify/<provider>, signed the way WeChat Pay signs them; provider calls go
over HTTP to the fake WeChat Pay server; the customer's messages land in the app's outbox."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot.app import create_app
from bot.config import Config
from bot.keys import PAYMENTS
from bot.outbound.sender import MemoryOutbox
from commerce.orders import placement as orders
from commerce.orders import views as order_views
from commerce.orders.actions import CancelledBy, cancel_order
from commerce.orders.models import OrderStatus
from commerce.payments.models import PaymentEvent, Refund
from commerce.payments.sandbox import SandboxProvider
from commerce.payments.service import PaymentService
from tests.bot.conftest import make_config, seed
from tests.bot.driver import db
from tests.fakes import PlacedOrder, insert_order
from tests.fakes.wechatpay import (
    API_V2_KEY,
    API_V3_KEY,
    MCHID,
    MERCHANT_SERIAL_NO,
    PLATFORM_PUBLIC_KEY_ID,
    FakeWeChatPay,
    post,
    shared_keys,
    v2_parse,
)


@dataclass
class PayShop:
    client: TestClient
    config: Config
    outbox: MemoryOutbox
    wechat: FakeWeChatPay

    @property
    def app(self) -> web.Application:
        return self.client.server.app

    @property
    def payments(self) -> PaymentService:
        return self.app[PAYMENTS]

    def url(self, path: str) -> str:
        return str(self.client.make_url(path))

    async def order(self, **kwargs: Any) -> PlacedOrder:
        return await insert_order(db(self.app), **kwargs)

    async def view(self, order_no: str) -> order_views.OrderView:
        async with db(self.app)() as session:
            return await orders.get_order(session, order_no=order_no)

    async def payment_events(self) -> list[str]:
        async with db(self.app)() as session:
            return sorted((await session.scalars(select(PaymentEvent.outcome))).all())

    async def texts(self, openid: str, count: int = 1) -> list[str]:
        return [m.text for m in await self.outbox.wait_for(openid, count)]


ShopStarter = Callable[..., Awaitable[PayShop]]


@pytest.fixture
async def start_shop(
    db_url: str,
    tmp_path: Path,
    unused_tcp_port: int,
    aiohttp_client: Callable[..., Awaitable[TestClient]],
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    demo_catalog: None,
) -> ShopStarter:
    async def start(provider: str) -> PayShop:
        wechat = FakeWeChatPay()
        fake_server = await aiohttp_server(wechat.app())
        base = str(fake_server.make_url("")).rstrip("/")
        pay: dict[str, Any] = {"provider": provider}
        if provider == "wechatpay_v3":
            private_key, public_key = shared_keys().write(tmp_path / "keys")
            pay.update(
                mchid=MCHID,
                api_base_url=base,
                api_v3_key=API_V3_KEY,
                merchant_serial_no=MERCHANT_SERIAL_NO,
                private_key_path=str(private_key),
                platform_public_key_path=str(public_key),
                platform_public_key_id=PLATFORM_PUBLIC_KEY_ID,
            )
        elif provider == "wechatpay_v2":
            pay.update(mchid=MCHID, api_base_url=base, api_v2_key=API_V2_KEY, v2_sign_type="HMAC-SHA256")
        await seed(db_url)
        config = make_config(
            db_url,
            # links point at the app itself: the sandbox posts its refund notifications there
            server={"base_url": f"http://127.0.0.1:{unused_tcp_port}"},
            pay=pay,
            scheduler={"enabled": False},
        )
        outbox = MemoryOutbox()
        client = await aiohttp_client(
            create_app(config, outbound=outbox), server_kwargs={"port": unused_tcp_port}
        )
        return PayShop(client, config, outbox, wechat)

    return start


# ---- WeChat Pay v3 ------------------------------------------------------------------------------


async def test_v3_payment_notification_pays_the_order_and_tells_the_customer(start_shop: ShopStarter) -> None:
    shop = await start_shop("wechatpay_v3")
    order = await shop.order()
    payment = await shop.payments.pay(order_no=order.order_no, openid=order.openid)
    assert payment.kind == "jsapi" and payment.jsapi_params is not None
    assert shop.wechat.orders[order.order_no].notify_url == shop.url("/pay/notify/wechatpay_v3")

    status, body = await shop.wechat.notify_payment(order.order_no)

    assert (status, body) == (204, "")
    view = await shop.view(order.order_no)
    assert (view.status, view.paid_fen) == (OrderStatus.PAID, order.payable_fen)
    (text,) = await shop.texts(order.openid)
    assert "支付成功" in text and order.order_no in text

    # WeChat Pay sends it again (and again): acknowledged, nothing changes
    for _ in range(3):
        assert (await shop.wechat.notify_payment(order.order_no))[0] == 204
    await shop.payments.drain()
    assert await shop.payment_events() == ["applied"]
    assert len(shop.outbox.for_user(order.openid)) == 1


async def test_ten_copies_at_once_over_http_pay_once_and_are_all_acknowledged(start_shop: ShopStarter) -> None:
    shop = await start_shop("wechatpay_v3")
    order = await shop.order()
    resource = shop.wechat.v3_payment_resource(order.order_no, order.payable_fen, openid=order.openid)
    headers, body = shop.wechat.v3_notification(resource)
    url = shop.url("/pay/notify/wechatpay_v3")

    answers = await asyncio.gather(*(post(url, headers, body) for _ in range(10)))
    await shop.payments.drain()

    assert [status for status, _ in answers] == [204] * 10
    assert await shop.payment_events() == ["applied"]
    view = await shop.view(order.order_no)
    assert [e.to_status for e in view.events] == ["pending_payment", "paid"]
    assert len(shop.outbox.for_user(order.openid)) == 1


async def test_a_notification_that_cannot_be_recorded_asks_for_a_retry(
    start_shop: ShopStarter, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = await start_shop("wechatpay_v3")
    order = await shop.order()

    async def broken(notification: Any) -> bool:
        raise ConnectionError("database went away")

    monkeypatch.setattr(shop.payments, "handle_notification", broken)
    headers, body = shop.wechat.v3_notification(shop.wechat.v3_payment_resource(order.order_no, 1))
    status, answer = await post(shop.url("/pay/notify/wechatpay_v3"), headers, body)
    assert status == 500 and json.loads(answer)["code"] == "FAIL"


async def test_v3_forged_notifications_are_refused_and_touch_nothing(start_shop: ShopStarter) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    shop = await start_shop("wechatpay_v3")
    order = await shop.order()
    url = shop.url("/pay/notify/wechatpay_v3")
    resource = shop.wechat.v3_payment_resource(order.order_no, order.payable_fen)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    for headers, body in (
        shop.wechat.v3_notification(resource, key=stranger),
        shop.wechat.v3_notification(resource, timestamp=1_600_000_000),
        shop.wechat.v3_notification({**resource, "mchid": "1900000999"}),
        shop.wechat.v3_notification({**resource, "appid": "wx_other"}),
    ):
        status, answer = await post(url, headers, body)
        assert status == 400 and json.loads(answer)["code"] == "FAIL"

    assert await shop.payment_events() == []
    assert (await shop.view(order.order_no)).status == OrderStatus.PENDING_PAYMENT
    assert shop.outbox.for_user(order.openid) == []


async def test_notify_paths_of_other_providers_are_not_found(start_shop: ShopStarter) -> None:
    shop = await start_shop("wechatpay_v3")
    for path in ("/pay/notify/sandbox", "/pay/notify/wechatpay_v2", "/pay/refund-notify/sandbox"):
        response = await shop.client.post(path, data=b"{}")
        assert response.status == 404


async def test_an_oversized_notification_is_refused_unread(start_shop: ShopStarter) -> None:
    shop = await start_shop("wechatpay_v3")
    response = await shop.client.post("/pay/notify/wechatpay_v3", data=b"x" * 70_000)
    assert response.status == 413
    assert await shop.payment_events() == []


async def test_v3_late_payment_is_refunded_and_the_customer_told(start_shop: ShopStarter) -> None:
    shop = await start_shop("wechatpay_v3")
    order = await shop.order()
    await shop.payments.pay(order_no=order.order_no, openid=order.openid)
    async with db(shop.app)() as session, session.begin():
        await cancel_order(session, order_id=order.id, by=CancelledBy.TIMEOUT, now=datetime.now(UTC))  # expired meanwhile

    assert (await shop.wechat.notify_payment(order.order_no))[0] == 204
    await shop.payments.drain()

    (refund_call,) = shop.wechat.requests("/v3/refund/domestic/refunds")
    transaction_id = shop.wechat.orders[order.order_no].transaction_id
    assert refund_call.data["transaction_id"] == transaction_id
    assert refund_call.data["amount"] == {"refund": order.payable_fen, "total": order.payable_fen, "currency": "CNY"}
    assert refund_call.data["notify_url"] == shop.url("/pay/refund-notify/wechatpay_v3")
    (text,) = await shop.texts(order.openid)
    assert "退回" in text

    status, _ = await shop.wechat.notify_refund(
        refund_call.data["out_refund_no"], url=shop.url("/pay/refund-notify/wechatpay_v3")
    )
    await shop.payments.drain()

    assert status == 204
    assert (await shop.view(order.order_no)).status == OrderStatus.CANCELLED
    assert await shop.payment_events() == ["late_refunded", "succeeded"]


async def test_v3_partial_refund_and_its_notification(start_shop: ShopStarter) -> None:
    shop = await start_shop("wechatpay_v3")
    order = await shop.order()
    await shop.payments.pay(order_no=order.order_no, openid=order.openid)
    await shop.wechat.notify_payment(order.order_no)
    assert "支付成功" in (await shop.texts(order.openid, 1))[0]  # told before the refund is made

    refund = await shop.payments.refund(order_id=order.id, amount_fen=100, reason="少发一件", actor="staff:o_owner")

    (refund_call,) = shop.wechat.requests("/v3/refund/domestic/refunds")
    assert refund_call.data["out_refund_no"] == refund.refund_no
    assert refund_call.data["amount"]["refund"] == 100
    status, _ = await shop.wechat.notify_refund(refund.refund_no, url=shop.url("/pay/refund-notify/wechatpay_v3"))
    await shop.payments.drain()

    assert status == 204
    view = await shop.view(order.order_no)
    assert (view.status, view.refunded_fen) == (OrderStatus.PAID, 100)
    texts = await shop.texts(order.openid, 2)
    assert "¥1.00" in texts[-1] and "退款" in texts[-1]


async def test_v3_refund_the_provider_refuses_is_failed(start_shop: ShopStarter) -> None:
    from tests.fakes.wechatpay import Failure

    shop = await start_shop("wechatpay_v3")
    order = await shop.order()
    await shop.payments.pay(order_no=order.order_no, openid=order.openid)
    await shop.wechat.notify_payment(order.order_no)
    shop.wechat.fail_next(Failure(status=403, code="NOT_ENOUGH", message="基本账户余额不足"))

    refund = await shop.payments.refund(order_id=order.id, amount_fen=order.payable_fen, reason="x", actor="staff")

    assert refund.status == "failed"
    assert (await shop.view(order.order_no)).status == OrderStatus.PAID


# ---- WeChat Pay v2 ------------------------------------------------------------------------------


async def test_v2_payment_refund_and_unsafe_xml(start_shop: ShopStarter) -> None:
    shop = await start_shop("wechatpay_v2")
    order = await shop.order()
    payment = await shop.payments.pay(order_no=order.order_no, openid=order.openid)
    assert payment.kind == "jsapi"

    status, answer = await shop.wechat.notify_payment(order.order_no)
    assert status == 200 and v2_parse(answer.encode())["return_code"] == "SUCCESS"
    assert (await shop.view(order.order_no)).status == OrderStatus.PAID
    (text,) = await shop.texts(order.openid)
    assert "支付成功" in text

    # an entity bomb is refused with WeChat's FAIL answer
    bomb = b'<!DOCTYPE xml [<!ENTITY a "aaaa">]><xml><return_code>&a;</return_code></xml>'
    status, answer = await post(shop.url("/pay/notify/wechatpay_v2"), {"Content-Type": "text/xml"}, bomb)
    assert status == 400 and v2_parse(answer.encode())["return_code"] == "FAIL"

    refund = await shop.payments.refund(order_id=order.id, amount_fen=order.payable_fen, reason="退货", actor="staff")
    assert (await shop.view(order.order_no)).status == OrderStatus.REFUNDING
    status, answer = await shop.wechat.notify_refund(
        refund.refund_no, url=shop.url("/pay/refund-notify/wechatpay_v2")
    )
    await shop.payments.drain()

    assert status == 200 and v2_parse(answer.encode())["return_code"] == "SUCCESS"
    view = await shop.view(order.order_no)
    assert (view.status, view.refunded_fen) == (OrderStatus.REFUNDED, order.payable_fen)
    assert await shop.payment_events() == ["applied", "succeeded"]


# ---- sandbox ------------------------------------------------------------------------------------


async def test_sandbox_money_takes_the_same_road(start_shop: ShopStarter) -> None:
    shop = await start_shop("sandbox")
    order = await shop.order()
    provider = shop.payments.provider
    assert isinstance(provider, SandboxProvider)
    assert (await shop.payments.pay(order_no=order.order_no, openid=order.openid)).kind == "sandbox"

    assert await provider.simulate_payment(
        order_no=order.order_no, amount_fen=order.payable_fen, notify_url=shop.payments.notify_url
    )
    assert (await shop.view(order.order_no)).status == OrderStatus.PAID
    # told first (messages of different transactions go out independently: a refund made the
    # same instant could be told before the payment, as CI once saw)
    assert "支付成功" in (await shop.texts(order.openid, 1))[0]

    # the sandbox posts the refund's notification to our own refund URL, in the background
    await shop.payments.refund(order_id=order.id, amount_fen=100, reason="x", actor="staff")
    texts = await shop.texts(order.openid, 2)
    assert "退款" in texts[-1]
    assert (await shop.view(order.order_no)).refunded_fen == 100
    async with db(shop.app)() as session:
        assert await session.scalar(select(func.count()).select_from(Refund).where(Refund.status == "succeeded")) == 1

"""Alipay beside the sandbox, end to end through the real app on SQLite: the cashier link is
opened at the fake Alipay gateway (real HTTP, RSA2 both ways), its notification arrives as
a signed form at /pay/notify/alipay, query, close and refund go to the gateway, and the
pay page offers Alipay (outside WeChat) or the "open in your browser" guide (inside)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select

from bot.app import create_app
from bot.config import Config, ConfigError
from bot.keys import PAYMENTS
from bot.outbound.sender import MemoryOutbox
from commerce.orders import placement as orders
from commerce.orders.models import OrderStatus
from commerce.orders.views import OrderView
from commerce.payments.models import PaymentEvent
from commerce.payments.service import PaymentService
from tests.bot.conftest import make_config, seed
from tests.bot.driver import Shop, db
from tests.bot.web.conftest import pay_path
from tests.fakes import PlacedOrder, insert_order, outbox_notices
from tests.fakes.alipay import APP_ID, RETRY_SCHEDULE, SELLER_ID, FakeAlipay, post_form, shared_keys

WECHAT_UA = "Mozilla/5.0 (iPhone) AppleWebKit/605.1.15 Mobile/15E148 MicroMessenger/8.0.47 NetType/WIFI"
SAFARI_UA = "Mozilla/5.0 (iPhone) AppleWebKit/605.1.15 Version/17.0 Mobile/15E148 Safari/604.1"


@dataclass
class AlipayShop:
    client: TestClient
    config: Config
    outbox: MemoryOutbox
    alipay: FakeAlipay

    @property
    def payments(self) -> PaymentService:
        return self.client.server.app[PAYMENTS]

    def url(self, path: str) -> str:
        return str(self.client.make_url(path))

    async def order(self) -> PlacedOrder:
        return await insert_order(db(self.client.server.app))

    async def view(self, order_no: str) -> OrderView:
        async with db(self.client.server.app)() as session:
            return await orders.get_order(session, order_no=order_no)

    async def events(self) -> list[str]:
        async with db(self.client.server.app)() as session:
            return sorted((await session.scalars(select(PaymentEvent.outcome))).all())

    async def open_cashier(self, order: PlacedOrder) -> str:
        """What the customer's browser does with the link: opens Alipay's cashier."""
        payment = await self.payments.pay(order_no=order.order_no, openid=order.openid, provider="alipay")
        assert payment.kind == "wap" and payment.pay_url
        async with aiohttp.ClientSession() as http, http.get(payment.pay_url) as resp:
            assert resp.status == 200, await resp.text()
        return payment.pay_url

    async def paid(self, order: PlacedOrder) -> None:
        await self.open_cashier(order)
        self.alipay.pay(order.order_no)
        assert await self.alipay.notify(order.order_no) == [(200, "success")]
        await self.payments.drain()


@pytest.fixture
async def alipay_shop(
    sqlite_url: str,
    tmp_path: Path,
    unused_tcp_port: int,
    aiohttp_client: Callable[..., Awaitable[TestClient]],
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    demo_catalog: None,
) -> AlipayShop:
    fake = FakeAlipay()
    gateway = await aiohttp_server(fake.app())
    private_key, public_key = shared_keys().write(tmp_path / "keys")
    await seed(sqlite_url)
    config = make_config(
        sqlite_url,
        server={"base_url": f"http://127.0.0.1:{unused_tcp_port}"},
        pay={"methods": ["wechat", "alipay"]},
        alipay={
            "app_id": APP_ID,
            "seller_id": SELLER_ID,
            "private_key_path": str(private_key),
            "public_key_path": str(public_key),
            "gateway_url": str(gateway.make_url("/gateway.do")),
        },
        scheduler={"enabled": False},
    )
    outbox = MemoryOutbox()
    client = await aiohttp_client(create_app(config, outbound=outbox), server_kwargs={"port": unused_tcp_port})
    return AlipayShop(client, config, outbox, fake)


async def test_an_alipay_order_is_paid_by_its_verified_notification_and_the_customer_told_once(
    alipay_shop: AlipayShop,
) -> None:
    shop = alipay_shop
    order = await shop.order()
    link = await shop.open_cashier(order)
    assert link.startswith(shop.config.alipay.gateway_url + "?")
    (opened,) = shop.alipay.called("alipay.trade.wap.pay")
    assert opened.fields["sign_type"] == "RSA2"
    assert opened.fields["notify_url"] == shop.url("/pay/notify/alipay")
    assert opened.biz["total_amount"] == f"{order.payable_fen // 100}.{order.payable_fen % 100:02d}"

    shop.alipay.pay(order.order_no)
    assert await shop.alipay.notify(order.order_no) == [(200, "success")]
    await shop.payments.drain()

    view = await shop.view(order.order_no)
    assert (view.status, view.paid_fen, view.pay_provider) == (OrderStatus.PAID, order.payable_fen, "alipay")
    assert view.pay_transaction_id == shop.alipay.trades[order.order_no].trade_no
    # replayed (Alipay's retries, or someone repeating it): answered success, nothing changes
    replay = shop.alipay.notification(order.order_no)
    assert await post_form(shop.url("/pay/notify/alipay"), replay) == (200, "success")
    assert await shop.alipay.notify(order.order_no, fields=replay) == [(200, "success")]
    await shop.payments.drain()
    assert await shop.events() == ["applied"]
    told = [n.template for n in await outbox_notices(db(shop.client.server.app), order.openid)]
    assert told == ["order_paid"]


async def test_forged_and_foreign_notifications_change_nothing(alipay_shop: AlipayShop) -> None:
    shop = alipay_shop
    order = await shop.order()
    await shop.open_cashier(order)
    shop.alipay.pay(order.order_no)
    url = shop.url("/pay/notify/alipay")
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=1024)

    forged = shop.alipay.notification(order.order_no, key=stranger)
    assert await post_form(url, forged) == (400, "fail")
    tampered = {**shop.alipay.notification(order.order_no), "total_amount": "0.01"}
    assert await post_form(url, tampered) == (400, "fail")
    unsigned = {k: v for k, v in shop.alipay.notification(order.order_no).items() if k != "sign"}
    assert await post_form(url, unsigned) == (400, "fail")
    # signed by Alipay, but for another app or another merchant: not ours, refused
    assert await post_form(url, shop.alipay.notification(order.order_no, app_id="2021000000000000")) == (
        400,
        "fail",
    )
    assert await post_form(url, shop.alipay.notification(order.order_no, seller_id="2088000000000000")) == (
        400,
        "fail",
    )
    assert await post_form(url, {"garbage": "x"}) == (400, "fail")
    await shop.payments.drain()
    assert await shop.events() == []
    assert (await shop.view(order.order_no)).status == OrderStatus.PENDING_PAYMENT

    # a genuine notification of a wrong amount is recorded, never pays the order, and the
    # money goes back through the gateway
    wrong = shop.alipay.notification(order.order_no, total_amount="0.01", receipt_amount="0.01")
    assert await post_form(url, wrong) == (200, "success")
    await shop.payments.drain()
    assert (await shop.view(order.order_no)).status == OrderStatus.PENDING_PAYMENT
    (refund_call,) = shop.alipay.called("alipay.trade.refund")
    assert refund_call.biz["refund_amount"] == "0.01"
    assert await shop.events() == ["amount_mismatch_refunded", "succeeded"]


async def test_a_refund_goes_through_the_gateway_and_its_signed_answer_settles_it(
    alipay_shop: AlipayShop,
) -> None:
    shop = alipay_shop
    order = await shop.order()
    await shop.paid(order)

    refund = await shop.payments.refund(order_id=order.id, amount_fen=100, reason="少发一件", actor="staff:o_owner")

    (call,) = shop.alipay.called("alipay.trade.refund")
    assert call.biz == {
        "out_trade_no": order.order_no,
        "refund_amount": "1.00",
        "out_request_no": refund.refund_no,
        "refund_reason": "少发一件",
    }
    assert refund.status == "succeeded"
    view = await shop.view(order.order_no)
    assert (view.status, view.refunded_fen) == (OrderStatus.PAID, 100)
    # the rest: the order is refunded; asking again with the same number moves no money twice
    rest = await shop.payments.refund(
        order_id=order.id, amount_fen=order.payable_fen - 100, reason="", actor="staff:o_owner"
    )
    assert rest.status == "succeeded"
    assert (await shop.view(order.order_no)).status == OrderStatus.REFUNDED
    await shop.payments.drain()
    told = [n.template for n in await outbox_notices(db(shop.client.server.app), order.openid)]
    assert told.count("refund_succeeded") == 2


async def test_query_and_close_go_to_the_gateway(alipay_shop: AlipayShop) -> None:
    shop = alipay_shop
    never_opened = await shop.order()
    await shop.payments.close(order_no=never_opened.order_no)  # no trade at Alipay: quietly nothing
    assert [c.biz for c in shop.alipay.called("alipay.trade.close")] == [{"out_trade_no": never_opened.order_no}]

    opened = await shop.order()
    await shop.open_cashier(opened)
    await shop.payments.close(order_no=opened.order_no)
    assert shop.alipay.trades[opened.order_no].status == "TRADE_CLOSED"

    # a payment whose notification never came is found by asking, and recorded once
    missed = await shop.order()
    await shop.open_cashier(missed)
    assert await shop.payments.check_payment(order_no=missed.order_no, provider="alipay") is None
    shop.alipay.pay(missed.order_no)
    assert await shop.payments.check_payment(order_no=missed.order_no, provider="alipay") == "recorded"
    assert await shop.alipay.notify(missed.order_no) == [(200, "success")]  # then a duplicate
    await shop.payments.drain()
    assert (await shop.view(missed.order_no)).status == OrderStatus.PAID
    assert await shop.events() == ["applied"]


async def test_the_pay_page_offers_alipay_outside_wechat_and_the_guide_inside(alipay_shop: AlipayShop) -> None:
    shop = alipay_shop
    order = await shop.order()
    async with db(shop.client.server.app)() as session:
        view = await orders.get_order(session, order_no=order.order_no)
    path = pay_path(shop.config, view)

    inside = await shop.client.get(path, headers={"User-Agent": WECHAT_UA})
    html = await inside.text()
    assert inside.status == 200
    assert 'id="alipay-guide"' in html and "在浏览器打开" in html
    assert 'id="alipay-pay"' not in html and "gateway.do" not in html
    # the link does not leave WeChat for Alipay either: the page (with its guide) again
    stay = await shop.client.get(path + "?pay=alipay", headers={"User-Agent": WECHAT_UA}, allow_redirects=False)
    assert stay.status == 200 and 'id="alipay-guide"' in await stay.text()

    outside = await shop.client.get(path, headers={"User-Agent": SAFARI_UA})
    html = await outside.text()
    assert 'id="alipay-pay"' in html and 'href="?pay=alipay"' in html and 'id="alipay-guide"' not in html
    assert 'id="simulate"' in html  # the shop's first method (the sandbox) stays
    to_alipay = await shop.client.get(path + "?pay=alipay", headers={"User-Agent": SAFARI_UA}, allow_redirects=False)
    assert to_alipay.status == 302
    location = to_alipay.headers["Location"]
    assert location.startswith(shop.config.alipay.gateway_url + "?")
    async with aiohttp.ClientSession() as http, http.get(location) as cashier:
        assert cashier.status == 200  # the fake gateway took the signed link
    (opened,) = shop.alipay.called("alipay.trade.wap.pay")
    assert opened.fields["return_url"] == shop.url(path + "?from=alipay")

    # paid at Alipay, back on the page before the notification: Alipay is asked, and it is paid
    shop.alipay.pay(order.order_no)
    back = await shop.client.get(path + "?from=alipay", headers={"User-Agent": SAFARI_UA})
    assert "已经支付" in await back.text()
    assert [c.biz for c in shop.alipay.called("alipay.trade.query")] == [{"out_trade_no": order.order_no}]
    assert await shop.alipay.notify(order.order_no) == [(200, "success")]
    await shop.payments.drain()
    told = [n.template for n in await outbox_notices(db(shop.client.server.app), order.openid)]
    assert told == ["order_paid"]


async def test_without_alipay_the_page_offers_none_and_its_notify_path_is_not_found(
    sqlite_url: str, aiohttp_client: Callable[..., Awaitable[TestClient]], demo_catalog: None
) -> None:
    await seed(sqlite_url)
    config = make_config(sqlite_url)
    client = await aiohttp_client(create_app(config, outbound=MemoryOutbox()))
    order = await insert_order(db(client.server.app))
    async with db(client.server.app)() as session:
        view = await orders.get_order(session, order_no=order.order_no)
    html = await (await client.get(pay_path(config, view), headers={"User-Agent": WECHAT_UA})).text()
    assert 'id="alipay-guide"' not in html and 'id="alipay-pay"' not in html and "支付宝" not in html
    assert (await client.post("/pay/notify/alipay", data=b"a=b")).status == 404


async def test_the_fake_gateway_retries_on_alipays_schedule_until_success(alipay_shop: AlipayShop) -> None:
    shop = alipay_shop
    order = await shop.order()
    await shop.open_cashier(order)
    shop.alipay.pay(order.order_no)
    waits: list[float] = []

    async def no_wait(seconds: float) -> None:
        waits.append(seconds)

    attempts = await shop.alipay.notify(order.order_no, url=shop.url("/pay/notify/nobody"), sleep=no_wait)
    assert [status for status, _ in attempts] == [404] * 8
    assert waits == list(RETRY_SCHEDULE) and sum(waits) / 3600 == pytest.approx(24.4, abs=0.1)


@pytest.mark.parametrize(
    ("sections", "complaint"),
    [
        ({"pay": {"methods": ["alipay"]}}, "pay.methods"),
        ({"pay": {"methods": ["wechat", "paypal"]}}, "pay.methods"),
        ({"pay": {"methods": ["wechat", "alipay"]}}, "alipay.app_id"),
        (
            {"pay": {"methods": ["wechat", "alipay"]},
             "alipay": {"app_id": "1", "seller_id": "2", "private_key_path": "a", "public_key_path": "b",
                        "gateway_url": "ftp://x"}},
            "alipay.gateway_url",
        ),
    ],
)
def test_alipay_settings_are_checked(sections: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        make_config("sqlite+aiosqlite:///x.db", **sections)


async def test_asked_about_alipay_the_shop_says_how(alipay_shop: AlipayShop) -> None:
    shop = alipay_shop
    user = Shop(shop.client, shop.config, shop.outbox).user("o_asker")
    answer = (await user.say("能用支付宝吗")).text
    assert "支付宝" in answer and "在浏览器打开" in answer, answer

"""The payment page, through the real app: links, refusals, and sandbox payments end to end."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from aiohttp.test_utils import TestServer
from sqlalchemy import select

from bot.keys import PAYMENTS
from commerce.orders.actions import CancelledBy, cancel_order, expire_due_orders
from commerce.orders.placement import get_order
from commerce.orders.views import OrderView
from commerce.payments.models import PaymentEvent
from tests.bot.driver import Shop, db
from tests.bot.web.conftest import REAL_PAY, ShopFactory, pay_path, place_apple_order
from tests.fakes.wechatpay import API_V2_KEY, MCHID, Failure, FakeWeChatPay

WECHAT_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.47(0x18002f2c) NetType/WIFI Language/zh_CN"
)


async def page(shop: Shop, path: str, **headers: str) -> tuple[int, str]:
    response = await shop.client.get(path, headers=headers)
    return response.status, await response.text()


async def order_now(shop: Shop, order_no: str) -> OrderView:
    async with db(shop.client.app)() as session:
        return await get_order(session, order_no=order_no)


def assert_nothing_secret(shop: Shop, html: str, order: OrderView, path: str) -> None:
    token = path.rsplit("/", 1)[1]
    assert order.openid not in html
    assert token not in html and token[:24] not in html and token[-24:] not in html
    assert shop.config.pay.sandbox_secret not in html
    assert shop.config.wechat.token not in html


# ---------------------------------------------------------------- a good link


async def test_a_good_link_shows_the_order(web_shop: Shop) -> None:
    order = await place_apple_order(web_shop.client.app)
    path = pay_path(web_shop.config, order)
    response = await web_shop.client.get(path)
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    html = await response.text()
    assert "测试小店" in html
    assert order.order_no in html
    assert "烟台红富士苹果" in html and "3斤装" in html
    assert "¥29.90 × 2" in html and "¥59.80" in html
    assert order.payable_fen == order.goods_fen + order.delivery_fen
    assert f"{order.payable_fen // 100}.{order.payable_fen % 100:02d}" in html
    seconds = int(re.search(r'data-seconds-left="(\d+)"', html).group(1))
    assert 29 * 60 < seconds <= 30 * 60
    assert "模拟支付" in html and "Simulate" not in html  # sandbox, one language
    assert 'id="wechat-pay"' not in html
    assert_nothing_secret(web_shop, html, order, path)


async def test_the_sandbox_shows_the_simulation_also_inside_wechat(web_shop: Shop) -> None:
    order = await place_apple_order(web_shop.client.app)
    status, html = await page(web_shop, pay_path(web_shop.config, order), **{"User-Agent": WECHAT_UA})
    assert status == 200
    assert 'id="simulate"' in html and 'id="wechat-pay"' not in html


async def test_with_wechat_pay_the_page_offers_jsapi_inside_wechat_only(make_web_shop: ShopFactory) -> None:
    shop = await make_web_shop(pay=REAL_PAY)
    order = await place_apple_order(shop.client.app)
    path = pay_path(shop.config, order)
    status, html = await page(shop, path, **{"User-Agent": WECHAT_UA})
    assert status == 200
    assert "微信支付" in html and 'id="wechat-pay"' in html
    assert f"微信支付 ¥{order.payable_fen / 100:.2f}</button>" in html  # the button names what it charges
    assert "getBrandWCPayRequest" in html
    assert 'id="simulate"' not in html and "模拟支付" not in html
    assert_nothing_secret(shop, html, order, path)
    status, html = await page(shop, path, **{"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/120"})
    assert status == 200
    assert 'id="wechat-pay"' not in html and 'id="simulate"' not in html
    assert "请在微信中打开" in html


# ---------------------------------------------------------------- links that cannot be paid


async def test_an_expired_link_is_410(web_shop: Shop) -> None:
    order = await place_apple_order(web_shop.client.app, now=datetime.now(UTC) - timedelta(hours=2))
    status, html = await page(web_shop, pay_path(web_shop.config, order))
    assert status == 410
    assert "支付链接已过期" in html and "has expired" not in html
    assert order.openid not in html
    status, html = await page(web_shop, pay_path(web_shop.config, order) + "?lang=en")
    assert status == 410 and "has expired" in html and "支付链接已过期" not in html


async def test_an_order_past_its_reservation_is_410_even_with_a_longer_link(web_shop: Shop) -> None:
    order = await place_apple_order(web_shop.client.app, now=datetime.now(UTC) - timedelta(hours=2))
    path = pay_path(web_shop.config, order, expires_at=datetime.now(UTC) + timedelta(hours=1))
    status, html = await page(web_shop, path)
    assert status == 410 and "支付链接已过期" in html
    assert (await web_shop.client.post(path + "/simulate")).status == 410


async def test_someone_elses_order_is_403(web_shop: Shop) -> None:
    order = await place_apple_order(web_shop.client.app, "o_owner")
    path = pay_path(web_shop.config, order, openid="o_stranger")
    status, html = await page(web_shop, path)
    assert status == 403
    assert "这不是您的订单" in html
    assert "o_owner" not in html and "o_stranger" not in html
    assert (await web_shop.client.post(path + "/simulate")).status == 403
    assert (await web_shop.client.get(path + "/status")).status == 403
    assert (await order_now(web_shop, order.order_no)).status == "pending_payment"


async def test_a_tampered_link_is_403(web_shop: Shop) -> None:
    order = await place_apple_order(web_shop.client.app)
    path = pay_path(web_shop.config, order)
    token = path.rsplit("/", 1)[1]
    forged = token[:30] + ("A" if token[30] != "A" else "B") + token[31:]
    status, html = await page(web_shop, f"/pay/{forged}")
    assert status == 403
    assert "链接无效" in html
    other_key = pay_path(web_shop.config.replace(server={"secret_key": "another-secret"}), order)
    assert (await page(web_shop, other_key))[0] == 403
    assert (await web_shop.client.post(f"/pay/{forged}/simulate")).status == 403
    assert (await order_now(web_shop, order.order_no)).status == "pending_payment"


async def test_unknown_links_and_orders_are_404(web_shop: Shop) -> None:
    for path in ("/pay/garbage", "/pay/abc.def", "/pay/" + "x" * 500):
        status, html = await page(web_shop, path)
        assert status == 404, path
        assert "找不到" in html
    order = await place_apple_order(web_shop.client.app)
    ghost = OrderView(**{**order.__dict__, "order_no": "SF00000000000000000000"})
    status, html = await page(web_shop, pay_path(web_shop.config, ghost))
    assert status == 404 and "找不到这个订单" in html


async def test_a_cancelled_order_is_409(web_shop: Shop) -> None:
    order = await place_apple_order(web_shop.client.app)
    async with db(web_shop.client.app)() as session, session.begin():
        await cancel_order(session, order_id=order.id, by=CancelledBy.CUSTOMER, now=datetime.now(UTC))
    path = pay_path(web_shop.config, order)
    status, html = await page(web_shop, path)
    assert status == 409 and "订单已取消" in html
    response = await web_shop.client.post(path + "/simulate")
    assert response.status == 409 and (await response.json())["error"] == "cancelled"
    assert (await (await web_shop.client.get(path + "/status")).json())["status"] == "cancelled"


# ---------------------------------------------------------------- paying in the sandbox


async def test_simulate_pays_through_the_real_notify_path(web_shop: Shop) -> None:
    order = await place_apple_order(web_shop.client.app, "o_payer_2")
    path = pay_path(web_shop.config, order)
    before = await (await web_shop.client.get(path + "/status")).json()
    assert before == {"status": "pending_payment", "paid": False}

    response = await web_shop.client.post(path + "/simulate")
    assert response.status == 200, await response.text()
    assert await response.json() == {"ok": True, "status": "paid"}

    paid = await order_now(web_shop, order.order_no)
    assert paid.status == "paid" and paid.paid_fen == order.payable_fen and paid.pay_provider == "sandbox"
    async with db(web_shop.client.app)() as session:
        events = (await session.scalars(select(PaymentEvent).where(PaymentEvent.order_id == order.id))).all()
    assert [(e.provider, e.kind, e.amount_fen, e.outcome) for e in events] == [
        ("sandbox", "payment", order.payable_fen, "applied")
    ]
    assert events[0].payload["payer"] == {"openid": "o_payer_2"}

    after = await (await web_shop.client.get(path + "/status")).json()
    assert after == {"status": "paid", "paid": True}
    await web_shop.client.app[PAYMENTS].drain()
    (notice,) = await web_shop.outbox.wait_for("o_payer_2")
    assert order.order_no in notice.text or "支付" in notice.text

    # Paid: the page says so, and a second simulation changes nothing.
    status, html = await page(web_shop, path)
    assert status == 409 and "已经支付" in html
    again = await web_shop.client.post(path + "/simulate")
    assert again.status == 409 and (await again.json())["error"] == "paid"
    assert (await order_now(web_shop, order.order_no)).paid_fen == order.payable_fen


async def test_a_paid_order_says_paid_also_after_its_link_expired(web_shop: Shop) -> None:
    order = await place_apple_order(web_shop.client.app, "o_early_payer")
    assert (await web_shop.client.post(pay_path(web_shop.config, order) + "/simulate")).status == 200
    stale = pay_path(web_shop.config, order, expires_at=datetime.now(UTC) - timedelta(seconds=5))
    status, html = await page(web_shop, stale)
    assert status == 409 and "已经支付" in html


async def test_status_still_answers_after_the_link_expired(web_shop: Shop) -> None:
    order = await place_apple_order(web_shop.client.app)
    stale = pay_path(web_shop.config, order, expires_at=datetime.now(UTC) - timedelta(seconds=5))
    assert (await page(web_shop, stale))[0] == 410
    response = await web_shop.client.get(stale + "/status")
    assert response.status == 200 and (await response.json())["status"] == "pending_payment"


async def test_simulation_and_jsapi_exist_only_where_they_make_sense(make_web_shop: ShopFactory) -> None:
    sandbox = await make_web_shop()
    order = await place_apple_order(sandbox.client.app)
    assert (await sandbox.client.post(pay_path(sandbox.config, order) + "/jsapi")).status == 404

    real = await make_web_shop(pay=REAL_PAY)
    order = await place_apple_order(real.client.app)
    path = pay_path(real.config, order)
    assert (await real.client.post(path + "/simulate")).status == 404
    assert (await order_now(real, order.order_no)).status == "pending_payment"
    # a refused link never reaches the provider
    expired = pay_path(real.config, order, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    response = await real.client.post(expired + "/jsapi")
    assert response.status == 410 and (await response.json())["error"] == "expired"


async def test_the_page_refuses_other_methods(web_shop: Shop) -> None:
    order = await place_apple_order(web_shop.client.app)
    path = pay_path(web_shop.config, order)
    assert (await web_shop.client.get(path + "/simulate")).status == 405
    assert (await web_shop.client.post(path)).status == 405


async def test_inside_wechat_the_page_gets_jsapi_params_from_the_provider(
    make_web_shop: ShopFactory, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    wechat_pay = FakeWeChatPay()
    server = await aiohttp_server(wechat_pay.app())
    shop = await make_web_shop(
        pay={
            "provider": "wechatpay_v2",
            "mchid": MCHID,
            "api_v2_key": API_V2_KEY,
            "api_base_url": str(server.make_url("")).rstrip("/"),
        }
    )
    order = await place_apple_order(shop.client.app, "o_wechat_payer")
    response = await shop.client.post(pay_path(shop.config, order) + "/jsapi")
    assert response.status == 200, await response.text()
    params = (await response.json())["jsapi_params"]
    assert {"appId", "timeStamp", "nonceStr", "package", "signType", "paySign"} <= set(params)
    assert params["appId"] == shop.config.pay_appid
    assert params["package"] == f"prepay_id={wechat_pay.orders[order.order_no].prepay_id}"
    (prepay,) = wechat_pay.requests("unifiedorder")
    assert prepay.data["openid"] == "o_wechat_payer" and prepay.data["total_fee"] == str(order.payable_fen)
    assert (await order_now(shop, order.order_no)).status == "pending_payment"  # paid only by the notify

    wechat_pay.fail_next(Failure(status=500), times=3)
    failed = await shop.client.post(pay_path(shop.config, order) + "/jsapi")
    assert failed.status == 502 and (await failed.json())["error"] == "provider"


async def test_the_whole_journey_from_the_chat_simulator_to_paid(web_shop: Shop) -> None:
    """Search, buy and check out in /dev/chat, follow the card's link, pay in the sandbox."""
    client = web_shop.client

    async def say(text: str) -> dict:
        response = await client.post("/dev/chat/send", json={"openid": "o_journey", "text": text})
        assert response.status == 200, await response.text()
        return (await response.json())["reply"]

    results = (await say("pingguo"))["text"]
    number = re.search(r"^(\d+)\. 烟台红富士苹果", results, re.M).group(1)
    assert (await say(number))["kind"] == "news"
    await say("加入购物车 2")
    assert "合计 ¥59.80" in (await say("1"))["text"]  # 3斤装: the add asked for is done once it is chosen
    await say("结算")
    await say("张三 13800138000 上海市浦东新区世纪大道100号")
    await say("确认")
    card = await say("确认")
    assert card["kind"] == "news"
    (article,) = card["articles"]
    assert article["url"].startswith("https://shop.example.com/pay/")
    path = article["url"][len("https://shop.example.com") :]

    status, html = await page(web_shop, path)
    assert status == 200 and "烟台红富士苹果" in html and "¥67.80" in html
    assert (await client.post(path + "/simulate")).status == 200
    assert (await (await client.get(path + "/status")).json())["paid"] is True
    await client.app[PAYMENTS].drain()
    outbox = await (await client.get("/dev/chat/outbox", params={"openid": "o_journey", "after": "0"})).json()
    assert any("支付成功" in m["text"] for m in outbox["messages"]), outbox


async def test_an_order_the_expiry_job_closed_is_410_not_cancelled(web_shop: Shop) -> None:
    order = await place_apple_order(web_shop.client.app, now=datetime.now(UTC) - timedelta(hours=2))
    async with db(web_shop.client.app)() as session, session.begin():
        await expire_due_orders(session, now=datetime.now(UTC))  # unless the app's scheduler did already
    assert (await order_now(web_shop, order.order_no)).status == "cancelled"
    status, html = await page(web_shop, pay_path(web_shop.config, order))
    assert status == 410 and "支付链接已过期" in html

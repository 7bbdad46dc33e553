"""A top-up paid with Alipay where the shop enabled it: the top-up page sends a browser to
the fake Alipay gateway's cashier (inside WeChat it shows the open-in-browser guide), and
Alipay's signed notification credits the balance once, replays changing nothing."""

from __future__ import annotations

import aiohttp
from sqlalchemy import select
from yarl import URL

from commerce.balance import ledger, topups
from commerce.customers.models import Customer
from tests.bot.driver import ChatUser, db
from tests.bot.handlers.test_alipay import SAFARI_UA, WECHAT_UA, AlipayShop, alipay_shop  # noqa: F401
from tests.fakes.alipay import post_form

CUSTOMER = "o_alipay_saver"


async def test_a_top_up_paid_with_alipay_is_credited_once(alipay_shop: AlipayShop) -> None:  # noqa: F811
    shop = alipay_shop
    app = shop.client.server.app
    async with db(app)() as session, session.begin():
        await topups.set_plan(session, pay_fen=10000, bonus_fen=1000)
    customer = ChatUser(shop.client, shop.config, CUSTOMER)
    card = await customer.say("充值 100")
    path = URL(card.articles[0].url).path

    inside = await shop.client.get(path, headers={"User-Agent": WECHAT_UA})
    assert 'id="alipay-guide"' in await inside.text()
    outside = await shop.client.get(
        path + "?pay=alipay", headers={"User-Agent": SAFARI_UA}, allow_redirects=False
    )
    assert outside.status == 302
    cashier = outside.headers["Location"]
    assert cashier.startswith(shop.config.alipay.gateway_url + "?")
    async with aiohttp.ClientSession() as http, http.get(cashier) as resp:
        assert resp.status == 200
    topup_no = next(t for t in shop.alipay.trades if t.startswith("TU"))

    shop.alipay.pay(topup_no)
    assert await shop.alipay.notify(topup_no) == [(200, "success")]
    replay = shop.alipay.notification(topup_no)
    assert await post_form(shop.url("/pay/notify/alipay"), replay) == (200, "success")
    await shop.payments.drain()

    async with db(app)() as session:
        customer_id = await session.scalar(select(Customer.id).where(Customer.openid == CUSTOMER))
        assert customer_id is not None
        got = await ledger.balance_of(session, customer_id)
    assert (got.balance_fen, got.bonus_fen) == (11000, 1000)
    assert sum("充值成功" in m.text for m in shop.outbox.for_user(CUSTOMER)) == 1

"""Stored balance as customers and staff use it, through the real app on SQLite and
PostgreSQL: signed WeChat messages in, WeChat Pay v3 over HTTP to the fake WeChat Pay
server, its signed notifications back to /pay/notify. Staff set a plan (pay 100 get 110,
confirmed, audited; a stranger is refused), a customer tops up and receives 110 once
however many notifications arrive (a forged one changes nothing), buys with part balance
and part WeChat Pay, cancels an unpaid order and gets the held balance back, and a refund
returns the balance part; the nightly reconciliation finds a broken ledger row and alerts
the owner."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select, update
from yarl import URL

from bot.app import create_app
from bot.keys import JOBS, PAYMENTS
from bot.outbound.sender import MemoryOutbox
from commerce.balance import ledger
from commerce.balance.models import BalanceAccount, TopUp, TopUpPlan
from commerce.customers.models import Customer
from commerce.orders import placement as orders
from commerce.orders.models import OrderStatus
from commerce.payments.models import Refund
from commerce.staff.models import AuditEntry
from scheduler.runner import run_job
from tests.bot.conftest import make_config, seed
from tests.bot.driver import ChatUser, Shop, db
from tests.bot.test_shopping_chat import _open
from tests.fakes.wechatpay import (
    API_V3_KEY,
    MCHID,
    MERCHANT_SERIAL_NO,
    PLATFORM_PUBLIC_KEY_ID,
    FakeWeChatPay,
    post,
    shared_keys,
)

OWNER = "o_owner_0001"
STRANGER = "o_stranger_77"
CUSTOMER = "o_balance_cust1"
IN_WECHAT = {"User-Agent": "Mozilla/5.0 (iPhone) MicroMessenger/8.0.50"}


@dataclasses.dataclass
class PayShop:
    shop: Shop
    wechat: FakeWeChatPay

    @property
    def app(self) -> Any:
        return self.shop.client.app

    def user(self, openid: str) -> ChatUser:
        return self.shop.user(openid)

    def texts(self, openid: str) -> list[str]:
        return [m.text for m in self.shop.outbox.for_user(openid)]

    async def balances(self, openid: str = CUSTOMER) -> ledger.Balances:
        async with db(self.app)() as session:
            customer_id = await session.scalar(select(Customer.id).where(Customer.openid == openid))
            assert customer_id is not None
            return await ledger.balance_of(session, customer_id)

    async def order(self, order_no: str) -> orders.OrderView:
        async with db(self.app)() as session:
            return await orders.get_order(session, order_no=order_no)


@pytest.fixture
async def start(
    db_url: str,
    tmp_path: Path,
    unused_tcp_port: int,
    aiohttp_client: Callable[..., Awaitable[TestClient]],
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    demo_catalog: None,
) -> PayShop:
    wechat = FakeWeChatPay()
    base = str((await aiohttp_server(wechat.app())).make_url("")).rstrip("/")
    private_key, public_key = shared_keys().write(tmp_path / "keys")
    await seed(db_url)
    config = make_config(
        db_url,
        server={"base_url": f"http://127.0.0.1:{unused_tcp_port}"},
        pay={
            "provider": "wechatpay_v3",
            "mchid": MCHID,
            "api_base_url": base,
            "api_v3_key": API_V3_KEY,
            "merchant_serial_no": MERCHANT_SERIAL_NO,
            "private_key_path": str(private_key),
            "platform_public_key_path": str(public_key),
            "platform_public_key_id": PLATFORM_PUBLIC_KEY_ID,
        },
        staff={"owners": [OWNER]},
        scheduler={"enabled": False},
    )
    outbox = MemoryOutbox()
    client = await aiohttp_client(
        create_app(config, outbound=outbox), server_kwargs={"port": unused_tcp_port}
    )
    return PayShop(Shop(client, config, outbox), wechat)


async def _plan_set(shop: PayShop) -> None:
    refused = await shop.user(STRANGER).say("/topup set 100 10")
    assert "充值方案" not in refused.text
    owner = shop.user(OWNER)
    ask = await owner.say("/topup set 100 10")
    assert "新增充值方案：充 ¥100.00 送 ¥10.00（到账 ¥110.00）" in ask.text
    async with db(shop.app)() as session:
        assert (
            await session.scalar(select(func.count()).select_from(TopUpPlan)) == 0
        )  # not before the confirmation
    assert "已保存充值方案" in (await owner.say("确认")).text
    assert "充 ¥100.00 送 ¥10.00" in (await owner.say("/topup list")).text
    async with db(shop.app)() as session:
        audited = (
            await session.scalars(select(AuditEntry).where(AuditEntry.command == "topup"))
        ).all()
    done = [a for a in audited if a.actor == OWNER and a.after]
    assert done and done[-1].after == {"pay_fen": 10000, "bonus_fen": 1000, "receive_fen": 11000}
    assert all(a.outcome == "refused" for a in audited if a.actor == STRANGER)


async def _pay_in_wechat(shop: PayShop, url: str) -> str:
    """Open a pay (or top-up) page inside WeChat and press WeChat Pay: the prepay reaches the
    fake WeChat Pay server; its out_trade_no."""
    path = URL(url).path
    page = await shop.shop.client.get(path, headers=IN_WECHAT)
    assert page.status == 200, await page.text()
    params = await shop.shop.client.post(path + "/jsapi", headers=IN_WECHAT)
    assert params.status == 200, await params.text()
    return list(shop.wechat.orders)[-1]


async def _topped_up(shop: PayShop) -> None:
    customer = shop.user(CUSTOMER)
    plans = await customer.say("充值")
    assert "充 ¥100.00 送 ¥10.00，到账 ¥110.00" in plans.text
    assert "没有这个充值金额" in (await customer.say("充值 50")).text
    card = await customer.say("充值 100")
    assert card.kind == "news" and "/topup/" in card.articles[0].url
    topup_no = await _pay_in_wechat(shop, card.articles[0].url)
    assert topup_no.startswith("TU") and shop.wechat.orders[topup_no].amount_fen == 10000

    for _ in range(3):  # the notification and WeChat Pay's retries of it
        assert (await shop.wechat.notify_payment(topup_no))[0] == 204
    from cryptography.hazmat.primitives.asymmetric import rsa

    forged_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    resource = shop.wechat.v3_payment_resource(
        topup_no, 10000, transaction_id="4200000000000099", openid=CUSTOMER
    )
    headers, body = shop.wechat.v3_notification(resource, key=forged_key)
    status, _ = await post(
        str(shop.shop.client.make_url("/pay/notify/wechatpay_v3")), headers, body
    )
    assert status >= 400
    await shop.app[PAYMENTS].drain()

    got = await shop.balances()
    assert (got.balance_fen, got.bonus_fen) == (11000, 1000)
    assert sum("充值成功" in t for t in shop.texts(CUSTOMER)) == 1
    async with db(shop.app)() as session:
        assert await session.scalar(select(TopUp.status)) == "credited"
    shown = await customer.say("余额")
    assert "我的余额：¥110.00" in shown.text and "赠送金额 ¥10.00" in shown.text
    mine = await customer.say("我的")  # the account shows it beside the level
    assert "储值余额：¥110.00（含赠送 ¥10.00）" in mine.text, mine.text


async def _place(customer: ChatUser, *, balance: str | None) -> tuple[str, str]:
    """An order of two bananas placed in chat, `balance` said at the review: (order_no, card url)."""
    await _open(customer, "香蕉", "香蕉")
    await customer.say("加入购物车 2")
    review = await customer.say("结算")
    if "确认订单" not in review.text:
        await customer.say("张三 13800138000 上海市浦东新区世纪大道100号")
        review = await customer.say("确认")
    assert "余额：可用" in review.text, review.text
    if balance is not None:
        review = await customer.say(balance)
        assert "余额支付：-" in review.text, review.text
    card = await customer.say("确认")
    assert card.kind == "news", card
    return card.articles[0].description.split("订单号 ")[1].split()[0], card.articles[0].url


async def test_top_up_then_buy_with_part_balance_cancel_and_refund_in_chat(start: PayShop) -> None:
    shop = start
    await _plan_set(shop)
    await _topped_up(shop)
    customer = shop.user(CUSTOMER)

    # part balance (5 yuan), part WeChat Pay
    order_no, url = await _place(customer, balance="用余额 5")
    placed = await shop.order(order_no)
    assert (placed.balance_fen, placed.due_fen) == (500, placed.payable_fen - 500)
    assert (await shop.balances()).held_fen == 500
    assert await _pay_in_wechat(shop, url) == order_no
    assert shop.wechat.orders[order_no].amount_fen == placed.payable_fen - 500
    assert (await shop.wechat.notify_payment(order_no))[0] == 204
    paid = await shop.order(order_no)
    assert (paid.status, paid.paid_fen) == (OrderStatus.PAID, placed.payable_fen)
    got = await shop.balances()
    assert (got.balance_fen, got.held_fen) == (10500, 0)

    # an unpaid order that holds balance, cancelled: the balance comes back
    second, _url = await _place(customer, balance="用余额 3")
    assert (await shop.balances()).held_fen == 300
    await customer.say("订单")
    assert (await customer.say("1")).kind == "news"
    await customer.say("取消订单")
    assert (await shop.order(second)).status == OrderStatus.CANCELLED
    got = await shop.balances()
    assert (got.balance_fen, got.held_fen) == (10500, 0)

    # the paid order refunded in full by staff: the provider part to WeChat Pay, 5 yuan to the balance
    owner = shop.user(OWNER)
    assert "确认码" in (await owner.say(f"/refund {order_no}")).text
    assert "发起退款" in (await owner.say("确认")).text
    async with db(shop.app)() as session:
        refund = await session.scalar(select(Refund))
    assert refund is not None and (refund.amount_fen, refund.balance_fen) == (
        placed.payable_fen,
        500,
    )
    assert (
        shop.wechat.orders[order_no].refunds[refund.refund_no]["amount"] == placed.payable_fen - 500
    )
    url_back = str(shop.shop.client.make_url("/pay/refund-notify/wechatpay_v3"))
    assert (await shop.wechat.notify_refund(refund.refund_no, url=url_back))[0] == 204
    assert (await shop.order(order_no)).status == OrderStatus.REFUNDED
    assert (await shop.balances()).balance_fen == 11000

    # the nightly reconciliation: nothing to say, then a broken row alerts the owner
    jobs = shop.app[JOBS]
    assert await run_job("reconcile_balances", jobs) == 0
    async with db(shop.app)() as session, session.begin():
        await session.execute(
            update(BalanceAccount)
            .where(BalanceAccount.kind == "cash")
            .values(balance_fen=BalanceAccount.balance_fen + 1)
        )
    assert await run_job("reconcile_balances", jobs) >= 1
    alert = await shop.shop.outbox.wait_for(OWNER)
    assert any("余额对账发现" in m.text for m in alert)


async def test_balance_that_covers_the_order_pays_it_in_chat(start: PayShop) -> None:
    shop = start
    await _plan_set(shop)
    await _topped_up(shop)
    customer = shop.user(CUSTOMER)
    await _open(customer, "香蕉", "香蕉")
    await customer.say("加入购物车 1")
    await customer.say("结算")
    await customer.say("张三 13800138000 上海市浦东新区世纪大道100号")
    await customer.say("确认")
    for said in ("用余额付", "我用余额付吧", "pay with balance"):  # as customers say it
        assert "还需支付：¥0.00" in (await customer.say(said)).text, said
        assert "还需支付" not in (await customer.say("不用余额")).text
    review = await customer.say("余额支付")
    assert "还需支付：¥0.00" in review.text
    done = await customer.say("确认")
    assert "已用余额支付" in done.text and "支付成功" in done.text
    order_no = done.text.split("订单 ")[1].split()[0]
    view = await shop.order(order_no)
    assert (view.status, view.pay_provider) == (OrderStatus.PAID, "balance")
    assert (await shop.balances()).balance_fen == 11000 - view.payable_fen
    assert order_no not in shop.wechat.orders  # WeChat Pay was never asked
    await customer.say("订单")
    detail = await customer.say("1")
    assert f"（余额 ¥{view.payable_fen / 100:.2f}）" in detail.text

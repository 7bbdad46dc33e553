"""The demo's sandbox covers stored balance: a top-up paid with the top-up page's
"simulate" button (a signed sandbox notification to the real notify endpoint), then a
withdrawal of the cash part asked in chat and decided by staff (a stranger's decision is
refused), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from yarl import URL

from bot.keys import PAYMENTS
from commerce.balance import ledger
from commerce.balance.models import BalanceWithdrawal
from commerce.customers.models import Customer
from tests.bot.conftest import ShopFactory
from tests.bot.driver import Shop, db
from tests.bot.test_shopping_chat import _open

OWNER = "o_owner_0001"
STRANGER = "o_stranger_77"
CUSTOMER = "o_sandbox_saver"


async def _balances(shop: Shop) -> ledger.Balances:
    async with db(shop.client.app)() as session:
        customer_id = await session.scalar(select(Customer.id).where(Customer.openid == CUSTOMER))
        assert customer_id is not None
        return await ledger.balance_of(session, customer_id)


async def test_sandbox_top_up_then_a_withdrawal_decided_by_staff(
    make_shop: ShopFactory, db_url: str
) -> None:
    shop = await make_shop(db_url, staff={"owners": [OWNER]})
    owner, customer = shop.user(OWNER), shop.user(CUSTOMER)
    assert "暂未开通余额充值" in (await customer.say("充值")).text
    await owner.say("/topup set 100 10")
    await owner.say("确认")

    card = await customer.say("充值 100")
    path = URL(card.articles[0].url).path
    page = await shop.client.get(path)
    html = await page.text()
    assert page.status == 200 and 'id="simulate"' in html and "¥110.00" in html
    simulated = await shop.client.post(path + "/simulate")
    assert simulated.status == 200, await simulated.text()
    await shop.client.app[PAYMENTS].drain()
    assert (await (await shop.client.get(path + "/status")).json())["paid"] is True
    again = await shop.client.post(path + "/simulate")  # a paid top-up cannot be paid again
    assert again.status == 409
    got = await _balances(shop)
    assert (got.balance_fen, got.bonus_fen) == (11000, 1000)
    assert any("充值成功" in m.text for m in shop.outbox.for_user(CUSTOMER))

    assert "金额" in (await customer.say("余额提现 abc")).text
    too_much = await customer.say("余额提现 105")  # the bonus is not withdrawable
    assert "超出可提现金额：¥100.00" in too_much.text
    asked = await customer.say("余额提现 60")
    assert "已提交余额提现申请 ¥60.00" in asked.text
    assert any("申请余额提现 ¥60.00" in m.text for m in shop.outbox.for_user(OWNER))
    got = await _balances(shop)
    assert (got.balance_fen, got.withdrawing_fen) == (5000, 6000)

    async with db(shop.client.app)() as session:
        withdrawal_id = await session.scalar(select(BalanceWithdrawal.id))
    await shop.user(STRANGER).say(f"/balancewithdrawal approve {withdrawal_id} WX1")
    async with db(shop.client.app)() as session:
        assert await session.scalar(select(BalanceWithdrawal.status)) == "pending"
    done = await owner.say(f"/balancewithdrawal approve {withdrawal_id} WX20261205")
    assert "已确认打款" in done.text
    assert any("已转账（凭证号 WX20261205）" in m.text for m in shop.outbox.for_user(CUSTOMER))
    got = await _balances(shop)
    assert (got.balance_fen, got.bonus_fen, got.cash_fen, got.withdrawing_fen) == (
        5000,
        1000,
        4000,
        0,
    )
    shown = await customer.say("余额")
    assert "我的余额：¥50.00" in shown.text and "可提现 ¥40.00" in shown.text

    assert "参数不对" in (await owner.say("/topup set 100 abc")).text
    ask = await owner.say("/topup remove 100")
    assert "删除充值方案：充 ¥100.00 送 ¥10.00" in ask.text
    assert "已删除充值方案" in (await owner.say("确认")).text
    assert "暂未开通余额充值" in (await customer.say("充值")).text


@pytest.mark.sqlite_only
async def test_asking_to_pay_with_an_empty_balance_is_told_at_the_review(sqlite_shop: Shop) -> None:
    customer = sqlite_shop.user("o_no_balance")
    await _open(customer, "香蕉", "香蕉")
    await customer.say("加入购物车 1")
    await customer.say("结算")
    review = await customer.say("张三 13800138000 上海市浦东新区世纪大道100号")
    review = await customer.say("确认")
    assert "确认订单" in review.text and "余额：" not in review.text
    told = await customer.say("用余额")
    assert "余额不足（可用余额 ¥0.00）" in told.text and "确认订单" in told.text
    assert "余额支付：" not in told.text
    card = await customer.say("确认")  # the order is placed without balance
    assert card.kind == "news" and "余额已抵扣" not in card.articles[0].description


@pytest.mark.sqlite_only
@pytest.mark.parametrize("said", ["充值 １００", "充100", "充100块", "我想充值１００元", "top up 100"])
async def test_a_top_up_amount_is_read_as_customers_type_it(make_shop: ShopFactory, sqlite_url: str, said: str) -> None:
    shop = await make_shop(sqlite_url, staff={"owners": [OWNER]})
    await shop.user(OWNER).say("/topup set 100 10")
    await shop.user(OWNER).say("确认")
    card = await shop.user(CUSTOMER).say(said)
    assert card.kind == "news" and "/topup/" in card.articles[0].url, card.text


@pytest.mark.sqlite_only
async def test_asks_about_money_in_words_reach_balance_top_up_and_commission(make_shop: ShopFactory, sqlite_url: str) -> None:
    shop = await make_shop(sqlite_url, staff={"owners": [OWNER]})
    await shop.user(OWNER).say("/topup set 100 10")
    await shop.user(OWNER).say("确认")
    customer = shop.user(CUSTOMER)
    assert "余额" in (left := await customer.say("我还有多少钱")).text and "没有找到" not in left.text, left.text
    plans = await customer.say("我想充点钱")
    assert "充 ¥100.00 送 ¥10.00" in plans.text, plans.text
    earned = await customer.say("我赚了多少佣金")
    assert "可提现" in earned.text, earned.text
    how = await customer.say("佣金怎么提现")
    assert "可提现" in how.text and "邀请码" not in how.text.split("\n")[0], how.text

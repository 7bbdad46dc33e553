"""Members in chat, as customers and staff type it: a phone and its code (sandbox and the
Tencent Cloud SMS fake over HTTP), wrong, expired and too-frequent codes, one phone one
member, staff's /level set (confirmed; a stranger and a service member refused), and a
customer who reaches a level by paying (signed pay notify) and pays less at the next checkout."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from bot.keys import SERVICES
from commerce.customers.models import Customer
from commerce.membership.models import Member, MemberLevelRow, SmsCode
from tests.bot.admin.test_orders import audit_rows, confirm_code, pay, place_order, texts, view
from tests.bot.conftest import OWNER, SERVICE, STRANGER, ShopFactory
from tests.bot.driver import ChatUser, Shop, db
from tests.bot.test_shopping_chat import _open
from tests.fakes import tencent_sms
from tests.fakes.tencent_sms import FakeTencentSms

CUSTOMER = "o_member_customer_1"
NEIGHBOUR = "o_member_neighbour_2"
PHONE = "13812345678"
SANDBOX_CODE = re.compile(r"验证码：(\d{6})")


def sandbox_code(text: str) -> str:
    found = SANDBOX_CODE.search(text)
    assert found is not None, text
    return found.group(1)


def other_than(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


async def register(user: ChatUser, phone: str = PHONE) -> None:
    asked = await user.say("会员")
    assert "请回复您的手机号" in asked.text
    sent = await user.say(phone)
    joined = await user.say(sandbox_code(sent.text))
    assert "注册成功" in joined.text and f"尾号 {phone[-4:]}" in joined.text, joined.text


async def test_a_customer_registers_with_the_sandbox_code_after_a_wrong_number_and_a_wrong_code(shop: Shop) -> None:
    user = shop.user(CUSTOMER)
    me = await user.say("我的")
    assert "还不是会员：回复「会员」用手机号注册，结算享等级折扣" in me.text  # nothing spent: no level promised
    assert "请回复您的手机号" in (await user.say("注册会员")).text
    bad = await user.say("1381234")
    assert "不是有效的大陆手机号" in bad.text
    sent = await user.say("138-1234-5678")
    assert "尾号 5678" in sent.text and "沙箱短信" in sent.text
    code = sandbox_code(sent.text)
    wrong = await user.say(other_than(code))
    assert "验证码不对，还可以再试 4 次" in wrong.text
    joined = await user.say(code)
    assert "注册成功" in joined.text and "「普通会员」" in joined.text
    async with db(shop.client.app)() as session:
        assert (await session.scalars(select(Member.phone))).all() == [PHONE]
        row = (await session.scalars(select(SmsCode))).one()
        assert code not in (row.code_hash, row.salt) and row.used_at is not None and row.tries == 1
    me = await user.say("我的")
    assert "会员：普通会员（手机尾号 5678）" in me.text and "再消费 ¥500.00 升级「银卡」" in me.text
    assert "累计消费：¥0.00" in me.text and "优惠券：0 张可用" in me.text
    assert "您已经是会员了" in (await user.say("绑定手机")).text
    assert "会员：普通会员" in (await user.say("会员")).text  # a member's 会员 is their account


@pytest.mark.sqlite_only
async def test_asking_what_members_get_while_the_code_is_awaited_keeps_the_code_step(sqlite_shop: Shop) -> None:
    """"会员有什么好处" after the code was sent: the levels and their discounts, then the
    code asked for again; the code typed next makes a member (not "no valid phone"), and
    "会员" again asks for the same code instead of a phone."""
    user = sqlite_shop.user(CUSTOMER)
    await user.say("会员")
    asked = await user.say("会员有什么好处")  # before the phone: answered, the phone still asked
    assert "普通会员" in asked.text and "请回复您的手机号" in asked.text, asked.text
    code = sandbox_code((await user.say(PHONE)).text)
    benefits = await user.say("会员有什么好处")
    assert "普通会员" in benefits.text and "银卡" in benefits.text, benefits.text
    assert "尾号 5678" in benefits.text and "6 位验证码" in benefits.text and "请回复您的手机号" not in benefits.text
    again = await user.say("会员")
    assert "尾号 5678" in again.text and "6 位验证码" in again.text, again.text
    joined = await user.say(code)
    assert "注册成功" in joined.text, joined.text


@pytest.mark.sqlite_only
async def test_codes_too_often_expired_and_a_phone_taken_are_answered_clearly(sqlite_shop: Shop) -> None:
    shop = sqlite_shop
    user, neighbour = shop.user(CUSTOMER), shop.user(NEIGHBOUR)
    await user.say("会员")
    first = await user.say(PHONE)
    code = sandbox_code(first.text)
    again = await user.say("重发")
    assert "验证码发送太频繁了" in again.text and "秒后再试" in again.text
    await minutes_pass(shop, 6)
    late = await user.say(code)
    assert "验证码已过期" in late.text
    await register(neighbour, PHONE)  # the neighbour confirms this phone first
    await minutes_pass(shop, 2)
    taken = await user.say(PHONE)
    assert "已经绑定了另一个微信账号" in taken.text
    stray = await user.say("苹果")  # the dialog lets a search through
    assert "苹果" in stray.text and "手机号" not in stray.text


async def minutes_pass(shop: Shop, minutes: int) -> None:
    """The codes sent so far were sent `minutes` earlier (and expire as long before)."""
    async with db(shop.client.app)() as session:
        rows = (await session.scalars(select(SmsCode))).all()
        for row in rows:
            row.sent_at -= timedelta(minutes=minutes)
            row.expires_at -= timedelta(minutes=minutes)
        await session.commit()


async def test_staff_set_a_level_confirmed_and_a_member_reaches_it_by_paying_then_pays_less(
    make_shop: ShopFactory, db_url: str, unused_tcp_port: int
) -> None:
    shop = await make_shop(db_url, staff={"owners": [OWNER]}, server={"base_url": f"http://127.0.0.1:{unused_tcp_port}"})
    owner = shop.user(OWNER)
    listed = await owner.say("/level list")
    assert "银卡：满 ¥500.00，折扣 2%" in listed.text
    ask = await owner.say("/level set 银卡 10 5")
    assert "将修改会员等级「银卡」" in ask.text and "满 ¥10.00 折扣 5%" in ask.text
    done = await owner.say(confirm_code(ask.text))
    assert "已设置会员等级「银卡」：满 ¥10.00，折扣 5%" in done.text
    assert [a.outcome for a in await audit_rows(shop, "level")][-1] == "ok"

    customer = shop.user(CUSTOMER)
    await register(customer)
    first = await place_order(shop, customer)
    assert (await view(shop, first)).level_discount_fen == 0  # 普通会员: 0%
    paid = await pay(shop, first)
    told = [t for t in texts(shop, CUSTOMER) if "支付成功" in t]
    assert len(told) == 1 and "恭喜升级为「银卡」会员，之后结算享 5% 折扣" in told[0], told  # one message
    me = await customer.say("我的")
    assert "会员：银卡" in me.text and "结算享 5% 折扣" in me.text, me.text

    await _open(customer, "香蕉", "香蕉")
    await customer.say("加入购物车 2")
    review = await customer.say("结算")
    assert "银卡会员折扣：-¥" in review.text, review.text
    card = await customer.say("确认")
    assert card.kind == "news", card
    order_no = card.articles[0].description.split("订单号 ")[1].split()[0]
    order = await view(shop, order_no)
    expected = (order.goods_fen - order.discount_fen) * 500 // 10_000
    assert order.level_discount_fen == expected > 0 and order.member_level == "银卡"
    assert f"银卡会员折扣：-¥{expected / 100:.2f}" in review.text
    assert order.payable_fen == order.goods_fen - order.discount_fen - expected + order.delivery_fen - order.points_fen
    page = await shop.client.get(card.articles[0].url.removeprefix(str(shop.config.server.base_url)))
    assert page.status == 200 and f"银卡会员折扣</td><td class=\"num\">-¥{expected / 100:.2f}" in await page.text()
    second = await pay(shop, order_no)  # the sandbox charges the discounted total
    assert sum("恭喜升级" in t for t in texts(shop, CUSTOMER)) == 1  # no second level-up
    assert second.paid_fen == order.payable_fen
    async with db(shop.client.app)() as session:
        total = await session.scalar(select(Customer.total_spent_fen).where(Customer.openid == CUSTOMER))
    assert total == paid.paid_fen + second.paid_fen
    await customer.say("订单")
    detail = await customer.say("1")  # the newest
    assert f"银卡会员折扣 -¥{expected / 100:.2f}" in detail.text, detail.text  # the order shows its level line


async def test_staff_remove_a_level_confirmed_and_its_members_fall_to_the_level_below(
    make_shop: ShopFactory, db_url: str
) -> None:
    shop = await make_shop(db_url, staff={"owners": [OWNER]})
    owner = shop.user(OWNER)
    done = await owner.say(confirm_code((await owner.say("/level set 银卡 10 5")).text))
    assert "已设置会员等级「银卡」" in done.text
    customer = shop.user(CUSTOMER)
    await register(customer)
    await pay(shop, await place_order(shop, customer))  # past ¥10: 银卡
    assert "会员：银卡" in (await customer.say("我的")).text

    unknown = await owner.say("/level del 钻石卡")
    assert "没有叫「钻石卡」的会员等级" in unknown.text and "银卡" in unknown.text and "确认码" not in unknown.text
    ask = await owner.say("/level 删除 银卡")
    assert "将删除会员等级「银卡」" in ask.text and "现有 1 位会员在这个等级" in ask.text, ask.text
    gone = await owner.say(confirm_code(ask.text))
    assert "已删除会员等级「银卡」" in gone.text and "1 位会员的等级随之变化" in gone.text, gone.text
    assert "银卡" not in (await owner.say("/level list")).text
    me = await customer.say("我的")
    assert "会员：银卡" not in me.text and "结算享 5% 折扣" not in me.text, me.text
    async with db(shop.client.app)() as session:
        names = set((await session.scalars(select(MemberLevelRow.name))).all())
        level, discount = (await session.execute(
            select(Customer.member_level, Customer.member_discount_bp).where(Customer.openid == CUSTOMER)
        )).one()
    assert "银卡" not in names and names and level != "银卡" and discount == 0
    assert [a.outcome for a in await audit_rows(shop, "level")][-1] == "ok"

    for name in sorted(names)[1:]:  # down to one level: that one stays
        await owner.say(confirm_code((await owner.say(f"/level del {name}")).text))
    last = await owner.say(f"/level del {sorted(names)[0]}")
    assert "仅剩的会员等级，不能删除" in last.text and "确认码" not in last.text, last.text
    stranger = await shop.user(STRANGER).say(f"/level del {sorted(names)[0]}")
    assert "会员等级" not in stranger.text and "确认码" not in stranger.text, stranger.text


@pytest.mark.sqlite_only
async def test_a_stranger_and_a_service_member_cannot_set_levels(make_shop: ShopFactory, sqlite_url: str) -> None:
    shop = await make_shop(sqlite_url, staff={"owners": [OWNER]})
    owner = shop.user(OWNER)
    assert "已添加员工" in (await owner.say(f"/staff add {SERVICE} service")).text
    stranger = await shop.user(STRANGER).say("/level set 银卡 0 50")
    assert "会员等级" not in stranger.text and "确认码" not in stranger.text
    refused = await shop.user(SERVICE).say("/level set 银卡 0 50")
    assert "确认码" not in refused.text and "level" in refused.text, refused.text
    typo = await owner.say("/level set 银卡 10 80")
    assert "折扣需要在 0% 到 50% 之间" in typo.text
    async with db(shop.client.app)() as session:
        assert await session.scalar(select(MemberLevelRow.id)) is None
    assert {a.outcome for a in await audit_rows(shop, "level")} >= {"refused", "failed"}


@pytest.mark.sqlite_only
async def test_the_tencent_provider_sends_a_signed_sendsms_and_the_chat_never_shows_the_code(
    make_shop: ShopFactory, sqlite_url: str, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    fake = FakeTencentSms()
    server = await aiohttp_server(fake.app())
    shop = await make_shop(sqlite_url, sms={
        "provider": "tencent", "secret_id": tencent_sms.SECRET_ID, "secret_key": tencent_sms.SECRET_KEY,
        "sdk_app_id": tencent_sms.SDK_APP_ID, "sign_name": tencent_sms.SIGN_NAME,
        "template_id": tencent_sms.TEMPLATE_ID, "endpoint": str(server.make_url("/")).rstrip("/"),
    })
    user = shop.user(CUSTOMER)
    await user.say("会员")
    sent = await user.say(PHONE)
    assert "尾号 5678" in sent.text and "沙箱" not in sent.text
    [code] = fake.codes_to(PHONE)
    assert code not in sent.text and fake.refused == []
    message = fake.sent[0]
    assert (message.sdk_app_id, message.sign_name, message.template_id) == (
        tencent_sms.SDK_APP_ID, tencent_sms.SIGN_NAME, tencent_sms.TEMPLATE_ID)
    assert message.params == [code, "5"]
    assert "注册成功" in (await user.say(code)).text

    # a wrong key is refused by the endpoint (the signature is checked), and the customer is told
    fake.secret_key = "another-key"
    other = shop.user(NEIGHBOUR)
    await other.say("会员")
    failed = await other.say("15900001111")
    assert "短信暂时没有发出去" in failed.text and fake.refused == ["AuthFailure.SignatureFailure"]
    fake.secret_key = tencent_sms.SECRET_KEY
    retried = await other.say("15900001111")  # the failed code was forgotten: no wait
    assert "验证码已发送" in retried.text and fake.codes_to("15900001111")
    assert shop.client.app[SERVICES].sms.shows_code is False

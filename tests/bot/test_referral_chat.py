"""Referrals through the real app: invite, a follow through the code, "me", withdraw, staff payout."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot.keys import JOBS, SERVICES
from commerce.customers.models import Customer
from commerce.orders import actions as order_actions
from commerce.orders import placement as orders
from commerce.orders.models import OrderStatus
from commerce.referrals.models import Withdrawal
from commerce.rules import utcnow
from scheduler.jobs import unfreeze_commission
from tests.bot.admin.test_orders import audit_rows, pay, place_order, texts
from tests.bot.conftest import OPERATOR, OWNER, STRANGER, ShopFactory, add_staff_by_chat
from tests.bot.driver import Shop, db

REFERRER = "o_referrer_01"
FRIEND = "o_friend_0002"
LATECOMER = "o_latecomer_3"


async def customer(shop: Shop, openid: str) -> Customer:
    async with db(shop.client.app)() as session:
        found = await session.scalar(select(Customer).where(Customer.openid == openid))
        assert found is not None
        return found


async def complete(shop: Shop, order_no: str) -> None:
    async with db(shop.client.app)() as session, session.begin():
        order = await orders.get_order(session, order_no=order_no)
        await order_actions.ship_order(
            session, order_id=order.id, carrier="SF", tracking_no="1", actor="t",
            now=datetime.now(UTC),
        )
        await order_actions.confirm_receipt(session, order_id=order.id, customer_id=order.customer_id, now=datetime.now(UTC))


async def invite_code(shop: Shop) -> str:
    reply = await shop.user(REFERRER).say("邀请")
    assert "你的邀请码：" in reply.text, reply.text
    code = reply.text.split("你的邀请码：")[1].split()[0]
    assert f"/s/v1.r.{code}" in reply.text  # the share link (no QR in the demo: no WeChat client)
    return code


async def test_a_friend_follows_through_the_code_and_the_referrer_earns(
    make_shop: ShopFactory, db_url: str
) -> None:
    shop = await add_staff_by_chat(
        await make_shop(
            db_url,
            staff={"owners": [OWNER]},
            referral={"withdrawal_min_fen": 100},
            scheduler={"enabled": False},
        )
    )
    referrer = shop.user(REFERRER)
    await referrer.say("帮助")
    code = await invite_code(shop)
    assert code == await invite_code(shop)  # the same code every time

    # the share link leads to the landing page
    landing = await shop.client.get(f"/s/v1.r.{code}", allow_redirects=False)
    assert landing.status == 302 and landing.headers["Location"] == f"/r/{code}"
    page = await shop.client.get(f"/r/{code}")
    assert page.status == 200 and code in await page.text()
    assert (await shop.client.get("/r/NOSUCH")).status == 404

    friend = shop.user(FRIEND)
    welcome = await friend.event("subscribe", f"qrscene_v1.r.{code}", Ticket="t")
    assert "好友邀请" in welcome.text, welcome.text
    bound = await customer(shop, FRIEND)
    assert bound.referrer_id == (await customer(shop, REFERRER)).id

    # an existing follower scanning the code is not bound
    latecomer = shop.user(LATECOMER)
    await latecomer.event("subscribe")
    again = await latecomer.event("SCAN", f"v1.r.{code}", Ticket="t")
    assert "好友邀请" not in again.text
    assert (await customer(shop, LATECOMER)).referrer_id is None

    # the friend buys: 5% of the goods, frozen
    order_no = await place_order(shop, friend)
    paid = await pay(shop, order_no)
    expected = (paid.paid_fen - paid.delivery_fen) * 500 // 10000
    me = await referrer.say("我的")
    assert "已邀请好友：1 人" in me.text, me.text
    assert f"冻结中佣金：¥{expected / 100:.2f}" in me.text, me.text
    assert "可提现：¥0.00" in me.text

    nothing = await referrer.say("提现")
    assert "暂时没有可提现的佣金" in nothing.text, nothing.text

    # completed, and the return window passed: the job frees it once
    await complete(shop, order_no)
    assert (await view_status(shop, order_no)) == OrderStatus.COMPLETED
    jobs = dataclasses.replace(shop.client.app[JOBS], clock=lambda: utcnow() + timedelta(days=8))
    assert await unfreeze_commission(jobs) == 1
    assert await unfreeze_commission(jobs) == 0
    await jobs.drain()  # the referrer's notice, sent after the job's commit
    assert any("已解冻" in t for t in texts(shop, REFERRER))
    me = await referrer.say("我的")
    assert f"可提现：¥{expected / 100:.2f}" in me.text, me.text

    too_much = await referrer.say("提现 9999")
    assert "超出可提现金额" in too_much.text, too_much.text
    asked = await referrer.say("提现")
    assert "提现申请" in asked.text, asked.text
    await shop.client.app[SERVICES].alerts.drain()
    assert any("申请提现佣金" in t for t in texts(shop, OWNER))
    async with db(shop.client.app)() as session:
        withdrawal = await session.scalar(select(Withdrawal))
    assert withdrawal is not None and withdrawal.amount_fen == expected

    # a stranger's command is answered like an unknown command, nothing happens
    stranger = shop.user(STRANGER)
    refused = await stranger.say(f"/withdrawal approve {withdrawal.id} WX1")
    unknown = await stranger.say(f"/nosuchcommand {withdrawal.id} WX1")
    searched = ("没有找到", "您是不是想找")  # both: a product search (nothing, or near misses)
    assert any(s in refused.text for s in searched) and any(s in unknown.text for s in searched)
    assert "提现" not in refused.text
    async with db(shop.client.app)() as session:
        still = await session.scalar(
            select(Withdrawal.status).where(Withdrawal.id == withdrawal.id)
        )
    assert still == "pending"

    listing = await shop.user(OPERATOR).say("/referrals")
    assert f"#{withdrawal.id}" in listing.text and "邀请 1 人" in listing.text, listing.text
    done = await shop.user(OWNER).say(f"/withdrawal approve {withdrawal.id} WX20260501")
    assert "已确认打款" in done.text and "已通知顾客" in done.text, done.text
    assert any("已打款" in t for t in texts(shop, REFERRER))
    again_done = await shop.user(OWNER).say(f"/withdrawal approve {withdrawal.id} WX20260501")
    assert "已经处理过了" in again_done.text
    me = await referrer.say("我的")
    assert f"已提现：¥{expected / 100:.2f}" in me.text and "可提现：¥0.00" in me.text, me.text
    rows = await audit_rows(shop, "withdrawal")
    assert [(r.actor, r.outcome) for r in rows if r.actor == OWNER][0] == (OWNER, "ok"), rows

    stats = await shop.user(OWNER).say("/stats")
    assert "推荐排行" in stats.text and "邀请 1 人" in stats.text, stats.text


async def view_status(shop: Shop, order_no: str) -> OrderStatus:
    async with db(shop.client.app)() as session:
        return (await orders.get_order(session, order_no=order_no)).status


async def test_the_welcome_coupon_and_english_words(make_shop: ShopFactory, db_url: str) -> None:
    shop = await make_shop(
        db_url, staff={"owners": [OWNER]}, shop={"new_customer_coupon": "HELLO5"}
    )
    owner = shop.user(OWNER)
    created = await owner.say("/coupon new HELLO5 off 5 title 新人立减5元")
    assert "HELLO5" in created.text, created.text
    newcomer = shop.user("o_newcomer_01")
    welcome = await newcomer.event("subscribe")
    assert "新人券「新人立减5元」" in welcome.text, welcome.text
    await newcomer.event("unsubscribe", create_time=int(time.time()) + 1)
    back = await newcomer.event("subscribe", create_time=int(time.time()) + 2)  # a re-follow
    assert "欢迎" in back.text and "新人券" not in back.text  # no second coupon
    me = await newcomer.say("me")
    assert "Friends invited: 0" in me.text and "Points: 0" in me.text, me.text
    invite = await newcomer.say("invite")
    assert "Your invite code:" in invite.text, invite.text
    assert "no commission available" in (await newcomer.say("withdraw")).text

"""/stats in chat: today and the last 7 days, top products and low stock; through the real app."""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.keys import SERVICES
from commerce.cart.cart import add_to_cart
from commerce.catalog.models import Variant
from commerce.customers.customers import touch_customer
from commerce.customers.models import Address
from commerce.orders.models import Order
from commerce.orders.placement import place_order
from commerce.payments.records import record_payment
from commerce.rules import utcnow
from commerce.staff.models import AuditEntry
from tests.bot.conftest import OPERATOR, OWNER, SERVICE, STRANGER, ShopFactory
from tests.bot.driver import Shop, db

_keys = itertools.count(1)


async def place(shop: Shop, openid: str, sku: str, quantity: int, *, pay: bool = True) -> str:
    """An order placed (and paid) through the commerce core; returns its number."""
    services = shop.client.app[SERVICES]
    async with db(shop.client.app)() as session, session.begin():
        customer = await touch_customer(session, openid)
        variant_id = await session.scalar(select(Variant.id).where(Variant.sku_code == sku))
        assert variant_id is not None
        await add_to_cart(session, customer_id=customer.id, variant_id=variant_id, quantity=quantity, rules=services.rules)
        address = Address(customer_id=customer.id, name="张三", phone="13800138000", address="上海市浦东新区世纪大道100号")
        session.add(address)
        await session.flush()
        order = await place_order(session, customer_id=customer.id, address_id=address.id,
                                  idempotency_key=f"k{next(_keys)}", rules=services.rules)
        if pay:
            await record_payment(session, provider="sandbox", order_no=order.order_no,
                                 transaction_id=f"T{order.order_no}", amount_fen=order.payable_fen,
                                 paid_at=utcnow(), payload={})
    return order.order_no


async def test_stats_of_an_empty_day(staffed: Shop) -> None:
    reply = await staffed.user(OPERATOR).say("/stats")
    assert "【今日】" in reply.text and "【近 7 天】" in reply.text
    assert "下单 0 笔，支付 0 笔，成交额 ¥0.00" in reply.text and "转化率 0.0%" in reply.text
    assert "【库存低】" in reply.text and "· 海苔脆片 剩 0（SNK-SEAWEED-10）" in reply.text  # the emptiest first


async def test_stats_count_orders_gmv_customers_conversion_and_top_products(staffed: Shop) -> None:
    await place(staffed, "o_buyer_1", "FRU-BANANA-3J", 2)  # ¥25.80 + ¥8.00 delivery
    await place(staffed, "o_buyer_2", "TEA-TGY-250G", 1)  # ¥128.00, free delivery
    await place(staffed, "o_buyer_3", "FRU-BANANA-3J", 1, pay=False)  # placed, not paid
    reply = await staffed.user(OWNER).say("/统计")
    today = reply.text.split("【近 7 天】")[0]
    assert "下单 3 笔，支付 2 笔，成交额 ¥161.80" in today
    assert "付款顾客 2 人，加购/下单 3 人，转化率 66.7%，客单价 ¥80.90" in today
    assert "1. 香蕉 ×2 ¥25.80" in today and "2. 安溪铁观音 ×1 ¥128.00" in today
    week = reply.text.split("【近 7 天】")[1]
    assert "下单 3 笔，支付 2 笔，成交额 ¥161.80" in week

    entries = await _audit(staffed)
    assert (entries[-1].actor, entries[-1].command, entries[-1].outcome) == (OWNER, "stats", "ok")


async def test_stats_in_english(make_shop: ShopFactory, sqlite_url: str) -> None:
    shop = await make_shop(sqlite_url, staff={"owners": [OWNER]}, shop={"locale": "en"})
    await place(shop, "o_buyer_1", "FRU-BANANA-3J", 2)
    reply = await shop.user(OWNER).say("/stats")
    assert "[Today]" in reply.text and "[Last 7 days]" in reply.text and "[Low stock]" in reply.text
    assert "1 orders placed, 1 paid, GMV ¥33.80" in reply.text and "1. 香蕉 ×2 ¥25.80" in reply.text


async def _audit(shop: Shop) -> list[AuditEntry]:
    async with db(shop.client.app)() as session:
        return list((await session.scalars(select(AuditEntry).order_by(AuditEntry.id))).all())


async def test_stats_takes_no_arguments_and_is_not_for_service_or_strangers(staffed: Shop) -> None:
    assert "参数不对" in (await staffed.user(OWNER).say("/stats 明天")).text
    assert "您的角色不能使用 /stats" in (await staffed.user(SERVICE).say("/stats")).text
    stranger = await staffed.user(STRANGER).say("/stats")
    assert "【今日】" not in stranger.text and "找到" in stranger.text
    entries = [e for e in await _audit(staffed) if e.command == "stats"]
    assert [(e.actor, e.role, e.outcome) for e in entries] == [(SERVICE, "service", "refused"), (STRANGER, "", "refused")]


def _today(shop: Shop) -> date:
    return datetime.now(ZoneInfo(shop.config.shop.timezone)).date()


async def _a_day_earlier(shop: Shop, order_no: str) -> None:
    async with db(shop.client.app)() as session, session.begin():
        order = await session.scalar(select(Order).where(Order.order_no == order_no))
        assert order is not None and order.paid_at is not None
        order.created_at -= timedelta(days=1)
        order.paid_at -= timedelta(days=1)


@pytest.mark.sqlite_only
async def test_bug_stats_of_a_named_day_got_the_usage_line(sqlite_staffed: Shop) -> None:
    """Found playing a merchant's day: `/stats 今天`, `/stats 昨天`, `/stats 本周` answered
    参数不对. A day word (or a date) shows that period, cut at the shop's midnight."""
    shop = sqlite_staffed
    await _a_day_earlier(shop, await place(shop, "o_buyer_1", "TEA-TGY-250G", 1))  # ¥128.00, yesterday
    await place(shop, "o_buyer_2", "FRU-BANANA-3J", 2)  # ¥25.80 + ¥8.00 delivery, today
    owner = shop.user(OWNER)

    today = (await owner.say("/stats 今天")).text
    assert today.startswith("【今日 ") and "截至" in today and "下单 1 笔，支付 1 笔，成交额 ¥33.80" in today
    assert "【近 7 天】" not in today and "/dashboard/" in today
    yesterday = (await owner.say("/统计 昨天")).text
    assert yesterday.startswith("【昨日 ") and "截至" not in yesterday
    assert "下单 1 笔，支付 1 笔，成交额 ¥128.00" in yesterday and "1. 安溪铁观音 ×1 ¥128.00" in yesterday
    month_day = (await owner.say("/stats 昨天")).text.split("】")[0].removeprefix("【昨日 ")
    assert month_day in (await owner.say(f"/stats {month_day}")).text  # the date itself: 12月4日
    assert (await owner.say("/stats 本月")).text.startswith("【本月 ")
    assert "参数不对" in (await owner.say("/stats 今天 昨天")).text
    entries = [e for e in await _audit(shop) if e.command == "stats"]
    assert (entries[0].args, entries[0].outcome, entries[0].after["start"]) == (["今天"], "ok", str(_today(shop)))


@pytest.mark.sqlite_only
async def test_stats_of_a_named_day_in_english(make_shop: ShopFactory, sqlite_url: str) -> None:
    shop = await make_shop(sqlite_url, staff={"owners": [OWNER]}, shop={"locale": "en"})
    await place(shop, "o_buyer_1", "FRU-BANANA-3J", 2)
    reply = (await shop.user(OWNER).say("/stats this-week")).text
    assert reply.startswith("[This week ") and "1 orders placed, 1 paid, GMV ¥33.80" in reply

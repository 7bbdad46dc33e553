"""The group's page GET /g/{code}: product, prices, progress, time left, status, the code."""

from __future__ import annotations

import uuid
from datetime import timedelta

from aiohttp import web
from sqlalchemy import select

from bot.keys import CONFIG
from bot.services import shop_rules
from commerce.catalog.models import Variant
from commerce.customers.addresses import ParsedAddress, save_address
from commerce.customers.customers import touch_customer
from commerce.groupbuys import campaigns as group_campaigns
from commerce.groupbuys import deadlines as group_deadlines
from commerce.groupbuys import groups as group_buys
from commerce.orders.models import Order
from commerce.payments.records import record_payment
from commerce.rules import utcnow
from tests.bot.driver import Shop, db


async def open_apple_group(
    app: web.Application, openid: str = "o_group_lead", *, size: int = 3
) -> str:
    """A campaign on 烟台红富士苹果 (¥19.90 for groups of `size`), and a group its leader paid for."""
    rules = shop_rules(app[CONFIG])
    now = utcnow()
    async with db(app)() as session, session.begin():
        variant_id = await session.scalar(
            select(Variant.id).where(Variant.sku_code == "FRU-APPLE-3J")
        )
        assert variant_id is not None
        campaign = await group_campaigns.create_campaign(
            session,
            variant_id=variant_id,
            group_price_fen=1990,
            group_size=size,
            starts_at=now - timedelta(hours=1),
            ends_at=now + timedelta(days=3),
            time_limit=timedelta(hours=24),
            rules=rules,
        )
        customer = await touch_customer(session, openid)
        address = await save_address(
            session,
            customer_id=customer.id,
            parsed=ParsedAddress(
                name="张三", phone="13800138000", address="上海市浦东新区世纪大道100号"
            ),
        )
        group, order_id = await group_buys.start_group(
            session,
            campaign_id=campaign.id,
            customer_id=customer.id,
            address_id=address.id,
            idempotency_key=uuid.uuid4().hex,
            rules=rules,
            now=now,
        )
        order = await session.get(Order, order_id)
        assert order is not None
        await record_payment(
            session,
            provider="sandbox",
            order_no=order.order_no,
            transaction_id=uuid.uuid4().hex,
            amount_fen=order.payable_fen,
            paid_at=now,
            payload={},
        )
    return group.code


async def test_an_open_group_shows_price_progress_time_and_the_code(web_shop: Shop) -> None:
    code = await open_apple_group(web_shop.client.app)
    response = await web_shop.client.get(f"/g/{code.lower()}")
    assert response.status == 200
    html = await response.text()
    assert "烟台红富士苹果" in html and "3斤装" in html
    assert "¥19.90" in html and "¥" in html.split("¥19.90")[1]  # the regular price follows
    assert "已参团 1/3 人" in html and "joined" not in html  # Chinese by default, one language
    assert "拼团中" in html and ("23 小时" in html or "24 小时" in html)
    assert f'id="code">{code}<' in html
    assert 'class="qr"' not in html  # no WeChat client in the tests: the code only
    assert "/media/" in html  # the product's picture


async def test_a_closed_group_says_so_and_an_unknown_code_is_a_404_page(web_shop: Shop) -> None:
    app = web_shop.client.app
    code = await open_apple_group(app)
    async with db(app)() as session, session.begin():
        await group_deadlines.close_group(session, code=code, reason="staff", now=utcnow())
    html = await (await web_shop.client.get(f"/g/{code}")).text()
    assert "已关闭" in html and "不能参加" in html and "剩余" not in html

    for wrong in ("ZZZZZZ", "x", "%3Cimg%20onerror%3Dx%3E", "A" * 40):
        response = await web_shop.client.get(f"/g/{wrong}")
        assert response.status == 404, wrong
        text = await response.text()
        assert "拼团不存在" in text and "<img" not in text

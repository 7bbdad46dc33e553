"""Fixtures for the web pages: the real app on a real database with the demo catalog."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.app import create_app
from bot.config import Config
from bot.keys import CONFIG
from bot.outbound.sender import MemoryOutbox
from bot.services import shop_rules
from bot.web.paylink import pay_url
from commerce.cart.cart import add_to_cart
from commerce.catalog.models import Variant
from commerce.customers.addresses import ParsedAddress, save_address
from commerce.customers.customers import touch_customer
from commerce.orders.placement import place_order
from commerce.orders.views import OrderView
from tests.bot.conftest import make_config, seed
from tests.bot.driver import Shop, db

ShopFactory = Callable[..., Awaitable[Shop]]

REAL_PAY = {"provider": "wechatpay_v2", "mchid": "1900000109", "api_v2_key": "k" * 32}
"""A non-sandbox provider: development pages are off."""


@pytest.fixture
def make_web_shop(
    sqlite_url: str, aiohttp_client: Callable[..., Awaitable[TestClient]], demo_catalog: None
) -> ShopFactory:
    """Build the shop (demo catalog, in-memory outbox) served on a real localhost port;
    its database comes with the catalog (`demo_catalog`), so `seed()` adds nothing."""

    async def build(**sections: dict[str, Any]) -> Shop:
        await seed(sqlite_url)
        config = make_config(sqlite_url, **sections)
        outbox = MemoryOutbox()
        client = await aiohttp_client(create_app(config, outbound=outbox))
        return Shop(client, config, outbox)

    return build


@pytest.fixture
async def web_shop(make_web_shop: ShopFactory) -> Shop:
    """The shop in development mode (sandbox payments)."""
    return await make_web_shop()


async def place_apple_order(
    app: web.Application, openid: str = "o_payer_1", *, quantity: int = 2, now: datetime | None = None
) -> OrderView:
    """A pending order for 烟台红富士苹果 (3斤装), placed through the commerce core."""
    rules = shop_rules(app[CONFIG])
    sessions = db(app)
    async with sessions() as session, session.begin():
        customer = await touch_customer(session, openid)
        variant_id = await session.scalar(select(Variant.id).where(Variant.sku_code == "FRU-APPLE-3J"))
        assert variant_id is not None
        await add_to_cart(session, customer_id=customer.id, variant_id=variant_id, quantity=quantity, rules=rules)
        address = await save_address(
            session,
            customer_id=customer.id,
            parsed=ParsedAddress(name="张三", phone="13800138000", address="上海市浦东新区世纪大道100号"),
        )
        return await place_order(
            session,
            customer_id=customer.id,
            address_id=address.id,
            idempotency_key=uuid.uuid4().hex,
            rules=rules,
            now=now,
        )


def pay_path(
    config: Config, order: OrderView, *, openid: str | None = None, expires_at: datetime | None = None
) -> str:
    """The path of the order's payment link (as the checkout card links it)."""
    url = pay_url(config, order.order_no, openid or order.openid, expires_at or order.expires_at)
    assert url.startswith(config.public_base_url + "/pay/")
    return url[len(config.public_base_url) :]

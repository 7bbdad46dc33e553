"""Not enough stock is not a dead end: the card offers what is left, or a variant that has some."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from commerce.catalog.models import Variant
from tests.bot.conftest import OWNER
from tests.bot.driver import Shop, db
from tests.bot.test_shopping_chat import _open, _sku

pytestmark = pytest.mark.sqlite_only  # the words are checked, not the database


async def test_a_sold_out_variant_offers_the_variants_in_stock(shop: Shop) -> None:
    user = shop.user()
    await _open(user, "苹果", "烟台红富士苹果")
    assert "缺货" in (await user.say("3")).text  # 10斤装, sold out in the demo shop
    refused = (await user.say("加入购物车")).text
    assert "库存不足" in refused and "已经卖完了" in refused and "目前还剩 0 件" not in refused
    assert "这些规格还有货" in refused and "3斤装" in refused and "5斤装" in refused
    assert "10斤装（库存" not in refused
    assert "已选" in (await user.say("2")).text
    assert "已加入购物车" in (await user.say("加入购物车")).text


async def test_too_few_left_offers_to_add_what_is_left(shop: Shop) -> None:
    user = shop.user()
    banana = await _sku(shop, "香蕉", "")
    async with db(shop.client.app)() as session, session.begin():
        await session.execute(update(Variant).where(Variant.sku_code == banana).values(stock=3))
    await _open(user, "香蕉", "香蕉")
    refused = (await user.say("加入购物车 5")).text
    assert "目前还剩 3 件" in refused and "回复「加入购物车 3」" in refused
    added = (await user.say("加入购物车 3")).text
    assert "已加入购物车" in added and "×3" in added


async def test_what_is_left_counts_what_is_already_in_the_cart(shop: Shop) -> None:
    user = shop.user()
    banana = await _sku(shop, "香蕉", "")
    async with db(shop.client.app)() as session, session.begin():
        await session.execute(update(Variant).where(Variant.sku_code == banana).values(stock=3))
    await _open(user, "香蕉", "香蕉")
    await user.say("加入购物车 2")
    refused = (await user.say("加入购物车 2")).text
    assert "购物车里已有 2 件" in refused and "回复「加入购物车 1」" in refused


async def test_a_quantity_beyond_the_stock_offers_the_most_there_is(shop: Shop) -> None:
    user = shop.user()
    banana = await _sku(shop, "香蕉", "")
    await _open(user, "香蕉", "香蕉")
    await user.say("加入购物车")
    async with db(shop.client.app)() as session, session.begin():
        await session.execute(update(Variant).where(Variant.sku_code == banana).values(stock=3))
    await user.say("购物车")
    refused = (await user.say("改 1 5")).text
    assert "目前还剩 3 件" in refused and "回复「改 1 3」" in refused
    assert "×3" in (await user.say("改 1 3")).text


async def test_bug_customers_saw_the_exact_stock(sqlite_staffed: Shop) -> None:
    """Issue 15: cards said "库存78". Customers see 有货, or 仅剩 N 件 below
    `shop.few_left_below` (10); staff still see the number."""
    shop = sqlite_staffed
    user = shop.user()
    banana = await _sku(shop, "香蕉", "")
    card = (await _open(user, "香蕉", "香蕉")).articles[0].description
    assert "有货" in card and "库存" not in card and "200" not in card
    async with db(shop.client.app)() as session, session.begin():
        await session.execute(update(Variant).where(Variant.sku_code == banana).values(stock=3))
    await user.say("返回")
    card = (await _open(user, "香蕉", "香蕉")).articles[0].description
    assert "仅剩 3 件" in card and "有货" not in card
    listed = (await user.say("香蕉")).text
    assert "仅剩 3 件" in listed
    apples = (await _open(user, "苹果", "烟台红富士苹果")).articles[0].description
    assert "10斤装(缺)" in apples and "库存" not in apples  # 10斤装 is sold out in the demo shop
    variants = (await user.say("有现货吗")).text  # the variant list: only what is worth saying
    assert "（缺货）" in variants and "有货" not in variants and "库存" not in variants
    staff_view = (await shop.user(OWNER).say(f"/stock {banana} +20")).text
    assert "3 → 23 件" in staff_view  # staff see numbers
    card = (await _open(user, "香蕉", "香蕉")).articles[0].description
    assert "有货" in card and "23" not in card

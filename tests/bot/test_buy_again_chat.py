""""再买一次" / "buy again": the last order's goods go back into the cart, as much as
there still is; what cannot be bought any more is named; a customer who never ordered
is shown where to start."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from commerce.catalog.models import Variant
from tests.bot.admin.test_orders import place_order
from tests.bot.driver import Shop, db
from tests.bot.test_shopping_chat import _sku

pytestmark = pytest.mark.sqlite_only  # what the test checks is the conversation, not the database


async def test_buy_again_puts_the_last_order_back_in_the_cart(shop: Shop) -> None:
    user = shop.user("o_again")
    order_no = await place_order(shop, user, quantity=3)  # three bananas
    again = await user.say("再买一次")
    assert order_no in again.text and "香蕉" in again.text and "×3" in again.text.replace(" ", ""), again.text
    assert "结算" in again.text  # the cart, one word from checkout
    twice = await user.say("和上次一样")  # again: the cart holds six
    assert "×6" in twice.text.replace(" ", ""), twice.text


async def test_buy_again_takes_what_is_left_and_names_what_is_gone(shop: Shop) -> None:
    user = shop.user("o_again_short")
    await place_order(shop, user, quantity=3)
    banana = await _sku(shop, "香蕉", "")
    async with db(shop.client.app)() as session, session.begin():
        await session.execute(update(Variant).where(Variant.sku_code == banana).values(stock=2))
    fewer = await user.say("buy again")
    assert "×2" in fewer.text.replace(" ", ""), fewer.text  # what there still is
    async with db(shop.client.app)() as session, session.begin():
        await session.execute(update(Variant).where(Variant.sku_code == banana).values(stock=0))
    await user.say("清空购物车")
    gone = await user.say("再来一单")
    assert "香蕉" in gone.text and ("买不到" in gone.text or "No longer" in gone.text), gone.text


async def test_a_customer_who_never_ordered_is_shown_where_to_start(shop: Shop) -> None:
    reply = await shop.user("o_never").say("再买一次")
    assert "还没有下过单" in reply.text and "没有找到" not in reply.text

"""From a product card to a placed order, entirely in chat, through the real app."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from commerce.catalog.models import Variant
from commerce.customers.models import Handoff
from commerce.orders.models import Order
from tests.bot.driver import ChatUser, Shop, db
from tests.bot.test_search_chat import numbered

# The conversation is checked; cart, order and stock run on both databases in tests/commerce.
pytestmark = pytest.mark.sqlite_only


async def _stock(shop: Shop, sku: str) -> int:
    async with db(shop.client.app)() as session:
        return await session.scalar(select(Variant.stock).where(Variant.sku_code == sku)) or 0


async def _sku(shop: Shop, name_part: str, label: str) -> str:
    from commerce.catalog.models import Product

    async with db(shop.client.app)() as session:
        rows = (await session.execute(
            select(Variant.sku_code, Variant.spec).join(Product).where(Product.name.contains(name_part))
        )).all()
    return next(sku for sku, spec in rows if " / ".join(spec.values()) == label)


async def _open(user: ChatUser, query: str, name: str):  # type: ignore[no-untyped-def]
    reply = await user.say(query)
    number = next((n for n, line in numbered(reply.text).items() if name in line), None)
    assert number is not None, f"{name} not among the results of {query!r}: {reply}"
    return await user.say(str(number))


async def test_from_search_to_a_placed_order_and_back(shop: Shop) -> None:
    user = shop.user()
    apple_5 = await _sku(shop, "烟台红富士苹果", "5斤装")
    banana = await _sku(shop, "香蕉", "")
    apple_before, banana_before = await _stock(shop, apple_5), await _stock(shop, banana)

    card = await _open(user, "苹果", "烟台红富士苹果")
    assert "1.3斤装" in card.articles[0].description
    ask = await user.say("加入购物车 2")
    assert "有多个规格" in ask.text and "2. 5斤装" in ask.text
    added = await user.say("2")  # the variant chosen: the add asked for before it is done
    assert "烟台红富士苹果（5斤装） ×2" in added.text and "合计 ¥91.80" in added.text, added.text

    await _open(user, "香蕉", "香蕉")
    assert "合计 ¥130.50" in (await user.say("买3个")).text

    cart = await user.say("购物车")
    lines = numbered(cart.text)
    assert len(lines) == 2 and "合计：¥130.50" in cart.text
    banana_line = next(n for n, line in lines.items() if "香蕉" in line)
    changed = await user.say(f"改 {banana_line} 1")
    assert "合计：¥104.70" in changed.text

    assert "请发送收货信息" in (await user.say("结算")).text
    assert "手机号好像不对" in (await user.say("张三 138001 上海市浦东新区世纪大道100号")).text
    parsed = await user.say("张三 13800138000 上海市浦东新区世纪大道100号")
    assert "138****8000" in parsed.text and "世纪大道100号" in parsed.text
    review = await user.say("确认")
    assert "商品金额：¥104.70" in review.text and "免运费" in review.text and "应付：¥104.70" in review.text

    confirm = user.xml("text", content="确认")
    pay = await user.send(confirm)
    assert pay.kind == "news"
    assert pay.articles[0].title == "订单待支付 ¥104.70"
    assert re.match(r"https://shop\.example\.com/pay/\S+", pay.articles[0].url)
    again = await user.send(confirm)  # WeChat's retry of the confirming message
    assert again.articles[0].title == pay.articles[0].title
    async with db(shop.client.app)() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 1
    assert await _stock(shop, apple_5) == apple_before - 2
    assert await _stock(shop, banana) == banana_before - 1
    assert "购物车是空的" in (await user.say("购物车")).text

    orders = await user.say("订单")
    assert "待支付" in orders.text
    assert (await user.say("1")).kind == "news"  # an unpaid order shows its pay card
    cancelled = await user.say("取消订单")
    assert "已取消" in cancelled.text
    assert await _stock(shop, apple_5) == apple_before
    assert await _stock(shop, banana) == banana_before
    assert "已取消" in (await user.say("订单")).text


async def test_a_small_order_pays_for_delivery_and_the_saved_address_is_reused(shop: Shop) -> None:
    user = shop.user("o_small_buyer")
    await _open(user, "香蕉", "香蕉")
    await user.say("加入购物车")
    await user.say("结算")
    await user.say("李四 13912345678 北京市朝阳区建国路88号")
    review = await user.say("确认")
    assert "运费：¥8.00" in review.text and "应付：¥20.90" in review.text
    assert (await user.say("确认")).kind == "news"
    await _open(user, "香蕉", "香蕉")
    await user.say("加入购物车")
    second = await user.say("结算")  # the default address is used at once
    assert "李四" in second.text and "应付：¥20.90" in second.text


async def test_absurd_quantities_get_a_clear_answer(shop: Shop) -> None:
    user = shop.user()
    await _open(user, "香蕉", "香蕉")
    assert "数量需要在 1 到 99 之间" in (await user.say("加入购物车 500")).text
    await _open(user, "草莓", "丹东草莓")
    await user.say("1")
    sold_out = await user.say("加入购物车 1")
    assert "库存不足" in sold_out.text
    assert "购物车是空的" in (await user.say("购物车")).text


async def test_stock_taken_by_someone_else_is_explained_at_checkout(shop: Shop) -> None:
    from sqlalchemy import update

    user = shop.user()
    await _open(user, "香蕉", "香蕉")
    await user.say("加入购物车 5")
    await user.say("结算")
    await user.say("张三 13800138000 上海市浦东新区世纪大道100号")
    await user.say("确认")
    async with db(shop.client.app)() as session, session.begin():
        await session.execute(update(Variant).where(Variant.sku_code == await _sku(shop, "香蕉", "")).values(stock=2))
    answer = await user.say("确认")
    assert "库存" in answer.text and "2" in answer.text
    async with db(shop.client.app)() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 0


async def test_asking_for_a_human_hands_over_with_the_cart(shop: Shop) -> None:
    user = shop.user()
    await _open(user, "香蕉", "香蕉")
    await user.say("加入购物车 2")
    reply = await user.say("客服")
    assert "人工客服" in reply.text and "结束人工" in reply.text
    async with db(shop.client.app)() as session:
        handoff = await session.scalar(select(Handoff))
    assert handoff is not None and handoff.context["cart"][0]["name"] == "香蕉"
    assert handoff.context["cart"][0]["quantity"] == 2


async def _placed_order(shop: Shop, user: ChatUser) -> str:
    await _open(user, "香蕉", "香蕉")
    await user.say("加入购物车 2")
    await user.say("结算")
    await user.say("张三 13800138000 上海市浦东新区世纪大道100号")
    await user.say("确认")
    card = await user.say("确认")
    return card.articles[0].description.split("订单号 ")[1].split()[0]


async def _set_status(shop: Shop, order_no: str, status: str) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import update

    async with db(shop.client.app)() as session, session.begin():
        await session.execute(
            update(Order).where(Order.order_no == order_no).values(
                status=status, paid_fen=Order.payable_fen, paid_at=datetime.now(UTC), shipped_at=datetime.now(UTC),
                carrier="顺丰", tracking_no="SF123456789",
            )
        )


async def test_confirm_receipt_and_after_sales_from_the_orders_list(shop: Shop) -> None:
    from commerce.orders.models import AfterSalesRequest

    user = shop.user("o_receiver")
    order_no = await _placed_order(shop, user)
    await _set_status(shop, order_no, "shipped")
    await user.say("订单")
    detail = await user.say("1")
    assert "已发货" in detail.text and "顺丰速运 SF123456789" in detail.text and "确认收货" in detail.text
    refused = await user.say("取消订单")
    assert "不能这样操作" in refused.text
    done = await user.say("确认收货")
    assert "完成" in done.text
    short = await user.say("退款 a")
    assert "原因" in short.text
    request = await user.say("退货 尺码不合适，想退货")
    assert "退货申请" in request.text
    async with db(shop.client.app)() as session:
        row = await session.scalar(select(AfterSalesRequest))
    assert row is not None and row.kind == "return" and "尺码" in row.reason
    assert "已有处理中的申请" in (await user.say("退款 再申请一次")).text


async def test_paying_again_from_the_order_detail(shop: Shop) -> None:
    user = shop.user("o_payer")
    await _placed_order(shop, user)
    await user.say("订单")
    await user.say("1")
    again = await user.say("支付")
    assert again.kind == "news" and "/pay/" in again.articles[0].url


async def test_an_empty_orders_list_and_an_empty_checkout(shop: Shop) -> None:
    user = shop.user("o_new")
    assert "还没有订单" in (await user.say("订单")).text
    assert "购物车是空的" in (await user.say("结算")).text


async def test_a_cart_whose_only_item_sold_out_says_so_at_checkout(shop: Shop) -> None:
    """Regression: checkout answered "your cart is empty" when every line had sold out."""
    from sqlalchemy import update

    user = shop.user("o_sold_out")
    await _open(user, "香蕉", "香蕉")
    await user.say("加入购物车 2")
    async with db(shop.client.app)() as session, session.begin():
        await session.execute(update(Variant).where(Variant.sku_code == await _sku(shop, "香蕉", "")).values(stock=0))
    await user.say("结算")
    review = await user.say("张三 13800138000 上海市浦东新区世纪大道100号")
    review = await user.say("确认")
    assert "香蕉" in review.text and "已售罄" in review.text
    refused = await user.say("确认")
    assert "库存不足" in refused.text
    async with db(shop.client.app)() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 0

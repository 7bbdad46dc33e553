"""Flash sales (秒杀) through the real app on SQLite: staff create a sale, customers ask to
be reminded and are reminded at the start, several grab at once and exactly the units are
sold, an unpaid unit goes back after its window and another customer takes it; a
stranger's /flash is refused. And the rush path with Redis: only winners write."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from sqlalchemy import event, func, select, update

from bot.flash_gate import sale_keys
from bot.keys import ENGINE, JOBS, SERVICES
from commerce.catalog.models import Variant
from commerce.customers.models import Customer
from commerce.orders.models import Order, OrderStatus
from commerce.promotions import flash_sales
from commerce.promotions.models import FlashClaim, FlashSale
from commerce.rules import utcnow
from commerce.staff.models import AuditEntry
from scheduler.runner import run_job
from tests.bot.admin.test_orders import confirm_code, open_staffed_shop, pay, settle_refunds
from tests.bot.conftest import OWNER, STRANGER, ShopFactory
from tests.bot.driver import ChatUser, Shop, db
from tests.bot.test_flash_edge_chat import _edge
from tests.bot.world import CUSTOMER, WorldFactory
from tests.commerce.factories import make_address

BUYERS = ("o_flash_buyer_1", "o_flash_buyer_2", "o_flash_buyer_3")


async def _variant(shop: Shop) -> Variant:
    async with db(shop.client.app)() as session:
        variant = await session.scalar(select(Variant).where(Variant.stock >= 5).order_by(Variant.id).limit(1))
        assert variant is not None
        return variant


async def _with_address(shop: Shop, user: ChatUser) -> None:
    await user.say("帮助")  # the customer exists once they wrote
    async with db(shop.client.app)() as session:
        customer_id = await session.scalar(select(Customer.id).where(Customer.openid == user.openid))
        assert customer_id is not None
        await make_address(session, customer_id)
        await session.commit()


async def _sale(shop: Shop) -> FlashSale:
    async with db(shop.client.app)() as session:
        sale = await session.scalar(select(FlashSale).order_by(FlashSale.id.desc()).limit(1))
        assert sale is not None
        return sale


async def _set(shop: Shop, model: Any, where: Any, **values: Any) -> None:
    async with db(shop.client.app)() as session, session.begin():
        await session.execute(update(model).where(where).values(**values))


async def _running_sale(shop: Shop, *, units: int) -> None:
    """A sale of `units` of the first well-stocked variant, running for the next hour, one
    unit a customer, ten minutes to pay."""
    variant = await _variant(shop)
    async with db(shop.client.app)() as session:
        await flash_sales.create_sale(
            session, variant_id=variant.id, price_fen=variant.price_fen - 1, units=units,
            starts_at=utcnow() - timedelta(minutes=1), ends_at=utcnow() + timedelta(hours=1),
            per_user_limit=1, pay_minutes=10, now=utcnow(),
        )
        await session.commit()


def _order_no(reply: Any) -> str:
    assert reply.kind == "news", reply.text
    return str(reply.articles[0].description.split("订单号 ")[1].split()[0])


async def test_staff_create_customers_are_reminded_rush_and_an_unpaid_unit_returns(sqlite_staffed: Shop) -> None:
    shop = sqlite_staffed
    owner, stranger = shop.user(OWNER), shop.user(STRANGER)
    variant = await _variant(shop)
    price = f"{variant.price_fen // 2 / 100:.2f}"

    # a stranger's /flash is refused (searched like any text) and audited
    refused = await stranger.say(f"/flash new {variant.sku_code} {price} 2 +1h 2h")
    assert "秒杀" not in refused.text and "确认码" not in refused.text
    async with db(shop.client.app)() as session:
        outcomes = (await session.scalars(select(AuditEntry.outcome).where(AuditEntry.actor == STRANGER))).all()
    assert outcomes == ["refused"]

    # staff: restated with the customers' line (the preview), made on "确认"
    preview = await owner.say(f"/flash new {variant.sku_code} {price} 2 +1h 2h limit 1 pay 10")
    assert "顾客在「秒杀」里会看到" in preview.text and "还有1小时" in preview.text and "确认码" in preview.text
    assert "已新建秒杀" in (await owner.say("确认")).text
    assert "/flash new" in (await owner.say("/flash new 1 abc")).text  # bad input: the usage line
    assert "要在 1 到" in (await owner.say(f"/flash new {variant.sku_code} {price} 0 now 1h")).text
    async with db(shop.client.app)() as session:
        several = await session.scalar(
            select(Variant.product_id).group_by(Variant.product_id).having(func.count() > 1).limit(1)
        )
    chooser = await owner.say(f"/flash new {several} 9.9 5 now 1h")
    assert "请用 SKU 指定" in chooser.text and "9.9 5 now 1h" in chooser.text
    assert "#1" in (await owner.say("/flash list")).text

    buyers = [shop.user(openid) for openid in BUYERS]
    for buyer in buyers:
        await _with_address(shop, buyer)
    first, second, third = buyers
    listing = await first.say("秒杀")
    assert "还有1小时" in listing.text and "开始" in listing.text and "提醒我" in listing.text
    assert "开始时会提醒你" in (await first.say("提醒我 1")).text
    assert "开始时会提醒你" in (await second.say("提醒我")).text
    early = await third.say("抢")
    assert "还没开始" in early.text and "还有" in early.text

    # the start: the job opens the sale and reminds both, once
    sale = await _sale(shop)
    await _set(shop, FlashSale, FlashSale.id == sale.id, starts_at=utcnow() - timedelta(seconds=1))
    assert await run_job("open_close_flash_sales", shop.client.app[JOBS]) == 2
    assert await run_job("open_close_flash_sales", shop.client.app[JOBS]) == 0
    for buyer in (first, second):
        assert [m.text for m in shop.outbox.for_user(buyer.openid) if "秒杀开始了" in m.text]
    assert not [m for m in shop.outbox.for_user(third.openid) if "秒杀开始了" in (m.text or "")]

    # three grab at once for two units: two pay cards (with the address), one sold out
    replies = await asyncio.gather(*(buyer.say("抢") for buyer in buyers))
    cards = [r for r in replies if r.kind == "news"]
    assert len(cards) == 2
    assert all("收货：张三 138****8000" in c.articles[0].description for c in cards)
    [lost] = [r for r in replies if r.kind != "news"]
    assert "抢光" in lost.text and "看看同类的" in lost.text  # a similar product instead
    loser = buyers[replies.index(lost)]
    winners = [b for b, r in zip(buyers, replies, strict=True) if r.kind == "news"]
    sale = await _sale(shop)
    assert (sale.held, sale.sold) == (2, 0)

    # one pays (the limit holds after it); the other's order expires: the unit is back at once
    paid_no, unpaid_no = (_order_no(r) for r in cards)
    await pay(shop, paid_no)
    payer = winners[0]
    assert "限购 1 件" in (await payer.say("抢")).text
    await _set(shop, Order, Order.order_no == unpaid_no, expires_at=utcnow() - timedelta(seconds=1))
    assert await run_job("expire_unpaid_orders", shop.client.app[JOBS]) == 1
    sale = await _sale(shop)
    assert (sale.held, sale.sold) == (0, 1)

    again = await loser.say("抢 1")
    assert again.kind == "news" and "抢到了" in again.articles[0].title
    sale = await _sale(shop)
    assert (sale.held, sale.sold, sale.units) == (1, 1, 2)
    async with db(shop.client.app)() as session:
        stock = await session.scalar(select(Variant.stock).where(Variant.id == variant.id))
        statuses = sorted((await session.scalars(select(Order.status).where(Order.order_no.like("SF%")))).all())
    assert stock == variant.stock - 2  # one paid, one held; the expired one gave its stock back
    assert statuses == sorted([OrderStatus.PAID.value, OrderStatus.PENDING_PAYMENT.value, OrderStatus.CANCELLED.value])

    # staff close it (restated, then confirmed): nobody grabs any more
    assert "将关闭秒杀 #1" in (await owner.say("/秒杀 关闭 1")).text
    assert "已关闭秒杀 #1" in (await owner.say("确认")).text
    assert "现在没有进行中" in (await payer.say("抢 1")).text


async def test_a_customer_without_an_address_keeps_the_unit_while_typing_one(sqlite_staffed: Shop) -> None:
    shop = sqlite_staffed
    await _running_sale(shop, units=1)
    newcomer, other = shop.user("o_flash_newcomer"), shop.user("o_flash_other_1")
    await _with_address(shop, other)
    asked = await newcomer.say("抢")
    assert "保留到" in asked.text and "姓名 手机号" in asked.text
    assert "抢光" in (await other.say("抢")).text  # the unit is held for the newcomer
    assert "Flash sales:" in (await other.say("flash")).text  # in English when asked in English
    assert "sold out" in (await other.say("grab 1")).text
    assert "还差收货信息" in (await newcomer.say("抢")).text  # the held unit waits for the address
    assert "确认" in (await newcomer.say("李四 13900139000 北京市朝阳区建国路1号")).text
    card = await newcomer.say("确认")
    assert card.kind == "news" and "李四 139****9000 北京市朝阳区建国路1号" in card.articles[0].description

    # a held unit nobody gave an address for goes back after the window (the job)
    third = shop.user("o_flash_third_1")
    sale = await _sale(shop)
    await _set(shop, FlashClaim, FlashClaim.sale_id == sale.id, order_id=None)
    await _set(shop, FlashClaim, FlashClaim.sale_id == sale.id, expires_at=utcnow() - timedelta(seconds=1))
    assert await run_job("return_flash_units", shop.client.app[JOBS]) == 1
    assert await run_job("return_flash_units", shop.client.app[JOBS]) == 0
    assert "保留到" in (await third.say("抢")).text


async def test_a_unit_held_for_an_address_is_not_lost_to_a_question_about_the_sale(sqlite_staffed: Shop) -> None:
    """At the address step a customer asks about the sale ("秒杀的还要付钱吗 怎么付"): the step
    goes on, the typed address kept, and is not replaced by the list. And when the step is
    gone anyway (a lost dialog state, an expiry), "抢" asks the held unit's address again,
    never "请先完成支付" with nothing to pay."""
    shop = sqlite_staffed
    await _running_sale(shop, units=2)
    listing = await shop.user("o_flash_looker").say("秒杀")
    assert "（例如「抢 1」）。" in listing.text, listing.text  # a sentence ended, not cut at a comma
    buyer = shop.user("o_flash_asker_1")
    assert "保留到" in (await buyer.say("抢")).text
    assert "确认" in (await buyer.say("赵六 13600136000 广州市天河区天河路385号")).text
    asked = await buyer.say("秒杀的还要付钱吗 怎么付")
    assert "继续刚才的秒杀" in asked.text and "136****6000" in asked.text, asked.text  # shown back to confirm
    card = await buyer.say("确认")
    assert card.kind == "news" and "赵六 136****6000" in card.articles[0].description

    lost = shop.user("o_flash_lost_1")
    assert "保留到" in (await lost.say("抢")).text
    await shop.client.app[SERVICES].dialogs.store.delete(lost.openid)  # the step gone (a lost state, an expiry)
    again = await lost.say("抢")
    assert "请先完成支付" not in again.text and "姓名 手机号" in again.text, again.text
    assert "确认" in (await lost.say("李四 13900139000 北京市朝阳区建国路1号")).text
    assert (await lost.say("确认")).kind == "news"


async def test_with_redis_only_winners_write_and_lost_keys_are_reloaded(
    make_shop: ShopFactory, sqlite_url: str, redis_url: str
) -> None:
    shop = await make_shop(sqlite_url, redis={"url": redis_url})
    await _running_sale(shop, units=1)
    first, second = shop.user("o_flash_redis_1"), shop.user("o_flash_redis_2")
    for user in (first, second):
        await _with_address(shop, user)
    won = await first.say("抢")
    assert won.kind == "news"
    redis = Redis.from_url(redis_url)
    sale = await _sale(shop)
    meta, counted = sale_keys(sale.id)[:2]
    assert await redis.hget(meta, "left") == b"0"  # the Lua script counted the unit
    assert list((await redis.hgetall(counted)).values()) == [b"1"]

    writes: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if ("flash_sales" in statement and statement.lstrip().upper().startswith("UPDATE")) or (
            "INSERT INTO flash_claims" in statement
        ):
            writes.append(statement)

    engine = shop.client.app[ENGINE].sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        assert "抢光" in (await second.say("抢")).text
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert writes == []  # the loser was turned away by the Lua script

    # Redis loses its keys, and the winner's order expires: the unit is back, read from the database
    await redis.flushdb()
    await _set(shop, Order, Order.order_no == _order_no(won), expires_at=utcnow() - timedelta(seconds=1))
    assert await run_job("expire_unpaid_orders", shop.client.app[JOBS]) == 1
    taken = await second.say("抢")
    assert taken.kind == "news"
    assert _order_no(await second.say("抢")) == _order_no(taken)  # holding one: its pay card again
    sale = await _sale(shop)
    assert (sale.held, sale.sold) == (1, 0)
    assert await redis.hget(meta, "ver") == str(sale.version).encode()  # reloaded from the database
    assert await redis.hget(meta, "left") == b"0"
    await redis.aclose()


async def test_a_reminder_whose_window_closed_goes_as_the_template_message(
    make_world: WorldFactory, sqlite_url: str
) -> None:
    world = await make_world(sqlite_url, wechat={"template_ids": "flash_started=TPL_FLASH"})
    shop = world.shop
    variant = await _variant(shop)
    async with db(shop.client.app)() as session:
        sale = await flash_sales.create_sale(
            session, variant_id=variant.id, price_fen=variant.price_fen - 1, units=3,
            starts_at=utcnow() + timedelta(hours=2, minutes=15), ends_at=utcnow() + timedelta(hours=4),
            per_user_limit=1, pay_minutes=15, now=utcnow(),
        )
        await session.commit()
    customer = shop.user(CUSTOMER)
    assert "还有2小时15分开始" in (await customer.say("秒杀")).text
    assert "开始时会提醒你" in (await customer.say("提醒我")).text
    await world.close_window(CUSTOMER)
    await _set(shop, FlashSale, FlashSale.id == sale.id, starts_at=utcnow() - timedelta(seconds=1))
    assert await run_job("open_close_flash_sales", shop.client.app[JOBS]) == 1
    await world.settle()
    [sent] = world.templates_to(CUSTOMER)
    assert sent["template_id"] == "TPL_FLASH" and "秒杀开始了" in sent["data"]["first"]["value"]
    assert await run_job("open_close_flash_sales", shop.client.app[JOBS]) == 0
    assert len(world.templates_to(CUSTOMER)) == 1


async def test_a_sale_called_off_before_its_start_tells_who_asked_to_be_reminded_once(sqlite_staffed: Shop) -> None:
    shop = sqlite_staffed
    owner, asked, other = shop.user(OWNER), shop.user(BUYERS[0]), shop.user(BUYERS[1])
    variant = await _variant(shop)
    await owner.say(f"/flash new {variant.sku_code} {variant.price_fen // 2 / 100:.2f} 2 +1h 2h")
    await owner.say("确认")
    sale = await _sale(shop)
    assert "开始时会提醒你" in (await asked.say("提醒我")).text
    await other.say("秒杀")  # looked, did not ask

    ask = await owner.say(f"/flash close {sale.id}")
    assert "1 位顾客预约了开抢提醒" in ask.text and "确认码" in ask.text
    assert not shop.outbox.for_user(asked.openid)  # nothing before the confirmation
    assert "已关闭秒杀" in (await owner.say("确认")).text
    told = [m.text for m in shop.outbox.for_user(asked.openid)]
    assert len(told) == 1 and "已取消" in told[0] and "回复「秒杀」" in told[0]
    assert not shop.outbox.for_user(other.openid)
    assert await run_job("open_close_flash_sales", shop.client.app[JOBS]) == 0  # and never "started"
    assert len(shop.outbox.for_user(asked.openid)) == 1


@pytest.fixture
async def refunding(
    db_url: str, unused_tcp_port: int, aiohttp_client: Callable[..., Awaitable[TestClient]], demo_catalog: None
) -> Shop:
    """A staffed shop whose links point at itself: the sandbox's refund notifications reach it."""
    return await open_staffed_shop(db_url, unused_tcp_port, aiohttp_client)


async def test_a_unit_refunded_before_shipping_goes_back_on_sale_while_it_runs(refunding: Shop) -> None:
    """A sale of one unit: its buyer pays, then is refunded in full before it ships; while
    the sale runs the unit is on sale again and the next customer grabs it. Refunded after
    the sale ended, it stays with the product's stock and the sale keeps it sold."""
    shop = refunding
    _edge(shop).recheck_seconds = 0.0  # the webhook's edge reads the sale at every grab (1 s in a shop)
    owner = shop.user(OWNER)
    variant = await _variant(shop)
    await owner.say(f"/flash new {variant.sku_code} {variant.price_fen // 2 / 100:.2f} 1 now 2h limit 1")
    await owner.say("确认")
    first, second = shop.user("o_flash_refund_1"), shop.user("o_flash_refund_2")
    for buyer in (first, second):
        await _with_address(shop, buyer)
    won = await first.say("抢")
    order_no = _order_no(won)
    await pay(shop, order_no)
    assert "抢光" in (await second.say("抢")).text

    ask = await owner.say(f"/refund {order_no}")
    await owner.say(confirm_code(ask.text))
    await settle_refunds(shop)
    sale = await _sale(shop)
    assert (sale.sold, sale.held) == (0, 0)
    again = await second.say("抢")
    assert again.kind == "news" and "抢到了" in again.articles[0].title, again.text
    await pay(shop, _order_no(again))
    sale = await _sale(shop)
    assert (sale.sold, sale.held) == (1, 0)

    # the sale over, a refund leaves it as it was
    await _set(shop, FlashSale, FlashSale.id == sale.id, ends_at=utcnow() - timedelta(seconds=1))
    async with db(shop.client.app)() as session:
        paid_no = await session.scalar(
            select(Order.order_no).where(Order.status == OrderStatus.PAID.value).order_by(Order.id.desc()).limit(1)
        )
    ask = await owner.say(f"/refund {paid_no}")
    await owner.say(confirm_code(ask.text))
    await settle_refunds(shop)
    sale = await _sale(shop)
    assert sale.sold == 1
    async with db(shop.client.app)() as session:
        stock = await session.scalar(select(Variant.stock).where(Variant.id == variant.id))
    assert stock == variant.stock  # both refunded before shipping: both units back in stock

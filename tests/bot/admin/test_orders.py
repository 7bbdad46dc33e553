"""Order commands through the real app: list, detail, ship, refund (confirmed), cancel (confirmed).

The shop here listens on a real port and its public URL points at itself, so the sandbox
provider's refund notifications come back over HTTP, as WeChat Pay's would.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select, update

from bot.app import create_app
from bot.keys import PAYMENTS, SERVICES
from bot.outbound.sender import MemoryOutbox
from commerce.orders import placement as orders
from commerce.orders import views as order_views
from commerce.orders.models import Order, OrderStatus
from commerce.payments.models import Refund
from commerce.payments.sandbox import build_notification
from commerce.staff.models import AuditEntry
from tests.bot.conftest import make_config, seed
from tests.bot.driver import ChatUser, Shop, db
from tests.bot.test_shopping_chat import _open, _sku, _stock
from tests.fakes import insert_order

pytestmark = pytest.mark.sqlite_only  # staff commands through the chat: their use cases run on both databases in tests/commerce

OWNER = "o_owner_0001"
OPERATOR = "o_operator_02"
SERVICE = "o_service_003"
CUSTOMER = "o_customer_77"
STRANGER = "o_stranger_99"

# ---- shared helpers (the after-sales, broadcast and alert tests use them too) --------------


async def open_staffed_shop(
    db_url: str,
    port: int,
    aiohttp_client: Callable[..., Awaitable[TestClient]],
    **sections: dict[str, Any],
) -> Shop:
    """A shop whose links point at itself (sandbox refunds notify it over HTTP), with an
    owner from the config and an operator and a service member added by chat. `sections`
    add to the config (e.g. shop={"new_customer_coupon": "WELCOME"})."""
    await seed(db_url)
    config = make_config(
        db_url,
        **{
            "server": {"base_url": f"http://127.0.0.1:{port}"},
            "staff": {"owners": [OWNER]},
            "scheduler": {"enabled": False},
            **sections,
        },
    )
    outbox = MemoryOutbox()
    client = await aiohttp_client(create_app(config, outbound=outbox), server_kwargs={"port": port})
    shop = Shop(client, config, outbox)
    owner = shop.user(OWNER)
    assert "已添加员工" in (await owner.say(f"/staff add {OPERATOR} operator")).text
    assert "已添加员工" in (await owner.say(f"/staff add {SERVICE} service")).text
    return shop


@pytest.fixture
async def staffed(
    db_url: str, unused_tcp_port: int, aiohttp_client: Callable[..., Awaitable[TestClient]], demo_catalog: None
) -> Shop:
    return await open_staffed_shop(db_url, unused_tcp_port, aiohttp_client)


async def place_order(shop: Shop, user: ChatUser, *, quantity: int = 2) -> str:
    """A customer orders bananas in chat; the order number from the pay card."""
    await _open(user, "香蕉", "香蕉")
    await user.say(f"加入购物车 {quantity}")
    checkout = await user.say("结算")
    if "请发送收货信息" in checkout.text:
        await user.say("张三 13800138000 上海市浦东新区世纪大道100号")
        await user.say("确认")
    card = await user.say("确认")
    assert card.kind == "news", card
    return card.articles[0].description.split("订单号 ")[1].split()[0]


async def view(shop: Shop, order_no: str) -> order_views.OrderView:
    async with db(shop.client.app)() as session:
        return await orders.get_order(session, order_no=order_no)


async def pay(shop: Shop, order_no: str) -> order_views.OrderView:
    """Pay through the sandbox's signed notification to our notify URL."""
    order = await view(shop, order_no)
    signed = build_notification(
        secret=shop.config.pay.sandbox_secret, order_no=order_no, amount_fen=order.payable_fen
    )
    response = await shop.client.post("/pay/notify/sandbox", data=signed.body, headers=signed.headers)
    assert response.status == 200
    await shop.client.app[PAYMENTS].drain()
    paid = await view(shop, order_no)
    assert paid.status == OrderStatus.PAID
    return paid


async def audit_rows(shop: Shop, command: str | None = None) -> list[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.id)
    if command is not None:
        query = query.where(AuditEntry.command == command)
    async with db(shop.client.app)() as session:
        return list((await session.scalars(query)).all())


def texts(shop: Shop, openid: str) -> list[str]:
    return [m.text for m in shop.outbox.for_user(openid)]


async def expire_confirmation(shop: Shop, openid: str) -> None:
    """Move the pending confirmation's deadline into the past."""
    store = shop.client.app[SERVICES].dialogs.store
    stored = await store.get(openid)
    assert stored is not None and stored.dialog == "confirm"
    await store.put(openid, dataclasses.replace(stored, data={**stored.data, "deadline": time.time() - 1}))


def confirm_code(text: str) -> str:
    return text.split("确认码 ")[1][:4]


async def refunds(shop: Shop) -> list[Refund]:
    async with db(shop.client.app)() as session:
        return list((await session.scalars(select(Refund).order_by(Refund.id))).all())


async def settle_refunds(shop: Shop) -> None:
    """Wait for the sandbox's refund notifications to come back and be applied."""
    payments = shop.client.app[PAYMENTS]
    for _ in range(200):
        pending = [r for r in await refunds(shop) if r.status == "pending"]
        if not pending and not payments.provider._pending:  # delivered: our endpoint has answered
            await payments.drain()  # and the customer's message it started is out
            return
        await asyncio.sleep(0.05)
    raise AssertionError("refunds still pending")


# ---- listing and looking up --------------------------------------------------------------


async def test_help_shows_each_role_its_order_commands(staffed: Shop) -> None:
    owner_help = (await staffed.user(OWNER).say("/help")).text
    for command in ("/orders", "/order（", "/ship", "/refund", "/cancel", "/aftersales", "/broadcast"):
        assert command in owner_help
    assert "/refund 订单号 [金额]（退款，需确认）" in (await staffed.user(OWNER).say("/help refund")).text
    service_help = (await staffed.user(SERVICE).say("/help")).text
    assert "/orders" in service_help and "/ship" in service_help and "/aftersales" in service_help
    assert "/refund" not in service_help and "/cancel" not in service_help and "/broadcast" not in service_help


async def test_orders_by_status_a_page_at_a_time(staffed: Shop) -> None:
    sessions = db(staffed.client.app)
    placed = [await insert_order(sessions, openid=f"o_buyer_{i:04d}") for i in range(12)]
    await pay(staffed, placed[0].order_no)
    service = staffed.user(SERVICE)

    first = await service.say("/orders")
    assert "【全部订单】共 12 单，第1/2页" in first.text
    assert first.text.count("· SF") == 10 and "/orders 全部 2" in first.text
    second = await service.say("/订单 2")
    assert "第2/2页" in second.text and second.text.count("· SF") == 2
    assert placed[0].order_no in second.text  # the oldest comes last

    paid = await service.say("/orders 已支付")
    assert "【已支付订单】共 1 单，第1/1页" in paid.text and placed[0].order_no in paid.text
    assert "…r_0000" in paid.text  # the customer's openid tail, never the whole of it
    assert "共 11 单" in (await service.say("/orders pending")).text
    assert (await service.say("/orders 1 paid")).text == paid.text
    assert "这一页没有订单" in (await service.say("/orders 已退款")).text
    assert "第5/2页" in (await service.say("/orders 5")).text

    for wrong in ("/orders nonsense", "/orders 0", "/orders paid shipped", "/orders 1 2", "/orders paid 1 x"):
        assert "参数不对" in (await service.say(wrong)).text, wrong

    stranger = await staffed.user(STRANGER).say("/orders paid")
    assert "第1/" not in stranger.text and "参数" not in stranger.text  # a search answer, nothing about orders
    (refused,) = [e for e in await audit_rows(staffed, "orders") if e.outcome == "refused"]
    assert (refused.actor, refused.role) == (STRANGER, "")
    assert [e.outcome for e in await audit_rows(staffed, "orders") if e.actor == SERVICE][:1] == ["ok"]


async def test_todays_orders_by_the_word_the_owner_types(staffed: Shop) -> None:
    """'/orders 今天' (today's orders, cut at the shop's midnight) and '/orders 已付款' used to
    get the usage line."""
    sessions = db(staffed.client.app)
    today = [await insert_order(sessions, openid=f"o_buyer_{i:04d}") for i in range(11)]
    older = [await insert_order(sessions, openid=f"o_early_{i:04d}") for i in range(2)]
    async with sessions() as session, session.begin():
        for placed, days in zip(older, (1, 2), strict=True):
            order = await session.get(Order, placed.id)
            assert order is not None
            order.created_at -= timedelta(days=days)
    await pay(staffed, today[0].order_no)
    owner = staffed.user(OWNER)

    first = await owner.say("/orders 今天")
    assert "【今天的订单】共 11 单，第1/2页" in first.text and "/orders 今天 全部 2" in first.text, first.text
    second = await owner.say("/orders 今天 全部 2")
    assert today[0].order_no in second.text and all(o.order_no not in second.text for o in older)
    paid = await owner.say("/orders 今天 已付款")
    assert "【今天的已支付订单】共 1 单" in paid.text and today[0].order_no in paid.text, paid.text
    assert (await owner.say("/orders 已付款")).text == paid.text.replace("【今天的", "【")
    yesterday = await owner.say("/订单 昨天")
    assert "【昨天的订单】共 1 单" in yesterday.text and older[0].order_no in yesterday.text, yesterday.text
    assert "共 13 单" in (await owner.say("/orders")).text
    assert "参数不对" in (await owner.say("/orders 今天 昨天")).text
    # any days /stats reads: a date typed, a week
    shop_today = datetime.now(ZoneInfo(staffed.config.shop.timezone)).date()
    typed = f"{(shop_today - timedelta(days=2)).month}-{(shop_today - timedelta(days=2)).day:02d}"
    dated = await owner.say(f"/orders {typed}")
    assert f"【{typed}的订单】共 1 单" in dated.text and older[1].order_no in dated.text, dated.text
    week = await owner.say("/orders 本周 已付款")
    assert "【本周的已支付订单】共 1 单" in week.text and today[0].order_no in week.text, week.text


async def test_one_order_with_its_lines_address_and_history(staffed: Shop) -> None:
    customer = staffed.user(CUSTOMER)
    order_no = await place_order(staffed, customer)
    await pay(staffed, order_no)
    await staffed.user(OPERATOR).say(f"/ship {order_no} 顺丰 SF1234567890")

    detail = (await staffed.user(SERVICE).say(f"/order {order_no.lower()}")).text
    assert f"订单 {order_no}（已发货）" in detail and "顾客…mer_77" in detail
    assert "香蕉" in detail and "×2" in detail and "实付" in detail
    assert "张三 13800138000 上海市浦东新区世纪大道100号" in detail
    assert "物流：顺丰 SF1234567890" in detail
    assert "待支付 · 顾客" in detail and "已支付 · 支付平台" in detail
    assert "已发货 · 员工…tor_02（SF1234567890）" in detail

    order_id = (await view(staffed, order_no)).id
    assert (await staffed.user(OWNER).say(f"/查单 #{order_id}")).text == detail
    assert "没有找到这个订单" in (await staffed.user(OWNER).say("/order SF2020010100000000")).text
    assert "参数不对" in (await staffed.user(OWNER).say("/order")).text
    assert "参数不对" in (await staffed.user(OWNER).say(f"/order {order_no} extra")).text
    assert "参数不对" in (await staffed.user(OWNER).say("/order SF-1;drop")).text


async def test_bug_an_orders_short_number_was_not_found(staffed: Shop) -> None:
    """Found playing a merchant's day: `/order 34103120`, the last 8 digits staff read off
    a parcel or a phone, said 没有找到这个订单. A unique end of 6 digits or more names the
    order wherever staff type one; an end several orders share lists them."""
    first = await place_order(staffed, staffed.user(CUSTOMER))
    await pay(staffed, first)
    owner = staffed.user(OWNER)
    assert f"订单 {first}（已支付）" in (await owner.say(f"/order {first[-8:]}")).text
    assert f"订单 {first} 已发货" in (await staffed.user(OPERATOR).say(f"/ship {first[-6:]} 顺丰 SF1234567890")).text
    assert f"将为订单 {first}（已发货" in (await owner.say(f"/refund {first[-7:]}")).text
    assert "没有执行" in (await owner.say("算了")).text
    assert f"订单 {first} 没有待处理的售后申请" in (await owner.say(f"/approve {first[-8:]}")).text

    second = await place_order(staffed, staffed.user("o_customer_88"))
    lookalike = f"SF2020010199{first[-6:]}"  # ends as the first does
    async with db(staffed.client.app)() as session, session.begin():
        await session.execute(update(Order).where(Order.order_no == second).values(order_no=lookalike))
    both = (await owner.say(f"/cancel {first[-6:]}")).text
    assert f"2 个订单的订单号以 {first[-6:]} 结尾" in both and first in both and lookalike in both, both
    assert "待支付" in both
    assert f"将取消待支付订单 {lookalike}" in (await owner.say(f"/cancel {lookalike[-8:]}")).text
    assert "没有执行" in (await owner.say("算了")).text
    assert (await view(staffed, lookalike)).status == OrderStatus.PENDING_PAYMENT


# ---- shipping ------------------------------------------------------------------------------


async def test_ship_moves_the_order_and_tells_the_customer(staffed: Shop) -> None:
    customer = staffed.user(CUSTOMER)
    order_no = await place_order(staffed, customer)
    await pay(staffed, order_no)
    before = len(texts(staffed, CUSTOMER))

    reply = await staffed.user(SERVICE).say(f"/发货 {order_no} 中通快递 ZT-778899")
    assert f"订单 {order_no} 已发货：中通快递 ZT-778899" in reply.text and "已通知顾客" in reply.text
    order = await view(staffed, order_no)
    assert (order.status, order.carrier, order.tracking_no) == (OrderStatus.SHIPPED, "中通快递", "ZT-778899")
    told = texts(staffed, CUSTOMER)[before:]
    assert len(told) == 1 and "已发货" in told[0] and "中通快递 ZT-778899" in told[0] and "香蕉" in told[0]

    (entry,) = [e for e in await audit_rows(staffed, "ship") if e.outcome == "ok"]
    assert entry.actor == SERVICE and entry.role == "service"
    assert entry.before["status"] == "paid" and entry.after["status"] == "shipped"
    assert entry.after["tracking_no"] == "ZT-778899"

    again = await staffed.user(OPERATOR).say(f"/ship {order_no} 中通 ZT-778899")  # the same number: nothing to do
    assert f"订单 {order_no} 已经用这个运单号发货了：中通快递 ZT-778899，没有改动" in again.text, again.text
    assert "确认码" not in again.text
    assert [e.outcome for e in await audit_rows(staffed, "ship")] == ["ok", "ok"]
    assert len(texts(staffed, CUSTOMER)) == before + 1


async def test_ship_refuses_wrong_arguments_and_unpaid_orders(staffed: Shop) -> None:
    order_no = await place_order(staffed, staffed.user(CUSTOMER))
    operator = staffed.user(OPERATOR)
    for wrong in (f"/ship {order_no}", f"/ship {order_no} 顺丰 单号有中文",
                  f"/ship {order_no} 顺丰 SF1 extra", "/ship"):
        assert "参数不对" in (await operator.say(wrong)).text, wrong
    unpaid = await operator.say(f"/ship {order_no} 顺丰 SF12345678")
    assert "还没有支付（待支付），没有要发的货" in unpaid.text, unpaid.text
    assert "还没有支付" in (await operator.say(f"/ship {order_no} 顺丰")).text  # no tracking number, and unpaid
    assert (await view(staffed, order_no)).status == OrderStatus.PENDING_PAYMENT
    assert texts(staffed, CUSTOMER) == []
    stranger = await staffed.user(STRANGER).say(f"/ship {order_no} 顺丰 SF12345678")
    assert "已发货" not in stranger.text
    assert [e.outcome for e in await audit_rows(staffed, "ship") if e.actor == STRANGER] == ["refused"]


async def test_a_tracking_number_typed_wrong_is_corrected_after_a_confirmation(staffed: Shop) -> None:
    customer = staffed.user(CUSTOMER)
    order_no = await place_order(staffed, customer)
    await pay(staffed, order_no)
    service = staffed.user(SERVICE)
    assert "已发货" in (await service.say(f"/ship {order_no} 顺丰 SF1234567890")).text
    told = len(texts(staffed, CUSTOMER))

    ask = await service.say(f"/ship {order_no} 顺丰 SF1234567891")
    assert f"订单 {order_no} 已发货：顺丰 SF1234567890" in ask.text, ask.text
    assert "将更正为：顺丰 SF1234567891" in ask.text and "确认码" in ask.text
    assert (await view(staffed, order_no)).tracking_no == "SF1234567890"  # nothing before the confirmation
    assert "没有执行" in (await service.say("算了")).text
    assert (await view(staffed, order_no)).tracking_no == "SF1234567890" and len(texts(staffed, CUSTOMER)) == told

    await service.say(f"/ship {order_no} 圆通 YT9988776655")
    done = await service.say("确认")
    assert f"订单 {order_no} 的运单号已更正：顺丰 SF1234567890 → 圆通 YT9988776655" in done.text, done.text
    assert "已把更正后的运单号告诉顾客" in done.text
    order = await view(staffed, order_no)
    assert (order.status, order.carrier, order.tracking_no) == (OrderStatus.SHIPPED, "圆通", "YT9988776655")
    (corrected,) = texts(staffed, CUSTOMER)[told:]
    assert "运单号有更正" in corrected and "圆通速递 YT9988776655" in corrected, corrected
    assert "com=yuantong&nu=YT9988776655" in corrected and "SF1234567890 有误" in corrected

    entries = [e for e in await audit_rows(staffed, "ship") if e.outcome == "ok"]
    assert (entries[-1].actor, entries[-1].before["tracking_no"], entries[-1].after["tracking_no"]) == (
        SERVICE, "SF1234567890", "YT9988776655")
    assert entries[-1].after["carrier"] == "圆通" and entries[-1].before["carrier"] == "顺丰"
    assert [(e.before["tracking_no"], e.after["tracking_no"]) for e in await audit_rows(staffed, "ship_correct")] == [
        ("SF1234567890", "YT9988776655")]

    same = await service.say(f"/ship {order_no} YTO YT9988776655")  # 圆通 by its code: the same shipment
    assert "已经用这个运单号发货了" in same.text and "确认码" not in same.text
    missing = await service.say(f"/ship {order_no} 圆通")
    assert "还缺运单号" in missing.text and f"/ship {order_no} 圆通 运单号" in missing.text, missing.text
    assert len(texts(staffed, CUSTOMER)) == told + 1

    async with db(staffed.client.app)() as session:  # the customer confirms receipt: the tracking is history
        await session.execute(update(Order).where(Order.order_no == order_no).values(status="completed"))
        await session.commit()
    late = await service.say(f"/ship {order_no} 圆通 YT1111111111")
    assert "不能这样操作" in late.text and "已完成" in late.text and "确认码" not in late.text
    assert (await view(staffed, order_no)).tracking_no == "YT9988776655"


async def test_ship_without_a_tracking_number_gives_the_command_for_that_order(staffed: Shop) -> None:
    order_no = await place_order(staffed, staffed.user(CUSTOMER))
    await pay(staffed, order_no)
    reply = await staffed.user(OPERATOR).say(f"/ship {order_no} 圆通")
    assert "还缺运单号" in reply.text and f"/ship {order_no} 圆通 运单号" in reply.text, reply.text
    assert "参数不对" not in reply.text
    assert (await view(staffed, order_no)).status == OrderStatus.PAID
    assert "没有找到这个订单" in (await staffed.user(OPERATOR).say("/ship SF2020010100000000 圆通")).text


async def test_ship_and_order_read_chinese_commas_between_values(staffed: Shop) -> None:
    """"/ship SF…，圆通，YT888" used to get the usage line."""
    first = await place_order(staffed, staffed.user(CUSTOMER))
    second = await place_order(staffed, staffed.user("o_customer_78"))
    await pay(staffed, first)
    await pay(staffed, second)
    operator = staffed.user(OPERATOR)
    shipped = await operator.say(f"/ship {first}，圆通，YT8888888888")
    assert f"订单 {first} 已发货：圆通 YT8888888888" in shipped.text, shipped.text
    batch = await operator.say(f"/发货 顺丰、{second}、SF1000000001")
    assert f"订单 {second} 已发货：顺丰 SF1000000001" in batch.text, batch.text
    assert "已发货" in (await operator.say(f"/order {first}，")).text
    assert "圆通 YT8888888888" in (await operator.say(f"/查单 {first}")).text
    listed = await operator.say("/orders 已发货，1")
    assert first in listed.text and second in listed.text, listed.text


# ---- refunds --------------------------------------------------------------------------------


async def test_partial_then_full_refund_through_the_sandbox(staffed: Shop) -> None:
    customer = staffed.user(CUSTOMER)
    order_no = await place_order(staffed, customer)
    paid = await pay(staffed, order_no)
    owner = staffed.user(OWNER)

    ask = await owner.say(f"/refund {order_no} 5")
    assert f"将为订单 {order_no}（已支付，实付 ¥{paid.paid_fen / 100:.2f}）退款 ¥5.00" in ask.text
    assert f"目前可退 ¥{paid.paid_fen / 100:.2f}" in ask.text
    assert f"退款后还可退 ¥{(paid.paid_fen - 500) / 100:.2f}" in ask.text and "确认码" in ask.text
    assert await refunds(staffed) == []  # nothing happens before the confirmation

    done = await owner.say("确认")
    assert "已为订单" in done.text and "发起退款 ¥5.00" in done.text
    await settle_refunds(staffed)
    order = await view(staffed, order_no)
    assert (order.status, order.refunded_fen) == (OrderStatus.PAID, 500)
    assert any("退款 ¥5.00 已成功" in t for t in texts(staffed, CUSTOMER))

    ask = await staffed.user(OPERATOR).say(f"/退款 {order_no}")
    left = paid.paid_fen - 500
    assert f"退款 ¥{left / 100:.2f}（剩余全部）" in ask.text and "退款后还可退 ¥0.00" in ask.text
    done = await staffed.user(OPERATOR).say(confirm_code(ask.text))
    assert "发起退款" in done.text
    await settle_refunds(staffed)
    order = await view(staffed, order_no)
    assert (order.status, order.refunded_fen) == (OrderStatus.REFUNDED, paid.paid_fen)
    assert sum("已成功" in t for t in texts(staffed, CUSTOMER)) == 2
    assert [r.status for r in await refunds(staffed)] == ["succeeded", "succeeded"]
    assert all(r.actor.startswith("staff:") for r in await refunds(staffed))

    entries = [e for e in await audit_rows(staffed, "refund") if e.outcome == "ok"]
    assert [e.actor for e in entries] == [OWNER, OPERATOR]
    assert entries[0].after["amount_fen"] == 500 and entries[0].after["refund_no"].startswith("RF")
    assert entries[1].before["refundable_fen"] == left and entries[1].after["refundable_fen"] == 0
    assert "没有可退的金额" in (await owner.say(f"/refund {order_no}")).text


async def test_refund_refusals_and_called_off_confirmations(staffed: Shop) -> None:
    order_no = await place_order(staffed, staffed.user(CUSTOMER))
    owner = staffed.user(OWNER)
    assert "没有可退的金额" in (await owner.say(f"/refund {order_no}")).text  # unpaid
    paid = await pay(staffed, order_no)

    too_much = await owner.say(f"/refund {order_no} 9999")
    assert "退款金额超过了可退金额" in too_much.text and f"¥{paid.paid_fen / 100:.2f}" in too_much.text
    for wrong in (f"/refund {order_no} abc", f"/refund {order_no} 0", f"/refund {order_no} 1.234",
                  f"/refund {order_no} -3", "/refund", f"/refund {order_no} 1 2"):
        assert "参数不对" in (await owner.say(wrong)).text, wrong

    not_allowed = await staffed.user(SERVICE).say(f"/refund {order_no}")
    assert "不能使用 /refund" in not_allowed.text
    stranger = await staffed.user(STRANGER).say(f"/refund {order_no}")
    assert "退款" not in stranger.text

    await owner.say(f"/refund {order_no} 1")
    assert "已取消，/refund 没有执行" in (await owner.say("不退了")).text
    await owner.say(f"/refund {order_no} 1")
    await expire_confirmation(staffed, OWNER)
    assert "确认已超时" in (await owner.say("确认")).text
    assert await refunds(staffed) == []
    assert (await view(staffed, order_no)).refunded_fen == 0

    outcomes = [(e.actor, e.outcome) for e in await audit_rows(staffed, "refund")]
    assert (SERVICE, "refused") in outcomes and (STRANGER, "refused") in outcomes
    assert (OWNER, "cancelled") in outcomes and (OWNER, "expired") in outcomes
    assert (OWNER, "failed") in outcomes  # too much / nothing to refund
    assert (OWNER, "ok") not in outcomes


# ---- cancelling ---------------------------------------------------------------------------


async def test_cancel_an_unpaid_order_gives_the_stock_back_and_tells_the_customer(staffed: Shop) -> None:
    banana = await _sku(staffed, "香蕉", "")
    before_stock = await _stock(staffed, banana)
    order_no = await place_order(staffed, staffed.user(CUSTOMER), quantity=3)
    assert await _stock(staffed, banana) == before_stock - 3

    ask = await staffed.user(OPERATOR).say(f"/取消订单 {order_no}")
    assert f"将取消待支付订单 {order_no}" in ask.text and "香蕉 ×3" in ask.text and "确认码" in ask.text
    done = await staffed.user(OPERATOR).say("确认")
    assert f"订单 {order_no} 已取消，库存已退回" in done.text and "已通知顾客" in done.text

    order = await view(staffed, order_no)
    assert order.status == OrderStatus.CANCELLED
    assert order.events[-1].actor == f"staff:{OPERATOR}"
    assert await _stock(staffed, banana) == before_stock
    (told,) = texts(staffed, CUSTOMER)
    assert "已被商家取消" in told and order_no in told and "香蕉 ×3" in told

    (entry,) = [e for e in await audit_rows(staffed, "cancel") if e.outcome == "ok"]
    assert entry.before["status"] == "pending_payment" and entry.after["status"] == "cancelled"
    again = await staffed.user(OPERATOR).say(f"/cancel {order_no}")
    assert "不能这样操作" in again.text and "已取消" in again.text


async def test_cancel_refuses_a_paid_order_and_points_to_refund(staffed: Shop) -> None:
    order_no = await place_order(staffed, staffed.user(CUSTOMER))
    await pay(staffed, order_no)
    owner = staffed.user(OWNER)
    refused = await owner.say(f"/cancel {order_no}")
    assert "不能取消" in refused.text and f"/refund {order_no}" in refused.text
    assert "确认码" not in refused.text  # nothing to confirm
    assert await staffed.client.app[SERVICES].dialogs.store.get(OWNER) is None
    assert (await view(staffed, order_no)).status == OrderStatus.PAID
    (entry,) = await audit_rows(staffed, "cancel")
    assert entry.outcome == "failed" and entry.after == {"error": "paid_use_refund"}

    assert "不能使用 /cancel" in (await staffed.user(SERVICE).say(f"/cancel {order_no}")).text
    assert "参数不对" in (await owner.say("/cancel")).text


async def test_a_cancel_called_off_or_too_late_leaves_the_order(staffed: Shop) -> None:
    order_no = await place_order(staffed, staffed.user(CUSTOMER))
    owner = staffed.user(OWNER)
    await owner.say(f"/cancel {order_no}")
    assert "已取消，/cancel 没有执行" in (await owner.say("再想想")).text
    await owner.say(f"/cancel {order_no}")
    await expire_confirmation(staffed, OWNER)
    assert "确认已超时" in (await owner.say("确认")).text
    assert (await view(staffed, order_no)).status == OrderStatus.PENDING_PAYMENT
    assert texts(staffed, CUSTOMER) == []
    assert [e.outcome for e in await audit_rows(staffed, "cancel")] == ["cancelled", "expired"]
    async with db(staffed.client.app)() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 1


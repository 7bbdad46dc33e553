"""After-sales commands through the real app: the open requests, approve (confirmed, refunds
through the sandbox), reject with a reason; the customer is told each time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.keys import SERVICES
from commerce.orders.models import AfterSalesRequest, OrderStatus
from tests.bot.admin.test_orders import (
    CUSTOMER,
    OPERATOR,
    OWNER,
    SERVICE,
    STRANGER,
    audit_rows,
    confirm_code,
    expire_confirmation,
    open_staffed_shop,
    pay,
    place_order,
    refunds,
    settle_refunds,
    texts,
    view,
)
from tests.bot.driver import ChatUser, Shop, db


@pytest.fixture
async def staffed(
    db_url: str, unused_tcp_port: int, aiohttp_client: Callable[..., Awaitable[TestClient]], demo_catalog: None
) -> Shop:
    return await open_staffed_shop(db_url, unused_tcp_port, aiohttp_client)


async def ask_for_refund(shop: Shop, user: ChatUser, reason: str = "不想要了，请退款") -> tuple[str, int]:
    """A paid order and the customer's after-sales request on it, made in chat."""
    order_no = await place_order(shop, user)
    await pay(shop, order_no)
    await user.say("订单")
    await user.say("1")
    word = "退货" if "退货" in reason else "退款"
    answer = await user.say(f"{word} {reason}")
    assert "申请" in answer.text, answer.text
    async with db(shop.client.app)() as session:
        request = await session.scalar(select(AfterSalesRequest).order_by(AfterSalesRequest.id.desc()))
    assert request is not None
    await shop.client.app[SERVICES].alerts.drain()
    return order_no, request.id


async def request_status(shop: Shop, request_id: int) -> str:
    async with db(shop.client.app)() as session:
        return await session.scalar(select(AfterSalesRequest.status).where(AfterSalesRequest.id == request_id)) or ""


async def test_open_requests_then_approve_refunds_and_tells_the_customer(staffed: Shop) -> None:
    customer = staffed.user(CUSTOMER)
    order_no, request_id = await ask_for_refund(staffed, customer)
    paid = await view(staffed, order_no)
    service = staffed.user(SERVICE)

    listed = (await service.say("/售后")).text
    assert f"#{request_id}" in listed and order_no in listed and "不想要了" in listed
    assert f"可退 ¥{paid.paid_fen / 100:.2f}" in listed and "顾客…mer_77" in listed

    # customer service sees the request, but approving moves money: owners and operators only
    assert "不能使用 /approve" in (await service.say(f"/approve {request_id}")).text
    owner = staffed.user(OWNER)
    ask = await owner.say(f"/approve {request_id}")
    assert f"将同意售后申请 #{request_id}" in ask.text and f"同时退款 ¥{paid.paid_fen / 100:.2f}" in ask.text
    assert await refunds(staffed) == []
    before = len(texts(staffed, CUSTOMER))
    done = await owner.say(confirm_code(ask.text))
    assert f"已同意售后申请 #{request_id}" in done.text and "已发起退款" in done.text and "已通知顾客" in done.text

    await settle_refunds(staffed)
    order = await view(staffed, order_no)
    assert (order.status, order.refunded_fen) == (OrderStatus.REFUNDED, paid.paid_fen)
    assert await request_status(staffed, request_id) == "approved"
    told = texts(staffed, CUSTOMER)[before:]
    # both told; in which order they arrive is a race here (the sandbox's refund notification
    # comes within milliseconds, and each outbox row is taken in a write before it is sent)
    assert any("申请已通过" in t and f"¥{paid.paid_fen / 100:.2f}" in t for t in told)
    assert any("已成功" in t for t in told)

    (entry,) = [e for e in await audit_rows(staffed, "approve") if e.outcome == "ok"]
    assert entry.actor == OWNER and entry.before["status"] == "open" and entry.after["status"] == "approved"
    assert entry.after["refund_fen"] == paid.paid_fen and entry.after["refund_no"].startswith("RF")
    assert "没有待处理的申请" in (await service.say("/aftersales")).text

    again = await staffed.user(OWNER).say(f"/approve {request_id}")
    assert "已经处理过了" in again.text and "确认码" not in again.text  # refused before any confirmation
    assert len(await refunds(staffed)) == 1


async def test_reject_tells_the_customer_why(staffed: Shop) -> None:
    customer = staffed.user(CUSTOMER)
    order_no, request_id = await ask_for_refund(staffed, customer, "退货 尺码不合适")
    operator = staffed.user(OPERATOR)
    assert "参数不对" in (await operator.say(f"/reject {request_id}")).text
    assert "请写明原因" in (await operator.say(f"/reject {request_id} 不")).text  # too short for the core
    before = len(texts(staffed, CUSTOMER))

    done = await operator.say(f"/拒绝 {request_id}，商品已拆封使用，不支持退货")  # the reason keeps its comma
    assert f"已拒绝售后申请 #{request_id}" in done.text and "已通知顾客" in done.text
    assert await request_status(staffed, request_id) == "rejected"
    (told,) = texts(staffed, CUSTOMER)[before:]
    assert "退货申请没有通过" in told and "商品已拆封使用，不支持退货" in told and order_no in told
    assert (await view(staffed, order_no)).status == OrderStatus.PAID  # nothing else changes

    outcomes = [e.outcome for e in await audit_rows(staffed, "reject")]
    assert outcomes == ["failed", "ok"]  # the too-short reason, then the rejection
    (entry,) = [e for e in await audit_rows(staffed, "reject") if e.outcome == "ok"]
    assert entry.after["status"] == "rejected" and "拆封" in entry.after["resolution"]

    twice = await operator.say(f"/reject {request_id} 再拒绝一次")
    assert "已经处理过了" in twice.text
    assert len(texts(staffed, CUSTOMER)) == before + 1


async def test_approve_called_off_too_late_and_wrong(staffed: Shop) -> None:
    _order_no, request_id = await ask_for_refund(staffed, staffed.user(CUSTOMER))
    owner = staffed.user(OWNER)
    await owner.say(f"/approve {request_id}")
    assert "已取消，/approve 没有执行" in (await owner.say("先不处理")).text
    await owner.say(f"/同意 {request_id}")
    await expire_confirmation(staffed, OWNER)
    assert "确认已超时" in (await owner.say("确认")).text
    assert await request_status(staffed, request_id) == "open"
    assert await refunds(staffed) == []

    for wrong in ("/approve", "/approve abc", f"/approve {request_id} 2", "/aftersales now", "/reject x 原因很充分"):
        assert "参数不对" in (await owner.say(wrong)).text, wrong
    missing = await owner.say("/approve 99999")
    assert "没有这个售后申请" in missing.text and "确认码" not in missing.text
    stranger = await staffed.user(STRANGER).say(f"/approve {request_id}")
    assert "确认码" not in stranger.text and "售后" not in stranger.text

    outcomes = [(e.actor, e.outcome) for e in await audit_rows(staffed, "approve")]
    assert (OWNER, "cancelled") in outcomes and (OWNER, "expired") in outcomes
    assert (STRANGER, "refused") in outcomes and (OWNER, "failed") in outcomes  # the missing one
    assert (OWNER, "ok") not in outcomes


async def test_approving_when_nothing_is_left_to_refund_only_marks_it(staffed: Shop) -> None:
    order_no, request_id = await ask_for_refund(staffed, staffed.user(CUSTOMER))
    owner = staffed.user(OWNER)
    await owner.say(f"/refund {order_no}")
    await owner.say("确认")
    await settle_refunds(staffed)
    before = len(texts(staffed, CUSTOMER))

    ask = await owner.say(f"/approve {request_id}")
    assert "没有可退的金额，只会标记为已同意" in ask.text
    done = await owner.say("确认")
    assert f"已同意售后申请 #{request_id}" in done.text and "这个订单没有可退的金额" in done.text
    assert await request_status(staffed, request_id) == "approved"
    (told,) = texts(staffed, CUSTOMER)[before:]
    assert "申请已通过" in told and "¥" not in told
    assert len(await refunds(staffed)) == 1
    (entry,) = [e for e in await audit_rows(staffed, "approve") if e.outcome == "ok"]
    assert entry.after["refund_fen"] == 0 and "refund_problem" not in entry.after


async def test_approve_and_reject_by_the_order_number_the_alert_shows(staffed: Shop) -> None:
    """The new-request alert names the order; staff copy its number into /approve or /reject
    (it used to answer with the usage line, the alert saying only "/aftersales")."""
    order_no, request_id = await ask_for_refund(staffed, staffed.user(CUSTOMER))
    (alert,) = [t for t in texts(staffed, OWNER) if "新的退款申请" in t]
    assert order_no in alert and f"/approve {request_id}" in alert and f"/reject {request_id} 原因" in alert

    owner = staffed.user(OWNER)
    ask = await owner.say(f"/approve {order_no}")
    assert f"将同意售后申请 #{request_id}" in ask.text and order_no in ask.text
    done = await owner.say(confirm_code(ask.text))
    assert f"已同意售后申请 #{request_id}" in done.text
    assert await request_status(staffed, request_id) == "approved"
    (entry,) = [e for e in await audit_rows(staffed, "approve") if e.outcome == "ok"]
    assert entry.before["id"] == request_id and entry.args == [order_no]

    # nothing open on it any more, said with the order's number (its 16 digits do too)
    again = await owner.say(f"/reject {order_no[2:]} 已经退过了")
    assert f"订单 {order_no} 没有待处理的售后申请" in again.text

    other_no, other_id = await ask_for_refund(staffed, staffed.user(STRANGER), "退货 颜色不喜欢")
    done = await staffed.user(SERVICE).say(f"/reject {other_no.lower()} 定制商品不支持退货")
    assert f"已拒绝售后申请 #{other_id}" in done.text
    assert await request_status(staffed, other_id) == "rejected"
    assert "参数不对" in (await owner.say("/approve SF123")).text  # neither an id nor an order number

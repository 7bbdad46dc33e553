"""PaymentService on real databases (SQLite and PostgreSQL): notifications recorded once,
side effects after the commit, late money refunded, refunds through the provider."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from commerce.customers.models import Customer
from commerce.errors import ErrorCode, ShopError
from commerce.messaging.notifications import Notification as Told
from commerce.orders import placement as orders
from commerce.orders import views as order_views
from commerce.orders.actions import CancelledBy, cancel_order
from commerce.orders.models import OrderEvent, OrderStatus
from commerce.payments import records as payment_records
from commerce.payments.base import Notification, PaymentError, PaymentRequest
from commerce.payments.models import PaymentEvent, Refund, RefundStatus
from commerce.payments.service import PaymentService
from commerce.rules import ShopRules, as_utc
from commerce.uow import UnitOfWorkFactory
from commerce.wiring import shop_sessions
from tests.fakes import PlacedOrder, insert_order, outbox_notices

MCHID, APPID = "1900000109", "wx_test_app"
CANCEL_NOTICES = ("order_cancelled", "order_cancelled_by_shop", "order_expired")


@dataclass
class ScriptedProvider:
    """A provider that records what it was asked and fails when told to."""

    name: str = "wechatpay_v3"
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    fail_with: PaymentError | None = None

    async def create_payment(self, **kwargs: Any) -> PaymentRequest:
        self.calls.append(("create_payment", kwargs))
        return PaymentRequest(provider=self.name, order_no=kwargs["order_no"], kind="native", code_url="weixin://x")

    async def close_payment(self, **kwargs: Any) -> None:
        self.calls.append(("close_payment", kwargs))
        if self.fail_with:
            raise self.fail_with

    async def refund(self, **kwargs: Any) -> None:
        self.calls.append(("refund", kwargs))
        if self.fail_with:
            raise self.fail_with

    def verify_notification(self, *, headers: Mapping[str, str], body: bytes) -> Notification:
        raise NotImplementedError

    def acknowledge(self, *, ok: bool, message: str = "") -> tuple[int, str, str]:
        return (200 if ok else 400), "text/plain", "OK" if ok else "FAIL"

    async def aclose(self) -> None:
        return None

    def refunds(self) -> list[dict[str, Any]]:
        return [kwargs for name, kwargs in self.calls if name == "refund"]


@dataclass
class World:
    sessions: async_sessionmaker[AsyncSession]
    provider: ScriptedProvider
    service: PaymentService

    async def told(self) -> list[Told]:
        """What the service told customers: outbox rows, written with their cause (the
        cancellations a test makes tell the customer too: those are left out)."""
        return [n for n in await outbox_notices(self.sessions) if n.template not in CANCEL_NOTICES]

    async def templates(self) -> list[str]:
        return [n.template for n in await self.told()]

    async def count(self, model: type, *where: Any) -> int:
        async with self.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    async def order(self, order_no: str) -> order_views.OrderView:
        async with self.sessions() as session:
            return await orders.get_order(session, order_no=order_no)


@pytest.fixture
async def world(engine: AsyncEngine, demo_catalog: None) -> World:
    """The payment service on a database that holds the demo catalog (from the template)."""
    sessions = shop_sessions(engine)
    provider = ScriptedProvider()
    service = PaymentService(
        provider=provider,
        uows=UnitOfWorkFactory(sessions, ShopRules()),
        appid=APPID,
        mchid=MCHID,
        notify_url="https://shop.example.com/pay/notify/wechatpay_v3",
        refund_notify_url="https://shop.example.com/pay/refund-notify/wechatpay_v3",
    )
    return World(sessions, provider, service)


def paid(order: PlacedOrder, *, transaction_id: str = "4200001", amount_fen: int | None = None, **kw: Any) -> Notification:
    fields: dict[str, Any] = {
        "kind": "payment",
        "provider": "wechatpay_v3",
        "order_no": order.order_no,
        "amount_fen": order.payable_fen if amount_fen is None else amount_fen,
        "succeeded": True,
        "mchid": MCHID,
        "appid": APPID,
        "transaction_id": transaction_id,
        "occurred_at": datetime.now(UTC),
        "payload": {"transaction_id": transaction_id},
    }
    fields.update(kw)
    return Notification(**fields)


def refunded(order: PlacedOrder, refund: Refund | dict[str, Any], *, succeeded: bool = True) -> Notification:
    refund_no = refund["refund_no"] if isinstance(refund, dict) else refund.refund_no
    amount = refund["amount_fen"] if isinstance(refund, dict) else refund.amount_fen
    return Notification(
        kind="refund",
        provider="wechatpay_v3",
        order_no=order.order_no,
        amount_fen=amount,
        succeeded=succeeded,
        mchid=MCHID,
        appid="",
        refund_no=refund_no,
        provider_refund_id=f"5000{refund_no}",
        payload={"out_refund_no": refund_no},
    )


# ---- payments --------------------------------------------------------------------------------


async def test_a_payment_pays_the_order_and_tells_the_customer(world: World) -> None:
    order = await insert_order(world.sessions)

    assert await world.service.handle_notification(paid(order)) is True
    await world.service.drain()

    view = await world.order(order.order_no)
    assert (view.status, view.paid_fen, view.pay_provider, view.pay_transaction_id) == (
        OrderStatus.PAID,
        order.payable_fen,
        "wechatpay_v3",
        "4200001",
    )
    (message,) = (await world.told())
    assert (message.openid, message.template) == (order.openid, "order_paid")
    assert message.data["order_no"] == order.order_no and message.data["amount_fen"] == order.payable_fen
    assert message.data["items"][0]["quantity"] == 2


async def test_ten_copies_of_one_notification_change_the_order_once(world: World) -> None:
    order = await insert_order(world.sessions)

    answers = await asyncio.gather(*(world.service.handle_notification(paid(order)) for _ in range(10)))
    await world.service.drain()

    assert answers == [True] * 10
    assert await world.count(PaymentEvent) == 1
    assert await world.count(OrderEvent, OrderEvent.to_status == OrderStatus.PAID.value) == 1
    assert await world.templates() == ["order_paid"]
    assert world.provider.refunds() == []


async def test_two_payments_of_one_order_at_once_the_second_is_refunded(world: World) -> None:
    order = await insert_order(world.sessions)

    answers = await asyncio.gather(
        world.service.handle_notification(paid(order, transaction_id="T-A")),
        world.service.handle_notification(paid(order, transaction_id="T-B")),
    )
    await world.service.drain()

    assert answers == [True, True]
    assert await world.count(OrderEvent, OrderEvent.to_status == OrderStatus.PAID.value) == 1
    view = await world.order(order.order_no)
    (refund,) = world.provider.refunds()
    assert refund["transaction_id"] in ("T-A", "T-B") and refund["transaction_id"] != view.pay_transaction_id
    assert refund["amount_fen"] == refund["total_fen"] == order.payable_fen
    assert refund["refund_no"].startswith("RL")
    assert sorted(await world.templates()) == ["late_payment_refunded", "order_paid"]
    late = next(m for m in (await world.told()) if m.template == "late_payment_refunded")
    assert late.data["reason"] == "already_paid"

    # WeChat Pay confirms the refund: the late refund is settled, the order keeps its payment
    assert await world.service.handle_notification(refunded(order, refund)) is True
    await world.service.drain()
    view = await world.order(order.order_no)
    assert (view.status, view.paid_fen, view.refunded_fen) == (OrderStatus.PAID, order.payable_fen, 0)
    async with world.sessions() as session:
        outcomes = sorted((await session.scalars(select(PaymentEvent.outcome).where(PaymentEvent.kind == "payment"))).all())
    assert outcomes == ["already_paid_refunded", "applied"]


async def test_money_after_the_order_was_cancelled_goes_back(world: World) -> None:
    order = await insert_order(world.sessions)
    async with world.sessions() as session, session.begin():
        await cancel_order(session, order_id=order.id, by=CancelledBy.TIMEOUT, now=datetime.now(UTC))

    assert await world.service.handle_notification(paid(order, transaction_id="T-LATE")) is True
    await world.service.drain()

    assert (await world.order(order.order_no)).status == OrderStatus.CANCELLED
    (refund,) = world.provider.refunds()
    assert (refund["transaction_id"], refund["amount_fen"]) == ("T-LATE", order.payable_fen)
    assert refund["notify_url"] == world.service.refund_notify_url
    (message,) = (await world.told())
    assert (message.template, message.data["reason"]) == ("late_payment_refunded", "late")

    # the tenth copy of the late notification starts no second refund
    assert await world.service.handle_notification(paid(order, transaction_id="T-LATE")) is True
    await world.service.drain()
    assert len(world.provider.refunds()) == 1


async def test_a_wrong_amount_does_not_pay_the_order_and_is_refunded(world: World) -> None:
    order = await insert_order(world.sessions)

    assert await world.service.handle_notification(paid(order, amount_fen=1)) is True
    await world.service.drain()

    assert (await world.order(order.order_no)).status == OrderStatus.PENDING_PAYMENT
    (refund,) = world.provider.refunds()
    assert (refund["amount_fen"], refund["total_fen"]) == (1, 1)
    assert [m.data["reason"] for m in (await world.told())] == ["amount_mismatch"]
    async with world.sessions() as session:
        assert await session.scalar(select(PaymentEvent.outcome)) == "amount_mismatch_refund_pending"


@pytest.mark.parametrize("field_name", ["mchid", "appid"])
async def test_another_merchant_or_app_is_refused_and_nothing_recorded(world: World, field_name: str) -> None:
    order = await insert_order(world.sessions)

    assert await world.service.handle_notification(paid(order, **{field_name: "someone-else"})) is False

    assert await world.count(PaymentEvent) == 0
    assert (await world.order(order.order_no)).status == OrderStatus.PENDING_PAYMENT
    assert (await world.told()) == []


async def test_an_unsuccessful_payment_changes_nothing(world: World) -> None:
    order = await insert_order(world.sessions)
    assert await world.service.handle_notification(paid(order, succeeded=False)) is True
    assert await world.count(PaymentEvent) == 0


async def test_a_payment_for_an_unknown_order_is_recorded_and_acknowledged(world: World) -> None:
    unknown = PlacedOrder(id=0, order_no="SF-NOPE", openid="o", payable_fen=100)
    assert await world.service.handle_notification(paid(unknown)) is True
    async with world.sessions() as session:
        assert await session.scalar(select(PaymentEvent.outcome)) == "unknown_order"


# ---- refunds ----------------------------------------------------------------------------------


async def test_a_partial_refund_goes_through_the_provider_and_its_notification(world: World) -> None:
    order = await insert_order(world.sessions)
    await world.service.handle_notification(paid(order))
    await world.service.drain()

    refund = await world.service.refund(order_id=order.id, amount_fen=100, reason="少发一件", actor="staff:o_owner")

    (call,) = world.provider.refunds()
    assert call == {
        "order_no": order.order_no,
        "refund_no": refund.refund_no,
        "amount_fen": 100,
        "total_fen": order.payable_fen,
        "reason": "少发一件",
        "notify_url": world.service.refund_notify_url,
        "transaction_id": "",
    }
    assert refund.status == RefundStatus.PENDING

    note = refunded(order, refund)
    assert await world.service.handle_notification(note) is True
    assert await world.service.handle_notification(note) is True  # a copy: nothing more
    await world.service.drain()

    view = await world.order(order.order_no)
    assert (view.status, view.refunded_fen) == (OrderStatus.PAID, 100)
    assert await world.templates() == ["order_paid", "refund_succeeded"]
    assert (await world.told())[-1].data == {"order_no": order.order_no, "amount_fen": 100}


async def test_a_refund_the_provider_refuses_is_recorded_as_failed(world: World) -> None:
    order = await insert_order(world.sessions)
    await world.service.handle_notification(paid(order))
    await world.service.drain()
    world.provider.fail_with = PaymentError("NOT_ENOUGH", "余额不足")

    refund = await world.service.refund(order_id=order.id, amount_fen=order.payable_fen, reason="x", actor="staff")

    assert refund.status == RefundStatus.FAILED
    view = await world.order(order.order_no)
    assert (view.status, view.refunded_fen) == (OrderStatus.PAID, 0)  # back from refunding


async def test_a_failed_refund_going_back_to_paid_is_not_a_payment(world: World) -> None:
    """refunding -> paid reopens no customer-service window (only money does)."""
    order = await insert_order(world.sessions)
    await world.service.handle_notification(paid(order))
    await world.service.drain()
    long_ago = datetime.now(UTC) - timedelta(days=3)
    async with world.sessions() as session, session.begin():
        await session.execute(update(Customer).where(Customer.openid == order.openid).values(paid_window_at=long_ago))
    world.provider.fail_with = PaymentError("NOT_ENOUGH", "余额不足")

    await world.service.refund(order_id=order.id, amount_fen=order.payable_fen, reason="x", actor="staff")

    assert (await world.order(order.order_no)).status == OrderStatus.PAID
    async with world.sessions() as session:
        opened = await session.scalar(select(Customer.paid_window_at).where(Customer.openid == order.openid))
    assert opened is not None and abs(as_utc(opened) - long_ago) < timedelta(seconds=1)


async def test_a_refund_with_an_unknown_outcome_stays_pending(world: World) -> None:
    """A timeout may hide a refund WeChat Pay made: recording a failure could contradict it."""
    order = await insert_order(world.sessions)
    await world.service.handle_notification(paid(order))
    await world.service.drain()
    world.provider.fail_with = PaymentError("TIMEOUT", outcome_unknown=True)

    refund = await world.service.refund(order_id=order.id, amount_fen=order.payable_fen, reason="x", actor="staff")

    assert refund.status == RefundStatus.PENDING
    assert (await world.order(order.order_no)).status == OrderStatus.REFUNDING
    # ...and when WeChat Pay's notification says it went through, the books follow
    world.provider.fail_with = None
    assert await world.service.handle_notification(refunded(order, refund)) is True
    assert (await world.order(order.order_no)).status == OrderStatus.REFUNDED


async def test_a_refund_larger_than_paid_is_refused_before_the_provider(world: World) -> None:
    order = await insert_order(world.sessions)
    await world.service.handle_notification(paid(order))
    with pytest.raises(ShopError) as caught:
        await world.service.refund(order_id=order.id, amount_fen=order.payable_fen + 1, reason="x", actor="staff")
    assert caught.value.code == ErrorCode.REFUND_TOO_LARGE
    assert world.provider.refunds() == []


# ---- paying and closing -------------------------------------------------------------------------


async def test_pay_asks_the_provider_for_the_payable_amount(world: World) -> None:
    order = await insert_order(world.sessions)

    payment = await world.service.pay(order_no=order.order_no, openid=None)

    ((name, call),) = world.provider.calls
    assert name == "create_payment" and payment.kind == "native"
    assert (call["order_no"], call["amount_fen"], call["openid"]) == (order.order_no, order.payable_fen, None)
    assert call["notify_url"] == world.service.notify_url
    assert "×2" in call["description"]


async def test_pay_refuses_paid_and_expired_orders(world: World) -> None:
    order = await insert_order(world.sessions)
    await world.service.handle_notification(paid(order))
    with pytest.raises(ShopError) as caught:
        await world.service.pay(order_no=order.order_no, openid="o")
    assert caught.value.code == ErrorCode.ILLEGAL_TRANSITION

    expired = await insert_order(world.sessions, expires_in=timedelta(seconds=-1))
    with pytest.raises(ShopError) as caught:
        await world.service.pay(order_no=expired.order_no, openid="o")
    assert caught.value.code == ErrorCode.ORDER_EXPIRED
    assert [name for name, _ in world.provider.calls] == []


async def test_close_logs_provider_errors_instead_of_raising(world: World) -> None:
    world.provider.fail_with = PaymentError("ORDERPAID", "订单已支付")
    await world.service.close(order_no="SF1")
    assert world.provider.calls == [("close_payment", {"order_no": "SF1"})]


# ---- money still owed back: the scheduler finishes what a stopped process left ---------------


async def test_late_money_whose_refund_never_started_is_refunded_by_the_scheduler(world: World) -> None:
    order = await insert_order(world.sessions)
    async with world.sessions() as session, session.begin():
        await cancel_order(session, order_id=order.id, by=CancelledBy.TIMEOUT, now=datetime.now(UTC))
    # the notification was recorded, then the process stopped before the refund started
    async with world.sessions() as session, session.begin():
        outcome = await payment_records.record_payment(
            session,
            provider="wechatpay_v3",
            order_no=order.order_no,
            transaction_id="T-CRASH",
            amount_fen=order.payable_fen,
            paid_at=datetime.now(UTC),
            payload={},
        )
    assert outcome.result == "late" and world.provider.refunds() == []

    later = datetime.now(UTC) + timedelta(minutes=11)
    assert await world.service.settle_owed_refunds(now=datetime.now(UTC)) == 0  # within the grace
    assert await world.service.settle_owed_refunds(now=later) == 1

    (call,) = world.provider.refunds()
    assert (call["transaction_id"], call["amount_fen"], call["total_fen"]) == ("T-CRASH", order.payable_fen, order.payable_fen)
    assert call["reason"] == "订单已关闭"
    assert [(m.template, m.data["reason"]) for m in (await world.told())] == [("late_payment_refunded", "late")]
    async with world.sessions() as session:
        refund = await session.scalar(select(Refund))
    assert refund is not None and refund.refund_no == call["refund_no"]

    # the provider's answer settles it; another run finds nothing owed
    await world.service.handle_notification(refunded(order, refund))
    assert await world.service.settle_owed_refunds(now=later) == 0
    assert len(world.provider.refunds()) == 1


async def test_a_refund_left_pending_is_asked_again_with_the_same_number(world: World) -> None:
    order = await insert_order(world.sessions)
    await world.service.handle_notification(paid(order))
    await world.service.drain()
    world.provider.fail_with = PaymentError("TIMEOUT", outcome_unknown=True)
    refund = await world.service.refund(order_id=order.id, amount_fen=order.payable_fen, reason="缺货", actor="staff")
    assert refund.status == RefundStatus.PENDING

    world.provider.fail_with = None
    later = datetime.now(UTC) + timedelta(minutes=11)
    assert await world.service.settle_owed_refunds(now=later) == 1

    first, again = world.provider.refunds()
    assert again == first  # same refund number, amount and reason: one refund at the provider
    assert (again["refund_no"], again["reason"], again["total_fen"]) == (refund.refund_no, "缺货", order.payable_fen)
    await world.service.handle_notification(refunded(order, refund))
    await world.service.drain()
    view = await world.order(order.order_no)
    assert (view.status, view.refunded_fen) == (OrderStatus.REFUNDED, order.payable_fen)
    assert await world.service.settle_owed_refunds(now=later) == 0

"""Stored balance on real databases (SQLite and PostgreSQL), through the payment service:
a top-up credited once however many notifications arrive, orders paid partly or wholly
from balance, held balance given back on cancel, refunds split back to balance, the
ledger reconciled, and a deliberately broken row found."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from commerce.balance import ledger, reconcile, topups, withdrawals
from commerce.balance import orders as balance_orders
from commerce.balance.models import (
    AccountKind,
    BalanceAccount,
    BalanceEntry,
    BalanceHold,
    HoldStatus,
)
from commerce.customers.models import Customer
from commerce.errors import ErrorCode, ShopError
from commerce.orders.actions import CancelledBy, cancel_order
from commerce.orders.models import OrderStatus
from commerce.payments.base import Notification
from commerce.payments.service import PaymentService
from commerce.rules import ShopRules
from commerce.uow import UnitOfWorkFactory
from commerce.wiring import shop_sessions
from tests.commerce.payments.test_service import APPID, MCHID, ScriptedProvider, World, paid
from tests.fakes import PlacedOrder, insert_order

K = AccountKind
OPENID = "o_payer_1"


@pytest.fixture
async def world(engine: AsyncEngine, demo_catalog: None) -> World:
    sessions = shop_sessions(engine)
    provider = ScriptedProvider()
    service = PaymentService(
        provider=provider,
        uows=UnitOfWorkFactory(sessions, ShopRules()),
        appid=APPID,
        mchid=MCHID,
        notify_url="https://shop.example.com/pay/notify/wechatpay_v3",
        refund_notify_url="https://shop.example.com/pay/refund-notify/wechatpay_v3",
        payables=[topups.TopUps()],
    )
    async with sessions() as session, session.begin():
        await topups.set_plan(session, pay_fen=10000, bonus_fen=1000)
    return World(sessions, provider, service)


def topup_paid(topup_no: str, amount_fen: int, transaction_id: str) -> Notification:
    return Notification(
        kind="payment",
        provider="wechatpay_v3",
        order_no=topup_no,
        amount_fen=amount_fen,
        succeeded=True,
        mchid=MCHID,
        appid=APPID,
        transaction_id=transaction_id,
        occurred_at=datetime.now(UTC),
        payload={"transaction_id": transaction_id},
    )


async def customer_id(world: World) -> int:
    async with world.sessions() as session, session.begin():
        found = await session.scalar(select(Customer.id).where(Customer.openid == OPENID))
        if found is None:
            session.add(Customer(openid=OPENID, locale="zh"))
            await session.flush()
            found = await session.scalar(select(Customer.id).where(Customer.openid == OPENID))
        assert found is not None
        return found


async def topped_up(world: World) -> int:
    """The customer pays 100 and receives 110: their id."""
    cid = await customer_id(world)
    async with world.sessions() as session, session.begin():
        topup = await topups.start_topup(session, customer_id=cid, pay_fen=10000)
    assert await world.service.handle_notification(topup_paid(topup.topup_no, 10000, "4200000001"))
    return cid


async def balances(world: World, cid: int) -> ledger.Balances:
    async with world.sessions() as session:
        return await ledger.balance_of(session, cid)


async def differences(world: World) -> list[reconcile.Difference]:
    async with world.sessions() as session:
        return await reconcile.find_differences(session)


async def hold(
    world: World, order: PlacedOrder, cid: int, amount: int | None
) -> balance_orders.Held:
    async with world.sessions() as session, session.begin():
        return await balance_orders.hold_for_order(
            session, customer_id=cid, order_id=order.id, amount_fen=amount
        )


async def test_a_top_up_of_100_gives_110_once_however_many_notifications(world: World) -> None:
    cid = await customer_id(world)
    async with world.sessions() as session, session.begin():
        topup = await topups.start_topup(session, customer_id=cid, pay_fen=10000)
    assert topup.topup_no.startswith("TU")
    request = await world.service.pay(order_no=topup.topup_no, openid=OPENID)
    assert request.order_no == topup.topup_no
    assert world.provider.calls[-1][1]["amount_fen"] == 10000

    note = topup_paid(topup.topup_no, 10000, "4200000001")
    for _ in range(3):  # WeChat Pay retries: acknowledged, credited once
        assert await world.service.handle_notification(note)
    # a second transaction for the same top-up is recorded, not credited again
    assert await world.service.handle_notification(topup_paid(topup.topup_no, 10000, "4200000002"))
    # an amount that is not the plan's credits nothing
    async with world.sessions() as session, session.begin():
        other = await topups.start_topup(session, customer_id=cid, pay_fen=10000)
    assert await world.service.handle_notification(topup_paid(other.topup_no, 1, "4200000003"))

    got = await balances(world, cid)
    assert (got.balance_fen, got.bonus_fen, got.cash_fen, got.held_fen) == (11000, 1000, 10000, 0)
    assert await world.templates() == ["topup_credited"]
    assert await differences(world) == []
    with pytest.raises(ShopError) as refused:  # a credited top-up cannot be paid again
        await world.service.pay(order_no=topup.topup_no, openid=OPENID)
    assert refused.value.code == ErrorCode.ILLEGAL_TRANSITION


async def test_part_balance_part_provider_then_a_refund_splits_back(world: World) -> None:
    cid = await topped_up(world)
    order = await insert_order(world.sessions, openid=OPENID)
    held = await hold(world, order, cid, 550)
    assert (held.balance_fen, held.due_fen) == (550, order.payable_fen - 550)
    assert (await balances(world, cid)).held_fen == 550
    # bonus spent in proportion: 550 of 11000 takes 50 of the 1000 bonus
    async with world.sessions() as session:
        row = await session.get(BalanceHold, order.id)
        assert row is not None and (row.cash_fen, row.bonus_fen) == (500, 50)

    await world.service.pay(order_no=order.order_no, openid=OPENID)
    assert (
        world.provider.calls[-1][1]["amount_fen"] == order.payable_fen - 550
    )  # the provider's part only
    # the full amount is not what is due: a mismatch, the order stays unpaid
    assert await world.service.handle_notification(
        paid(order, transaction_id="42009", amount_fen=order.payable_fen)
    )
    assert (await world.order(order.order_no)).status == OrderStatus.PENDING_PAYMENT
    assert await world.service.handle_notification(paid(order, amount_fen=order.payable_fen - 550))
    view = await world.order(order.order_no)
    assert (view.status, view.paid_fen, view.balance_fen) == (
        OrderStatus.PAID,
        order.payable_fen,
        550,
    )
    got = await balances(world, cid)
    assert (got.balance_fen, got.held_fen) == (11000 - 550, 0)

    # a partial refund of half: half of each part, the provider asked for its share of its total
    half = order.payable_fen // 2
    refund = await world.service.refund(
        order_id=order.id, amount_fen=half, reason="坏了", actor="staff:x"
    )
    asked = world.provider.refunds()[-1]
    assert refund.balance_fen == 550 * half // order.payable_fen
    assert (asked["amount_fen"], asked["total_fen"]) == (
        half - refund.balance_fen,
        order.payable_fen - 550,
    )
    assert await world.service.handle_notification(
        Notification(
            kind="refund",
            provider="wechatpay_v3",
            order_no=order.order_no,
            amount_fen=half - refund.balance_fen,
            succeeded=True,
            mchid=MCHID,
            appid="",
            refund_no=refund.refund_no,
            provider_refund_id="50001",
            payload={},
        )
    )
    got = await balances(world, cid)
    assert got.balance_fen == 11000 - 550 + refund.balance_fen
    # the rest: the balance part ends exactly at 550
    rest = await world.service.refund(
        order_id=order.id, amount_fen=order.payable_fen - half, reason="退", actor="s"
    )
    assert refund.balance_fen + rest.balance_fen == 550
    assert await world.service.handle_notification(
        Notification(
            kind="refund",
            provider="wechatpay_v3",
            order_no=order.order_no,
            amount_fen=rest.amount_fen - rest.balance_fen,
            succeeded=True,
            mchid=MCHID,
            appid="",
            refund_no=rest.refund_no,
            provider_refund_id="50002",
            payload={},
        )
    )
    assert (await world.order(order.order_no)).status == OrderStatus.REFUNDED
    got = await balances(world, cid)
    assert (got.balance_fen, got.bonus_fen) == (11000, 1000)
    assert await differences(world) == []


async def test_balance_that_covers_all_pays_at_once_and_a_refund_needs_no_provider(
    world: World,
) -> None:
    cid = await topped_up(world)
    order = await insert_order(world.sessions, openid=OPENID)
    held = await hold(world, order, cid, None)
    assert held.covers_all and held.balance_fen == order.payable_fen
    # nothing is left for a provider to take: asked to pay it anyway (a stop before the
    # settlement ran), the service settles it from the balance and says it is paid
    with pytest.raises(ShopError) as refused:
        await world.service.pay(order_no=order.order_no, openid=OPENID)
    assert refused.value.details["status"] == "paid" and world.provider.calls == []
    assert (await world.order(order.order_no)).status == OrderStatus.PAID
    assert await world.service.settle_from_balance(order_no=order.order_no) == "duplicate"
    view = await world.order(order.order_no)
    assert (view.status, view.pay_provider, view.paid_fen) == (
        OrderStatus.PAID,
        "balance",
        order.payable_fen,
    )
    assert "order_paid" in await world.templates()

    refund = await world.service.refund(
        order_id=order.id, amount_fen=order.payable_fen, reason="退", actor="s"
    )
    assert refund.status == "succeeded" and refund.balance_fen == order.payable_fen
    assert world.provider.refunds() == []
    assert (await world.order(order.order_no)).status == OrderStatus.REFUNDED
    assert (await balances(world, cid)).balance_fen == 11000
    assert await differences(world) == []


async def test_cancelling_an_unpaid_order_gives_the_held_balance_back(world: World) -> None:
    cid = await topped_up(world)
    order = await insert_order(world.sessions, openid=OPENID)
    await hold(world, order, cid, 300)
    with pytest.raises(ShopError) as twice:
        await hold(world, order, cid, 100)
    assert twice.value.code == ErrorCode.BALANCE_ALREADY_USED
    async with world.sessions() as session, session.begin():
        await cancel_order(
            session, order_id=order.id, by=CancelledBy.TIMEOUT, now=datetime.now(UTC)
        )
    got = await balances(world, cid)
    assert (got.balance_fen, got.bonus_fen, got.held_fen) == (11000, 1000, 0)
    async with world.sessions() as session:
        row = await session.get(BalanceHold, order.id)
        assert row is not None and row.status == HoldStatus.RELEASED
    # a late payment of the provider's part after the cancel does not capture anything
    assert await world.service.handle_notification(paid(order, amount_fen=order.payable_fen - 300))
    await world.service.drain()
    assert (await balances(world, cid)).balance_fen == 11000
    assert await differences(world) == []


async def test_too_much_is_refused_and_the_check_keeps_balances_from_going_negative(
    world: World,
) -> None:
    cid = await topped_up(world)
    order = await insert_order(world.sessions, openid=OPENID)
    with pytest.raises(ShopError) as too_much:
        await hold(world, order, cid, 20000)
    assert too_much.value.code in (ErrorCode.BALANCE_NOT_ENOUGH, ErrorCode.AMOUNT_INVALID)
    with pytest.raises(IntegrityError):
        async with world.sessions() as session, session.begin():
            await session.execute(
                update(BalanceAccount)
                .where(BalanceAccount.customer_id == cid, BalanceAccount.kind == K.CASH.value)
                .values(balance_fen=-1)
            )
    # withdrawals take cash only: 100 of the 110, never the bonus
    async with world.sessions() as session, session.begin():
        with pytest.raises(ShopError) as bonus:
            await withdrawals.request_withdrawal(
                session, customer_id=cid, amount_fen=10001, now=datetime.now(UTC)
            )
        assert bonus.value.code == ErrorCode.WITHDRAWAL_TOO_LARGE
    async with world.sessions() as session, session.begin():
        asked = await withdrawals.request_withdrawal(
            session, customer_id=cid, amount_fen=None, now=datetime.now(UTC)
        )
    assert asked.amount_fen == 10000
    async with world.sessions() as session, session.begin():
        await withdrawals.decide_withdrawal(
            session,
            withdrawal_id=asked.id,
            paid=False,
            staff_openid="o_staff",
            text="信息不全",
            now=datetime.now(UTC),
        )
    assert (await balances(world, cid)).cash_fen == 10000
    assert await differences(world) == []


async def test_reconciliation_finds_a_broken_ledger_row(world: World) -> None:
    cid = await topped_up(world)
    assert await differences(world) == []
    async with world.sessions() as session, session.begin():
        entry = await session.scalar(select(BalanceEntry).order_by(BalanceEntry.id).limit(1))
        assert entry is not None
        entry.amount_fen += 7  # a hand edit of the ledger
    found = await differences(world)
    assert {d.what for d in found} == {"account", "movement"}
    account = next(d for d in found if d.what == "account")
    assert account.customer_id == cid and account.expected_fen - account.found_fen == 7
    async with world.sessions() as session:
        assert int(
            await session.scalar(select(func.count()).select_from(BalanceAccount)) or 0
        ) == len(K)

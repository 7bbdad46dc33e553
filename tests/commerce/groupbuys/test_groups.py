"""Group buys: starting, joining, paying, filling, failing and refunding, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from commerce.errors import ErrorCode, ShopError
from commerce.groupbuys import campaigns as group_campaigns
from commerce.groupbuys import deadlines as group_deadlines
from commerce.groupbuys import groups as group_buys
from commerce.groupbuys.models import GroupBuy, GroupCampaign, GroupMember
from commerce.messaging import notices
from commerce.messaging.notifications import Notification
from commerce.orders.actions import CancelledBy, cancel_order, expire_due_orders, ship_order
from commerce.orders.models import Order, OrderStatus
from commerce.payments.records import record_payment
from commerce.payments.refunds import start_refund
from commerce.rules import ShopRules
from commerce.uow import UnitOfWorkFactory
from commerce.wiring import shop_sessions
from tests.commerce.factories import make_address, make_customer, make_variant, stock_of

NOW = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
RULES = ShopRules()
_txn = itertools.count(1)


async def run(sessions: async_sessionmaker[AsyncSession], fn: Any, **kwargs: Any) -> Any:
    async with sessions() as session:
        result = await fn(session, **kwargs)
        await session.commit()
        return result


async def buyer(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, int]:
    async with sessions() as session:
        customer = await make_customer(session)
        address = await make_address(session, customer)
        await session.commit()
    return customer, address


async def campaign(
    sessions: async_sessionmaker[AsyncSession], *, size: int = 3, stock: int = 100, **kwargs: Any
) -> tuple[int, int]:
    async with sessions() as session:
        variant = await make_variant(session, name="拼团苹果", price_fen=3000, stock=stock)
        view = await group_campaigns.create_campaign(
            session,
            variant_id=variant,
            group_price_fen=1990,
            group_size=size,
            starts_at=NOW - timedelta(days=1),
            ends_at=NOW + timedelta(days=7),
            rules=RULES,
            **kwargs,
        )
        await session.commit()
    return view.id, variant


async def start(sessions, campaign_id: int, who: tuple[int, int], now: datetime = NOW):  # type: ignore[no-untyped-def]
    return await run(
        sessions,
        group_buys.start_group,
        campaign_id=campaign_id,
        customer_id=who[0],
        address_id=who[1],
        idempotency_key=f"k{next(_txn)}",
        rules=RULES,
        now=now,
    )


async def join(sessions, code: str, who: tuple[int, int], now: datetime = NOW):  # type: ignore[no-untyped-def]
    return await run(
        sessions,
        group_buys.join_group,
        code=code,
        customer_id=who[0],
        address_id=who[1],
        idempotency_key=f"k{next(_txn)}",
        rules=RULES,
        now=now,
    )


async def pay(sessions, order_id: int, at: datetime = NOW) -> list:  # type: ignore[no-untyped-def]
    """Pay the order; returns the notices the payment queued."""
    async with sessions() as session:
        order = await session.get(Order, order_id)
        assert order is not None
        outcome = await record_payment(
            session,
            provider="sandbox",
            order_no=order.order_no,
            transaction_id=f"T{next(_txn)}",
            amount_fen=order.payable_fen,
            paid_at=at,
            payload={},
        )
        await session.commit()
        assert outcome.result == "applied", outcome.result
        return [  # the group's own messages and its badge (other capabilities queue theirs)
            n
            for n in notices.take(session)
            if n.template.startswith("group_") or n.data.get("badge") == "first_group"
        ]


async def group_row(sessions, group_id: int) -> GroupBuy:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        group = await session.get(GroupBuy, group_id)
        assert group is not None
        return group


async def open_group(sessions, size: int = 3, **kwargs: Any):  # type: ignore[no-untyped-def]
    campaign_id, variant = await campaign(sessions, size=size, **kwargs)
    leader = await buyer(sessions)
    group, order_id = await start(sessions, campaign_id, leader)
    await pay(sessions, order_id)
    return campaign_id, variant, leader, group


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return shop_sessions(engine)


async def test_leader_pays_then_friends_fill_the_group(sessions) -> None:  # type: ignore[no-untyped-def]
    campaign_id, variant = await campaign(sessions)
    leader, b, c = await buyer(sessions), await buyer(sessions), await buyer(sessions)
    group, leader_order = await start(sessions, campaign_id, leader)
    assert group.status == group_buys.G.FORMING and len(group.code) == group_buys.CODE_LENGTH
    with pytest.raises(ShopError) as forming:
        await join(sessions, group.code, b)
    assert forming.value.code == ErrorCode.GROUP_NOT_OPEN
    told = await pay(sessions, leader_order, at=NOW + timedelta(minutes=1))
    assert [n.template for n in told] == ["group_opened"]
    row = await group_row(sessions, group.id)
    assert row.status == "open" and row.paid_count == 1
    assert row.deadline is not None
    assert row.deadline.replace(tzinfo=UTC) == NOW + timedelta(minutes=1) + RULES.group_time_limit
    _, b_order = await join(sessions, group.code.lower(), b)
    _, c_order = await join(sessions, group.code, c)
    with pytest.raises(ShopError) as full:
        await join(sessions, group.code, await buyer(sessions))
    assert full.value.code == ErrorCode.GROUP_FULL
    told = await pay(sessions, b_order)
    assert [n.template for n in told] == ["group_progress", "group_progress"]
    assert told[0].data["joined"] == 2 and told[0].data["size"] == 3
    told = await pay(sessions, c_order)
    assert Counter(n.template for n in told) == {"group_filled": 3, "badge_awarded": 3}
    assert (await group_row(sessions, group.id)).status == "filled"
    assert await stock_of(sessions, variant) == 97
    async with sessions() as session:
        order = await session.get(Order, b_order)
        assert order is not None and order.payable_fen == 1990 + RULES.delivery_fee_fen
        assert order.group_id == group.id


async def test_joining_twice_own_group_and_per_user_limit_are_refused(sessions) -> None:  # type: ignore[no-untyped-def]
    campaign_id, _, leader, group = await open_group(sessions, size=4)
    friend = await buyer(sessions)
    with pytest.raises(ShopError) as own:
        await join(sessions, group.code, leader)
    assert own.value.code == ErrorCode.GROUP_OWN
    await join(sessions, group.code, friend)
    with pytest.raises(ShopError) as twice:
        await join(sessions, group.code, friend)
    assert twice.value.code == ErrorCode.GROUP_ALREADY_MEMBER
    with pytest.raises(ShopError) as limit:  # per_user_limit 1: the friend's seat counts
        await start(sessions, campaign_id, friend)
    assert limit.value.code == ErrorCode.GROUP_LIMIT_REACHED
    with pytest.raises(ShopError) as unknown:
        await join(sessions, "NOPE42", friend)
    assert unknown.value.code == ErrorCode.GROUP_NOT_FOUND
    assert (await group_row(sessions, group.id)).seats_taken == 2


async def test_expired_group_is_refused_and_an_unpaid_seat_is_released(sessions) -> None:  # type: ignore[no-untyped-def]
    _, variant, _, group = await open_group(sessions, size=3)
    friend = await buyer(sessions)
    _, order_id = await join(sessions, group.code, friend)
    assert (await group_row(sessions, group.id)).seats_taken == 2
    await run(sessions, expire_due_orders, now=NOW + RULES.order_timeout + timedelta(seconds=1))
    row = await group_row(sessions, group.id)
    assert row.seats_taken == 1 and row.status == "open"
    async with sessions() as session:
        campaign_row = await session.get(GroupCampaign, row.campaign_id)
        assert campaign_row is not None and campaign_row.quota_used == 1
    assert await stock_of(sessions, variant) == 99
    _, again = await join(
        sessions, group.code, friend, now=NOW + timedelta(hours=1)
    )  # may come back
    assert again != order_id
    with pytest.raises(ShopError) as late:
        await join(sessions, group.code, await buyer(sessions), now=NOW + timedelta(days=2))
    assert late.value.code == ErrorCode.GROUP_EXPIRED


async def test_leader_who_never_pays_or_withdraws_alone_closes_the_group(sessions) -> None:  # type: ignore[no-untyped-def]
    campaign_id, _ = await campaign(sessions, per_user_limit=3)
    leader = await buyer(sessions)
    group, order_id = await start(sessions, campaign_id, leader)
    await run(sessions, cancel_order, order_id=order_id, by=CancelledBy.CUSTOMER, now=NOW, customer_id=leader[0])
    row = await group_row(sessions, group.id)
    assert row.status == "closed" and row.close_reason == "leader_unpaid" and row.seats_taken == 0

    group, order_id = await start(sessions, campaign_id, leader)
    await pay(sessions, order_id)
    closed = await run(
        sessions,
        group_deadlines.leader_cancel_group,
        code=group.code,
        customer_id=leader[0],
        now=NOW,
    )
    assert closed.status == group_buys.G.CLOSED
    async with sessions() as session:
        targets = await group_deadlines.refund_targets(session)
    assert [t.order_id for t in targets] == [order_id]


async def test_unfilled_group_orders_cannot_ship(sessions) -> None:  # type: ignore[no-untyped-def]
    _, _, leader, group = await open_group(sessions, size=2)
    async with sessions() as session:
        leader_order = await session.scalar(select(Order.id).where(Order.group_id == group.id))
    with pytest.raises(ShopError) as refused:
        await run(
            sessions,
            ship_order,
            order_id=leader_order,
            carrier="SF",
            tracking_no="1",
            actor="staff",
            now=datetime.now(UTC),
        )
    assert refused.value.code == ErrorCode.GROUP_NOT_FILLED
    _, friend_order = await join(sessions, group.code, await buyer(sessions))
    await pay(sessions, friend_order)
    shipped = await run(
        sessions, ship_order, order_id=leader_order, carrier="SF", tracking_no="1", actor="staff",
        now=datetime.now(UTC),
    )
    assert shipped.status == OrderStatus.SHIPPED


class FakeRefunds:
    """PaymentService.refund without a provider: opens the refund like the real one."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self.calls: list[int] = []
        self.told: list[str] = []

    async def refund(
        self, *, order_id: int, amount_fen: int, reason: str, actor: str, notice: Notification | None = None
    ) -> None:
        async with self.sessions() as session:
            await start_refund(
                session, order_id=order_id, amount_fen=amount_fen, reason=reason, actor=actor
            )
            if notice is not None:  # as the real one: told in the refund's transaction
                notices.queue(session, openid=notice.openid, template=notice.template, data=notice.data)
            await session.commit()
        self.calls.append(order_id)
        self.told.extend(n.template for n in notices.take(session))


async def test_expired_group_with_two_paid_members_is_refunded_exactly_once(sessions) -> None:  # type: ignore[no-untyped-def]
    _, _, _, group = await open_group(sessions, size=3)
    _, paid_order = await join(sessions, group.code, await buyer(sessions))
    await pay(sessions, paid_order)
    _, unpaid_order = await join(sessions, group.code, await buyer(sessions))
    later = NOW + RULES.group_time_limit + timedelta(minutes=1)
    refunds = FakeRefunds(sessions)
    for _run in range(2):
        async with sessions() as session:
            failed = await group_deadlines.fail_due_groups(session, now=later)
            await session.commit()
            queued = notices.take(session)
        assert failed == ([group.id] if _run == 0 else [])
        assert [n.template for n in queued] == (["group_failed"] if _run == 0 else [])
        await group_deadlines.refund_ended_groups(
            UnitOfWorkFactory(sessions, RULES), refund=refunds.refund, now=later
        )
    assert len(refunds.calls) == 2 and len(set(refunds.calls)) == 2
    assert refunds.told == ["group_failed", "group_failed"]
    async with sessions() as session:
        unpaid = await session.get(Order, unpaid_order)
        assert unpaid is not None and unpaid.status == "cancelled"
    assert (await group_row(sessions, group.id)).status == "failed"


async def test_fifty_concurrent_joins_for_the_last_seat(sessions) -> None:  # type: ignore[no-untyped-def]
    _, _, _, group = await open_group(sessions, size=2)
    friends = [await buyer(sessions) for _ in range(50)]

    async def try_join(who: tuple[int, int]) -> str:
        try:
            await join(sessions, group.code, who)
            return "won"
        except ShopError as exc:
            return str(exc.code)

    results = Counter(await asyncio.gather(*(try_join(f) for f in friends)))
    assert results["won"] == 1 and results["group_full"] == 49
    row = await group_row(sessions, group.id)
    assert row.seats_taken == 2
    async with sessions() as session:
        members = (
            await session.scalars(select(GroupMember).where(GroupMember.group_id == group.id))
        ).all()
        orders = (await session.scalars(select(Order.id).where(Order.group_id == group.id))).all()
    assert len(members) == 2 and len(orders) == 2


async def test_the_group_offer_of_a_product_and_how_many_products_have_one(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    kept, _ = await campaign(sessions)
    closed, _ = await campaign(sessions)
    kept_view = await run(sessions, group_campaigns.get_campaign, campaign_id=kept)
    closed_view = await run(sessions, group_campaigns.close_campaign, campaign_id=closed)
    assert await run(sessions, group_campaigns.products_on_offer, now=NOW) == 1
    assert await run(sessions, group_campaigns.products_on_offer, now=NOW + timedelta(days=8)) == 0  # all ended
    offer = await run(sessions, group_campaigns.offer_for, product_id=kept_view.product_id, now=NOW)
    assert offer is not None and (offer.id, offer.group_price_fen) == (kept, 1990)
    assert await run(sessions, group_campaigns.offer_for, product_id=closed_view.product_id, now=NOW) is None

"""Money and races in the social features: group seats, refunds, commission, withdrawals.

Each test here was written against a bug (it failed before the fix), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from commerce.db import create_engine
from commerce.errors import ErrorCode, ShopError
from commerce.groupbuys import deadlines as group_deadlines
from commerce.groupbuys.models import GroupBuy, GroupMember
from commerce.orders.models import Order
from commerce.payments.refunds import record_refund_result, start_refund
from commerce.referrals import commission, referrals
from commerce.referrals.models import CommissionEntry, Withdrawal
from commerce.rules import ShopRules
from commerce.wiring import shop_sessions
from tests.commerce.factories import make_customer
from tests.commerce.groupbuys.test_groups import NOW, buyer, group_row, join, open_group, pay, run
from tests.commerce.referrals.test_referrals import available_referrer, ledger_sums

RULES = ShopRules()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    made = shop_sessions(engine, rules=RULES)
    return made


async def _refund_all(sessions: async_sessionmaker[AsyncSession], order_id: int) -> None:
    async with sessions() as session:
        order = await session.get(Order, order_id)
        assert order is not None
        amount = order.paid_fen - order.refunded_fen
    started = await run(
        sessions, start_refund, order_id=order_id, amount_fen=amount, reason="不要了", actor="s"
    )
    outcome = await run(
        sessions,
        record_refund_result,
        provider="sandbox",
        refund_no=started.refund_no,
        succeeded=True,
        provider_refund_id=f"P-{started.refund_no}",
        payload={},
    )
    assert outcome == "applied"


# ---- group seats ---------------------------------------------------------------------


async def test_a_member_refunded_while_the_group_is_open_never_fills_it(sessions) -> None:  # type: ignore[no-untyped-def]
    """A whole refund of a paid seat while its group still forms would leave the seat
    counted (paid_count) with the money gone: the next payer would "fill" a group one of
    whose members got their money back. Such a refund waits for the group to end."""
    _, _, _, group = await open_group(sessions, size=3)
    _, b_order = await join(sessions, group.code, await buyer(sessions))
    await pay(sessions, b_order)
    with pytest.raises(ShopError) as refused:
        await _refund_all(sessions, b_order)
    assert refused.value.code == ErrorCode.GROUP_NOT_FILLED
    assert refused.value.details["group_code"] == group.code
    # nothing moved: B still holds a paid seat
    async with sessions() as session:
        order = await session.get(Order, b_order)
        assert order is not None and order.status == "paid" and order.refunded_fen == 0
    _, c_order = await join(sessions, group.code, await buyer(sessions))
    await pay(sessions, c_order)
    row = await group_row(sessions, group.id)
    assert (row.status, row.paid_count) == ("filled", 3)
    async with sessions() as session:
        statuses = (
            await session.scalars(select(GroupMember.status).where(GroupMember.group_id == group.id))
        ).all()
    assert sorted(statuses) == ["paid", "paid", "paid"]
    # once filled, an after-sales refund of a member is the shop's ordinary business
    await _refund_all(sessions, b_order)


# ---- withdrawals ---------------------------------------------------------------------


async def test_two_concurrent_withdrawals_never_take_more_than_available(sessions) -> None:  # type: ignore[no-untyped-def]
    referrer = await available_referrer(sessions)  # 2.50 available
    low = ShopRules(withdrawal_min_fen=100)

    async def ask(amount: int) -> str:
        async with sessions() as session:
            try:
                await commission.request_withdrawal(
                    session, customer_id=referrer, amount_fen=amount, now=NOW, rules=low
                )
            except ShopError as exc:
                await session.rollback()
                return str(exc.code)
            await session.commit()
            return "requested"

    results = Counter(await asyncio.gather(ask(200), ask(200), ask(150), ask(250)))
    assert results["requested"] == 1, results
    async with sessions() as session:
        pending = await session.scalar(
            select(func.count()).select_from(Withdrawal).where(Withdrawal.customer_id == referrer)
        )
        entries = await session.scalar(
            select(func.count())
            .select_from(CommissionEntry)
            .where(CommissionEntry.kind == "withdrawal_requested")
        )
    assert (pending, entries) == (1, 1)
    frozen, available, withdrawing, paid_out = await ledger_sums(sessions, referrer)
    assert available >= 0 and available + withdrawing == 250 and (frozen, paid_out) == (0, 0)


async def test_group_row_is_untouched_by_a_refused_refund(sessions) -> None:  # type: ignore[no-untyped-def]
    _, _, leader, group = await open_group(sessions, size=2)
    async with sessions() as session:
        leader_order = await session.scalar(select(Order.id).where(Order.group_id == group.id))
        assert leader_order is not None
    with pytest.raises(ShopError):
        await _refund_all(sessions, leader_order)
    row = await group_row(sessions, group.id)
    assert (row.status, row.paid_count, row.seats_taken) == ("open", 1, 1)
    assert isinstance(row, GroupBuy)


async def test_staff_cannot_extend_a_group_whose_deadline_passed(sessions) -> None:  # type: ignore[no-untyped-def]
    """A payment that arrives after the deadline is not counted (the group is to fail and
    refund it). Extending such a group before the expiry job ran would leave that paid seat
    uncounted for good: the group could never fill. Past its deadline a group is over."""
    _, _, _, group = await open_group(sessions, size=3)
    deadline = (await group_row(sessions, group.id)).deadline
    assert deadline is not None
    deadline = deadline.replace(tzinfo=NOW.tzinfo)
    _, b_order = await join(sessions, group.code, await buyer(sessions), now=deadline - timedelta(minutes=5))
    await pay(sessions, b_order, at=deadline + timedelta(minutes=1))  # late: not counted
    row = await group_row(sessions, group.id)
    assert (row.paid_count, row.seats_taken) == (1, 2)
    with pytest.raises(ShopError) as refused:
        await run(
            sessions,
            group_deadlines.extend_group,
            code=group.code,
            hours=2,
            now=deadline + timedelta(minutes=2),
        )
    assert refused.value.code == ErrorCode.GROUP_EXPIRED
    async with sessions() as session:
        assert await group_deadlines.fail_due_groups(session, now=deadline + timedelta(minutes=3)) == [group.id]
        await session.commit()
    async with sessions() as session:
        targets = await group_deadlines.refund_targets(session, group_id=group.id)
    assert len(targets) == 2  # the leader and the late payer


async def test_extending_before_the_deadline_still_works(sessions) -> None:  # type: ignore[no-untyped-def]
    _, _, _, group = await open_group(sessions, size=3)
    deadline = (await group_row(sessions, group.id)).deadline
    assert deadline is not None
    deadline = deadline.replace(tzinfo=NOW.tzinfo)
    extended = await run(
        sessions, group_deadlines.extend_group, code=group.code, hours=2, now=deadline - timedelta(minutes=1)
    )
    assert extended.deadline == deadline + timedelta(hours=2)


# ---- referral binding ------------------------------------------------------------------


async def _customers(sessions: async_sessionmaker[AsyncSession], n: int) -> list[int]:
    async with sessions() as session:
        ids = [await make_customer(session) for _ in range(n)]
        await session.commit()
    return ids


async def test_two_customers_binding_to_each_other_at_once_make_no_cycle(sessions) -> None:  # type: ignore[no-untyped-def]
    a, b = await _customers(sessions, 2)

    async def bind(cid: int, referrer: int) -> str:
        async with sessions() as session:
            got = await referrals.bind(
                session, customer_id=cid, referrer_id=referrer, now=NOW, rules=RULES
            )
            await session.commit()
            return str(got)

    results = Counter(await asyncio.gather(bind(a, b), bind(b, a)))
    assert results == {"bound": 1, "cycle": 1}


async def test_a_longer_cycle_closed_by_two_binds_at_once_is_refused(postgres_url: str) -> None:
    """A -> B and C -> D exist; B -> C and D -> A at the same moment would close the ring
    A -> B -> C -> D -> A. The two binds share no customer row, so the row locks alone do
    not order them: each walked the other's chain before it committed."""
    engine = create_engine(postgres_url)
    try:
        sessions = shop_sessions(engine)
        a, b, c, d = await _customers(sessions, 4)
        for cid, ref in ((a, b), (c, d)):
            assert await run(
                sessions, referrals.bind, customer_id=cid, referrer_id=ref, now=NOW, rules=RULES
            ) == referrals.BindOutcome.BOUND
        first = sessions()
        try:
            assert await referrals.bind(
                first, customer_id=b, referrer_id=c, now=NOW, rules=RULES
            ) == referrals.BindOutcome.BOUND

            async def second() -> referrals.BindOutcome:
                async with sessions() as session:
                    got = await referrals.bind(
                        session, customer_id=d, referrer_id=a, now=NOW, rules=RULES
                    )
                    await session.commit()
                    return got

            task = asyncio.create_task(second())
            await asyncio.sleep(0.5)  # as far as it gets while the first is uncommitted
            await first.commit()
        finally:
            await first.close()
        assert await task == referrals.BindOutcome.CYCLE
    finally:
        await engine.dispose()


async def test_one_customer_joining_two_groups_at_once_stays_within_the_limit(sessions) -> None:  # type: ignore[no-untyped-def]
    """The per-user limit (one group per customer here) is counted, then a seat taken:
    two joins of one customer to two groups of the campaign at once must not both pass."""
    from tests.commerce.groupbuys.test_groups import campaign, start

    campaign_id, _variant = await campaign(sessions)
    groups = []
    for _ in range(2):
        group, order_id = await start(sessions, campaign_id, await buyer(sessions))
        await pay(sessions, order_id)
        groups.append(group)
    friend = await buyer(sessions)

    results = await asyncio.gather(*(join(sessions, g.code, friend) for g in groups), return_exceptions=True)

    joined = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, ShopError)]
    assert len(joined) == 1, results
    assert [r.code for r in refused] == [ErrorCode.GROUP_LIMIT_REACHED], results
    async with sessions() as session:
        seats = await session.scalar(
            select(func.count(GroupMember.id)).where(GroupMember.customer_id == friend[0])
        )
    assert seats == 1

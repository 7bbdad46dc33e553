"""The outbox's at-most-once states, on the database: one attempt at a time, attempts left
unfinished settled by what they may have sent, WeChat's template report settling an
uncertain template row (and nothing else)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from commerce.messaging import outbox
from commerce.messaging.models import OutboxMessage, OutboxStatus
from commerce.wiring import shop_sessions

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=2)


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return shop_sessions(engine)


async def new_row(sessions: async_sessionmaker[AsyncSession], openid: str = "o_states") -> int:
    async with sessions() as session, session.begin():
        item = await outbox.enqueue(
            session, openid=openid, event="order_paid", payload={}, template=None, now=NOW, lease=LEASE
        )
    return item.id


async def status_of(sessions: async_sessionmaker[AsyncSession], message_id: int) -> tuple[str, str]:
    async with sessions() as session:
        row = await session.get(OutboxMessage, message_id)
        assert row is not None
        return row.status, row.channel


async def begin(sessions: async_sessionmaker[AsyncSession], message_id: int, channel: str = "") -> bool:
    async with sessions() as session, session.begin():
        begun = await outbox.begin_send(session, message_id, now=NOW, lease=LEASE)
        if begun and channel:
            await outbox.mark_channel(session, message_id, channel)
        return begun


async def test_one_attempt_at_a_time_and_none_once_sent_or_uncertain(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    sent, uncertain = await new_row(sessions), await new_row(sessions)
    assert await begin(sessions, sent) is True
    assert await begin(sessions, sent) is False  # a second attempt never starts
    async with sessions() as session, session.begin():
        await outbox.mark_sent(session, sent, channel="customer_service", now=NOW)
    assert await begin(sessions, sent) is False

    assert await begin(sessions, uncertain, "customer_service") is True
    async with sessions() as session, session.begin():
        await outbox.mark_uncertain(session, uncertain, channel="customer_service", error="timeout", attempts=1)
        assert await outbox.due_ids(session, now=NOW + timedelta(days=30)) == []
    assert await begin(sessions, uncertain) is False
    assert await status_of(sessions, uncertain) == (OutboxStatus.UNCERTAIN, "customer_service")


async def test_unfinished_attempts_are_uncertain_only_when_a_call_may_have_gone_out(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    no_call, call, running = await new_row(sessions), await new_row(sessions), await new_row(sessions)
    await begin(sessions, no_call)
    await begin(sessions, call, "template")
    async with sessions() as session, session.begin():
        assert await outbox.expire_sending(session, now=NOW + LEASE / 2) == []  # leases still run
        await outbox.begin_send(session, running, now=NOW + LEASE, lease=LEASE)
        assert await outbox.expire_sending(session, now=NOW + LEASE) == [call]
    assert await status_of(sessions, no_call) == (OutboxStatus.PENDING, "")
    assert await status_of(sessions, call) == (OutboxStatus.UNCERTAIN, "template")
    assert await status_of(sessions, running) == (OutboxStatus.SENDING, "")


async def test_a_template_report_settles_the_customers_uncertain_template_row_only(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    cs, template, other = await new_row(sessions), await new_row(sessions), await new_row(sessions, "o_other")
    for message_id, channel in ((cs, "customer_service"), (template, "template"), (other, "template")):
        await begin(sessions, message_id, channel)
        async with sessions() as session, session.begin():
            await outbox.mark_uncertain(session, message_id, channel=channel, error="timeout", attempts=1)

    async with sessions() as session, session.begin():
        settled = await outbox.template_finished(session, openid="o_states", msgid=77, status="success", now=NOW)
        assert settled is True
        assert await outbox.template_finished(session, openid="o_states", msgid=78, status="success", now=NOW) is False
    assert await status_of(sessions, template) == (OutboxStatus.SENT, "template")
    assert await status_of(sessions, cs) == (OutboxStatus.UNCERTAIN, "customer_service")  # cannot be asked
    assert await status_of(sessions, other) == (OutboxStatus.UNCERTAIN, "template")  # another customer's
    async with sessions() as session, session.begin():  # the report again: recorded on the row it settled
        assert await outbox.template_finished(session, openid="o_states", msgid=77, status="success", now=NOW)

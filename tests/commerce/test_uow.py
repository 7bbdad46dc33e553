"""The unit of work on real databases: a notice is kept exactly when its cause is."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from commerce.customers.customers import touch_customer
from commerce.customers.models import Customer
from commerce.messaging import notices
from commerce.messaging.models import OutboxMessage
from commerce.rules import ShopRules
from commerce.uow import RecordingDispatcher, UnitOfWorkFactory
from commerce.wiring import shop_sessions
from tests.fakes import outbox_notices

NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return shop_sessions(engine)


def factory(sessions: async_sessionmaker[AsyncSession], dispatcher: RecordingDispatcher) -> UnitOfWorkFactory:
    return UnitOfWorkFactory(sessions, ShopRules(), dispatcher, clock=lambda: NOW)


async def customers(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Customer)) or 0)


async def test_a_notice_is_written_with_its_cause_and_dispatched_after_the_commit(sessions) -> None:  # type: ignore[no-untyped-def]
    dispatcher = RecordingDispatcher()
    async with factory(sessions, dispatcher)() as uow:
        await touch_customer(uow.session, "o_uow_1")
        uow.notify("o_uow_1", "order_paid", {"order_no": "1", "at": NOW, "day": NOW.date(), "items": ({"n": 1},)})
        assert dispatcher.ids == []  # nothing leaves before the commit
    assert await customers(sessions) == 1
    [told] = await outbox_notices(sessions)
    assert (told.openid, told.template) == ("o_uow_1", "order_paid")
    assert told.data == {"order_no": "1", "at": NOW, "day": NOW.date(), "items": [{"n": 1}]}
    async with sessions() as session:
        row = (await session.scalars(select(OutboxMessage))).one()
    assert dispatcher.ids == [row.id]
    # leased to its writer: the scheduler leaves it alone while the dispatcher sends it
    assert row.status == "pending" and row.next_attempt_at.replace(tzinfo=UTC) == NOW + notices.NOTICE_HEAD_START


async def test_a_rolled_back_unit_of_work_keeps_and_sends_nothing(sessions) -> None:  # type: ignore[no-untyped-def]
    dispatcher = RecordingDispatcher()
    with pytest.raises(RuntimeError, match="changed my mind"):
        async with factory(sessions, dispatcher)() as uow:
            await touch_customer(uow.session, "o_uow_2")
            uow.notify("o_uow_2", "order_paid", {"order_no": "2"})
            raise RuntimeError("changed my mind")
    assert await customers(sessions) == 0
    assert await outbox_notices(sessions) == []
    assert dispatcher.ids == []


async def test_a_commit_that_fails_sends_nothing(sessions) -> None:  # type: ignore[no-untyped-def]
    dispatcher = RecordingDispatcher()
    async with factory(sessions, dispatcher)() as uow:
        await touch_customer(uow.session, "o_uow_3")
    with pytest.raises(Exception):  # noqa: B017 - the driver's own IntegrityError class
        async with factory(sessions, dispatcher)() as uow:
            uow.notify("o_uow_3", "order_paid", {"order_no": "3"})
            uow.session.add(Customer(openid="o_uow_3"))  # the unique openid fails the commit
    assert [n.data for n in await outbox_notices(sessions)] == []
    assert dispatcher.ids == []


async def test_several_commits_in_one_unit_of_work_dispatch_every_row_once(sessions) -> None:  # type: ignore[no-untyped-def]
    dispatcher = RecordingDispatcher()
    async with factory(sessions, dispatcher)() as uow:
        uow.notify("o_uow_4", "a", {})
        await uow.commit()
        uow.notify("o_uow_4", "b", {})
    assert [n.template for n in await outbox_notices(sessions)] == ["a", "b"]
    assert len(dispatcher.ids) == 2 and len(set(dispatcher.ids)) == 2


@pytest.mark.parametrize("value", [object(), Decimal("1.5"), {1, 2}, b"bytes"])
def test_data_the_outbox_cannot_keep_is_refused_where_it_is_queued(value: Any) -> None:
    with pytest.raises(TypeError, match="cannot be kept in the outbox"):
        notices.encode({"x": value})


plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.text(max_size=20)
    | st.datetimes(timezones=st.just(UTC))
    | st.dates(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(st.dictionaries(st.text(max_size=8), plain, max_size=6))
def test_notice_data_comes_back_as_it_was_queued(data: dict[str, Any]) -> None:
    import json

    stored = json.loads(json.dumps(notices.encode(data)))  # what the JSON column gives back
    assert notices.decode(stored) == data
    assert notices.decode(json.loads(json.dumps(notices.encode(notices.decode(stored))))) == data


def test_a_datetime_is_not_confused_with_a_dict_that_looks_like_one() -> None:
    tagged = {"$datetime": "2026-12-04T10:00:00+00:00", "other": 1}
    assert notices.decode(notices.encode({"x": tagged})) == {"x": tagged}
    assert notices.decode(notices.encode({"d": date(2026, 1, 2), "t": NOW + timedelta(hours=1)})) == {
        "d": date(2026, 1, 2),
        "t": NOW + timedelta(hours=1),
    }

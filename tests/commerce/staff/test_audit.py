"""The audit log: entries written as plain JSON and read back newest first."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from commerce.staff import audit
from commerce.staff.models import AuditEntry, StaffRole
from commerce.wiring import shop_sessions
from tests.commerce.orders.test_queries import run

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return shop_sessions(engine)


async def test_entries_are_recorded_and_read_back_newest_first(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await run(
        sessions,
        audit.record,
        actor="owner-1",
        role=StaffRole.OWNER,
        command="price",
        args=["12", "9.90"],
        outcome="ok",
        before={"price_fen": 1290},
        after={"price_fen": 990},
        now=NOW,
    )
    await run(
        sessions,
        audit.record,
        actor="stranger",
        role="",
        command="price",
        args=["12", "0.01"],
        outcome="refused",
        now=NOW + timedelta(minutes=1),
    )
    await run(
        sessions,
        audit.record,
        actor="owner-1",
        role="owner",
        command="stock",
        args={"ref": "12", "delta": -1},
        outcome="failed",
        now=NOW + timedelta(minutes=2),
    )

    entries = await run(sessions, audit.latest)
    assert [(e.actor, e.command, e.outcome) for e in entries] == [
        ("owner-1", "stock", "failed"),
        ("stranger", "price", "refused"),
        ("owner-1", "price", "ok"),
    ]
    first = entries[-1]
    assert first.role == "owner" and first.args == ["12", "9.90"]
    assert first.before == {"price_fen": 1290} and first.after == {"price_fen": 990}
    assert first.created_at == NOW
    assert entries[1].role == "" and entries[1].before is None and entries[1].after is None
    assert entries[0].args == {"ref": "12", "delta": -1}

    mine = await run(sessions, audit.latest, actor="owner-1", limit=1)
    assert [(e.command, e.outcome) for e in mine] == [("stock", "failed")]


async def test_snapshots_are_made_json_safe(sessions: async_sessionmaker[AsyncSession]) -> None:
    await run(
        sessions,
        audit.record,
        actor="o",
        role="owner",
        command="coupon",
        args=("A", 1),  # type: ignore[arg-type]
        outcome="ok",
        after={
            "at": datetime(2026, 5, 1, 20, 0, tzinfo=UTC),
            "day": date(2026, 5, 1),
            "role": StaffRole.SERVICE,
            "amount": Decimal("9.90"),
            "ids": (1, 2),
        },
    )
    [entry] = await run(sessions, audit.latest)
    assert entry.args == ["A", 1]
    assert entry.after == {
        "at": "2026-05-01T20:00:00+00:00",
        "day": "2026-05-01",
        "role": "service",
        "amount": "9.90",
        "ids": [1, 2],
    }


async def test_long_texts_are_cut_and_unknown_outcomes_refused(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await run(
        sessions,
        audit.record,
        actor="x" * 100,
        role="r" * 40,
        command="c" * 80,
        args=[],
        outcome="ok",
    )
    [entry] = await run(sessions, audit.latest)
    assert (len(entry.actor), len(entry.role), len(entry.command)) == (64, 16, 32)
    with pytest.raises(ValueError):
        await run(sessions, audit.record, actor="a", role="", command="c", args=[], outcome="maybe")
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(AuditEntry)) == 1


async def test_what_staff_typed_is_kept_bounded(sessions: async_sessionmaker[AsyncSession]) -> None:
    """A 10 KB paste as a command's argument is not evidence: it is cut, as are endless args."""
    await run(
        sessions,
        audit.record,
        actor="o_staff",
        role="owner",
        command="group",
        args=["码" * 10_000, *[str(n) for n in range(50)]],
        outcome="failed",
    )
    [entry] = await run(sessions, audit.latest)
    assert len(entry.args) == audit.ARGS_LIMIT
    assert entry.args[0] == "码" * (audit.ARG_TEXT_LIMIT - 1) + "…" and entry.args[1] == "0"


async def test_the_limit_is_kept(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        for n in range(5):
            await audit.record(
                session,
                actor="o",
                role="owner",
                command=f"c{n}",
                args=[],
                outcome="ok",
                now=NOW + timedelta(seconds=n),
            )
        await session.commit()
    assert [e.command for e in await run(sessions, audit.latest, limit=2)] == ["c4", "c3"]

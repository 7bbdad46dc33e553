"""`is_busy`: SQLite's "database is locked" told apart from other database failures."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy.exc import OperationalError

from commerce.db import is_busy


def test_a_write_that_waited_past_the_busy_timeout_is_busy(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN IMMEDIATE")  # the write lock
    engine = sqlalchemy.create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.05})
    try:
        with pytest.raises(OperationalError) as caught, engine.begin() as conn:
            conn.execute(sqlalchemy.text("INSERT INTO t VALUES (1)"))
        assert is_busy(caught.value)
        assert is_busy(RuntimeError("wrapped")) is False
        try:
            raise RuntimeError("a step above") from caught.value
        except RuntimeError as wrapped:
            assert is_busy(wrapped)  # what it was raised from counts
    finally:
        engine.dispose()
        holder.execute("COMMIT")
        holder.close()


def test_other_database_failures_are_not_busy() -> None:
    missing = OperationalError("SELECT * FROM nowhere", {}, sqlite3.OperationalError("no such table: nowhere"))
    assert not is_busy(missing)
    assert not is_busy(ValueError("database is locked"))  # words alone, from elsewhere, are not SQLite's


async def test_a_savepoint_before_the_first_write_commits_with_its_transaction_not_at_its_release(
    tmp_path: Path,
) -> None:
    """On SQLite a SAVEPOINT that opens the transaction commits when it is released; the
    engine begins the transaction first, so a bulk ship's lines commit with its audit row."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import AsyncSession

    from commerce.db import create_engine

    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
        conn.execute("INSERT INTO t VALUES (0)")
    engine = create_engine(f"sqlite+aiosqlite:///{path}")

    def seen() -> int:
        with sqlite3.connect(path) as other:
            return int(other.execute("SELECT x FROM t").fetchone()[0])

    try:
        async with AsyncSession(engine) as session:
            async with session.begin():
                async with session.begin_nested():
                    await session.execute(text("UPDATE t SET x = 1"))
                assert seen() == 0  # released, not committed
            assert seen() == 1  # committed with the transaction
            with pytest.raises(RuntimeError):
                async with session.begin():
                    async with session.begin_nested():
                        await session.execute(text("UPDATE t SET x = 2"))
                    raise RuntimeError("the caller fails after the savepoint")
            assert seen() == 1  # rolled back with it
    finally:
        await engine.dispose()

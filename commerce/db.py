"""Database engine and unit-of-work sessions.

SQLite runs in WAL mode with a busy timeout (measured ~7x faster than the default
journal here, and writers wait instead of failing); PostgreSQL goes through asyncpg.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy
from sqlalchemy import Connection, CursorResult, Engine, Result, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SQLITE_BUSY_TIMEOUT_MS = 5000
T = TypeVar("T")


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    # hide_parameters: an error's text never quotes the statement's values (openids,
    # phone numbers, addresses), so a logged database exception cannot leak them
    kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
    if is_sqlite(url):
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    else:
        kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
    engine = create_async_engine(url, **kwargs)
    if is_sqlite(url):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def create_blocking_sqlite_engine(url: str) -> Engine:
    """A blocking (pysqlite) engine on the SQLite file of the async engine's `url` that never
    waits for SQLite's lock (busy timeout 0: a busy database raises at once, and the caller
    waits for it without blocking, `run_nonblocking`). Its short statements may then run on
    the event loop itself: aiosqlite hands every statement, fetch and commit over to a
    thread, each a wake-up and a GIL switch, which measured several times the statements'
    own cost."""
    if not is_sqlite(url):
        raise ValueError("a blocking engine is for SQLite only (PostgreSQL's driver needs no thread)")
    sync_url = sqlalchemy.make_url(url).set(drivername="sqlite")
    engine = sqlalchemy.create_engine(sync_url, hide_parameters=True, connect_args={"timeout": 0})
    event.listen(engine, "connect", _sqlite_pragmas_no_wait)
    return engine


def run_nonblocking_sqlite(engine: Engine, work: Callable[[Connection], T]) -> T:
    """`work` in one transaction of `engine`; raises `SqliteBusy` at once when another
    connection holds the write lock (the caller retries later)."""
    try:
        with engine.begin() as conn:
            return work(conn)
    except OperationalError as exc:
        if "locked" in str(exc.orig) or "busy" in str(exc.orig):
            raise SqliteBusy() from exc
        raise


class SqliteBusy(Exception):
    """Another connection holds SQLite's write lock: try again in a moment."""


def _sqlite_pragmas_no_wait(dbapi_connection: Any, record: Any) -> None:
    _sqlite_pragmas(dbapi_connection, record)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=0")
    cursor.close()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def rowcount(result: Result[*tuple[Any, ...]]) -> int:
    """How many rows an UPDATE or DELETE matched.

    `AsyncSession.execute` is typed to return a plain `Result`; for a DML statement it is
    a `CursorResult`, the only kind that knows its row count.
    """
    if not isinstance(result, CursorResult):
        raise TypeError(f"no row count on {type(result).__name__}: not an UPDATE or DELETE result")
    return result.rowcount


def upsert_insert(session: AsyncSession, model: Any) -> Any:
    """The dialect's INSERT for `model`, which knows ON CONFLICT (SQLite and PostgreSQL).

    Use it instead of a SAVEPOINT to survive a duplicate: on SQLite, a SAVEPOINT that
    opens the transaction is committed by its RELEASE, whatever the caller does next.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model)
    if dialect == "sqlite":
        return sqlite.insert(model)
    raise RuntimeError(f"unsupported database dialect {dialect!r}")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)

"""Database engine and unit-of-work sessions.

SQLite runs in WAL mode with a busy timeout (measured ~7x faster than the default
journal here, and writers wait instead of failing); PostgreSQL goes through asyncpg.

SQLite has one writer at a time. A statement that needs the write lock while another
connection holds it waits up to the busy timeout (`SQLITE_BUSY_TIMEOUT_MS`, 5 s;
`database.busy_timeout_seconds`), then fails with "database is locked" (SQLITE_BUSY),
and its transaction is rolled back. What happens then (the retry policy):

- a chat turn (`bot.chat.middleware.retry_when_busy`) runs again from the start, with a
  back-off (0.1 s doubling to 2 s), until its deadline (`TURN_DEADLINE_SECONDS`, 60 s;
  `database.busy_deadline_seconds`). WeChat's 5-s passive deadline passes meanwhile and
  the real answer goes out as a customer-service message. Past the deadline the customer
  is told the shop is busy and their message is kept: it stays unanswered in the intake
  journal and a sweeper runs it again 5 s later (`bot.wechat.intake`; after four runs
  it is answered with the error text);
- the intake journal's own writes never block the event loop: they retry on a lock-free
  connection for up to `SQLITE_BUSY_TIMEOUT_MS` (`bot.wechat.intake.WriteBatcher`); a
  message that cannot be written down is not answered (HTTP 503), so WeChat sends it
  again; a turn's reply (or its postponement) is written again until the turn's deadline;
- anything else (a staff command, a page, a scheduler job) fails as before; jobs run
  again at their next tick.

Nothing is doubled by a retry: the busy error rolls the whole unit of work back, placing
an order carries an idempotency key derived from the message, and a turn that committed
a change before the database got busy is answered as processed, not run again
(`bot.wechat.intake.fence`). `is_busy` tells a busy database from other failures.

PostgreSQL connections are not pinged before each use (`pool_pre_ping` measured ~0.1 ms
of CPU and a round trip per transaction, six or more a chat turn). A connection found
dead instead (the server restarted) fails its statement; SQLAlchemy then discards every
pooled connection older than that moment, and the failure is retried like a busy
database: a chat turn runs again at once (`is_stale_connection`, `must_run_again`), the
intake journal's write is tried again on a fresh connection. Elsewhere (a page, a
payment notification, a job) the one request that met the dead connection fails, and
the payment provider or the next tick tries again.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy
from sqlalchemy import Connection, CursorResult, Engine, Result, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

SQLITE_BUSY_TIMEOUT_MS = 5000
TURN_DEADLINE_SECONDS = 60.0  # a chat turn retries a busy database this long (see the module)
_SQLITE_BUSY_CODES = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED (primary result codes)
T = TypeVar("T")


def is_busy(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps) is SQLite's "database is locked": another connection
    held the write lock past the busy timeout, and the transaction was rolled back."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        orig = current.orig if isinstance(current, OperationalError) else current
        code = getattr(orig, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF in _SQLITE_BUSY_CODES:
            return True
        if isinstance(orig, sqlite3.OperationalError) and _busy_text(str(orig)):
            return True
        current = current.__cause__ or current.__context__
    return False


def is_stale_connection(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps) is a pooled connection found dead on use (the
    database restarted since it was opened): the pool has dropped it and its elders, so
    the same work on a fresh connection may well succeed."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        current = current.__cause__ or current.__context__
    return False


def must_run_again(exc: BaseException) -> bool:
    """A failure that is not the work's fault, after which it runs again from the start:
    SQLite busy past its timeout, or a connection found dead."""
    return is_busy(exc) or is_stale_connection(exc)


def _busy_text(message: str) -> bool:
    return "database is locked" in message or "database is busy" in message or "database table is locked" in message


POOL_TIMEOUT_SECONDS = 120.0
"""How long a transaction waits for a pooled connection before it fails. A burst (2,000
flash-sale buyers at once on one SQLite worker) queues far more turns than the pool has
connections; at SQLAlchemy's default of 30 s a third of them failed with the error reply.
Every message is written down before its turn, so a turn that waits is answered later as
a customer-service message: waiting is the better failure."""


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def create_engine(url: str, *, echo: bool = False, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> AsyncEngine:
    """The async engine; on SQLite a writer waits `busy_timeout_ms` for the lock (see the module)."""
    # hide_parameters: an error's text never quotes the statement's values (openids,
    # phone numbers, addresses), so a logged database exception cannot leak them
    kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True, "pool_timeout": POOL_TIMEOUT_SECONDS}
    if is_sqlite(url):
        kwargs["connect_args"] = {"timeout": busy_timeout_ms / 1000}
    else:
        kwargs.update(pool_size=10, max_overflow=10)  # no pre-ping: see the module
    engine = create_async_engine(url, **kwargs)
    if is_sqlite(url):
        event.listen(engine.sync_engine, "connect", functools.partial(_sqlite_pragmas, busy_timeout_ms=busy_timeout_ms))
        event.listen(engine.sync_engine, "savepoint", _savepoint_inside_a_transaction)
    return engine


def _savepoint_inside_a_transaction(conn: Connection, name: str) -> None:
    """pysqlite (and aiosqlite over it) opens a transaction only before a write. A SAVEPOINT
    emitted before the transaction's first write opens one of its own, and releasing the
    outermost savepoint COMMITS it (SQLite's rule): the work of a `begin_nested()` that came
    first was committed at its release, not with the transaction (a bulk ship's lines one by
    one, before their audit row). So the transaction is begun first, as a deferred BEGIN, the
    same lock SQLite would take for the SAVEPOINT: the savepoint nests, and its work commits
    or rolls back with the transaction."""
    raw = conn.connection.dbapi_connection
    driver: Any = getattr(raw, "_connection", raw)  # aiosqlite's Connection under SQLAlchemy's adapter
    if not driver.in_transaction:
        conn.exec_driver_sql("BEGIN")


def create_blocking_sqlite_engine(url: str, *, busy_timeout_ms: int = 0) -> Engine:
    """A blocking (pysqlite) engine on the SQLite file of the async engine's `url`; by
    default one that never waits for SQLite's lock (busy timeout 0: a busy database raises
    at once, and the caller waits for it without blocking, `run_nonblocking`). Its short
    statements may then run on the event loop itself: aiosqlite hands every statement,
    fetch and commit over to a thread, each a wake-up and a GIL switch, which measured
    several times the statements' own cost. Code without an event loop (`run_blocking`)
    asks for a `busy_timeout_ms` and waits for the lock like any writer."""
    if not is_sqlite(url):
        raise ValueError("a blocking engine is for SQLite only (PostgreSQL's driver needs no thread)")
    sync_url = sqlalchemy.make_url(url).set(drivername="sqlite")
    engine = sqlalchemy.create_engine(
        sync_url, hide_parameters=True, connect_args={"timeout": busy_timeout_ms / 1000}
    )
    if busy_timeout_ms:
        event.listen(engine, "connect", functools.partial(_sqlite_pragmas, busy_timeout_ms=busy_timeout_ms))
    else:
        event.listen(engine, "connect", _sqlite_pragmas_no_wait)
    event.listen(engine, "savepoint", _savepoint_inside_a_transaction)
    return engine


def run_blocking(url: str, work: Callable[[Connection], T], *, timeout: float) -> T:
    """`work` in one transaction on the database at `url`, from a process that has no event
    loop of its own (the supervisor of `storefront serve --workers N`): one connection,
    opened for it and closed after. SQLite through a blocking engine that waits up to
    `timeout` for the write lock; PostgreSQL through the shop's own driver (asyncpg, the
    only one installed) on a loop made for the call, the whole call bounded by `timeout`.
    Raises what the database raised (or `TimeoutError`): the caller tries again later."""
    if is_sqlite(url):
        engine = create_blocking_sqlite_engine(url, busy_timeout_ms=round(timeout * 1000))
        try:
            with engine.begin() as conn:
                return work(conn)
        finally:
            engine.dispose()

    async def run() -> T:
        engine = create_async_engine(url, poolclass=NullPool, hide_parameters=True)
        try:
            async with engine.begin() as conn:
                return await conn.run_sync(work)
        finally:
            await engine.dispose()

    async def bounded() -> T:
        return await asyncio.wait_for(run(), timeout)

    return asyncio.run(bounded())


def blocking_sqlite_engine_for(engine: AsyncEngine) -> Engine | None:
    """`create_blocking_sqlite_engine` for `engine`'s database when it is a SQLite file; None
    on PostgreSQL and for an in-memory SQLite (one connection's: another could not see it)."""
    url = engine.url.render_as_string(hide_password=False)
    if not is_sqlite(url) or engine.url.database in (None, "", ":memory:"):
        return None
    return create_blocking_sqlite_engine(url)


def run_nonblocking_sqlite(engine: Engine, work: Callable[[Connection], T]) -> T:
    """`work` in one transaction of `engine`; raises `SqliteBusy` at once when another
    connection holds the write lock (the caller retries later)."""
    try:
        with engine.begin() as conn:
            return work(conn)
    except OperationalError as exc:
        if is_busy(exc):
            raise SqliteBusy() from exc
        raise


class SqliteBusy(Exception):
    """Another connection holds SQLite's write lock: try again in a moment."""


def _sqlite_pragmas_no_wait(dbapi_connection: Any, record: Any) -> None:
    _sqlite_pragmas(dbapi_connection, record)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=0")
    cursor.close()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, *, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
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


def upsert_insert(session: AsyncSession | Connection, model: Any) -> Any:
    """The dialect's INSERT for `model`, which knows ON CONFLICT (SQLite and PostgreSQL),
    for a session or a plain connection.

    Use it instead of a SAVEPOINT to survive a duplicate: on SQLite, a SAVEPOINT that
    opens the transaction is committed by its RELEASE, whatever the caller does next.
    """
    dialect = (session.get_bind() if isinstance(session, AsyncSession) else session).dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model)
    if dialect == "sqlite":
        return sqlite.insert(model)
    raise RuntimeError(f"unsupported database dialect {dialect!r}")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)

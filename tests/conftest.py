"""Shared fixtures: real databases (SQLite and PostgreSQL) and real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from commerce.db import create_engine
from tests.ports import free_port
from tests.servers import PostgresServer, RedisServer, SqliteTemplate, temp_root


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `sqlite_only` (wording and understanding: what they check does not
    depend on the database) run once, on SQLite, instead of on both databases; the
    domain, payment and concurrency tests keep both.

    Then the slow tests first (the fault suite and the scale scenario: servers in
    subprocesses, 5-17 s each), so that pytest-xdist starts them on every worker while the
    short tests fill the gaps, instead of one of them starting last and running alone.
    Whole modules are marked slow, so each module's tests stay together."""
    dropped = [item for item in items if _postgres_run_of_a_sqlite_only_test(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not _postgres_run_of_a_sqlite_only_test(item)]
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def _postgres_run_of_a_sqlite_only_test(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    return (
        item.get_closest_marker("sqlite_only") is not None
        and callspec is not None
        and callspec.params.get("db_url") == "postgres"
    )


@pytest.fixture
def unused_tcp_port() -> int:
    """pytest-aiohttp's fixture of the same name, from a range no outgoing connection takes
    (`tests.ports`): its port from the ephemeral range was once taken before the test's
    server bound it."""
    return free_port()


@pytest.fixture(scope="session")
def test_root() -> Iterator[Path]:
    yield from temp_root()


@pytest.fixture(scope="session")
def postgres_server(test_root: Path) -> Iterator[PostgresServer]:
    server = PostgresServer(test_root / "postgres", durable=False)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sqlite_template(test_root: Path) -> SqliteTemplate:
    return SqliteTemplate(test_root / "sqlite")


@pytest.fixture(scope="session")
def redis_server(test_root: Path) -> Iterator[RedisServer]:
    server = RedisServer(test_root / "redis")
    yield server
    server.stop()


@pytest.fixture
def demo_catalog() -> None:
    """Ask for it (in a test or a fixture) and every database the test gets from `db_url`,
    `sqlite_url` or `postgres_url` already holds the demo catalog, exactly as `seed()`
    (tests/bot/conftest.py) would add it to a fresh one; `seed()` then adds nothing.
    Only for tests that seed each of their databases before touching it."""


def _wants_demo_catalog(request: pytest.FixtureRequest) -> bool:
    return "demo_catalog" in request.fixturenames


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """The URL of a fresh, migrated database: each test runs on SQLite and on PostgreSQL."""
    demo = _wants_demo_catalog(request)
    if request.param == "sqlite":
        yield request.getfixturevalue("sqlite_template").new_database(demo_catalog=demo)
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = await server.new_database(demo_catalog=demo)
    yield url
    await server.drop_database(url)


@pytest.fixture
async def postgres_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh migrated PostgreSQL database, for the several-workers scenarios."""
    url = await postgres_server.new_database(demo_catalog=_wants_demo_catalog(request))
    yield url
    await postgres_server.drop_database(url)


@pytest.fixture
def sqlite_url(sqlite_template: SqliteTemplate, request: pytest.FixtureRequest) -> str:
    """A fresh migrated SQLite database, for tests that need not repeat on PostgreSQL."""
    return sqlite_template.new_database(demo_catalog=_wants_demo_catalog(request))


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(db_url)
    yield eng
    await eng.dispose()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.fresh_url()

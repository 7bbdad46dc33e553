"""The schema comes from the migrations and is the same on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from commerce.migrate import upgrade
from commerce.models import Base


async def _columns(engine: AsyncEngine) -> dict[str, list[tuple[str, bool]]]:
    def read(conn):  # type: ignore[no-untyped-def]
        insp = inspect(conn)
        return {
            table: sorted((c["name"], c["nullable"]) for c in insp.get_columns(table))
            for table in insp.get_table_names()
            if table != "alembic_version"
        }

    async with engine.connect() as conn:
        return await conn.run_sync(read)


async def test_migrated_schema_matches_the_models(engine: AsyncEngine) -> None:
    columns = await _columns(engine)
    expected = {
        table.name: sorted((c.name, bool(c.nullable)) for c in table.columns)
        for table in Base.metadata.sorted_tables
    }
    assert columns == expected


async def test_upgrade_twice_is_harmless(engine: AsyncEngine) -> None:
    await upgrade(engine)
    await upgrade(engine)
    assert "variants" in await _columns(engine)


async def test_database_errors_never_quote_the_values_of_the_statement(engine: AsyncEngine) -> None:
    """A logged IntegrityError must not carry a customer's phone number or openid."""
    import pytest
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    with pytest.raises(DBAPIError) as failed:
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO install_secrets (name, value, created_at) VALUES (:n, :v, :t)"),
                [{"n": "dup", "v": "13812345678", "t": "2026-01-01"}, {"n": "dup", "v": "o_secret_openid", "t": "2026-01-01"}],
            )
    assert "13812345678" not in str(failed.value) and "o_secret_openid" not in str(failed.value)


async def test_autogenerate_finds_nothing_to_migrate(engine: AsyncEngine) -> None:
    """The models, spread over the domain packages, are exactly the migrated schema:
    `alembic revision --autogenerate` would write an empty migration."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    async with engine.connect() as conn:
        diff = await conn.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata))
    assert diff == []

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

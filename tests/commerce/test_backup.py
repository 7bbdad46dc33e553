"""The backup zip and its restore: lossless cells, damaged or foreign zips refused, PostgreSQL both ways."""

from __future__ import annotations

import json
import struct
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, Text, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from commerce.backup import BackupError
from commerce.backup.archive import MANIFEST, SNAPSHOT, create_backup, create_backup_blocking
from commerce.backup.restore import open_backup, restore_backup
from commerce.backup.tables import decode, encode
from commerce.models import Base
from tests.servers import PostgresServer, SqliteTemplate

NOW = datetime(2026, 12, 5, 8, 30, tzinfo=UTC)

_cells = Table(
    "cells", MetaData(),
    Column("id", Integer, primary_key=True),
    Column("must", String(20), nullable=False),
    Column("may", Text, nullable=True),
    Column("doc", JSON, nullable=False),
    Column("maybe_doc", JSON, nullable=True),
)


@pytest.mark.parametrize(
    ("column", "value", "cell"),
    [
        ("must", "=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")"),  # a spreadsheet shows it, never runs it
        ("must", "'quoted", "''quoted"),
        ("must", "-", "'-"),
        ("must", "", ""),
        ("must", "张三 \\N", "张三 \\N"),
        ("may", "", "'"),  # an empty text is not NULL
        ("may", None, ""),
        ("may", "@home", "'@home"),
        ("doc", None, "null"),  # JSON's null where SQL NULL cannot be
        ("doc", {"名": [1, "二"]}, '{"名":[1,"二"]}'),
        ("maybe_doc", None, ""),
        ("id", 12, "12"),
    ],
)
def test_every_value_has_a_cell_that_gives_it_back(column: str, value: Any, cell: str) -> None:
    assert encode(_cells.c[column], value) == cell
    assert decode(_cells.c[column], cell) == value


def test_a_cell_that_is_no_value_of_its_column_is_refused() -> None:
    with pytest.raises(BackupError, match="cells.id"):
        decode(_cells.c.id, "twelve")
    with pytest.raises(BackupError, match="may not be empty"):
        decode(_cells.c.id, "")


def _flip_member_byte(backup: Path, member: str, out: Path) -> None:
    """A copy of `backup` with one byte of `member`'s stored data changed."""
    raw = bytearray(backup.read_bytes())
    with zipfile.ZipFile(backup) as zf:
        info = zf.getinfo(member)
    name_length, extra_length = struct.unpack_from("<HH", raw, info.header_offset + 26)
    data = info.header_offset + 30 + name_length + extra_length
    raw[data + info.compress_size // 2] ^= 0xFF
    out.write_bytes(bytes(raw))


def _rewrite(backup: Path, out: Path, *, drop: str | None = None, manifest: dict[str, Any] | None = None) -> None:
    with zipfile.ZipFile(backup) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            if info.filename == drop:
                continue
            body = src.read(info)
            if info.filename == MANIFEST and manifest is not None:
                body = json.dumps({**json.loads(body), **manifest}).encode()
            dst.writestr(info, body)


def test_a_damaged_or_foreign_zip_is_refused_before_anything_is_written(
    tmp_path: Path, sqlite_url: str, sqlite_template: SqliteTemplate
) -> None:
    backup = tmp_path / "backup.zip"
    manifest = create_backup_blocking(sqlite_url, backup, now=NOW)
    assert manifest.snapshot == SNAPSHOT and manifest.schema_revision and manifest.created_at.startswith("2026-12-05")
    open_backup(backup)[0].close()  # the good one opens

    cases: dict[str, str] = {}
    (tmp_path / "text.zip").write_text("not a zip at all")
    cases["text.zip"] = "not a readable zip"
    (tmp_path / "short.zip").write_bytes(backup.read_bytes()[: backup.stat().st_size // 2])
    cases["short.zip"] = "not a readable zip"
    _flip_member_byte(backup, "tables/orders.csv", tmp_path / "flipped.zip")
    cases["flipped.zip"] = "is damaged"
    _rewrite(backup, tmp_path / "bare.zip", drop=MANIFEST)
    cases["bare.zip"] = "not a storefront backup"
    _rewrite(backup, tmp_path / "lost.zip", drop="tables/orders.csv")
    cases["lost.zip"] = "incomplete: tables/orders.csv missing"
    _rewrite(backup, tmp_path / "future.zip", manifest={"schema_revision": "9999"})
    cases["future.zip"] = "schema revision 9999 is unknown"
    _rewrite(backup, tmp_path / "other.zip", manifest={"format": "something-else/1"})
    cases["other.zip"] = "not a storefront backup"
    for name, reason in cases.items():
        with pytest.raises(BackupError, match=reason):
            open_backup(tmp_path / name)
    assert not (tmp_path / "missing.zip").exists()
    with pytest.raises(BackupError, match="there is no file"):
        open_backup(tmp_path / "missing.zip")


def _rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = sqlalchemy.create_engine(sqlalchemy.make_url(url).set(drivername="sqlite"))
    try:
        with engine.connect() as conn:
            return {t.name: [tuple(r) for r in conn.execute(select(t).order_by(*t.primary_key.columns))]
                    for t in Base.metadata.sorted_tables}
    finally:
        engine.dispose()


@pytest.mark.usefixtures("demo_catalog")
async def test_csvs_carry_a_shop_to_postgresql_and_back(
    tmp_path: Path, sqlite_url: str, sqlite_template: SqliteTemplate, postgres_server: PostgresServer
) -> None:
    """The CSV path both ways: into PostgreSQL (its id sequences set past the rows), and
    a backup made on PostgreSQL (CSVs only) back into SQLite, every row as it was."""
    from_sqlite = tmp_path / "sqlite.zip"
    await create_backup(sqlite_url, from_sqlite, now=NOW)
    pg_url = await postgres_server.new_database()
    try:
        report = await restore_backup(pg_url, from_sqlite)
        assert report.source == "csv" and report.rows > 100
        engine = create_async_engine(pg_url)
        try:
            async with engine.begin() as conn:
                largest = await conn.scalar(text("SELECT max(id) FROM categories"))
                new_id = await conn.scalar(text(  # an id of its own, not 1 again
                    "INSERT INTO categories (name, name_en, sort_order) VALUES ('新', 'New', 99) RETURNING id"))
                assert largest is not None and new_id == largest + 1
                await conn.rollback()
        finally:
            await engine.dispose()
        with pytest.raises(BackupError, match="not empty"):
            await restore_backup(pg_url, from_sqlite)
        from_postgres = tmp_path / "postgres.zip"
        manifest = await create_backup(pg_url, from_postgres, now=NOW)
        assert manifest.database == "postgresql" and manifest.snapshot is None
    finally:
        await postgres_server.drop_database(pg_url)
    back = sqlite_template.new_database()
    assert (await restore_backup(back, from_postgres)).source == "csv"
    assert _rows(back) == _rows(sqlite_url)

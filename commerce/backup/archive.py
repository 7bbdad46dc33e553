"""Writing a backup zip (the package's docstring describes what it holds).

`create_backup` runs in a thread, never on the shop's event loop: on SQLite it first copies
the database with SQLite's backup API (`snapshot_sqlite`: one step under one read
transaction; in WAL mode the shop's writers go on meanwhile), then reads the CSVs from that
copy, so the shop's own database is read once, quickly. On PostgreSQL it reads every table
in one REPEATABLE READ, READ ONLY transaction on a connection of its own (its own event
loop in that thread), so the CSVs are one moment too; `pg_dump` is the tool for a snapshot
there (README).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import Connection, select
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from commerce.backup import BackupError
from commerce.backup.tables import CSV_ENCODING, encode, header
from commerce.models import Base
from commerce.rules import as_utc

FORMAT = "storefront-backup/1"
MANIFEST = "manifest.json"
SNAPSHOT = "snapshot.sqlite3"
TABLES_DIR = "tables"
BATCH_ROWS = 1000


@dataclass(frozen=True, slots=True)
class TableEntry:
    file: str
    rows: int
    columns: list[str]


@dataclass(frozen=True, slots=True)
class Manifest:
    format: str
    app_version: str
    schema_revision: str
    created_at: str  # ISO 8601, UTC
    database: str  # the source's dialect: sqlite or postgresql
    snapshot: str | None  # the SQLite snapshot's name in the zip
    tables: dict[str, TableEntry]

    @property
    def total_rows(self) -> int:
        return sum(entry.rows for entry in self.tables.values())

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=2)


def app_version() -> str:
    try:
        return package_metadata.version("storefront")
    except package_metadata.PackageNotFoundError:
        return "unknown"


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite database URL; None for PostgreSQL; `BackupError` for an in-memory one."""
    parsed = sqlalchemy.make_url(url)
    if not parsed.get_backend_name() == "sqlite":
        return None
    if parsed.database in (None, "", ":memory:"):
        raise BackupError("an in-memory SQLite database cannot be backed up or restored")
    return Path(parsed.database)


def snapshot_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of the SQLite database `source` in the new file `target`, made with
    SQLite's backup API in one step (one read transaction: the shop's writers go on in WAL
    mode), left in rollback-journal mode so that it is one self-contained file."""
    src = sqlite3.connect(source, timeout=30)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
    finally:
        src.close()


async def create_backup(url: str, out: Path, *, now: datetime) -> Manifest:
    """Write a backup of the database at `url` into the zip `out` (replaced if it exists), in
    a thread; the shop's event loop goes on answering meanwhile."""
    return await asyncio.to_thread(create_backup_blocking, url, out, now=now)


def create_backup_blocking(url: str, out: Path, *, now: datetime) -> Manifest:
    """`create_backup` for a caller that may block (a thread, the command line)."""
    source = sqlite_path(url)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".backup-") as tmp:
        partial = Path(tmp) / "backup.zip"
        if source is None:
            manifest = asyncio.run(_from_postgres(url, partial, now=now))
        else:
            if not source.exists():
                raise BackupError(f"there is no database file at {source}")
            snapshot = Path(tmp) / SNAPSHOT
            snapshot_sqlite(source, snapshot)
            engine = sqlalchemy.create_engine(f"sqlite:///{snapshot}", poolclass=NullPool)
            try:
                with engine.connect() as conn:
                    manifest = write_zip(conn, partial, database="sqlite", now=now,
                                         add_snapshot=lambda zf: zf.write(snapshot, SNAPSHOT))
            finally:
                engine.dispose()
        partial.replace(out)  # whole or not at all
    return manifest


async def _from_postgres(url: str, out: Path, *, now: datetime) -> Manifest:
    engine = create_async_engine(url, poolclass=NullPool, hide_parameters=True)
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                await conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                return await conn.run_sync(lambda sync: write_zip(sync, out, database="postgresql", now=now))
    finally:
        await engine.dispose()


def write_zip(
    conn: Connection, out: Path, *, database: str, now: datetime,
    add_snapshot: Callable[[zipfile.ZipFile], None] | None = None,
) -> Manifest:
    """Every table that `conn` sees as a CSV, the snapshot (when given) and the manifest."""
    # imported here: a worker need not import Alembic (with mako and pygments) to serve
    from alembic.runtime.migration import MigrationContext

    revision = MigrationContext.configure(conn).get_current_revision()
    if revision is None:
        raise BackupError("the database has no schema revision: it was never migrated (storefront db upgrade)")
    tables: dict[str, TableEntry] = {}
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for table in Base.metadata.sorted_tables:
            name = f"{TABLES_DIR}/{table.name}.csv"
            rows = 0
            member = zipfile.ZipInfo(name, date_time=as_utc(now).timetuple()[:6])
            member.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(member, "w", force_zip64=True) as raw, io.TextIOWrapper(
                raw, encoding=CSV_ENCODING, newline=""
            ) as text:
                writer = csv.writer(text)
                writer.writerow(header(table))
                result = conn.execution_options(stream_results=True, yield_per=BATCH_ROWS).execute(
                    select(table).order_by(*table.primary_key.columns)
                )
                columns = list(table.columns)
                for batch in result.partitions():
                    writer.writerows([encode(c, v) for c, v in zip(columns, row, strict=True)] for row in batch)
                    rows += len(batch)
            tables[table.name] = TableEntry(file=name, rows=rows, columns=[c.name for c in columns])
        if add_snapshot is not None:
            add_snapshot(zf)
        manifest = Manifest(
            format=FORMAT, app_version=app_version(), schema_revision=revision,
            created_at=as_utc(now).isoformat(), database=database,
            snapshot=SNAPSHOT if add_snapshot is not None else None, tables=tables,
        )
        zf.writestr(MANIFEST, manifest.to_json())
    return manifest


def read_manifest(zf: zipfile.ZipFile) -> Manifest:
    """The manifest of an open backup; `BackupError` when it is missing or not one."""
    try:
        raw: dict[str, Any] = json.loads(zf.read(MANIFEST).decode("utf-8"))
    except KeyError:
        raise BackupError(f"this zip is not a storefront backup: it has no {MANIFEST}") from None
    except (ValueError, UnicodeDecodeError, zipfile.BadZipFile, OSError) as exc:
        raise BackupError(f"the backup's {MANIFEST} cannot be read ({exc})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise BackupError(f"this zip is not a storefront backup of format {FORMAT}")
    try:
        tables = {
            str(name): TableEntry(file=str(t["file"]), rows=int(t["rows"]), columns=[str(c) for c in t["columns"]])
            for name, t in raw["tables"].items()
        }
        snapshot = raw["snapshot"]
        return Manifest(
            format=FORMAT, app_version=str(raw["app_version"]), schema_revision=str(raw["schema_revision"]),
            created_at=str(raw["created_at"]), database=str(raw["database"]),
            snapshot=None if snapshot is None else str(snapshot), tables=tables,
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        raise BackupError(f"the backup's {MANIFEST} is incomplete or damaged") from None

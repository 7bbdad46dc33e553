"""Restoring a backup zip into an empty database (`storefront backup restore FILE`).

The zip is checked first, before anything is written: that it is a zip whose every member
passes its checksum, that its manifest is a storefront backup's, that this version of the
shop knows its schema revision, and that it holds every file its manifest names.

- Into a SQLite file, when the backup has a snapshot: the snapshot is checked (SQLite's
  integrity check, its revision and row counts against the manifest), then copied over the
  target with SQLite's backup API, and the schema upgraded to this version's newest.
- Otherwise (a PostgreSQL target, a backup made on PostgreSQL, or `from_csv`): the target
  is migrated to the newest schema, which must be the backup's, then every table is loaded
  from its CSV in dependency order, in one transaction (a column that refers to its own
  table is filled in after its rows), the row counts checked, and on PostgreSQL each
  table's id sequence set past its largest id.

The target must be empty (no row in any of the shop's tables) unless `force`: then what it
holds is replaced. The shop must not be running on the target meanwhile.
"""

from __future__ import annotations

import asyncio
import csv
import io
import shutil
import sqlite3
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from alembic.script import ScriptDirectory
from sqlalchemy import (
    Column,
    Connection,
    Table,
    bindparam,
    delete,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)

from commerce.backup import BackupError
from commerce.backup.archive import MANIFEST, Manifest, read_manifest, sqlite_path
from commerce.backup.tables import CSV_ENCODING, columns_of_header, decode
from commerce.db import create_engine
from commerce.migrate import alembic_config, upgrade
from commerce.models import Base

BATCH_ROWS = 1000


@dataclass(frozen=True, slots=True)
class RestoreReport:
    manifest: Manifest
    source: Literal["snapshot", "csv"]
    rows: int


def open_backup(path: Path) -> tuple[zipfile.ZipFile, Manifest]:
    """The backup at `path`, checked whole (see the module); `BackupError` with the reason."""
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise BackupError(f"there is no file {path}") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise BackupError(f"{path} is not a readable zip (damaged or truncated?): {exc}") from None
    try:
        try:
            damaged = zf.testzip()
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
            raise BackupError(f"{path} is damaged: {exc}") from None
        if damaged is not None:
            raise BackupError(f"{path} is damaged: {damaged} fails its checksum")
        manifest = read_manifest(zf)
        names = set(zf.namelist())
        wanted = [entry.file for entry in manifest.tables.values()] + ([manifest.snapshot] if manifest.snapshot else [])
        missing = [name for name in wanted if name not in names]
        if missing:
            raise BackupError(f"{path} is incomplete: {', '.join(missing)} missing")
        script = ScriptDirectory.from_config(alembic_config())
        if manifest.schema_revision not in {rev.revision for rev in script.walk_revisions()}:
            raise BackupError(
                f"the backup's schema revision {manifest.schema_revision} is unknown to this version of the "
                "shop: restore it with the version that made it (or a newer one)"
            )
    except BaseException:
        zf.close()
        raise
    return zf, manifest


async def restore_backup(url: str, path: Path, *, force: bool = False, from_csv: bool = False) -> RestoreReport:
    """Restore the backup at `path` into the database at `url` (see the module)."""
    zf, manifest = open_backup(path)
    with zf:
        target = sqlite_path(url)
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                held = await conn.run_sync(count_rows)
            if sum(held.values()) and not force:
                raise BackupError(
                    f"the database is not empty ({sum(held.values())} rows in {sum(1 for n in held.values() if n)} "
                    "tables): restore into a fresh database, or add --force to replace what it holds"
                )
            if target is not None and manifest.snapshot and not from_csv:
                await engine.dispose()
                await asyncio.to_thread(_restore_snapshot, zf, manifest, target)
                await upgrade(engine)
                return RestoreReport(manifest, "snapshot", manifest.total_rows)
            head = ScriptDirectory.from_config(alembic_config()).get_current_head()
            if manifest.schema_revision != head:
                raise BackupError(
                    f"the backup is of schema {manifest.schema_revision} and this version's is {head}: restore its "
                    "SQLite snapshot, or restore it with the version that made it and upgrade"
                )
            await upgrade(engine)
            async with engine.begin() as conn:
                await conn.run_sync(lambda sync: _load_csvs(sync, zf, manifest, replace=bool(sum(held.values()))))
            return RestoreReport(manifest, "csv", manifest.total_rows)
        finally:
            await engine.dispose()


def count_rows(conn: Connection) -> dict[str, int]:
    """The rows of each of the shop's tables that exist in `conn`'s database."""
    present = set(inspect(conn).get_table_names())
    return {
        table.name: int(conn.scalar(select(func.count()).select_from(table)) or 0)
        for table in Base.metadata.sorted_tables
        if table.name in present
    }


# ---- from the snapshot ---------------------------------------------------------------------------


def _restore_snapshot(zf: zipfile.ZipFile, manifest: Manifest, target: Path) -> None:
    assert manifest.snapshot is not None
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".restore-") as tmp:
        snapshot = Path(tmp) / "snapshot.sqlite3"
        with zf.open(manifest.snapshot) as src, snapshot.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        source = sqlite3.connect(snapshot)
        try:
            _check_snapshot(source, manifest)
            destination = sqlite3.connect(target, timeout=30)
            try:
                source.backup(destination)
            finally:
                destination.close()
        finally:
            source.close()


def _check_snapshot(db: sqlite3.Connection, manifest: Manifest) -> None:
    try:
        (verdict,) = db.execute("PRAGMA integrity_check").fetchone()
        (revision,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
        counts = {name: db.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in manifest.tables}
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"the backup's snapshot is not a sound SQLite database: {exc}") from None
    if verdict != "ok":
        raise BackupError(f"the backup's snapshot fails SQLite's integrity check: {verdict}")
    if revision != manifest.schema_revision:
        raise BackupError(f"the backup's snapshot is of schema {revision}, its {MANIFEST} says {manifest.schema_revision}")
    wrong = [name for name, entry in manifest.tables.items() if counts[name] != entry.rows]
    if wrong:
        raise BackupError(f"the backup's snapshot and its {MANIFEST} disagree on the rows of {', '.join(wrong)}")


# ---- from the CSVs -------------------------------------------------------------------------------


def _load_csvs(conn: Connection, zf: zipfile.ZipFile, manifest: Manifest, *, replace: bool) -> None:
    tables = Base.metadata.sorted_tables
    names = {table.name for table in tables}
    if set(manifest.tables) != names:
        odd = sorted(set(manifest.tables) ^ names)
        raise BackupError(f"the backup's tables differ from this schema's: {', '.join(odd)}")
    if replace:
        for table in reversed(tables):
            conn.execute(delete(table))
    for table in tables:
        entry = manifest.tables[table.name]
        loaded = _load_table(conn, table, zf, entry.file)
        if loaded != entry.rows:
            raise BackupError(f"{entry.file} holds {loaded} rows, its {MANIFEST} says {entry.rows}")
    if conn.dialect.name == "postgresql":
        _reset_sequences(conn)
    held = count_rows(conn)
    wrong = [name for name, entry in manifest.tables.items() if held.get(name) != entry.rows]
    if wrong:
        raise BackupError(f"after loading, the rows of {', '.join(wrong)} differ from the backup's")


def _load_table(conn: Connection, table: Table, zf: zipfile.ZipFile, file: str) -> int:
    # a column that refers to its own table (a customer's referrer): NULL first, set after
    later = [fk.parent for fk in table.foreign_keys if fk.column.table is table and fk.parent.nullable]
    pk = list(table.primary_key.columns)
    rows = 0
    fixes: list[dict[str, Any]] = []
    for batch in _read_rows(table, zf, file):
        rows += len(batch)
        if later:
            for row in batch:
                if any(row[c.name] is not None for c in later):
                    fixes.append({**{f"k_{c.name}": row[c.name] for c in pk}, **{c.name: row[c.name] for c in later}})
                    for c in later:
                        row[c.name] = None
        conn.execute(insert(table), batch)
    if fixes:
        where = [c == bindparam(f"k_{c.name}") for c in pk]
        conn.execute(update(table).where(*where).values({c.name: bindparam(c.name) for c in later}), fixes)
    return rows


def _read_rows(table: Table, zf: zipfile.ZipFile, file: str) -> Iterator[list[dict[str, Any]]]:
    with zf.open(file) as raw, io.TextIOWrapper(raw, encoding=CSV_ENCODING, newline="") as text:
        reader = csv.reader(text)
        try:
            columns: list[Column[Any]] = columns_of_header(table, next(reader))
            batch: list[dict[str, Any]] = []
            for cells in reader:
                if len(cells) != len(columns):
                    raise BackupError(f"{file} line {reader.line_num}: {len(cells)} cells for {len(columns)} columns")
                batch.append({c.name: decode(c, cell) for c, cell in zip(columns, cells, strict=True)})
                if len(batch) >= BATCH_ROWS:
                    yield batch
                    batch = []
            if batch:
                yield batch
        except StopIteration:
            raise BackupError(f"{file} is empty: it has no header row") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise BackupError(f"{file} cannot be read: {exc}") from None


def _reset_sequences(conn: Connection) -> None:
    """Each table's id sequence past its largest id, so that the next row gets a new one."""
    for table in Base.metadata.sorted_tables:
        for column in table.primary_key.columns:
            sequence = conn.scalar(text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": column.name})
            if sequence is None:
                continue
            largest = conn.scalar(select(func.max(column)))
            conn.execute(text("SELECT setval(:s, :v, :called)"),
                         {"s": sequence, "v": largest or 1, "called": largest is not None})

"""A backup of the whole shop, and its restore into an empty database.

A backup is one zip (`archive.create_backup`):

    manifest.json            what it holds: format, app version, Alembic schema revision,
                             created at, the source database's dialect, each table's file,
                             columns and row count, the snapshot's name (or null)
    tables/<table>.csv       every table of `commerce.models` (UTF-8 with a BOM), one row
                             per row in primary-key order; Chinese headers for the tables
                             staff read (`tables.HEADERS_ZH`), the column names elsewhere
    snapshot.sqlite3         on SQLite only: a consistent copy made with SQLite's backup API

The CSVs and the snapshot are the same moment: on SQLite the CSVs are read from the
snapshot, on PostgreSQL from one REPEATABLE READ transaction. Everything runs in a
thread, off the shop's event loop. `restore.restore_backup` brings a backup back into an
empty database: from the snapshot when there is one and the target is SQLite, else from
the CSVs, table by table in dependency order.

A backup holds everything the shop knows: customers' addresses and phone numbers, and the
install's secret key (`install_secrets`) that signs payment and export links. Keep it as
safe as the database itself.
"""

from __future__ import annotations


class BackupError(Exception):
    """A backup that cannot be made or restored; the message says why, for a person."""

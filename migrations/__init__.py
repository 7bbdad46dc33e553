"""Alembic migrations: the one source of the database schema (SQLite and PostgreSQL)."""

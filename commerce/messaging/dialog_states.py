"""Customers' open dialogs in the database: what a Redis restarted empty no longer has.

The bot's dialog store (`bot.dialogs.store.DurableDialogStore`) writes each changed
dialog here as well as to Redis, and reads here when Redis misses or is down. The
payload is the store's own JSON: the shop does not read it. Each function leaves the
commit to the caller. The writes take a plain (sync) connection: the store hands them to
the intake journal's group commit (`bot.wechat.intake.WriteBatcher`), so the dialog
changes of concurrent turns share one transaction with their claims and replies. That
connection is outside a turn's fence (`commerce.messaging.inbound.fenced`): a dialog's
step is state that any run of the turn writes the same way, not an effect that marks its
message as done.

A dialog past its `keep_until` is never read again; `prune_expired` deletes such rows a
bounded batch at a time (the `prune_dialogs` job).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.db import rowcount, upsert_insert
from commerce.messaging.models import DialogState
from commerce.orm import utcnow


async def load_dialog(session: AsyncSession, key: str, *, now: datetime) -> str | None:
    """The payload kept under `key`, unless it is past keeping."""
    return await session.scalar(
        select(DialogState.payload).where(DialogState.key == key, DialogState.keep_until > now)
    )


def save_dialog(conn: Connection, key: str, payload: str, *, keep_until: datetime) -> None:
    """Insert or replace in one statement (two workers may write one customer's dialog)."""
    values = {"payload": payload, "keep_until": keep_until, "updated_at": utcnow()}
    conn.execute(
        upsert_insert(conn, DialogState)
        .values(key=key, **values)
        .on_conflict_do_update(index_elements=[DialogState.key], set_=values)
    )


def forget_dialog(conn: Connection, key: str) -> None:
    conn.execute(delete(DialogState).where(DialogState.key == key))



PRUNE_BATCH = 500


async def prune_expired(session: AsyncSession, *, now: datetime, limit: int = PRUNE_BATCH) -> int:
    """Delete up to `limit` dialogs past keeping (by the `keep_until` index); how many."""
    keys = list(
        (await session.scalars(select(DialogState.key).where(DialogState.keep_until <= now).limit(limit))).all()
    )
    if not keys:
        return 0
    stale = delete(DialogState).where(DialogState.key.in_(keys), DialogState.keep_until <= now)
    return rowcount(await session.execute(stale))  # a dialog saved again meanwhile stays

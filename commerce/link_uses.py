"""One-time links: the first use of a link id is recorded, every later use is refused.

`use_once` is an INSERT whose primary key decides, not a read then a write: of two
transactions using the same link at the same moment exactly one inserts the row
(PostgreSQL makes the second wait for the first and then skip the conflicting row;
SQLite makes the second writer wait for the first's commit). A read cannot decide: two
readers both see no row, and on SQLite reads before a transaction's first write are not
even part of it. `is_used` is only a cheap early refusal before costly work. The row is
written in the caller's transaction, so it is kept only with what the use did (an
export's audit row): a use that fails and rolls back leaves the link usable.

A row is only needed while its link could still be opened; a successful use also
deletes a bounded batch of rows whose links expired more than `KEEP_AFTER_EXPIRY` ago
(the margin covers workers whose clocks disagree). Nothing here commits.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.db import rowcount, upsert_insert
from commerce.rules import as_utc
from commerce.system_models import LinkUse

KEEP_AFTER_EXPIRY = timedelta(hours=1)
PURGE_BATCH = 100


async def use_once(
    session: AsyncSession, *, link_id: str, kind: str, expires_at: datetime, now: datetime
) -> bool:
    """Record the use of `link_id`; False (and nothing written) when it was used before.

    This is the decision; the caller then writes what the use did in the same transaction.
    """
    inserted = await session.scalar(
        upsert_insert(session, LinkUse)
        .values(link_id=link_id, kind=kind, used_at=as_utc(now), expires_at=as_utc(expires_at))
        .on_conflict_do_nothing(index_elements=[LinkUse.link_id])
        .returning(LinkUse.link_id)
    )
    if inserted is None:
        return False
    await purge_expired(session, now=now)
    return True


async def is_used(session: AsyncSession, *, link_id: str) -> bool:
    """Whether `link_id` was used already: an early refusal, never the decision (`use_once`)."""
    return await session.scalar(select(LinkUse.link_id).where(LinkUse.link_id == link_id)) is not None


async def purge_expired(session: AsyncSession, *, now: datetime, limit: int = PURGE_BATCH) -> int:
    """Delete up to `limit` rows of links that expired before ``now - KEEP_AFTER_EXPIRY``.

    Rows another transaction is deleting are skipped (PostgreSQL), never waited for.
    """
    stale = (
        select(LinkUse.link_id)
        .where(LinkUse.expires_at < as_utc(now) - KEEP_AFTER_EXPIRY)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        delete(LinkUse).where(LinkUse.link_id.in_(stale)).execution_options(synchronize_session=False)
    )
    return rowcount(result)

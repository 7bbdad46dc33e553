"""Secrets made once per install: random, kept in the database, the same for every worker.

A shop that names no `server.secret_key` or sandbox notify secret still must not use a
value anyone can read in our source code: the first start makes one at random and every
later start (and every other worker) reads that one. The insert decides who wins when
two workers start at once: it does nothing on conflict, and everyone reads the row after.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.db import upsert_insert
from commerce.orm import utcnow
from commerce.system_models import InstallSecret

NAMES = ("link_key", "sandbox_notify")


async def install_secret(session: AsyncSession, *, name: str) -> str:
    """The install's secret called `name`, made now (256 random bits) if it has none yet."""
    if name not in NAMES:
        raise ValueError(f"unknown install secret {name!r}")
    await session.execute(
        upsert_insert(session, InstallSecret)
        .values(name=name, value=secrets.token_urlsafe(32), created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["name"])
    )
    return (await session.execute(select(InstallSecret.value).where(InstallSecret.name == name))).scalar_one()

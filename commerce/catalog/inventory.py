"""Stock: the only module that changes `variants.stock`.

Each change is one conditional UPDATE, so no read-modify-write race can oversell: a
reservation succeeds only when the row still has the stock, whatever other workers
did since the caller last looked. The CHECK constraint (stock >= 0) is the last net.
Every change publishes `CatalogChanged(variant_ids=...)`, which the catalog in memory ignores:
it holds no stock, a list or a card reads it when shown.
Callers reserving several variants do so in ascending variant id order (no deadlocks
on PostgreSQL). Nothing here commits.
"""

from __future__ import annotations

from sqlalchemy import Update, func, literal_column, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.catalog.models import Variant
from commerce.db import rowcount
from commerce.events import CatalogChanged, publish


async def reserve(session: AsyncSession, *, variant_id: int, quantity: int) -> bool:
    """Take `quantity` units; False (and nothing changed) when there are not enough."""
    if quantity <= 0:
        raise ValueError(f"quantity must be positive, got {quantity}")
    result = await session.execute(
        update(Variant)
        .where(Variant.id == variant_id, Variant.stock >= quantity)
        .values(stock=Variant.stock - quantity)
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) != 1:
        return False
    await publish(session, CatalogChanged(variant_ids=(variant_id,)))
    return True


async def reserve_then(session: AsyncSession, *, variant_id: int, quantity: int, then: Update) -> tuple[bool, bool]:
    """`reserve`, and only when the units were taken, `then`: a conditional UPDATE of one more
    contended row (a flash sale's count). Returns (units taken, `then` changed its row); the
    caller rolls back a transaction whose `then` did not (the units stay taken in it).

    On PostgreSQL one statement (`then` as a data-modifying CTE after the stock's): one round
    trip while holding both rows, which every winner of a flash sale writes, right before the
    commit. The stock's row is locked first, as `reserve` alone locks it."""
    if quantity <= 0:
        raise ValueError(f"quantity must be positive, got {quantity}")
    take = (
        update(Variant)
        .where(Variant.id == variant_id, Variant.stock >= quantity)
        .values(stock=Variant.stock - quantity)
    )
    if session.get_bind().dialect.name == "postgresql":
        taken = take.returning(literal_column("1").label("one")).cte("taken")
        then_cte = then.where(select(taken.c.one).exists()).returning(literal_column("1").label("one")).cte("counted")
        counts = select(
            select(func.count()).select_from(taken).scalar_subquery(),
            select(func.count()).select_from(then_cte).scalar_subquery(),
        )
        took, changed = (await session.execute(counts)).one()
        both = (bool(took), bool(changed))
    else:
        if rowcount(await session.execute(take.execution_options(synchronize_session=False))) != 1:
            return False, False
        both = (True, rowcount(await session.execute(then.execution_options(synchronize_session=False))) == 1)
    if both[0]:
        await publish(session, CatalogChanged(variant_ids=(variant_id,)))
    return both


async def release(session: AsyncSession, *, variant_id: int, quantity: int) -> None:
    """Give `quantity` units back (a cancelled, expired or refunded-before-shipping order)."""
    if quantity <= 0:
        raise ValueError(f"quantity must be positive, got {quantity}")
    await session.execute(
        update(Variant)
        .where(Variant.id == variant_id)
        .values(stock=Variant.stock + quantity)
        .execution_options(synchronize_session=False)
    )
    await publish(session, CatalogChanged(variant_ids=(variant_id,)))

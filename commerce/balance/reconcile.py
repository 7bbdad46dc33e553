"""The nightly reconciliation: the ledger's sums against the accounts' balances.

Three checks, each a query (nothing is changed): every account's `balance_fen` equals the
sum of its entries; every movement's entries sum to zero; all balances together sum to
zero. A difference means a bug or a hand edit of the database; staff are alerted with
what differs (`scheduler.jobs`), and nothing is "fixed" by code.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.balance.models import BalanceAccount, BalanceEntry, BalanceMovement

LIMIT = 20  # differences named in one alert


@dataclass(frozen=True, slots=True)
class Difference:
    what: str  # "account" | "movement" | "total"
    ref: int  # the account's or movement's id (0 for the total)
    customer_id: int
    kind: str  # the account's kind, the movement's reason
    expected_fen: int  # the entries' sum (an account), 0 (a movement, the total)
    found_fen: int  # the account's balance (an account), the entries' sum (a movement, the total)


async def find_differences(session: AsyncSession, *, limit: int = LIMIT) -> list[Difference]:
    sums = (
        select(BalanceEntry.account_id, func.sum(BalanceEntry.amount_fen).label("total"))
        .group_by(BalanceEntry.account_id)
        .subquery()
    )
    entries_sum = func.coalesce(sums.c.total, 0)
    accounts = await session.execute(
        select(
            BalanceAccount.id,
            BalanceAccount.customer_id,
            BalanceAccount.kind,
            BalanceAccount.balance_fen,
            entries_sum,
        )
        .outerjoin(sums, sums.c.account_id == BalanceAccount.id)
        .where(BalanceAccount.balance_fen != entries_sum)
        .order_by(BalanceAccount.id)
        .limit(limit)
    )
    found = [Difference("account", a, c, k, int(e), int(b)) for a, c, k, b, e in accounts.all()]
    movements = await session.execute(
        select(
            BalanceMovement.id,
            BalanceMovement.customer_id,
            BalanceMovement.reason,
            func.sum(BalanceEntry.amount_fen),
        )
        .join(BalanceEntry, BalanceEntry.movement_id == BalanceMovement.id)
        .group_by(BalanceMovement.id, BalanceMovement.customer_id, BalanceMovement.reason)
        .having(func.sum(BalanceEntry.amount_fen) != 0)
        .order_by(BalanceMovement.id)
        .limit(limit)
    )
    found += [Difference("movement", m, c, r, 0, int(s)) for m, c, r, s in movements.all()]
    total = int(
        await session.scalar(select(func.coalesce(func.sum(BalanceAccount.balance_fen), 0))) or 0
    )
    if total != 0:
        found.append(Difference("total", 0, 0, "", 0, total))
    return found

"""The stored-balance ledger in the database: accounts, movements and their entries.

`apply` writes each planned movement (`commerce.balance.calculations`) as a movement row
and two entries, and changes both accounts' `balance_fen` by the same amounts in the same
statement batch, inside the caller's transaction. `lock` serialises work on one customer's
money (a no-op UPDATE of their accounts, as `commerce.orders.rows.lock_order` does for an
order), so plan-then-apply is safe against a concurrent copy; the CHECK on the accounts
refuses any write that would take a customer-side balance below zero anyway.
Nothing here commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.balance.calculations import Move
from commerce.balance.models import AccountKind, BalanceAccount, BalanceEntry, BalanceMovement
from commerce.db import upsert_insert
from commerce.rules import utcnow

K = AccountKind


@dataclass(frozen=True, slots=True)
class Balances:
    """A customer's stored balance: `balance_fen` is what they can spend (cash + bonus),
    `bonus_fen` the part of it from top-up plans (not withdrawable), `held_fen` what
    unpaid orders hold, `withdrawing_fen` what waits for staff."""

    cash_fen: int = 0
    bonus_fen: int = 0
    held_fen: int = 0
    withdrawing_fen: int = 0

    @property
    def balance_fen(self) -> int:
        return self.cash_fen + self.bonus_fen


async def _ensure_accounts(session: AsyncSession, customer_id: int) -> None:
    now = utcnow()
    await session.execute(
        upsert_insert(session, BalanceAccount)
        .values(
            [
                {"customer_id": customer_id, "kind": k.value, "balance_fen": 0, "updated_at": now}
                for k in K
            ]
        )
        .on_conflict_do_nothing()
    )


async def lock(session: AsyncSession, customer_id: int) -> dict[AccountKind, int]:
    """Take the customer's accounts (created on first use) for this transaction; their
    balances by kind."""
    await _ensure_accounts(session, customer_id)
    await session.execute(
        update(BalanceAccount)
        .where(BalanceAccount.customer_id == customer_id)
        .values(balance_fen=BalanceAccount.balance_fen)
        .execution_options(synchronize_session=False)
    )
    return await account_balances(session, customer_id)


async def account_balances(session: AsyncSession, customer_id: int) -> dict[AccountKind, int]:
    """Every account of the customer's, by kind (0 for one not created yet)."""
    rows = await session.execute(
        select(BalanceAccount.kind, BalanceAccount.balance_fen).where(
            BalanceAccount.customer_id == customer_id
        )
    )
    found = {K(kind): int(fen) for kind, fen in rows.all()}
    return {k: found.get(k, 0) for k in K}


async def balance_of(session: AsyncSession, customer_id: int) -> Balances:
    """What 我的 and 余额 show; reads only (no accounts are created)."""
    b = await account_balances(session, customer_id)
    return Balances(
        cash_fen=b[K.CASH],
        bonus_fen=b[K.BONUS],
        held_fen=b[K.HELD_CASH] + b[K.HELD_BONUS],
        withdrawing_fen=b[K.WITHDRAWING],
    )


async def apply(
    session: AsyncSession,
    *,
    customer_id: int,
    moves: Iterable[Move],
    reason: str,
    order_id: int | None = None,
    topup_id: int | None = None,
    withdrawal_id: int | None = None,
    ref: str = "",
    now: datetime | None = None,
) -> int:
    """Write the movements (the caller holds `lock`); how many were written."""
    now = now or utcnow()
    ids = {
        K(kind): account_id
        for kind, account_id in (
            await session.execute(
                select(BalanceAccount.kind, BalanceAccount.id).where(
                    BalanceAccount.customer_id == customer_id
                )
            )
        ).all()
    }
    count = 0
    for move in moves:
        if move.amount_fen <= 0:
            raise ValueError("a movement moves a positive amount")
        movement_id = (
            await session.execute(
                upsert_insert(session, BalanceMovement)
                .values(
                    customer_id=customer_id,
                    reason=reason,
                    amount_fen=move.amount_fen,
                    order_id=order_id,
                    topup_id=topup_id,
                    withdrawal_id=withdrawal_id,
                    ref=ref[:40],
                    created_at=now,
                )
                .returning(BalanceMovement.id)
            )
        ).scalar_one()
        for kind, delta in ((move.src, -move.amount_fen), (move.dst, move.amount_fen)):
            await session.execute(
                upsert_insert(session, BalanceEntry).values(
                    movement_id=movement_id, account_id=ids[kind], amount_fen=delta
                )
            )
            await session.execute(
                update(BalanceAccount)
                .where(BalanceAccount.id == ids[kind])
                .values(balance_fen=BalanceAccount.balance_fen + delta, updated_at=now)
                .execution_options(synchronize_session=False)
            )
        count += 1
    return count

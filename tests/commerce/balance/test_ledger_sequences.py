"""The ledger in the database under random sequences (hypothesis, on SQLite and
PostgreSQL): whatever top-ups, holds, releases, captures, refunds and withdrawals are
applied through `commerce.balance.ledger`, the accounts equal an in-memory book, every
customer-side balance stays at zero or more, and the reconciliation finds nothing."""

from __future__ import annotations

import asyncio
import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from commerce.balance import calculations as calc
from commerce.balance import ledger, reconcile
from commerce.balance.calculations import HoldShare, Move, NotEnoughBalance
from commerce.balance.models import SHOP_SIDE, AccountKind
from commerce.customers.models import Customer
from commerce.db import create_engine
from commerce.wiring import shop_sessions
from tests.commerce.balance.test_calculations import Book, step

K = AccountKind
_openids = itertools.count(1)


def plan(steps: list[tuple[str, int, int]]) -> tuple[Book, list[tuple[str, list[Move]]]]:
    """The movements the steps make (as the use cases plan them), and the book after them."""
    book, planned = Book(), []
    held: list[HoldShare] = []
    captured: list[HoldShare] = []
    for kind, a, b in steps:
        moves: list[Move] = []
        if kind == "topup":
            moves = calc.topup_moves(pay_fen=a, bonus_fen=b)
        elif kind == "hold":
            try:
                share, moves = calc.hold_moves(
                    a, cash_fen=book.accounts[K.CASH], bonus_fen=book.accounts[K.BONUS]
                )
            except NotEnoughBalance:
                continue
            held.append(share)
        elif kind in ("release", "capture") and held:
            share = held.pop(a % len(held))
            moves = calc.release_moves(share) if kind == "release" else calc.capture_moves(share)
            if kind == "capture":
                captured.append(share)
        elif kind == "refund" and captured:
            index = a % len(captured)
            left = captured[index].total_fen - captured[index].refunded_fen
            if left:
                captured[index], moves = calc.refund_moves(captured[index], min(b, left))
        elif kind == "withdraw":
            try:
                moves = calc.withdraw_moves(a, cash_fen=book.accounts[K.CASH])
            except NotEnoughBalance:
                continue
            moves = moves + calc.withdrawal_decided_moves(a, paid=bool(b))
        if moves:
            book.apply(moves)
            planned.append((kind, moves))
    return book, planned


async def run(
    url: str, planned: list[tuple[str, list[Move]]]
) -> tuple[dict[AccountKind, int], list[object]]:
    engine = create_engine(url)
    try:
        sessions = shop_sessions(engine)
        async with sessions() as session, session.begin():
            customer = Customer(openid=f"o_seq_{next(_openids)}", locale="zh")
            session.add(customer)
            await session.flush()
            customer_id = customer.id
        for reason, moves in planned:  # one transaction per use case, as in the shop
            async with sessions() as session, session.begin():
                await ledger.lock(session, customer_id)
                await ledger.apply(session, customer_id=customer_id, moves=moves, reason=reason)
        async with sessions() as session:
            await ledger.lock(session, customer_id)
            balances = await ledger.account_balances(session, customer_id)
            assert await session.scalar(select(Customer.id).where(Customer.id == customer_id))
            return balances, list(await reconcile.find_differences(session))
    finally:
        await engine.dispose()


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(step, max_size=14))
def test_random_sequences_in_the_database_match_the_book_and_reconcile(
    db_url: str, steps: list
) -> None:
    book, planned = plan(steps)
    balances, differences = asyncio.run(run(db_url, planned))
    assert differences == []
    assert {k: balances[k] for k in K} == {k: book.accounts[k] for k in K}
    assert all(balances[k] >= 0 for k in K if k not in SHOP_SIDE)

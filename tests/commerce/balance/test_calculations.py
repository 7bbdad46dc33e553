"""The stored-balance arithmetic as properties (no database): any sequence of top-ups,
holds, releases, captures, refunds and withdrawals keeps every movement and the whole
ledger summing to zero, no customer-side account below zero, and bonus never withdrawn;
the split rules end exactly where they must."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commerce.balance import calculations as calc
from commerce.balance.calculations import HoldShare, Move, NotEnoughBalance
from commerce.balance.models import SHOP_SIDE, AccountKind
from commerce.payments.refunds import balance_share

K = AccountKind


class Book:
    """An in-memory ledger that applies planned movements as `commerce.balance.ledger` does."""

    def __init__(self) -> None:
        self.accounts: Counter[AccountKind] = Counter()
        self.movements: list[Move] = []

    def apply(self, moves: list[Move]) -> None:
        for m in moves:
            assert m.amount_fen > 0 and m.src != m.dst
            self.accounts[m.src] -= m.amount_fen
            self.accounts[m.dst] += m.amount_fen
            self.movements.append(m)

    def check(self) -> None:
        assert sum(self.accounts.values()) == 0
        for kind in K:
            if kind not in SHOP_SIDE:
                assert self.accounts[kind] >= 0, (kind, self.accounts)


step = st.one_of(
    st.tuples(st.just("topup"), st.integers(1, 100_000), st.integers(0, 20_000)),
    st.tuples(st.just("hold"), st.integers(1, 50_000), st.just(0)),
    st.tuples(st.just("release"), st.integers(0, 10), st.just(0)),
    st.tuples(st.just("capture"), st.integers(0, 10), st.just(0)),
    st.tuples(st.just("refund"), st.integers(0, 10), st.integers(1, 50_000)),
    st.tuples(st.just("withdraw"), st.integers(1, 100_000), st.booleans().map(int)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(step, max_size=40))
def test_any_sequence_keeps_the_ledger_balanced_and_nothing_negative(
    steps: list[tuple[str, int, int]],
) -> None:
    book = Book()
    held: list[HoldShare] = []  # unpaid orders' holds
    captured: list[HoldShare] = []  # paid orders' balance parts (refunds come back from them)
    bonus_given = 0
    for kind, a, b in steps:
        if kind == "topup":
            book.apply(calc.topup_moves(pay_fen=a, bonus_fen=b))
            bonus_given += b
        elif kind == "hold":
            try:
                share, moves = calc.hold_moves(
                    a, cash_fen=book.accounts[K.CASH], bonus_fen=book.accounts[K.BONUS]
                )
            except NotEnoughBalance:
                assert a > book.accounts[K.CASH] + book.accounts[K.BONUS]
                continue
            assert share.total_fen == a
            book.apply(moves)
            held.append(share)
        elif kind in ("release", "capture") and held:
            share = held.pop(a % len(held))
            if kind == "release":
                book.apply(calc.release_moves(share))
            else:
                book.apply(calc.capture_moves(share))
                captured.append(share)
        elif kind == "refund" and captured:
            index = a % len(captured)
            share = captured[index]
            left = share.total_fen - share.refunded_fen
            if left == 0:
                continue
            after, moves = calc.refund_moves(share, min(b, left))
            book.apply(moves)
            captured[index] = after
        elif kind == "withdraw":
            try:
                moves = calc.withdraw_moves(a, cash_fen=book.accounts[K.CASH])
            except NotEnoughBalance:
                continue
            book.apply(moves)
            book.apply(calc.withdrawal_decided_moves(a, paid=bool(b)))
        book.check()
    # bonus is only ever held for an order (then spent or given back), never withdrawn
    assert -book.accounts[K.PROMOTION] == bonus_given
    assert all(m.dst == K.HELD_BONUS for m in book.movements if m.src == K.BONUS)
    assert all(m.src == K.CASH for m in book.movements if m.dst == K.WITHDRAWING)


@given(st.integers(1, 10**7), st.integers(0, 10**7), st.integers(0, 10**7))
def test_spending_takes_bonus_in_proportion_rounded_down(
    amount: int, cash: int, bonus: int
) -> None:
    if amount > cash + bonus:
        with pytest.raises(NotEnoughBalance):
            calc.spend_split(amount, cash_fen=cash, bonus_fen=bonus)
        return
    c, b = calc.spend_split(amount, cash_fen=cash, bonus_fen=bonus)
    assert c + b == amount and 0 <= c <= cash and 0 <= b <= bonus
    assert b == amount * bonus // (cash + bonus)


def test_a_top_up_of_100_with_10_bonus_spends_one_eleventh_bonus() -> None:
    assert calc.spend_split(1100, cash_fen=10000, bonus_fen=1000) == (1000, 100)


refund_plan = st.integers(1, 100_000).flatmap(
    lambda paid: st.tuples(
        st.just(paid),
        st.integers(0, paid),
        st.lists(st.tuples(st.integers(1, paid), st.booleans()), max_size=12),
    )
)


@settings(max_examples=300, deadline=None)
@given(refund_plan)
def test_partial_refunds_split_between_balance_and_provider_and_end_exactly(
    plan: tuple[int, int, list[tuple[int, bool]]],
) -> None:
    """Any partial refunds (some failing) never give back more of either part than it paid,
    and refunding all that is left ends with each part exactly given back."""
    paid, balance, asks = plan
    done, done_balance = 0, 0
    for amount, fails in asks:
        amount = min(amount, paid - done)
        if amount == 0:
            break
        share = balance_share(
            paid_fen=paid,
            balance_fen=balance,
            refunded_before_fen=done,
            balance_refunded_before_fen=done_balance,
            amount_fen=amount,
        )
        assert 0 <= share <= amount
        assert done_balance + share <= balance
        assert (done - done_balance) + (amount - share) <= paid - balance
        if not fails:
            done, done_balance = done + amount, done_balance + share
    if done < paid:
        last = balance_share(
            paid_fen=paid,
            balance_fen=balance,
            refunded_before_fen=done,
            balance_refunded_before_fen=done_balance,
            amount_fen=paid - done,
        )
        done, done_balance = paid, done_balance + last
    assert (done, done_balance) == (paid, balance)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 50_000), st.integers(0, 50_000), st.lists(st.integers(1, 50_000), max_size=10)
)
def test_balance_refunds_go_back_to_cash_and_bonus_as_they_were_spent(
    cash: int, bonus: int, amounts: list[int]
) -> None:
    if cash + bonus == 0:
        return
    share = HoldShare(cash, bonus)
    for amount in amounts:
        left = share.total_fen - share.refunded_fen
        if left == 0:
            break
        share, moves = calc.refund_moves(share, min(amount, left))
        assert share.refunded_cash_fen <= cash and share.refunded_bonus_fen <= bonus
    rest = share.total_fen - share.refunded_fen
    if rest:
        share, _ = calc.refund_moves(share, rest)
    assert (share.refunded_cash_fen, share.refunded_bonus_fen) == (cash, bonus)

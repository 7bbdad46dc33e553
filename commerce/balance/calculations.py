"""Stored balance as pure arithmetic: which movements each use case makes, and the split rules.

Nothing here touches the database: `commerce.balance.ledger` applies the movements these
functions plan, with the customer's accounts locked, so their invariants (every movement
sums to zero, no customer-side account below zero, bonus never withdrawn) are
property-tested without a database (tests/commerce/balance/test_calculations.py).

The rules, as customers and staff are told them:
- Spending (`spend_split`): an amount paid from balance takes cash and bonus in proportion
  to what the customer holds of each, the bonus part rounded down. So a customer who
  tops up 100 and receives 110 spends 10/110 of every payment from the bonus, and cannot
  spend the cash alone and then withdraw the rest with the bonus kept.
- Refunds of an order paid partly from balance (`commerce.payments.refunds.balance_share`):
  each refund gives back balance and provider money in the proportion the order was paid,
  counted on the running total, so a refund of all that is left ends exactly at the
  balance part, however the partial refunds fell.
- The balance share of a refund goes back to cash and bonus in the proportion the order's
  balance part took them (`refund_back_split`), on the running total too.
- Withdrawals take cash only; bonus is never withdrawable.
"""

from __future__ import annotations

from dataclasses import dataclass

from commerce.balance.models import AccountKind

K = AccountKind


@dataclass(frozen=True, slots=True)
class Move:
    """`amount_fen` leaves `src` and arrives in `dst` (two ledger entries)."""

    src: AccountKind
    dst: AccountKind
    amount_fen: int


@dataclass(frozen=True, slots=True)
class HoldShare:
    """What an order's balance part took of cash and bonus, and what refunds gave back."""

    cash_fen: int
    bonus_fen: int
    refunded_cash_fen: int = 0
    refunded_bonus_fen: int = 0

    @property
    def total_fen(self) -> int:
        return self.cash_fen + self.bonus_fen

    @property
    def refunded_fen(self) -> int:
        return self.refunded_cash_fen + self.refunded_bonus_fen


class NotEnoughBalance(ValueError):
    """Asked to spend or withdraw more than there is."""


def _moves(*moves: Move) -> list[Move]:
    return [m for m in moves if m.amount_fen > 0]


def topup_moves(*, pay_fen: int, bonus_fen: int) -> list[Move]:
    """A paid top-up: the money paid into cash, the plan's bonus into bonus."""
    if pay_fen <= 0 or bonus_fen < 0:
        raise ValueError("a top-up pays a positive amount and a bonus of zero or more")
    return _moves(Move(K.FUNDING, K.CASH, pay_fen), Move(K.PROMOTION, K.BONUS, bonus_fen))


def spend_split(amount_fen: int, *, cash_fen: int, bonus_fen: int) -> tuple[int, int]:
    """(cash part, bonus part) of spending `amount_fen`: bonus in proportion, rounded down."""
    if amount_fen <= 0:
        raise ValueError("spend a positive amount")
    if amount_fen > cash_fen + bonus_fen:
        raise NotEnoughBalance(amount_fen)
    bonus = amount_fen * bonus_fen // (cash_fen + bonus_fen)
    return amount_fen - bonus, bonus


def hold_moves(amount_fen: int, *, cash_fen: int, bonus_fen: int) -> tuple[HoldShare, list[Move]]:
    cash, bonus = spend_split(amount_fen, cash_fen=cash_fen, bonus_fen=bonus_fen)
    return HoldShare(cash, bonus), _moves(
        Move(K.CASH, K.HELD_CASH, cash), Move(K.BONUS, K.HELD_BONUS, bonus)
    )


def release_moves(hold: HoldShare) -> list[Move]:
    """An unpaid order closed: what it held goes back where it came from."""
    return _moves(
        Move(K.HELD_CASH, K.CASH, hold.cash_fen), Move(K.HELD_BONUS, K.BONUS, hold.bonus_fen)
    )


def capture_moves(hold: HoldShare) -> list[Move]:
    """The order is paid: what it held is spent (the shop's sales)."""
    return _moves(
        Move(K.HELD_CASH, K.SALES, hold.cash_fen), Move(K.HELD_BONUS, K.SALES, hold.bonus_fen)
    )


def refund_back_split(hold: HoldShare, amount_fen: int) -> tuple[int, int]:
    """(cash, bonus) that a balance refund of `amount_fen` gives back to the order's payer."""
    if not 0 < amount_fen <= hold.total_fen - hold.refunded_fen:
        raise ValueError("refund within what the order's balance part took")
    target = hold.bonus_fen * (hold.refunded_fen + amount_fen) // hold.total_fen
    bonus_left = hold.bonus_fen - hold.refunded_bonus_fen
    cash_left = hold.cash_fen - hold.refunded_cash_fen
    bonus = min(max(target - hold.refunded_bonus_fen, 0), amount_fen, bonus_left)
    bonus = max(bonus, amount_fen - cash_left)
    return amount_fen - bonus, bonus


def refund_moves(hold: HoldShare, amount_fen: int) -> tuple[HoldShare, list[Move]]:
    cash, bonus = refund_back_split(hold, amount_fen)
    after = HoldShare(
        hold.cash_fen,
        hold.bonus_fen,
        hold.refunded_cash_fen + cash,
        hold.refunded_bonus_fen + bonus,
    )
    return after, _moves(Move(K.SALES, K.CASH, cash), Move(K.SALES, K.BONUS, bonus))


def withdraw_moves(amount_fen: int, *, cash_fen: int) -> list[Move]:
    """Cash asked back: set apart until staff decide."""
    if amount_fen <= 0:
        raise ValueError("withdraw a positive amount")
    if amount_fen > cash_fen:
        raise NotEnoughBalance(amount_fen)
    return [Move(K.CASH, K.WITHDRAWING, amount_fen)]


def withdrawal_decided_moves(amount_fen: int, *, paid: bool) -> list[Move]:
    """Staff transferred it (out of the shop's funding) or refused it (back to cash)."""
    return [Move(K.WITHDRAWING, K.FUNDING if paid else K.CASH, amount_fen)]

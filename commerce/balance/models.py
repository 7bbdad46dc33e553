"""Stored-balance models: accounts, the double-entry ledger, top-up plans and top-ups,
order holds and withdrawals. Money is integer fen.

Every customer has up to eight accounts (created on first use). Five are the customer's
side and can never go below zero (a CHECK says so, whatever the code does): `cash`
(topped-up money, withdrawable), `bonus` (what top-up plans gave, spendable only),
`held_cash` / `held_bonus` (held for unpaid orders) and `withdrawing` (cash asked back,
waiting for staff). Three are the shop's side of that customer's money and go negative as
the shop owes more: `funding` (money in from payment providers, out by transfers),
`promotion` (bonus given) and `sales` (balance spent on orders, less refunds). The shop's
side is kept per customer so that no single row is locked by every payment.

A movement takes `amount_fen` from one account to another: two `BalanceEntry` rows
(-amount, +amount) and both accounts' `balance_fen` changed in the same transaction.
So every movement sums to zero, every account's balance is the sum of its entries, and
all balances together sum to zero: the nightly reconciliation checks all three.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from commerce.orm import Base, utcnow


class AccountKind(enum.StrEnum):
    CASH = "cash"
    BONUS = "bonus"
    HELD_CASH = "held_cash"
    HELD_BONUS = "held_bonus"
    WITHDRAWING = "withdrawing"
    FUNDING = "funding"
    PROMOTION = "promotion"
    SALES = "sales"


SHOP_SIDE = frozenset({AccountKind.FUNDING, AccountKind.PROMOTION, AccountKind.SALES})


class BalanceAccount(Base):
    __tablename__ = "balance_accounts"
    __table_args__ = (
        UniqueConstraint("customer_id", "kind"),
        CheckConstraint(
            "kind IN ('funding', 'promotion', 'sales') OR balance_fen >= 0",
            name="customer_side_not_negative",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    balance_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class BalanceMovement(Base):
    """Why money moved: one row per movement, its two entries below."""

    __tablename__ = "balance_movements"
    __table_args__ = (CheckConstraint("amount_fen > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    # topup | topup_bonus | hold | release | capture | refund | withdraw | withdraw_paid | withdraw_back
    reason: Mapped[str] = mapped_column(String(16))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), nullable=True, index=True)
    topup_id: Mapped[int | None] = mapped_column(
        ForeignKey("balance_topups.id"), nullable=True, index=True
    )
    withdrawal_id: Mapped[int | None] = mapped_column(
        ForeignKey("balance_withdrawals.id"), nullable=True, index=True
    )
    ref: Mapped[str] = mapped_column(String(40), default="")  # e.g. the refund number
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class BalanceEntry(Base):
    """One side of a movement: a signed amount on one account (the pair sums to zero)."""

    __tablename__ = "balance_entries"
    __table_args__ = (CheckConstraint("amount_fen <> 0", name="amount_not_zero"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    movement_id: Mapped[int] = mapped_column(ForeignKey("balance_movements.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("balance_accounts.id"), index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)


class TopUpPlan(Base):
    """ "Pay 100 get 110": pay `pay_fen`, receive `bonus_fen` more (staff edit them: /topup)."""

    __tablename__ = "topup_plans"
    __table_args__ = (
        CheckConstraint("pay_fen > 0", name="pay_positive"),
        CheckConstraint("bonus_fen >= 0", name="bonus_not_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pay_fen: Mapped[int] = mapped_column(BigInteger, unique=True)
    bonus_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TopUpStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its payment
    CREDITED = "credited"  # paid and credited (once)


class TopUp(Base):
    """A top-up the customer chose: paid through the payment service under `topup_no`
    (the provider's order number), credited once when its payment is recorded."""

    __tablename__ = "balance_topups"
    __table_args__ = (CheckConstraint("pay_fen > 0", name="pay_positive"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    topup_no: Mapped[str] = mapped_column(String(32), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    pay_fen: Mapped[int] = mapped_column(BigInteger)
    bonus_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16), default=TopUpStatus.PENDING.value)
    provider: Mapped[str] = mapped_column(String(20), default="")
    transaction_id: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    credited_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class HoldStatus(enum.StrEnum):
    HELD = "held"
    CAPTURED = "captured"
    RELEASED = "released"


class BalanceHold(Base):
    """The part of an order paid from balance: held while the order is unpaid, captured
    when it is paid, released when it is cancelled; refunds give back `refunded_*`."""

    __tablename__ = "balance_holds"
    __table_args__ = (
        CheckConstraint(
            "cash_fen >= 0 AND bonus_fen >= 0 AND cash_fen + bonus_fen > 0", name="amount_positive"
        ),
        CheckConstraint(
            "refunded_cash_fen >= 0 AND refunded_cash_fen <= cash_fen "
            "AND refunded_bonus_fen >= 0 AND refunded_bonus_fen <= bonus_fen",
            name="refund_within_hold",
        ),
    )

    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    cash_fen: Mapped[int] = mapped_column(BigInteger)
    bonus_fen: Mapped[int] = mapped_column(BigInteger)
    refunded_cash_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_bonus_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16), default=HoldStatus.HELD.value)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class BalanceWithdrawalStatus(enum.StrEnum):
    PENDING = "pending"
    PAID = "paid"
    REJECTED = "rejected"


class BalanceWithdrawal(Base):
    """Cash balance asked back (bonus never is): staff transfer it by hand and approve
    with the transfer's reference, or reject it (the cash goes back to the balance)."""

    __tablename__ = "balance_withdrawals"
    __table_args__ = (CheckConstraint("amount_fen > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default=BalanceWithdrawalStatus.PENDING.value)
    decided_by: Mapped[str] = mapped_column(String(64), default="")
    transfer_ref: Mapped[str] = mapped_column(String(64), default="")
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

"""Referrals models (tables and their enums); `commerce.models` gathers every model for Alembic."""

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


class CommissionStatus(enum.StrEnum):
    FROZEN = "frozen"  # until the order completed and its return window passed
    AVAILABLE = "available"
    REVERSED = "reversed"  # the whole order was refunded



class Commission(Base):
    """What a referrer earns on one paid order of a referred customer (floored to the fen)."""

    __tablename__ = "commissions"
    __table_args__ = (
        UniqueConstraint("order_id"),
        CheckConstraint("amount_fen >= 0", name="amount_not_negative"),
        CheckConstraint("reversed_fen >= 0 AND reversed_fen <= amount_fen", name="reversed_within_amount"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    referrer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    base_fen: Mapped[int] = mapped_column(BigInteger)  # the order's paid amount it was computed on
    rate_bp: Mapped[int] = mapped_column(Integer)  # basis points: 500 = 5%
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    reversed_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16), default=CommissionStatus.FROZEN.value)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    available_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)



class WithdrawalStatus(enum.StrEnum):
    PENDING = "pending"  # asked by the customer, waiting for staff
    PAID = "paid"  # approved by staff, who made the transfer by hand (reference recorded)
    REJECTED = "rejected"



class Withdrawal(Base):
    __tablename__ = "withdrawals"
    __table_args__ = (CheckConstraint("amount_fen > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default=WithdrawalStatus.PENDING.value)
    decided_by: Mapped[str] = mapped_column(String(64), default="")
    transfer_ref: Mapped[str] = mapped_column(String(64), default="")
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)



class CommissionEntry(Base):
    """The commission ledger: every movement between frozen, available, withdrawing and paid out.

    A customer's balances are the sums of the deltas; rows are only ever added.
    """

    __tablename__ = "commission_ledger"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))  # earned | unfrozen | reversed | withdrawal_* ...
    commission_id: Mapped[int | None] = mapped_column(ForeignKey("commissions.id"), nullable=True, index=True)
    withdrawal_id: Mapped[int | None] = mapped_column(ForeignKey("withdrawals.id"), nullable=True, index=True)
    frozen_delta: Mapped[int] = mapped_column(BigInteger, default=0)
    available_delta: Mapped[int] = mapped_column(BigInteger, default=0)
    withdrawing_delta: Mapped[int] = mapped_column(BigInteger, default=0)
    paid_out_delta: Mapped[int] = mapped_column(BigInteger, default=0)
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


"""Loyalty models (tables and their enums); `commerce.models` gathers every model for Alembic."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    DateTime,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from commerce.orm import Base, utcnow


class PointsEntry(Base):
    """The points ledger. (customer, reason, ref) is unique, so each award or reversal happens once."""

    __tablename__ = "points_ledger"
    __table_args__ = (UniqueConstraint("customer_id", "reason", "ref"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    delta: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(24))  # purchase | share | referral | redeem | ...
    ref: Mapped[str] = mapped_column(String(64), default="")  # e.g. the order id, or "first"
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)



class CustomerBadge(Base):
    __tablename__ = "customer_badges"
    __table_args__ = (UniqueConstraint("customer_id", "badge"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    badge: Mapped[str] = mapped_column(String(32))  # first_order | first_group | five_referrals
    awarded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


"""Promotions models (tables and their enums); `commerce.models` gathers every model for Alembic."""

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
)
from sqlalchemy.orm import Mapped, mapped_column

from commerce.orm import Base, utcnow


class CouponKind(enum.StrEnum):
    AMOUNT_OFF = "amount_off"  # amount_off_fen off when the goods total reaches threshold_fen
    PERCENT_OFF = "percent_off"  # percent_off % off, at most cap_fen, above threshold_fen



class Coupon(Base):
    """A coupon definition. Customers hold issued copies (CustomerCoupon)."""

    __tablename__ = "coupons"
    __table_args__ = (
        CheckConstraint("amount_off_fen >= 0", name="amount_off_not_negative"),
        CheckConstraint("percent_off >= 0 AND percent_off < 100", name="percent_off_range"),
        CheckConstraint("issued_count >= 0", name="issued_not_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    title: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    amount_off_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    percent_off: Mapped[int] = mapped_column(Integer, default=0)
    cap_fen: Mapped[int] = mapped_column(BigInteger, default=0)  # 0: no cap
    threshold_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    valid_from: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    valid_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    per_user_limit: Mapped[int] = mapped_column(Integer, default=1)
    total_quantity: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None: unlimited
    issued_count: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)



class CustomerCouponStatus(enum.StrEnum):
    AVAILABLE = "available"
    USED = "used"  # by the order whose customer_coupon_id points here; freed again if it is cancelled



class CustomerCoupon(Base):
    __tablename__ = "customer_coupons"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    coupon_id: Mapped[int] = mapped_column(ForeignKey("coupons.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=CustomerCouponStatus.AVAILABLE.value)
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


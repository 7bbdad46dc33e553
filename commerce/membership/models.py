"""Membership models (tables); `commerce.models` gathers every model for Alembic.

What checkout needs of a member (the level's name and discount) and what the levels are
counted on (total spent) live on the customer row (`commerce.customers.models.Customer`),
written by this package, so that pricing reads them without knowing membership.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from commerce.orm import Base, utcnow


class Member(Base):
    """A customer who confirmed a phone number: one phone, one member."""

    __tablename__ = "members"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), unique=True)
    phone: Mapped[str] = mapped_column(String(11), unique=True)  # mainland mobile, 11 digits
    joined_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SmsCode(Base):
    """A one-time code sent to a phone: only its keyed hash is kept (with a salt of its own).

    Its rows are also the rate limit's memory (per phone and per customer)."""

    __tablename__ = "sms_codes"
    __table_args__ = (
        Index("ix_sms_codes_phone_sent", "phone", "sent_at"),
        Index("ix_sms_codes_customer_sent", "customer_id", "sent_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    phone: Mapped[str] = mapped_column(String(11))
    salt: Mapped[str] = mapped_column(String(32))
    code_hash: Mapped[str] = mapped_column(String(64))
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    tries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # wrong codes typed
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class MemberLevelRow(Base):
    """A level as staff set it (`/level set`); while there is none, the shop rules' levels hold."""

    __tablename__ = "member_levels"
    __table_args__ = (
        CheckConstraint("threshold_fen >= 0", name="threshold_not_negative"),
        CheckConstraint("discount_bp >= 0 AND discount_bp <= 5000", name="discount_in_range"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(16), unique=True)
    threshold_fen: Mapped[int] = mapped_column(BigInteger)
    discount_bp: Mapped[int] = mapped_column(Integer)

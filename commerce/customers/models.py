"""Customers models (tables and their enums); `commerce.models` gathers every model for Alembic."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from commerce.orm import Base, utcnow


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (
        UniqueConstraint("openid"),
        CheckConstraint("points_balance >= 0", name="points_not_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    openid: Mapped[str] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(8), nullable=True)
    subscribed: Mapped[bool] = mapped_column(default=True)
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_message_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # customer-service messages sent since last_message_at (WeChat caps them per window)
    window_sent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # the customer's last payment: WeChat opens a larger customer-service window after one
    paid_window_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # ---- referrals and points (issue 6) ----
    # the customer's own referral code (A-Z0-9, given on first need); unique when set
    referral_code: Mapped[str | None] = mapped_column(String(16), unique=True, nullable=True)
    # who referred this customer (first touch, new customers only) and until when the
    # binding earns that referrer commission
    referrer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), nullable=True, index=True)
    referred_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    referral_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # points held now; the ledger (PointsEntry) says why. Spent by conditional UPDATE.
    points_balance: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # ---- members (issue 17): written by commerce.membership, read by checkout's pricing ----
    # paid orders minus refunds, kept in the transaction of each payment and refund
    total_spent_fen: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # a member's level ("" for customers who have not confirmed a phone) and its discount
    # in basis points (200 = 2%), applied at checkout after the coupon
    member_level: Mapped[str] = mapped_column(String(16), default="", server_default="")
    member_discount_bp: Mapped[int] = mapped_column(Integer, default=0, server_default="0")



class Address(Base):
    __tablename__ = "addresses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(32))
    phone: Mapped[str] = mapped_column(String(20))
    address: Mapped[str] = mapped_column(String(200))  # the whole address, as a courier reads it
    # where it is, read from the country's divisions (commerce/customers/regions.py);
    # empty on rows kept before they were read
    province: Mapped[str] = mapped_column(String(32), default="", server_default="")
    city: Mapped[str] = mapped_column(String(32), default="", server_default="")
    district: Mapped[str] = mapped_column(String(32), default="", server_default="")
    detail: Mapped[str] = mapped_column(String(200), default="", server_default="")
    is_default: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)



class HandoffStatus:
    OPEN = "open"  # staff answer it; the customer's messages go to them
    CLOSED = "closed"  # ended by staff, by the customer, or idle


class Handoff(Base):
    """A customer asked for a human: a service ticket, with the context staff need (cart,
    last order, the recent conversation) in `context`. While it is open, what the customer
    and staff say is kept in `HandoffMessage`; `assignee` is the staff member who answered
    first (the customer's messages go to them; to every staff member on duty before)."""

    __tablename__ = "handoffs"
    __table_args__ = (Index("ix_handoffs_status_activity", "status", "last_activity_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    context: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    status: Mapped[str] = mapped_column(String(12), default=HandoffStatus.OPEN, server_default="closed")
    assignee: Mapped[str] = mapped_column(String(64), default="", server_default="")
    last_activity_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    closed_by: Mapped[str] = mapped_column(String(16), default="", server_default="")  # staff | customer | idle


class HandoffMessage(Base):
    """One line of a ticket's conversation: the customer's, or a staff member's reply."""

    __tablename__ = "handoff_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    handoff_id: Mapped[int] = mapped_column(ForeignKey("handoffs.id", ondelete="CASCADE"), index=True)
    speaker: Mapped[str] = mapped_column(String(12))  # customer | staff
    staff_openid: Mapped[str] = mapped_column(String(64), default="")
    text: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

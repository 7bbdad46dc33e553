"""Promotions models (tables and their enums); `commerce.models` gathers every model for Alembic."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
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



class FlashSaleStatus(enum.StrEnum):
    SCHEDULED = "scheduled"  # created, not started yet (customers may ask to be reminded)
    RUNNING = "running"  # opened by the scheduler at `starts_at` (reminders sent)
    ENDED = "ended"  # closed by the scheduler at `ends_at`
    CLOSED = "closed"  # closed early by staff



class FlashSale(Base):
    """秒杀: `units` of one variant at `price_fen` between `starts_at` and `ends_at`, at most
    `per_user_limit` units a customer, each unpaid unit held for `pay_minutes`.

    `held` (unpaid units) and `sold` (paid units) move only by conditional UPDATEs
    (`commerce.promotions.flash_sales`), so `sold + held <= units` whatever the rush;
    `version` grows whenever a unit changes hands other than by a grab (paid, returned,
    staff), so a gate in front of the database (Redis) knows to re-read it.
    """

    __tablename__ = "flash_sales"
    __table_args__ = (
        CheckConstraint("price_fen > 0", name="flash_price_positive"),
        CheckConstraint("units > 0", name="flash_units_positive"),
        CheckConstraint("per_user_limit > 0", name="flash_limit_positive"),
        CheckConstraint("pay_minutes > 0", name="flash_pay_minutes_positive"),
        CheckConstraint("held >= 0 AND sold >= 0 AND sold + held <= units", name="flash_units_within"),
        Index("ix_flash_sales_status_starts_at", "status", "starts_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id"), index=True)
    price_fen: Mapped[int] = mapped_column(BigInteger)
    units: Mapped[int] = mapped_column(Integer)
    held: Mapped[int] = mapped_column(Integer, default=0)
    sold: Mapped[int] = mapped_column(Integer, default=0)
    per_user_limit: Mapped[int] = mapped_column(Integer, default=1)
    pay_minutes: Mapped[int] = mapped_column(Integer, default=15)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default=FlashSaleStatus.SCHEDULED.value)
    version: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)



class FlashClaimStatus(enum.StrEnum):
    HELD = "held"  # a unit reserved, not paid: its order (or, without an address yet, `expires_at`) runs out
    PAID = "paid"
    RELEASED = "released"  # unpaid in time, cancelled, or refunded before shipping during the sale: back on sale



class FlashClaim(Base):
    """One unit of a flash sale taken by a customer, with the order that pays for it
    (None while the customer is still typing a delivery address)."""

    __tablename__ = "flash_claims"
    __table_args__ = (
        Index("ix_flash_claims_sale_customer", "sale_id", "customer_id"),
        Index("ix_flash_claims_status_expires_at", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sale_id: Mapped[int] = mapped_column(ForeignKey("flash_sales.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), unique=True, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=FlashClaimStatus.HELD.value)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))



class FlashReminder(Base):
    """A customer asked to be told when a sale starts ("提醒我"); `sent_at` once told."""

    __tablename__ = "flash_reminders"
    __table_args__ = (UniqueConstraint("sale_id", "customer_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sale_id: Mapped[int] = mapped_column(ForeignKey("flash_sales.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)



class LiveSessionStatus(enum.StrEnum):
    OPEN = "open"  # started by staff (`/live start`): products are pushed to the audience
    ENDED = "ended"  # `/live end`: its sales closed, its summary given



class LiveSession(Base):
    """A live drop (直播): staff push products one after another to the customers who opted
    in (`LiveSubscriber`); each push is a flash sale made for the session (`LivePush`), the
    latest being `sale_id`, the one its page shows. `viewers` counts the page's openings,
    `clicks` its buy button; at most one session is open at a time."""

    __tablename__ = "live_sessions"
    __table_args__ = (
        CheckConstraint("viewers >= 0 AND clicks >= 0", name="live_counts_not_negative"),
        # one session on air at a time, whatever two staff members start at once
        Index(
            "uq_live_sessions_one_open", "status", unique=True,
            sqlite_where=text("status = 'open'"), postgresql_where=text("status = 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(64))
    video_url: Mapped[str] = mapped_column(String(512), default="")  # a 视频号 live link, optional
    status: Mapped[str] = mapped_column(String(16), default=LiveSessionStatus.OPEN.value)
    sale_id: Mapped[int | None] = mapped_column(ForeignKey("flash_sales.id"), nullable=True)
    viewers: Mapped[int] = mapped_column(Integer, default=0)
    clicks: Mapped[int] = mapped_column(Integer, default=0)
    audience: Mapped[int] = mapped_column(Integer, default=0)  # subscribers told of the start
    started_by: Mapped[str] = mapped_column(String(64), default="")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)



class LivePush(Base):
    """A product pushed during a session: the flash sale that carries its live price and units."""

    __tablename__ = "live_pushes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("live_sessions.id"), index=True)
    sale_id: Mapped[int] = mapped_column(ForeignKey("flash_sales.id"), unique=True)
    pushed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)



class LiveSubscriber(Base):
    """A customer who asked to hear of live drops ("订阅直播")."""

    __tablename__ = "live_subscribers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

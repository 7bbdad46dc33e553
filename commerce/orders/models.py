"""Orders models (tables and their enums); `commerce.models` gathers every model for Alembic."""

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
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from commerce.orm import Base, utcnow


class OrderStatus(enum.StrEnum):
    PENDING_PAYMENT = "pending_payment"
    PAID = "paid"
    SHIPPED = "shipped"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    REFUNDING = "refunding"
    REFUNDED = "refunded"



class Order(Base):
    """An order with snapshots of its lines, prices and address; amounts in fen.

    payable_fen = goods_fen - discount_fen - level_discount_fen + delivery_fen - points_fen.
    balance_fen: the part of payable_fen paid from stored balance (`commerce.balance`); the
    payment provider is asked for the rest, `due_fen`. paid_fen counts both once paid.
    refunded_fen grows with each successful (possibly partial) refund.
    """

    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_status_expires", "status", "expires_at"),
        CheckConstraint("payable_fen >= 0", name="payable_not_negative"),
        CheckConstraint("refunded_fen >= 0 AND refunded_fen <= paid_fen", name="refund_within_paid"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_no: Mapped[str] = mapped_column(String(32), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default=OrderStatus.PENDING_PAYMENT.value)
    idempotency_key: Mapped[str | None] = mapped_column(String(100), unique=True, nullable=True)
    goods_fen: Mapped[int] = mapped_column(BigInteger)
    discount_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    delivery_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    points_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    # the points spent for points_fen (given back if the order is cancelled)
    points_used: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # the member level's discount (after the coupon) and the level it was for ("" none)
    level_discount_fen: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    member_level: Mapped[str] = mapped_column(String(16), default="", server_default="")
    payable_fen: Mapped[int] = mapped_column(BigInteger)
    paid_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    balance_fen: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    customer_coupon_id: Mapped[int | None] = mapped_column(ForeignKey("customer_coupons.id"), nullable=True)
    # the group buy this order is a seat in (None: an ordinary order); it ships only once the group filled
    group_id: Mapped[int | None] = mapped_column(ForeignKey("group_buys.id"), nullable=True, index=True)
    address_name: Mapped[str] = mapped_column(String(32), default="")
    address_phone: Mapped[str] = mapped_column(String(20), default="")
    address_text: Mapped[str] = mapped_column(String(200), default="")  # the whole address
    # the address's region as the address book read it (empty on older orders)
    address_province: Mapped[str] = mapped_column(String(32), default="", server_default="")
    address_city: Mapped[str] = mapped_column(String(32), default="", server_default="")
    address_district: Mapped[str] = mapped_column(String(32), default="", server_default="")
    address_detail: Mapped[str] = mapped_column(String(200), default="", server_default="")
    note: Mapped[str] = mapped_column(String(200), default="")
    pay_provider: Mapped[str] = mapped_column(String(20), default="")
    pay_transaction_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    carrier: Mapped[str] = mapped_column(String(32), default="")
    tracking_no: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reminded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # indexed: the dashboard and /stats read the orders paid in a period by it
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True, index=True)
    shipped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    @property
    def due_fen(self) -> int:
        """What the payment provider is asked for: payable less the balance part."""
        return self.payable_fen - self.balance_fen

    lines: Mapped[list[OrderLine]] = relationship(order_by="OrderLine.id", cascade="all, delete-orphan")
    events: Mapped[list[OrderEvent]] = relationship(order_by="OrderEvent.id", cascade="all, delete-orphan")



class OrderLine(Base):
    """What was bought, as it was when bought (name and price are snapshots)."""

    __tablename__ = "order_lines"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id"), index=True)
    sku_code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    spec_label: Mapped[str] = mapped_column(String(100), default="")
    unit_price_fen: Mapped[int] = mapped_column(BigInteger)
    quantity: Mapped[int] = mapped_column(Integer)



class OrderEvent(Base):
    """Every status transition: from, to, who (customer / staff:<openid> / system / provider), when."""

    __tablename__ = "order_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(20), nullable=True)
    to_status: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(80))
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)



class AfterSalesKind(enum.StrEnum):
    REFUND = "refund"
    RETURN = "return"



class AfterSalesStatus(enum.StrEnum):
    OPEN = "open"
    APPROVED = "approved"
    REJECTED = "rejected"



class AfterSalesRequest(Base):
    __tablename__ = "after_sales_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(16), default=AfterSalesStatus.OPEN.value)
    resolution: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


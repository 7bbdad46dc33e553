"""SQLAlchemy models of the shop. The schema itself is owned by the Alembic migrations.

Money is integer fen everywhere. Stock has a CHECK constraint so that no code path,
however buggy, can store a negative number.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ProductStatus(enum.StrEnum):
    ON_SALE = "on_sale"
    OFF_SALE = "off_sale"


class Category(Base):
    __tablename__ = "categories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    name_en: Mapped[str] = mapped_column(String(64), default="")
    sort_order: Mapped[int] = mapped_column(Integer, default=0)

    products: Mapped[list[Product]] = relationship(back_populates="category")


product_tags = Table(
    "product_tags",
    Base.metadata,
    Column("product_id", ForeignKey("products.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True),
)


class Tag(Base):
    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (Index("ix_products_status_sort", "status", "sort_order"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    subtitle: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default=ProductStatus.ON_SALE.value)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    sales_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    category: Mapped[Category] = relationship(back_populates="products")
    variants: Mapped[list[Variant]] = relationship(
        back_populates="product", order_by="Variant.id", cascade="all, delete-orphan"
    )
    images: Mapped[list[ProductImage]] = relationship(
        order_by="ProductImage.position", cascade="all, delete-orphan"
    )
    tags: Mapped[list[Tag]] = relationship(secondary=product_tags, order_by="Tag.name")


class Variant(Base):
    """A SKU: its own price, stock and spec attributes (e.g. {"颜色": "红", "规格": "5斤"})."""

    __tablename__ = "variants"
    __table_args__ = (
        CheckConstraint("stock >= 0", name="stock_not_negative"),
        CheckConstraint("price_fen >= 0", name="price_not_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), index=True)
    sku_code: Mapped[str] = mapped_column(String(64), unique=True)
    spec: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    price_fen: Mapped[int] = mapped_column(BigInteger)
    stock: Mapped[int] = mapped_column(Integer, default=0)
    low_stock_threshold: Mapped[int] = mapped_column(Integer, default=5)

    product: Mapped[Product] = relationship(back_populates="variants")


class ProductImage(Base):
    __tablename__ = "product_images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(500))
    position: Mapped[int] = mapped_column(Integer, default=0)


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


# ---- shopping: carts, addresses, coupons -----------------------------------------------


class CartLine(Base):
    """One variant in a customer's cart. Prices are not stored: a cart shows today's price."""

    __tablename__ = "cart_lines"
    __table_args__ = (
        UniqueConstraint("customer_id", "variant_id"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"))
    quantity: Mapped[int] = mapped_column(Integer)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Address(Base):
    __tablename__ = "addresses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(32))
    phone: Mapped[str] = mapped_column(String(20))
    address: Mapped[str] = mapped_column(String(200))
    is_default: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


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


# ---- orders -------------------------------------------------------------------------


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

    payable_fen = goods_fen - discount_fen + delivery_fen - points_fen.
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
    payable_fen: Mapped[int] = mapped_column(BigInteger)
    paid_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    customer_coupon_id: Mapped[int | None] = mapped_column(ForeignKey("customer_coupons.id"), nullable=True)
    # the group buy this order is a seat in (None: an ordinary order); it ships only once the group filled
    group_id: Mapped[int | None] = mapped_column(ForeignKey("group_buys.id"), nullable=True, index=True)
    address_name: Mapped[str] = mapped_column(String(32), default="")
    address_phone: Mapped[str] = mapped_column(String(20), default="")
    address_text: Mapped[str] = mapped_column(String(200), default="")
    note: Mapped[str] = mapped_column(String(200), default="")
    pay_provider: Mapped[str] = mapped_column(String(20), default="")
    pay_transaction_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    carrier: Mapped[str] = mapped_column(String(32), default="")
    tracking_no: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reminded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    shipped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

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


class PaymentEvent(Base):
    """Each provider notification (payment or refund) recorded once: (provider, event_key) is unique."""

    __tablename__ = "payment_events"
    __table_args__ = (UniqueConstraint("provider", "event_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    provider: Mapped[str] = mapped_column(String(20))
    event_key: Mapped[str] = mapped_column(String(100))  # transaction id or refund id
    kind: Mapped[str] = mapped_column(String(16))  # payment | refund
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), nullable=True, index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    outcome: Mapped[str] = mapped_column(String(32))  # applied | late_refunded | ignored_* ...
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RefundStatus(enum.StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Refund(Base):
    __tablename__ = "refunds"
    __table_args__ = (CheckConstraint("amount_fen > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    refund_no: Mapped[str] = mapped_column(String(40), unique=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16), default=RefundStatus.PENDING.value)
    actor: Mapped[str] = mapped_column(String(80))
    provider_refund_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


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


class Handoff(Base):
    """A customer asked for a human: recorded with the context staff need (cart, last order)."""

    __tablename__ = "handoffs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    context: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# ---- staff ---------------------------------------------------------------------------


class StaffRole(enum.StrEnum):
    OWNER = "owner"
    OPERATOR = "operator"  # catalog, orders, coupons, stats
    SERVICE = "service"  # customer service: orders and after-sales


class StaffMember(Base):
    """Staff kept in the database (owners may also come from the config's allow-list)."""

    __tablename__ = "staff_members"
    __table_args__ = (UniqueConstraint("openid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    openid: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(32), default="")
    alerts_muted: Mapped[bool] = mapped_column(default=False)
    added_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class StaffInvite(Base):
    """A one-time code an owner hands to a new staff member, who sends it to the account."""

    __tablename__ = "staff_invites"
    __table_args__ = (UniqueConstraint("code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuditEntry(Base):
    """Every admin action, and every refused attempt: who, what, when, before, after."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_created", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    actor: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16), default="")  # empty: not staff
    command: Mapped[str] = mapped_column(String(32))
    args: Mapped[list | dict] = mapped_column(JSON, default=list)
    outcome: Mapped[str] = mapped_column(String(16))  # ok | refused | failed | cancelled
    before: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# ---- outbound messages --------------------------------------------------------------


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its (next) attempt
    SENT = "sent"
    FAILED = "failed"  # gave up after its attempts; staff were told


class OutboxMessage(Base):
    """A message to a customer that must not be lost when WeChat or the network fails.

    `payload` is the rendered message (text or news); `template` optionally holds a
    template-message fallback (template id and data) for when the customer-service
    window is closed or its count used up.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    openid: Mapped[str] = mapped_column(String(64), index=True)
    event: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict] = mapped_column(JSON)
    template: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING.value)
    channel: Mapped[str] = mapped_column(String(20), default="")  # customer_service | template
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_error: Mapped[str] = mapped_column(String(200), default="")
    template_msgid: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    delivery_status: Mapped[str] = mapped_column(String(40), default="")  # TEMPLATESENDJOBFINISH
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


# ---- group buys (拼团) ------------------------------------------------------------------


class GroupCampaignStatus(enum.StrEnum):
    ACTIVE = "active"
    CLOSED = "closed"  # no new groups; open groups run to their own deadline


class GroupCampaign(Base):
    """A product variant sold at a group price to groups of `group_size` within `time_limit_minutes`.

    `stock_quota` caps the units sold through the campaign (None: only the variant's stock);
    `quota_used` counts the units held by unpaid and paid seats, by conditional UPDATE.
    """

    __tablename__ = "group_campaigns"
    __table_args__ = (
        CheckConstraint("group_price_fen > 0", name="group_price_positive"),
        CheckConstraint("group_size >= 2", name="group_size_at_least_two"),
        CheckConstraint("time_limit_minutes > 0", name="time_limit_positive"),
        CheckConstraint("per_user_limit > 0", name="per_user_limit_positive"),
        CheckConstraint(
            "quota_used >= 0 AND (stock_quota IS NULL OR quota_used <= stock_quota)",
            name="quota_within_limit",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id"), index=True)
    group_price_fen: Mapped[int] = mapped_column(BigInteger)
    group_size: Mapped[int] = mapped_column(Integer)
    time_limit_minutes: Mapped[int] = mapped_column(Integer)
    per_user_limit: Mapped[int] = mapped_column(Integer, default=1)  # groups a customer may start or join
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    stock_quota: Mapped[int | None] = mapped_column(Integer, nullable=True)
    quota_used: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default=GroupCampaignStatus.ACTIVE.value)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class GroupStatus(enum.StrEnum):
    FORMING = "forming"  # the leader has not paid yet; nobody else can join
    OPEN = "open"  # the leader paid: friends join until `deadline`
    FILLED = "filled"  # every seat paid: the orders go on to fulfilment
    FAILED = "failed"  # the deadline passed unfilled: paid members refunded
    CLOSED = "closed"  # the leader cancelled or never paid, or staff closed it


class GroupBuy(Base):
    """One group of a campaign, led by the customer who started it; friends join by `code`.

    `seats_taken` counts reserved and paid seats (the leader's included) and is only ever
    changed by conditional UPDATEs, so the last seat goes to exactly one joiner.
    """

    __tablename__ = "group_buys"
    __table_args__ = (
        Index("ix_group_buys_status_deadline", "status", "deadline"),
        CheckConstraint("seats_taken >= 0 AND seats_taken <= size", name="seats_within_size"),
        CheckConstraint("paid_count >= 0 AND paid_count <= seats_taken", name="paid_within_seats"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("group_campaigns.id"), index=True)
    leader_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    size: Mapped[int] = mapped_column(Integer)
    price_fen: Mapped[int] = mapped_column(BigInteger)  # the campaign's group price when started
    status: Mapped[str] = mapped_column(String(16), default=GroupStatus.FORMING.value)
    seats_taken: Mapped[int] = mapped_column(Integer, default=0)
    paid_count: Mapped[int] = mapped_column(Integer, default=0)
    deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)  # set when the leader pays
    reminded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    close_reason: Mapped[str] = mapped_column(String(32), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    opened_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    filled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class GroupMemberStatus(enum.StrEnum):
    RESERVED = "reserved"  # joined, order unpaid: holds a seat until the order expires
    PAID = "paid"
    RELEASED = "released"  # the unpaid order was cancelled or expired: the seat is free again
    REFUNDED = "refunded"  # the group failed or closed after paying: money sent back


class GroupMember(Base):
    """A customer's seat in a group, with the order that pays for it. One row per customer and group."""

    __tablename__ = "group_members"
    __table_args__ = (UniqueConstraint("group_id", "customer_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("group_buys.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), unique=True, nullable=True)
    is_leader: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(16), default=GroupMemberStatus.RESERVED.value)
    joined_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


# ---- referrals, commission, points, badges -------------------------------------------


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


class InstallSecret(Base):
    """A secret made once per install, when the configuration names none (commerce/install_secrets.py).

    Kept in the database so that every worker of one shop reads the same value and a
    restart keeps it: the key of signed links, the sandbox provider's notify secret.
    """

    __tablename__ = "install_secrets"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LinkUse(Base):
    """A one-time link that has been used (an export download): a second use finds its row."""

    __tablename__ = "link_uses"

    link_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)

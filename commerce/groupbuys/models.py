"""Groupbuys models (tables and their enums); `commerce.models` gathers every model for Alembic."""

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
)
from sqlalchemy.orm import Mapped, mapped_column

from commerce.orm import Base, utcnow


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


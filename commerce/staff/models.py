"""Staff models (tables and their enums); `commerce.models` gathers every model for Alembic."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    JSON,
    DateTime,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from commerce.orm import Base, utcnow


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


"""System models (tables and their enums); `commerce.models` gathers every model for Alembic."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    DateTime,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from commerce.orm import Base, utcnow


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


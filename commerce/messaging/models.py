"""Messaging models (tables and their enums); `commerce.models` gathers every model for Alembic."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from commerce.orm import Base, utcnow


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its (next) attempt
    SENDING = "sending"  # an attempt is under way: nobody else may start one
    SENT = "sent"
    FAILED = "failed"  # gave up after its attempts; staff were told
    UNCERTAIN = "uncertain"  # WeChat may or may not have it: never sent again (staff were told)


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
    broadcast_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)  # a staff broadcast's row


class Broadcast(Base):
    """A staff broadcast: one outbox row per recipient (`OutboxMessage.broadcast_id`).

    The staff member who sent it hears how it went twice: after the first attempts (sent,
    waiting for the customer's window, failed), and once more when nothing waits any more
    (`reported_at`). Its rows are not sent after `expires_at`: a stale broadcast fails."""

    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    staff_openid: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    total: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    first_report_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reported_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True, index=True)


class InboundStatus(enum.StrEnum):
    RECEIVED = "received"  # written down, nobody works on it (released by a stopping worker)
    PROCESSING = "processing"  # a worker holds its lease and works on it
    ANSWERED = "answered"  # the reply is kept for WeChat's retries, then pruned


class InboundMessage(Base):
    """A customer's message, written down before the webhook answers anything but its reply.

    The row with its unique `key` (the WeChat de-duplication key) IS the claim across
    workers; `lease_owner` / `lease_until` say who works on it and until when (a dead
    worker's lease runs out and another worker takes the message). `message` holds the
    parsed message, enough to process it again; `reply` the rendered reply once answered,
    kept until `lease_until` (WeChat's retries come within it), then pruned. `deferred`:
    no delivery is waiting for the reply, so it goes out as a customer-service message.
    `effects`: the turn committed changes (in their own transaction): processing it again
    would repeat them, so a worker taking it over answers without processing it.
    """

    __tablename__ = "inbound_messages"
    __table_args__ = (Index("ix_inbound_messages_status_lease", "status", "lease_until"),)

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    openid: Mapped[str] = mapped_column(String(64))
    message: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=InboundStatus.PROCESSING.value)
    lease_owner: Mapped[str] = mapped_column(String(32), default="")
    lease_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    deferred: Mapped[bool] = mapped_column(Boolean, default=False)
    effects: Mapped[bool] = mapped_column(Boolean, default=False)  # the turn committed changes
    reply: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class DialogState(Base):
    """A customer's open dialog (a product card, a checkout), as the bot's dialog store keeps it.

    Written through on every turn that changed the dialog, read when Redis does not have
    it (down, or restarted empty): a conversation continues where it was. `key` is the
    openid (or the openid and a suffix, for a parked dialog); `payload` the store's JSON.
    """

    __tablename__ = "dialog_states"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    payload: Mapped[str] = mapped_column(Text)
    keep_until: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

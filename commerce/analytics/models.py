"""The shop's countable events; `commerce.models` gathers every model for Alembic.

One row per thing worth counting, written in batches off the reply path: no row is part
of any shop transaction, so losing the last few seconds of events in a crash costs a
chart a dot, never an order. Ids are plain integers without foreign keys: an event
outlives a deleted product or customer, and a batch insert checks no other table. No
openid is stored: `customer_id` is the shop's own id, as in orders.

`kind` is one of `EventKind`; the other columns say what each kind needs:
- message: customer_id;
- search: customer_id, query (normalised, at most 64 characters), results;
- card: customer_id, product_id;
- cart_add: customer_id, product_id;
- checkout: customer_id (the review of an order was shown);
- order: customer_id, order_id, amount_fen (placed);
- paid: customer_id, order_id, amount_fen;
- share: customer_id (who shared), product_id when a product was shared;
- follow: customer_id (who followed), referrer_id (whose share brought them);
- review: customer_id, order_id, product_id (the first product), amount_fen = None.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import DateTime, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from commerce.orm import Base, utcnow

QUERY_MAX = 64


class EventKind(StrEnum):
    MESSAGE = "message"
    SEARCH = "search"
    CARD = "card"
    CART_ADD = "cart_add"
    CHECKOUT = "checkout"
    ORDER = "order"
    PAID = "paid"
    SHARE = "share"
    FOLLOW = "follow"
    REVIEW = "review"


class ShopEvent(Base):
    __tablename__ = "shop_events"
    __table_args__ = (Index("ix_shop_events_kind_at", "kind", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    customer_id: Mapped[int | None] = mapped_column(Integer, default=None)
    product_id: Mapped[int | None] = mapped_column(Integer, default=None)
    order_id: Mapped[int | None] = mapped_column(Integer, default=None)
    referrer_id: Mapped[int | None] = mapped_column(Integer, default=None)
    query: Mapped[str | None] = mapped_column(String(QUERY_MAX), default=None)
    results: Mapped[int | None] = mapped_column(Integer, default=None)
    amount_fen: Mapped[int | None] = mapped_column(Integer, default=None)

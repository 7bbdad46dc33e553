"""Reviews tables; `commerce.models` gathers every model for Alembic.

One review per order (unique `order_id`): it rates every product of the order. Each
product's visible reviews are summed in `product_ratings` (sum and count of the ratings),
kept in step by whoever posts, hides or shows a review, in that transaction: a product
card reads one row by its key, and the catalog in memory holds no ratings.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from commerce.orm import Base, utcnow

RATING_MIN, RATING_MAX = 1, 5
BODY_MAX = 500
PHOTOS_MAX = 3


class Review(Base):
    __tablename__ = "reviews"
    __table_args__ = (
        UniqueConstraint("order_id"),  # a customer reviews an order once
        CheckConstraint(f"rating >= {RATING_MIN} AND rating <= {RATING_MAX}", name="rating_range"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    rating: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(String(BODY_MAX), default="")
    hidden: Mapped[bool] = mapped_column(default=False)  # by staff (/reviews hide N): counted nowhere
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ReviewPhoto(Base):
    """A photo sent in the chat: the URL pages show (the media store's copy, else WeChat's
    PicUrl) and WeChat's MediaId (valid 3 days)."""

    __tablename__ = "review_photos"
    __table_args__ = (UniqueConstraint("review_id", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("reviews.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    pic_url: Mapped[str] = mapped_column(String(1024), default="")
    media_id: Mapped[str] = mapped_column(String(128), default="")


class ProductRating(Base):
    """The visible reviews of a product, summed: average = rating_sum / rating_count."""

    __tablename__ = "product_ratings"
    __table_args__ = (CheckConstraint("rating_count >= 0 AND rating_sum >= 0", name="rating_totals_not_negative"),)

    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), primary_key=True)
    rating_sum: Mapped[int] = mapped_column(Integer, default=0)
    rating_count: Mapped[int] = mapped_column(Integer, default=0)

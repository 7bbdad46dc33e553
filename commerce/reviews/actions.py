"""The review use cases: invite, post, read, hide and show. Nothing here commits.

One review per order, and only of a received (completed) order: it rates every product
of the order. Posting it tells loyalty (`ReviewPosted`), which gives `rules.review_points`
once per order. A review counts in its products' ratings (`product_ratings`) while it is
not hidden; hiding and showing it move those sums in the same transaction and are staff
actions, whose `Change` the caller writes to the audit log.

Photos come as the chat keeps them: the URL pages show (the shop's copy in the media
store, else WeChat's `PicUrl`) and WeChat's `MediaId` (its media lives three days).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.customers.models import Customer
from commerce.db import upsert_insert
from commerce.errors import ErrorCode, ShopError
from commerce.events import ReviewPosted, publish
from commerce.messaging import notices
from commerce.orders.models import Order, OrderLine, OrderStatus
from commerce.orders.views import OrderView, load_view
from commerce.reviews.models import (
    BODY_MAX,
    PHOTOS_MAX,
    RATING_MAX,
    RATING_MIN,
    ProductRating,
    Review,
    ReviewPhoto,
)
from commerce.rules import as_utc, session_rules
from commerce.staff.audit import Change

LIST_MAX = 50


@dataclass(frozen=True, slots=True)
class Photo:
    pic_url: str
    media_id: str = ""


@dataclass(frozen=True, slots=True)
class ReviewView:
    id: int
    order_id: int
    order_no: str
    openid: str
    rating: int
    body: str
    hidden: bool
    created_at: datetime
    photos: tuple[str, ...]  # picture URLs, in the order sent
    products: tuple[str, ...]  # the names bought, as the order's lines keep them


@dataclass(frozen=True, slots=True)
class Rating:
    """A product's visible reviews: their count and the sum of their ratings."""

    count: int
    total: int

    @property
    def average(self) -> str:
        """One decimal, rounded half up ("4.8"); integers only."""
        tenths = (self.total * 20 + self.count) // (2 * self.count) if self.count else 0
        return f"{tenths // 10}.{tenths % 10}"


@dataclass(frozen=True, slots=True)
class Posted:
    review: ReviewView
    points: int  # the review points it earned (rules.review_points)


def review_data(view: ReviewView) -> dict[str, Any]:
    """A review as templates and pages read it."""
    return {
        "id": view.id, "order_no": view.order_no, "rating": view.rating, "body": view.body,
        "hidden": view.hidden, "created_at": view.created_at, "photos": list(view.photos),
        "products": list(view.products), "photo_count": len(view.photos),
    }


async def is_reviewed(session: AsyncSession, order_id: int) -> bool:
    """Whether the order has its review (hidden or not)."""
    return await session.scalar(select(Review.id).where(Review.order_id == order_id)) is not None


async def reviewable_order(
    session: AsyncSession, *, customer_id: int, order_id: int | None = None
) -> OrderView | None:
    """The order the customer may review now: `order_id` (ORDER_NOT_FOUND when it is not
    theirs, REVIEW_NOT_ALLOWED unless received, REVIEW_EXISTS once reviewed), or else their
    latest received order without a review (None when there is none)."""
    if order_id is None:
        order_id = await session.scalar(
            select(Order.id)
            .where(
                Order.customer_id == customer_id,
                Order.status == OrderStatus.COMPLETED.value,
                ~select(Review.id).where(Review.order_id == Order.id).exists(),
            )
            .order_by(Order.completed_at.desc(), Order.id.desc())
            .limit(1)
        )
        if order_id is None:
            return None
    owner = await session.scalar(select(Order.customer_id).where(Order.id == order_id))
    if owner is None or owner != customer_id:
        raise ShopError(ErrorCode.ORDER_NOT_FOUND, order_id=order_id)
    order = await load_view(session, order_id)
    if order.status != OrderStatus.COMPLETED:
        raise ShopError(ErrorCode.REVIEW_NOT_ALLOWED, order_no=order.order_no, status=order.status.value)
    if await is_reviewed(session, order_id):
        raise ShopError(ErrorCode.REVIEW_EXISTS, order_no=order.order_no)
    return order


def invite_to_review(session: AsyncSession, *, order: OrderView) -> None:
    """Queue the invitation to review a received order (`review_invite`), in the receipt's
    transaction: the order's status subscriber calls it (`commerce.wiring`)."""
    notices.queue(
        session,
        openid=order.openid,
        template="review_invite",
        data={
            "order_no": order.order_no,
            "first_item": order.lines[0].name if order.lines else "",
            "item_count": len(order.lines),
            "points": session_rules(session).review_points,
        },
        follow_up=True,  # after "received" / "completed by itself", queued later in the same transaction
    )


async def invite_on_receipt(session: AsyncSession, *, order_id: int) -> None:
    """shipped -> completed (the customer confirmed, or the clock): invite a review."""
    if not await is_reviewed(session, order_id):
        invite_to_review(session, order=await load_view(session, order_id))


def check_review(rating: int, body: str, photos: Sequence[Photo]) -> str:
    """The body as kept (trimmed); REVIEW_INVALID (details: field, max) otherwise."""
    if not RATING_MIN <= rating <= RATING_MAX:
        raise ShopError(ErrorCode.REVIEW_INVALID, field="rating", max=RATING_MAX)
    body = "".join(c if c.isprintable() or c == "\n" else " " for c in (body or "")).strip()  # no control characters
    if len(body) > BODY_MAX:
        raise ShopError(ErrorCode.REVIEW_INVALID, field="body", max=BODY_MAX)
    if len(photos) > PHOTOS_MAX:
        raise ShopError(ErrorCode.REVIEW_INVALID, field="photos", max=PHOTOS_MAX)
    return body


async def _products_of(session: AsyncSession, order_id: int) -> list[int]:
    found = await session.scalars(
        select(OrderLine.product_id).where(OrderLine.order_id == order_id).distinct().order_by(OrderLine.product_id)
    )
    return list(found.all())


async def _count_in(session: AsyncSession, *, order_id: int, rating: int, sign: int) -> None:
    """Add (sign 1) or take out (sign -1) a review's rating from its products' sums."""
    for product_id in await _products_of(session, order_id):  # ascending: rows locked in one order
        insert = upsert_insert(session, ProductRating).values(
            product_id=product_id, rating_sum=max(rating * sign, 0), rating_count=max(sign, 0)
        )
        await session.execute(
            insert.on_conflict_do_update(
                index_elements=[ProductRating.product_id],
                set_={
                    "rating_sum": ProductRating.rating_sum + rating * sign,
                    "rating_count": ProductRating.rating_count + sign,
                },
            )
        )


async def post_review(
    session: AsyncSession,
    *,
    customer_id: int,
    order_id: int,
    rating: int,
    body: str = "",
    photos: Sequence[Photo] = (),
    now: datetime,
) -> Posted:
    """The customer's review of their received order, counted in its products' ratings;
    `ReviewPosted` gives the review points. ORDER_NOT_FOUND, REVIEW_NOT_ALLOWED,
    REVIEW_EXISTS (also when two posts race: the order's unique review decides),
    REVIEW_INVALID."""
    now = as_utc(now)
    body = check_review(rating, body, photos)
    await reviewable_order(session, customer_id=customer_id, order_id=order_id)
    review_id = await session.scalar(
        upsert_insert(session, Review)
        .values(order_id=order_id, customer_id=customer_id, rating=rating, body=body, hidden=False, created_at=now)
        .on_conflict_do_nothing()
        .returning(Review.id)
    )
    if review_id is None:
        order_no = await session.scalar(select(Order.order_no).where(Order.id == order_id))
        raise ShopError(ErrorCode.REVIEW_EXISTS, order_no=order_no)
    for position, photo in enumerate(photos, 1):
        session.add(ReviewPhoto(
            review_id=review_id, position=position, pic_url=photo.pic_url[:1024], media_id=photo.media_id[:128]
        ))
    await session.flush()
    await _count_in(session, order_id=order_id, rating=rating, sign=1)
    await publish(session, ReviewPosted(order_id, customer_id, now))
    (view,) = await _views(session, [review_id])
    return Posted(view, max(session_rules(session).review_points, 0))


async def _views(session: AsyncSession, review_ids: Sequence[int]) -> list[ReviewView]:
    """The reviews, in the order of `review_ids`."""
    if not review_ids:
        return []
    rows = (
        await session.execute(
            select(Review, Order.order_no, Customer.openid)
            .join(Order, Order.id == Review.order_id)
            .join(Customer, Customer.id == Review.customer_id)
            .where(Review.id.in_(review_ids))
            .execution_options(populate_existing=True)
        )
    ).all()
    photos: dict[int, list[str]] = {}
    for review_id, url in await session.execute(
        select(ReviewPhoto.review_id, ReviewPhoto.pic_url)
        .where(ReviewPhoto.review_id.in_(review_ids))
        .order_by(ReviewPhoto.review_id, ReviewPhoto.position)
    ):
        photos.setdefault(review_id, []).append(url)
    names: dict[int, list[str]] = {}
    order_ids = [row[0].order_id for row in rows]
    for order_id, name in await session.execute(
        select(OrderLine.order_id, OrderLine.name).where(OrderLine.order_id.in_(order_ids)).order_by(OrderLine.id)
    ):
        if name not in names.setdefault(order_id, []):
            names[order_id].append(name)
    by_id = {
        review.id: ReviewView(
            id=review.id, order_id=review.order_id, order_no=order_no, openid=openid, rating=review.rating,
            body=review.body, hidden=review.hidden, created_at=as_utc(review.created_at),
            photos=tuple(photos.get(review.id, ())), products=tuple(names.get(review.order_id, ())),
        )
        for review, order_no, openid in rows
    }
    return [by_id[i] for i in review_ids if i in by_id]


async def recent_reviews(session: AsyncSession, *, limit: int = 20) -> list[ReviewView]:
    """The latest reviews, hidden ones too (staff's `/reviews`), newest first."""
    ids = await session.scalars(select(Review.id).order_by(Review.id.desc()).limit(min(limit, LIST_MAX)))
    return await _views(session, list(ids.all()))


async def product_reviews(session: AsyncSession, *, product_id: int, limit: int = 10) -> list[ReviewView]:
    """The visible reviews of orders that bought the product, newest first (its page)."""
    ids = await session.scalars(
        select(Review.id)
        .where(
            Review.hidden.is_(False),
            select(OrderLine.id).where(OrderLine.order_id == Review.order_id, OrderLine.product_id == product_id).exists(),
        )
        .order_by(Review.id.desc())
        .limit(min(limit, LIST_MAX))
    )
    return await _views(session, list(ids.all()))


async def rating_of(session: AsyncSession, product_id: int) -> Rating | None:
    """The product's visible reviews summed (one row by its key); None without any."""
    row = (
        await session.execute(
            select(ProductRating.rating_count, ProductRating.rating_sum).where(ProductRating.product_id == product_id)
        )
    ).first()
    if row is None or row.rating_count <= 0:
        return None
    return Rating(row.rating_count, row.rating_sum)


async def set_hidden(session: AsyncSession, *, review_id: int, hidden: bool) -> tuple[ReviewView, Change]:
    """Hide a review from its products (pages, ratings) or show it again: the products'
    sums follow in this transaction. REVIEW_NOT_FOUND. Hiding a hidden review changes
    nothing (before == after)."""
    review = await session.scalar(
        select(Review).where(Review.id == review_id).with_for_update().execution_options(populate_existing=True)
    )
    if review is None:
        raise ShopError(ErrorCode.REVIEW_NOT_FOUND, review_id=review_id)
    before = {"review_id": review_id, "order_id": review.order_id, "rating": review.rating, "hidden": review.hidden}
    if review.hidden != hidden:
        await session.execute(update(Review).where(Review.id == review_id).values(hidden=hidden))
        await _count_in(session, order_id=review.order_id, rating=review.rating, sign=-1 if hidden else 1)
    (view,) = await _views(session, [review_id])
    return view, (before, {**before, "hidden": view.hidden})

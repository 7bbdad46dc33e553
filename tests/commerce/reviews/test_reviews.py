"""Reviews in the core, on SQLite and PostgreSQL: one per received order, counted in every
product of the order while visible, hidden and shown again with the sums following; the
points once; and the average's rounding, pure."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from commerce.errors import ErrorCode
from commerce.loyalty.models import PointsEntry
from commerce.orders.actions import confirm_receipt, ship_order
from commerce.orders.models import OrderLine
from commerce.reviews import actions as reviews
from commerce.reviews.actions import Photo, Rating
from commerce.rules import utcnow
from commerce.wiring import shop_sessions
from tests.commerce.orders.test_orders import expect_error, paid_order


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return shop_sessions(engine)


async def _received(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, int, list[int]]:
    """(customer, order, products) of a paid order of two products, shipped and received."""
    buyer, order = await paid_order(sessions, ((2500, 10, 1), (1200, 5, 2)))
    async with sessions() as session, session.begin():
        await expect_error(
            ErrorCode.REVIEW_NOT_ALLOWED,
            reviews.post_review(session, customer_id=buyer.customer_id, order_id=order.id, rating=5, now=utcnow()),
        )
        await ship_order(session, order_id=order.id, carrier="顺丰", tracking_no="SF123456", actor="staff:x", now=utcnow())
        await confirm_receipt(session, order_id=order.id, customer_id=buyer.customer_id, now=utcnow())
        products = (await session.scalars(select(OrderLine.product_id).where(OrderLine.order_id == order.id))).all()
    return buyer.customer_id, order.id, sorted(set(products))


async def _ratings(sessions: async_sessionmaker[AsyncSession], products: list[int]) -> list[Rating | None]:
    async with sessions() as session:
        return [await reviews.rating_of(session, p) for p in products]


async def test_a_review_counts_in_each_product_of_its_order_while_visible(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    customer, order_id, products = await _received(sessions)
    other = customer + 1000  # not theirs
    async with sessions() as session, session.begin():
        await expect_error(
            ErrorCode.ORDER_NOT_FOUND,
            reviews.post_review(session, customer_id=other, order_id=order_id, rating=5, now=utcnow()),
        )
        await expect_error(
            ErrorCode.REVIEW_INVALID,
            reviews.post_review(session, customer_id=customer, order_id=order_id, rating=6, now=utcnow()),
        )
        posted = await reviews.post_review(
            session, customer_id=customer, order_id=order_id, rating=4, body=" 很好 ",
            photos=[Photo("https://mmbiz.qpic.cn/a.jpg", "m1")], now=utcnow(),
        )
    assert posted.points == 10 and posted.review.body == "很好" and posted.review.photos == ("https://mmbiz.qpic.cn/a.jpg",)
    assert await _ratings(sessions, products) == [Rating(1, 4), Rating(1, 4)]
    async with sessions() as session, session.begin():
        await expect_error(
            ErrorCode.REVIEW_EXISTS,
            reviews.post_review(session, customer_id=customer, order_id=order_id, rating=1, now=utcnow()),
        )
        assert await reviews.reviewable_order(session, customer_id=customer) is None
        view, (before, after) = await reviews.set_hidden(session, review_id=posted.review.id, hidden=True)
    assert view.hidden and before is not None and after is not None and (before["hidden"], after["hidden"]) == (False, True)
    assert await _ratings(sessions, products) == [None, None]
    async with sessions() as session, session.begin():
        _, (before, after) = await reviews.set_hidden(session, review_id=posted.review.id, hidden=True)
        assert before == after  # hidden twice: nothing moves
        await reviews.set_hidden(session, review_id=posted.review.id, hidden=False)
        assert [r.id for r in await reviews.product_reviews(session, product_id=products[0])] == [posted.review.id]
        await expect_error(ErrorCode.REVIEW_NOT_FOUND, reviews.set_hidden(session, review_id=999_999, hidden=True))
        points = (await session.scalars(select(PointsEntry.delta).where(PointsEntry.reason == "review"))).all()
    assert await _ratings(sessions, products) == [Rating(1, 4), Rating(1, 4)]
    assert list(points) == [10]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=200))
def test_the_average_is_rounded_half_up_to_one_decimal(ratings: list[int]) -> None:
    average = Rating(len(ratings), sum(ratings)).average
    exact = Fraction(sum(ratings), len(ratings))
    tenths = int(exact * 10 + Fraction(1, 2))
    assert average == f"{tenths // 10}.{tenths % 10}"
    assert 1 <= float(average) <= 5

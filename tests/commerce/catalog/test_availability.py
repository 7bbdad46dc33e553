"""Availability as a pure function (django-oscar's is_purchase_permitted): property tests,
no database (commerce/catalog/availability.py)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from commerce.catalog.availability import (
    NOT_ENOUGH_STOCK,
    OFF_SALE,
    OUT_OF_STOCK,
    Stocked,
    is_purchase_permitted,
)

FAST = settings(max_examples=300, deadline=None, database=None)


@FAST
@given(on_sale=st.booleans(), stock=st.integers(min_value=-5, max_value=1000), quantity=st.integers(min_value=1, max_value=1000))
def test_permitted_exactly_when_on_sale_and_in_stock_for_the_quantity(on_sale: bool, stock: int, quantity: int) -> None:
    ok, reason = is_purchase_permitted(Stocked(on_sale=on_sale, stock=stock), quantity)
    assert ok == (on_sale and stock >= quantity)
    assert (reason is None) == ok
    if not on_sale:
        assert reason == OFF_SALE  # off sale is said first, whatever the stock
    elif stock <= 0:
        assert reason == OUT_OF_STOCK
    elif not ok:
        assert reason == NOT_ENOUGH_STOCK


@FAST
@given(stock=st.integers(min_value=1, max_value=1000), quantity=st.integers(min_value=1, max_value=1000))
def test_fewer_is_permitted_when_more_is(stock: int, quantity: int) -> None:
    item = Stocked(on_sale=True, stock=stock)
    if is_purchase_permitted(item, quantity)[0]:
        assert all(is_purchase_permitted(item, q)[0] for q in range(1, quantity + 1))

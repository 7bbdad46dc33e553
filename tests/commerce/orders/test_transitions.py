"""The order status rules as pure functions: property tests, no database
(commerce/orders/transitions.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from commerce.orders.models import OrderStatus
from commerce.orders.transitions import (
    ALLOWED,
    STAMPS,
    TERMINAL,
    after_sales_permitted,
    can_move,
    stamp_of,
)

S = OrderStatus
FAST = settings(max_examples=300, deadline=None, database=None)
statuses = st.sampled_from(list(OrderStatus))


def _reachable(start: OrderStatus) -> set[OrderStatus]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in ALLOWED[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_every_status_has_rules_and_the_terminal_ones_are_cancelled_and_refunded() -> None:
    assert set(ALLOWED) == set(OrderStatus)
    assert TERMINAL == {S.CANCELLED, S.REFUNDED}


def test_every_status_is_reachable_from_a_new_order() -> None:
    assert _reachable(S.PENDING_PAYMENT) == set(OrderStatus)


def test_every_status_can_end() -> None:
    for status in OrderStatus:
        assert _reachable(status) & TERMINAL, status


@FAST
@given(start=st.sampled_from(sorted(TERMINAL)), path=st.lists(statuses, max_size=8))
def test_no_path_leads_out_of_a_terminal_state(start: OrderStatus, path: list[OrderStatus]) -> None:
    assert not any(can_move(start, to) for to in OrderStatus)
    status = start
    for to in path:  # whatever is tried, nothing moves
        if can_move(status, to):
            status = to
    assert status == start


@FAST
@given(path=st.lists(statuses, max_size=12))
def test_an_unpaid_order_never_ships_nor_refunds(path: list[OrderStatus]) -> None:
    """Only a payment leads on from pending_payment: shipped, completed and the refund
    states are reached through paid."""
    status, visited = S.PENDING_PAYMENT, [S.PENDING_PAYMENT]
    for to in path:
        if can_move(status, to):
            status = to
            visited.append(to)
    if S.PAID not in visited:
        assert set(visited) <= {S.PENDING_PAYMENT, S.CANCELLED}


@FAST
@given(frm=statuses, to=statuses)
def test_a_move_is_never_to_the_same_status_and_stamps_only_on_entry(frm: OrderStatus, to: OrderStatus) -> None:
    if can_move(frm, to):
        assert frm != to
    stamp = stamp_of(frm, to)
    assert stamp is None or stamp == STAMPS[to]
    if frm == S.REFUNDING and to != S.REFUNDED:
        assert stamp is None  # a failed refund goes back where it was: its stamp stands


def test_entering_sets_the_stamp() -> None:
    assert stamp_of(S.PENDING_PAYMENT, S.PAID) == "paid_at"
    assert stamp_of(S.PAID, S.SHIPPED) == "shipped_at"
    assert stamp_of(S.REFUNDING, S.REFUNDED) == "closed_at"
    assert stamp_of(S.REFUNDING, S.SHIPPED) is None


NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


@FAST
@given(
    status=statuses,
    since=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=60)),
    window=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30)),
)
def test_after_sales_on_paid_shipped_and_completed_within_the_window(
    status: OrderStatus, since: timedelta, window: timedelta
) -> None:
    ok, why = after_sales_permitted(status, completed_at=NOW - since, now=NOW, return_window=window)
    if status not in (S.PAID, S.SHIPPED, S.COMPLETED):
        assert (ok, why) == (False, "status")
    elif status == S.COMPLETED:
        assert (ok, why) == ((True, None) if since <= window else (False, "window_closed"))
    else:
        assert (ok, why) == (True, None)  # the window counts from completion only


def test_the_window_includes_its_last_moment() -> None:
    window = timedelta(days=7)
    assert after_sales_permitted(S.COMPLETED, completed_at=NOW - window, now=NOW, return_window=window) == (True, None)
    late = NOW - window - timedelta(seconds=1)
    assert after_sales_permitted(S.COMPLETED, completed_at=late, now=NOW, return_window=window) == (
        False,
        "window_closed",
    )

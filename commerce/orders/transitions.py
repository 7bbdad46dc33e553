"""The order status rules, as pure functions (no database): which moves are allowed,
which timestamp a move sets, and whether after-sales may be asked for.

`commerce.orders.status` reads the order, asks these, then writes. Their invariants
(no way out of a terminal state, every status reachable from `pending_payment`, ...)
are property-tested in tests/commerce/orders/test_transitions.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from commerce.orders.models import OrderStatus

S = OrderStatus
ALLOWED: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.PENDING_PAYMENT: frozenset({S.PAID, S.CANCELLED}),
    S.PAID: frozenset({S.SHIPPED, S.REFUNDING}),
    S.SHIPPED: frozenset({S.COMPLETED, S.REFUNDING}),
    S.COMPLETED: frozenset({S.REFUNDING}),
    S.REFUNDING: frozenset({S.REFUNDED, S.PAID, S.SHIPPED, S.COMPLETED}),
    S.CANCELLED: frozenset(),
    S.REFUNDED: frozenset(),
}
TERMINAL = frozenset(status for status, nexts in ALLOWED.items() if not nexts)
# the timestamp a status sets when entered (not when returning to it from refunding)
STAMPS = {
    S.PAID: "paid_at",
    S.SHIPPED: "shipped_at",
    S.COMPLETED: "completed_at",
    S.CANCELLED: "closed_at",
    S.REFUNDED: "closed_at",
}
AFTER_SALES_STATUSES = frozenset({S.PAID, S.SHIPPED, S.COMPLETED})


def can_move(frm: OrderStatus, to: OrderStatus) -> bool:
    return to in ALLOWED[frm]


def stamp_of(frm: OrderStatus, to: OrderStatus) -> str | None:
    """The timestamp column the move sets: entering a status sets its own, except when a
    failed refund returns the order where it was (its stamp is already set)."""
    stamp = STAMPS.get(to)
    if stamp is None or (frm == S.REFUNDING and to != S.REFUNDED):
        return None
    return stamp


def after_sales_permitted(
    status: OrderStatus, *, completed_at: datetime | None, now: datetime, return_window: timedelta
) -> tuple[bool, str | None]:
    """(ok, reason) for a refund or return request on an order in `status`: on paid or
    shipped orders, and on completed ones within `return_window` of completion."""
    if status not in AFTER_SALES_STATUSES:
        return False, "status"
    if status == S.COMPLETED and now > (completed_at or now) + return_window:
        return False, "window_closed"
    return True, None

"""Order events, and the subscribers that hear them inside the transaction that caused them.

The status machine (`commerce.orders.status.move`) publishes `OrderMoved` once, by
whoever won the move; the refund path (`commerce.payments.refunds`) publishes
`OrderRefunded` for every successful, possibly partial, refund. Group buys, commission,
points and the customer-service window subscribe (`commerce.wiring.shop_bus`), so the
order modules import none of them and no capability grows a branch in the status machine.

Subscribers run in the publisher's transaction, in the order they subscribed; nothing
they do commits, and messages to customers are queued with `commerce.messaging.notices`
(sent after the commit). Money: `OrderRefunded` carries the amount and, when it is the
last of the money, the move to REFUNDED follows as an `OrderMoved`. Reverse amounts
(commission, points) on `OrderRefunded` only; `OrderMoved` is for states. Every change of
stock or of a product publishes `CatalogChanged`: an edit of a product is stamped and
applied to the catalog in memory (`commerce.wiring`), stock moves change nothing there (it
holds no stock); no caller has to remember to refresh anything.

Guards are events published before a change (`ShipRequested`, `RefundRequested`,
`PaymentArriving`): a subscriber refuses by raising a `ShopError`, which rolls the caller's
transaction back, or prepares (takes a lock). Group buys guard shipping and refunding
their seats this way, so the order and payment modules never import group buys.

The bus rides on the session (`SESSION_EVENTS` in `session.info`), like the shop rules:
`commerce.wiring.shop_sessions` makes sessions that carry both. Publishing on a session
made without a bus is a programming error and raises, so that no effect is ever skipped
silently.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

if TYPE_CHECKING:  # for the annotations only: the catalog, below orders, publishes here too
    from commerce.orders.models import OrderStatus

PENDING_PAYMENT, PAID = "pending_payment", "paid"  # OrderStatus values (a StrEnum)

SESSION_EVENTS = "storefront.events"


@dataclass(frozen=True, slots=True)
class OrderMoved:
    order_id: int
    frm: OrderStatus
    to: OrderStatus
    now: datetime

    @property
    def paid(self) -> bool:
        """A payment: pending -> paid (refunding -> paid is a failed refund going back, not money)."""
        return self.frm == PENDING_PAYMENT and self.to == PAID


@dataclass(frozen=True, slots=True)
class OrderRefunded:
    """A refund succeeded; `balance_fen` of `amount_fen` goes back to stored balance."""

    order_id: int
    amount_fen: int
    now: datetime
    balance_fen: int = 0
    refund_no: str = ""


@dataclass(frozen=True, slots=True)
class CatalogChanged:
    """What customers see of the catalog changed. `variant_ids`: their stock moved (an order
    reserved or gave it back); nothing is cached of it. `product_ids`: the products
    themselves (added, renamed, priced, stock counted by staff, put on or off sale,
    imported): they are stamped and the catalog in memory applies them after the commit.
    Neither: the shop's words (synonyms, staff answers). Published by
    `commerce.catalog.inventory`, `commerce.catalog.admin`, `commerce.catalog.csv_io` and
    `commerce.catalog.lexicon`, the only writers of those rows."""

    variant_ids: tuple[int, ...] = ()
    product_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class ReviewPosted:
    """A customer reviewed a received order (once per order: `commerce.reviews`); loyalty
    gives the review points."""

    order_id: int
    customer_id: int
    now: datetime


# ---- guards: published *before* a change, so that a capability may refuse it (raise a
# ShopError) or prepare for it (lock its rows first), without the order code knowing it ----


@dataclass(frozen=True, slots=True)
class ShipRequested:
    """An order is about to ship (group buys refuse a seat whose group has not filled)."""

    order_id: int


@dataclass(frozen=True, slots=True)
class RefundRequested:
    """A refund of `amount_fen` is about to start; `whole`: it is all the money left.
    `purpose`: "after_sales" when an after-sales approval asks first (the guard names it
    in its refusal)."""

    order_id: int
    amount_fen: int
    whole: bool
    purpose: str = "refund"


@dataclass(frozen=True, slots=True)
class PaymentArriving:
    """A payment for the order is about to be applied (group buys lock the seat's group
    first: the order in which every path takes those locks)."""

    order_id: int


Event = OrderMoved | OrderRefunded | CatalogChanged | ReviewPosted | ShipRequested | RefundRequested | PaymentArriving
E = TypeVar(
    "E", OrderMoved, OrderRefunded, CatalogChanged, ReviewPosted, ShipRequested, RefundRequested, PaymentArriving
)
Subscriber = Callable[[AsyncSession, Any], Awaitable[None]]


class EventBus:
    """In-transaction subscribers by event type, called in the order they subscribed."""

    def __init__(self) -> None:
        self._subscribers: dict[type, list[Subscriber]] = {}

    def subscribe(self, kind: type[E], subscriber: Callable[[AsyncSession, E], Awaitable[None]]) -> None:
        self._subscribers.setdefault(kind, []).append(subscriber)

    def subscribers(self, kind: type) -> tuple[Subscriber, ...]:
        return tuple(self._subscribers.get(kind, ()))

    async def publish(self, session: AsyncSession, event: Event) -> None:
        for subscriber in self._subscribers.get(type(event), ()):
            await subscriber(session, event)


async def publish(session: AsyncSession, event: Event) -> None:
    """Tell the subscribers of the bus `session` carries; raises when it carries none."""
    bus = session.info.get(SESSION_EVENTS)
    if not isinstance(bus, EventBus):
        raise RuntimeError(
            "this session carries no event bus: make sessions with commerce.wiring.shop_sessions"
        )
    await bus.publish(session, event)

"""The core's own composition: who hears which order event, and sessions that carry them.

`shop_bus` subscribes each capability to the order events (`commerce.events`), in the
order they must run: the service window, group seats and flash-sale units first, then commission,
points and members' total spent. `shop_sessions` makes the session factory every unit of work uses: its sessions
carry the bus and the shop rules, so code deep in a move (a subscriber) needs neither
passed in, and their commit writes queued notices to the outbox. This is the one module of `commerce` that may import every capability.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from commerce.analytics import events as analytics
from commerce.analytics import subscribers as analytics_subscribers
from commerce.analytics.events import SESSION_ANALYTICS
from commerce.balance import orders as balance_orders
from commerce.catalog.read import Catalog, stamp_products
from commerce.events import (
    SESSION_EVENTS,
    CatalogChanged,
    EventBus,
    OrderMoved,
    OrderRefunded,
    PaymentArriving,
    RefundRequested,
    ReviewPosted,
    ShipRequested,
)
from commerce.groupbuys import groups as group_buys
from commerce.groupbuys import guards as group_guards
from commerce.loyalty import points
from commerce.membership import spending
from commerce.messaging import inbound, notices, outbox
from commerce.orders.models import Order, OrderStatus
from commerce.promotions import flash_sales
from commerce.referrals import commission
from commerce.reviews import actions as reviews
from commerce.rules import SESSION_RULES, ShopRules, session_rules
from commerce.uow import UnitOfWorkFactory


async def _open_service_window(session: AsyncSession, event: OrderMoved) -> None:
    """WeChat's customer-service window: a payment opens a larger one."""
    if not event.paid:
        return
    customer_id = await session.scalar(select(Order.customer_id).where(Order.id == event.order_id))
    if customer_id is not None:
        await outbox.note_payment(session, customer_id=customer_id, now=event.now)


async def _move_group_seat(session: AsyncSession, event: OrderMoved) -> None:
    await group_buys.on_order_moved(session, order_id=event.order_id, frm=event.frm, to=event.to, now=event.now)


async def _move_flash_unit(session: AsyncSession, event: OrderMoved) -> None:
    await flash_sales.on_order_moved(session, order_id=event.order_id, frm=event.frm, to=event.to, now=event.now)


async def _earn_commission(session: AsyncSession, event: OrderMoved) -> None:
    if event.paid:
        await commission.earn_on_paid(session, order_id=event.order_id, now=event.now, rules=session_rules(session))


async def _points_follow_the_order(session: AsyncSession, event: OrderMoved) -> None:
    if event.paid:
        await points.on_paid(session, order_id=event.order_id, now=event.now)
    elif event.to == OrderStatus.CANCELLED:
        await points.on_cancelled(session, order_id=event.order_id, now=event.now)


async def _spending_follows_the_order(session: AsyncSession, event: OrderMoved) -> None:
    if event.paid:  # total spent (and a member's level) in the payment's transaction
        await spending.on_paid(session, order_id=event.order_id)


async def _spending_back_on_refund(session: AsyncSession, event: OrderRefunded) -> None:
    await spending.on_refund(session, order_id=event.order_id, amount_fen=event.amount_fen)


async def _invite_a_review(session: AsyncSession, event: OrderMoved) -> None:
    if event.frm == OrderStatus.SHIPPED and event.to == OrderStatus.COMPLETED:  # received: by the customer or the clock
        await reviews.invite_on_receipt(session, order_id=event.order_id)


async def _points_for_a_review(session: AsyncSession, event: ReviewPosted) -> None:
    await points.on_review(session, order_id=event.order_id, customer_id=event.customer_id, now=event.now)


async def _reverse_commission(session: AsyncSession, event: OrderRefunded) -> None:
    await commission.reverse_on_refund(session, order_id=event.order_id, now=event.now)  # its refunded share


async def _points_back_on_refund(session: AsyncSession, event: OrderRefunded) -> None:
    await points.on_refund(session, order_id=event.order_id, amount_fen=event.amount_fen, now=event.now)


async def _stamp_edited_products(session: AsyncSession, event: CatalogChanged) -> None:
    """Every worker's catalog in memory polls `products.updated_at` for edits made elsewhere
    (a script's too): stamped by whoever edits, orders (stock only) excepted."""
    if event.product_ids:
        await stamp_products(session, event.product_ids)


def shop_bus() -> EventBus:
    bus = EventBus()
    # guards: group buys refuse or prepare before an order ships, is refunded or is paid
    bus.subscribe(ShipRequested, group_guards.ship_only_filled_seats)
    bus.subscribe(RefundRequested, group_guards.keep_seats_of_open_groups)
    bus.subscribe(PaymentArriving, group_guards.lock_the_group_first)
    bus.subscribe(OrderMoved, balance_orders.on_order_moved)  # paid: the held balance spent; cancelled: back
    bus.subscribe(OrderMoved, _open_service_window)
    bus.subscribe(OrderMoved, _move_group_seat)
    bus.subscribe(OrderMoved, _move_flash_unit)  # paid: sold; expired or cancelled: back on sale
    bus.subscribe(OrderMoved, _earn_commission)
    bus.subscribe(OrderMoved, _points_follow_the_order)
    bus.subscribe(OrderMoved, _spending_follows_the_order)
    bus.subscribe(OrderMoved, _invite_a_review)
    bus.subscribe(OrderMoved, analytics_subscribers.count_payment)  # analytics: counted once the payment commits
    bus.subscribe(ReviewPosted, _points_for_a_review)
    bus.subscribe(ReviewPosted, analytics_subscribers.count_review)
    bus.subscribe(OrderRefunded, balance_orders.on_order_refunded)  # its balance share back to the balance
    bus.subscribe(OrderRefunded, _reverse_commission)
    bus.subscribe(OrderRefunded, _points_back_on_refund)
    bus.subscribe(OrderRefunded, _spending_back_on_refund)
    bus.subscribe(CatalogChanged, _stamp_edited_products)
    return bus


def tell_catalog(bus: EventBus, catalog: Catalog) -> None:
    """The catalog in memory hears staff edits: the products (stamped by `shop_bus`) are read
    in the edit's transaction, then applied once it commits.
    Stock moves (orders: `variant_ids` only) change nothing in memory: stock is read when shown."""

    async def catalog_edited(session: AsyncSession, event: CatalogChanged) -> None:
        if event.product_ids:
            await catalog.read_in_transaction(session, product_ids=event.product_ids)
        elif not event.variant_ids:  # the shop's words (synonyms, staff answers)
            await catalog.read_in_transaction(session, words=True)

    bus.subscribe(CatalogChanged, catalog_edited)


class ShopSession(Session):
    """A session whose commit writes the notices it queued to the outbox, in its transaction."""


notices.install(ShopSession)
inbound.install_fence(ShopSession)  # a turn's commits are fenced on its message's lease
analytics.install(ShopSession)  # what a transaction noted is counted once it commits


def shop_sessions(
    engine: AsyncEngine,
    *,
    rules: ShopRules | None = None,
    bus: EventBus | None = None,
    counted: analytics.Sink | None = None,
) -> async_sessionmaker[AsyncSession]:
    """Sessions carrying the shop's rules and event bus (`shop_bus()` unless given), whose
    commit writes queued notices to the outbox (`commerce.messaging.notices`) and hands
    the events it noted to `counted` (`commerce.analytics.events`; None: none counted)."""
    info: dict[str, object] = {SESSION_RULES: rules or ShopRules(), SESSION_EVENTS: bus or shop_bus()}
    if counted is not None:
        info[SESSION_ANALYTICS] = counted
    return async_sessionmaker(engine, expire_on_commit=False, sync_session_class=ShopSession, info=info)


def shop_uows(engine: AsyncEngine, *, rules: ShopRules | None = None, bus: EventBus | None = None) -> UnitOfWorkFactory:
    """Units of work over `shop_sessions` with no dispatcher: for scripts and start-up work
    (what they tell customers waits in the outbox for the scheduler)."""
    rules = rules or ShopRules()
    return UnitOfWorkFactory(shop_sessions(engine, rules=rules, bus=bus), rules)

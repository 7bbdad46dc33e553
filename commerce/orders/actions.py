"""The order use cases, each once: the chat dialog, the staff commands and the scheduler
jobs call these and none re-implements them. Handlers parse, call, render.

Cancelling an unpaid order, whoever does it (the customer in the chat, staff with
`/cancel`, the clock when its time is up, a group buy that ended), has the same effects,
all in the caller's transaction:

- the move pending_payment -> cancelled (`commerce.orders.status.move`): of racing
  cancels, expiries and payments exactly one wins;
- the stock goes back, once (`CatalogChanged`; the catalog in memory holds no stock: lists read it);
- the coupon is freed, the points spent come back (an `OrderMoved` subscriber);
- the customer is told with the template that fits who cancelled (`CANCEL_NOTICES`):
  queued with `commerce.messaging.notices`, except when the customer cancelled in
  the chat (the notice is their reply) or a group ended (the group tells its members);
- an audit entry for staff (`order_cancel`: who, which order, before and after).

Shipping, correcting a shipped order's tracking number, confirming receipt (by the customer, or by the clock after
`rules.auto_complete_after`) and deciding an after-sales request tell the customer the
same way. Nothing here commits: the caller owns the unit of work and sends what was
queued after it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.cart import cart
from commerce.customers.addresses import AddressView
from commerce.db import rowcount
from commerce.errors import ErrorCode, ShopError
from commerce.events import RefundRequested, ShipRequested, publish
from commerce.messaging import notices
from commerce.messaging.notifications import Notification
from commerce.orders import after_sales, carriers
from commerce.orders.after_sales import AfterSalesView
from commerce.orders.models import AfterSalesStatus, Order, OrderLine, OrderStatus
from commerce.orders.queries import find_order
from commerce.orders.rows import current_status, lock_order
from commerce.orders.status import illegal_move, move, release_orders_stock, transition
from commerce.orders.views import OrderView, load_view, load_views, order_data
from commerce.rules import ShopRules, as_utc
from commerce.staff import audit
from commerce.staff.audit import Change

S = OrderStatus


class CancelledBy(enum.StrEnum):
    CUSTOMER = "customer"
    SHOP = "shop"
    TIMEOUT = "timeout"
    GROUP = "group"  # the group buy the order is a seat of failed or was closed


# the message each kind of cancel sends the customer; None: someone else tells them
CANCEL_NOTICES: dict[CancelledBy, str | None] = {
    CancelledBy.CUSTOMER: "order_cancelled",
    CancelledBy.SHOP: "order_cancelled_by_shop",
    CancelledBy.TIMEOUT: "order_expired",
    CancelledBy.GROUP: None,
}
_ACTORS = {CancelledBy.CUSTOMER: "customer", CancelledBy.TIMEOUT: "system", CancelledBy.GROUP: "system"}
_NOTES = {CancelledBy.SHOP: "shop", CancelledBy.TIMEOUT: "expired"}


@dataclass(frozen=True, slots=True)
class Cancellation:
    order: OrderView
    # what the customer hears; queued already unless they cancelled in the chat (reply with it)
    notice: Notification | None


async def _owned(session: AsyncSession, *, order_id: int, customer_id: int | None) -> None:
    owner = await session.scalar(select(Order.customer_id).where(Order.id == order_id))
    if owner is None or (customer_id is not None and owner != customer_id):
        raise ShopError(ErrorCode.ORDER_NOT_FOUND, order_id=order_id)


def _actor(by: CancelledBy, actor: str | None) -> str:
    if actor:
        return actor
    if by == CancelledBy.SHOP:
        raise ValueError("a cancel by the shop names the staff member: actor='staff:<openid>'")
    return _ACTORS[by]


async def _cancelled(session: AsyncSession, *, order_id: int, by: CancelledBy, actor: str, now: datetime) -> Cancellation:
    """What follows a won move to cancelled, the same for every kind of cancel."""
    order = await load_view(session, order_id)
    template = CANCEL_NOTICES[by]
    notice = None
    if template is not None:
        notice = Notification(order.openid, template, order_data(order))
        if by != CancelledBy.CUSTOMER:
            notices.queue(session, openid=notice.openid, template=notice.template, data=notice.data)
    await audit.record(
        session,
        actor=actor,
        role="",
        command="order_cancel",
        args={"order_no": order.order_no, "by": by.value},
        outcome="ok",
        before={"order_no": order.order_no, "status": S.PENDING_PAYMENT.value},
        after={"order_no": order.order_no, "status": order.status.value},
        now=now,
    )
    return Cancellation(order, notice)


async def cancel_order(
    session: AsyncSession,
    *,
    order_id: int,
    by: CancelledBy,
    now: datetime,
    actor: str | None = None,
    customer_id: int | None = None,
    note: str | None = None,
) -> Cancellation:
    """Cancel an unpaid order (see the module's docstring for every effect).

    `customer_id`: the order must be theirs (ORDER_NOT_FOUND otherwise). `actor`: who, as
    the order's history and the audit keep it ("staff:<openid>" for the shop; the
    customer and the clock have defaults). ILLEGAL_TRANSITION (details: from, to) when
    the order is no longer pending, including when a concurrent cancel, expiry or
    payment got there first.
    """
    now, by = as_utc(now), CancelledBy(by)
    who = _actor(by, actor)
    await _owned(session, order_id=order_id, customer_id=customer_id)
    current = await current_status(session, order_id)
    if current != S.PENDING_PAYMENT:
        raise illegal_move(order_id, current, S.CANCELLED)
    cancelled = await cancel_if_unpaid(session, order_id=order_id, by=by, now=now, actor=who, note=note)
    if cancelled is None:
        raise illegal_move(order_id, await current_status(session, order_id), S.CANCELLED)
    return cancelled


async def cancel_if_unpaid(
    session: AsyncSession,
    *,
    order_id: int,
    by: CancelledBy,
    now: datetime,
    actor: str | None = None,
    note: str | None = None,
    release_stock: bool = True,
) -> Cancellation | None:
    """`cancel_order` for callers that find the orders themselves (the clock, an ended
    group): None, and nothing done, when the order is no longer pending.

    `release_stock=False`: the caller gives back the stock of its whole batch in one
    ascending pass (`release_orders_stock`), as `expire_due_orders` does."""
    now, by = as_utc(now), CancelledBy(by)
    who = _actor(by, actor)
    moved = await move(
        session,
        order_id=order_id,
        frm=S.PENDING_PAYMENT,
        to=S.CANCELLED,
        actor=who,
        note=_NOTES.get(by, "") if note is None else note,
        now=now,
        release_stock=release_stock,
    )
    if not moved:
        return None
    return await _cancelled(session, order_id=order_id, by=by, actor=who, now=now)


async def expire_due_orders(session: AsyncSession, *, now: datetime, limit: int = 200) -> list[OrderView]:
    """Cancel the unpaid orders whose time is up (`CancelledBy.TIMEOUT`), as `cancel_order` does.

    Returns the ones this call expired, oldest first; safe to run twice and on several
    workers. At most `limit` a call: call again while it returns `limit`. The stock of
    the batch goes back in one ascending pass over the variants, so that a batch never
    locks variant rows out of order (a deadlock with a checkout on PostgreSQL)."""
    now = as_utc(now)
    due = (
        await session.scalars(
            select(Order.id)
            .where(Order.status == S.PENDING_PAYMENT.value, Order.expires_at <= now)
            .order_by(Order.expires_at, Order.id)
            .limit(limit)
        )
    ).all()
    expired = []
    for order_id in due:
        cancelled = await cancel_if_unpaid(
            session, order_id=order_id, by=CancelledBy.TIMEOUT, now=now, release_stock=False
        )
        if cancelled is not None:
            expired.append(cancelled.order)
    await release_orders_stock(session, [order.id for order in expired])
    return expired


# ---- shipping and receipt -------------------------------------------------------------------


CARRIER_MAX = 32
TRACKING_NO = re.compile(r"^[A-Za-z0-9-]{4,64}$")
MAX_SHIP_LINES = 500  # a batch: one command's lines, one uploaded file's rows


def check_shipment(carrier: str, tracking_no: str) -> tuple[str, str]:
    """The carrier and tracking number as an order keeps them; CARRIER_INVALID,
    TRACKING_INVALID. A carrier `commerce.orders.carriers` does not know is kept as typed."""
    carrier, tracking_no = (carrier or "").strip(), (tracking_no or "").strip()
    if not 1 <= len(carrier) <= CARRIER_MAX or any(c.isspace() or not c.isprintable() for c in carrier):
        raise ShopError(ErrorCode.CARRIER_INVALID, max_length=CARRIER_MAX)
    if not TRACKING_NO.match(tracking_no):
        raise ShopError(ErrorCode.TRACKING_INVALID, tracking_no=tracking_no[:64])
    return carrier, tracking_no


async def ship_order(
    session: AsyncSession,
    *,
    order_id: int,
    carrier: str,
    tracking_no: str,
    actor: str,
    now: datetime,
) -> OrderView:
    """paid -> shipped, with the carrier and tracking number; the customer is told
    (`order_shipped`, with the carrier's name and tracking link when `carriers.toml` knows
    it). GROUP_NOT_FILLED (details: group_code, paid_count, size) for a seat of a group
    that has not filled; ILLEGAL_TRANSITION when the order is not paid (any more). What
    staff typed is checked by `ship_orders` (`check_shipment`), the entry point of `/ship`
    and the bulk ship page."""
    now = as_utc(now)
    await _owned(session, order_id=order_id, customer_id=None)
    values = {"carrier": carrier.strip()[:CARRIER_MAX], "tracking_no": tracking_no.strip()[:64]}
    await publish(session, ShipRequested(order_id))  # e.g. a group seat ships once its group filled
    moved = await move(
        session,
        order_id=order_id,
        frm=S.PAID,
        to=S.SHIPPED,
        actor=actor,
        note=values["tracking_no"],
        now=now,
        values=values,
    )
    if not moved:
        raise illegal_move(order_id, await current_status(session, order_id), S.SHIPPED)
    order = await load_view(session, order_id)
    notices.queue(session, openid=order.openid, template="order_shipped", data=order_data(order))
    return order


def same_shipment(carrier: str, tracking_no: str, *, as_kept: tuple[str, str]) -> bool:
    """Whether a carrier and tracking number are those an order keeps (`as_kept`): the
    same tracking number, and the same carrier by any of its names ("顺丰" is "SF")."""
    kept_carrier, kept_tracking = as_kept
    return tracking_no.strip() == kept_tracking and carriers.stored(carrier) == carriers.stored(kept_carrier)


@dataclass(frozen=True, slots=True)
class ShipmentCorrected:
    order: OrderView  # with the carrier and tracking number it has now
    carrier: str  # what it had before
    tracking_no: str
    changed: bool  # False: it had these already, and nothing was done


async def correct_shipment(
    session: AsyncSession,
    *,
    order_id: int,
    carrier: str,
    tracking_no: str,
    actor: str,
    now: datetime,
) -> ShipmentCorrected:
    """A shipped order's carrier and tracking number, typed wrong, replaced: one
    conditional UPDATE on status shipped, the customer told the corrected tracking
    (`order_tracking_corrected`, queued with the change) and an audit entry
    (`ship_correct`, before and after). The same carrier and number it has already:
    nothing changes, nobody is told (`changed` False). ILLEGAL_TRANSITION (details: from,
    to shipped) unless the order is shipped (a completed or refunded order keeps its
    tracking). CARRIER_INVALID, TRACKING_INVALID as `check_shipment` says."""
    now = as_utc(now)
    carrier, tracking_no = check_shipment(carrier, tracking_no)
    locked = await lock_order(session, order_id)  # a racing correction waits, so `before` is what it replaced
    before = (locked.carrier or "", locked.tracking_no or "")
    if locked.status != S.SHIPPED.value:
        raise illegal_move(order_id, locked.status, S.SHIPPED)
    if same_shipment(carrier, tracking_no, as_kept=before):
        return ShipmentCorrected(await load_view(session, order_id), *before, changed=False)
    changed = await session.execute(
        update(Order)
        .where(Order.id == order_id, Order.status == S.SHIPPED.value)
        .values(carrier=carrier, tracking_no=tracking_no)
        .execution_options(synchronize_session=False)
    )
    if rowcount(changed) != 1:
        raise illegal_move(order_id, await current_status(session, order_id), S.SHIPPED)
    order = await load_view(session, order_id)
    data = order_data(order) | {"before_carrier": before[0], "before_tracking_no": before[1]}
    notices.queue(session, openid=order.openid, template="order_tracking_corrected", data=data)
    await audit.record(
        session,
        actor=actor,
        role="",
        command="ship_correct",
        args={"order_no": order.order_no},
        outcome="ok",
        before={"order_no": order.order_no, "carrier": before[0], "tracking_no": before[1]},
        after={"order_no": order.order_no, "carrier": order.carrier, "tracking_no": order.tracking_no},
        now=now,
    )
    return ShipmentCorrected(order, *before, changed=True)


@dataclass(frozen=True, slots=True)
class ShipLine:
    """One order to ship, as staff typed it (a line of `/ship`, a row of an uploaded file)."""

    ref: str  # the order number, its 16 digits, its end (6 digits or more), or its id (`queries.find_order`)
    carrier: str
    tracking_no: str
    line_no: int = 0  # where it came from, for the report


@dataclass(frozen=True, slots=True)
class ShipResult:
    line: ShipLine
    order: OrderView | None = None  # shipped
    error: ShopError | None = None  # refused, and why

    @property
    def shipped(self) -> bool:
        return self.order is not None


async def ship_orders(
    session: AsyncSession, *, lines: Sequence[ShipLine], actor: str, now: datetime
) -> list[ShipResult]:
    """Ship each line as `ship_order` does, each in a savepoint of its own: a refused line
    (its reason kept: ORDER_NOT_FOUND, CARRIER_INVALID, TRACKING_INVALID,
    GROUP_NOT_FILLED, ILLEGAL_TRANSITION for an order not paid or named twice) changes
    nothing and stops no other. Every customer whose order shipped is told when the
    caller commits. At most MAX_SHIP_LINES lines (CSV_INVALID beyond)."""
    if len(lines) > MAX_SHIP_LINES:
        raise ShopError(ErrorCode.CSV_INVALID, reason="too_many_lines", max_lines=MAX_SHIP_LINES)
    now = as_utc(now)
    results = []
    for line in lines:
        try:
            async with session.begin_nested():
                carrier, tracking_no = check_shipment(line.carrier, line.tracking_no)
                found = await find_order(session, ref=line.ref)
                order = await ship_order(
                    session, order_id=found.id, carrier=carrier, tracking_no=tracking_no, actor=actor, now=now
                )
        except ShopError as exc:
            results.append(ShipResult(line, error=exc))
        else:
            results.append(ShipResult(line, order=order))
    return results


async def confirm_receipt(
    session: AsyncSession, *, order_id: int, customer_id: int, now: datetime
) -> OrderView:
    """The customer says the parcel arrived: shipped -> completed (they are answered in
    the chat). ORDER_NOT_FOUND when it is not theirs; ILLEGAL_TRANSITION unless shipped."""
    await _owned(session, order_id=order_id, customer_id=customer_id)
    return await transition(
        session, order_id=order_id, to=S.COMPLETED, actor="customer", expect=S.SHIPPED, now=as_utc(now)
    )


# An order's delivery address may change until it ships: staff pack what is paid, so a
# change to a paid order is told to them (the caller queues the alert with it).
ADDRESS_CHANGEABLE = (S.PENDING_PAYMENT, S.PAID)


@dataclass(frozen=True, slots=True)
class AddressChanged:
    order: OrderView  # with the new address
    before: str  # the address line it had: "name phone address"


async def change_address(
    session: AsyncSession, *, order_id: int, customer_id: int, address: AddressView, now: datetime
) -> AddressChanged:
    """The customer's own order gets `address` (name, phone, address and its region) while
    it has not shipped. One conditional UPDATE, so a shipment racing it either comes first
    (the change is refused: ADDRESS_FIXED with the status) or ships the new address.
    ORDER_NOT_FOUND when the order is not theirs. Audited; nothing is committed here."""
    await _owned(session, order_id=order_id, customer_id=customer_id)
    had = (await session.execute(
        select(Order.address_name, Order.address_phone, Order.address_text).where(Order.id == order_id)
    )).one()
    changed = await session.execute(
        update(Order)
        .where(Order.id == order_id, Order.status.in_([s.value for s in ADDRESS_CHANGEABLE]))
        .values(
            address_name=address.name, address_phone=address.phone, address_text=address.address,
            address_province=address.province, address_city=address.city,
            address_district=address.district, address_detail=address.detail,
        )
        .execution_options(synchronize_session=False)
    )
    if rowcount(changed) != 1:
        raise ShopError(ErrorCode.ADDRESS_FIXED, order_id=order_id, status=str(await current_status(session, order_id)))
    order = await load_view(session, order_id)
    before = " ".join(had)
    await audit.record(
        session,
        actor="customer",
        role="",
        command="order_address",
        args={"order_no": order.order_no},
        outcome="ok",
        before={"order_no": order.order_no, "address": before},
        after={"order_no": order.order_no, "address": " ".join((address.name, address.phone, address.address))},
        now=as_utc(now),
    )
    return AddressChanged(order, before)


async def complete_due_orders(
    session: AsyncSession, *, now: datetime, rules: ShopRules, limit: int = 200
) -> list[OrderView]:
    """Shipped orders older than `rules.auto_complete_after` complete themselves (actor
    "system") and their customers are told (`order_auto_completed`). Safe to run twice."""
    now = as_utc(now)
    due = (
        await session.scalars(
            select(Order.id)
            .where(Order.status == S.SHIPPED.value, Order.shipped_at <= now - rules.auto_complete_after)
            .order_by(Order.shipped_at, Order.id)
            .limit(limit)
        )
    ).all()
    done = [
        order_id
        for order_id in due
        if await move(
            session, order_id=order_id, frm=S.SHIPPED, to=S.COMPLETED, actor="system", note="auto_complete", now=now
        )
    ]
    completed = await load_views(session, done)
    for order in completed:
        notices.queue(session, openid=order.openid, template="order_auto_completed", data=order_data(order))
    return completed


# ---- after-sales decisions (staff) -----------------------------------------------------------


async def check_after_sales_approvable(session: AsyncSession, *, request_id: int) -> AfterSalesView:
    """The request, if approving it now could refund what is left on its order.

    REQUEST_NOT_FOUND; REQUEST_NOT_OPEN (details: status); GROUP_NOT_FILLED (details:
    action "after_sales", group_code, paid_count, size) for a seat of a group that has not
    filled: its money cannot go back alone (`commerce.groupbuys.guards`), so the request
    is refused here, before anything is decided or told, and stays open."""
    view = await after_sales.get_request(session, request_id=request_id)
    if view.status != AfterSalesStatus.OPEN:
        raise ShopError(ErrorCode.REQUEST_NOT_OPEN, request_id=request_id, status=view.status.value)
    if view.refundable_fen > 0:
        await publish(
            session, RefundRequested(view.order_id, view.refundable_fen, whole=True, purpose="after_sales")
        )
    return view


async def approve_after_sales(
    session: AsyncSession, *, request_id: int, actor: str, now: datetime
) -> tuple[AfterSalesView, Change]:
    """open -> approved. The caller then refunds `view.refundable_fen` through the payment
    service (outside this transaction) and tells the customer what became of the money
    with `tell_after_sales_approved`. Refused as `check_after_sales_approvable` says,
    with nothing changed."""
    await check_after_sales_approvable(session, request_id=request_id)
    return await after_sales.approve(session, request_id=request_id, actor=actor, now=as_utc(now))


def tell_after_sales_approved(session: AsyncSession, *, view: AfterSalesView, refunded_fen: int) -> None:
    """The customer hears their request was approved, and the refund started (0: none)."""
    data = {"order_no": view.order_no, "kind": str(view.kind), "amount_fen": refunded_fen}
    notices.queue(session, openid=view.openid, template="after_sales_approved", data=data)


async def reject_after_sales(
    session: AsyncSession, *, request_id: int, reason: str, actor: str, now: datetime
) -> tuple[AfterSalesView, Change]:
    """open -> rejected with the reason (2-300 characters: REASON_INVALID), and the
    customer told why (`after_sales_rejected`). REQUEST_NOT_FOUND, REQUEST_NOT_OPEN."""
    view, change = await after_sales.reject(
        session, request_id=request_id, reason=reason, actor=actor, now=as_utc(now)
    )
    data = {"order_no": view.order_no, "kind": str(view.kind), "reason": view.resolution}
    notices.queue(session, openid=view.openid, template="after_sales_rejected", data=data)
    return view, change


# ---- buy again ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BoughtAgain:
    """What "buy again" put in the cart from the customer's last order, and what it could not."""

    order_no: str
    added: int  # lines
    missing: tuple[str, ...]  # names of what is sold out or off sale now


async def buy_again(session: AsyncSession, *, customer_id: int, rules: ShopRules) -> BoughtAgain | None:
    """The goods of the customer's latest order into their cart, each as much as they
    bought then, or what there still is; None when they never ordered."""
    order = await session.scalar(
        select(Order).where(Order.customer_id == customer_id).order_by(Order.created_at.desc(), Order.id.desc()).limit(1)
    )
    if order is None:
        return None
    lines = (await session.scalars(select(OrderLine).where(OrderLine.order_id == order.id).order_by(OrderLine.id))).all()
    added, missing = 0, []
    for line in lines:
        try:
            await cart.add_to_cart(
                session, customer_id=customer_id, variant_id=line.variant_id, quantity=line.quantity, rules=rules
            )
        except ShopError as exc:
            left = int(exc.details.get("available") or 0) - int(exc.details.get("in_cart") or 0)
            if exc.code != ErrorCode.OUT_OF_STOCK or left <= 0:
                missing.append(line.name)  # sold out, off sale, or the cart already holds it all
                continue
            await cart.add_to_cart(session, customer_id=customer_id, variant_id=line.variant_id, quantity=left, rules=rules)
        added += 1
    return BoughtAgain(order.order_no, added, tuple(missing))

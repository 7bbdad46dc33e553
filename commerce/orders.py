"""Orders: placing them, their status machine, payments and refunds.

Status machine (every move is one conditional UPDATE ... WHERE status = :from, so of
two racing moves exactly one wins, and each move writes an OrderEvent):

```mermaid
stateDiagram-v2
    [*] --> pending_payment: place_order
    pending_payment --> paid: record_payment
    pending_payment --> cancelled: cancel_order / expire_due_orders (stock released)
    paid --> shipped: ship_order
    shipped --> completed: confirm_receipt / complete_due_orders
    paid --> refunding: start_refund (the rest of the money)
    shipped --> refunding
    completed --> refunding
    refunding --> refunded: record_refund_result (success)
    refunding --> paid: record_refund_result (failure, back where it was)
    refunding --> shipped
    refunding --> completed
```

Side effects belong to the move, so they happen once, done by whoever wins it:
entering `cancelled` releases the stock and frees the coupon; entering `refunded`
releases the stock when the order never shipped (the goods never left). A partial
refund keeps the status and grows `refunded_fen`.

Payments. `record_payment` records the notification first (PaymentEvent, unique on
provider + transaction id) and only the first copy does anything. Policy for money
that arrives when it cannot pay the order:
- "late": the order was cancelled (expired) before the money came. The stock is NOT
  re-reserved; the money is refunded automatically (`start_late_refund`).
- "already_paid": another transaction paid the order first; this one is refunded.
- "amount_mismatch": the amount is not the order's; the order is untouched and the
  money may be refunded the same way.

How late refunds are tracked (they never became the order's `paid_fen`, so they never
touch `paid_fen`/`refunded_fen` or the order's status):
- the Refund row's `refund_no` starts with "RL" (ordinary refunds: "RF");
- its `reason` is machine-readable, "<outcome>:<provider>:<transaction_id>"
  (`late_refund_source` reads it back: the provider needs the transaction id);
- the payment's PaymentEvent `outcome` walks `<outcome>` -> `<outcome>_refund_pending`
  -> `<outcome>_refunded` (or `<outcome>_refund_failed`, after which
  `start_late_refund` may try again), so money still owed back is one query away:
  `outcome LIKE '%_refund_pending'` or an outcome still equal to late/already_paid.

Nothing here commits: the caller owns the unit of work. Placing an order leaves
nothing behind when it fails, even if the caller commits anyway.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from commerce import inventory
from commerce.cart import NOT_ENOUGH_STOCK, OUT_OF_STOCK, CartLineView, remove_variants
from commerce.errors import ErrorCode, ShopError
from commerce.models import (
    Address,
    AfterSalesKind,
    AfterSalesRequest,
    AfterSalesStatus,
    Customer,
    CustomerCoupon,
    CustomerCouponStatus,
    Order,
    OrderEvent,
    OrderLine,
    OrderStatus,
    PaymentEvent,
    Product,
    Refund,
    RefundStatus,
    Variant,
)
from commerce.pricing import Quote, quote
from commerce.rules import ShopRules, as_utc, maybe_utc, utcnow

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
# the timestamp a status sets when entered (not when returning to it from refunding)
_STAMPS = {
    S.PAID: "paid_at",
    S.SHIPPED: "shipped_at",
    S.COMPLETED: "completed_at",
    S.CANCELLED: "closed_at",
    S.REFUNDED: "closed_at",
}
SHOP_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")  # the date inside order numbers
ORDER_NO_PREFIX = "SF"
REFUND_NO_PREFIX = "RF"
LATE_REFUND_NO_PREFIX = "RL"
LATE_OUTCOMES = frozenset({"late", "already_paid", "amount_mismatch"})
AFTER_SALES_REASON = (2, 300)


# ---- read models -------------------------------------------------------------------


@dataclass(frozen=True)
class OrderLineView:
    name: str
    spec_label: str
    sku_code: str
    unit_price_fen: int
    quantity: int
    subtotal_fen: int
    variant_id: int = 0
    product_id: int = 0


class OrderEventView(NamedTuple):
    from_status: str | None
    to_status: str
    actor: str
    note: str
    created_at: datetime


@dataclass(frozen=True)
class OrderView:
    id: int
    order_no: str
    customer_id: int
    openid: str
    status: OrderStatus
    lines: tuple[OrderLineView, ...]
    goods_fen: int
    discount_fen: int
    delivery_fen: int
    points_fen: int
    payable_fen: int
    paid_fen: int
    refunded_fen: int
    address_name: str
    address_phone: str
    address_text: str
    created_at: datetime
    expires_at: datetime
    paid_at: datetime | None
    shipped_at: datetime | None
    carrier: str
    tracking_no: str
    pay_provider: str
    events: tuple[OrderEventView, ...]
    completed_at: datetime | None = None
    closed_at: datetime | None = None
    note: str = ""
    customer_coupon_id: int | None = None
    pay_transaction_id: str | None = None

    @property
    def item_count(self) -> int:
        return sum(line.quantity for line in self.lines)


@dataclass(frozen=True)
class PaymentOutcome:
    result: str  # "applied" | "duplicate" | "amount_mismatch" | "late" | "unknown_order" | "already_paid"
    order: OrderView | None


@dataclass(frozen=True)
class LateRefundSource:
    outcome: str  # late | already_paid | amount_mismatch
    provider: str
    transaction_id: str


def _view(order: Order, openid: str) -> OrderView:
    return OrderView(
        id=order.id,
        order_no=order.order_no,
        customer_id=order.customer_id,
        openid=openid,
        status=OrderStatus(order.status),
        lines=tuple(
            OrderLineView(
                name=ln.name,
                spec_label=ln.spec_label,
                sku_code=ln.sku_code,
                unit_price_fen=ln.unit_price_fen,
                quantity=ln.quantity,
                subtotal_fen=ln.unit_price_fen * ln.quantity,
                variant_id=ln.variant_id,
                product_id=ln.product_id,
            )
            for ln in order.lines
        ),
        goods_fen=order.goods_fen,
        discount_fen=order.discount_fen,
        delivery_fen=order.delivery_fen,
        points_fen=order.points_fen,
        payable_fen=order.payable_fen,
        paid_fen=order.paid_fen,
        refunded_fen=order.refunded_fen,
        address_name=order.address_name,
        address_phone=order.address_phone,
        address_text=order.address_text,
        created_at=as_utc(order.created_at),
        expires_at=as_utc(order.expires_at),
        paid_at=maybe_utc(order.paid_at),
        shipped_at=maybe_utc(order.shipped_at),
        carrier=order.carrier,
        tracking_no=order.tracking_no,
        pay_provider=order.pay_provider,
        events=tuple(
            OrderEventView(e.from_status, e.to_status, e.actor, e.note, as_utc(e.created_at)) for e in order.events
        ),
        completed_at=maybe_utc(order.completed_at),
        closed_at=maybe_utc(order.closed_at),
        note=order.note,
        customer_coupon_id=order.customer_coupon_id,
        pay_transaction_id=order.pay_transaction_id,
    )


async def _views(session: AsyncSession, order_ids: Sequence[int]) -> list[OrderView]:
    if not order_ids:
        return []
    await session.flush()
    rows = await session.execute(
        select(Order, Customer.openid)
        .join(Customer, Customer.id == Order.customer_id)
        .where(Order.id.in_(list(order_ids)))
        .options(selectinload(Order.lines), selectinload(Order.events))
        .execution_options(populate_existing=True)
    )
    by_id = {order.id: _view(order, openid) for order, openid in rows}
    return [by_id[i] for i in order_ids if i in by_id]


async def _load_view(session: AsyncSession, order_id: int) -> OrderView:
    views = await _views(session, [order_id])
    if not views:
        raise ShopError(ErrorCode.ORDER_NOT_FOUND, order_id=order_id)
    return views[0]


async def get_order(
    session: AsyncSession,
    *,
    order_id: int | None = None,
    order_no: str | None = None,
    customer_id: int | None = None,
) -> OrderView:
    """One order by id or number; ORDER_NOT_FOUND also when it is not `customer_id`'s."""
    if (order_id is None) == (order_no is None):
        raise ValueError("give exactly one of order_id and order_no")
    where = Order.id == order_id if order_id is not None else Order.order_no == order_no
    found = await session.scalar(select(Order.id).where(where))
    if found is None:
        raise ShopError(ErrorCode.ORDER_NOT_FOUND, order_id=order_id, order_no=order_no)
    view = await _load_view(session, found)
    if customer_id is not None and view.customer_id != customer_id:
        raise ShopError(ErrorCode.ORDER_NOT_FOUND, order_id=order_id, order_no=order_no)
    return view


async def list_orders(
    session: AsyncSession,
    *,
    customer_id: int,
    limit: int = 10,
    offset: int = 0,
    statuses: Collection[OrderStatus] | None = None,
) -> list[OrderView]:
    """A customer's orders, newest first."""
    query = select(Order.id).where(Order.customer_id == customer_id)
    if statuses is not None:
        query = query.where(Order.status.in_([OrderStatus(s).value for s in statuses]))
    ids = (await session.scalars(query.order_by(Order.created_at.desc(), Order.id.desc()).limit(limit).offset(offset))).all()
    return await _views(session, ids)


# ---- helpers ------------------------------------------------------------------------


def _insert(session: AsyncSession, model: Any) -> Any:
    """INSERT with ON CONFLICT support: no SAVEPOINT needed to survive a duplicate.

    (On SQLite, a SAVEPOINT that opens the transaction is committed by its RELEASE,
    whatever the caller does next; an ON CONFLICT insert has no such trap.)
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - the shop runs on these two
        raise NotImplementedError(f"unsupported database: {dialect}")
    return insert(model)


def _random_digits(count: int) -> str:
    return f"{secrets.randbelow(10**count):0{count}d}"


def new_order_no(now: datetime) -> str:
    """"SF" + the shop's date (yyyymmdd, China time) + 8 random digits."""
    return f"{ORDER_NO_PREFIX}{now.astimezone(SHOP_TZ):%Y%m%d}{_random_digits(8)}"


def _new_refund_no(prefix: str, now: datetime) -> str:
    return f"{prefix}{now.astimezone(SHOP_TZ):%Y%m%d}{_random_digits(10)}"


async def _record_event(
    session: AsyncSession,
    *,
    provider: str,
    event_key: str,
    kind: str,
    order_id: int | None,
    amount_fen: int,
    payload: dict,
) -> int | None:
    """Record a provider notification once; None when (provider, event_key) was seen before."""
    result = await session.execute(
        _insert(session, PaymentEvent)
        .values(
            provider=provider,
            event_key=event_key,
            kind=kind,
            order_id=order_id,
            amount_fen=amount_fen,
            outcome="processing",
            payload=payload,
            received_at=utcnow(),
        )
        .on_conflict_do_nothing()
        .returning(PaymentEvent.id)
    )
    return result.scalar_one_or_none()


async def _set_event_outcome(session: AsyncSession, event_id: int, outcome: str) -> None:
    await session.execute(
        update(PaymentEvent)
        .where(PaymentEvent.id == event_id)
        .values(outcome=outcome)
        .execution_options(synchronize_session=False)
    )


async def _status(session: AsyncSession, order_id: int) -> OrderStatus:
    status = await session.scalar(select(Order.status).where(Order.id == order_id))
    if status is None:
        raise ShopError(ErrorCode.ORDER_NOT_FOUND, order_id=order_id)
    return OrderStatus(status)


async def _lock_order(session: AsyncSession, order_id: int) -> Order:
    """Serialise work on one order: a no-op UPDATE takes the row lock (PostgreSQL) or the
    write lock (SQLite) before the order is read, so check-then-write is safe."""
    result = await session.execute(
        update(Order).where(Order.id == order_id).values(id=Order.id).execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise ShopError(ErrorCode.ORDER_NOT_FOUND, order_id=order_id)
    order = await session.scalar(
        select(Order).where(Order.id == order_id).execution_options(populate_existing=True)
    )
    assert order is not None
    return order


async def _owned_order_id(session: AsyncSession, *, order_id: int, customer_id: int | None) -> int:
    owner = await session.scalar(select(Order.customer_id).where(Order.id == order_id))
    if owner is None or (customer_id is not None and owner != customer_id):
        raise ShopError(ErrorCode.ORDER_NOT_FOUND, order_id=order_id)
    return order_id


def _illegal(order_id: int, frm: OrderStatus | str, to: OrderStatus) -> ShopError:
    return ShopError(ErrorCode.ILLEGAL_TRANSITION, order_id=order_id, **{"from": str(frm), "to": str(to)})


# ---- the status machine -------------------------------------------------------------


async def _move(
    session: AsyncSession,
    *,
    order_id: int,
    frm: OrderStatus,
    to: OrderStatus,
    actor: str,
    note: str = "",
    now: datetime,
    values: dict[str, Any] | None = None,
) -> bool:
    """Move from `frm` to `to` if the order is still in `frm`; False when someone else moved it."""
    if to not in ALLOWED[frm]:
        raise _illegal(order_id, frm, to)
    changes: dict[str, Any] = {"status": to.value}
    stamp = _STAMPS.get(to)
    if stamp is not None and (frm != S.REFUNDING or to == S.REFUNDED):
        changes[stamp] = now
    changes.update(values or {})
    result = await session.execute(
        update(Order)
        .where(Order.id == order_id, Order.status == frm.value)
        .values(**changes)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    session.add(OrderEvent(order_id=order_id, from_status=frm.value, to_status=to.value, actor=actor[:80], note=note[:200], created_at=now))
    if to == S.CANCELLED:
        await _release_order_stock(session, order_id)
        await _free_coupon(session, order_id)
    elif to == S.REFUNDED:
        shipped_at = await session.scalar(select(Order.shipped_at).where(Order.id == order_id))
        if shipped_at is None:  # refunded before shipping: the goods are still here
            await _release_order_stock(session, order_id)
    await session.flush()
    return True


async def _release_order_stock(session: AsyncSession, order_id: int) -> None:
    rows = await session.execute(
        select(OrderLine.variant_id, func.sum(OrderLine.quantity))
        .where(OrderLine.order_id == order_id)
        .group_by(OrderLine.variant_id)
        .order_by(OrderLine.variant_id)
    )
    for variant_id, quantity in rows.all():
        await inventory.release(session, variant_id=variant_id, quantity=int(quantity))


async def _free_coupon(session: AsyncSession, order_id: int) -> None:
    coupon_id = await session.scalar(select(Order.customer_coupon_id).where(Order.id == order_id))
    if coupon_id is not None:
        await session.execute(
            update(CustomerCoupon)
            .where(CustomerCoupon.id == coupon_id, CustomerCoupon.status == CustomerCouponStatus.USED.value)
            .values(status=CustomerCouponStatus.AVAILABLE.value, used_at=None)
            .execution_options(synchronize_session=False)
        )


async def transition(
    session: AsyncSession,
    *,
    order_id: int,
    to: OrderStatus,
    actor: str,
    note: str = "",
    expect: OrderStatus | None = None,
    now: datetime | None = None,
) -> OrderView:
    """Move an order to `to`; ILLEGAL_TRANSITION (details: from, to) unless ALLOWED.

    `expect` names the status the caller saw; the move is refused if it has changed.
    Of two racing transitions exactly one wins; the loser gets ILLEGAL_TRANSITION.
    """
    now = as_utc(now or utcnow())
    to = OrderStatus(to)
    current = await _status(session, order_id)
    if expect is not None and current != expect:
        raise _illegal(order_id, current, to)
    if not await _move(session, order_id=order_id, frm=current, to=to, actor=actor, note=note, now=now):
        raise _illegal(order_id, await _status(session, order_id), to)
    return await _load_view(session, order_id)


# ---- placing an order ----------------------------------------------------------------


async def place_order(
    session: AsyncSession,
    *,
    customer_id: int,
    address_id: int,
    idempotency_key: str,
    rules: ShopRules,
    customer_coupon_id: int | None = None,
    note: str = "",
    now: datetime | None = None,
    expected_payable_fen: int | None = None,
) -> OrderView:
    """Turn the current cart into a pending order and reserve its stock.

    The cart is re-quoted here, with today's prices and stock. Refused with
    CART_EMPTY, OUT_OF_STOCK / NOT_ON_SALE (details: `problems`, one dict per line) when
    a line cannot be bought as it is, or PRICE_CHANGED when `expected_payable_fen`
    (the total the customer confirmed) is given and no longer right. A refused order
    leaves nothing reserved, used or written. The same `idempotency_key` (per customer)
    returns the order it created, unchanged (also when two calls race).
    """
    now = as_utc(now or utcnow())
    key = _scoped_key(customer_id, idempotency_key)
    existing = await _order_id_for_key(session, key)
    if existing is not None:
        return await _load_view(session, existing)
    address = await session.scalar(
        select(Address).where(Address.id == address_id, Address.customer_id == customer_id)
    )
    if address is None:
        raise ShopError(ErrorCode.ADDRESS_NOT_FOUND, address_id=address_id)
    priced = await quote(session, customer_id=customer_id, rules=rules, customer_coupon_id=customer_coupon_id, now=now)
    _check_quote(priced, expected_payable_fen)
    openid = await session.scalar(select(Customer.openid).where(Customer.id == customer_id))
    assert openid is not None  # the address belongs to this customer

    # Everything is read; now write, holding locks as briefly as possible: the hot rows
    # (the variants of a flash sale) are updated last, and nothing is read back after.
    inserted = await _insert_order(
        session,
        customer_id=customer_id,
        key=key,
        order_no=new_order_no(now),
        priced=priced,
        address=address,
        note=note,
        now=now,
        rules=rules,
    )
    if inserted is None:  # the same key won a race on another worker
        existing = await _order_id_for_key(session, key)
        assert existing is not None
        return await _load_view(session, existing)
    order_no, order_id = inserted
    try:
        # the INSERT above opened the transaction, so this SAVEPOINT nests properly on SQLite too
        async with session.begin_nested():
            await _take_goods(session, order_id=order_id, customer_id=customer_id, priced=priced, now=now)
    except ShopError:
        await session.execute(delete(Order).where(Order.id == order_id).execution_options(synchronize_session=False))
        raise
    return OrderView(
        id=order_id,
        order_no=order_no,
        customer_id=customer_id,
        openid=openid,
        status=S.PENDING_PAYMENT,
        lines=tuple(_line_view(line) for line in priced.lines),
        goods_fen=priced.goods_fen,
        discount_fen=priced.discount_fen,
        delivery_fen=priced.delivery_fen,
        points_fen=priced.points_fen,
        payable_fen=priced.payable_fen,
        paid_fen=0,
        refunded_fen=0,
        address_name=address.name,
        address_phone=address.phone,
        address_text=address.address,
        created_at=now,
        expires_at=now + rules.order_timeout,
        paid_at=None,
        shipped_at=None,
        carrier="",
        tracking_no="",
        pay_provider="",
        events=(OrderEventView(None, S.PENDING_PAYMENT.value, "customer", "", now),),
        note=_order_note(note),
        customer_coupon_id=priced.coupon.customer_coupon_id if priced.coupon else None,
    )


def _order_note(note: str) -> str:
    return note.strip()[:200]


def _line_row(order_id: int, line: CartLineView) -> dict[str, Any]:
    """The snapshot of a cart line kept with the order."""
    return {
        "order_id": order_id,
        "product_id": line.product_id,
        "variant_id": line.variant_id,
        "sku_code": line.sku_code,
        "name": line.name[:100],
        "spec_label": line.spec_label[:100],
        "unit_price_fen": line.unit_price_fen,
        "quantity": line.quantity,
    }


def _line_view(line: CartLineView) -> OrderLineView:
    row = _line_row(0, line)
    return OrderLineView(
        name=row["name"],
        spec_label=row["spec_label"],
        sku_code=row["sku_code"],
        unit_price_fen=row["unit_price_fen"],
        quantity=row["quantity"],
        subtotal_fen=row["unit_price_fen"] * row["quantity"],
        variant_id=row["variant_id"],
        product_id=row["product_id"],
    )


async def _order_id_for_key(session: AsyncSession, key: str) -> int | None:
    return await session.scalar(select(Order.id).where(Order.idempotency_key == key))


def _scoped_key(customer_id: int, idempotency_key: str) -> str:
    """Keys are the customer's own: two customers may use the same one (stored as "<id>:<key>")."""
    if not idempotency_key:
        raise ValueError("an idempotency key is required")
    key = f"{customer_id}:{idempotency_key}"
    if len(key) > 100:  # the column's size: keep long keys distinct
        key = f"{customer_id}:sha256:{hashlib.sha256(idempotency_key.encode()).hexdigest()}"
    return key


def _problem_details(line: CartLineView) -> dict[str, Any]:
    return {
        "variant_id": line.variant_id,
        "name": line.name,
        "spec_label": line.spec_label,
        "problem": line.problem,
        "quantity": line.quantity,
        "available": line.stock if line.on_sale else 0,
        "unit_price_fen": line.unit_price_fen,
    }


def _check_quote(priced: Quote, expected_payable_fen: int | None) -> None:
    if priced.is_empty:
        raise ShopError(ErrorCode.CART_EMPTY)
    if priced.problems:
        problems = [_problem_details(p) for p in priced.problems]
        stock_trouble = any(p.problem in (OUT_OF_STOCK, NOT_ENOUGH_STOCK) for p in priced.problems)
        first = problems[0]
        raise ShopError(
            ErrorCode.OUT_OF_STOCK if stock_trouble else ErrorCode.NOT_ON_SALE,
            name=first["name"],
            spec_label=first["spec_label"],
            available=first["available"],
            problems=problems,
        )
    if expected_payable_fen is not None and expected_payable_fen != priced.payable_fen:
        raise ShopError(
            ErrorCode.PRICE_CHANGED, expected_fen=expected_payable_fen, payable_fen=priced.payable_fen
        )


async def _insert_order(
    session: AsyncSession,
    *,
    customer_id: int,
    key: str,
    order_no: str,
    priced: Quote,
    address: Address,
    note: str,
    now: datetime,
    rules: ShopRules,
) -> tuple[str, int] | None:
    """Claim the idempotency key with the order row: (order_no, id), or None when the key is taken."""
    for _attempt in range(5):
        result = await session.execute(
            _insert(session, Order)
            .values(
                order_no=order_no,
                customer_id=customer_id,
                status=S.PENDING_PAYMENT.value,
                idempotency_key=key,
                goods_fen=priced.goods_fen,
                discount_fen=priced.discount_fen,
                delivery_fen=priced.delivery_fen,
                points_fen=priced.points_fen,
                payable_fen=priced.payable_fen,
                paid_fen=0,
                refunded_fen=0,
                customer_coupon_id=priced.coupon.customer_coupon_id if priced.coupon else None,
                address_name=address.name,
                address_phone=address.phone,
                address_text=address.address,
                note=_order_note(note),
                created_at=now,
                expires_at=now + rules.order_timeout,
            )
            .on_conflict_do_nothing()
            .returning(Order.id)
        )
        order_id = result.scalar_one_or_none()
        if order_id is not None:
            return order_no, order_id
        if await _order_id_for_key(session, key) is not None:
            return None
        order_no = new_order_no(now)  # the random order number was taken: draw another
    raise RuntimeError("could not allocate a unique order number")


async def _take_goods(
    session: AsyncSession, *, order_id: int, customer_id: int, priced: Quote, now: datetime
) -> None:
    """Snapshot the lines, empty them from the cart, use the coupon, then reserve the
    stock (ascending variant id): the contended rows last, so their locks are short."""
    await session.execute(insert(OrderLine), [_line_row(order_id, line) for line in priced.lines])
    await session.execute(
        insert(OrderEvent),
        [{"order_id": order_id, "from_status": None, "to_status": S.PENDING_PAYMENT.value, "actor": "customer", "note": "", "created_at": now}],
    )
    await remove_variants(session, customer_id=customer_id, variant_ids=[ln.variant_id for ln in priced.lines])
    if priced.coupon is not None:
        result = await session.execute(
            update(CustomerCoupon)
            .where(
                CustomerCoupon.id == priced.coupon.customer_coupon_id,
                CustomerCoupon.customer_id == customer_id,
                CustomerCoupon.status == CustomerCouponStatus.AVAILABLE.value,
            )
            .values(status=CustomerCouponStatus.USED.value, used_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise ShopError(
                ErrorCode.COUPON_INVALID, reason="used", customer_coupon_id=priced.coupon.customer_coupon_id
            )
    for line in sorted(priced.lines, key=lambda ln: ln.variant_id):
        if not await inventory.reserve(session, variant_id=line.variant_id, quantity=line.quantity):
            available = await session.scalar(select(Variant.stock).where(Variant.id == line.variant_id)) or 0
            problem = OUT_OF_STOCK if available <= 0 else NOT_ENOUGH_STOCK
            details = _problem_details(line) | {"problem": problem, "available": available}
            raise ShopError(
                ErrorCode.OUT_OF_STOCK,
                name=line.name,
                spec_label=line.spec_label,
                available=available,
                problems=[details],
            )


# ---- customer and staff actions --------------------------------------------------------


async def cancel_order(
    session: AsyncSession,
    *,
    order_id: int,
    actor: str,
    customer_id: int | None = None,
    note: str = "",
    now: datetime | None = None,
) -> OrderView:
    """Cancel an unpaid order: its stock goes back and its coupon is freed, exactly once.

    ILLEGAL_TRANSITION (details: from) when it is no longer pending, including when a
    concurrent cancel, expiry or payment got there first.
    """
    await _owned_order_id(session, order_id=order_id, customer_id=customer_id)
    return await transition(
        session, order_id=order_id, to=S.CANCELLED, actor=actor, note=note, expect=S.PENDING_PAYMENT, now=now
    )


async def ship_order(
    session: AsyncSession,
    *,
    order_id: int,
    carrier: str,
    tracking_no: str,
    actor: str,
    now: datetime | None = None,
) -> OrderView:
    """paid -> shipped, with the carrier and tracking number."""
    now = as_utc(now or utcnow())
    await _owned_order_id(session, order_id=order_id, customer_id=None)
    values = {"carrier": carrier.strip()[:32], "tracking_no": tracking_no.strip()[:64]}
    moved = await _move(
        session, order_id=order_id, frm=S.PAID, to=S.SHIPPED, actor=actor, note=values["tracking_no"], now=now, values=values
    )
    if not moved:
        raise _illegal(order_id, await _status(session, order_id), S.SHIPPED)
    return await _load_view(session, order_id)


async def confirm_receipt(
    session: AsyncSession, *, order_id: int, customer_id: int, now: datetime | None = None
) -> OrderView:
    """The customer says the parcel arrived: shipped -> completed."""
    await _owned_order_id(session, order_id=order_id, customer_id=customer_id)
    return await transition(
        session, order_id=order_id, to=S.COMPLETED, actor="customer", expect=S.SHIPPED, now=now
    )


async def request_after_sales(
    session: AsyncSession,
    *,
    order_id: int,
    customer_id: int,
    kind: AfterSalesKind,
    reason: str,
    rules: ShopRules,
    now: datetime | None = None,
) -> AfterSalesRequest:
    """Ask for a refund or a return: on paid or shipped orders, and on completed ones
    within `rules.return_window`; one open request per order."""
    now = as_utc(now or utcnow())
    kind = AfterSalesKind(kind)
    reason = (reason or "").strip()
    low, high = AFTER_SALES_REASON
    if not low <= len(reason) <= high:
        raise ShopError(ErrorCode.REASON_INVALID, min_length=low, max_length=high)
    await _owned_order_id(session, order_id=order_id, customer_id=customer_id)
    order = await _lock_order(session, order_id)
    status = OrderStatus(order.status)
    if status not in (S.PAID, S.SHIPPED, S.COMPLETED):
        raise ShopError(ErrorCode.AFTER_SALES_NOT_ALLOWED, reason="status", status=status.value)
    if status == S.COMPLETED:
        completed_at = maybe_utc(order.completed_at) or now
        if now > completed_at + rules.return_window:
            raise ShopError(
                ErrorCode.AFTER_SALES_NOT_ALLOWED, reason="window_closed", days=rules.return_window.days
            )
    open_request = await session.scalar(
        select(AfterSalesRequest.id).where(
            AfterSalesRequest.order_id == order_id, AfterSalesRequest.status == AfterSalesStatus.OPEN.value
        )
    )
    if open_request is not None:
        raise ShopError(ErrorCode.AFTER_SALES_NOT_ALLOWED, reason="open_request", request_id=open_request)
    request = AfterSalesRequest(
        order_id=order_id, customer_id=customer_id, kind=kind.value, reason=reason, created_at=now
    )
    session.add(request)
    await session.flush()
    return request


# ---- the clock (scheduler jobs) ---------------------------------------------------------


async def expire_due_orders(session: AsyncSession, *, now: datetime, limit: int = 200) -> list[OrderView]:
    """Cancel unpaid orders whose time is up (actor "system", note "expired"), releasing
    their stock. Returns the ones this call expired, oldest first; safe to run twice and
    on several workers. At most `limit` per call: call again while it returns `limit`."""
    now = as_utc(now)
    due = (
        await session.scalars(
            select(Order.id)
            .where(Order.status == S.PENDING_PAYMENT.value, Order.expires_at <= now)
            .order_by(Order.expires_at, Order.id)
            .limit(limit)
        )
    ).all()
    expired = [
        order_id
        for order_id in due
        if await _move(
            session, order_id=order_id, frm=S.PENDING_PAYMENT, to=S.CANCELLED, actor="system", note="expired", now=now
        )
    ]
    return await _views(session, expired)


async def orders_to_remind(
    session: AsyncSession, *, now: datetime, rules: ShopRules, limit: int = 200
) -> list[OrderView]:
    """Unpaid orders expiring within `rules.remind_before`, each returned once (reminded_at is set)."""
    now = as_utc(now)
    candidates = (
        await session.scalars(
            select(Order.id)
            .where(
                Order.status == S.PENDING_PAYMENT.value,
                Order.reminded_at.is_(None),
                Order.expires_at > now,
                Order.expires_at <= now + rules.remind_before,
            )
            .order_by(Order.expires_at, Order.id)
            .limit(limit)
        )
    ).all()
    claimed = []
    for order_id in candidates:
        result = await session.execute(
            update(Order)
            .where(Order.id == order_id, Order.reminded_at.is_(None), Order.status == S.PENDING_PAYMENT.value)
            .values(reminded_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            claimed.append(order_id)
    return await _views(session, claimed)


async def complete_due_orders(
    session: AsyncSession, *, now: datetime, rules: ShopRules, limit: int = 200
) -> list[OrderView]:
    """Shipped orders older than `rules.auto_complete_after` complete themselves (actor "system")."""
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
        if await _move(
            session, order_id=order_id, frm=S.SHIPPED, to=S.COMPLETED, actor="system", note="auto_complete", now=now
        )
    ]
    return await _views(session, done)


# ---- payments ------------------------------------------------------------------------


async def record_payment(
    session: AsyncSession,
    *,
    provider: str,
    order_no: str,
    transaction_id: str,
    amount_fen: int,
    paid_at: datetime,
    payload: dict,
) -> PaymentOutcome:
    """Apply a verified payment notification, once.

    The notification is recorded first (unique on provider + transaction id), so a
    repeated copy is "duplicate" and changes nothing. See the module docstring for
    "late", "already_paid" and "amount_mismatch" (the caller refunds those).
    """
    paid_at = as_utc(paid_at)
    row = (
        await session.execute(select(Order.id, Order.payable_fen).where(Order.order_no == order_no))
    ).first()
    order_id = row.id if row is not None else None
    event_id = await _record_event(
        session,
        provider=provider,
        event_key=transaction_id,
        kind="payment",
        order_id=order_id,
        amount_fen=amount_fen,
        payload=payload,
    )
    if event_id is None:
        return PaymentOutcome("duplicate", await _load_view(session, order_id) if order_id is not None else None)
    if row is None:
        await _set_event_outcome(session, event_id, "unknown_order")
        return PaymentOutcome("unknown_order", None)
    assert order_id is not None
    if amount_fen != row.payable_fen:
        result = "amount_mismatch"
    elif await _move(
        session,
        order_id=order_id,
        frm=S.PENDING_PAYMENT,
        to=S.PAID,
        actor=f"provider:{provider}",
        note=transaction_id,
        now=utcnow(),
        values={
            "paid_at": paid_at,
            "paid_fen": amount_fen,
            "pay_provider": provider[:20],
            "pay_transaction_id": transaction_id[:64],
        },
    ):
        result = "applied"
        await _count_sales(session, order_id)
    else:
        result = "late" if await _status(session, order_id) == S.CANCELLED else "already_paid"
    await _set_event_outcome(session, event_id, result)
    return PaymentOutcome(result, await _load_view(session, order_id))


async def _count_sales(session: AsyncSession, order_id: int) -> None:
    """Paid orders feed the products' sales counts ("hot" lists); ascending product id."""
    rows = await session.execute(
        select(OrderLine.product_id, func.sum(OrderLine.quantity))
        .where(OrderLine.order_id == order_id)
        .group_by(OrderLine.product_id)
        .order_by(OrderLine.product_id)
    )
    for product_id, quantity in rows.all():
        await session.execute(
            update(Product)
            .where(Product.id == product_id)
            .values(sales_count=Product.sales_count + int(quantity), updated_at=Product.updated_at)
            .execution_options(synchronize_session=False)
        )


# ---- refunds -------------------------------------------------------------------------


async def _insert_refund(
    session: AsyncSession, *, prefix: str, order_id: int, amount_fen: int, reason: str, actor: str, now: datetime
) -> Refund:
    for _attempt in range(5):
        result = await session.execute(
            _insert(session, Refund)
            .values(
                refund_no=_new_refund_no(prefix, now),
                order_id=order_id,
                amount_fen=amount_fen,
                reason=reason[:200],
                status=RefundStatus.PENDING.value,
                actor=actor[:80],
                created_at=now,
            )
            .on_conflict_do_nothing()
            .returning(Refund.id)
        )
        refund_id = result.scalar_one_or_none()
        if refund_id is not None:
            refund = await session.get(Refund, refund_id)
            assert refund is not None
            return refund
    raise RuntimeError("could not allocate a unique refund number")


async def refundable_fen(session: AsyncSession, *, order_id: int) -> int:
    """Paid money not yet refunded nor being refunded."""
    order = await session.scalar(select(Order).where(Order.id == order_id).execution_options(populate_existing=True))
    if order is None:
        raise ShopError(ErrorCode.ORDER_NOT_FOUND, order_id=order_id)
    return order.paid_fen - order.refunded_fen - await _pending_refunds_fen(session, order_id)


async def _pending_refunds_fen(session: AsyncSession, order_id: int) -> int:
    pending = await session.scalar(
        select(func.coalesce(func.sum(Refund.amount_fen), 0)).where(
            Refund.order_id == order_id,
            Refund.status == RefundStatus.PENDING.value,
            Refund.refund_no.not_like(f"{LATE_REFUND_NO_PREFIX}%"),
        )
    )
    return int(pending or 0)


async def start_refund(
    session: AsyncSession,
    *,
    order_id: int,
    amount_fen: int,
    reason: str,
    actor: str,
    now: datetime | None = None,
) -> Refund:
    """Open a refund of paid money (the caller then asks the provider, outside the transaction).

    At most paid - refunded - pending refunds (REFUND_TOO_LARGE, details: available;
    NOTHING_TO_REFUND when nothing is left). Refunding all that is left moves the
    order to refunding; a partial refund keeps its status.
    """
    now = as_utc(now or utcnow())
    if amount_fen <= 0:
        raise ShopError(ErrorCode.AMOUNT_INVALID, amount_fen=amount_fen)
    order = await _lock_order(session, order_id)
    status = OrderStatus(order.status)
    available = order.paid_fen - order.refunded_fen - await _pending_refunds_fen(session, order_id)
    if status not in (S.PAID, S.SHIPPED, S.COMPLETED, S.REFUNDING) or available <= 0:
        raise ShopError(ErrorCode.NOTHING_TO_REFUND, status=status.value, available=max(available, 0))
    if amount_fen > available:
        raise ShopError(ErrorCode.REFUND_TOO_LARGE, available=available, amount_fen=amount_fen)
    refund = await _insert_refund(
        session, prefix=REFUND_NO_PREFIX, order_id=order_id, amount_fen=amount_fen, reason=reason, actor=actor, now=now
    )
    if amount_fen == available and status != S.REFUNDING:
        await _move(session, order_id=order_id, frm=status, to=S.REFUNDING, actor=actor, note=refund.refund_no, now=now)
    return refund


def late_refund_source(refund: Refund) -> LateRefundSource | None:
    """For a late refund ("RL..."), the payment it gives back; None for an ordinary refund."""
    if not refund.refund_no.startswith(LATE_REFUND_NO_PREFIX):
        return None
    outcome, provider, transaction_id = refund.reason.split(":", 2)
    return LateRefundSource(outcome=outcome, provider=provider, transaction_id=transaction_id)


async def start_late_refund(
    session: AsyncSession,
    *,
    provider: str,
    order_no: str,
    transaction_id: str,
    amount_fen: int,
    now: datetime | None = None,
) -> Refund:
    """Open the refund of a payment that never paid its order ("late", "already_paid" or
    "amount_mismatch"). Idempotent: while one is pending or done, that one is returned;
    after a failed one, a new one is opened. NOTHING_TO_REFUND for any other payment."""
    now = as_utc(now or utcnow())
    event = await session.scalar(
        select(PaymentEvent)
        .where(PaymentEvent.provider == provider, PaymentEvent.event_key == transaction_id, PaymentEvent.kind == "payment")
        .execution_options(populate_existing=True)
    )
    order_id = await session.scalar(select(Order.id).where(Order.order_no == order_no))
    if event is None or order_id is None or event.order_id != order_id:
        raise ShopError(ErrorCode.NOTHING_TO_REFUND, reason="unknown_payment")
    base = event.outcome.split("_refund", 1)[0]
    if base not in LATE_OUTCOMES:
        raise ShopError(ErrorCode.NOTHING_TO_REFUND, reason=event.outcome)
    if not 0 < amount_fen <= event.amount_fen:
        raise ShopError(ErrorCode.REFUND_TOO_LARGE, available=event.amount_fen, amount_fen=amount_fen)
    claimed = await session.execute(
        update(PaymentEvent)
        .where(PaymentEvent.id == event.id, PaymentEvent.outcome.in_([base, f"{base}_refund_failed"]))
        .values(outcome=f"{base}_refund_pending")
        .execution_options(synchronize_session=False)
    )
    reason = f"{base}:{provider}:{transaction_id}"
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        existing = await session.scalar(
            select(Refund)
            .where(
                Refund.order_id == order_id,
                Refund.reason == reason,
                Refund.status.in_([RefundStatus.PENDING.value, RefundStatus.SUCCEEDED.value]),
            )
            .order_by(Refund.id.desc())
            .limit(1)
        )
        if existing is None:
            raise ShopError(ErrorCode.NOTHING_TO_REFUND, reason=event.outcome)
        return existing
    return await _insert_refund(
        session,
        prefix=LATE_REFUND_NO_PREFIX,
        order_id=order_id,
        amount_fen=amount_fen,
        reason=reason,
        actor=f"provider:{provider}",
        now=now,
    )


async def record_refund_result(
    session: AsyncSession,
    *,
    provider: str,
    refund_no: str,
    succeeded: bool,
    provider_refund_id: str,
    payload: dict,
    now: datetime | None = None,
) -> str:
    """Apply the provider's verdict on a refund, once: "applied" | "duplicate" | "unknown_refund".

    Success grows refunded_fen; when everything is refunded, refunding -> refunded.
    Failure of a refund while the order is refunding takes the order back to the
    status it had before. Late refunds only update their payment's outcome.
    """
    now = as_utc(now or utcnow())
    refund = await session.scalar(
        select(Refund).where(Refund.refund_no == refund_no).execution_options(populate_existing=True)
    )
    event_id = await _record_event(
        session,
        provider=provider,
        event_key=provider_refund_id or refund_no,
        kind="refund",
        order_id=refund.order_id if refund is not None else None,
        amount_fen=refund.amount_fen if refund is not None else 0,
        payload=payload,
    )
    if event_id is None:
        return "duplicate"
    if refund is None:
        await _set_event_outcome(session, event_id, "unknown_refund")
        return "unknown_refund"
    new_status = RefundStatus.SUCCEEDED if succeeded else RefundStatus.FAILED
    settled = await session.execute(
        update(Refund)
        .where(Refund.id == refund.id, Refund.status == RefundStatus.PENDING.value)
        .values(
            status=new_status.value,
            provider_refund_id=(provider_refund_id or refund.provider_refund_id),
            completed_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if settled.rowcount != 1:  # type: ignore[attr-defined]  # settled before, under another key
        await _set_event_outcome(session, event_id, "ignored_not_pending")
        return "duplicate"
    await _set_event_outcome(session, event_id, new_status.value)
    await session.refresh(refund)
    source = late_refund_source(refund)
    if source is not None:
        await _settle_late_refund(session, source, succeeded=succeeded)
    elif succeeded:
        await _refund_succeeded(session, refund, actor=f"provider:{provider}", now=now)
    else:
        await _refund_failed(session, refund, actor=f"provider:{provider}", now=now)
    return "applied"


async def _settle_late_refund(session: AsyncSession, source: LateRefundSource, *, succeeded: bool) -> None:
    final = f"{source.outcome}_refunded" if succeeded else f"{source.outcome}_refund_failed"
    await session.execute(
        update(PaymentEvent)
        .where(
            PaymentEvent.provider == source.provider,
            PaymentEvent.event_key == source.transaction_id,
            PaymentEvent.kind == "payment",
            PaymentEvent.outcome == f"{source.outcome}_refund_pending",
        )
        .values(outcome=final)
        .execution_options(synchronize_session=False)
    )


async def _refund_succeeded(session: AsyncSession, refund: Refund, *, actor: str, now: datetime) -> None:
    await session.execute(
        update(Order)
        .where(Order.id == refund.order_id)
        .values(refunded_fen=Order.refunded_fen + refund.amount_fen)
        .execution_options(synchronize_session=False)
    )
    row = (
        await session.execute(
            select(Order.status, Order.paid_fen, Order.refunded_fen).where(Order.id == refund.order_id)
        )
    ).one()
    if row.status == S.REFUNDING.value and row.refunded_fen >= row.paid_fen:
        await _move(
            session, order_id=refund.order_id, frm=S.REFUNDING, to=S.REFUNDED, actor=actor, note=refund.refund_no, now=now
        )


async def _refund_failed(session: AsyncSession, refund: Refund, *, actor: str, now: datetime) -> None:
    if await _status(session, refund.order_id) != S.REFUNDING:
        return
    before = await session.scalar(
        select(OrderEvent.from_status)
        .where(OrderEvent.order_id == refund.order_id, OrderEvent.to_status == S.REFUNDING.value)
        .order_by(OrderEvent.id.desc())
        .limit(1)
    )
    back = OrderStatus(before) if before in (S.PAID, S.SHIPPED, S.COMPLETED) else S.PAID
    await _move(
        session,
        order_id=refund.order_id,
        frm=S.REFUNDING,
        to=back,
        actor=actor,
        note=f"{refund.refund_no} failed",
        now=now,
    )

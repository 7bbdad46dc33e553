"""Orders: reading them and placing them.

The order capability is split by what each part does, one module each:
- `commerce.orders.placement` (here): reading and listing orders, whether one can be
  paid now, and placement (`place_order`: the cart becomes a pending order, stock reserved;
  `place_group_order` / `place_offer_order`: one unit at a group-buy or flash-sale price). All make their rows through one
  creator, `create_order` (idempotency key, totals, lines, coupon, points, stock);
- `commerce.orders.views`: the read models (`OrderView` ...);
- `commerce.orders.status`: the status machine (diagram there);
- `commerce.orders.actions`: the use cases on orders (cancel, ship, receipt, after-sales);
- `commerce.payments.records`: applying payment notifications (`record_payment`);
- `commerce.payments.refunds`: refunds, including of money that never paid its order.
Each is imported from where it lives: nothing is re-exported here.

Nothing here commits: the caller owns the unit of work. Placing an order leaves
nothing behind when it fails, even if the caller commits anyway.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.analytics import events as analytics
from commerce.cart.calculations import delivery_fee
from commerce.cart.cart import (
    NOT_ENOUGH_STOCK,
    OUT_OF_STOCK,
    CartLineView,
    remove_variants,
    spec_label,
)
from commerce.cart.pricing import Quote, quote
from commerce.catalog import inventory
from commerce.catalog.models import Product, ProductStatus, Variant
from commerce.customers.addresses import AddressView
from commerce.customers.models import Address, Customer
from commerce.db import rowcount
from commerce.db import upsert_insert as _insert
from commerce.errors import ErrorCode, ShopError
from commerce.loyalty import points
from commerce.orders.models import Order, OrderEvent, OrderLine, OrderStatus
from commerce.orders.rows import SHOP_TZ, random_digits
from commerce.orders.status import (
    illegal_move,
)
from commerce.orders.views import OrderEventView, OrderLineView, OrderView, load_view, load_views
from commerce.promotions.models import CustomerCoupon, CustomerCouponStatus
from commerce.rules import ShopRules, as_utc, utcnow

S = OrderStatus

ORDER_NO_PREFIX = "SF"


# ---- reading orders ----------------------------------------------------------------


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
    found = order_id if order_id is not None else await session.scalar(select(Order.id).where(Order.order_no == order_no))
    if found is None:
        raise ShopError(ErrorCode.ORDER_NOT_FOUND, order_id=order_id, order_no=order_no)
    views = await load_views(session, [found])  # one read fewer by id: the view's own finds it or not
    if not views or (customer_id is not None and views[0].customer_id != customer_id):
        raise ShopError(ErrorCode.ORDER_NOT_FOUND, order_id=order_id, order_no=order_no)
    return views[0]


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
    ids = (
        await session.scalars(
            query.order_by(Order.created_at.desc(), Order.id.desc()).limit(limit).offset(offset)
        )
    ).all()
    return await load_views(session, ids)


async def payable_order(
    session: AsyncSession,
    *,
    order_no: str,
    customer_id: int | None = None,
    now: datetime | None = None,
) -> OrderView:
    """The order, if it can be paid now (for the payment page, before asking the provider).

    ORDER_NOT_FOUND; ORDER_EXPIRED when its time is up (cancelled by expiry, or pending
    past `expires_at` and about to be); ILLEGAL_TRANSITION (details: from) when it is
    paid, cancelled or further along. A payment that still arrives is handled by
    `record_payment` whatever this said.
    """
    now = as_utc(now or utcnow())
    view = await get_order(session, order_no=order_no, customer_id=customer_id)
    if view.status == S.PENDING_PAYMENT and view.expires_at <= now:
        raise ShopError(ErrorCode.ORDER_EXPIRED, order_no=order_no, expires_at=view.expires_at)
    if view.status == S.CANCELLED and view.events and view.events[-1].note == "expired":
        raise ShopError(ErrorCode.ORDER_EXPIRED, order_no=order_no, expires_at=view.expires_at)
    if view.status != S.PENDING_PAYMENT:
        raise illegal_move(view.id, view.status, S.PAID)
    return view


# ---- placing an order ----------------------------------------------------------------


def new_order_no(now: datetime) -> str:
    """An order number: "SF", the shop's date (yyyymmdd, China time), 8 random digits."""
    return f"{ORDER_NO_PREFIX}{now.astimezone(SHOP_TZ):%Y%m%d}{random_digits(8)}"


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
    use_points: bool = False,
) -> OrderView:
    """Turn the current cart into a pending order and reserve its stock.

    `use_points`: spend the customer's points as the quote says (`commerce.cart.pricing`),
    taken in the order's transaction; POINTS_CHANGED (details: points_used, balance) when
    the balance no longer holds them.

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
        return await load_view(session, existing)
    address = await _address(session, address_id=address_id, customer_id=customer_id)
    priced = await quote(
        session,
        customer_id=customer_id,
        rules=rules,
        customer_coupon_id=customer_coupon_id,
        now=now,
        use_points=use_points,
    )
    try:
        _check_quote(priced, expected_payable_fen)
    except ShopError:
        # A call with the same key may have placed the order (and emptied the cart) since
        # the check above: that order is the answer, not "cart empty".
        existing = await _order_id_for_key(session, key)
        if existing is None:
            raise
        return await load_view(session, existing)
    openid = await session.scalar(select(Customer.openid).where(Customer.id == customer_id))
    assert openid is not None  # the address belongs to this customer

    # Everything is read; now write, holding locks as briefly as possible: the hot rows
    # (the variants of a flash sale) are updated last, and nothing is read back after.
    created = await create_order(
        session, NewOrder(customer_id=customer_id, key=key, priced=priced, address=address, note=note),
        now=now, rules=rules,
    )
    if created is None:  # the same key won a race on another worker
        existing = await _order_id_for_key(session, key)
        assert existing is not None
        return await load_view(session, existing)
    order_id, order_no = created
    return _placed_view(
        NewOrder(customer_id=customer_id, key=key, priced=priced, address=address, note=note),
        order_id=order_id, order_no=order_no, openid=openid, now=now, rules=rules,
    )


def _placed_view(
    new: NewOrder, *, order_id: int, order_no: str, openid: str, now: datetime, rules: ShopRules
) -> OrderView:
    """The view of an order `create_order` just wrote, from what it wrote: the same view a
    read of the rows gives (`load_view`; tests/commerce/orders hold the two equal), without
    the three reads."""
    priced, address = new.priced, new.address
    return OrderView(
        id=order_id,
        order_no=order_no,
        customer_id=new.customer_id,
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
        events=(OrderEventView(None, S.PENDING_PAYMENT.value, "customer", new.event_note, now),),
        note=_order_note(new.note),
        customer_coupon_id=priced.coupon.customer_coupon_id if priced.coupon else None,
        address_province=address.province,
        address_city=address.city,
        address_district=address.district,
        address_detail=address.detail,
        level_discount_fen=priced.level_discount_fen,
        member_level=priced.level_name,
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
            ErrorCode.PRICE_CHANGED,
            expected_fen=expected_payable_fen,
            payable_fen=priced.payable_fen,
        )


@dataclass(frozen=True, slots=True)
class NewOrder:
    """What a new order is made of: its priced lines and totals (a `Quote`), where it goes,
    and where it comes from (the cart, or a group-buy seat)."""

    customer_id: int
    key: str  # the scoped idempotency key (`_scoped_key`)
    priced: Quote
    address: Address | AddressView  # the row, or its view as read for this customer
    note: str = ""
    group_id: int | None = None  # a seat of this group buy
    event_note: str = ""  # the note of its first event ("group" for a seat, "flash" for a flash unit)
    from_cart: bool = True  # its lines leave the cart (an offer's single unit does not come from it)
    # what the caller writes with the order (given its id) before the stock, the contended rows
    before_stock: Callable[[int], Awaitable[None]] | None = None
    # the order's writes in a SAVEPOINT of their own (False: in the caller's transaction,
    # which a refusal must roll back; two round trips fewer)
    own_savepoint: bool = True
    # how its stock is taken (variant id, quantity) -> taken: `inventory.reserve` unless the
    # caller takes another contended row with it (a flash unit: `inventory.reserve_then`)
    reserve: Callable[[int, int], Awaitable[bool]] | None = None


async def create_order(
    session: AsyncSession, new: NewOrder, *, now: datetime, rules: ShopRules
) -> tuple[int, str] | None:
    """The one creator of order rows, for cart orders and group seats alike: (id, order_no),
    or None when the idempotency key is taken already (the caller loads that order).

    The order row claims the key; then its lines, its first event, the lines leave the
    cart, the coupon is used, the points spent, the caller's `before_stock` written and the
    stock reserved (ascending variant id: the contended rows last, so their locks are
    short), in a SAVEPOINT (or the caller's: `NewOrder.own_savepoint`). A refusal
    (COUPON_INVALID, POINTS_CHANGED, OUT_OF_STOCK) leaves nothing written and raises (in the
    caller's SAVEPOINT, once the caller rolls it back)."""
    inserted = await _insert_order(session, new, order_no=new_order_no(now), now=now, rules=rules)
    if inserted is None:
        return None
    order_no, order_id = inserted
    if new.own_savepoint:
        try:
            # the INSERT above opened the transaction, so this SAVEPOINT nests properly on SQLite too
            async with session.begin_nested():
                await _take_goods(session, new, order_id=order_id, now=now)
        except ShopError:
            await session.execute(
                delete(Order).where(Order.id == order_id).execution_options(synchronize_session=False)
            )
            raise
    else:  # in the caller's SAVEPOINT, which a refusal rolls back with the order row
        await _take_goods(session, new, order_id=order_id, now=now)
    analytics.note(session, analytics.order(new.customer_id, order_id, new.priced.payable_fen))  # counted on commit
    return order_id, order_no


async def _address(session: AsyncSession, *, address_id: int, customer_id: int) -> Address:
    address = await session.scalar(
        select(Address).where(Address.id == address_id, Address.customer_id == customer_id)
    )
    if address is None:
        raise ShopError(ErrorCode.ADDRESS_NOT_FOUND, address_id=address_id)
    return address


async def _insert_order(
    session: AsyncSession, new: NewOrder, *, order_no: str, now: datetime, rules: ShopRules
) -> tuple[str, int] | None:
    """Claim the idempotency key with the order row: (order_no, id), or None when the key is taken."""
    priced, address = new.priced, new.address
    for _attempt in range(5):
        result = await session.execute(
            _insert(session, Order)
            .values(
                order_no=order_no,
                customer_id=new.customer_id,
                status=S.PENDING_PAYMENT.value,
                idempotency_key=new.key,
                goods_fen=priced.goods_fen,
                discount_fen=priced.discount_fen,
                delivery_fen=priced.delivery_fen,
                points_fen=priced.points_fen,
                points_used=priced.points_used,
                level_discount_fen=priced.level_discount_fen,
                member_level=priced.level_name,
                payable_fen=priced.payable_fen,
                paid_fen=0,
                refunded_fen=0,
                customer_coupon_id=priced.coupon.customer_coupon_id if priced.coupon else None,
                group_id=new.group_id,
                address_name=address.name,
                address_phone=address.phone,
                address_text=address.address,
                address_province=address.province,
                address_city=address.city,
                address_district=address.district,
                address_detail=address.detail,
                note=_order_note(new.note),
                created_at=now,
                expires_at=now + rules.order_timeout,
            )
            .on_conflict_do_nothing()
            .returning(Order.id)
        )
        order_id = result.scalar_one_or_none()
        if order_id is not None:
            return order_no, order_id
        if await _order_id_for_key(session, new.key) is not None:
            return None
        order_no = new_order_no(now)  # the random order number was taken: draw another
    raise RuntimeError("could not allocate a unique order number")


async def _take_goods(session: AsyncSession, new: NewOrder, *, order_id: int, now: datetime) -> None:
    """Snapshot the lines, empty them from the cart, use the coupon, then reserve the
    stock (ascending variant id): the contended rows last, so their locks are short."""
    priced, customer_id = new.priced, new.customer_id
    await session.execute(insert(OrderLine), [_line_row(order_id, line) for line in priced.lines])
    await session.execute(
        insert(OrderEvent),
        [
            {
                "order_id": order_id,
                "from_status": None,
                "to_status": S.PENDING_PAYMENT.value,
                "actor": "customer",
                "note": new.event_note,
                "created_at": now,
            }
        ],
    )
    if new.from_cart:
        await remove_variants(
            session, customer_id=customer_id, variant_ids=[ln.variant_id for ln in priced.lines]
        )
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
        if rowcount(result) != 1:
            raise ShopError(
                ErrorCode.COUPON_INVALID,
                reason="used",
                customer_coupon_id=priced.coupon.customer_coupon_id,
            )
    # --- points (commerce.loyalty.points): spent by conditional UPDATE, so never below zero ---
    if not await points.spend(
        session, customer_id=customer_id, points=priced.points_used, order_id=order_id, now=now
    ):
        raise ShopError(
            ErrorCode.POINTS_CHANGED,
            points_used=priced.points_used,
            balance=await points.balance(session, customer_id),
        )
    if new.before_stock is not None:
        await new.before_stock(order_id)
    for line in sorted(priced.lines, key=lambda ln: ln.variant_id):
        taken = (
            await new.reserve(line.variant_id, line.quantity) if new.reserve is not None
            else await inventory.reserve(session, variant_id=line.variant_id, quantity=line.quantity)
        )
        if not taken:
            available = (
                await session.scalar(select(Variant.stock).where(Variant.id == line.variant_id))
                or 0
            )
            problem = OUT_OF_STOCK if available <= 0 else NOT_ENOUGH_STOCK
            details = _problem_details(line) | {"problem": problem, "available": available}
            raise ShopError(
                ErrorCode.OUT_OF_STOCK,
                name=line.name,
                spec_label=line.spec_label,
                available=available,
                problems=[details],
            )


# ---- one unit at an offer's price: a group-buy seat, a flash-sale unit -----------------------


async def place_group_order(
    session: AsyncSession,
    *,
    customer_id: int,
    address_id: int,
    idempotency_key: str,
    rules: ShopRules,
    variant_id: int,
    unit_price_fen: int,
    group_id: int,
    now: datetime,
) -> tuple[int, OrderView | None]:
    """A pending order of one unit of `variant_id` at the group price, for a seat in `group_id`
    (`place_offer_order`). The caller (`commerce.groupbuys.groups`) takes the seat in the same
    transaction and undoes everything on failure."""
    return await place_offer_order(
        session, customer_id=customer_id, address_id=address_id, idempotency_key=idempotency_key,
        rules=rules, variant_id=variant_id, unit_price_fen=unit_price_fen, now=now,
        group_id=group_id, event_note="group",
    )


async def place_offer_order(
    session: AsyncSession,
    *,
    customer_id: int,
    address_id: int,
    idempotency_key: str,
    rules: ShopRules,
    variant_id: int,
    unit_price_fen: int,
    now: datetime,
    group_id: int | None = None,
    event_note: str = "",
    before_stock: Callable[[int], Awaitable[None]] | None = None,
    address: AddressView | None = None,
    openid: str | None = None,
    own_savepoint: bool = True,
    reserve: Callable[[int, int], Awaitable[bool]] | None = None,
) -> tuple[int, OrderView | None]:
    """A pending order of one unit of `variant_id` at an offer's price (a group seat: `group_id`;
    a flash-sale unit), expiring after `rules.order_timeout`. `before_stock`: what the caller
    writes with a new order (given its id), before the stock is reserved (a flash unit's claim:
    the contended rows stay last, their locks short).

    Not from the cart (the cart is left alone) and without coupon or points: the offer's
    price is the discount. Delivery follows the shop's rules. Stock is reserved like any
    order's (OUT_OF_STOCK / NOT_ON_SALE otherwise).

    Returns (order id, view): the view of the order as written when this call created it
    and the caller gave the customer's `openid`; None when the key's order existed already
    (a run again, a race; the caller loads it) or without `openid`. `address`: the row of
    `address_id` when the caller has read it for this customer (it is not read again). `own_savepoint=False`:
    the caller's transaction holds the order's writes, and a refusal must roll it back
    (`create_order`). `reserve`: takes the unit's stock instead of `inventory.reserve`
    (`NewOrder.reserve`). A flash winner's turn saves those reads and round trips.
    """
    now = as_utc(now)
    key = _scoped_key(customer_id, idempotency_key)
    to: Address | AddressView = (
        address if address is not None and address.id == address_id
        else await _address(session, address_id=address_id, customer_id=customer_id)
    )
    row = (
        await session.execute(
            select(Variant, Product).join(Product, Product.id == Variant.product_id).where(Variant.id == variant_id)
        )
    ).first()
    if row is None:
        raise ShopError(ErrorCode.VARIANT_NOT_FOUND, ref=str(variant_id), skus=[])
    variant, product = row
    on_sale = product.status == ProductStatus.ON_SALE.value
    line = CartLineView(
        line_id=0,
        variant_id=variant.id,
        product_id=product.id,
        name=product.name,
        spec_label=spec_label(variant.spec),
        unit_price_fen=unit_price_fen,
        quantity=1,
        subtotal_fen=unit_price_fen,
        stock=variant.stock,
        on_sale=on_sale,
        problem=None if on_sale else "off_sale",
        sku_code=variant.sku_code,
    )
    if not on_sale:
        existing = await _order_id_for_key(session, key)  # placed before the product left the shelf
        if existing is not None:
            return existing, None
        raise ShopError(
            ErrorCode.NOT_ON_SALE, name=line.name, spec_label=line.spec_label, available=0,
            problems=[_problem_details(line)],
        )
    delivery = delivery_fee(unit_price_fen, rules=rules)  # the cart's rule, for one unit
    priced = Quote(
        lines=(line,),
        goods_fen=unit_price_fen,
        discount_fen=0,
        delivery_fen=delivery,
        points_fen=0,
        payable_fen=unit_price_fen + delivery,
        coupon=None,
        other_coupons=(),
        problems=(),
    )
    new = NewOrder(
        customer_id=customer_id, key=key, priced=priced, address=to, group_id=group_id,
        event_note=event_note, from_cart=False, before_stock=before_stock, own_savepoint=own_savepoint,
        reserve=reserve,
    )
    # no look for the key first: the order's INSERT claims it, and finds the one that holds it
    created = await create_order(session, new, now=now, rules=rules)
    if created is None:  # the key's order exists: this call's run before, or a race on another worker
        existing = await _order_id_for_key(session, key)
        assert existing is not None
        return existing, None
    order_id, order_no = created
    if openid is None:
        return order_id, None
    return order_id, _placed_view(new, order_id=order_id, order_no=order_no, openid=openid, now=now, rules=rules)


# ---- the public face of the order capability ------------------------------------------

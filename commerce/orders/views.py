"""Order read models: the frozen views of an order that handlers and templates consume,
and loading them (fresh from the database) by id. Nothing here commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from commerce.customers.models import Customer
from commerce.errors import ErrorCode, ShopError
from commerce.orders import carriers
from commerce.orders.models import Order, OrderStatus
from commerce.rules import as_utc, maybe_utc


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
    # where the address is (empty on orders placed before regions were read)
    address_province: str = ""
    address_city: str = ""
    address_district: str = ""
    address_detail: str = ""
    # the member level's discount (after the coupon) and its level ("" none)
    level_discount_fen: int = 0
    member_level: str = ""
    balance_fen: int = 0  # of payable_fen, the part paid from stored balance

    @property
    def due_fen(self) -> int:
        """What the payment provider is asked for."""
        return self.payable_fen - self.balance_fen

    @property
    def item_count(self) -> int:
        return sum(line.quantity for line in self.lines)


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
            OrderEventView(e.from_status, e.to_status, e.actor, e.note, as_utc(e.created_at))
            for e in order.events
        ),
        completed_at=maybe_utc(order.completed_at),
        closed_at=maybe_utc(order.closed_at),
        note=order.note,
        customer_coupon_id=order.customer_coupon_id,
        pay_transaction_id=order.pay_transaction_id,
        address_province=order.address_province,
        address_city=order.address_city,
        address_district=order.address_district,
        address_detail=order.address_detail,
        level_discount_fen=order.level_discount_fen,
        member_level=order.member_level,
        balance_fen=order.balance_fen,
    )


async def load_views(session: AsyncSession, order_ids: Sequence[int]) -> list[OrderView]:
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


async def load_view(session: AsyncSession, order_id: int) -> OrderView:
    views = await load_views(session, [order_id])
    if not views:
        raise ShopError(ErrorCode.ORDER_NOT_FOUND, order_id=order_id)
    return views[0]


def order_data(order: OrderView) -> dict[str, Any]:
    """What a message template may show of an order: plain values, no ORM objects.

    The one order-to-template view: replies, staff commands, jobs and notices all use it."""
    return {
        "order_no": order.order_no,
        "status": str(order.status),
        "lines": [
            {"name": line.name, "spec": line.spec_label, "price": line.unit_price_fen,
             "quantity": line.quantity, "subtotal": line.subtotal_fen}
            for line in order.lines
        ],
        "items": [{"name": line.name, "spec": line.spec_label, "quantity": line.quantity} for line in order.lines],
        "goods": order.goods_fen,
        "discount": order.discount_fen,
        "level_discount": order.level_discount_fen,
        "member_level": order.member_level,
        "delivery": order.delivery_fen,
        "payable": order.payable_fen,
        "paid": order.paid_fen,
        "refunded": order.refunded_fen,
        "payable_fen": order.payable_fen,
        "paid_fen": order.paid_fen,
        "balance_fen": order.balance_fen,  # paid from stored balance
        "due_fen": order.payable_fen - order.balance_fen,  # left for the payment provider
        "address_name": order.address_name,
        "address_phone": order.address_phone,
        "address_text": order.address_text,
        "created_at": order.created_at,
        "expires_at": order.expires_at,
        "carrier": order.carrier,
        "tracking_no": order.tracking_no,
        **tracking_data(order.carrier, order.tracking_no),
    }


def tracking_data(carrier: str, tracking_no: str) -> dict[str, str]:
    """The carrier's name in each locale and the page that follows the parcel ("" when the
    carrier is not in `carriers.toml`)."""
    zh, url = carriers.display(carrier, tracking_no, "zh")
    en, _ = carriers.display(carrier, tracking_no, "en")
    return {"carrier_zh": zh, "carrier_en": en, "tracking_url": url}

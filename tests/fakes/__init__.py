"""Fakes for tests: a WeChat Pay server (`wechatpay`), a shop order to pay (`insert_order`), and
what the shop told customers through the outbox (`outbox_notices`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.catalog.models import Variant
from commerce.customers.models import Customer
from commerce.messaging import notices
from commerce.messaging.models import OutboxMessage
from commerce.messaging.notifications import Notification
from commerce.orders.models import Order, OrderEvent, OrderLine, OrderStatus
from commerce.orders.placement import new_order_no


@dataclass(frozen=True)
class PlacedOrder:
    id: int
    order_no: str
    openid: str
    payable_fen: int


async def insert_order(
    sessions: async_sessionmaker[AsyncSession],
    *,
    openid: str = "o_payer_1",
    quantity: int = 2,
    expires_in: timedelta = timedelta(minutes=30),
) -> PlacedOrder:
    """A pending order of the first demo variant, as `place_order` leaves one (stock not reserved)."""
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        variant = await session.scalar(select(Variant).order_by(Variant.id).limit(1))
        assert variant is not None, "seed the demo catalog first"
        await session.refresh(variant, ["product"])
        customer = await session.scalar(select(Customer).where(Customer.openid == openid))
        if customer is None:
            customer = Customer(openid=openid, locale="zh")
            session.add(customer)
            await session.flush()
        goods = variant.price_fen * quantity
        order = Order(
            order_no=new_order_no(now),
            customer_id=customer.id,
            status=OrderStatus.PENDING_PAYMENT.value,
            goods_fen=goods,
            delivery_fen=0,
            payable_fen=goods,
            address_name="张三",
            address_phone="13800000000",
            address_text="上海市浦东新区世纪大道1号",
            expires_at=now + expires_in,
            lines=[
                OrderLine(
                    product_id=variant.product_id,
                    variant_id=variant.id,
                    sku_code=variant.sku_code,
                    name=variant.product.name,
                    spec_label="",
                    unit_price_fen=variant.price_fen,
                    quantity=quantity,
                )
            ],
            events=[OrderEvent(from_status=None, to_status=OrderStatus.PENDING_PAYMENT.value, actor="customer")],
        )
        session.add(order)
        await session.flush()
        return PlacedOrder(order.id, order.order_no, openid, goods)


async def outbox_notices(sessions: async_sessionmaker[AsyncSession], openid: str | None = None) -> list[Notification]:
    """The notices units of work wrote to the outbox, oldest first, decoded as they were queued."""
    query = select(OutboxMessage).order_by(OutboxMessage.id)
    if openid is not None:
        query = query.where(OutboxMessage.openid == openid)
    async with sessions() as session:
        rows = (await session.scalars(query)).all()
    told = []
    for row in rows:
        notice = notices.notice_of(row.payload)
        if notice is not None:
            told.append(Notification(row.openid, notice.template, notice.data))
    return told

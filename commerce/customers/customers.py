"""Customers: who has talked to the shop, since when, in which language."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.customers.models import Customer
from commerce.db import upsert_insert
from commerce.orm import utcnow


@dataclass(frozen=True, slots=True)
class CustomerInfo:
    id: int
    openid: str
    locale: str | None
    subscribed: bool
    first_seen: datetime
    is_new: bool


async def touch_customer(
    session: AsyncSession,
    openid: str,
    *,
    locale: str | None = None,
    subscribed: bool | None = None,
    messaged: bool = True,
) -> CustomerInfo:
    """Record that `openid` is here now (creating the customer on first contact).

    `locale` is remembered when given (the customer used a zh or en keyword);
    `subscribed` follows subscribe/unsubscribe events; `messaged` stamps the start
    of WeChat's 48-hour customer-service window. The caller commits.
    """
    now = utcnow()
    customer = await session.scalar(select(Customer).where(Customer.openid == openid))
    is_new = False
    if customer is None:
        # INSERT ... ON CONFLICT DO NOTHING: the same new customer may arrive on another
        # worker at the same moment; whoever inserts first wins, the other just reads.
        inserted = await session.scalar(
            upsert_insert(session, Customer)
            .values(openid=openid, first_seen=now, last_seen=now, subscribed=True)
            .on_conflict_do_nothing(index_elements=[Customer.openid])
            .returning(Customer.id)
        )
        is_new = inserted is not None
        customer = await session.scalar(
            select(Customer).where(Customer.openid == openid).execution_options(populate_existing=True)
        )
        assert customer is not None
    customer.last_seen = now
    if messaged:
        customer.last_message_at = now
    if locale is not None:
        customer.locale = locale
    if subscribed is not None:
        customer.subscribed = subscribed
    await session.flush()
    return CustomerInfo(
        id=customer.id,
        openid=customer.openid,
        locale=customer.locale,
        subscribed=customer.subscribed,
        first_seen=customer.first_seen,
        is_new=is_new,
    )


async def locale_of(session: AsyncSession, openid: str) -> str | None:
    """The language the customer chose, if any."""
    locale: str | None = await session.scalar(select(Customer.locale).where(Customer.openid == openid))
    return locale


async def openid_of(session: AsyncSession, customer_id: int) -> str | None:
    """The customer's openid, to tell them something (None for an unknown customer)."""
    return await session.scalar(select(Customer.openid).where(Customer.id == customer_id))

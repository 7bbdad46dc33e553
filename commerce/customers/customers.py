"""Customers: who has talked to the shop, since when, in which language."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.customers.models import Customer
from commerce.db import upsert_insert
from commerce.errors import ErrorCode, ShopError
from commerce.orm import utcnow

# staff see a customer as the end of the openid ("顾客…_81093"); this many characters of
# it (or more) name one
CUSTOMER_TAIL_MIN = 4


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
    of WeChat's 48-hour customer-service window, whose count of customer-service
    messages (`window_sent`) starts over. A known customer costs one UPDATE … RETURNING;
    a new one an INSERT that does nothing on a conflict, then that UPDATE. The caller commits.
    Through the session (not its connection), so that a fenced turn's commit sees the write
    (`commerce.messaging.inbound.fenced`).
    """
    now = utcnow()
    touch, params = _touch(openid, now, locale=locale, subscribed=subscribed, messaged=messaged)
    row = (await session.execute(touch, params)).first()
    is_new = False
    if row is None:
        inserted = await session.scalar(_first_contact(upsert_insert(session, Customer), openid, now))
        is_new = inserted is not None
        row = (await session.execute(touch, params)).one()
    return _info(row, openid, is_new=is_new)


def touch_customer_now(
    conn: Connection,
    openid: str,
    *,
    locale: str | None = None,
    subscribed: bool | None = None,
    messaged: bool = True,
) -> CustomerInfo:
    """`touch_customer` on a plain connection, in the caller's transaction: what a short
    write handed to the journal's group commit runs (`bot.services.Customers`, for the
    touch made before a turn's route, which no fence covers)."""
    now = utcnow()
    touch, params = _touch(openid, now, locale=locale, subscribed=subscribed, messaged=messaged)
    row = conn.execute(touch, params).first()
    is_new = False
    if row is None:
        inserted = conn.execute(_first_contact(upsert_insert(conn, Customer), openid, now)).scalar()
        is_new = inserted is not None
        row = conn.execute(touch, params).one()
    return _info(row, openid, is_new=is_new)


def _first_contact(insert: Any, openid: str, now: datetime) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING: the same new customer may arrive on another worker
    at the same moment; whoever inserts first wins, the other just updates."""
    return (
        insert.values(openid=openid, first_seen=now, last_seen=now, subscribed=True)
        .on_conflict_do_nothing(index_elements=[Customer.openid])
        .returning(Customer.id)
    )


def _info(row: Any, openid: str, *, is_new: bool) -> CustomerInfo:
    return CustomerInfo(
        id=row.id, openid=openid, locale=row.locale, subscribed=row.subscribed, first_seen=row.first_seen, is_new=is_new
    )


def _touch(
    openid: str, now: datetime, *, locale: str | None, subscribed: bool | None, messaged: bool
) -> tuple[Any, dict[str, object]]:
    params: dict[str, object] = {"b_openid": openid, "b_now": now}
    if locale is not None:
        params["b_locale"] = locale
    if subscribed is not None:
        params["b_subscribed"] = subscribed
    return _touch_statement(messaged, locale is not None, subscribed is not None), params


@functools.cache
def _touch_statement(messaged: bool, with_locale: bool, with_subscribed: bool) -> Any:
    """The touch's UPDATE … RETURNING for these choices, built once with bound parameters
    (`b_openid`, `b_now`, `b_locale`, `b_subscribed`: a bound name may not be a column's).
    Every customer's message runs one, and building and keying the statement anew each
    time cost more than running it."""
    columns = Customer.__table__.c
    values: dict[str, object] = {"last_seen": bindparam("b_now", type_=columns.last_seen.type)}
    if messaged:
        values.update(last_message_at=bindparam("b_now", type_=columns.last_message_at.type), window_sent=0)
    if with_locale:
        values["locale"] = bindparam("b_locale", type_=columns.locale.type)
    if with_subscribed:
        values["subscribed"] = bindparam("b_subscribed", type_=columns.subscribed.type)
    return (
        update(Customer)
        .where(Customer.openid == bindparam("b_openid", type_=columns.openid.type))
        .values(values)
        .returning(Customer.id, Customer.locale, Customer.subscribed, Customer.first_seen)
        .execution_options(synchronize_session=False)  # through a session: no objects to update
    )


async def locale_of(session: AsyncSession, openid: str) -> str | None:
    """The language the customer chose, if any."""
    locale: str | None = await session.scalar(select(Customer.locale).where(Customer.openid == openid))
    return locale


async def openid_of(session: AsyncSession, customer_id: int) -> str | None:
    """The customer's openid, to tell them something (None for an unknown customer)."""
    return await session.scalar(select(Customer.openid).where(Customer.id == customer_id))


async def find_openid(session: AsyncSession, *, ref: str) -> str | None:
    """The openid that `ref` names: the whole openid, or the end of one as staff see it
    in alerts and lists ("_81093", "81093"). None when no customer has it; CUSTOMER_AMBIGUOUS
    when the end given is shared (staff then type more of it)."""
    if await session.scalar(select(Customer.openid).where(Customer.openid == ref)) is not None:
        return ref
    if len(ref) < CUSTOMER_TAIL_MIN:
        return None
    found = list(
        await session.scalars(select(Customer.openid).where(Customer.openid.endswith(ref, autoescape=True)).limit(2))
    )
    if len(found) > 1:
        raise ShopError(ErrorCode.CUSTOMER_AMBIGUOUS, customer=ref)
    return found[0] if found else None

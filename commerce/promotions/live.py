"""Live drops (直播): staff run a live session from the chat and push products to the
customers who opted in; each push is a flash sale made for the session.

```mermaid
stateDiagram-v2
    [*] --> open: start_session (subscribers told, as a broadcast)
    open --> open: push (a flash sale at the live price; the previous push closes; subscribers told)
    open --> ended: end_session (its sales closed; the summary)
```
A pushed product is nothing but a `FlashSale` running from the push to the end of the
session (at most `LIVE_HOURS`), so customers take its units through the flash sale's one
rush path (`flash_sales.grab`: the gate, the conditional UPDATE, the pending order at the
live price), and units follow their orders as any flash unit does. The session keeps what
its summary needs: the page's openings (`viewers`) and buy-button taps (`clicks`); orders
and revenue are counted from the claims of its sales.

Telling many customers goes as a staff broadcast does (`commerce.messaging.broadcast.start`:
one outbox row each, written in the transaction of the start or push, then sent within
WeChat's quotas by the caller). Nothing here commits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.catalog.models import Variant
from commerce.customers.models import Customer
from commerce.db import rowcount
from commerce.db import upsert_insert as _insert
from commerce.errors import ErrorCode, ShopError
from commerce.messaging import broadcast as audience
from commerce.messaging.broadcast import Started
from commerce.promotions import flash_sales
from commerce.promotions.flash_sales import OPEN_STATUSES, SaleView
from commerce.promotions.models import (
    FlashClaim,
    FlashClaimStatus,
    FlashSale,
    LivePush,
    LiveSession,
    LiveSessionStatus,
    LiveSubscriber,
)
from commerce.rules import as_utc

LIVE_HOURS = 12  # a push sells until the session ends, and at most this long
MAX_TITLE = 30
MAX_VIDEO_URL = 512
MAX_AUDIENCE = 10_000
DEFAULT_PAY_MINUTES = 15
START_TEMPLATE = "live_started"
PUSH_TEMPLATE = "live_push"


@dataclass(frozen=True)
class LiveView:
    id: int
    title: str
    video_url: str
    status: LiveSessionStatus
    sale_id: int | None
    viewers: int
    clicks: int
    audience: int
    started_at: datetime
    ended_at: datetime | None

    def data(self) -> dict[str, Any]:
        return {
            "id": self.id, "title": self.title, "video_url": self.video_url, "status": str(self.status),
            "viewers": self.viewers, "clicks": self.clicks, "audience": self.audience,
            "started_at": self.started_at, "ended_at": self.ended_at,
        }


@dataclass(frozen=True)
class Summary:
    session: LiveView
    pushes: int
    viewers: int
    clicks: int
    orders: int  # units taken with an order (paid or not yet)
    paid: int
    revenue_fen: int  # what the paid units brought, at their live prices

    def data(self) -> dict[str, Any]:
        return {
            **self.session.data(), "pushes": self.pushes, "orders": self.orders, "paid": self.paid,
            "revenue": self.revenue_fen,
        }


def _view(row: LiveSession) -> LiveView:
    return LiveView(
        id=row.id, title=row.title, video_url=row.video_url, status=LiveSessionStatus(row.status),
        sale_id=row.sale_id, viewers=row.viewers, clicks=row.clicks, audience=row.audience,
        started_at=as_utc(row.started_at), ended_at=as_utc(row.ended_at) if row.ended_at else None,
    )


def check_title(title: str) -> str:
    title = " ".join(title.split())
    if not 1 <= len(title) <= MAX_TITLE:
        raise ShopError(ErrorCode.LIVE_INVALID, field="title", max=MAX_TITLE)
    return title


def check_video_url(url: str) -> str:
    """A 视频号 (or any https) live link, or nothing."""
    url = url.strip()
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.netloc or len(url) > MAX_VIDEO_URL or any(c.isspace() for c in url):
        raise ShopError(ErrorCode.LIVE_INVALID, field="video_url", max=MAX_VIDEO_URL)
    return url


# ---- reading ---------------------------------------------------------------------------------


async def get_session(session: AsyncSession, *, session_id: int) -> LiveView | None:
    row = await session.scalar(
        select(LiveSession).where(LiveSession.id == session_id).execution_options(populate_existing=True)
    )
    return _view(row) if row is not None else None


async def open_session(session: AsyncSession) -> LiveView | None:
    """The session on air now, if any."""
    row = await session.scalar(
        select(LiveSession)
        .where(LiveSession.status == LiveSessionStatus.OPEN.value)
        .order_by(LiveSession.id.desc())
        .limit(1)
        .execution_options(populate_existing=True)
    )
    return _view(row) if row is not None else None


async def current_sale(session: AsyncSession) -> tuple[LiveView, SaleView]:
    """The open session and the product it pushed last: LIVE_NOT_OPEN, LIVE_NOTHING_PUSHED."""
    live = await open_session(session)
    if live is None:
        raise ShopError(ErrorCode.LIVE_NOT_OPEN)
    if live.sale_id is None:
        raise ShopError(ErrorCode.LIVE_NOTHING_PUSHED, title=live.title)
    return live, await flash_sales.get_sale(session, sale_id=live.sale_id)


async def audience_openids(session: AsyncSession, *, limit: int = MAX_AUDIENCE) -> list[str]:
    """The customers who opted in and still follow the account, earliest first."""
    rows = await session.scalars(
        select(Customer.openid)
        .join(LiveSubscriber, LiveSubscriber.customer_id == Customer.id)
        .where(Customer.subscribed.is_(True))
        .order_by(LiveSubscriber.id)
        .limit(limit)
    )
    return list(rows)


# ---- customers: opting in and out -----------------------------------------------------------


async def subscribe(session: AsyncSession, *, customer_id: int, now: datetime) -> bool:
    """"订阅直播": True when new, False when they had opted in already."""
    inserted = await session.execute(
        _insert(session, LiveSubscriber)
        .values(customer_id=customer_id, created_at=as_utc(now))
        .on_conflict_do_nothing(index_elements=["customer_id"])
    )
    return rowcount(inserted) == 1


async def unsubscribe(session: AsyncSession, *, customer_id: int) -> bool:
    removed = await session.execute(delete(LiveSubscriber).where(LiveSubscriber.customer_id == customer_id))
    return rowcount(removed) == 1


# ---- staff: start, push, end -----------------------------------------------------------------


async def _tell(
    session: AsyncSession, *, template: str, data: dict[str, Any], label: str, staff_openid: str, now: datetime,
    max_age: timedelta, lease: timedelta,
) -> Started:
    recipients = await audience_openids(session)
    if not recipients:  # nobody to tell: no broadcast, so no report of one
        return Started(broadcast_id=0, message_ids=[])
    return await audience.start(
        session, staff_openid=staff_openid, text=label, recipients=recipients, now=now, max_age=max_age,
        lease=lease, template=template, data=data,
    )


async def start_session(
    session: AsyncSession, *, title: str, video_url: str = "", staff_openid: str, now: datetime,
    page_url: Callable[[int], str], max_age: timedelta, lease: timedelta,
) -> tuple[LiveView, Started]:
    """A new session on air, its subscribers told (rows of a broadcast, in this transaction).
    `page_url(session_id)` gives the live page's link for the notice. LIVE_ALREADY_OPEN,
    LIVE_INVALID."""
    title, video_url = check_title(title), check_video_url(video_url)
    running = await open_session(session)
    if running is not None:
        raise ShopError(ErrorCode.LIVE_ALREADY_OPEN, title=running.title, session_id=running.id)
    row = LiveSession(
        title=title, video_url=video_url, status=LiveSessionStatus.OPEN.value, viewers=0, clicks=0, audience=0,
        started_by=staff_openid[:64], started_at=as_utc(now),
    )
    session.add(row)
    try:
        await session.flush()
    except IntegrityError:  # another staff member went on air at the same moment (one open session)
        raise ShopError(ErrorCode.LIVE_ALREADY_OPEN, title="") from None
    data = {"title": title, "video_url": video_url, "url": page_url(row.id), "started_at": as_utc(now)}
    started = await _tell(
        session, template=START_TEMPLATE, data=data, label=f"直播「{title}」开播", staff_openid=staff_openid,
        now=now, max_age=max_age, lease=lease,
    )
    row.audience = len(started.message_ids)
    await session.flush()
    return _view(row), started


async def preview_push(
    session: AsyncSession, *, variant_id: int, price_fen: int | None, units: int | None, now: datetime,
    per_user_limit: int = 1,
) -> SaleView:
    """The flash sale a push would make (checked, nothing written): the live price (the
    regular one when none is given) and the units (the variant's stock when none are given)."""
    if await open_session(session) is None:
        raise ShopError(ErrorCode.LIVE_NOT_OPEN)
    terms = await _terms(session, variant_id=variant_id, price_fen=price_fen, units=units, now=now,
                         per_user_limit=per_user_limit)
    return await flash_sales.preview_sale(session, variant_id=variant_id, **terms)


async def _terms(
    session: AsyncSession, *, variant_id: int, price_fen: int | None, units: int | None, now: datetime,
    per_user_limit: int,
) -> dict[str, Any]:
    variant = await session.get(Variant, variant_id, populate_existing=True)
    if variant is None:
        raise ShopError(ErrorCode.VARIANT_NOT_FOUND, ref=str(variant_id), skus=[])
    if units is None:
        units = min(variant.stock, flash_sales.MAX_UNITS)
        if units <= 0:
            raise ShopError(ErrorCode.OUT_OF_STOCK, variant_id=variant_id, available=0)
    now = as_utc(now)
    return {
        "price_fen": variant.price_fen if price_fen is None else price_fen, "units": units, "starts_at": now,
        "ends_at": now + timedelta(hours=LIVE_HOURS), "per_user_limit": per_user_limit,
        "pay_minutes": DEFAULT_PAY_MINUTES, "now": now, "at_regular_price": True,
    }


async def push(
    session: AsyncSession, *, variant_id: int, price_fen: int | None, units: int | None, staff_openid: str,
    now: datetime, page_url: Callable[[int], str], max_age: timedelta, lease: timedelta, per_user_limit: int = 1,
    image_url: str = "",
) -> tuple[LiveView, SaleView, Started]:
    """The product on air: a flash sale for the session at the live price (the last push's
    sale closes: the page shows one product), and the subscribers told with its card
    (with the product's picture, `image_url`).
    LIVE_NOT_OPEN, FLASH_INVALID, VARIANT_NOT_FOUND, OUT_OF_STOCK."""
    live = await open_session(session)
    if live is None:
        raise ShopError(ErrorCode.LIVE_NOT_OPEN)
    terms = await _terms(session, variant_id=variant_id, price_fen=price_fen, units=units, now=now,
                         per_user_limit=per_user_limit)
    if live.sale_id is not None:
        await _close_if_open(session, sale_id=live.sale_id, now=now)
    sale = await flash_sales.create_sale(session, variant_id=variant_id, created_by=staff_openid, **terms)
    session.add(LivePush(session_id=live.id, sale_id=sale.id, pushed_at=as_utc(now)))
    await session.execute(
        update(LiveSession).where(LiveSession.id == live.id).values(sale_id=sale.id)
        .execution_options(synchronize_session=False)
    )
    data = {**sale.data(now), "title": live.title, "url": page_url(live.id), "image": image_url}
    started = await _tell(
        session, template=PUSH_TEMPLATE, data=data, label=f"直播「{live.title}」推送 {sale.product_name}",
        staff_openid=staff_openid, now=now, max_age=max_age, lease=lease,
    )
    after = await get_session(session, session_id=live.id)
    assert after is not None
    return after, sale, started


async def _close_if_open(session: AsyncSession, *, sale_id: int, now: datetime) -> None:
    status = await session.scalar(select(FlashSale.status).where(FlashSale.id == sale_id))
    if status in OPEN_STATUSES:
        await flash_sales.close_sale(session, sale_id=sale_id, now=now)


async def summary(session: AsyncSession, *, session_id: int) -> Summary:
    live = await get_session(session, session_id=session_id)
    if live is None:
        raise ShopError(ErrorCode.LIVE_NOT_OPEN)
    sale_ids = select(LivePush.sale_id).where(LivePush.session_id == session_id)
    pushes = await session.scalar(select(func.count()).select_from(LivePush).where(LivePush.session_id == session_id))
    orders = await session.scalar(
        select(func.count()).select_from(FlashClaim).where(
            FlashClaim.sale_id.in_(sale_ids), FlashClaim.order_id.is_not(None)
        )
    )
    paid, revenue = (
        await session.execute(
            select(func.count(FlashClaim.id), func.coalesce(func.sum(FlashSale.price_fen), 0))
            .join(FlashSale, FlashSale.id == FlashClaim.sale_id)
            .where(FlashClaim.sale_id.in_(sale_ids), FlashClaim.status == FlashClaimStatus.PAID.value)
        )
    ).one()
    return Summary(live, int(pushes or 0), live.viewers, live.clicks, int(orders or 0), int(paid), int(revenue))


async def end_session(session: AsyncSession, *, now: datetime) -> Summary:
    """The session off air: its sales closed (units held may still be paid until their
    orders expire), its summary. LIVE_NOT_OPEN."""
    live = await open_session(session)
    if live is None:
        raise ShopError(ErrorCode.LIVE_NOT_OPEN)
    for sale_id in (await session.scalars(select(LivePush.sale_id).where(LivePush.session_id == live.id))).all():
        await _close_if_open(session, sale_id=sale_id, now=now)
    ended = await session.execute(
        update(LiveSession)
        .where(LiveSession.id == live.id, LiveSession.status == LiveSessionStatus.OPEN.value)
        .values(status=LiveSessionStatus.ENDED.value, ended_at=as_utc(now))
        .execution_options(synchronize_session=False)
    )
    if rowcount(ended) != 1:
        raise ShopError(ErrorCode.LIVE_NOT_OPEN)
    return await summary(session, session_id=live.id)


# ---- the page --------------------------------------------------------------------------------


async def count_view(session: AsyncSession, *, session_id: int) -> None:
    await session.execute(
        update(LiveSession).where(LiveSession.id == session_id).values(viewers=LiveSession.viewers + 1)
        .execution_options(synchronize_session=False)
    )


async def count_click(session: AsyncSession, *, session_id: int) -> None:
    await session.execute(
        update(LiveSession)
        .where(LiveSession.id == session_id, LiveSession.status == LiveSessionStatus.OPEN.value)
        .values(clicks=LiveSession.clicks + 1)
        .execution_options(synchronize_session=False)
    )


async def page_state(session: AsyncSession, *, session_id: int, now: datetime) -> dict[str, Any] | None:
    """What the live page shows and streams: the session, and its current product with the
    live price and the units left (None: no such session)."""
    live = await get_session(session, session_id=session_id)
    if live is None:
        return None
    sale: dict[str, Any] | None = None
    if live.sale_id is not None:
        view = await flash_sales.get_sale(session, sale_id=live.sale_id)
        sale = {**view.data(now), "product_id": view.product_id}
    return {"live": live.data(), "sale": sale, "on_air": live.status == LiveSessionStatus.OPEN}

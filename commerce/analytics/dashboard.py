"""The figures of the staff dashboard, for a period of local days and the period before it.

Each figure is one query or a few, over `shop_events` (kind and time are indexed together)
and the orders; nothing is stored. What each counts, in the period (`Period`: whole local
days in the shop's time zone):
- visitors per day: distinct customers with a `message` event that day; the period's
  total counts each customer once;
- payers, paid orders, revenue per day: orders *paid* that day (`Order.paid_at`), their
  distinct customers and their paid amounts in fen; average order = revenue / paid orders,
  rounded to the fen. Refunds as `/stats` counts them (`commerce.reports.stats`): refunds
  that succeeded that day (completed_at), without refunds of late or duplicate payments;
  revenue is not reduced by them;
- funnel: distinct customers with a `search`, `card`, `cart_add`, `checkout` event in the
  period, then distinct customers with an order paid in it. Each step counts on its own
  (a customer who opened a card from a shared link without searching counts at `card`);
- retention: customers whose first paid order ever falls in the period, grouped by the
  local week (Monday) of that payment; for week +1..+RETENTION_WEEKS after it, the share of
  the cohort who paid an order in that week (None for a week that has not begun by `today`);
- provinces: paid orders and revenue by the order's address province (`""` when unknown);
- top categories and products: units and revenue at line prices (before order discounts)
  of the lines of orders paid in the period, the TOP most by revenue;
- searches that found nothing: `search` events with 0 results, by query, most often first;
- referrers: per customer, `share` events they made, `follow` events naming them as the
  referrer, and orders paid by customers bound to them (`Customer.referrer_id`), the TOP
  with most orders, then follows, then shares;
- group buys: groups opened in the period (the leader paid: `opened_at`) and how many of
  them have filled; fill rate = filled / opened.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.analytics.models import EventKind, ShopEvent
from commerce.analytics.period import Period, as_date, local_day
from commerce.catalog.models import Category, Product
from commerce.customers.models import Customer
from commerce.groupbuys.models import GroupBuy
from commerce.orders.models import Order, OrderLine
from commerce.payments.models import Refund, RefundStatus
from commerce.payments.refunds import LATE_REFUND_NO_PREFIX
from commerce.rules import as_utc

TOP = 10
RETENTION_WEEKS = 4
FUNNEL_EVENTS = (EventKind.SEARCH, EventKind.CARD, EventKind.CART_ADD, EventKind.CHECKOUT)
FUNNEL_STEPS = (*(str(kind) for kind in FUNNEL_EVENTS), str(EventKind.PAID))


@dataclass(frozen=True, slots=True)
class Day:
    day: date
    visitors: int = 0
    payers: int = 0
    paid_orders: int = 0
    revenue_fen: int = 0
    refunds_fen: int = 0

    @property
    def average_fen(self) -> int:
        return average(self.revenue_fen, self.paid_orders)


@dataclass(frozen=True, slots=True)
class Totals:
    visitors: int
    payers: int
    paid_orders: int
    revenue_fen: int
    refunds_fen: int

    @property
    def average_fen(self) -> int:
        return average(self.revenue_fen, self.paid_orders)


@dataclass(frozen=True, slots=True)
class Cohort:
    week: date  # the Monday of the cohort's first purchases
    customers: int
    returned: tuple[float | None, ...]  # week +1..+RETENTION_WEEKS: share who paid again


@dataclass(frozen=True, slots=True)
class Ranked:
    name: str
    units: int
    revenue_fen: int
    name_en: str = ""


@dataclass(frozen=True, slots=True)
class Province:
    province: str  # "" when the address named none
    orders: int
    revenue_fen: int


@dataclass(frozen=True, slots=True)
class Referrer:
    customer_id: int
    openid: str
    shares: int
    follows: int
    orders: int


@dataclass(frozen=True, slots=True)
class GroupFill:
    opened: int
    filled: int

    @property
    def rate(self) -> float:
        return round(self.filled / self.opened, 4) if self.opened else 0.0


@dataclass(frozen=True, slots=True)
class Figures:
    """Every figure of one period."""

    period: Period
    days: tuple[Day, ...]
    totals: Totals
    funnel: tuple[tuple[str, int], ...]  # (step, distinct customers), in FUNNEL_STEPS order
    retention: tuple[Cohort, ...]
    provinces: tuple[Province, ...]
    categories: tuple[Ranked, ...]
    products: tuple[Ranked, ...]
    failed_searches: tuple[tuple[str, int], ...]  # (query, searches)
    referrers: tuple[Referrer, ...]
    groups: GroupFill


@dataclass(frozen=True, slots=True)
class Dashboard:
    current: Figures
    previous: Figures


def average(total_fen: int, count: int) -> int:
    """total / count rounded to the fen (half up), as `/stats` rounds it; 0 for no orders."""
    return (total_fen + count // 2) // count if count else 0


# ---- per day -----------------------------------------------------------------------------------


async def visitors_per_day(session: AsyncSession, period: Period) -> dict[date, int]:
    """Distinct customers with a message event, by local day."""
    day = local_day(session, ShopEvent.at, period)
    rows = await session.execute(
        select(day, func.count(distinct(ShopEvent.customer_id)))
        .where(ShopEvent.kind == EventKind.MESSAGE.value, period.during(ShopEvent.at))
        .group_by(day)
    )
    return {as_date(d): int(n) for d, n in rows.all() if d is not None}


async def sales_per_day(session: AsyncSession, period: Period) -> dict[date, tuple[int, int, int]]:
    """(payers, paid orders, revenue in fen) by local day of payment."""
    day = local_day(session, Order.paid_at, period)
    rows = await session.execute(
        select(day, func.count(distinct(Order.customer_id)), func.count(), func.coalesce(func.sum(Order.paid_fen), 0))
        .where(period.during(Order.paid_at))
        .group_by(day)
    )
    return {as_date(d): (int(p), int(n), int(r)) for d, p, n, r in rows.all() if d is not None}


def _counted_refund() -> Any:
    return (Refund.status == RefundStatus.SUCCEEDED.value) & Refund.refund_no.not_like(f"{LATE_REFUND_NO_PREFIX}%")


async def refunds_per_day(session: AsyncSession, period: Period) -> dict[date, int]:
    """Refunds in fen by local day of completion, as `/stats` counts them."""
    day = local_day(session, Refund.completed_at, period)
    rows = await session.execute(
        select(day, func.coalesce(func.sum(Refund.amount_fen), 0))
        .where(_counted_refund(), period.during(Refund.completed_at))
        .group_by(day)
    )
    return {as_date(d): int(r) for d, r in rows.all() if d is not None}


async def totals(session: AsyncSession, period: Period, days: tuple[Day, ...]) -> Totals:
    """The period's sums; visitors and payers counted once each over the whole period."""
    visitors = await session.scalar(
        select(func.count(distinct(ShopEvent.customer_id))).where(
            ShopEvent.kind == EventKind.MESSAGE.value, period.during(ShopEvent.at)
        )
    )
    payers = await session.scalar(
        select(func.count(distinct(Order.customer_id))).where(period.during(Order.paid_at))
    )
    return Totals(
        visitors=int(visitors or 0),
        payers=int(payers or 0),
        paid_orders=sum(d.paid_orders for d in days),
        revenue_fen=sum(d.revenue_fen for d in days),
        refunds_fen=sum(d.refunds_fen for d in days),
    )


async def daily(session: AsyncSession, period: Period) -> tuple[Day, ...]:
    """Every day of the period, zeros included."""
    visitors = await visitors_per_day(session, period)
    sales = await sales_per_day(session, period)
    refunds = await refunds_per_day(session, period)
    return tuple(
        Day(d, visitors.get(d, 0), *sales.get(d, (0, 0, 0)), refunds_fen=refunds.get(d, 0))
        for d in period.dates()
    )


# ---- the funnel and retention ------------------------------------------------------------------


async def funnel(session: AsyncSession, period: Period) -> tuple[tuple[str, int], ...]:
    """Distinct customers at each step: search, card, cart_add, checkout (events), paid (orders)."""
    rows = await session.execute(
        select(ShopEvent.kind, func.count(distinct(ShopEvent.customer_id)))
        .where(ShopEvent.kind.in_([k.value for k in FUNNEL_EVENTS]), period.during(ShopEvent.at))
        .group_by(ShopEvent.kind)
    )
    found = {str(kind): int(n) for kind, n in rows.all()}
    payers = await session.scalar(
        select(func.count(distinct(Order.customer_id))).where(period.during(Order.paid_at))
    )
    found[str(EventKind.PAID)] = int(payers or 0)
    return tuple((step, found.get(step, 0)) for step in FUNNEL_STEPS)


def monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


async def retention(
    session: AsyncSession, period: Period, *, today: date, weeks: int = RETENTION_WEEKS
) -> tuple[Cohort, ...]:
    """Cohorts of first purchases in the period by week, and who paid again in week +1..+weeks."""
    first = (
        select(Order.customer_id.label("customer_id"), func.min(Order.paid_at).label("first_paid"))
        .where(Order.paid_at.is_not(None))
        .group_by(Order.customer_id)
        .having(period.during(func.min(Order.paid_at)))
        .subquery()
    )
    horizon = period.until + timedelta(weeks=weeks + 1)
    rows = await session.execute(
        select(Order.customer_id, Order.paid_at, first.c.first_paid)
        .join(first, first.c.customer_id == Order.customer_id)
        .where(Order.paid_at >= first.c.first_paid, Order.paid_at < horizon)
    )
    tz = period.tz

    def week_of(moment: datetime) -> date:
        return monday(as_utc(moment).astimezone(tz).date())

    cohorts: dict[date, set[int]] = defaultdict(set)
    again: dict[tuple[date, int], set[int]] = defaultdict(set)
    for customer_id, paid_at, first_paid in rows.all():
        cohort = week_of(first_paid)
        cohorts[cohort].add(customer_id)
        offset = (week_of(paid_at) - cohort).days // 7
        if 1 <= offset <= weeks:
            again[(cohort, offset)].add(customer_id)
    result = []
    for week in sorted(cohorts):
        size = len(cohorts[week])
        shares = tuple(
            round(len(again[(week, k)]) / size, 4) if week + timedelta(weeks=k) <= today else None
            for k in range(1, weeks + 1)
        )
        result.append(Cohort(week, size, shares))
    return tuple(result)


# ---- where and what ----------------------------------------------------------------------------


async def provinces(session: AsyncSession, period: Period) -> tuple[Province, ...]:
    """Paid orders and revenue by the province of the order's address, most orders (then revenue) first."""
    orders, revenue = func.count(), func.coalesce(func.sum(Order.paid_fen), 0)
    rows = await session.execute(
        select(Order.address_province, orders, revenue)
        .where(period.during(Order.paid_at))
        .group_by(Order.address_province)
        .order_by(orders.desc(), revenue.desc(), Order.address_province)
    )
    return tuple(Province(str(p or ""), int(n), int(r)) for p, n, r in rows.all())


async def top_categories(session: AsyncSession, period: Period, *, limit: int = TOP) -> tuple[Ranked, ...]:
    revenue = func.sum(OrderLine.quantity * OrderLine.unit_price_fen)
    rows = await session.execute(
        select(Category.name, Category.name_en, func.sum(OrderLine.quantity), revenue)
        .join(Order, Order.id == OrderLine.order_id)
        .join(Product, Product.id == OrderLine.product_id)
        .join(Category, Category.id == Product.category_id)
        .where(period.during(Order.paid_at))
        .group_by(Category.id, Category.name, Category.name_en)
        .order_by(revenue.desc(), Category.id)
        .limit(limit)
    )
    return tuple(Ranked(str(name), int(units), int(rev), str(name_en or "")) for name, name_en, units, rev in rows.all())


async def top_products(session: AsyncSession, period: Period, *, limit: int = TOP) -> tuple[Ranked, ...]:
    revenue = func.sum(OrderLine.quantity * OrderLine.unit_price_fen)
    rows = await session.execute(
        select(Product.name, func.sum(OrderLine.quantity), revenue)
        .join(Order, Order.id == OrderLine.order_id)
        .join(Product, Product.id == OrderLine.product_id)
        .where(period.during(Order.paid_at))
        .group_by(OrderLine.product_id, Product.name)
        .order_by(revenue.desc(), OrderLine.product_id)
        .limit(limit)
    )
    return tuple(Ranked(str(name), int(units), int(rev)) for name, units, rev in rows.all())


async def failed_searches(session: AsyncSession, period: Period, *, limit: int = TOP * 2) -> tuple[tuple[str, int], ...]:
    """What customers searched for and the shop did not have: queries with 0 results."""
    searches = func.count()
    rows = await session.execute(
        select(ShopEvent.query, searches)
        .where(
            ShopEvent.kind == EventKind.SEARCH.value,
            ShopEvent.results == 0,
            ShopEvent.query.is_not(None),
            period.during(ShopEvent.at),
        )
        .group_by(ShopEvent.query)
        .order_by(searches.desc(), ShopEvent.query)
        .limit(limit)
    )
    return tuple((str(q), int(n)) for q, n in rows.all())


# ---- sharing and groups ------------------------------------------------------------------------


async def referrers(session: AsyncSession, period: Period, *, limit: int = TOP) -> tuple[Referrer, ...]:
    """Shares made, follows brought and orders paid by bound customers, per referrer."""

    async def counted(query: Any) -> dict[int, int]:
        return {int(c): int(n) for c, n in (await session.execute(query)).all() if c is not None}

    shares = await counted(
        select(ShopEvent.customer_id, func.count())
        .where(ShopEvent.kind == EventKind.SHARE.value, period.during(ShopEvent.at))
        .group_by(ShopEvent.customer_id)
    )
    follows = await counted(
        select(ShopEvent.referrer_id, func.count())
        .where(ShopEvent.kind == EventKind.FOLLOW.value, period.during(ShopEvent.at))
        .group_by(ShopEvent.referrer_id)
    )
    orders = await counted(
        select(Customer.referrer_id, func.count())
        .join(Order, Order.customer_id == Customer.id)
        .where(Customer.referrer_id.is_not(None), period.during(Order.paid_at))
        .group_by(Customer.referrer_id)
    )
    ids = sorted(
        set(shares) | set(follows) | set(orders),
        key=lambda c: (-orders.get(c, 0), -follows.get(c, 0), -shares.get(c, 0), c),
    )[:limit]
    if not ids:
        return ()
    openids = dict((await session.execute(select(Customer.id, Customer.openid).where(Customer.id.in_(ids)))).all())
    return tuple(
        Referrer(c, str(openids.get(c, "")), shares.get(c, 0), follows.get(c, 0), orders.get(c, 0)) for c in ids
    )


async def group_fill(session: AsyncSession, period: Period) -> GroupFill:
    """Groups opened in the period (their leader paid) and how many of them filled."""
    row = (
        await session.execute(
            select(func.count(), func.count(GroupBuy.filled_at)).where(period.during(GroupBuy.opened_at))
        )
    ).one()
    return GroupFill(opened=int(row[0]), filled=int(row[1]))


# ---- everything --------------------------------------------------------------------------------


async def figures(session: AsyncSession, period: Period, *, today: date) -> Figures:
    days = await daily(session, period)
    return Figures(
        period=period,
        days=days,
        totals=await totals(session, period, days),
        funnel=await funnel(session, period),
        retention=await retention(session, period, today=today),
        provinces=await provinces(session, period),
        categories=await top_categories(session, period),
        products=await top_products(session, period),
        failed_searches=await failed_searches(session, period),
        referrers=await referrers(session, period),
        groups=await group_fill(session, period),
    )


async def dashboard(session: AsyncSession, period: Period, *, now: datetime) -> Dashboard:
    """The period's figures and those of the period of the same length before it."""
    today = as_utc(now).astimezone(period.tz).date()
    return Dashboard(
        current=await figures(session, period, today=today),
        previous=await figures(session, period.previous(), today=today),
    )

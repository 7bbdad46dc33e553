"""The dashboard's figures over a seeded month (tests/commerce/analytics/month.py), on SQLite
and PostgreSQL: every number counted by hand from the seed's comments."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from commerce.analytics import dashboard as figures
from commerce.analytics.dashboard import Cohort, Province, Ranked, Referrer
from commerce.analytics.models import ShopEvent
from commerce.analytics.period import Period, as_date, local_day
from commerce.wiring import shop_sessions
from tests.commerce.analytics.month import NOW, TZ, seed_month

NOVEMBER = Period(date(2026, 11, 1), date(2026, 11, 30), TZ)
THIRD = 1 / 3


async def test_a_seeded_month_and_the_month_before(engine: AsyncEngine) -> None:
    sessions = shop_sessions(engine)
    async with sessions() as session:
        month = await seed_month(session)
        await session.commit()
    async with sessions() as session:
        board = await figures.dashboard(session, NOVEMBER, now=NOW)
    now, before = board.current, board.previous
    assert before.period == Period(date(2026, 10, 2), date(2026, 10, 31), TZ)

    days = {d.day.day: d for d in now.days}
    assert len(now.days) == 30 and now.days[0].day == date(2026, 11, 1)
    assert {n: d.visitors for n, d in days.items() if d.visitors} == {1: 2, 2: 4, 3: 1, 15: 1}
    assert {n: (d.payers, d.paid_orders, d.revenue_fen) for n, d in days.items() if d.paid_orders} == {
        1: (1, 1, 500), 2: (2, 2, 3000), 3: (1, 1, 12800), 10: (1, 1, 1500),
        16: (1, 1, 2000), 24: (1, 1, 1000), 30: (1, 1, 12800),
    }
    assert days[2].average_fen == 1500
    assert {n: d.refunds_fen for n, d in days.items() if d.refunds_fen} == {4: 2800}
    t = now.totals
    assert (t.visitors, t.payers, t.paid_orders, t.revenue_fen, t.average_fen, t.refunds_fen) == (
        6, 6, 8, 33600, 4200, 2800
    )
    p = before.totals
    assert (p.visitors, p.payers, p.paid_orders, p.revenue_fen, p.refunds_fen) == (1, 1, 1, 1000, 0)
    assert [d.visitors for d in before.days][-1] == 1  # 23:50 on Oct 31 is still October here

    assert now.funnel == (("search", 9), ("card", 8), ("cart_add", 7), ("checkout", 7), ("paid", 6))
    assert before.funnel == (("search", 1), ("card", 0), ("cart_add", 0), ("checkout", 1), ("paid", 1))

    def rounded(cohorts: tuple[Cohort, ...]) -> list[tuple[date, int, tuple[float | None, ...]]]:
        return [(c.week, c.customers, c.returned) for c in cohorts]

    r = round(THIRD, 4)
    assert rounded(now.retention) == [
        (date(2026, 11, 2), 3, (r, 0.0, r, r)),  # A in week +1, B in +3, C in +4 (Dec 1)
        (date(2026, 11, 16), 1, (0.0, 0.0, None, None)),  # weeks from Dec 7 have not begun
        (date(2026, 11, 30), 1, (None, None, None, None)),
    ]
    assert rounded(before.retention) == [(date(2026, 10, 19), 1, (1.0, 0.0, 0.0, 0.0))]  # F on Nov 1

    assert now.provinces == (
        Province("上海市", 3, 26600), Province("浙江省", 2, 3500), Province("江苏省", 1, 2000),
        Province("广东省", 1, 1000), Province("北京市", 1, 500),
    )
    assert [(c.name[:2], c.name_en, c.units, c.revenue_fen) for c in now.categories] == [
        ("名茶", "Fine tea", 2, 25600), ("鲜果", "Fresh fruit", 11, 8000)
    ]
    assert now.products == (Ranked("铁观音", 2, 25600), Ranked("苹果", 5, 5000), Ranked("香蕉", 6, 3000))
    assert before.products == (Ranked("香蕉", 2, 1000),)
    assert now.failed_searches == (("榴莲", 3), ("车厘子", 2), ("cherry", 1))
    assert before.failed_searches == (("榴莲", 1),)

    ids, openids = month.customers, month.openids
    assert now.referrers == (
        Referrer(ids["R"], openids["R"], shares=3, follows=2, orders=2),
        Referrer(ids["A"], openids["A"], shares=1, follows=1, orders=0),
    )
    assert before.referrers == (Referrer(ids["R"], openids["R"], shares=1, follows=0, orders=0),)
    assert (now.groups.opened, now.groups.filled, now.groups.rate) == (3, 2, 0.6667)
    assert (before.groups.opened, before.groups.filled, before.groups.rate) == (1, 1, 1.0)


async def test_an_empty_shop_has_zeros_and_empty_lists(engine: AsyncEngine) -> None:
    async with shop_sessions(engine)() as session:
        board = await figures.dashboard(session, Period.last_days(7, today=date(2026, 11, 30), tz=TZ), now=NOW)
    f = board.current
    assert [d.day for d in f.days] == [date(2026, 11, n) for n in range(24, 31)]
    assert all(d.visitors == d.paid_orders == d.revenue_fen == 0 for d in f.days)
    assert f.totals.average_fen == 0 and f.groups.rate == 0.0
    assert all(n == 0 for _, n in f.funnel)
    assert f.retention == f.provinces == f.categories == f.products == f.failed_searches == f.referrers == ()


async def test_a_zone_with_daylight_saving_time_groups_by_its_own_midnights(engine: AsyncEngine) -> None:
    """Where the offset changes within the period, days are cut at each local midnight (New
    York leaves summer time on 2026-11-01; SQLite has no time zones and takes the CASE)."""
    new_york = ZoneInfo("America/New_York")
    period = Period(date(2026, 10, 31), date(2026, 11, 2), new_york)
    sessions = shop_sessions(engine)
    async with sessions() as session:
        for moment in ("2026-11-01T03:30:00+00:00", "2026-11-01T04:30:00+00:00", "2026-11-02T04:30:00+00:00",
                       "2026-11-02T05:30:00+00:00"):
            session.add(ShopEvent(kind="message", customer_id=1, at=datetime.fromisoformat(moment)))
        await session.commit()
        day = local_day(session, ShopEvent.at, period)
        found = [as_date(d) for d in (await session.scalars(select(day).order_by(ShopEvent.at))).all()]
    # 03:30Z is 23:30 EDT on Oct 31; 04:30Z is 00:30 EDT Nov 1; 04:30Z on Nov 2 is 23:30 EST Nov 1
    assert found == [date(2026, 10, 31), date(2026, 11, 1), date(2026, 11, 1), date(2026, 11, 2)]


def test_a_period_and_the_one_before_it() -> None:
    week = Period.last_days(7, today=date(2026, 11, 30), tz=TZ)
    assert (week.start, week.end, week.days) == (date(2026, 11, 24), date(2026, 11, 30), 7)
    assert week.previous() == Period(date(2026, 11, 17), date(2026, 11, 23), TZ)
    assert week.since.isoformat() == "2026-11-23T16:00:00+00:00"
    assert week.until.isoformat() == "2026-11-30T16:00:00+00:00"
    with pytest.raises(ValueError):
        Period(date(2026, 11, 2), date(2026, 11, 1), TZ)
    with pytest.raises(ValueError):
        Period(date(2025, 1, 1), date(2026, 11, 1), TZ)

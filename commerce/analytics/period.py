"""A dashboard's date range: whole local days in the shop's time zone, and the period before it.

`Period(start, end, tz)` runs from local midnight of `start` to local midnight after `end`
(both days included); `previous()` is the period of the same length that ends the day
before `start`. `local_day(column)` is the SQL expression of the local date of a stored
UTC moment, for grouping by day on either database:
- PostgreSQL: `date(timezone(tz, at))`, exact in any zone;
- SQLite (which has no time-zone data): `date(at, '+480 minutes')` when the zone's offset
  is the same over the whole period (China's is), else a CASE over the period's local
  midnights (a zone with daylight saving time).
Either way the value is read back with `as_date` (PostgreSQL gives a date, SQLite a string).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, literal
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

MAX_DAYS = 366


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The UTC moment the local `day` begins."""
    return datetime.combine(day, time.min, tzinfo=tz).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Period:
    start: date
    end: date  # included
    tz: ZoneInfo

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError("a period ends on or after its start")
        if self.days > MAX_DAYS:
            raise ValueError(f"a period is at most {MAX_DAYS} days")

    @classmethod
    def last_days(cls, days: int, *, today: date, tz: ZoneInfo) -> Period:
        """The `days` days up to and including `today`."""
        return cls(today - timedelta(days=days - 1), today, tz)

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def since(self) -> datetime:
        """The UTC start (included)."""
        return local_midnight(self.start, self.tz)

    @property
    def until(self) -> datetime:
        """The UTC end (excluded): local midnight after `end`."""
        return local_midnight(self.end + timedelta(days=1), self.tz)

    def dates(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range(self.days)]

    def previous(self) -> Period:
        """The period of the same length just before this one."""
        end = self.start - timedelta(days=1)
        return Period(end - timedelta(days=self.days - 1), end, self.tz)

    def during(self, column: Any) -> ColumnElement[bool]:
        """`column` (a stored UTC moment) falls in the period."""
        return (column >= self.since) & (column < self.until)


def local_day(session: AsyncSession, column: Any, period: Period) -> ColumnElement[Any]:
    """The local date of `column` (a UTC moment within `period`), as the database spells it."""
    tz = period.tz
    if session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone(tz.key, column))
    days = [*period.dates(), period.end + timedelta(days=1)]
    offsets = {datetime.combine(day, time.min, tzinfo=tz).utcoffset() for day in days}
    if len(offsets) == 1:
        (offset,) = offsets
        minutes = int((offset or timedelta()).total_seconds() // 60)
        return func.date(column, f"{minutes:+d} minutes")
    whens = [
        (column < local_midnight(day + timedelta(days=1), tz), literal(day.isoformat()))
        for day in period.dates()
    ]
    return case(*whens, else_=literal(None))


def as_date(value: Any) -> date:
    """A day as read back from `local_day` (a date on PostgreSQL, 'YYYY-MM-DD' on SQLite)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])

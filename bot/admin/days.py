"""The days staff name in `/stats 昨天`, `/export 本周`, `/stats 12-01`: a span of the shop's
calendar days, the first and the last, each cut at the shop's midnight by whoever counts
them (`commerce.reports.stats.local_day_bounds`).

    今天 今日 today            today
    昨天 昨日 yesterday        yesterday
    本周 这周 this-week        Monday of this week up to today
    上周 last-week             Monday to Sunday of the week before
    本月 这个月 this-month      the 1st of this month up to today
    上月 上个月 last-month      the month before
    2026-12-01 2026/12/01 20261201, 12-01 12/01 12月1日   that day (month and day alone:
                               the latest one not after today)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

SPAN_WORDS = {
    "今天": "today", "今日": "today", "today": "today",
    "昨天": "yesterday", "昨日": "yesterday", "yesterday": "yesterday",
    "本周": "this_week", "这周": "this_week", "this-week": "this_week", "this_week": "this_week", "week": "this_week",
    "上周": "last_week", "last-week": "last_week", "last_week": "last_week",
    "本月": "this_month", "这个月": "this_month", "this-month": "this_month", "this_month": "this_month",
    "month": "this_month",
    "上月": "last_month", "上个月": "last_month", "last-month": "last_month", "last_month": "last_month",
}
_MONTH_DAY = re.compile(r"^(\d{1,2})[-/.月](\d{1,2})[日号]?$")


@dataclass(frozen=True, slots=True)
class Days:
    span: str  # a key of SPAN_WORDS's values, or "day" for a date typed
    first: date
    last: date


def parse_date(word: str, *, today: date) -> date | None:
    """2026-12-01 (also 2026/12/01 and 20261201), or 12-01 (12/01, 12月1日: the latest
    such day not after `today`); None when the word is not a date."""
    text = word.strip().replace("/", "-")
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    match = _MONTH_DAY.match(text)
    if match is None:
        return None
    month, day = int(match.group(1)), int(match.group(2))
    for year in (today.year, today.year - 1):
        try:
            found = date(year, month, day)
        except ValueError:
            continue  # 13-01, or 02-29 of a year without it
        if found <= today:
            return found
    return None


def parse_days(word: str, *, today: date) -> Days | None:
    """The days a word names (the module's table), `today` being the shop's; None when it names none."""
    span = SPAN_WORDS.get(word.strip().lower())
    if span == "today":
        return Days(span, today, today)
    if span == "yesterday":
        return Days(span, today - timedelta(days=1), today - timedelta(days=1))
    if span == "this_week":
        return Days(span, today - timedelta(days=today.weekday()), today)
    if span == "last_week":
        monday = today - timedelta(days=today.weekday() + 7)
        return Days(span, monday, monday + timedelta(days=6))
    if span == "this_month":
        return Days(span, today.replace(day=1), today)
    if span == "last_month":
        last = today.replace(day=1) - timedelta(days=1)
        return Days(span, last.replace(day=1), last)
    day = parse_date(word, today=today)
    return Days("day", day, day) if day is not None else None

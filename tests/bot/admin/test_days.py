"""The days staff name (`/stats 昨天`, `/export 本周`): `bot.admin.days`."""

from __future__ import annotations

from datetime import date

import pytest

from bot.admin.days import parse_days

TODAY = date(2026, 12, 5)  # a Saturday


@pytest.mark.parametrize(
    ("word", "span", "first", "last"),
    [
        ("今天", "today", TODAY, TODAY),
        ("today", "today", TODAY, TODAY),
        ("昨天", "yesterday", date(2026, 12, 4), date(2026, 12, 4)),
        ("本周", "this_week", date(2026, 11, 30), TODAY),
        ("上周", "last_week", date(2026, 11, 23), date(2026, 11, 29)),
        ("本月", "this_month", date(2026, 12, 1), TODAY),
        ("上月", "last_month", date(2026, 11, 1), date(2026, 11, 30)),
        ("12-01", "day", date(2026, 12, 1), date(2026, 12, 1)),
        ("12/01", "day", date(2026, 12, 1), date(2026, 12, 1)),
        ("12月1日", "day", date(2026, 12, 1), date(2026, 12, 1)),
        ("12-25", "day", date(2025, 12, 25), date(2025, 12, 25)),  # not yet this year: last year's
        ("2026-11-11", "day", date(2026, 11, 11), date(2026, 11, 11)),
        ("20261111", "day", date(2026, 11, 11), date(2026, 11, 11)),
    ],
)
def test_a_word_names_days(word: str, span: str, first: date, last: date) -> None:
    days = parse_days(word, today=TODAY)
    assert days is not None and (days.span, days.first, days.last) == (span, first, last)


@pytest.mark.parametrize("word", ["明天", "13-01", "02-30", "yesterdays", "12", "orders", ""])
def test_other_words_name_no_days(word: str) -> None:
    assert parse_days(word, today=TODAY) is None

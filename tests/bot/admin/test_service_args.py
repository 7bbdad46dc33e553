"""The service inbox's arguments: any word staff type is a ticket number or the usage line,
never a crash; the reply text is taken as typed, line breaks included."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.admin.registry import UsageError
from bot.admin.service import reply_text, ticket_id


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=30))
def test_any_word_is_a_ticket_number_or_the_usage(word: str) -> None:
    try:
        number = ticket_id(word)
    except UsageError:
        return
    assert 0 < number < 2**31 and str(number) in word


@pytest.mark.parametrize(("word", "number"), [("1", 1), ("#12", 12), (" 7 ", 7)])
def test_ticket_numbers_as_staff_type_them(word: str, number: int) -> None:
    assert ticket_id(word) == number


@pytest.mark.parametrize("word", ["0", "-1", "１", "1.5", "abc", "", "99999999999"])
def test_what_is_not_a_ticket_number(word: str) -> None:
    with pytest.raises(UsageError):
        ticket_id(word)


def _actx(text: str) -> Any:
    return SimpleNamespace(ctx=SimpleNamespace(msg=SimpleNamespace(text=text)))


@settings(max_examples=40, deadline=None)
@given(st.text(min_size=1, max_size=80).filter(lambda t: t.strip() == t and t.split() == [t] if t else False))
def test_the_reply_is_what_follows_the_number_as_typed(body: str) -> None:
    typed = f"/reply 3 {body}\n第二行"
    assert reply_text(_actx(typed)) == f"{body}\n第二行"

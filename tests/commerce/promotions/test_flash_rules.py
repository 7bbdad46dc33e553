"""The flash-sale decision and countdown, pure: no database.

A state machine reserves, pays, expires and closes in any order, with units moved only
as `commerce.promotions.flash_sales` moves them (a grab holds a unit when `decide` says
WON; payment: held -> sold; expiry or cancel: held -> free again), and checks that no
count goes below zero, that `sold + held + left == units`, and that no customer holds
more than one unpaid unit or takes more than the limit.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from commerce.promotions.flash_sales import Verdict, countdown, decide

CUSTOMERS = st.integers(min_value=0, max_value=3)


class FlashRush(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.units = 0
        self.limit = 1
        self.held: dict[int, int] = {}
        self.paid: dict[int, int] = {}
        self.closed = False

    @initialize(units=st.integers(min_value=1, max_value=5), limit=st.integers(min_value=1, max_value=3))
    def start(self, units: int, limit: int) -> None:
        self.units, self.limit = units, limit

    @property
    def left(self) -> int:
        return self.units - sum(self.held.values()) - sum(self.paid.values())

    @precondition(lambda self: not self.closed)
    @rule(customer=CUSTOMERS)
    def reserve(self, customer: int) -> None:
        held, paid = self.held.get(customer, 0), self.paid.get(customer, 0)
        verdict = decide(left=self.left, taken=held + paid, holding=held > 0, limit=self.limit)
        if verdict == Verdict.WON:
            self.held[customer] = held + 1
        elif verdict == Verdict.SOLD_OUT:
            assert self.left == 0
        elif verdict == Verdict.LIMIT:
            assert held + paid >= self.limit
        else:
            assert held > 0

    @rule(customer=CUSTOMERS)
    def pay(self, customer: int) -> None:
        if self.held.get(customer, 0) > 0:
            self.held[customer] -= 1
            self.paid[customer] = self.paid.get(customer, 0) + 1

    @rule(customer=CUSTOMERS)
    def expire(self, customer: int) -> None:
        if self.held.get(customer, 0) > 0:
            self.held[customer] -= 1

    @rule()
    def close(self) -> None:
        self.closed = True

    @invariant()
    def units_are_accounted_for(self) -> None:
        sold, held = sum(self.paid.values()), sum(self.held.values())
        assert min(sold, held, self.left) >= 0
        assert sold + held + self.left == self.units
        for customer in set(self.held) | set(self.paid):
            assert self.held.get(customer, 0) <= 1
            assert self.held.get(customer, 0) + self.paid.get(customer, 0) <= self.limit


FlashRush.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None, database=None)
TestFlashRush = FlashRush.TestCase


@settings(max_examples=50, deadline=None, database=None)
@given(left=st.integers(-2, 5), taken=st.integers(0, 5), holding=st.booleans(), limit=st.integers(1, 5))
def test_a_unit_is_won_only_when_one_is_left_under_the_limit_and_none_is_held(
    left: int, taken: int, holding: bool, limit: int
) -> None:
    won = decide(left=left, taken=taken, holding=holding, limit=limit) == Verdict.WON
    assert won == (left > 0 and taken < limit and not holding)


@settings(max_examples=50, deadline=None, database=None)
@given(seconds=st.integers(-3600, 40 * 86400))
def test_the_countdown_in_words_adds_up_to_the_wait_rounded_up_to_a_minute(seconds: int) -> None:
    parts = countdown(seconds)
    assert 0 <= parts["hours"] < 24 and 0 <= parts["minutes"] < 60
    assert parts["days"] * 1440 + parts["hours"] * 60 + parts["minutes"] == max(0, -(-seconds // 60))


def test_the_countdown_reads_as_staff_typed_it() -> None:
    assert countdown(2 * 3600 + 15 * 60) == {"days": 0, "hours": 2, "minutes": 15}
    assert countdown(59) == {"days": 0, "hours": 0, "minutes": 1}

"""The message chain: rate limit -> customer -> staff role -> unit of work -> route.

Unit tests with fakes (no app, no database): each step sees what the steps before it
added, a step that answers stops the rest, and the order is the list's order.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import OperationalError

from bot.chat import middleware
from bot.chat.middleware import Answer, Next, Turn, chain
from bot.chat.replies import Silence, Text
from bot.wechat.inbox import Postponed
from bot.wechat.protocol import Inbound
from bot.wechat.ratelimit import Verdict
from commerce.customers.customers import CustomerInfo
from commerce.rules import ShopRules
from commerce.staff.models import StaffRole
from commerce.uow import RecordingDispatcher, UnitOfWorkFactory

SENT = RecordingDispatcher()
UOWS = UnitOfWorkFactory(sessions=None, rules=ShopRules(), dispatcher=SENT)  # type: ignore[arg-type]  # no database here


def _msg(kind: str = "text", *, event: str | None = None, downgraded: bool = False, openid: str = "o1") -> Inbound:
    return Inbound(
        openid=openid, account="gh", kind=kind, create_time=1, text="hi", event=event, downgraded=downgraded
    )


@dataclass
class FakeLimiter:
    verdicts: list[Verdict]
    hits: list[str] = field(default_factory=list)

    async def hit(self, key: str) -> Verdict:
        self.hits.append(key)
        return self.verdicts.pop(0)


@dataclass
class FakeCustomers:
    locale: str | None = "en"
    touched: list[tuple[str, str | None]] = field(default_factory=list)

    async def touch(
        self,
        openid: str,
        *,
        locale: str | None = None,
        subscribed: bool | None = None,
        messaged: bool = True,
        before_turn: bool = False,
    ) -> CustomerInfo:
        assert before_turn  # the step's touches come before or after the route, never inside its fence
        self.touched.append((openid, locale))
        if locale is not None:
            self.locale = locale
        return CustomerInfo(
            id=42, openid=openid, locale=self.locale, subscribed=True, first_seen=datetime.now(UTC), is_new=False
        )


@dataclass
class FakeStaff:
    roles: dict[str, StaffRole]
    asked: list[str] = field(default_factory=list)

    async def role(self, openid: str) -> StaffRole | None:
        self.asked.append(openid)
        return self.roles.get(openid)


def recording(name: str, seen: list[str]) -> middleware.Middleware:
    async def step(turn: Turn, call_next: Next) -> Answer:
        seen.append(name)
        return await call_next(turn)

    return step


def route(seen: list[Turn], *, said_in: str | None = None) -> middleware.Middleware:
    async def answer(turn: Turn, call_next: Next) -> Answer:
        seen.append(turn)
        return Answer(Text("routed"), said_in or turn.locale, said_in=said_in)

    return answer


def _limit(limiter: FakeLimiter, limited: list[Verdict] | None = None) -> middleware.Middleware:
    async def locale_of(openid: str) -> str:
        return "en"

    return middleware.rate_limit(
        limiter, locale_of=locale_of, on_limited=(limited if limited is not None else []).append
    )


async def test_the_steps_run_in_the_order_of_the_list() -> None:
    seen: list[str] = []
    turns: list[Turn] = []
    run = chain([recording("a", seen), recording("b", seen), recording("c", seen), route(turns)])
    answer = await run(Turn(_msg(), locale="zh"))
    assert seen == ["a", "b", "c"] and answer.reply == Text("routed") and len(turns) == 1
    seen.clear()
    await chain([recording("c", seen), recording("a", seen), route(turns)])(Turn(_msg(), locale="zh"))
    assert seen == ["c", "a"]  # reordering is reordering the list


async def test_a_rate_limited_message_stops_the_rest_of_the_chain() -> None:
    limiter = FakeLimiter([Verdict.ALLOW, Verdict.WARN, Verdict.SILENCE])
    customers, staff, turns, limited = FakeCustomers(), FakeStaff({}), [], []  # type: ignore[var-annotated]
    run = chain([
        _limit(limiter, limited),
        middleware.customer(customers),
        middleware.staff_role(staff),
        middleware.unit_of_work(UOWS),
        route(turns),
    ])
    first = await run(Turn(_msg(), locale="zh"))
    assert not first.refused and first.reply == Text("routed") and len(turns) == 1
    warned = await run(Turn(_msg(), locale="zh"))
    assert warned == Answer(Text("rate_limited"), "en", refused=True)  # in the customer's language
    silent = await run(Turn(_msg(), locale="zh"))
    assert silent.refused and silent.reply == Silence()
    # the customer was touched and the role looked up for the allowed message only
    assert len(turns) == 1 and len(customers.touched) == 1 and staff.asked == ["o1"]
    assert limited == [Verdict.WARN, Verdict.SILENCE]


async def test_system_events_are_not_counted_and_an_unavailable_limiter_lets_through() -> None:
    limiter = FakeLimiter([])
    turns: list[Turn] = []
    run = chain([_limit(limiter), route(turns)])
    await run(Turn(_msg("event", event="templatesendjobfinish"), locale="zh"))
    assert limiter.hits == [] and len(turns) == 1

    class Down:
        async def hit(self, key: str) -> Verdict:
            raise ConnectionError("redis is down")

    answer = await chain([_limit(Down()), route(turns)])(Turn(_msg(), locale="zh"))  # type: ignore[arg-type]
    assert not answer.refused and len(turns) == 2


async def test_staff_count_against_their_own_limit_and_a_forged_staff_message_against_the_customers() -> None:
    customers_limit, staff_limit = FakeLimiter([Verdict.ALLOW] * 3), FakeLimiter([Verdict.ALLOW, Verdict.WARN])
    staff = FakeStaff({"o_boss": StaffRole.OWNER})

    async def locale_of(openid: str) -> str:
        return "zh"

    limit = middleware.rate_limit(
        customers_limit, locale_of=locale_of, staff=middleware.StaffLimit(staff, staff_limit)
    )
    turns: list[Turn] = []
    run = chain([limit, route(turns)])
    assert not (await run(Turn(_msg(openid="o_boss"), locale="zh"))).refused
    assert (await run(Turn(_msg(openid="o_boss"), locale="zh"))).refused  # their own limit, reached
    await run(Turn(_msg(openid="o_boss", downgraded=True), locale="zh"))  # unsigned: anyone could send it
    await run(Turn(_msg(openid="o1"), locale="zh"))
    assert staff_limit.hits == ["staff:o_boss", "staff:o_boss"] and customers_limit.hits == ["o_boss", "o1"]

    class RolesDown:
        async def role(self, openid: str) -> StaffRole | None:
            raise ConnectionError("database away")

    unknown = middleware.rate_limit(
        customers_limit, locale_of=locale_of, staff=middleware.StaffLimit(RolesDown(), None)
    )
    await chain([unknown, route(turns)])(Turn(_msg(openid="o_boss"), locale="zh"))
    assert customers_limit.hits[-1] == "o_boss"  # roles unknown: counted as a customer


async def test_the_staff_role_and_the_customer_are_known_before_the_route() -> None:
    turns: list[Turn] = []
    run = chain([
        middleware.customer(FakeCustomers(locale="en")),
        middleware.staff_role(FakeStaff({"o_boss": StaffRole.OWNER})),
        middleware.unit_of_work(UOWS),
        route(turns),
    ])
    await run(Turn(_msg(openid="o_boss"), locale="zh"))
    await run(Turn(_msg(openid="o_guest"), locale="zh"))
    boss, guest = turns
    assert (boss.customer_id, boss.locale, boss.staff_role) == (42, "en", StaffRole.OWNER)
    assert guest.staff_role is None


async def test_a_downgraded_request_never_acts_as_staff() -> None:
    turns: list[Turn] = []
    staff = FakeStaff({"o_boss": StaffRole.OWNER})
    await chain([middleware.staff_role(staff), route(turns)])(Turn(_msg(openid="o_boss", downgraded=True), locale="zh"))
    assert turns[0].staff_role is None and staff.asked == []


async def test_the_language_the_customer_was_recognised_in_becomes_theirs() -> None:
    customers = FakeCustomers(locale="zh")
    answer = await chain([middleware.customer(customers), route([], said_in="en")])(Turn(_msg(), locale="zh"))
    assert answer.locale == "en" and customers.locale == "en"
    assert customers.touched == [("o1", None), ("o1", "en")]
    again = FakeCustomers(locale="en")  # already theirs: no second write
    await chain([middleware.customer(again), route([], said_in="en")])(Turn(_msg(), locale="zh"))
    assert again.touched == [("o1", None)]


async def test_a_chain_whose_last_step_does_not_answer_is_a_bug() -> None:
    with pytest.raises(LookupError):
        await chain([middleware.unit_of_work(UOWS)])(Turn(_msg(), locale="zh"))


async def test_a_turns_messages_go_out_once_it_has_its_answer_even_when_it_fails() -> None:
    sent = RecordingDispatcher()
    uows = UnitOfWorkFactory(sessions=None, rules=ShopRules(), dispatcher=sent)  # type: ignore[arg-type]
    seen_during: list[list[int]] = []

    async def committing_route(turn: Turn, call_next: Next) -> Answer:
        assert turn.uow is not None and turn.uow.rules is uows.rules
        turn.uow.dispatcher.dispatch([7, 8])  # what a unit of work does after its commit
        turn.uow.dispatcher.dispatch([9])
        seen_during.append(list(sent.ids))
        return Answer(Text("routed"), "zh")

    answer = await chain([middleware.unit_of_work(uows), committing_route])(Turn(_msg(), locale="zh"))
    assert answer.reply == Text("routed")
    assert seen_during == [[]] and sent.ids == [7, 8, 9]  # held until the answer, then in order

    async def failing_route(turn: Turn, call_next: Next) -> Answer:
        assert turn.uow is not None
        turn.uow.dispatcher.dispatch([10])  # committed before the failure: still told
        raise RuntimeError("handler bug")

    with pytest.raises(RuntimeError):
        await chain([middleware.unit_of_work(uows), failing_route])(Turn(_msg(), locale="zh"))
    assert sent.ids == [7, 8, 9, 10]


# ---- a busy database (SQLite's write lock held past the busy timeout) -------------------------


def _locked() -> OperationalError:
    return OperationalError("UPDATE carts ...", {}, sqlite3.OperationalError("database is locked"))


def _busy_until(attempts: int, seen: list[int]) -> middleware.Middleware:
    """A route whose database is busy for its first `attempts` runs."""

    async def step(turn: Turn, call_next: Next) -> Answer:
        seen.append(len(seen) + 1)
        if len(seen) <= attempts:
            raise _locked()
        return Answer(Text("added_to_cart"), turn.locale)

    return step


async def test_a_turn_runs_again_while_the_database_is_busy_with_pauses_that_double() -> None:
    seen: list[int] = []
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    policy = middleware.BusyRetry(deadline=60, first_pause=0.1, max_pause=0.3)
    answer = await chain([middleware.retry_when_busy(policy, sleep=sleep), _busy_until(3, seen)])(Turn(_msg(), "zh"))
    assert answer.reply == Text("added_to_cart")
    assert seen == [1, 2, 3, 4] and pauses == pytest.approx([0.1, 0.2, 0.3])


async def test_a_turn_still_busy_at_its_deadline_is_postponed_not_answered_with_an_error() -> None:
    seen: list[int] = []

    async def sleep(seconds: float) -> None:
        return None

    with pytest.raises(Postponed):
        await chain([middleware.retry_when_busy(middleware.BusyRetry(deadline=0), sleep=sleep), _busy_until(9, seen)])(
            Turn(_msg(), "zh")
        )
    assert seen == [1]


async def test_other_failures_are_not_retried() -> None:
    calls: list[int] = []

    async def broken(turn: Turn, call_next: Next) -> Answer:
        calls.append(1)
        raise OperationalError("SELECT 1", {}, sqlite3.OperationalError("no such table: carts"))

    with pytest.raises(OperationalError):
        await chain([middleware.retry_when_busy(middleware.BusyRetry()), broken])(Turn(_msg(), "zh"))
    assert calls == [1]

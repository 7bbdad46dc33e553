"""The dialog runtime: declared transitions, typed versioned data, TTL, fall-through."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, replace
from types import SimpleNamespace

import pytest

from bot.chat.context import Context
from bot.chat.replies import Notice, Text
from bot.dialogs.base import Active, Dialog, DialogRuntime, Expired, Step, TransitionError, on
from bot.dialogs.store import MemoryDialogStore
from bot.wechat.protocol import Inbound


class Counter(enum.StrEnum):
    COUNTING = "counting"
    DONE = "done"


@dataclass(slots=True)
class CounterData:
    count: int = 0


class CounterDialog(Dialog[Counter, CounterData]):
    """Counts "+" messages; "=" finishes; "jump" tries an undeclared transition."""

    name = "counter"
    State = Counter
    Data = CounterData
    initial = frozenset({Counter.COUNTING})
    transitions = {Counter.COUNTING: frozenset({Counter.COUNTING, Counter.DONE}), Counter.DONE: frozenset()}

    @on(Counter.COUNTING)
    async def counting(self, ctx: Context, data: CounterData) -> Step | None:
        if ctx.msg.text == "+":
            return Step(Text("n", {"n": data.count + 1}), Counter.COUNTING, CounterData(data.count + 1))
        if ctx.msg.text == "=":
            return Step(Text("done", {"n": data.count}), Counter.DONE, data)
        if ctx.msg.text == "stop":
            return Step(Text("bye"))
        return None

    @on(Counter.DONE)
    async def done(self, ctx: Context, data: CounterData) -> Step | None:
        if ctx.msg.text == "jump":
            return Step(Text("x"), Counter.COUNTING, data)
        return None


def _ctx(runtime: DialogRuntime, text: str, openid: str = "o1") -> Context:
    msg = Inbound(openid=openid, account="gh", kind="text", create_time=1, msg_id="1", text=text)
    return Context(msg=msg, services=SimpleNamespace(dialogs=runtime), locale="zh")  # type: ignore[arg-type]


COUNTER = CounterDialog()  # the test's handle on the dialog it gives the runtime


@pytest.fixture
def runtime() -> DialogRuntime:
    return DialogRuntime(MemoryDialogStore(), [COUNTER], ttl_seconds=60)


async def _turn(runtime: DialogRuntime, text: str) -> Text | None:
    loaded = await runtime.load("o1")
    assert isinstance(loaded, Active)
    return await runtime.advance(_ctx(runtime, text), loaded)  # type: ignore[return-value]


async def test_typed_data_survives_between_messages(runtime: DialogRuntime) -> None:
    dialog = COUNTER
    await runtime.start(_ctx(runtime, "go"), dialog, Step(Text("start"), Counter.COUNTING, CounterData()))
    await _turn(runtime, "+")
    reply = await _turn(runtime, "+")
    assert reply == Text("n", {"n": 2})
    loaded = await runtime.load("o1")
    assert isinstance(loaded, Active) and loaded.data == CounterData(2) and loaded.state is Counter.COUNTING


async def test_declining_leaves_the_state_alone(runtime: DialogRuntime) -> None:
    dialog = COUNTER
    await runtime.start(_ctx(runtime, "go"), dialog, Step(Text("start"), Counter.COUNTING, CounterData(5)))
    assert await _turn(runtime, "something else") is None
    loaded = await runtime.load("o1")
    assert isinstance(loaded, Active) and loaded.data.count == 5


async def test_undeclared_transition_is_refused(runtime: DialogRuntime) -> None:
    dialog = COUNTER
    await runtime.start(_ctx(runtime, "go"), dialog, Step(Text("start"), Counter.COUNTING, CounterData()))
    await _turn(runtime, "=")
    with pytest.raises(TransitionError):
        await _turn(runtime, "jump")
    with pytest.raises(TransitionError):
        await runtime.start(_ctx(runtime, "go"), dialog, Step(Text("x"), Counter.DONE, CounterData()))


async def test_ending_clears_the_state(runtime: DialogRuntime) -> None:
    dialog = COUNTER
    await runtime.start(_ctx(runtime, "go"), dialog, Step(Text("start"), Counter.COUNTING, CounterData()))
    assert await _turn(runtime, "stop") == Text("bye")
    assert await runtime.load("o1") is None


async def test_expiry_is_reported_once(runtime: DialogRuntime) -> None:
    dialog = COUNTER
    await runtime.start(_ctx(runtime, "go"), dialog, Step(Text("start"), Counter.COUNTING, CounterData()))
    stored = await runtime.store.get("o1")
    assert stored is not None
    await runtime.store.put("o1", replace(stored, expires_at=time.time() - 1))
    loaded = await runtime.load("o1")
    assert isinstance(loaded, Expired) and loaded.dialog is dialog


async def test_state_from_another_version_is_dropped(runtime: DialogRuntime) -> None:
    dialog = COUNTER
    await runtime.start(_ctx(runtime, "go"), dialog, Step(Text("start"), Counter.COUNTING, CounterData()))
    stored = await runtime.store.get("o1")
    assert stored is not None
    await runtime.store.put("o1", replace(stored, version=dialog.version + 1))
    assert await runtime.load("o1") is None
    assert await runtime.store.get("o1") is None


async def test_data_that_no_longer_fits_is_dropped(runtime: DialogRuntime) -> None:
    dialog = COUNTER
    await runtime.start(_ctx(runtime, "go"), dialog, Step(Text("start"), Counter.COUNTING, CounterData()))
    stored = await runtime.store.get("o1")
    assert stored is not None
    await runtime.store.put("o1", replace(stored, data={"unknown_field": 1}))
    assert await runtime.load("o1") is None


def test_a_dialog_must_handle_every_state() -> None:
    with pytest.raises(TypeError, match="no handler"):

        class Broken(Dialog[Counter, CounterData]):  # noqa: F841
            name = "broken"
            State = Counter
            Data = CounterData
            initial = frozenset({Counter.COUNTING})
            transitions = {Counter.COUNTING: frozenset(), Counter.DONE: frozenset()}

            @on(Counter.COUNTING)
            async def counting(self, ctx: Context, data: CounterData) -> Step | None:
                return None


async def test_every_transition_is_heard_and_a_failing_hook_changes_nothing() -> None:
    heard: list[tuple[str, str, str]] = []
    runtime = DialogRuntime(MemoryDialogStore(), [COUNTER], ttl_seconds=60, on_transition=lambda *t: heard.append(t))
    dialog = COUNTER
    await runtime.start(_ctx(runtime, "go"), dialog, Step(Text("start"), Counter.COUNTING, CounterData()))
    await _turn(runtime, "+")
    await _turn(runtime, "nothing")  # declined: no transition
    await _turn(runtime, "stop")
    assert heard == [("counter", "start", "counting"), ("counter", "counting", "counting"), ("counter", "counting", "end")]

    def broken(*_: str) -> None:
        raise RuntimeError("metrics down")

    failing = DialogRuntime(MemoryDialogStore(), [COUNTER], ttl_seconds=60, on_transition=broken)
    await failing.start(_ctx(failing, "go"), dialog, Step(Text("start"), Counter.COUNTING, CounterData()))
    loaded = await failing.load("o1")
    assert isinstance(loaded, Active) and loaded.state is Counter.COUNTING


class ParkedCounter(CounterDialog):
    """The counter as a resumable dialog (as checkout is): set aside, never dropped, when left."""

    name = "parked_counter"
    resumable = True


PARKED_COUNTER = ParkedCounter()


@pytest.fixture
def two_dialogs() -> DialogRuntime:
    return DialogRuntime(MemoryDialogStore(), [COUNTER, PARKED_COUNTER], ttl_seconds=60)


async def test_a_resumable_dialog_replaced_by_another_is_parked_with_its_data(two_dialogs: DialogRuntime) -> None:
    runtime, ctx = two_dialogs, _ctx(two_dialogs, "go")
    await runtime.start(ctx, PARKED_COUNTER, Step(Text("a"), Counter.COUNTING, CounterData(5)))
    reply = await runtime.start(ctx, COUNTER, Step(Text("b"), Counter.COUNTING, CounterData()))
    assert reply == Text("b", notices=(Notice("dialog_parked", {"dialog": "parked_counter"}),))
    loaded = await runtime.load("o1")
    assert isinstance(loaded, Active) and loaded.dialog is COUNTER
    assert await runtime.take_parked("o1", COUNTER) is None  # only the parked dialog takes itself back
    taken = await runtime.take_parked("o1", PARKED_COUNTER)
    assert taken is not None and taken.state == Counter.COUNTING and taken.data == CounterData(5)
    assert await runtime.parked("o1") is None  # taken once
    assert await runtime.resume(ctx, PARKED_COUNTER, Step(Text("again"), Counter.DONE, taken.data)) == Text("again")
    loaded = await runtime.load("o1")
    assert isinstance(loaded, Active) and loaded.dialog is PARKED_COUNTER and loaded.state == Counter.DONE


async def test_ending_parks_a_resumable_dialog_and_cancel_drops_it(two_dialogs: DialogRuntime) -> None:
    runtime, ctx = two_dialogs, _ctx(two_dialogs, "go")
    await runtime.start(ctx, PARKED_COUNTER, Step(Text("a"), Counter.COUNTING, CounterData(2)))
    await runtime.end("o1")
    assert await runtime.load("o1") is None
    parked = await runtime.parked("o1")
    assert parked is not None and parked.data == CounterData(2)
    await runtime.cancel("o1")
    assert await runtime.parked("o1") is None


async def test_other_dialogs_and_finished_ones_are_not_parked(two_dialogs: DialogRuntime) -> None:
    runtime, ctx = two_dialogs, _ctx(two_dialogs, "go")
    await runtime.start(ctx, COUNTER, Step(Text("a"), Counter.COUNTING, CounterData(1)))
    await runtime.end("o1")
    assert await runtime.parked("o1") is None  # not resumable: ended as before
    await runtime.start(ctx, PARKED_COUNTER, Step(Text("a"), Counter.COUNTING, CounterData(1)))
    loaded = await runtime.load("o1")
    assert isinstance(loaded, Active)
    assert await runtime.advance(_ctx(runtime, "stop"), loaded) == Text("bye")  # it ended itself
    assert await runtime.parked("o1") is None
    await runtime.start(ctx, PARKED_COUNTER, Step(Text("a"), Counter.COUNTING, CounterData(1)))
    stored = await runtime.store.get("o1")
    assert stored is not None
    await runtime.store.put("o1", replace(stored, expires_at=time.time() - 1))
    await runtime.end("o1")
    assert await runtime.parked("o1") is None  # an expired dialog is not kept


async def test_a_declined_message_is_answered_by_the_dialogs_reprompt(two_dialogs: DialogRuntime) -> None:
    runtime = two_dialogs
    assert await runtime.reprompt(_ctx(runtime, "?")) is None  # no dialog open
    await runtime.start(_ctx(runtime, "go"), COUNTER, Step(Text("a"), Counter.COUNTING, CounterData()))
    assert await runtime.reprompt(_ctx(runtime, "?")) is None  # the default: no reprompt

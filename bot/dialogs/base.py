"""The dialog runtime: typed states, small versioned data, declared transitions, a TTL.

A dialog is a class with a `StrEnum` of states, a dataclass of data (ids, not
objects), the transitions it allows, and one handler per state (`@on(State.X)`).
A handler returns a `Step`: the reply, the next state (or None to end) and the data.
The runtime refuses undeclared transitions, stamps the data with the dialog's
version (stale versions are dropped on load), and remembers when the dialog expires
so the next message can be told so.

A stray message never silently ends a dialog:
- a `resumable` dialog (checkout) that another dialog replaces, or that is left by
  `end` (a search, the orders list, a hand-over), is *parked* with its state and data;
  its own entry point takes it back (`take_parked`, then `resume`), and replies of the
  dialogs started meanwhile say how to return (`dialog_parked`); only `cancel` drops it.
- a message the open dialog declines and nothing else understands is answered with
  what the step needs and how to leave (`Dialog.reprompt`), and the dialog stays.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from bot.chat.context import Context
from bot.chat.keywords import match_keyword, parse_number
from bot.chat.replies import Notice, Reply, with_notice
from bot.dialogs.store import DialogStore, StoredDialog, TurnReads

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

S = TypeVar("S", bound=enum.StrEnum)
D = TypeVar("D")


class TransitionError(RuntimeError):
    """A dialog tried to move to a state it did not declare (a programming error)."""


@dataclass(frozen=True, slots=True)
class Step(Generic[S, D]):
    reply: Reply
    state: S | None = None  # None ends the dialog
    data: D | None = None
    handed_over: bool = False  # the handler started another dialog: leave the store alone


STATES_ATTR = "_dialog_states"  # where @on leaves the states a handler answers


def on(*states: enum.StrEnum) -> Callable[[Callable[..., Awaitable[Step | None]]], Any]:
    """Mark a method as the handler of one or more states."""

    def mark(func: Callable[..., Awaitable[Step | None]]) -> Any:
        setattr(func, STATES_ATTR, states)  # functions take attributes; read by Dialog.__init_subclass__
        return func

    return mark


class Dialog(Generic[S, D]):
    name: ClassVar[str]
    State: ClassVar[type[enum.StrEnum]]
    Data: ClassVar[type[DataclassInstance]]
    version: ClassVar[int] = 1
    exclusive: ClassVar[bool] = False  # sees every message first, even "help" and commands
    resumable: ClassVar[bool] = False  # parked, not dropped, when left for another dialog
    # the states it is parked in (None: all of them); left in any other, it is dropped
    parked_in: ClassVar[frozenset[str] | None] = None
    # the states in which it asks for a delivery address of its own (an embedded
    # `bot.dialogs.address_step.AddressStep`): "改地址" there means that address, never an
    # order placed before (bot.handlers.understood)
    address_states: ClassVar[frozenset[enum.StrEnum]] = frozenset()
    ttl_seconds: ClassVar[int | None] = None  # its own time to live; None: the runtime's (dialog.ttl_seconds)
    initial: ClassVar[frozenset[enum.StrEnum]]
    transitions: ClassVar[Mapping[enum.StrEnum, frozenset[enum.StrEnum]]]
    _handlers: ClassVar[dict[str, str]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers: dict[str, str] = {}
        for klass in reversed(cls.__mro__):  # a subclass keeps (or overrides) its base's handlers
            for attr, value in vars(klass).items():
                for state in getattr(value, STATES_ATTR, ()):
                    handlers[str(state)] = attr
        cls._handlers = handlers
        missing = [s for s in cls.State if str(s) not in handlers]
        if missing:
            raise TypeError(f"dialog {cls.name}: no handler for states {missing}")
        undeclared = [s for s in cls.State if s not in cls.transitions]
        if undeclared:
            raise TypeError(f"dialog {cls.name}: no transitions declared for {undeclared}")

    async def handle(self, ctx: Context, state: S, data: D) -> Step[S, D] | None:
        """Run the state's handler; None means "not for me" and lets the message fall through."""
        return await getattr(self, self._handlers[str(state)])(ctx, data)

    async def reprompt(self, ctx: Context, state: S, data: D) -> Reply | None:
        """What this step needs and how to leave, for a message it declined that nothing
        else understood either; None: no such answer (the message is searched, the
        dialog ends)."""
        return None

    def expects(self, ctx: Context) -> bool:
        """Whether the message only makes sense inside this dialog (a number, next page…).

        Used after expiry: such a message is answered with "this expired" instead of
        being misread as a new search.
        """
        if ctx.msg.kind not in ("text", "voice"):
            return False
        keyword = match_keyword(ctx.msg.text)
        return parse_number(ctx.msg.text) is not None or (
            keyword is not None and keyword[0] in ("next", "prev", "back")
        )


@dataclass(frozen=True, slots=True)
class Active:
    dialog: Dialog[Any, Any]
    state: enum.StrEnum
    data: Any


@dataclass(frozen=True, slots=True)
class Expired:
    dialog: Dialog[Any, Any]


log = logging.getLogger(__name__)

START, END = "start", "end"  # the from/to of a dialog's first and last transition
PARKED = "#parked"  # the store key of a parked dialog: the openid and this (openids have no "#")


class DialogRuntime:
    def __init__(
        self,
        store: DialogStore,
        dialogs: Iterable[Dialog[Any, Any]],
        *,
        ttl_seconds: int,
        on_transition: Callable[[str, str, str], None] | None = None,
    ) -> None:
        """`on_transition(dialog, from_state, to_state)` hears every move (metrics); "start"
        and "end" stand for no state. A hook that fails never breaks the conversation."""
        self.store: DialogStore = TurnReads(store)  # read once per key within a turn (`one_turn`)
        self.ttl_seconds = ttl_seconds
        self._dialogs = {d.name: d for d in dialogs}
        self._on_transition = on_transition

    async def load(self, openid: str) -> Active | Expired | None:
        stored = await self.store.get(openid)
        if stored is None:
            return None
        dialog = self._dialogs.get(stored.dialog)
        if dialog is None or stored.version != dialog.version:
            await self.store.delete(openid)  # a dialog from an older release: start afresh
            return None
        if stored.expired():
            return Expired(dialog)
        try:
            state = dialog.State(stored.state)
            data = dialog.Data(**stored.data)
        except (TypeError, ValueError):
            await self.store.delete(openid)
            return None
        return Active(dialog, state, data)

    async def start(self, ctx: Context, dialog: Dialog[Any, Any], step: Step[Any, Any]) -> Reply:
        """Begin `dialog` with `step` (its state must be one of the dialog's initial states).

        A resumable dialog it replaces is parked; while one is parked, the reply says how
        to return to it."""
        if step.state is not None and step.state not in dialog.initial:
            raise TransitionError(f"{dialog.name} cannot start in {step.state}")
        await self._park_current(ctx.openid, unless=dialog)
        await self._save(ctx.openid, dialog, step, frm=START)
        parked = await self.parked(ctx.openid)
        if parked is not None and parked.dialog is not dialog:
            return with_notice(step.reply, Notice("dialog_parked", {"dialog": parked.dialog.name}))
        return step.reply

    async def resume(self, ctx: Context, dialog: Dialog[Any, Any], step: Step[Any, Any]) -> Reply:
        """Go on with a dialog taken back (`take_parked`) in any of its states."""
        if step.state is not None and step.state not in dialog.transitions:
            raise TransitionError(f"{dialog.name} has no state {step.state}")
        await self._save(ctx.openid, dialog, step, frm=START)
        return step.reply

    async def parked(self, openid: str) -> Active | None:
        """The dialog set aside for this customer, if it is still fresh."""
        stored = await self.store.get(openid + PARKED)
        return self._active(stored) if stored is not None and not stored.expired() else None

    async def take_parked(self, openid: str, dialog: Dialog[Any, Any]) -> Active | None:
        """The parked `dialog` (removed from the store), or None."""
        parked = await self.parked(openid)
        if parked is None or parked.dialog is not dialog:
            return None
        await self.store.delete(openid + PARKED)
        return parked

    async def reprompt(self, ctx: Context) -> Reply | None:
        """The open dialog's answer to a message nobody understood (`Dialog.reprompt`)."""
        loaded = await self.load(ctx.openid)
        if not isinstance(loaded, Active):
            return None
        return await loaded.dialog.reprompt(ctx, loaded.state, loaded.data)

    async def advance(self, ctx: Context, active: Active) -> Reply | None:
        """Let the active dialog handle the message; None when it declines."""
        step = await active.dialog.handle(ctx, active.state, active.data)
        if step is None:
            return None
        allowed = active.dialog.transitions[active.state]
        if step.state is not None and step.state not in allowed:
            raise TransitionError(f"{active.dialog.name}: {active.state} -> {step.state} is not declared")
        await self._save(ctx.openid, active.dialog, step, frm=str(active.state))
        return step.reply

    async def end(self, openid: str) -> None:
        """The open dialog is left (a resumable one is parked)."""
        await self._park_current(openid)
        await self.store.delete(openid)

    async def cancel(self, openid: str) -> None:
        """The customer said "cancel": the open dialog and a parked one are dropped."""
        await self.store.delete(openid)
        await self.store.delete(openid + PARKED)

    async def _park_current(self, openid: str, *, unless: Dialog[Any, Any] | None = None) -> None:
        stored = await self.store.get(openid)
        if stored is None or stored.expired() or (unless is not None and stored.dialog == unless.name):
            return
        dialog = self._dialogs.get(stored.dialog)
        if dialog is None or not dialog.resumable or stored.version != dialog.version:
            return
        if dialog.parked_in is not None and stored.state not in dialog.parked_in:
            return
        await self.store.put(openid + PARKED, dataclasses.replace(stored, expires_at=time.time() + self.ttl_seconds))

    def _active(self, stored: StoredDialog) -> Active | None:
        dialog = self._dialogs.get(stored.dialog)
        if dialog is None or stored.version != dialog.version:
            return None
        try:
            return Active(dialog, dialog.State(stored.state), dialog.Data(**stored.data))
        except (TypeError, ValueError):
            return None

    async def _save(self, openid: str, dialog: Dialog[Any, Any], step: Step[Any, Any], *, frm: str) -> None:
        if step.handed_over:  # the handler started another dialog, which saved (and counted) itself
            return
        if step.state is None:
            await self.store.delete(openid)
        else:
            if not isinstance(step.data, dialog.Data):
                raise TypeError(f"{dialog.name}: step data must be {dialog.Data.__name__}")
            stored = StoredDialog(
                dialog=dialog.name,
                state=str(step.state),
                version=dialog.version,
                # fields by hand, not asdict (a deep copy per message); the store serialises at once
                data={f.name: getattr(step.data, f.name) for f in dataclasses.fields(step.data)},
                expires_at=time.time() + (dialog.ttl_seconds or self.ttl_seconds),
            )
            await self.store.put(openid, stored)
        if self._on_transition is not None:
            try:
                self._on_transition(dialog.name, frm, END if step.state is None else str(step.state))
            except Exception:  # a metric never breaks a conversation
                log.exception("dialog transition hook failed")

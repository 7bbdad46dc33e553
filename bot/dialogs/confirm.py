"""Two-step confirmation of staff actions that move money or hide things.

```mermaid
stateDiagram-v2
    [*] --> WAITING: a command marked confirm=True restated the action with a code
    WAITING --> [*]: "确认" / "confirm" / the code within the window: the action runs
    WAITING --> [*]: anything else, or too late: aborted (nothing happens)
```
The pending action is stored as the command name and its arguments (never a
closure), so the confirmation can arrive on any worker.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Protocol

from bot.chat.context import Context
from bot.chat.keywords import match_keyword, normalize
from bot.chat.replies import Reply, Text
from bot.dialogs.base import Dialog, Step, on

CONFIRM_SECONDS = 120


class ConfirmState(enum.StrEnum):
    WAITING = "waiting"


@dataclass(slots=True)
class ConfirmData:
    command: str
    args: list[str] = field(default_factory=list)
    code: str = ""
    deadline: float = 0.0


class AnswerConfirmation(Protocol):
    """Runs the confirmed command (`outcome` "ok"), or records why it did not run
    ("cancelled", "expired")."""

    async def __call__(self, ctx: Context, data: ConfirmData, *, outcome: str) -> Reply: ...


class ConfirmDialog(Dialog[ConfirmState, ConfirmData]):
    """Holds one pending staff action; `on_answer` (given by the app) acts on the answer,
    so this dialog never imports the handlers that own the commands."""

    name = "confirm"
    State = ConfirmState
    Data = ConfirmData
    version = 1
    exclusive = True  # "anything else aborts": nothing may slip past a pending confirmation
    initial = frozenset({ConfirmState.WAITING})
    transitions = {ConfirmState.WAITING: frozenset()}

    def __init__(self, *, on_answer: AnswerConfirmation) -> None:
        """`on_answer(ctx, data, outcome=...)` runs the confirmed command, or records why it
        did not run ("cancelled", "expired"); the app passes the staff commands' own."""
        self._on_answer = on_answer

    async def ask(self, ctx: Context, *, command: str, args: list[str], code: str, reply: Text) -> Reply:
        data = ConfirmData(command=command, args=list(args), code=code, deadline=time.time() + CONFIRM_SECONDS)
        return await ctx.services.dialogs.start(ctx, self, Step(reply, ConfirmState.WAITING, data))

    def expects(self, ctx: Context) -> bool:
        return True  # after expiry, whatever comes is answered with "that confirmation expired"

    @on(ConfirmState.WAITING)
    async def waiting(self, ctx: Context, data: ConfirmData) -> Step[ConfirmState, ConfirmData]:
        run_confirmed = self._on_answer
        keyword = match_keyword(ctx.msg.text)
        said = normalize(ctx.msg.text)
        confirmed = (keyword is not None and keyword[0] == "confirm") or (data.code and said == data.code)
        if time.time() > data.deadline:
            return Step(await run_confirmed(ctx, data, outcome="expired"))
        if not confirmed:
            return Step(await run_confirmed(ctx, data, outcome="cancelled"))
        return Step(await run_confirmed(ctx, data, outcome="ok"))

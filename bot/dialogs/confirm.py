"""Two-step confirmation of staff actions that move money or hide things.

```mermaid
stateDiagram-v2
    [*] --> WAITING: a command marked confirm=True restated the action with a code
    WAITING --> WAITING: another staff command: it runs, and the reply says this one still waits
    WAITING --> [*]: "确认" / "confirm" / the code within the window: the action runs
    WAITING --> [*]: another command that itself needs confirming: that one waits instead
    WAITING --> [*]: any other text, or too late: aborted (nothing happens)
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
from bot.chat.replies import Notice, Reply, Text, with_notice
from bot.dialogs.base import Active, Dialog, Step, on

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


class RunCommand(Protocol):
    """Runs the message as a staff command; None when it is not one."""

    async def __call__(self, ctx: Context) -> Reply | None: ...


async def _no_command(ctx: Context) -> Reply | None:
    return None


class ConfirmDialog(Dialog[ConfirmState, ConfirmData]):
    """Holds one pending staff action; `on_answer` (given by the app) acts on the answer,
    so this dialog never imports the handlers that own the commands."""

    name = "confirm"
    State = ConfirmState
    Data = ConfirmData
    version = 1
    exclusive = True  # "anything else aborts": nothing may slip past a pending confirmation
    initial = frozenset({ConfirmState.WAITING})
    transitions = {ConfirmState.WAITING: frozenset({ConfirmState.WAITING})}

    def __init__(self, *, on_answer: AnswerConfirmation, on_command: RunCommand = _no_command) -> None:
        """`on_answer(ctx, data, outcome=...)` runs the confirmed command, or records why it
        did not run ("cancelled", "expired"); `on_command(ctx)` runs another staff command
        typed meanwhile. The app passes the staff commands' own."""
        self._on_answer = on_answer
        self._on_command = on_command

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
        if not confirmed and (ran := await self._on_command(ctx)) is not None:
            return await self._beside(ctx, data, ran)
        if not confirmed:
            return Step(await run_confirmed(ctx, data, outcome="cancelled"))
        return Step(await run_confirmed(ctx, data, outcome="ok"))

    async def _beside(self, ctx: Context, data: ConfirmData, ran: Reply) -> Step[ConfirmState, ConfirmData]:
        """Another staff command ran while this one waits (issue 15: it used to call this one
        off and drop the command): this one still waits, unless the command asked for a
        confirmation of its own, which then waits instead (one at a time)."""
        now = await ctx.services.dialogs.load(ctx.openid)
        if isinstance(now, Active) and now.dialog is self and now.data.code != data.code:
            return Step(with_notice(ran, Notice("admin/confirm_replaced", {"command": data.command})), handed_over=True)
        waiting = {"command": data.command, "confirm_code": data.code}
        return Step(with_notice(ran, Notice("admin/confirm_waiting", waiting)), ConfirmState.WAITING, data)

"""The dialog runtime, counting its transitions (Prometheus: storefront_dialog_transitions).

A subclass rather than a change to `bot/dialogs/base.py`: it sees every save through
`_save`, and knows the state a dialog leaves from `advance` (a context variable, so a
handler that starts another dialog inside `advance` is counted as that dialog's start).
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from bot.context import Context
from bot.dialogs.base import Active, Dialog, DialogRuntime, Step
from bot.replies import Reply

START, END = "start", "end"
_leaving: ContextVar[str] = ContextVar("dialog_leaving", default=START)


class ObservedDialogRuntime(DialogRuntime):
    def __init__(
        self, *args: Any, on_transition: Callable[[str, str, str], None], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._on_transition = on_transition

    async def start(self, ctx: Context, dialog: Dialog[Any, Any], step: Step[Any, Any]) -> Reply:
        token = _leaving.set(START)
        try:
            return await super().start(ctx, dialog, step)
        finally:
            _leaving.reset(token)

    async def advance(self, ctx: Context, active: Active) -> Reply | None:
        token = _leaving.set(str(active.state))
        try:
            return await super().advance(ctx, active)
        finally:
            _leaving.reset(token)

    async def _save(self, openid: str, dialog: Dialog[Any, Any], step: Step[Any, Any]) -> None:
        await super()._save(openid, dialog, step)
        if not step.handed_over:
            to_state = END if step.state is None else str(step.state)
            try:
                self._on_transition(dialog.name, _leaving.get(), to_state)
            except Exception:  # a metric never breaks a conversation
                pass

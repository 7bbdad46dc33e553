"""A small router: ordered routes, each a set of filters and a handler.

A handler returns a reply, or None to let the next matching route try. Filters are
plain callables on the context, so new kinds are one small class each.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.chat.context import Context
from bot.chat.keywords import match_keyword
from bot.chat.replies import Reply

Handler = Callable[[Context], Awaitable[Reply | None]]
Filter = Callable[[Context], bool]


@dataclass(frozen=True, slots=True)
class Keyword:
    """The whole text is one of the zh/en synonyms of `name` (see bot.chat.keywords)."""

    name: str

    def __call__(self, ctx: Context) -> bool:
        found = match_keyword(ctx.msg.text) if ctx.msg.kind in ("text", "voice") else None
        if found and found[0] == self.name:
            ctx.extras["keyword_locale"] = found[1]
            ctx.locale = found[1]
            return True
        return False


@dataclass(frozen=True, slots=True)
class Regex:
    pattern: re.Pattern[str]

    def __init__(self, pattern: str) -> None:
        object.__setattr__(self, "pattern", re.compile(pattern))

    def __call__(self, ctx: Context) -> bool:
        if ctx.msg.kind not in ("text", "voice"):
            return False
        ctx.match = self.pattern.fullmatch(ctx.msg.text.strip())
        return ctx.match is not None


@dataclass(frozen=True, slots=True)
class MenuKey:
    """A CLICK on the custom menu whose EventKey equals `key` (or starts with `prefix`)."""

    key: str = ""
    prefix: str = ""

    def __call__(self, ctx: Context) -> bool:
        if ctx.msg.event != "click":
            return False
        key = ctx.msg.event_key
        return key == self.key if self.key else key.startswith(self.prefix)


@dataclass(frozen=True, slots=True)
class Event:
    name: str

    def __call__(self, ctx: Context) -> bool:
        return ctx.msg.event == self.name


@dataclass(frozen=True, slots=True)
class MsgType:
    kinds: tuple[str, ...]

    def __init__(self, *kinds: str) -> None:
        object.__setattr__(self, "kinds", kinds)

    def __call__(self, ctx: Context) -> bool:
        return ctx.msg.kind in self.kinds


def staff_only(ctx: Context) -> bool:
    return ctx.is_staff


class Router:
    def __init__(self) -> None:
        self._routes: list[tuple[tuple[Filter, ...], Handler]] = []

    def route(self, *filters: Filter) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self._routes.append((filters, handler))
            return handler

        return register

    def include(self, other: Router) -> None:
        self._routes.extend(other._routes)

    async def dispatch(self, ctx: Context) -> Reply | None:
        for filters, handler in self._routes:
            if all(f(ctx) for f in filters):
                reply = await handler(ctx)
                if reply is not None:
                    return reply
        return None

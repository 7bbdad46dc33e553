"""A small router: ordered routes, each a set of filters and a handler (aiogram v3 style).

A filter is a plain callable on the context that answers False/None (no match), True
(a match with nothing to tell) or a mapping: what it found, handed to the handler as
keyword arguments. A handler names the arguments it wants (`match`, `keyword`,
`command`, ...) and gets only those; nothing is written onto the shared context.

One key is special: a filter that recognises the customer's language returns it as
`locale`. The handler then runs with a context in that language, and the result says
so (`Routed.said_in`), so the conversation can remember it.

A handler returns a reply, or None to let the next matching route try.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from bot.chat.context import Context
from bot.chat.keywords import match_keyword
from bot.chat.replies import Reply

Handler = Callable[..., Awaitable[Reply | None]]
FilterResult = bool | Mapping[str, Any] | None
Filter = Callable[[Context], FilterResult]
LOCALE = "locale"  # the filter-data key naming the language the customer's words were in


@dataclass(frozen=True, slots=True)
class KeywordMatch:
    """Which word-that-works-everywhere the customer typed, and in which language."""

    name: str
    locale: str


@dataclass(frozen=True, slots=True)
class Routed:
    """A route's reply; `said_in` is the language a filter recognised, if any."""

    reply: Reply
    said_in: str | None = None


@dataclass(frozen=True, slots=True)
class Keyword:
    """The whole text is one of the zh/en synonyms of `name` (see bot.chat.keywords).

    Gives the handler `keyword` (a KeywordMatch) and the language it was typed in."""

    name: str

    def __call__(self, ctx: Context) -> dict[str, Any] | None:
        found = match_keyword(ctx.msg.text) if ctx.msg.kind in ("text", "voice") else None
        if found is None or found[0] != self.name:
            return None
        return {"keyword": KeywordMatch(*found), LOCALE: found[1]}


@dataclass(frozen=True, slots=True)
class Regex:
    """The whole (stripped) text matches `pattern`: the handler gets `match`.

    `locale`, when given, reads the customer's language off the match (as a keyword
    would tell it)."""

    pattern: re.Pattern[str]
    locale: Callable[[re.Match[str]], str] | None

    def __init__(self, pattern: str, *, locale: Callable[[re.Match[str]], str] | None = None) -> None:
        object.__setattr__(self, "pattern", re.compile(pattern))
        object.__setattr__(self, "locale", locale)

    def __call__(self, ctx: Context) -> dict[str, Any] | None:
        if ctx.msg.kind not in ("text", "voice"):
            return None
        found = self.pattern.fullmatch(ctx.msg.text.strip())
        if found is None:
            return None
        if self.locale is None:
            return {"match": found}
        return {"match": found, LOCALE: self.locale(found)}


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


def matched(filters: tuple[Filter, ...], ctx: Context) -> dict[str, Any] | None:
    """What all `filters` found (merged, later ones win), or None when one does not match."""
    data: dict[str, Any] = {}
    for check in filters:
        result = check(ctx)
        if result is None or result is False:
            return None
        if isinstance(result, Mapping):
            data.update(result)
    return data


@dataclass(frozen=True, slots=True)
class Route:
    filters: tuple[Filter, ...]
    handler: Handler
    wants: frozenset[str] | None  # the keyword arguments the handler names; None: all (**kwargs)

    @classmethod
    def of(cls, filters: tuple[Filter, ...], handler: Handler) -> Route:
        params = list(inspect.signature(handler).parameters.values())[1:]  # after the context
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            return cls(filters, handler, None)
        return cls(filters, handler, frozenset(p.name for p in params))

    async def call(self, ctx: Context, data: Mapping[str, Any]) -> Reply | None:
        given = data if self.wants is None else {k: v for k, v in data.items() if k in self.wants}
        return await self.handler(ctx, **given)


class Router:
    def __init__(self) -> None:
        self._routes: list[Route] = []

    def route(self, *filters: Filter) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self._routes.append(Route.of(filters, handler))
            return handler

        return register

    def include(self, other: Router) -> None:
        self._routes.extend(other._routes)

    async def dispatch(self, ctx: Context) -> Routed | None:
        for route in self._routes:
            data = matched(route.filters, ctx)
            if data is None:
                continue
            said_in = data.get(LOCALE)
            turn_ctx = replace(ctx, locale=said_in) if said_in else ctx
            reply = await route.call(turn_ctx, data)
            if reply is not None:
                return Routed(reply, said_in)
        return None

"""Router filters: keywords in zh/en, regex, menu keys, event types, staff-only."""

from __future__ import annotations

import re
from types import SimpleNamespace

from bot.chat.context import Context
from bot.chat.keywords import match_keyword, parse_number
from bot.chat.replies import Text
from bot.chat.router import (
    Event,
    Keyword,
    KeywordMatch,
    MenuKey,
    MsgType,
    Regex,
    Routed,
    Router,
    staff_only,
)
from bot.wechat.protocol import Inbound
from commerce.staff.models import StaffRole


def _ctx(kind: str = "text", text: str = "", event: str | None = None, key: str = "", staff: bool = False) -> Context:
    msg = Inbound(openid="o1", account="gh", kind=kind, create_time=1, text=text, event=event, event_key=key)
    role = StaffRole.OPERATOR if staff else None
    return Context(msg=msg, services=SimpleNamespace(), locale="zh", staff_role=role)  # type: ignore[arg-type]


def test_keywords_match_zh_and_en_whole_messages() -> None:
    assert match_keyword("帮助") == ("help", "zh")
    assert match_keyword(" HELP! ") == ("help", "en")
    assert match_keyword("ｈｅｌｐ") == ("help", "en")  # full-width
    assert match_keyword("下一页") == ("next", "zh")
    assert match_keyword("help me find apples") is None


def test_numbers() -> None:
    assert parse_number("3") == 3
    assert parse_number("３") == 3
    assert parse_number("#12") == 12
    assert parse_number("第2个") == 2
    assert parse_number("3 apples") is None
    assert parse_number("") is None


async def test_routes_in_order_with_fall_through() -> None:
    router = Router()
    seen: list[str] = []

    @router.route(Keyword("help"))
    async def help_(ctx: Context) -> Text:
        seen.append("help")
        return Text("help")

    @router.route(Regex(r"/(\w+)"), staff_only)
    async def admin(ctx: Context, match: re.Match[str]) -> Text:
        return Text("admin", {"command": match.group(1)})

    @router.route(MenuKey(prefix="CATEGORY_"))
    async def category(ctx: Context) -> Text:
        return Text("category", {"key": ctx.msg.event_key})

    @router.route(Event("subscribe"))
    async def declines(ctx: Context) -> None:
        return None

    @router.route(MsgType("event"))
    async def any_event(ctx: Context) -> Text:
        return Text("event")

    help_ctx = _ctx(text="help")
    assert await router.dispatch(help_ctx) == Routed(Text("help"), said_in="en")
    assert help_ctx.locale == "zh"  # the filter told the language; it changed no shared context
    assert await router.dispatch(_ctx(text="/stats", staff=True)) == Routed(Text("admin", {"command": "stats"}))
    assert await router.dispatch(_ctx(text="/stats", staff=False)) is None
    assert await router.dispatch(_ctx("event", event="click", key="CATEGORY_7")) == Routed(
        Text("category", {"key": "CATEGORY_7"})
    )
    assert await router.dispatch(_ctx("event", event="subscribe")) == Routed(Text("event"))
    assert await router.dispatch(_ctx("image")) is None


# ---- filters return what they matched (aiogram v3 style) --------------------------------


def test_a_keyword_filter_returns_the_keyword_and_its_language() -> None:
    assert Keyword("help")(_ctx(text="帮助")) == {"keyword": KeywordMatch("help", "zh"), "locale": "zh"}
    assert Keyword("help")(_ctx(text=" HELP! ")) == {"keyword": KeywordMatch("help", "en"), "locale": "en"}
    assert Keyword("help")(_ctx(text="cart")) is None  # another keyword
    assert Keyword("help")(_ctx("event", event="click", key="help")) is None


def test_a_regex_filter_returns_the_match_and_no_language_unless_asked() -> None:
    found = Regex(r"(?i)join\s*(\w+)")(_ctx(text=" join AB12 "))
    assert found is not None and set(found) == {"match"} and found["match"].group(1) == "AB12"
    assert Regex(r"join\s*(\w+)")(_ctx(text="please join AB12")) is None  # the whole text only
    assert Regex(r"join\s*(\w+)")(_ctx("image")) is None
    told = Regex(r"(参团|join)\s*(\w+)", locale=lambda m: "zh" if m.group(1) == "参团" else "en")
    assert told(_ctx(text="参团 AB12"))["locale"] == "zh"  # type: ignore[index]
    assert told(_ctx(text="join AB12"))["locale"] == "en"  # type: ignore[index]


def test_filters_leave_the_context_as_it_was() -> None:
    ctx = _ctx(text="help")
    before = (ctx.msg, ctx.locale, ctx.customer_id, ctx.staff_role)
    Keyword("help")(ctx)
    Regex(r"help")(ctx)
    assert (ctx.msg, ctx.locale, ctx.customer_id, ctx.staff_role) == before


async def test_a_handler_gets_only_the_arguments_it_names() -> None:
    router = Router()
    got: list[object] = []

    @router.route(Keyword("help"))
    async def plain(ctx: Context) -> None:  # names nothing: gets nothing, falls through
        got.append(("plain", ctx.locale))

    @router.route(Keyword("help"))
    async def named(ctx: Context, keyword: KeywordMatch) -> Text:
        got.append(("named", keyword, ctx.locale))
        return Text("help")

    assert await router.dispatch(_ctx(text="HELP")) == Routed(Text("help"), said_in="en")
    # both ran in the language the keyword was typed in, each with what it asked for
    assert got == [("plain", "en"), ("named", KeywordMatch("help", "en"), "en")]


async def test_a_filter_returning_an_empty_mapping_matches_and_one_returning_none_does_not() -> None:
    router = Router()

    @router.route(lambda ctx: {})
    async def empty(ctx: Context) -> Text:
        return Text("empty")

    assert await router.dispatch(_ctx(text="x")) == Routed(Text("empty"))
    nothing = Router()

    @nothing.route(lambda ctx: None)
    async def never(ctx: Context) -> Text:
        raise AssertionError("a filter returning None does not match")

    assert await nothing.dispatch(_ctx(text="x")) is None


async def test_filter_data_of_several_filters_is_merged() -> None:
    router = Router()

    @router.route(Regex(r"(\w+) (\d+)"), lambda ctx: {"extra": 7})
    async def both(ctx: Context, match: re.Match[str], extra: int) -> Text:
        return Text("both", {"word": match.group(1), "extra": extra})

    assert await router.dispatch(_ctx(text="add 2")) == Routed(Text("both", {"word": "add", "extra": 7}))

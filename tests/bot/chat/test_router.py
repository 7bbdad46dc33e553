"""Router filters: keywords in zh/en, regex, menu keys, event types, staff-only."""

from __future__ import annotations

from types import SimpleNamespace

from bot.chat.context import Context
from bot.chat.keywords import match_keyword, parse_number
from bot.chat.replies import Text
from bot.chat.router import Event, Keyword, MenuKey, MsgType, Regex, Router, staff_only
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
    async def admin(ctx: Context) -> Text:
        assert ctx.match is not None
        return Text("admin", {"command": ctx.match.group(1)})

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
    assert await router.dispatch(help_ctx) == Text("help")
    assert help_ctx.locale == "en"
    assert await router.dispatch(_ctx(text="/stats", staff=True)) == Text("admin", {"command": "stats"})
    assert await router.dispatch(_ctx(text="/stats", staff=False)) is None
    assert await router.dispatch(_ctx("event", event="click", key="CATEGORY_7")) == Text("category", {"key": "CATEGORY_7"})
    assert await router.dispatch(_ctx("event", event="subscribe")) == Text("event")
    assert await router.dispatch(_ctx("image")) is None

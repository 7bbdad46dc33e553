"""Text (and recognised voice): the words that work everywhere, and search for the rest."""

from __future__ import annotations

import re

from bot.admin.registry import PREFIXES
from bot.chat.context import Context
from bot.chat.keywords import (
    ADD_TO_CART,
    BUY_NOW,
    USE_POINTS,
    match_command,
    normalize,
    parse_number,
)
from bot.chat.replies import Card, News, Reply, Text
from bot.chat.router import LOCALE, Keyword, MsgType, Regex, Router
from bot.chat.understanding import Intent, said_in_english, understand
from bot.dialogs.base import Active
from bot.dialogs.common import error_reply, unit_of_work
from bot.dialogs.orders import OrdersData
from bot.dialogs.review import ReviewData
from bot.dialogs.words import CartEdit, read_cart_edit
from bot.flash_edge import GRAB_TAIL, GRAB_WORDS
from bot.handlers import (
    account,  # referrals: invite, me, withdraw
    balance,  # stored balance: balance, top up, withdraw balance
)
from bot.web.live import live_url as live_page_url
from bot.wechat.scenes import CODE_PATTERN as CODE_PATTERN
from commerce.cart.cart import clear_cart
from commerce.errors import ErrorCode, ShopError
from commerce.groupbuys.groups import may_be_code, normalise_code
from commerce.orders.models import OrderStatus
from commerce.orders.placement import list_orders
from commerce.orders.views import order_data
from commerce.promotions import live
from commerce.rules import utcnow

router = Router()
fallback = Router()

MAX_QUERY_CHARS = 64
MAX_CODE_SHOWN = 16  # a typed code echoed back: 10 KB of it is not


# Words that say a message is about a group buy, around a code a friend passed on
_GROUP_WORDS = re.compile(r"参团|拼团|团购|开团|入团|进团|跟团|团码|\bgroup\b")
_CODE_TOKEN = re.compile(r"(?<![a-z0-9])[a-z0-9]{6}(?![a-z0-9])")
MAX_CODE_SENTENCE = 60


def _group_code_said(ctx: Context) -> dict[str, object] | None:
    """A group code alone (any case, full width: "ＮＡＦ４５Ｌ"), or the one code in a short
    sentence about a group ("我要参团 NAF45L", "朋友叫我参团 码是naf45l"): the handler gets
    `code` and `in_words` (said in a sentence, not alone)."""
    if ctx.msg.kind not in ("text", "voice"):
        return None
    text = normalize(ctx.msg.text)
    if len(text) > MAX_CODE_SENTENCE or text.startswith(PREFIXES):  # a stranger's "/group ABCDEF": only text
        return None
    tokens = [t for t in _CODE_TOKEN.findall(text) if may_be_code(t)]  # "caomei", "xigua": no code
    if len(tokens) != 1:
        return None
    alone = text == tokens[0]
    if not alone and not _GROUP_WORDS.search(text):
        return None
    return {"code": normalise_code(tokens[0]), "in_words": not alone}


@router.route(Keyword("help"))
async def help_(ctx: Context) -> Reply:
    return Text("help")


@router.route(Keyword("cancel"))
async def cancel(ctx: Context) -> Reply:
    dialogs = ctx.services.dialogs
    had_dialog = await dialogs.store.get(ctx.openid) is not None or await dialogs.parked(ctx.openid) is not None
    await dialogs.cancel(ctx.openid)
    return Text("cancelled" if had_dialog else "nothing_to_cancel")


@router.route(Keyword("hot"))
async def hot(ctx: Context) -> Reply:
    return await ctx.services.dialogs.search.hot(ctx)


@router.route(Keyword("categories"))
async def categories(ctx: Context) -> Reply:
    return await ctx.services.dialogs.search.categories(ctx)


@fallback.route(Keyword("clear"))
async def clear_the_cart(ctx: Context) -> Reply:
    """"清空购物车" away from the cart screen: emptied all the same, never searched."""
    async with unit_of_work(ctx) as session:
        await clear_cart(session, customer_id=ctx.customer_id)
    await ctx.services.dialogs.end(ctx.openid)
    return Text("cart_cleared")


@fallback.route(Keyword("confirm"))
async def confirm_without_a_step(ctx: Context) -> Reply:
    """"确认" when no step is open to confirm (right after the pay card, say): the order
    waiting for payment and where its link is, else what can be done next; never a search.
    An open step that did not take it says what it needs instead."""
    reprompt = await ctx.services.dialogs.reprompt(ctx)
    if reprompt is not None:
        return reprompt
    unpaid = []
    if ctx.customer_id:
        async with unit_of_work(ctx) as session:
            unpaid = await list_orders(
                session, customer_id=ctx.customer_id, limit=1, statuses=(OrderStatus.PENDING_PAYMENT,)
            )
    if unpaid and unpaid[0].expires_at > utcnow():
        return Text("pay_waiting", order_data(unpaid[0]))
    return Text("nothing_to_confirm")


@fallback.route(_group_code_said)
async def group_code_unknown(ctx: Context, code: str, in_words: bool) -> Reply | None:
    """"我要参团 NAF45K" (no such group), which no step took: that group is not found, as
    "参团 NAF45K" says; never a product search. A bare code goes on to search ("xiaomi")."""
    if not in_words:
        return None
    return error_reply(ShopError(ErrorCode.GROUP_NOT_FOUND, group_code=code))


def _language(ctx: Context) -> dict[str, str]:
    """An English sentence is answered in English ("show me tea"); pinyin is not English."""
    return {LOCALE: "en"} if said_in_english(ctx.msg.text) else {}


@fallback.route(MsgType("text", "voice"), _language)
async def search(ctx: Context) -> Reply | None:
    query = ctx.msg.text.strip()
    if not query:
        return None  # e.g. voice without recognition: the media fallback answers
    if parse_number(query) is not None:
        # a number the open step does not take: what the step needs, else "no list to pick from"
        reprompt = await ctx.services.dialogs.reprompt(ctx)
        return reprompt or Text("nothing_to_pick", {"number": parse_number(query)})
    if match_command(ADD_TO_CART, query) or match_command(BUY_NOW, query):  # "add 2", "来两袋" with no card
        return Text("nothing_to_add")
    understood = understand(query[:MAX_QUERY_CHARS])  # the product words, and price or quantity asked for
    if not query.startswith(PREFIXES):  # a stranger's "/faq add 发票 …" is only searched
        staff_answer = (await ctx.services.catalog.snapshot()).lexicon.answer(query)
        if staff_answer is not None:  # a question staff answered (`/faq add`)
            return Text("faq_answer", {"keyword": staff_answer.keyword, "answer": staff_answer.answer})
    words = understood.words if understood.intent is Intent.SEARCH and understood.words else query
    return await ctx.services.dialogs.search.search(ctx, words[:MAX_QUERY_CHARS], slots=understood.slots)


def _cart_words(ctx: Context) -> dict[str, CartEdit] | None:
    """A cart edit said in words ("再加一袋", "把T恤删了", "毛巾要4条")."""
    if ctx.msg.kind not in ("text", "voice"):
        return None
    edit = read_cart_edit(ctx.msg.text)
    return None if edit is None else {"edit": edit}


@router.route(_cart_words)
async def edit_cart_in_words(ctx: Context, edit: CartEdit) -> Reply | None:
    return await ctx.services.dialogs.cart.edit_in_words(ctx, edit)


@router.route(Keyword("cart"))
async def show_cart(ctx: Context) -> Reply:
    return await ctx.services.dialogs.cart.show(ctx)


@router.route(Keyword("checkout"))
async def checkout(ctx: Context) -> Reply:
    return await ctx.services.dialogs.checkout.begin(ctx)


@router.route(Keyword("orders"))
async def show_orders(ctx: Context) -> Reply:
    return await ctx.services.dialogs.orders.show(ctx)


@router.route(Keyword("review"))
async def review(ctx: Context) -> Reply:
    """"评价": the order on screen (an order's detail, a review begun), else the latest
    received order not reviewed yet, is rated, described and pictured (bot/dialogs/review.py)."""
    loaded = await ctx.services.dialogs.load(ctx.openid)
    order_id = None
    if isinstance(loaded, Active) and isinstance(loaded.data, OrdersData | ReviewData):
        order_id = loaded.data.order_id or None
    return await ctx.services.dialogs.review.begin(ctx, order_id=order_id)


@router.route(Keyword("service"))
async def human_service(ctx: Context) -> Reply:
    """A person answers from the shop: a service ticket is opened with the context staff need
    (the cart, the last order and what was said before, so nobody asks the customer again),
    staff are alerted, and the customer's next messages go to them (bot/dialogs/service.py)."""
    return await ctx.services.dialogs.service.open(ctx)


# --- group buys (bot/dialogs/group.py) ---
@router.route(Keyword("group"))
async def group_buys(ctx: Context) -> Reply:
    """On a product's card, "拼团" offers that product's campaign; elsewhere all of them."""
    stored = await ctx.services.dialogs.store.get(ctx.openid)
    product_id = None
    if stored is not None and stored.dialog == "search" and stored.state == "card":
        product_id = stored.data.get("product_id")
    return await ctx.services.dialogs.group.show(ctx, product_id=product_id)


@router.route(Regex(r"(?i)(?:参团|加入拼团|join)\s*([A-Za-z0-9]{4,16})"))
async def join_group(ctx: Context, match: re.Match[str]) -> Reply:
    return await ctx.services.dialogs.group.open_card(ctx, match.group(1))


def _typed_code(text: str) -> str | None:
    """A group code as typed ("ab cd 12", full width), or None when it cannot be one."""
    code = normalise_code(text)
    return code if CODE_PATTERN.fullmatch(code) else None


def _shown(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_CODE_SHOWN else text[:MAX_CODE_SHOWN] + "…"


def _typed_in(match: re.Match[str]) -> str:
    """The language of a command, as a keyword would tell it: English when it starts in ASCII."""
    return "en" if match.string.strip()[:1].isascii() else "zh"


@router.route(Regex(r"(?s)(?:参团|加入拼团)\s*[:：]?\s*(.+)", locale=lambda match: "zh"))
async def join_group_typed(ctx: Context, match: re.Match[str]) -> Reply:
    """A "参团" with something that is not plainly a code: read as one if it can be (spaces,
    full width, lower case), else no such group is said (never a product search)."""
    code = _typed_code(match.group(1))
    if code is None:
        shown = _shown(match.group(1))
        return error_reply(ShopError(ErrorCode.GROUP_NOT_FOUND, group_code=shown))
    return await ctx.services.dialogs.group.open_card(ctx, code)


@router.route(Regex(r"(?i)(?:商品|product)\s*#?\s*([1-9][0-9]{0,8})", locale=_typed_in))
async def open_product_by_word(ctx: Context, match: re.Match[str]) -> Reply:
    """"商品 12": the word a product page copies for the customer to send (bot/web/product.py)."""
    reply = await ctx.services.dialogs.search.open_product(ctx, int(match.group(1)))
    return reply if reply is not None else Text("product_gone")


@router.route(Regex(r"(?is)(?:取消拼团|取消开团|退出拼团|cancel group|leave group)\s*(.+)?", locale=_typed_in))
async def withdraw_group(ctx: Context, match: re.Match[str]) -> Reply:
    """A leader alone in their group withdraws it (their payment goes back)."""
    typed = normalize(match.group(1) or "")  # "取消拼团！": their own group
    code = _typed_code(typed) if typed else ""
    if code is None:  # not a code: no group of theirs is withdrawn by a guess
        return Text("group_withdraw_none")
    return await ctx.services.dialogs.group.withdraw(ctx, code)


@router.route(_group_code_said)
async def bare_group_code(ctx: Context, code: str) -> Reply | None:
    """A code alone or in words about a group is a group's only when such a group exists;
    else the open dialog and search go on (a mistyped code in words: `group_code_unknown`)."""
    from commerce.groupbuys.groups import group_exists

    async with ctx.uow() as uow:
        session = uow.session
        if not await group_exists(session, code=code):
            return None
    return await ctx.services.dialogs.group.open_card(ctx, code)


# --- end group buys ---


# --- flash sales (bot/dialogs/flash.py) ---
@router.route(Keyword("flash"))
async def flash_sales(ctx: Context) -> Reply:
    return await ctx.services.dialogs.flash.show(ctx)


def _number_in(match: re.Match[str]) -> int | None:
    return int(match.group(1)) if match.group(1) else None


@router.route(Regex(r"(?i)(?:提醒我|开始提醒我|开始时提醒我|remind me)\s*(?:第\s*)?(\d{1,3})?\s*(?:个|场)?", locale=_typed_in))
async def flash_remind(ctx: Context, match: re.Match[str]) -> Reply:
    """"提醒我 [N]": told when the sale starts."""
    return await ctx.services.dialogs.flash.remind(ctx, _number_in(match))


@router.route(Regex(
    r"(?i)(?:我)?(?:抢到(?:了)?(?:吗|没|没有|了吗|了没|了没有)?|有没有抢到|did i (?:get|grab) (?:one|it)|got (?:one|it))\s*[?？!！。.]*",
    locale=_typed_in,
))
async def flash_result(ctx: Context, match: re.Match[str]) -> Reply:
    """"抢到了吗": the unit held (its pay card), or that there is none."""
    return await ctx.services.dialogs.flash.result(ctx)


@router.route(Regex(rf"(?i){GRAB_WORDS}\s*(?:第\s*)?(\d{{1,3}})?\s*(?:个|场|件)?{GRAB_TAIL}", locale=_typed_in))
async def flash_grab(ctx: Context, match: re.Match[str]) -> Reply:
    """"抢 [N]": one unit of a running sale, answered with the pay card."""
    return await ctx.services.dialogs.flash.grab(ctx, _number_in(match))


# --- end flash sales ---


# --- live drops (commerce/promotions/live.py, bot/web/live.py) ---
@router.route(Regex(r"(?i)(?:订阅直播|直播提醒|开播提醒|live on|subscribe live)", locale=_typed_in))
async def live_subscribe(ctx: Context) -> Reply:
    """"订阅直播": told when a live drop starts and of each product it pushes."""
    async with unit_of_work(ctx) as session:
        new = await live.subscribe(session, customer_id=ctx.customer_id, now=utcnow())
    return Text("live_subscribed", {"new": new})


@router.route(Regex(r"(?i)(?:取消订阅直播|取消直播提醒|退订直播|live off|unsubscribe live)", locale=_typed_in))
async def live_unsubscribe(ctx: Context) -> Reply:
    async with unit_of_work(ctx) as session:
        removed = await live.unsubscribe(session, customer_id=ctx.customer_id)
    return Text("live_unsubscribed", {"removed": removed})


@router.route(Regex(r"(?i)(?:直播|看直播|直播间|live)", locale=_typed_in))
async def live_now(ctx: Context) -> Reply:
    """"直播": the product on air as its card (live price, units, the page's link)."""
    now = utcnow()
    try:
        async with unit_of_work(ctx) as session:
            session_view, sale = await live.current_sale(session)
    except ShopError as exc:
        return error_reply(exc)
    data = {**sale.data(now), "title": session_view.title, "url": live_page_url(ctx.services.config, session_view.id)}
    product = await ctx.services.catalog.product(sale.product_id)
    data["image"] = product.image_url if product is not None else ""
    return News((Card("live_push", data, picurl=data["image"], url=data["url"]),))


@router.route(Regex(r"(?i)(?:抢直播|直播抢|抢直播商品|live grab|grab live)", locale=_typed_in))
async def live_grab(ctx: Context) -> Reply:
    """"抢直播" (the word the live page copies): one unit of the product on air, at its live price."""
    try:
        async with unit_of_work(ctx) as session:
            _session, sale = await live.current_sale(session)
    except ShopError as exc:
        return error_reply(exc)
    return await ctx.services.dialogs.flash.grab_sale(ctx, sale.id)


# --- end live drops ---


@router.route(Regex("(?i)" + USE_POINTS.pattern, locale=_typed_in))
async def points_outside_checkout(ctx: Context) -> Reply | None:
    """A "用积分" / "no points" outside checkout (at checkout its review step answers)."""
    stored = await ctx.services.dialogs.store.get(ctx.openid)
    if stored is not None and stored.dialog == "checkout":
        return None
    return Text("points_at_checkout")


router.include(balance.router)  # stored balance: "余额", "充值 [AMOUNT]", "余额提现 [AMOUNT]" (before "提现")
router.include(account.router)  # referrals: "邀请 / invite", "我的 / me", "提现 / withdraw [AMOUNT]"

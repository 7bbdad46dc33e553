"""What the understanding step recognised (bot.chat.understanding), answered before search.

Two routers: `early` holds the intents no dialog expects (greeting, thanks, a call for a
person, a complaint) and runs with the words that work everywhere, before the open
dialog; `router` holds shop questions and help and runs after the dialog, just before
the fallback search. Answers come from the shop's own rules and config.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bot.chat.context import Context
from bot.chat.replies import Notice, Reply, Text, with_notice
from bot.chat.router import LOCALE, Router
from bot.chat.understanding import ORDER_ASKS, UNAMBIGUOUS, Intent, Topic, Understood, understand
from bot.dialogs.base import Active
from bot.dialogs.common import unit_of_work
from bot.handlers import account, deals
from bot.handlers import balance as stored_balance
from bot.handlers.text import human_service, live_now, live_subscribe, review
from commerce.cart import cart
from commerce.orders import actions as order_actions
from commerce.orders.models import OrderStatus

early = Router()
router = Router()

HOT_SHOWN = 3
_LONG_NUMBER = re.compile(r"\d{5}")  # a phone or an address number: not small talk


@dataclass(frozen=True, slots=True)
class Understands:
    """The text's intent is one of `intents`: the handler gets `understood`.

    `short`: only a short text without long numbers (what is typed at an address step
    is never read as a call for a person)."""

    intents: frozenset[Intent]
    short: bool = False

    def __call__(self, ctx: Context) -> dict[str, Any] | None:
        if ctx.msg.kind not in ("text", "voice"):
            return None
        text = ctx.msg.text.strip()
        if not text or (self.short and (len(text) > 24 or _LONG_NUMBER.search(text))):
            return None
        found = understand(text)
        if found.intent not in self.intents:
            return None
        data: dict[str, Any] = {"understood": found}
        if found.locale == "en" and text.isascii():
            data[LOCALE] = "en"
        elif found.locale == "zh":  # Chinese words are answered in Chinese, whatever was said before
            data[LOCALE] = "zh"
        return data


async def _next_steps(ctx: Context) -> dict[str, Any]:
    """What a friendly reply offers next: hot sellers, and the cart when it is not empty."""
    snapshot = await ctx.services.catalog.snapshot()
    hot = [
        {"name": snapshot.products[pid].name, "price_min": snapshot.products[pid].min_price_fen,
         "price_max": snapshot.products[pid].max_price_fen}
        for pid in snapshot.best_sellers(HOT_SHOWN)
        if pid in snapshot.products
    ]
    items = 0
    if ctx.customer_id:
        async with unit_of_work(ctx) as session:
            view = await cart.get_cart(session, customer_id=ctx.customer_id)
        items = sum(line.quantity for line in view.lines)
    return {"hot": hot, "cart_items": items}


@early.route(Understands(frozenset({Intent.GREETING}), short=True))
async def greeting(ctx: Context) -> Reply:
    return Text("greeting", await _next_steps(ctx))


@early.route(Understands(frozenset({Intent.THANKS}), short=True))
async def thanks(ctx: Context) -> Reply:
    return Text("thanks", {**await _next_steps(ctx), "ack": False})


@early.route(Understands(frozenset({Intent.HUMAN, Intent.COMPLAINT}), short=True))
async def wants_a_person(ctx: Context) -> Reply | None:
    """A complaint or a call for a person: the human hand-off (staff are alerted with
    what was written, the cart and the last order)."""
    return await human_service(ctx)


@router.route(Understands(frozenset({Intent.HUMAN, Intent.COMPLAINT})))
async def wants_a_person_later(ctx: Context) -> Reply | None:
    return await human_service(ctx)


@router.route(Understands(frozenset({Intent.HELP})))
async def help_(ctx: Context) -> Reply:
    return Text("help")


@router.route(Understands(frozenset({Intent.ACK})))
async def acknowledged(ctx: Context) -> Reply:
    """"好的", "收到", "bye" that no dialog took as an answer: a friendly word and the next step."""
    return Text("thanks", {**await _next_steps(ctx), "ack": True})


@router.route(Understands(frozenset({Intent.ORDERS})))
async def my_orders(ctx: Context) -> Reply:
    """"我的订单", "did I pay": the list with statuses."""
    return await ctx.services.dialogs.orders.show(ctx)


# A question about one order with no such order: said, with the shop's rule on the subject.
_NO_ORDER_TOPIC = {
    Intent.PAY_ORDER: Topic.PAYMENT,
    Intent.TRACK: Topic.SHIPPING_TIME,
    Intent.URGE: Topic.SHIPPING_TIME,
    Intent.AFTER_SALES: Topic.RETURNS,
    Intent.REFUND_STATUS: Topic.RETURNS,
}


@router.route(Understands(ORDER_ASKS))
async def about_an_order(ctx: Context, understood: Understood) -> Reply:
    """"刚才那单怎么付", "包裹到哪了", "催一下", "东西收到了", "取消订单", "我要退款": answered
    on the order it is about; with no such order, that is said with the shop's rule."""
    if understood.intent is Intent.CHANGE_ADDRESS and (asked := await _own_address_step(ctx)) is not None:
        return asked
    reply = await ctx.services.dialogs.orders.about(ctx, understood.intent)
    if reply is not None:
        return reply
    topic = _NO_ORDER_TOPIC.get(understood.intent)
    return Text("order_ask_none", {"ask": str(understood.intent), "topic": str(topic or ""), **shop_facts(ctx)})


@router.route(Understands(frozenset({Intent.PLEASED})))
async def pleased_with_it(ctx: Context) -> Reply:
    """"收到啦 苹果很甜👍": glad, with "确认收货" and a review offered on the shipped order
    (opened, so "确认收货" works next); receipt is never confirmed from these words. No
    shipped order: a friendly word and the next step."""
    reply = await ctx.services.dialogs.orders.about(ctx, Intent.PLEASED)
    return reply if reply is not None else Text("thanks", {**await _next_steps(ctx), "ack": True})


async def _own_address_step(ctx: Context) -> Reply | None:
    """"改地址" while a group seat or a flash unit asks for its own delivery address: that
    step asks again (checkout takes the words itself); no order placed before is touched."""
    loaded = await ctx.services.dialogs.load(ctx.openid)
    if isinstance(loaded, Active) and loaded.state in loaded.dialog.address_states:
        return await ctx.services.dialogs.reprompt(ctx)
    return None


@router.route(Understands(frozenset({Intent.BUY_AGAIN})))
async def buy_again(ctx: Context) -> Reply:
    """"再买一次", "和上次一样", "buy again": the last order's goods into the cart, then the
    cart (结算 is one word away)."""
    async with ctx.uow() as uow:
        bought = await order_actions.buy_again(uow.session, customer_id=ctx.customer_id, rules=uow.rules)
    if bought is None:
        return Text("buy_again_none", await _next_steps(ctx))
    notice = Notice("buy_again", {"order_no": bought.order_no, "added": bought.added, "missing": list(bought.missing)})
    return with_notice(await ctx.services.dialogs.cart.show(ctx), notice)


@router.route(Understands(frozenset({Intent.CART})))
async def the_cart(ctx: Context) -> Reply:
    return await ctx.services.dialogs.cart.show(ctx)


@router.route(Understands(frozenset({Intent.CLEAR_CART})))
async def clear_the_cart(ctx: Context) -> Reply:
    """"清空购物车" said anywhere, as on the cart's screen."""
    async with ctx.uow() as uow:
        await cart.clear_cart(uow.session, customer_id=ctx.customer_id)
    return Text("cart_cleared")


@router.route(Understands(frozenset({Intent.INVITE})))
async def invite_friends(ctx: Context) -> Reply | None:
    """"怎么邀请好友": the invite code and link, as 「邀请」 gives them."""
    return await account.invite(ctx)


@router.route(Understands(frozenset({Intent.GROUP_CODE})))
async def group_to_share(ctx: Context) -> Reply:
    """"拼团码是多少", "我的团码呢": the customer's open group to forward, else that they
    have none and how to start one."""
    shared = await ctx.services.dialogs.group.share(ctx)
    return shared if shared is not None else Text("group_share_none", {"forming": False})


@router.route(Understands(frozenset({Intent.SHARE})))
async def share_with_friends(ctx: Context) -> Reply | None:
    """"怎么分享给朋友": a group the customer is in needs friends first (its card to
    forward); else the invite code and link, as 「邀请」."""
    shared = await ctx.services.dialogs.group.share(ctx)
    return shared if shared is not None else await account.invite(ctx)


@router.route(Understands(frozenset({Intent.ACCOUNT})))
async def the_account(ctx: Context) -> Reply | None:
    """"我的积分", "我的优惠券", "my account": the account page, as 「我的」."""
    return await account.me(ctx)


@router.route(Understands(frozenset({Intent.DEALS})))
async def the_deals(ctx: Context) -> Reply:
    """"有优惠吗", "能便宜点吗", "any discounts?": what the shop takes off now and how to get
    it (on a product's card, its group price too), not the account page."""
    return await deals.deals(ctx)


@router.route(Understands(frozenset({Intent.PRICE_ASK, Intent.STOCK_ASK})))
async def price_of_what(ctx: Context, understood: Understood) -> Reply:
    """"多少钱", "有货吗" with nothing on screen (a card or a list answers it themselves)."""
    return Text("price_ask", {"what": str(understood.intent)})


@router.route(Understands(frozenset({Intent.RECOMMEND})))
async def recommend(ctx: Context) -> Reply:
    """"有什么推荐的", "what's good": the best sellers, as 「热卖」 shows them."""
    return await ctx.services.dialogs.search.hot(ctx)


@router.route(Understands(frozenset({Intent.GROUP})))
async def group_buys(ctx: Context) -> Reply:
    return await ctx.services.dialogs.group.show(ctx)


@router.route(Understands(frozenset({Intent.FLASH})))
async def flash_sales(ctx: Context) -> Reply:
    """"有秒杀吗", "怎么抢购": the sales running and coming, as 「秒杀」 lists them."""
    return await ctx.services.dialogs.flash.show(ctx)


@router.route(Understands(frozenset({Intent.LIVE_SUBSCRIBE})))
async def live_reminders(ctx: Context) -> Reply | None:
    """"订阅直播通知": as 「订阅直播」."""
    return await live_subscribe(ctx)


@router.route(Understands(frozenset({Intent.LIVE})))
async def live_on_air(ctx: Context) -> Reply | None:
    """"有直播吗": the product on air, as 「直播」 (or that nothing is)."""
    return await live_now(ctx)


@router.route(Understands(frozenset({Intent.REVIEW})))
async def review_in_words(ctx: Context) -> Reply | None:
    """"我想写评价", "给个好评": as 「评价」."""
    return await review(ctx)


@router.route(Understands(frozenset({Intent.MEMBER})))
async def member_in_words(ctx: Context) -> Reply | None:
    """"我想办会员", "我是什么等级": as 「会员」 (a member's account, else the phone and its code)."""
    return await account.member(ctx)


@router.route(Understands(frozenset({Intent.BALANCE})))
async def balance_in_words(ctx: Context) -> Reply | None:
    """"余额还有多少": as 「余额」."""
    return await stored_balance.balance(ctx)


@router.route(Understands(frozenset({Intent.TOPUP})))
async def topup_in_words(ctx: Context) -> Reply | None:
    """"怎么充值", "我要充钱": as 「充值」."""
    return await stored_balance.topup_plans(ctx)


@router.route(Understands(frozenset({Intent.FAQ})))
async def shop_question(ctx: Context, understood: Understood) -> Reply:
    """Staff's own answer when the question mentions one of its keywords (`/faq add`), else
    the built-in answer from the shop's rules."""
    staff_answer = (await ctx.services.catalog.snapshot()).lexicon.answer(ctx.msg.text)
    if staff_answer is not None:
        return Text("faq_answer", {"keyword": staff_answer.keyword, "answer": staff_answer.answer})
    about = _ORDER_TOPICS.get(understood.topic) if understood.topic else None
    if about is not None:  # "怎么付款" with an unpaid order, "什么时候发货", "不想要了能退吗" with one paid
        ask, statuses = about
        reply = await ctx.services.dialogs.orders.about(ctx, ask, statuses=statuses)
        if reply is not None:
            return reply
    return Text("faq", {"topic": str(understood.topic), **shop_facts(ctx)})


# Shop questions that are about the customer's own order while one is in these statuses.
_ORDER_TOPICS: dict[Topic, tuple[Intent, tuple[OrderStatus, ...]]] = {
    Topic.PAYMENT: (Intent.PAY_ORDER, (OrderStatus.PENDING_PAYMENT,)),
    Topic.SHIPPING_TIME: (Intent.TRACK, (OrderStatus.PAID,)),
    # not shipped yet: refunded on request now, not "within 7 days of delivery"
    Topic.RETURNS: (Intent.AFTER_SALES, (OrderStatus.PAID,)),
}


def shop_facts(ctx: Context) -> dict[str, Any]:
    """The rules a shop question is answered from: config, never words in code."""
    shop, pay = ctx.services.config.shop, ctx.services.config.pay
    return {
        "delivery_fee": shop.delivery_fee_fen,
        "free_threshold": shop.free_delivery_threshold_fen,
        "dispatch_hours": shop.dispatch_hours,
        "weekend_dispatch": shop.weekend_dispatch,
        "service_hours": shop.service_hours,
        "return_days": shop.return_window_days,
        "pay_provider": pay.provider,
        "pay_alipay": "alipay" in pay.methods,
    }


__all__ = ["UNAMBIGUOUS", "early", "router"]

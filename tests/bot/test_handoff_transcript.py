"""A customer handed to a person arrives with what they said before: the hand-off keeps
the recent conversation (the customer's words and the shop's replies, in order) and the
staff alert shows its last lines, through the real app."""

from __future__ import annotations

import json
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import select

from bot.chat.transcript import Line
from bot.keys import SERVICES
from commerce.customers.models import Handoff
from tests.bot.admin.test_orders import place_order, view
from tests.bot.conftest import OWNER, ShopFactory
from tests.bot.driver import ChatUser, Shop, db


async def handoff_context(shop: Shop) -> dict[str, Any]:
    async with db(shop.client.app)() as session:
        handoff = await session.scalar(select(Handoff).order_by(Handoff.id.desc()))
    assert handoff is not None
    return dict(handoff.context)


def said(context: dict[str, Any]) -> list[tuple[str, str]]:
    return [(line["from"], line["text"]) for line in context["recent"]]


async def chat_then_ask_for_a_person(user: ChatUser, words: str) -> None:
    """A search, a product card, a greeting, then the call for a person."""
    assert "苹果" in (await user.say("苹果")).text
    assert (await user.say("1")).kind == "news"
    assert "欢迎" in (await user.say("在吗")).text
    assert "人工客服" in (await user.say(words)).text


@pytest.mark.parametrize("words", ["东西坏了要找人", "转人工"])
async def test_the_handoff_keeps_what_was_said_before_in_order(shop: Shop, words: str) -> None:
    await chat_then_ask_for_a_person(shop.user(), words)
    context = await handoff_context(shop)
    lines = said(context)
    assert [speaker for speaker, _ in lines] == ["customer", "shop"] * 3
    assert [text for speaker, text in lines if speaker == "customer"] == ["苹果", "1", "在吗"]
    search, card, greeting = (text for speaker, text in lines if speaker == "shop")
    assert "苹果" in search and "\n" not in search
    assert card.startswith("[图文] ") and "苹果" in card
    assert "欢迎" in greeting
    assert context["message"] == words  # the words of the hand-off itself, once
    assert all(line["at"].endswith("+00:00") for line in context["recent"])


async def test_the_staff_alert_shows_the_last_lines_newest_last(sqlite_staffed: Shop) -> None:
    shop = sqlite_staffed
    user = shop.user("o_customer_77")
    await user.say("苹果")
    await user.say("香蕉")
    await user.send(user.xml("image", pic_url="https://example.com/a.jpg", media_id="m1"))
    await user.send(user.xml("voice", media_id="m2", format="amr", recognition="茶叶"))
    await user.say("在吗")
    await user.say("东西坏了要找人")
    await shop.client.app[SERVICES].alerts.drain()
    (alert,) = [m.text for m in shop.outbox.for_user(OWNER) if m.text.startswith("🔔")]
    head, _, before = alert.partition("之前的对话：\n")
    assert "请求人工客服（「东西坏了要找人」）" in head and "购物车是空的" in head
    *shown, commands = before.splitlines()
    assert commands.startswith("回复：/reply ")  # the ticket's commands close the alert
    assert len(shown) == 8  # of the 10 lines kept
    assert "顾客：香蕉" in shown[0] and "顾客：在吗" in shown[-2] and "店铺：" in shown[-1] and "欢迎" in shown[-1]
    assert "顾客：[图片]" in shown[2] and "顾客：[语音: 茶叶]" in shown[4] and "茶" in shown[5]
    assert all(len(line) <= 60 for line in shown), shown
    assert "o_customer_77" not in alert


async def test_a_pay_link_never_reaches_the_transcript(sqlite_shop: Shop) -> None:
    user = sqlite_shop.user()
    order_no = await place_order(sqlite_shop, user, quantity=1)  # answered with the pay card
    pay_url = sqlite_shop.client.app[SERVICES].pay_url(await view(sqlite_shop, order_no))
    token = pay_url.rsplit("/pay/", 1)[1]
    await user.say(f"付不了 {pay_url}")
    await user.say("人工")
    context = await handoff_context(sqlite_shop)
    stored = json.dumps(context, ensure_ascii=False)
    assert token not in stored and "/pay/" not in stored and "http" not in stored  # the card's link neither
    assert ("customer", "付不了 [支付链接]") in said(context)
    assert any(speaker == "shop" and text.startswith("[图文] 订单待支付") for speaker, text in said(context))
    assert "13800138000" not in stored and "138****8000" in stored


async def test_staff_commands_are_not_recorded(sqlite_staffed: Shop) -> None:
    owner = sqlite_staffed.user(OWNER)
    await owner.say("苹果")
    assert "成交额" in (await owner.say("/stats")).text
    await owner.say("人工")
    lines = said(await handoff_context(sqlite_staffed))
    assert [speaker for speaker, _ in lines] == ["customer", "shop"] and lines[0] == ("customer", "苹果")


async def test_with_redis_the_transcript_is_one_list_per_customer(
    make_shop: ShopFactory, sqlite_url: str, redis_url: str
) -> None:
    # what is asserted is where the lines go in Redis: a busy machine's slow command must not
    # count Redis as down (1 s by default) and send them to the in-process fallback instead
    shop = await make_shop(sqlite_url, redis={"url": redis_url, "socket_timeout_seconds": 10.0})
    await chat_then_ask_for_a_person(shop.user("o_redis_1"), "转人工")
    assert [speaker for speaker, _ in said(await handoff_context(shop))] == ["customer", "shop"] * 3
    redis = Redis.from_url(redis_url)
    try:
        raw = await redis.lrange("storefront:transcript:o_redis_1", 0, -1)
    finally:
        await redis.aclose()
    newest_first = [Line.loads(item) for item in raw]
    answer, words = [line.text for line in newest_first if line is not None][:2]
    assert answer.startswith("已为您转接人工客服") and words == "转人工"


class BrokenStore:
    async def append(self, openid: str, lines: object) -> None:
        raise ConnectionError("the transcript store is down")

    async def recent(self, openid: str) -> list[Line]:
        raise ConnectionError("the transcript store is down")


async def test_a_failing_transcript_store_does_not_break_the_reply(sqlite_shop: Shop) -> None:
    sqlite_shop.client.app[SERVICES].transcripts.store = BrokenStore()
    user = sqlite_shop.user()
    assert "苹果" in (await user.say("苹果")).text
    assert "人工客服" in (await user.say("东西坏了要找人")).text
    context = await handoff_context(sqlite_shop)
    assert context["recent"] == [] and context["message"] == "东西坏了要找人"

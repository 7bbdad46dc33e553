"""Fewer turns to pay (issue 12, item 4): a size in the words picks the product and its
variant, so a new customer reaches the payment link in five messages and a returning one,
whose address is saved, in three."""

from __future__ import annotations

import pytest

from bot.devtools.simulator import Reply
from tests.bot.driver import ChatUser, Shop

pytestmark = pytest.mark.sqlite_only  # what the test checks is the conversation, not the database

ADDRESS = "张三 13800138000 上海市浦东新区世纪大道100号"


def _is_pay_card(reply: Reply) -> bool:
    return reply.kind == "news" and "订单号" in reply.articles[0].description


async def _messages_to_pay(user: ChatUser, script: list[str]) -> int:
    for sent, message in enumerate(script, start=1):
        if _is_pay_card(await user.say(message)):
            return sent
    raise AssertionError(f"no payment link after {script}")


async def test_a_size_in_the_words_reaches_the_pay_link_in_five_then_three_messages(shop: Shop) -> None:
    user = shop.user("o_three_jin")
    chosen = await user.say("买三斤苹果")
    assert "烟台红富士苹果" in chosen.text and "3斤装" in chosen.text  # the only apple sold by 3 斤
    assert await _messages_to_pay(user, ["立即购买", ADDRESS, "确认", "确认"]) + 1 == 5
    assert await _messages_to_pay(user, ["买三斤苹果", "立即购买", "确认"]) == 3  # returning: address saved


async def test_three_jin_of_oranges_reach_the_pay_link_in_five_then_three_messages(shop: Shop) -> None:
    """The issue's own words: a newcomer buys "三斤橙子" in five messages."""
    user = shop.user("o_three_jin_oranges")
    chosen = await user.say("买三斤橙子")
    assert "赣南脐橙" in chosen.text and "3斤装" in chosen.text
    assert await _messages_to_pay(user, ["立即购买", ADDRESS, "确认", "确认"]) + 1 == 5
    assert await _messages_to_pay(user, ["三斤橙子", "立即购买", "确认"]) == 3  # returning: address saved


async def test_a_size_sold_by_several_products_or_none_still_lists_them(shop: Shop) -> None:
    user = shop.user("o_five_jin")
    several = await user.say("买五斤苹果")  # both apples come in 5 斤: the customer chooses
    assert "烟台红富士苹果" in several.text and "阿克苏冰糖心苹果" in several.text
    none = await user.say("买三斤香蕉")  # bananas have no sizes: the banana, as before
    assert "香蕉" in (none.text + "".join(a.title for a in none.articles))
    sold_out = await user.say("买十斤脐橙")  # 10 斤 oranges are sold out: never chosen
    assert "已选" not in sold_out.text


def test_a_size_matches_a_whole_amount_of_a_variant_label() -> None:
    from bot.dialogs.search import _is_size

    assert _is_size("3斤装", "3斤") and _is_size("JJ / 2斤装", "2斤") and _is_size("5KG", "5kg")
    assert not _is_size("13斤装", "3斤") and not _is_size("5斤装", "3斤") and not _is_size("", "3斤")

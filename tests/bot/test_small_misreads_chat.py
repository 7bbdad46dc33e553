"""Small misreads, each fixed with its regression test (issue 12): a brand with a count in
its name, a filler left in the words, service hours, a counted quantity carried to the
cart, and "确认" right after the pay card."""

from __future__ import annotations

import re

import pytest

from bot.chat.understanding import Intent, Topic, understand
from tests.bot.conftest import OPERATOR
from tests.bot.driver import Shop

pytestmark = pytest.mark.sqlite_only  # the words are checked, not the database

ADDRESS = "张三 13800138000 上海市浦东新区世纪大道100号"


def _number_of(text: str, name: str) -> str:
    found = re.search(rf"^(\d+)\. {re.escape(name)}", text, re.M)
    assert found, text
    return found.group(1)


def test_a_count_glued_to_a_name_keeps_the_whole_name_for_the_search() -> None:
    read = understand("三只松鼠")
    assert read.slots.quantity == 3 and read.slots.whole_words == "三只松鼠"
    assert understand("来两袋大米").slots.whole_words == "两袋大米"
    assert understand("大米").slots.whole_words == ""


async def test_a_brand_with_a_count_in_its_name_is_searched_whole(staffed: Shop) -> None:
    customer = staffed.user("o_squirrel")
    assert "三只松鼠" in (await customer.say("三只松鼠")).text  # not "松鼠" with 3 of it
    await staffed.user(OPERATOR).say("/synonym 三只松鼠 每日坚果")
    assert "每日坚果" in (await customer.say("三只松鼠")).text
    assert "五常大米" in (await customer.say("来两袋大米")).text  # a quantity that leaves products is one


def test_more_before_cheap_is_filler() -> None:
    read = understand("有没有更便宜的苹果")
    assert read.words == "苹果" and read.slots.cheap


async def test_service_hours_are_answered_from_config(make_shop, db_url: str) -> None:  # type: ignore[no-untyped-def]
    shop = await make_shop(db_url, shop={"service_hours": "周一至周六 10:00-18:00"})
    for words in ("你们几点下班", "客服几点在", "营业时间", "what are your opening hours"):
        assert understand(words).topic is Topic.SERVICE_HOURS, words
        reply = await shop.user().say(words)
        assert "10:00-18:00" in reply.text and reply.kind == "text", (words, reply.text)
    assert understand("客服").intent is Intent.HUMAN


async def test_a_counted_quantity_in_the_search_is_what_the_card_adds(shop: Shop) -> None:
    user = shop.user("o_two_bags")
    listed = await user.say("来两袋大米")
    card = await user.say(_number_of(listed.text, "盘锦蟹田大米"))
    assert "2" in card.articles[0].description
    assert "×2" in (await user.say("加入购物车")).text
    other = shop.user("o_three_bananas")
    await other.say("香蕉")
    await other.say("1")
    assert "×3" in (await other.say("要3根")).text


async def test_confirm_after_the_pay_card_points_at_the_payment(shop: Shop) -> None:
    user = shop.user("o_confirm_twice")
    for message in ("买三斤苹果", "立即购买", ADDRESS, "确认", "确认"):
        await user.say(message)
    again = await user.say("确认")
    assert "没有找到" not in again.text and "付款" in again.text and "订单" in again.text, again.text
    stranger = await shop.user("o_nothing_open").say("确认")
    assert "没有找到" not in stranger.text and "没有需要确认" in stranger.text

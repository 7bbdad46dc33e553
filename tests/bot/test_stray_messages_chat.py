"""A stray message never silently ends a card or a checkout (issue 12, item 2), through the real app.

Inside a card or a checkout, a message the step does not expect is either understood (a
product search: the results come, the checkout is kept and "结算" goes on with it) or
answered with what the step needs and how to leave; the dialog stays.
"""

from __future__ import annotations

import pytest

from bot.dialogs.checkout import CheckoutData
from bot.keys import SERVICES
from tests.bot.driver import ChatUser, Shop
from tests.bot.test_points_chat import _give_points
from tests.bot.test_search_chat import numbered
from tests.bot.test_shopping_chat import _open

pytestmark = pytest.mark.sqlite_only  # the words are checked, not the database

ADDRESS = "张三 13800138000 上海市浦东新区世纪大道100号"
GIBBERISH = "qzxwv"  # matches no product, no keyword


async def _in_review(user: ChatUser) -> str:
    """A banana in the cart, a saved address, the checkout's review on screen."""
    await _open(user, "香蕉", "香蕉")
    await user.say("加入购物车")
    await user.say("结算")
    await user.say(ADDRESS)
    review = await user.say("确认")
    assert "商品金额：¥12.90" in review.text and "应付" in review.text
    return review.text


async def _checkout(shop: Shop, openid: str) -> tuple[str, CheckoutData] | None:
    """The state and data of the customer's open or parked checkout."""
    dialogs = shop.client.app[SERVICES].dialogs
    for active in (await dialogs.load(openid), await dialogs.parked(openid)):
        if active is not None and getattr(active, "dialog", None) is dialogs.checkout:
            return str(active.state), active.data
    return None


async def test_a_stray_message_on_a_card_keeps_the_card_and_says_what_it_takes(shop: Shop) -> None:
    user = shop.user("o_stray_card")
    card = await _open(user, "苹果", "烟台红富士苹果")
    assert card.kind == "news"
    stray = await user.say(GIBBERISH)
    assert "没能识别「qzxwv」" in stray.text
    assert "正在看「烟台红富士苹果」" in stray.text and "回复 1-3 选择规格" in stray.text
    assert "「取消」" in stray.text
    chosen = await user.say("2")  # the card is still open: a number picks its variant
    assert "已选：烟台红富士苹果（5斤装）" in chosen.text
    again = await user.say(GIBBERISH)
    assert "（5斤装）" in again.text and "加入购物车 数量" in again.text
    assert "×2" in (await user.say("加入购物车 2")).text


async def test_a_search_from_a_card_is_a_search(shop: Shop) -> None:
    user = shop.user("o_stray_card_search")
    await _open(user, "苹果", "烟台红富士苹果")
    results = await user.say("香蕉")
    assert any("香蕉" in line for line in numbered(results.text).values())
    assert "结算" not in results.text  # no checkout to go back to


async def test_a_search_in_the_review_keeps_the_checkout_and_its_choices(shop: Shop) -> None:
    user = shop.user("o_stray_review")
    await user.say("你好")  # the customer exists before the points are given
    await _give_points(shop, "o_stray_review", 1000)
    await _in_review(user)
    kept = await user.say("不用积分")
    assert "回复「用积分」使用" in kept.text and "应付：¥20.90" in kept.text

    results = await user.say("苹果")
    assert any("烟台红富士苹果" in line for line in numbered(results.text).values())
    assert "回复「结算」继续下单" in results.text
    parked = await _checkout(shop, "o_stray_review")
    assert parked is not None and parked[0] == "review" and parked[1].use_points is False

    await _open(user, "香蕉", "香蕉")
    assert "合计 ¥25.80" in (await user.say("加入购物车")).text  # the second banana
    resumed = await user.say("结算")
    assert "继续刚才的结算" in resumed.text
    assert "商品金额：¥25.80" in resumed.text and "张三" in resumed.text
    assert "回复「用积分」使用" in resumed.text  # "不用积分" was kept
    assert (await user.say("确认")).kind == "news"  # and it places the order


async def test_an_unknown_message_in_the_review_says_what_it_takes_and_stays(shop: Shop) -> None:
    user = shop.user("o_stray_review_unknown")
    await _in_review(user)
    stray = await user.say(GIBBERISH)
    assert "没能识别" in stray.text
    assert "正在结算（应付 ¥20.90）" in stray.text and "回复「确认」提交订单" in stray.text
    assert "或回复「取消」退出结算" in stray.text
    number = await user.say("7")  # no list on screen: a number is answered the same way
    assert "回复「确认」提交订单" in number.text
    assert (await user.say("确认")).kind == "news"


async def test_a_search_while_the_address_is_asked_for_comes_back_to_the_address(shop: Shop) -> None:
    user = shop.user("o_stray_address")
    await _open(user, "香蕉", "香蕉")
    await user.say("加入购物车")
    assert "请发送收货信息" in (await user.say("结算")).text

    results = await user.say("苹果")  # not an address: searched, the checkout kept
    assert any("烟台红富士苹果" in line for line in numbered(results.text).values())
    assert "回复「结算」继续下单" in results.text
    resumed = await user.say("结算")
    assert "继续刚才的结算" in resumed.text and "请发送收货信息" in resumed.text

    stray = await user.say(GIBBERISH)
    assert "没能识别" in stray.text and "还差收货信息" in stray.text and "「取消」" in stray.text
    wrong = await user.say("张三 138001 上海市浦东新区世纪大道100号")  # an address attempt: what is wrong
    assert "手机号好像不对" in wrong.text
    assert "138****8000" in (await user.say(ADDRESS)).text


async def test_a_typed_address_waiting_for_confirmation_survives_a_search(shop: Shop) -> None:
    user = shop.user("o_stray_confirm")
    await _open(user, "香蕉", "香蕉")
    await user.say("加入购物车")
    await user.say("结算")
    assert "138****8000" in (await user.say(ADDRESS)).text

    stray = await user.say(GIBBERISH)
    assert "回复「确认」使用刚才的收货信息" in stray.text
    results = await user.say("苹果")
    assert "回复「结算」继续下单" in results.text
    resumed = await user.say("结算")
    assert "继续刚才的结算" in resumed.text
    assert "请确认收货信息" in resumed.text and "138****8000" in resumed.text  # what was typed is kept
    review = await user.say("确认")
    assert "应付：¥20.90" in review.text and "张三" in review.text


async def test_another_screen_parks_the_checkout_and_cancel_drops_it(shop: Shop) -> None:
    user = shop.user("o_stray_orders")
    await _in_review(user)
    orders = await user.say("订单")
    assert "订单" in orders.text
    assert "继续刚才的结算" in (await user.say("结算")).text

    await user.say("苹果")
    assert "已取消" in (await user.say("取消")).text
    fresh = await user.say("结算")
    assert "继续刚才的结算" not in fresh.text and "应付：¥20.90" in fresh.text
    assert await _checkout(shop, "o_stray_orders") is not None

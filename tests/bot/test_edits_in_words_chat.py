"""Cart, checkout and card edits said in words (issue 12), through the real app."""

from __future__ import annotations

import pytest

from tests.bot.conftest import ShopFactory
from tests.bot.driver import ChatUser, Shop
from tests.bot.test_search_chat import numbered
from tests.bot.test_shopping_chat import _open

pytestmark = pytest.mark.sqlite_only  # the words are checked, not the database

OWNER = "o_owner_words"
ADDRESS = "张三 13800138000 上海市浦东新区世纪大道100号"


async def _tee_and_towel(user: ChatUser) -> None:
    """A white M T-shirt and a towel in the cart."""
    await _open(user, "纯棉圆领T恤", "纯棉圆领T恤")
    assert "白色 / M" in (await user.say("白色 M")).text
    await user.say("加入购物车")
    await _open(user, "毛巾", "竹纤维毛巾")
    added = await user.say("加入购物车")
    assert "购物车共 2 件" in added.text


async def test_a_variant_is_picked_by_its_words_on_the_card(shop: Shop) -> None:
    user = shop.user("o_words_variant")
    await _open(user, "苹果", "烟台红富士苹果")
    assert "已选：烟台红富士苹果（5斤装）" in (await user.say("要5斤那个")).text
    assert "已选：烟台红富士苹果（3斤装）" in (await user.say("三斤的")).text
    await _open(user, "纯棉圆领T恤", "纯棉圆领T恤")
    assert "已选：纯棉圆领T恤（黑色 / L）" in (await user.say("要黑色L码")).text
    assert "已选：纯棉圆领T恤（黑色 / XL）" in (await user.say("黑色XL")).text
    black = await user.say("黑色")  # several fit: those, by their numbers on the card
    assert set(numbered(black.text)) == {5, 6, 7} and "黑色 / M" in black.text
    assert "已选：纯棉圆领T恤（黑色 / M）" in (await user.say("5")).text


async def test_one_more_adds_to_the_card_on_screen_or_the_newest_line(shop: Shop) -> None:
    user = shop.user("o_words_more")
    await _open(user, "香蕉", "香蕉")
    await user.say("加入购物车 2")
    more = await user.say("再加一袋")
    assert "已加入购物车：香蕉 ×1" in more.text and "购物车共 3 件" in more.text
    assert "购物车共 5 件" in (await user.say("再来两个")).text  # the card is still open
    await user.say("购物车")
    listed = await user.say("再加一个")
    assert "香蕉 ¥12.90 ×6" in listed.text and "合计：¥77.40" in listed.text


async def test_one_more_on_a_card_without_a_chosen_variant_asks_for_it(shop: Shop) -> None:
    user = shop.user("o_words_more_variant")
    await _open(user, "苹果", "烟台红富士苹果")
    ask = await user.say("再加一袋")
    assert "有多个规格" in ask.text and "2. 5斤装" in ask.text
    assert "购物车是空的" in (await user.say("购物车")).text


async def test_a_line_is_removed_or_its_quantity_set_by_name(shop: Shop) -> None:
    user = shop.user("o_words_lines")
    await _tee_and_towel(user)
    removed = await user.say("把T恤删了")
    assert "纯棉圆领T恤" not in removed.text and "竹纤维毛巾" in removed.text
    four = await user.say("毛巾要4条")
    assert "竹纤维毛巾" in four.text and "×4" in four.text and "（4 件）" in four.text
    assert "×4" not in (await user.say("T恤要4件")).text  # no T-shirt left: not an edit, a search


async def test_a_line_is_named_by_its_english_name_too(shop: Shop) -> None:
    user = shop.user("o_words_english")
    await _tee_and_towel(user)
    three = await user.say("towels to 3")
    assert "竹纤维毛巾" in three.text and "×3" in three.text, three.text
    removed = await user.say("remove the t-shirt")
    assert "纯棉圆领T恤" not in removed.text and "竹纤维毛巾" in removed.text, removed.text


async def test_cart_edits_in_words_at_checkout_requote_the_review(shop: Shop) -> None:
    user = shop.user("o_words_checkout")
    await _tee_and_towel(user)
    await user.say("结算")
    await user.say(ADDRESS)
    review = await user.say("确认")
    assert "纯棉圆领T恤" in review.text and "📋 确认订单" in review.text
    four = await user.say("毛巾要4条")
    assert "📋 确认订单" in four.text and "竹纤维毛巾" in four.text and "×4" in four.text
    gone = await user.say("把T恤删了")
    assert "📋 确认订单" in gone.text and "纯棉圆领T恤" not in gone.text
    assert (await user.say("确认")).kind == "news"


async def test_the_delivery_details_change_in_words_without_losing_the_checkout(shop: Shop) -> None:
    user = shop.user("o_words_address")
    await _open(user, "香蕉", "香蕉")
    await user.say("加入购物车 2")
    await user.say("结算")
    await user.say(ADDRESS)
    await user.say("确认")
    name = await user.say("收货人改成王芳")
    assert "收货人：王芳" in name.text and "138****8000" in name.text and "世纪大道100号" in name.text
    phone = await user.say("电话改成13900001111")  # still before confirming: changes what is shown
    assert "收货人：王芳" in phone.text and "139****1111" in phone.text
    review = await user.say("确认")
    assert "📋 确认订单" in review.text and "王芳 139****1111" in review.text and "×2" in review.text
    street = await user.say("地址改成北京市朝阳区建国路88号")
    assert "地址：北京市朝阳区建国路88号" in street.text and "收货人：王芳" in street.text
    review = await user.say("确认")
    assert "王芳 139****1111 北京市朝阳区建国路88号" in review.text

    mum = await user.say("收货人改成我妈")
    assert "换一位收货人" in mum.text and "请发送收货信息" in mum.text
    parsed = await user.say("李秀英 13700001234 杭州市西湖区文三路1号")
    assert "李秀英" in parsed.text
    review = await user.say("确认")
    assert "李秀英" in review.text and "×2" in review.text
    assert (await user.say("确认")).kind == "news"


async def test_asking_for_coupons_at_checkout_lists_them_and_stays(shop: Shop) -> None:
    user = shop.user("o_words_coupons")
    await _open(user, "香蕉", "香蕉")
    await user.say("加入购物车")
    await user.say("结算")
    await user.say(ADDRESS)
    await user.say("确认")
    coupons = await user.say("有券能用吗")
    assert "这单暂时没有能用的优惠券" in coupons.text and "应付 ¥20.90" in coupons.text
    assert (await user.say("确认")).kind == "news"


async def test_coupons_asked_for_are_listed_and_a_chosen_one_survives_a_search(
    make_shop: ShopFactory, db_url: str
) -> None:
    shop = await make_shop(db_url, staff={"owners": [OWNER]})
    owner, user = shop.user(OWNER), shop.user("o_words_two_coupons")
    await user.say("你好")  # the customer exists before the coupons are issued
    for command in ("/coupon new SAVE5 off 5 title 立减5元", "/coupon new SAVE3 off 3 title 立减3元",
                    "/coupon issue SAVE5 o_words_two_coupons", "/coupon issue SAVE3 o_words_two_coupons"):
        assert "SAVE" in (await owner.say(command)).text
    await _open(user, "香蕉", "香蕉")
    await user.say("加入购物车 2")
    await user.say("结算")
    await user.say(ADDRESS)
    await user.say("确认")
    coupons = await user.say("有优惠券吗")
    listed = numbered(coupons.text)
    assert len(listed) == 2 and "立减5元" in listed[1] and "立减3元" in listed[2]
    assert "现在用的是「立减5元」" in coupons.text and "回复「券 1」选用" in coupons.text
    chosen = await user.say("券 2")
    assert "优惠券：立减3元 -¥3.00" in chosen.text

    assert "回复「结算」继续下单" in (await user.say("苹果")).text
    resumed = await user.say("结算")
    assert "继续刚才的结算" in resumed.text and "优惠券：立减3元 -¥3.00" in resumed.text


async def test_cart_lines_removed_and_changed_by_number_in_words(shop: Shop) -> None:
    user = shop.user("o_cart_numbers_words")
    for name, picks in (("香蕉", ("1",)), ("猕猴桃", ("1", "1"))):
        await user.say(name)
        for pick in picks:  # the product, then its variant when it has several
            await user.say(pick)
        await user.say("加入购物车")
    listed = await user.say("购物车")
    assert "1. 香蕉" in listed.text, listed.text
    changed = await user.say("第一个改成3个")
    assert "香蕉 ¥12.90 ×3" in changed.text, changed.text
    removed = await user.say("删掉第一个")
    assert "香蕉" not in removed.text and "猕猴桃" in removed.text, removed.text

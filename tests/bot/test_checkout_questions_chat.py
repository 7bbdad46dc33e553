"""Questions about the review asked while the address is still wanted ("有券能用吗",
"不用积分"): answered, the choice kept for the review, and the checkout goes on."""

from __future__ import annotations

from tests.bot.driver import Shop
from tests.bot.test_points_chat import _give_points


async def test_coupon_and_points_words_at_the_address_step(shop: Shop) -> None:
    user = shop.user("o_checkout_words")
    await user.say("香蕉")
    await user.say("1")
    await user.say("加入购物车 2")
    await _give_points(shop, "o_checkout_words", 1000)
    asked = await user.say("结算")
    assert "收货信息" in asked.text
    coupon = await user.say("有券能用吗")
    assert "确认订单时列出" in coupon.text and "姓名 手机号 详细地址" in coupon.text, coupon.text
    await user.say("张三 13800138000 上海市浦东新区世纪大道100号")
    points = await user.say("不用积分")
    assert "这单不用积分" in points.text and "确认" in points.text, points.text
    review = await user.say("确认")
    assert "积分：现有 1000，可用" in review.text, review.text  # kept, not used by default

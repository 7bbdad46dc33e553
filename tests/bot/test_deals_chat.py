"""Asking for a discount ("有优惠吗", "能便宜点吗", "any discounts?") shows what the shop takes
off now and how to get it, not the account page; "我的积分" still shows the account."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from commerce.balance import topups
from commerce.catalog.models import Product, Variant
from commerce.groupbuys import campaigns as group_campaigns
from commerce.membership import levels
from commerce.promotions import flash_sales
from commerce.rules import DEFAULT_MEMBER_LEVELS, ShopRules, utcnow
from tests.bot.conftest import ShopFactory
from tests.bot.driver import Shop, db
from tests.bot.test_card_words_chat import seen

OWNER = "o_owner_deals"


@pytest.mark.sqlite_only
@pytest.mark.parametrize("words", ["有优惠吗", "能便宜点吗", "有什么活动", "新人福利", "买两个有优惠吗", "老板，能打折吗"])
async def test_a_new_customer_asking_for_a_discount_is_shown_the_deals_not_the_account(
    shop: Shop, words: str
) -> None:
    reply = await shop.user("o_deals_new").say(words)
    assert "👤" not in reply.text and "积分" not in reply.text and "佣金" not in reply.text, reply.text
    assert reply.text.startswith("🎁 现在的优惠（商品满 ¥99.00 包邮）"), reply.text
    # no member yet: how to join, and what the first level with a discount gives (the default 银卡, 2%)
    assert "回复「会员」用手机号注册，再消费 ¥500.00 即成「银卡」，结算享 2% 折扣" in reply.text, reply.text
    assert len(reply.text.splitlines()) <= 6


@pytest.mark.sqlite_only
async def test_any_discounts_in_english(shop: Shop) -> None:
    for words in ("any discounts?", "cheaper?", "do you have any deals"):
        reply = await shop.user("o_deals_english").say(words)
        assert reply.text.startswith("🎁 Deals now (free delivery from ¥99.00 of goods)"), (words, reply.text)
        assert 'Reply "member" to register' in reply.text and "My account" not in reply.text, reply.text


@pytest.mark.sqlite_only
@pytest.mark.parametrize(("words", "shown"), [("我的积分", "👤 我的"), ("我的优惠券", "👤 我的"), ("邀请码", "邀请码"),
                                              ("my points", "👤 My account"), ("my account", "👤 My account")])
async def test_personal_asks_still_show_the_account(shop: Shop, words: str, shown: str) -> None:
    reply = await shop.user("o_deals_personal").say(words)
    assert shown in reply.text and "现在的优惠" not in reply.text, reply.text


async def test_coupons_held_are_counted_and_the_biggest_named(make_shop: ShopFactory, db_url: str) -> None:
    shop = await make_shop(db_url, staff={"owners": [OWNER]})
    owner, user = shop.user(OWNER), shop.user("o_deals_coupons")
    await user.say("你好")  # the customer exists before the coupons are issued
    for command in ("/coupon new SAVE5 off 5 title 立减5元", "/coupon new SAVE10 off 10 over 50 title 满50减10",
                    "/coupon issue SAVE5 o_deals_coupons", "/coupon issue SAVE10 o_deals_coupons"):
        assert "SAVE" in (await owner.say(command)).text
    reply = await user.say("有券吗")
    assert "🎫 你有 2 张优惠券可用（最大一张「满50减10」，满 ¥50.00 可用），结算时自动用上最划算的。" in reply.text, reply.text
    assert "👤" not in reply.text


async def _group_offer_on(shop: Shop, product_name: str) -> tuple[int, int]:
    """A group-buy campaign on the product's first variant: (group price, regular price)."""
    async with db(shop.client.app)() as session:
        variant = await session.scalar(
            select(Variant).join(Product, Product.id == Variant.product_id)
            .where(Product.name == product_name).order_by(Variant.id).limit(1)
        )
        assert variant is not None
        price = variant.price_fen - 1000
        await group_campaigns.create_campaign(
            session, variant_id=variant.id, group_price_fen=price, group_size=3,
            starts_at=utcnow() - timedelta(hours=1), ends_at=utcnow() + timedelta(days=3), rules=ShopRules(),
        )
        await session.commit()
        return price, variant.price_fen


async def test_on_a_card_with_a_group_offer_haggling_shows_the_group_price(shop: Shop) -> None:
    price, regular = await _group_offer_on(shop, "烟台红富士苹果")
    user = shop.user("o_deals_card")
    elsewhere = await user.say("有优惠吗")  # no card open: how many products have an offer
    assert "👥 1 件商品正在拼团，回复「拼团」查看。" in elsewhere.text, elsewhere.text
    await user.say("苹果")
    card = await user.say("1")
    assert "烟台红富士苹果" in seen(card), seen(card)
    yuan = f"¥{price / 100:.2f}"
    haggled = await user.say("能便宜点吗")
    assert f"👥 烟台红富士苹果（3斤装） 拼团价 {yuan}（原价 ¥{regular / 100:.2f}，3 人成团），回复「拼团」开团。" in haggled.text, (
        haggled.text
    )
    assert "👤" not in haggled.text
    group = await user.say("拼团")  # the card is still on screen: its product's offer
    assert "烟台红富士苹果" in group.text and yuan in group.text, group.text


async def test_a_price_asked_on_a_list_still_narrows_it_after_the_deals(shop: Shop) -> None:
    user = shop.user("o_deals_list")
    listed = await user.say("水果")
    assert "阿克苏冰糖心苹果" in listed.text, listed.text
    assert "现在的优惠" in (await user.say("有优惠吗")).text
    cheap = await user.say("有没有便宜一点的")
    assert "1. 香蕉 ¥12.90" in cheap.text and "现在的优惠" not in cheap.text, cheap.text


async def test_flash_sales_and_top_up_bonus_are_shown_with_how_to_get_them(shop: Shop) -> None:
    async with db(shop.client.app)() as session:
        variant = await session.scalar(select(Variant).order_by(Variant.id).limit(1))
        assert variant is not None
        price = variant.price_fen - 1
        for hours in (1, 5):  # two coming: the nearest is named
            await flash_sales.create_sale(
                session, variant_id=variant.id, price_fen=price, units=5,
                starts_at=utcnow() + timedelta(hours=hours), ends_at=utcnow() + timedelta(hours=hours + 1),
                per_user_limit=1, pay_minutes=10, now=utcnow(),
            )
        await topups.set_plan(session, pay_fen=10_000, bonus_fen=1_000)
        await topups.set_plan(session, pay_fen=20_000, bonus_fen=0)  # no bonus: not a deal
        await session.commit()
    reply = await shop.user("o_deals_flash").say("有什么活动")
    assert "⚡ 秒杀 2 场：" in reply.text and f"秒杀价 ¥{price / 100:.2f}" in reply.text, reply.text
    assert "开始），回复「秒杀」查看。" in reply.text
    assert "💳 充值有赠：充 ¥100.00 送 ¥10.00，回复「充值」查看。" in reply.text, reply.text


@pytest.mark.sqlite_only
async def test_with_nothing_on_it_says_so_and_points_to_the_best_sellers(shop: Shop) -> None:
    async with db(shop.client.app)() as session:  # levels that take nothing off
        for level in DEFAULT_MEMBER_LEVELS:
            await levels.set_level(session, name=level.name, threshold_fen=level.threshold_fen, discount_bp=0,
                                   rules=ShopRules())
        await session.commit()
    reply = await shop.user("o_deals_nothing").say("有优惠吗")
    assert reply.text.strip() == (
        "现在没有促销活动，商品满 ¥99.00 包邮。回复「热卖」看看大家都在买什么，回复「会员」了解会员。"
    ), reply.text

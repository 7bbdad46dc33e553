"""A customer follows the account and searches the catalog, through the real app."""

from __future__ import annotations

import dataclasses
import re
import time

import pytest

from bot.keys import SERVICES
from tests.bot.driver import ChatUser, Shop, db

pytestmark = pytest.mark.sqlite_only  # the words are checked, not the database


def numbered(text: str) -> dict[int, str]:
    """{number: line} of a numbered list reply."""
    return {int(m.group(1)): m.group(0) for m in re.finditer(r"^(\d+)\. .*$", text, re.M)}


async def test_follow_gets_the_welcome(shop: Shop) -> None:
    reply = await shop.user().event("subscribe")
    assert reply.kind == "text"
    assert "欢迎关注测试小店" in reply.text


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("苹果", "烟台红富士苹果"),
        ("pingguo", "烟台红富士苹果"),
        ("apple", "烟台红富士苹果"),
        ("appel", "烟台红富士苹果"),
        ("龙井", "西湖龙井"),
        ("longjing", "西湖龙井"),
        ("平果", "苹果"),
    ],
)
async def test_search_in_chinese_english_pinyin_and_with_typos(shop: Shop, query: str, expected: str) -> None:
    reply = await shop.user().say(query)
    lines = numbered(reply.text)
    assert lines, reply.text
    assert any(expected in line for line in list(lines.values())[:3]), reply.text


async def test_results_show_price_and_stock(shop: Shop) -> None:
    reply = await shop.user().say("苹果")
    line = next(v for v in numbered(reply.text).values() if "烟台红富士苹果" in v)
    assert "¥29.90起" in line and "有货" in line


async def test_out_of_stock_products_say_so(shop: Shop) -> None:
    reply = await shop.user().say("草莓")
    line = next(v for v in numbered(reply.text).values() if "丹东草莓" in v)
    assert "缺货" in line


async def test_off_sale_products_never_show(shop: Shop) -> None:
    user = shop.user()
    for query in ("菊花枸杞茶", "平板", "juhua"):
        listed = " ".join(numbered((await user.say(query)).text).values())
        assert "菊花枸杞茶" not in listed and "学习平板" not in listed


async def test_nothing_found_offers_a_way_on(shop: Shop) -> None:
    reply = await shop.user().say("zzzzqqqxxx")
    assert "没有找到" in reply.text
    assert "热卖" in reply.text  # hot products and categories offered, not a dead end
    assert "水果" in reply.text


async def test_picking_a_number_opens_the_product_card(shop: Shop) -> None:
    user = shop.user()
    results = numbered((await user.say("苹果")).text)
    number = next(n for n, line in results.items() if "烟台红富士苹果" in line)
    card = await user.say(str(number))
    assert card.kind == "news"
    (article,) = card.articles
    assert article.title.startswith("烟台红富士苹果 ¥29.90-¥79.90")
    # what a phone shows of it: price and stock first, then the variants (the sold-out one marked)
    assert article.description.startswith("¥29.90起 · 有货\n1.3斤装 2.5斤装 3.10斤装(缺)\n")
    assert re.fullmatch(r"https://shop\.example\.com/media/[0-9a-f]{64}\.png", article.picurl)  # its own drawing
    assert re.fullmatch(r"https://shop\.example\.com/products/\d+", article.url)


async def test_card_shows_current_stock_not_the_cached_one(shop: Shop) -> None:
    from sqlalchemy import update

    from commerce.catalog.models import Variant

    user = shop.user()
    await user.say("香蕉")
    async with db(shop.client.app)() as session, session.begin():
        await session.execute(update(Variant).where(Variant.sku_code.like("FRU-BANANA%")).values(stock=7))
    card = await user.say("1")
    assert "仅剩 7 件" in card.articles[0].description


async def test_paging_next_previous_and_the_edges(shop: Shop) -> None:
    user = shop.user()
    first = await user.say("热卖")
    assert set(numbered(first.text)) == {1, 2, 3, 4, 5}
    assert "第 1/" in first.text
    second = await user.say("下一页")
    assert set(numbered(second.text)) == {6, 7, 8, 9, 10}
    back = await user.say("上一页")
    assert set(numbered(back.text)) == {1, 2, 3, 4, 5}
    edge = await user.say("上一页")
    assert "已经是第一页了" in edge.text


async def test_numbers_run_across_pages(shop: Shop) -> None:
    user = shop.user()
    first_page = numbered((await user.say("热卖")).text)
    await user.say("next")
    card = await user.say("7")
    assert card.kind == "news"
    await user.say("back")
    again = await user.say("1")
    assert again.articles[0].title.split(" ")[0] in first_page[1]


async def test_out_of_range_number_keeps_the_list(shop: Shop) -> None:
    user = shop.user()
    await user.say("苹果")
    reply = await user.say("99")
    assert "没有第 99 项" in reply.text
    assert (await user.say("1")).kind == "news"


async def test_a_number_with_no_list_open(shop: Shop) -> None:
    reply = await shop.user().say("3")
    assert "没有可选择的列表" in reply.text


async def test_new_text_while_a_list_is_open_is_a_new_search(shop: Shop) -> None:
    user = shop.user()
    await user.say("苹果")
    reply = await user.say("龙井")
    assert "西湖龙井" in reply.text and "烟台红富士苹果" not in reply.text


async def test_categories_from_text_and_menu(shop: Shop) -> None:
    user = shop.user()
    listing = await user.say("分类")
    lines = numbered(listing.text)
    fruit = next(n for n, line in lines.items() if "水果" in line)
    products = await user.say(str(fruit))
    assert "【水果】" in products.text and "香蕉" in products.text
    menu = await user.event("CLICK", key="CATEGORIES")
    assert numbered(menu.text) == lines


async def test_menu_hot_and_category_keys(shop: Shop) -> None:
    user = shop.user()
    hot = await user.event("CLICK", key="HOT")
    assert "热卖商品" in hot.text and len(numbered(hot.text)) == 5
    snapshot = await shop.client.app[SERVICES].catalog.snapshot()
    tea = next(c for c in snapshot.categories if c.name == "茶饮")
    reply = await user.event("CLICK", key=f"CATEGORY_{tea.id}")
    assert "【茶饮】" in reply.text and "西湖龙井" in reply.text
    missing = await user.event("CLICK", key="CATEGORY_999999")
    assert "没有在售商品" in missing.text
    unknown = await user.event("CLICK", key="SOMETHING_ELSE")
    assert "使用说明" in unknown.text


@pytest.mark.sqlite_only
async def test_menu_keys_answer_as_the_words_they_stand_for(shop: Shop) -> None:
    """The keys menu.example.toml pushes: each click gets what typing its word gets."""
    user = shop.user()
    await user.say("邀请")  # the first ask earns the first-share points, said in that reply only
    for key, word in {"CART": "购物车", "ORDERS": "订单", "GROUP": "拼团", "ME": "我的", "INVITE": "邀请"}.items():
        clicked, typed = await user.event("CLICK", key=key), await user.say(word)
        assert (clicked.kind, clicked.text) == (typed.kind, typed.text), key
        assert "使用说明" not in clicked.text, key


async def test_english_keyword_switches_the_customer_to_english(shop: Shop) -> None:
    user = shop.user()
    assert "Shop right here" not in (await user.event("subscribe")).text
    help_reply = await user.say("help")
    assert "[测试小店 help]" in help_reply.text
    results = await user.say("apple")
    assert "found for \"apple\"" in results.text and "Reply a number" in results.text
    card = await user.say("1")
    assert "in stock" in card.articles[0].description or "sold out" in card.articles[0].description
    assert "使用说明" in (await user.say("帮助")).text


@pytest.mark.parametrize("state_entry", ["苹果", "分类"])
async def test_help_and_cancel_work_in_every_state(shop: Shop, state_entry: str) -> None:
    user = shop.user()
    await user.say(state_entry)
    assert "使用说明" in (await user.say("帮助")).text
    assert (await user.say("1")).kind in ("news", "text")  # help kept the dialog open
    assert "已取消" in (await user.say("取消")).text
    assert "没有可选择的列表" in (await user.say("1")).text
    assert "没有进行中的操作" in (await user.say("取消")).text


async def _expire(shop: Shop, user: ChatUser) -> None:
    store = shop.client.app[SERVICES].dialogs.store
    stored = await store.get(user.openid)
    assert stored is not None
    await store.put(user.openid, dataclasses.replace(stored, expires_at=time.time() - 1))


async def test_an_expired_list_says_so_on_the_next_pick(shop: Shop) -> None:
    user = shop.user()
    await user.say("苹果")
    await _expire(shop, user)
    reply = await user.say("2")
    assert "已超时" in reply.text
    assert "没有可选择的列表" in (await user.say("2")).text


async def test_a_new_search_after_expiry_is_answered_with_a_note(shop: Shop) -> None:
    user = shop.user()
    await user.say("苹果")
    await _expire(shop, user)
    reply = await user.say("龙井")
    assert reply.text.startswith("上次的商品列表已超时")
    assert "西湖龙井" in reply.text


async def test_the_product_page_behind_the_card(shop: Shop) -> None:
    user = shop.user()
    await user.say("苹果")
    card = await user.say("1")
    path = card.articles[0].url.removeprefix("https://shop.example.com")
    page = await shop.client.get(path)
    assert page.status == 200
    html = await page.text()
    assert card.articles[0].title.split(" ")[0] in html
    assert (await shop.client.get("/products/99999999")).status == 404
    assert (await shop.client.get("/products/abc")).status == 404

"""A product card as a phone shows it: WeChat shows a one-article card's title, its picture and
about two lines (~54 Chinese characters) of its description (`news_preview`). Every demo
card's description fits whole, in Chinese and English, with a welcome and a group price;
the simulators show the cut the same way."""

from __future__ import annotations

import dataclasses

from bot.chat.render import NEWS_SHOWN_COLUMNS, news_preview
from bot.chat.replies import News
from bot.devtools.simulator import Article, Reply, format_reply
from bot.dialogs.search import CardExtras, product_card
from bot.keys import RENDERER, SERVICES
from tests.bot.driver import Shop


def test_news_preview_cuts_to_about_two_lines() -> None:
    assert news_preview("短描述\n第二行") == "短描述\n第二行"
    long = "很" * 60
    shown = news_preview(long)
    assert shown == "很" * 53 + "…" and len(shown.encode()) < len(long.encode())
    assert news_preview("a" * NEWS_SHOWN_COLUMNS) == "a" * NEWS_SHOWN_COLUMNS  # Latin letters are narrow
    assert news_preview("a" * (NEWS_SHOWN_COLUMNS + 1)).endswith("…")
    card = format_reply(Reply(kind="news", articles=[Article("标题", "规格" * 40, "", "")]))
    assert "WeChat cuts the description here" in card and "规格" * 40 not in card


async def test_the_card_opened_in_the_chat_fits_what_wechat_shows(sqlite_shop: Shop) -> None:
    """Through the chat: the card's description is whole within the cut, price and stock first."""
    user = sqlite_shop.user("o_card_fits")
    results = await user.say("苹果")
    assert "烟台红富士苹果" in results.text
    card = await user.say("1")
    [article] = card.articles
    assert news_preview(article.description) == article.description, article.description
    first, variants, reply_with = article.description.splitlines()
    assert first.startswith("¥29.90起 · ") and ("有货" in first or "仅剩" in first)
    assert variants.startswith("1.3斤装 2.5斤装") and "回复编号" in reply_with
    welcome = await sqlite_shop.user("o_card_fits_scan").event("subscribe", key="qrscene_v1.p.1")
    assert welcome.articles[0].description.startswith("欢迎！")
    assert news_preview(welcome.articles[0].description) == welcome.articles[0].description


async def test_every_demo_card_fits_in_both_languages(sqlite_shop: Shop) -> None:
    app = sqlite_shop.client.app
    catalog, renderer = app[SERVICES].catalog, app[RENDERER]
    snapshot = await catalog.snapshot()
    assert len(snapshot.products) >= 70
    for product_id in snapshot.products:
        product = await catalog.product(product_id)
        assert product is not None
        # a group offer takes the place of the rating on the card; without one the rating shows
        cards = [
            product_card(product, extras=extras, quantity=99).cards[0]
            for extras in (
                CardExtras(group={"price": 99_999, "size": 10}, rating={"average": "4.8", "count": 9_999}),
                CardExtras(rating={"average": "4.8", "count": 9_999}),
            )
        ]
        for shown in (*cards, *(dataclasses.replace(card, data=card.data | {"welcome": True}) for card in cards)):
            for locale in ("zh", "en"):
                description = renderer.render(News((shown,)), locale).articles[0].description
                assert news_preview(description) == description, (product.name, locale, description)

"""What the pages ask a customer to do next, over HTTP: the product and group pages' copy
button (the word it copies opens the same thing in the chat), one language at a time
with a switch, and the referral page that shows the QR code it asks to scan, or asks none."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.app import create_app
from bot.outbound.sender import MemoryOutbox
from commerce.catalog.models import Product
from commerce.customers.customers import touch_customer
from commerce.referrals import referrals
from tests.bot.conftest import make_config
from tests.bot.driver import Shop, db
from tests.bot.web.test_group import open_apple_group
from tests.fakes.wechat import APPID, APPSECRET, FakeWeChat


def copied_word(html: str) -> str:
    found = re.search(r'id="copy-word" data-word="([^"]+)"', html)
    assert found, "no copy button"
    return found.group(1)


async def apple_id(shop: Shop) -> int:
    async with db(shop.client.app)() as session:
        found = await session.scalar(select(Product.id).where(Product.name == "烟台红富士苹果"))
    assert found is not None
    return found


async def test_the_product_page_copies_the_word_that_opens_its_card(web_shop: Shop) -> None:
    product_id = await apple_id(web_shop)
    response = await web_shop.client.get(f"/products/{product_id}")
    html = await response.text()
    assert response.status == 200 and '<html lang="zh-CN">' in html
    assert copied_word(html) == f"商品 {product_id}"
    assert "复制「商品" in html and "粘贴发送" in html and "立即购买" in html
    assert 'href="?lang=en"' in html and "Copy" not in html  # one language, and the switch

    card = await web_shop.user("o_page_visitor").say(copied_word(html))
    assert card.kind == "news" and card.articles[0].title.startswith("烟台红富士苹果")
    assert "「立即购买」" in card.articles[0].description  # the card's words work next

    english = await (await web_shop.client.get(f"/products/{product_id}?lang=en")).text()
    assert copied_word(english) == f"product {product_id}"
    assert "Copy “product" in english and "复制" not in english and 'href="?lang=zh"' in english
    answer = await web_shop.user("o_page_visitor_en").say(copied_word(english))
    assert answer.kind == "news" and '"buy now"' in answer.articles[0].description

    gone = await web_shop.user("o_page_visitor").say("商品 999999")
    assert gone.kind == "text" and "已下架" in gone.text


async def test_the_group_page_copies_the_join_words(web_shop: Shop) -> None:
    code = await open_apple_group(web_shop.client.app)
    html = await (await web_shop.client.get(f"/g/{code}")).text()
    assert copied_word(html) == f"参团 {code}"
    assert "去参团" in html and "粘贴发送" in html
    card = await web_shop.user("o_group_friend").say(copied_word(html))
    assert code in card.text or any(code in a.description for a in card.articles)
    english = await (await web_shop.client.get(f"/g/{code}?lang=en")).text()
    assert copied_word(english) == f"join {code}" and "1 of 3 joined" in english and "拼团中" not in english


async def _referral_code(shop: Shop, openid: str) -> str:
    async with db(shop.client.app)() as session, session.begin():
        customer = await touch_customer(session, openid)
        code, _first = await referrals.invite_code(session, customer_id=customer.id)
    return code


async def test_the_demo_referral_page_asks_for_no_scan_it_cannot_show(web_shop: Shop) -> None:
    code = await _referral_code(web_shop, "o_referrer_demo")
    html = await (await web_shop.client.get(f"/r/{code}")).text()
    assert code in html and 'class="qr"' not in html
    assert "二维码关注" not in html and "长按识别" not in html  # nothing to scan: not asked
    assert "演示店还没有接入微信" in html and f"!subscribe v1.r.{code}" in html


async def test_the_referral_page_shows_the_qr_code_it_asks_to_scan(
    sqlite_url: str, aiohttp_server: Callable[..., Awaitable[TestServer]],
    aiohttp_client: Callable[..., Awaitable[TestClient]],
) -> None:
    """With WeChat credentials (the fake WeChat API here) the page shows the referrer's QR code."""
    wechat = FakeWeChat()
    api = str((await aiohttp_server(wechat.app())).make_url("")).rstrip("/")
    config = make_config(sqlite_url, wechat={"appid": APPID, "appsecret": APPSECRET, "api_base_url": api})
    shop = Shop(await aiohttp_client(create_app(config)), config, MemoryOutbox())
    code = await _referral_code(shop, "o_referrer_live")
    html = await (await shop.client.get(f"/r/{code}")).text()
    qr = re.search(r'<img class="qr" id="qr" src="([^"]+)"', html)
    assert qr and "showqrcode?ticket=" in qr.group(1)
    assert "长按识别二维码关注公众号" in html and "演示店" not in html
    [asked] = wechat.api_requests("/qrcode/create")
    assert asked.json is not None and asked.json["action_info"]["scene"]["scene_str"] == f"v1.r.{code}"

"""The local chat simulator page: JSON in, the real webhook over HTTP, the reply out."""

from __future__ import annotations

import re
from typing import Any

from bot.chat.render import Rendered, RenderedArticle, news_preview
from tests.bot.driver import Shop
from tests.bot.web.conftest import REAL_PAY, ShopFactory


async def send(shop: Shop, **body: Any) -> dict[str, Any]:
    response = await shop.client.post("/dev/chat/send", json=body)
    assert response.status == 200, await response.text()
    return (await response.json())["reply"]


def numbered(text: str) -> dict[int, str]:
    return {int(m.group(1)): m.group(0) for m in re.finditer(r"^(\d+)\. .*$", text, re.M)}


async def test_the_page_is_served_with_its_script_and_no_external_urls(web_shop: Shop) -> None:
    response = await web_shop.client.get("/dev/chat")
    assert response.status == 200
    html = await response.text()
    assert "测试小店" in html
    assert 'data-default-openid="o_simulator_user"' in html
    for key in ("HOT", "CATEGORIES", "HELP"):
        assert f'data-click="{key}"' in html
    assert 'src="/static/chat.js"' in html and 'href="/static/chat.css"' in html
    assert "//" not in html.replace("://", "")  # no protocol-relative URLs either
    assert "http" not in html
    script = await web_shop.client.get("/static/chat.js")
    assert script.status == 200
    js = await script.text()
    assert "innerHTML" not in js and "insertAdjacentHTML" not in js and "document.write" not in js
    assert (await web_shop.client.get("/static/chat.css")).status == 200


async def test_text_search_through_the_real_webhook(web_shop: Shop) -> None:
    reply = await send(web_shop, openid="o_dev_1", text="pingguo")
    assert reply["kind"] == "text"
    assert any("烟台红富士苹果" in line for line in numbered(reply["text"]).values()), reply["text"]


async def test_picking_a_number_answers_the_product_card_as_json(web_shop: Shop) -> None:
    results = numbered((await send(web_shop, openid="o_dev_2", text="苹果"))["text"])
    number = next(n for n, line in results.items() if "烟台红富士苹果" in line)
    card = await send(web_shop, openid="o_dev_2", text=str(number))
    assert card["kind"] == "news"
    (article,) = card["articles"]
    assert set(article) == {"title", "description", "picurl", "url", "shown"}
    assert article["shown"] == news_preview(article["description"])  # what a phone shows of it
    assert article["title"].startswith("烟台红富士苹果")
    assert article["url"].startswith("https://shop.example.com/products/")
    assert article["picurl"].startswith("https://shop.example.com/media/")


async def test_menu_clicks_and_follow_events(web_shop: Shop) -> None:
    welcome = await send(web_shop, openid="o_dev_3", event="subscribe")
    assert "欢迎关注测试小店" in welcome["text"]
    hot = await send(web_shop, openid="o_dev_3", event="CLICK", key="HOT")
    assert hot["kind"] == "text" and numbered(hot["text"])
    categories = await send(web_shop, openid="o_dev_3", event="CLICK", key="CATEGORIES")
    assert "水果" in categories["text"]
    assert (await send(web_shop, openid="o_dev_3", event="CLICK", key="HELP"))["text"]
    assert (await send(web_shop, openid="o_dev_3", event="unsubscribe"))["kind"] in ("none", "text")


async def test_plain_mode_works_too(make_web_shop: ShopFactory) -> None:
    shop = await make_web_shop(wechat={"encoding_aes_key": ""})
    reply = await send(shop, openid="o_dev_plain", text="pingguo")
    assert "烟台红富士苹果" in reply["text"]


async def test_bad_requests_are_refused_with_a_reason(web_shop: Shop) -> None:
    client = web_shop.client
    cases = [
        {"openid": "o 1", "text": "hi"},
        {"openid": "", "text": "hi"},
        {"openid": "o_1"},
        {"openid": "o_1", "text": ""},
        {"openid": "o_1", "text": "x" * 10_001},
        {"openid": "o_1", "event": "CLICK"},
        {"openid": "o_1", "event": "VIEW", "key": "x"},
        {"openid": "o_1", "event": "CLICK", "key": "<script>"},
    ]
    for body in cases:
        response = await client.post("/dev/chat/send", json=body)
        assert response.status == 400, body
        assert (await response.json())["error"]
    assert (await client.post("/dev/chat/send", data="not json", headers={"Content-Type": "application/json"})).status == 400
    assert (await client.post("/dev/chat/send", json=["a"])).status == 400
    # A cross-site form can post text/plain without a preflight: refused.
    form = await client.post("/dev/chat/send", data='{"openid":"o_1","text":"hi"}', headers={"Content-Type": "text/plain"})
    assert form.status == 415


async def test_outbox_polling_returns_what_was_sent_later(web_shop: Shop) -> None:
    client, outbox = web_shop.client, web_shop.outbox
    empty = await (await client.get("/dev/chat/outbox", params={"openid": "o_dev_4", "after": "0"})).json()
    assert empty == {"messages": [], "next": 0, "memory": True}

    await outbox.send("o_dev_4", Rendered("text", text="您的订单已支付 <b>"))
    await outbox.send("o_someone_else", Rendered("text", text="not yours"))
    card = RenderedArticle(title="订单已支付", description="¥29.90", picurl="", url="https://shop.example.com/pay/x")
    await outbox.send("o_dev_4", Rendered("news", articles=(card,)))

    first = await (await client.get("/dev/chat/outbox", params={"openid": "o_dev_4", "after": "0"})).json()
    assert first["next"] == 2
    assert [m["kind"] for m in first["messages"]] == ["text", "news"]
    assert first["messages"][0]["text"] == "您的订单已支付 <b>"
    assert first["messages"][1]["articles"][0]["url"] == "https://shop.example.com/pay/x"

    later = await (await client.get("/dev/chat/outbox", params={"openid": "o_dev_4", "after": "2"})).json()
    assert later["messages"] == [] and later["next"] == 2
    await outbox.send("o_dev_4", Rendered("text", text="third"))
    later = await (await client.get("/dev/chat/outbox", params={"openid": "o_dev_4", "after": "2"})).json()
    assert [m["text"] for m in later["messages"]] == ["third"] and later["next"] == 3
    # The page starts with a huge index to learn where "now" is.
    sync = await (await client.get("/dev/chat/outbox", params={"openid": "o_dev_4", "after": "1000000000"})).json()
    assert sync == {"messages": [], "next": 3, "memory": True}


async def test_outbox_refuses_bad_parameters(web_shop: Shop) -> None:
    client = web_shop.client
    assert (await client.get("/dev/chat/outbox", params={"openid": "bad id"})).status == 400
    assert (await client.get("/dev/chat/outbox", params={"openid": "o_1", "after": "x"})).status == 400


async def test_everything_is_404_outside_development(make_web_shop: ShopFactory) -> None:
    shop = await make_web_shop(pay=REAL_PAY)
    client = shop.client
    assert (await client.get("/dev/chat")).status == 404
    assert (await client.post("/dev/chat/send", json={"openid": "o_1", "text": "hi"})).status == 404
    assert (await client.get("/dev/chat/outbox", params={"openid": "o_1"})).status == 404

"""Live drops (直播) through the real app on SQLite: customers opt in, staff go on air and
push a product at a live price, customers buy it in chat while its units fall, the live
page shows and streams the count (server-sent events), and the end gives the summary. A
stranger's /live is refused; an altered or expired page link gets 403."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import ClientResponse
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from bot.keys import CONFIG, SERVICES
from bot.web.live import make_live_token
from commerce.catalog.models import Variant
from commerce.messaging.models import Broadcast
from commerce.orders.models import Order
from commerce.promotions.models import FlashSale, LiveSession, LiveSubscriber
from commerce.staff.models import AuditEntry
from tests.bot.admin.test_orders import pay
from tests.bot.conftest import OWNER, STRANGER
from tests.bot.driver import ChatUser, Shop, db
from tests.bot.test_flash_chat import _order_no, _with_address

VIEWERS = ("o_live_fan_01", "o_live_fan_02")
LATE = "o_live_late_03"  # did not opt in


async def _product(shop: Shop) -> Variant:
    """A product of one variant dearer than 9.9 with some stock: `/live push ID 9.9` names it."""
    async with db(shop.client.app)() as session:
        for variant in (await session.scalars(select(Variant).where(Variant.stock >= 5).order_by(Variant.id))).all():
            count = len((await session.scalars(select(Variant.id).where(Variant.product_id == variant.product_id))).all())
            if count == 1 and variant.price_fen > 990:
                return variant
    raise AssertionError("the demo catalog has no such product")


async def _left(shop: Shop) -> int:
    async with db(shop.client.app)() as session:
        sale = await session.scalar(select(FlashSale).order_by(FlashSale.id.desc()).limit(1))
        assert sale is not None
        return sale.units - sale.sold - sale.held


def _cards(shop: Shop, openid: str) -> list[Any]:
    return [a for m in shop.outbox.for_user(openid) if m.kind == "news" for a in m.articles]


async def _next_event(stream: ClientResponse) -> dict[str, Any]:
    """The data of the next `state` event on an SSE stream (keepalive comments skipped)."""
    event = ""
    while True:
        line = (await asyncio.wait_for(stream.content.readline(), 5)).decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == "state":
            return dict(json.loads(line[6:]))


async def _on_air(shop: Shop) -> tuple[ChatUser, list[ChatUser], Variant, str]:
    """Two customers opted in (with addresses), the session started and a product pushed at
    9.9: (owner, viewers, variant, the page's path)."""
    owner = shop.user(OWNER)
    viewers = [shop.user(openid) for openid in VIEWERS]
    for viewer in viewers:
        await _with_address(shop, viewer)
        assert "已订阅直播" in (await viewer.say("订阅直播")).text
    assert "已经订阅过" in (await viewers[0].say("订阅直播")).text
    await _with_address(shop, shop.user(LATE))

    ask = await owner.say("/live start 晚八点直播")
    assert "晚八点直播" in ask.text and "通知 2 位" in ask.text and "确认码" in ask.text
    assert "已开始" in (await owner.say("确认")).text
    variant = await _product(shop)
    ask = await owner.say(f"/live push {variant.product_id} 9.9")
    assert "直播价 ¥9.90" in ask.text and f"限量 {variant.stock} 件" in ask.text and "确认码" in ask.text
    pushed = await owner.say("确认")
    assert "已推送到直播「晚八点直播」" in pushed.text
    await shop.client.app[SERVICES].broadcasts.drain()
    url = _cards(shop, VIEWERS[0])[-1].url
    return owner, viewers, variant, urlsplit(url).path


async def test_a_live_drop_from_start_to_summary(sqlite_staffed: Shop) -> None:
    shop = sqlite_staffed
    stranger = shop.user(STRANGER)
    refused = await stranger.say("/live start 晚八点直播")
    assert "确认码" not in refused.text and "已开始" not in refused.text
    owner, (first, second), variant, path = await _on_air(shop)
    async with db(shop.client.app)() as session:
        outcomes = (await session.scalars(select(AuditEntry.outcome).where(AuditEntry.actor == STRANGER))).all()
        assert outcomes == ["refused"]
        assert len((await session.scalars(select(LiveSubscriber))).all()) == 2

    # the opted-in customers heard of the start and got the product's card with the page's link
    for viewer in (first, second):
        started, card = _cards(shop, viewer.openid)[-2:]
        assert "直播开始了：晚八点直播" in started.title and "/live/" in started.url
        assert "直播价 ¥9.90" in card.title and "限量" in card.description and "/live/" in card.url
        assert card.picurl.startswith("https://shop.example.com/media/")
    assert _cards(shop, LATE) == []

    # customers buy in chat at the live price; the units fall
    stock = variant.stock
    bought = await first.say("抢直播")
    order_no = _order_no(bought)
    assert await _left(shop) == stock - 1
    on_air = (await second.say("直播")).articles[0]
    assert "¥9.90" in on_air.title and on_air.picurl and "/live/" in on_air.url
    _order_no(await second.say("抢直播"))
    assert await _left(shop) == stock - 2
    async with db(shop.client.app)() as session:
        order = await session.scalar(select(Order).where(Order.order_no == order_no))
        assert order is not None and order.goods_fen == 990
    await pay(shop, order_no)

    # the page: the product, its live price, the units left; a tap on the button is counted
    page = await shop.client.get(path)
    html = await page.text()
    assert page.status == 200 and "晚八点直播" in html and "¥9.90" in html and f'id="left">{stock - 2}<' in html
    assert "抢直播" in html
    assert (await shop.client.post(f"{path}/click")).status == 204

    # the end: the summary's figures
    ask = (await owner.say("/live end")).text  # restated with the figures so far, then confirmed
    assert "将结束直播" in ask and "确认码" in ask and "已付款 1 笔" in ask and "已结束" not in ask
    assert "直播已结束" not in await (await shop.client.get(path)).text()  # nothing ended before the answer
    summary = (await owner.say("确认")).text
    assert "已结束" in summary and "观看 2 次，点击购买 1 次" in summary  # the page was opened twice
    assert "下单 2 笔，已付款 1 笔，成交 ¥9.90" in summary
    assert "现在没有直播" in (await first.say("抢直播")).text
    assert "现在没有直播" in (await owner.say("/live end")).text
    assert "直播已结束" in await (await shop.client.get(path)).text()


async def test_the_page_streams_the_units_left_and_flash_lists_do_not_show_them(sqlite_staffed: Shop) -> None:
    shop = sqlite_staffed
    _owner, (first, _second), variant, path = await _on_air(shop)
    async with shop.client.get(f"{path}/events") as stream:
        assert stream.status == 200 and stream.headers["Content-Type"].startswith("text/event-stream")
        shown = await _next_event(stream)
        assert shown["on_air"] is True and shown["sale"]["left"] == variant.stock and shown["sale"]["price"] == 990
        await first.say("抢直播")
        assert (await _next_event(stream))["sale"]["left"] == variant.stock - 1
    # a live product is not among the flash sales (直播 shows it; 抢 alone does not take it)
    assert "现在没有进行中或即将开始的秒杀" in (await first.say("秒杀")).text


async def test_an_altered_or_expired_page_link_is_refused(sqlite_staffed: Shop) -> None:
    shop = sqlite_staffed
    assert "/live start" in (await shop.user(OWNER).say("/live start")).text  # no title: the usage
    assert "现在没有直播" in (await shop.user(OWNER).say("/live push FRU-APPLE-3J 9.9")).text
    assert "现在没有直播" in (await shop.user(VIEWERS[0]).say("抢直播")).text
    english = shop.user(VIEWERS[1])
    assert "No live drop right now" in (await english.say("live grab")).text
    assert "Subscribed to live drops" in (await english.say("live on")).text
    assert "notices are off" in (await english.say("live off")).text
    await shop.user(OWNER).say("/live start 晚八点直播")
    await shop.user(OWNER).say("确认")
    async with db(shop.client.app)() as session:
        session_id = await session.scalar(select(LiveSession.id))
        assert await session.scalar(select(func.count()).select_from(Broadcast)) == 0  # nobody subscribed
    assert session_id is not None
    key = shop.client.app[CONFIG].signing_key
    good = make_live_token(key=key, session_id=session_id, expires_at=datetime.now(UTC) + timedelta(hours=1))
    assert (await shop.client.get(f"/live/{good}")).status == 200
    unknown = make_live_token(key=key, session_id=session_id + 1, expires_at=datetime.now(UTC) + timedelta(hours=1))
    missing = await shop.client.get(f"/live/{unknown}")
    assert missing.status == 404 and "直播不存在" in await missing.text()
    altered = good[:-2] + ("AA" if good[-2:] != "AA" else "BB")
    expired = make_live_token(key=key, session_id=session_id, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    for token in (altered, expired, "not-a-token"):
        for request in (shop.client.get(f"/live/{token}"), shop.client.get(f"/live/{token}/events"),
                        shop.client.post(f"/live/{token}/click")):
            assert (await request).status == 403


async def test_staff_bad_input_gets_a_clear_reply(sqlite_staffed: Shop) -> None:
    owner = sqlite_staffed.user(OWNER)
    assert "直播：/live（直播）" in (await owner.say("/help")).text
    assert "/live start|push|end（直播）" in (await owner.say("/help 直播")).text
    assert "/live start" in (await owner.say("/live nonsense")).text
    assert "1 到 30 个字" in (await owner.say("/live start " + "长" * 31)).text
    assert "https://" in (await owner.say("/live start 晚八点直播 http://example.com/live")).text
    video = "https://channels.weixin.qq.com/live/abc"
    assert video in (await owner.say(f"/live start 晚八点直播 {video}")).text
    await owner.say("确认")
    assert "还在进行中" in (await owner.say("/live start 又一场")).text
    async with db(sqlite_staffed.client.app)() as session:  # two staff at the same moment: the index refuses
        session.add(LiveSession(title="又一场", status="open"))
        with pytest.raises(IntegrityError):
            await session.flush()
    status = (await owner.say("/live")).text
    page = await sqlite_staffed.client.get(urlsplit(status.split("直播页：")[1].split()[0]).path + "?lang=en")
    html = await page.text()
    assert video in html and "Watch the live video" in html and "The first product is coming up" in html
    assert "/live push" in (await owner.say("/live push FRU-APPLE-3J abc")).text
    assert "低于原价" in (await owner.say("/live push FRU-APPLE-3J 99999")).text
    assert "进行中" in (await owner.say("/live")).text

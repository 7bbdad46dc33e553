"""CustomerServiceSender: rendered replies become customer-service messages."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.chat.render import Rendered, RenderedArticle
from bot.outbound.sender import OutboundSender
from bot.wechat.api import (
    AccessTokenManager,
    CustomerServiceSender,
    ErrCode,
    MemoryTokenStore,
    StableTokenFetcher,
    WeChatClient,
    WeChatError,
)
from tests.fakes.wechat import APPID, APPSECRET, FakeWeChat


def article(n: int) -> RenderedArticle:
    return RenderedArticle(title=f"商品{n}", description=f"描述{n}", picurl=f"https://x/{n}.jpg", url=f"https://x/{n}")


@pytest.fixture
async def fake(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> tuple[FakeWeChat, str]:
    wechat = FakeWeChat()
    server = await aiohttp_server(wechat.app())
    return wechat, str(server.make_url("")).rstrip("/")


@pytest.fixture
async def sender(fake: tuple[FakeWeChat, str]) -> AsyncIterator[CustomerServiceSender]:
    async with aiohttp.ClientSession() as http:
        fetch = StableTokenFetcher(http, base_url=fake[1], appid=APPID, appsecret=APPSECRET)
        tokens = AccessTokenManager(fetch, MemoryTokenStore())
        yield CustomerServiceSender(WeChatClient(http, base_url=fake[1], tokens=tokens, backoff_base=0.001))


async def test_is_an_outbound_sender(sender: CustomerServiceSender) -> None:
    usable: OutboundSender = sender
    assert callable(usable.send)


async def test_text_becomes_a_text_message(sender: CustomerServiceSender, fake: tuple[FakeWeChat, str]) -> None:
    await sender.send("o_user", Rendered("text", text="订单已发货"))
    [sent] = fake[0].api_requests("/message/custom/send")
    assert sent.json == {"touser": "o_user", "msgtype": "text", "text": {"content": "订单已发货"}}


async def test_news_sends_its_first_article(sender: CustomerServiceSender, fake: tuple[FakeWeChat, str]) -> None:
    await sender.send("o_user", Rendered("news", articles=(article(1), article(2), article(3))))
    [sent] = fake[0].api_requests("/message/custom/send")
    assert sent.json == {
        "touser": "o_user",
        "msgtype": "news",
        "news": {"articles": [{"title": "商品1", "description": "描述1", "url": "https://x/1", "picurl": "https://x/1.jpg"}]},
    }


@pytest.mark.parametrize("message", [Rendered("transfer"), Rendered("silence"), Rendered("news"), Rendered("text")])
async def test_nothing_to_say_sends_nothing(
    sender: CustomerServiceSender, fake: tuple[FakeWeChat, str], message: Rendered
) -> None:
    await sender.send("o_user", message)
    assert fake[0].received == []


async def test_wechat_errors_reach_the_caller(sender: CustomerServiceSender, fake: tuple[FakeWeChat, str]) -> None:
    fake[0].refuse("o_quiet", ErrCode.WINDOW_CLOSED)
    with pytest.raises(WeChatError) as caught:
        await sender.send("o_quiet", Rendered("text", text="还在吗？"))
    assert caught.value.errcode == ErrCode.WINDOW_CLOSED

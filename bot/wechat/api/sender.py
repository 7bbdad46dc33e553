"""`OutboundSender` over WeChat customer-service messages (the 48-hour window)."""

from __future__ import annotations

from bot.chat.render import Rendered
from bot.wechat.api.client import MAX_NEWS_ARTICLES, WeChatClient


class CustomerServiceSender:
    """text -> text message, news -> its first article; transfer and silence send nothing.

    `WeChatError` (window closed, over quota, unsubscribed...) propagates as is: the
    caller decides on a fallback (e.g. a template message).
    """

    def __init__(self, client: WeChatClient) -> None:
        self._client = client

    async def send(self, openid: str, message: Rendered) -> None:
        if message.kind == "text":
            if message.text:
                await self._client.send_text(openid, message.text)
        elif message.kind == "news":
            if message.articles:
                await self._client.send_news(openid, message.articles[:MAX_NEWS_ARTICLES])

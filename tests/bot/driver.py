"""Drive the real app the way WeChat does: signed XML in over HTTP, XML out."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Config
from bot.devtools.simulator import Reply, WebhookClient, build_message_xml, sign
from bot.keys import DELIVERY, ENGINE, INBOX
from bot.outbound.sender import MemoryOutbox
from commerce.wiring import shop_sessions

AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
ACCOUNT = "gh_test_account"
_msg_ids = itertools.count(10_000_000)


@dataclass
class ChatUser:
    """One customer chatting with the shop through the signed webhook."""

    client: TestClient
    config: Config
    openid: str
    aes: bool | None = None  # None: encrypted whenever the shop can decrypt, as WeChat does
    sent: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.aes is None:
            self.aes = self.config.message_mode != "plain"

    def _webhook(self) -> WebhookClient:
        return WebhookClient(
            url=str(self.client.make_url("/wechat")),
            token=self.config.wechat.token,
            appid=self.config.wechat.appid,
            encoding_aes_key=self.config.wechat.encoding_aes_key,
            aes=bool(self.aes),
            session=self.client.session,
        )

    def xml(self, kind: str, *, msg_id: int | None = None, create_time: int | None = None, **fields: Any) -> str:
        if kind != "event" and msg_id is None:
            msg_id = next(_msg_ids)
        return build_message_xml(
            to_user=ACCOUNT,
            from_user=self.openid,
            kind=kind,
            create_time=create_time or int(time.time()),
            msg_id=msg_id,
            **fields,
        )

    async def send(self, xml: str) -> Reply:
        """The reply; what the turn told customers through the outbox has had its first attempt."""
        self.sent.append(xml)
        reply = await self._webhook().send(xml)
        if DELIVERY in self.client.app:
            await self.client.app[DELIVERY].drain()
        return reply

    async def say(self, text: str) -> Reply:
        return await self.send(self.xml("text", content=text))

    async def event(self, event: str, key: str | None = None, **fields: Any) -> Reply:
        extra = {"event_key": key} if key is not None else {}
        return await self.send(self.xml("event", event=event, **extra, **fields))


def signed_params(token: str, **extra: str) -> dict[str, str]:
    timestamp, nonce = str(int(time.time())), secrets.token_hex(6)  # a fresh triple each time, like WeChat
    return {"signature": sign(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce, **extra}


@dataclass
class Shop:
    client: TestClient
    config: Config
    outbox: MemoryOutbox

    def user(self, openid: str = "o_customer_1", *, aes: bool | None = None) -> ChatUser:
        return ChatUser(self.client, self.config, openid, aes=aes)


def slow_turns(shop: Shop, seconds: float) -> None:
    """Every turn of the shop takes `seconds` longer from now on (a slow database, a busy worker)."""
    inbox = shop.client.app[INBOX]
    original = inbox.respond

    async def slow(msg: Any) -> Any:
        await asyncio.sleep(seconds)
        return await original(msg)

    inbox.respond = slow


def db(app: web.Application) -> async_sessionmaker[AsyncSession]:
    """Sessions on the shop's own database, for a test to set up or look at what it checks
    (the shop itself only works through units of work)."""
    return shop_sessions(app[ENGINE])

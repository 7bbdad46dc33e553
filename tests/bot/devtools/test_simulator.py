"""The terminal chat simulator, checked against a fake webhook that verifies like WeChat's peers.

The fake uses wechatpy (not the simulator's code) to check signatures, decrypt
requests and build and encrypt its replies, so both sides are checked independently.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.replies import ArticlesReply, BaseReply, TextReply
from wechatpy.utils import check_signature

from bot.devtools.simulator import (
    Article,
    Reply,
    SimulatorError,
    WebhookClient,
    build_message_xml,
    format_reply,
    run_chat,
    sign,
)

TOKEN = "test-token"
APPID = "wx_test_appid"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
OPENID = "o_simulated_user"

Responder = Callable[[Any], "BaseReply | str"]


def echo(message: Any) -> BaseReply:
    """Answer every message with a text describing what arrived."""
    detail = {
        "text": lambda: message.content,
        "voice": lambda: message.recognition,
        "event": lambda: f"{message.event}:{getattr(message, 'key', '')}",
    }.get(message.type, lambda: "")()
    return TextReply(message=message, content=f"got {message.type} {detail}".strip())


def news(message: Any) -> BaseReply:
    """Answer with a news reply of two articles."""
    reply = ArticlesReply(message=message)
    reply.add_article(
        {
            "title": "红富士苹果",
            "description": "脆甜多汁 ¥12.80",
            "image": "http://img/a.jpg",
            "url": "http://shop/p/1",
        }
    )
    reply.add_article(
        {
            "title": "Gala apples",
            "description": "Crisp",
            "image": "http://img/b.jpg",
            "url": "http://shop/p/2",
        }
    )
    return reply


@dataclass
class FakeWeChatPeer:
    """A webhook that authenticates requests with wechatpy and records what it got."""

    responder: Responder = echo
    tamper: bool = False
    plain_reply_to_aes: bool = False
    received: list[Any] = field(default_factory=list)
    queries: list[dict[str, str]] = field(default_factory=list)
    bodies: list[str] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        body = await request.text()
        self.queries.append(query)
        self.bodies.append(body)
        try:
            check_signature(TOKEN, query["signature"], query["timestamp"], query["nonce"])
            xml = self._plain_xml(query, body)
        except (InvalidSignatureException, KeyError):
            return web.Response(status=403, text="forbidden")
        message = parse_message(xml)
        self.received.append(message)
        answer = self.responder(message)
        rendered = answer if isinstance(answer, str) else answer.render()
        if query.get("encrypt_type") == "aes" and not isinstance(answer, str):
            rendered = self._encrypt(rendered, query)
        return web.Response(text=rendered, content_type="application/xml")

    def _plain_xml(self, query: dict[str, str], body: str) -> str:
        if query.get("encrypt_type") != "aes":
            return body
        crypto = WeChatCrypto(TOKEN, AES_KEY, APPID)
        return crypto.decrypt_message(
            body, query["msg_signature"], query["timestamp"], query["nonce"]
        )

    def _encrypt(self, rendered: str, query: dict[str, str]) -> str:
        if self.plain_reply_to_aes:
            return rendered
        envelope = WeChatCrypto(TOKEN, AES_KEY, APPID).encrypt_message(
            rendered, query["nonce"], query["timestamp"]
        )
        if self.tamper:
            envelope = envelope.replace("<MsgSignature><![CDATA[", "<MsgSignature><![CDATA[0")
        return envelope


@pytest.fixture
def peer() -> FakeWeChatPeer:
    return FakeWeChatPeer()


@pytest.fixture
async def webhook_url(aiohttp_server: Any, peer: FakeWeChatPeer) -> str:
    app = web.Application()
    app.router.add_post("/wechat", peer.handle)
    server = await aiohttp_server(app)
    return str(server.make_url("/wechat"))


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


def client_for(url: str, session: aiohttp.ClientSession, *, aes: bool, lean: bool = False) -> WebhookClient:
    return WebhookClient(
        url=url, token=TOKEN, appid=APPID, encoding_aes_key=AES_KEY, aes=aes, session=session, lean=lean
    )


def text_xml(content: str) -> str:
    return build_message_xml(
        to_user=APPID,
        from_user=OPENID,
        kind="text",
        create_time=1700000000,
        msg_id=42,
        content=content,
    )


# --------------------------------------------------------------------------- sign / XML


def test_sign_matches_wechatpy_and_ignores_order() -> None:
    signature = sign(TOKEN, "1700000000", "123456")
    check_signature(TOKEN, signature, "1700000000", "123456")  # raises when wrong
    assert sign(TOKEN, "123456", "1700000000") == signature
    assert sign(TOKEN, "1700000000", "123457") != signature


def test_build_message_xml_round_trips_through_wechatpy() -> None:
    tricky = "a ]]> b <c> & 苹果"
    message = parse_message(text_xml(tricky))
    assert (message.type, message.content, message.id) == ("text", tricky, 42)
    assert (message.source, message.target, message.create_time.year) == (OPENID, APPID, 2023)


def test_build_message_xml_event_and_location() -> None:
    event = parse_message(
        build_message_xml(
            to_user=APPID,
            from_user=OPENID,
            kind="event",
            create_time=1,
            msg_id=None,
            event="CLICK",
            event_key="HOT",
        )
    )
    assert (event.type, event.event, event.key) == ("event", "click", "HOT")
    xml = build_message_xml(
        to_user=APPID,
        from_user=OPENID,
        kind="location",
        create_time=1,
        msg_id=7,
        location_x=31.23,
        location_y=121.47,
        scale=15,
        label="Shanghai",
    )
    location = parse_message(xml)
    assert location.location == ("31.23", "121.47")
    assert (location.scale, location.label) == ("15", "Shanghai")
    assert "<Location_X>31.23</Location_X>" in xml


def test_build_message_xml_rejects_unknown_field() -> None:
    with pytest.raises(TypeError, match="contnet"):
        build_message_xml(
            to_user=APPID, from_user=OPENID, kind="text", create_time=1, msg_id=1, contnet="x"
        )


# --------------------------------------------------------------------------- WebhookClient


@pytest.mark.parametrize("lean", [False, True], ids=["aiohttp", "lean"])
@pytest.mark.parametrize("aes", [False, True], ids=["plain", "safe"])
async def test_send_is_signed_like_wechat(
    webhook_url: str, peer: FakeWeChatPeer, session: aiohttp.ClientSession, aes: bool, lean: bool
) -> None:
    reply = await client_for(webhook_url, session, aes=aes, lean=lean).send(text_xml("你好"))

    assert reply == Reply(kind="text", text="got text 你好")
    [message] = peer.received
    assert (message.content, message.source) == ("你好", OPENID)
    [query] = peer.queries
    assert query["openid"] == OPENID
    assert ("msg_signature" in query, query.get("encrypt_type")) == (aes, "aes" if aes else None)
    assert ("你好" in peer.bodies[0]) is not aes  # safe mode never sends plain text


async def test_safe_mode_body_has_to_user_and_encrypt(
    webhook_url: str, peer: FakeWeChatPeer, session: aiohttp.ClientSession
) -> None:
    await client_for(webhook_url, session, aes=True).send(text_xml("hi"))
    body = peer.bodies[0]
    assert body.startswith(f"<xml><ToUserName><![CDATA[{APPID}]]></ToUserName><Encrypt>")


async def test_tampered_reply_signature_is_rejected(
    webhook_url: str, peer: FakeWeChatPeer, session: aiohttp.ClientSession
) -> None:
    peer.tamper = True
    with pytest.raises(SimulatorError, match="MsgSignature"):
        await client_for(webhook_url, session, aes=True).send(text_xml("hi"))


async def test_plain_reply_to_safe_mode_request_is_rejected(
    webhook_url: str, peer: FakeWeChatPeer, session: aiohttp.ClientSession
) -> None:
    peer.plain_reply_to_aes = True
    with pytest.raises(SimulatorError, match="plain-text reply"):
        await client_for(webhook_url, session, aes=True).send(text_xml("hi"))


async def test_wrong_token_gives_clear_status_error(
    webhook_url: str, session: aiohttp.ClientSession
) -> None:
    client = WebhookClient(
        url=webhook_url,
        token="wrong",
        appid=APPID,
        encoding_aes_key="",
        aes=False,
        session=session,
    )
    with pytest.raises(SimulatorError, match="HTTP 403"):
        await client.send(text_xml("hi"))
    client.lean = True
    with pytest.raises(SimulatorError, match="HTTP 403"):
        await client.send(text_xml("hi"))


async def test_success_means_no_reply(
    webhook_url: str, peer: FakeWeChatPeer, session: aiohttp.ClientSession
) -> None:
    peer.responder = lambda message: "success"
    reply = await client_for(webhook_url, session, aes=True).send(text_xml("hi"))
    assert reply.kind == "none"
    assert format_reply(reply) == "(no reply)"
    assert len(peer.received) == 1


@pytest.mark.parametrize("aes", [False, True], ids=["plain", "safe"])
async def test_news_reply_is_decoded_and_boxed(
    webhook_url: str, peer: FakeWeChatPeer, session: aiohttp.ClientSession, aes: bool
) -> None:
    peer.responder = news
    reply = await client_for(webhook_url, session, aes=aes).send(text_xml("苹果"))

    assert reply.kind == "news"
    assert reply.articles[0] == Article(
        title="红富士苹果",
        description="脆甜多汁 ¥12.80",
        picurl="http://img/a.jpg",
        url="http://shop/p/1",
    )
    shown = format_reply(reply)
    for expected in (
        "红富士苹果",
        "Gala apples",
        "1/2",
        "2/2",
        "http://img/b.jpg",
        "http://shop/p/1",
    ):
        assert expected in shown


def test_invalid_aes_key_is_refused_up_front() -> None:
    with pytest.raises(SimulatorError, match="encoding_aes_key"):
        WebhookClient(
            url="http://x",
            token=TOKEN,
            appid=APPID,
            encoding_aes_key="short",
            aes=True,
            session=None,  # type: ignore[arg-type]
        )


# --------------------------------------------------------------------------- format_reply


def test_format_reply_text_is_shown_as_is() -> None:
    assert format_reply(Reply(kind="text", text="第一行\n  second")) == "第一行\n  second"


def test_format_reply_transfer_mentions_customer_service() -> None:
    assert "customer service" in format_reply(Reply(kind="transfer_customer_service"))


def test_format_reply_box_aligns_wide_characters() -> None:
    card = format_reply(Reply(kind="news", articles=[Article(title="苹果 apple", url="http://u")]))
    widths = {
        sum(2 if "\u4e00" <= ch <= "\u9fff" else 1 for ch in line) for line in card.splitlines()
    }
    assert len(widths) == 1, card
    assert "1/1" not in card  # a single card is not numbered


# --------------------------------------------------------------------------- run_chat


def kinds(peer: FakeWeChatPeer) -> list[tuple[str, str]]:
    """What the peer received, as (type, detail) pairs."""
    result = []
    for message in peer.received:
        detail = {
            "text": lambda m: m.content,
            "voice": lambda m: m.recognition,
            "event": lambda m: f"{m.event}:{getattr(m, 'key', '') or ''}",
        }[message.type](message)
        result.append((message.type, detail))
    return result


@pytest.mark.parametrize("aes", [False, True], ids=["plain", "safe"])
async def test_run_chat_sends_the_script(webhook_url: str, peer: FakeWeChatPeer, aes: bool) -> None:
    out = io.StringIO()
    script = ["!click HOT", "!voice 苹果", "我想买水果", "", "/quit", "never sent"]

    await run_chat(
        url=webhook_url,
        token=TOKEN,
        appid=APPID,
        encoding_aes_key=AES_KEY,
        openid=OPENID,
        aes=aes,
        lines=script,
        out=out,
    )

    assert kinds(peer) == [
        ("event", "subscribe:"),
        ("event", "click:HOT"),
        ("voice", "苹果"),
        ("text", "我想买水果"),
    ]
    msg_ids = [m.id for m in peer.received if m.type != "event"]
    assert len(set(msg_ids)) == 2 and all(msg_ids)
    assert all(m.source == OPENID for m in peer.received)
    assert all(("msg_signature" in q) is aes for q in peer.queries)
    shown = out.getvalue()
    assert webhook_url in shown and OPENID in shown
    assert ("safe mode" in shown) is aes
    for reply in (
        "got event subscribe:",
        "got event click:HOT",
        "got voice 苹果",
        "got text 我想买水果",
    ):
        assert reply in shown
    assert "never sent" not in shown


async def test_run_chat_commands_and_async_lines(webhook_url: str, peer: FakeWeChatPeer) -> None:
    async def lines() -> AsyncIterator[str]:
        for line in [
            "!subscribe invite_7",
            "!scan group_9",
            "!location 31.2 121.5",
            "!image",
            "!link http://a.cn Title",
            "!unsubscribe",
            "!!hi",
            "!help",
            "!bogus",
            "!click",
        ]:
            yield line

    out = io.StringIO()
    await run_chat(
        url=webhook_url,
        token=TOKEN,
        appid=APPID,
        encoding_aes_key=AES_KEY,
        openid=OPENID,
        aes=False,
        lines=lines(),
        out=out,
    )

    received = peer.received
    assert [m.type for m in received] == [
        "event",
        "event",
        "event",
        "location",
        "image",
        "link",
        "event",
        "text",
    ]
    assert (received[1].event, received[1].scene_id) == ("subscribe_scan", "invite_7")
    assert (received[2].event, received[2].scene_id) == ("scan", "group_9")
    assert received[3].location == ("31.2", "121.5")
    assert received[4].media_id
    assert (received[5].url, received[5].title) == ("http://a.cn", "Title")
    assert received[6].event == "unsubscribe"
    assert received[7].content == "!hi"
    shown = out.getvalue()
    assert "!voice TEXT" in shown  # the help
    assert "unknown command !bogus" in shown
    assert "usage: !click KEY" in shown


async def test_run_chat_survives_network_errors(closed_port: int) -> None:
    out = io.StringIO()
    await run_chat(
        url=f"http://127.0.0.1:{closed_port}/wechat",
        token=TOKEN,
        appid=APPID,
        encoding_aes_key="",
        openid=OPENID,
        aes=False,
        lines=["one", "two"],
        out=out,
    )
    errors = [line for line in out.getvalue().splitlines() if "cannot reach the server" in line]
    assert len(errors) == 3  # the subscribe and both lines, the REPL going on after each


@pytest.fixture
def closed_port() -> Iterator[int]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield port

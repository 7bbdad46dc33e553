"""The WeChat edge: verification, modes, signatures, limits, de-duplication, deadline."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.devtools.simulator import sign
from bot.keys import INBOX, SERVICES
from bot.wechat.inbox import Inbox
from bot.wechat.webhook import QUEUED_AT_MOST_SECONDS, sent_at
from tests.bot.driver import ACCOUNT, Shop, db, signed_params, slow_turns


async def test_get_verification_echoes_echostr(sqlite_shop: Shop) -> None:
    params = signed_params(sqlite_shop.config.wechat.token, echostr="hello-echo")
    resp = await sqlite_shop.client.get("/wechat", params=params)
    assert resp.status == 200
    assert await resp.text() == "hello-echo"


async def test_get_verification_with_bad_signature_is_forbidden(sqlite_shop: Shop) -> None:
    params = signed_params(sqlite_shop.config.wechat.token, echostr="hello-echo")
    params["signature"] = "0" * 40
    resp = await sqlite_shop.client.get("/wechat", params=params)
    assert resp.status == 403
    assert "hello-echo" not in await resp.text()


@pytest.fixture
async def plain_shop(make_shop, sqlite_url: str) -> Shop:  # type: ignore[no-untyped-def]
    """A shop in plain mode (no EncodingAESKey): plaintext bodies reach the parser."""
    return await make_shop(sqlite_url, wechat={"encoding_aes_key": ""})


@pytest.mark.parametrize("mode", ["plain", "safe"])
async def test_text_message_round_trip(make_shop, db_url: str, mode: str) -> None:  # type: ignore[no-untyped-def]
    shop = await make_shop(db_url, **({"wechat": {"encoding_aes_key": ""}} if mode == "plain" else {}))
    assert shop.config.message_mode == mode
    reply = await shop.user().say("苹果")
    assert reply.kind == "text"
    assert "烟台红富士苹果" in reply.text


async def test_compatible_mode_body_with_plaintext_and_encrypt(sqlite_shop: Shop) -> None:
    """Compatible mode sends the plaintext fields and Encrypt; the encrypted part is the truth."""
    user = sqlite_shop.user(aes=True)
    plain = user.xml("text", content="苹果")
    from wechatpy.crypto import PrpCrypto

    from bot.wechat.protocol import aes_key

    encrypt = PrpCrypto(aes_key(sqlite_shop.config.wechat.encoding_aes_key)).encrypt(
        plain, sqlite_shop.config.wechat.appid
    ).decode()
    body = plain.replace("</xml>", f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>")
    params = signed_params(sqlite_shop.config.wechat.token, encrypt_type="aes")
    params["msg_signature"] = sign(sqlite_shop.config.wechat.token, params["timestamp"], params["nonce"], encrypt)
    resp = await sqlite_shop.client.post("/wechat", params=params, data=body.encode())
    assert resp.status == 200
    answer = await resp.text()
    assert "<Encrypt>" in answer and "<MsgSignature>" in answer


async def _post(shop: Shop, body: bytes, **params: str) -> tuple[int, str]:
    resp = await shop.client.post("/wechat", params=params, data=body)
    return resp.status, await resp.text()


async def _messages_seen(shop: Shop) -> int:
    from sqlalchemy import func, select

    from commerce.customers.models import Customer

    async with db(shop.client.app)() as session:
        return await session.scalar(select(func.count()).select_from(Customer)) or 0


async def test_wrong_signature_is_403_and_touches_nothing(sqlite_shop: Shop) -> None:
    body = sqlite_shop.user().xml("text", content="苹果").encode()
    params = signed_params("not-the-token")
    status, text = await _post(sqlite_shop, body, **params)
    assert status == 403
    assert "苹果" not in text
    assert await _messages_seen(sqlite_shop) == 0


async def test_missing_signature_is_403(sqlite_shop: Shop) -> None:
    body = sqlite_shop.user().xml("text", content="苹果").encode()
    status, _ = await _post(sqlite_shop, body, timestamp="1", nonce="2")
    assert status == 403


async def test_wrong_msg_signature_is_403(sqlite_shop: Shop) -> None:
    user = sqlite_shop.user(aes=True)
    from wechatpy.crypto import PrpCrypto

    from bot.wechat.protocol import aes_key

    encrypt = PrpCrypto(aes_key(sqlite_shop.config.wechat.encoding_aes_key)).encrypt(
        user.xml("text", content="苹果"), sqlite_shop.config.wechat.appid
    ).decode()
    params = signed_params(sqlite_shop.config.wechat.token, encrypt_type="aes", msg_signature="f" * 40)
    body = f"<xml><ToUserName>{ACCOUNT}</ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    status, _ = await _post(sqlite_shop, body.encode(), **params)
    assert status == 403
    assert await _messages_seen(sqlite_shop) == 0


async def test_tampered_encrypted_body_is_403(sqlite_shop: Shop) -> None:
    """The signature covers the Encrypt text: changing one character breaks it."""
    user = sqlite_shop.user(aes=True)
    from wechatpy.crypto import PrpCrypto

    from bot.wechat.protocol import aes_key

    token = sqlite_shop.config.wechat.token
    encrypt = PrpCrypto(aes_key(sqlite_shop.config.wechat.encoding_aes_key)).encrypt(
        user.xml("text", content="苹果"), sqlite_shop.config.wechat.appid
    ).decode()
    params = signed_params(token, encrypt_type="aes")
    params["msg_signature"] = sign(token, params["timestamp"], params["nonce"], encrypt)
    tampered = ("B" if encrypt[10] != "B" else "C").join((encrypt[:10], encrypt[11:]))
    body = f"<xml><Encrypt><![CDATA[{tampered}]]></Encrypt></xml>"
    status, _ = await _post(sqlite_shop, body.encode(), **params)
    assert status == 403


async def test_plain_body_tampering_cannot_pass_the_plain_signature_in_safe_mode(sqlite_shop: Shop) -> None:
    """A safe-mode request without msg_signature is refused, not treated as plain."""
    body = sqlite_shop.user().xml("text", content="苹果").encode()
    params = signed_params(sqlite_shop.config.wechat.token, encrypt_type="aes")
    status, _ = await _post(sqlite_shop, body, **params)
    assert status == 403


async def test_oversize_body_is_413(sqlite_shop: Shop) -> None:
    big = sqlite_shop.user().xml("text", content="苹" * 40_000).encode()
    params = signed_params(sqlite_shop.config.wechat.token)
    status, _ = await _post(sqlite_shop, big, **params)
    assert status == 413
    assert await _messages_seen(sqlite_shop) == 0


async def test_doctype_and_entities_are_refused(plain_shop: Shop) -> None:
    sqlite_shop = plain_shop
    body = (
        b'<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY lol "lol">]>'
        b"<xml><ToUserName>a</ToUserName><FromUserName>o_x</FromUserName><CreateTime>1</CreateTime>"
        b"<MsgType>text</MsgType><Content>&lol;</Content><MsgId>1</MsgId></xml>"
    )
    status, text = await _post(sqlite_shop, body, **signed_params(sqlite_shop.config.wechat.token))
    assert status == 400
    assert "DTD" in text
    assert await _messages_seen(sqlite_shop) == 0


@pytest.mark.parametrize(
    "body",
    [b"not xml at all", b"<xml><ToUserName>a</ToUserName>", b"<xml><MsgType>text</MsgType></xml>", b""],
    ids=["garbage", "truncated", "no-sender", "empty"],
)
async def test_malformed_xml_gets_400_not_500(plain_shop: Shop, body: bytes) -> None:
    status, _ = await _post(plain_shop, body, **signed_params(plain_shop.config.wechat.token))
    assert status == 400


async def test_stale_timestamp_is_refused_by_default(plain_shop: Shop) -> None:
    """The window is on unless configured off: a signature copied an hour ago is dead."""
    shop = plain_shop
    assert shop.config.wechat.max_clock_skew_seconds == 300
    user = shop.user()
    body = user.xml("text", content="苹果").encode()
    old = str(int(time.time()) - 3600)
    token = shop.config.wechat.token
    params = {"signature": sign(token, old, "n"), "timestamp": old, "nonce": "n"}
    status, _ = await _post(shop, body, **params)
    assert status == 403
    assert (await user.say("苹果")).kind == "text"


async def test_retry_of_one_msgid_is_processed_once_and_gets_the_same_reply(shop: Shop) -> None:
    user = shop.user()
    await user.say("苹果")  # a list is open: "2" picks its second product
    xml = user.xml("text", content="2", msg_id=424242)
    first = await user.send(xml)
    again = await user.send(xml)
    assert first.kind == "news"
    assert again.kind == "news"
    assert [a.title for a in again.articles] == [a.title for a in first.articles]


async def test_concurrent_retries_while_the_first_is_still_running(sqlite_shop: Shop) -> None:
    """Three copies of one message arrive at once: one is processed, all get its reply."""
    inbox: Inbox = sqlite_shop.client.app[INBOX]
    calls = 0
    original = inbox.respond

    async def slow_respond(msg):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.3)
        return await original(msg)

    inbox.respond = slow_respond
    user = sqlite_shop.user()
    xml = user.xml("text", content="龙井", msg_id=777)
    replies = await asyncio.gather(*(user.send(xml) for _ in range(3)))
    assert calls == 1
    assert {r.text for r in replies} == {replies[0].text}
    assert "龙井" in replies[0].text


async def test_event_retries_are_deduplicated_on_sender_time_and_event(sqlite_shop: Shop) -> None:
    inbox: Inbox = sqlite_shop.client.app[INBOX]
    calls = 0
    original = inbox.respond

    async def counting(msg):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        return await original(msg)

    inbox.respond = counting
    user = sqlite_shop.user()
    xml = user.xml("event", event="subscribe", create_time=1_700_000_000)
    first, again = await user.send(xml), await user.send(xml)
    assert calls == 1
    assert first.text == again.text and "欢迎" in first.text


async def test_messages_of_one_user_are_handled_in_order(sqlite_shop: Shop) -> None:
    inbox: Inbox = sqlite_shop.client.app[INBOX]
    order: list[str] = []
    running = 0
    original = inbox.respond

    async def tracking(msg):  # type: ignore[no-untyped-def]
        nonlocal running
        running += 1
        assert running == 1, "two messages of one user ran at the same time"
        order.append(msg.text)
        await asyncio.sleep(0.05 if msg.text == "一" else 0)
        try:
            return await original(msg)
        finally:
            running -= 1

    inbox.respond = tracking
    user = sqlite_shop.user()
    tasks = []
    for text in ["一", "二", "三", "四"]:
        tasks.append(asyncio.create_task(user.say(text)))
        await asyncio.sleep(0.01)  # arrival order
    await asyncio.gather(*tasks)
    assert order == ["一", "二", "三", "四"]


async def test_reply_past_the_deadline_goes_out_later_exactly_once(make_shop, sqlite_url: str) -> None:
    shop = await make_shop(sqlite_url, server={"reply_deadline_seconds": 0.5})
    inbox: Inbox = shop.client.app[INBOX]
    slow_turns(shop, 0.9)
    user = shop.user()
    xml = user.xml("text", content="苹果", msg_id=9001)
    first = await user.send(xml)
    assert first.kind == "none"  # "success": the reply comes later
    retry = await user.send(xml)  # WeChat's retry while the work goes on
    assert retry.kind == "none"
    delivered = await shop.outbox.wait_for(user.openid, 1, timeout=5)
    assert len(delivered) == 1 and "烟台红富士苹果" in delivered[0].text
    third = await user.send(xml)
    assert third.kind == "none"
    await inbox.drain()
    assert len(shop.outbox.for_user(user.openid)) == 1


@pytest.mark.sqlite_only
async def test_the_time_a_request_waited_before_its_handler_counts_against_the_deadline(
    make_shop, sqlite_url: str  # type: ignore[no-untyped-def]
) -> None:
    """Thousands of connections at a sale's opening second wait in the listen queue before
    their handler starts. WeChat's 5 seconds started when it sent the request, as its signed
    timestamp says: a reply the handler's own clock still had time for went out after WeChat
    had stopped waiting. The same slow turn is answered directly when the request is fresh."""
    shop = await make_shop(sqlite_url, wechat={"encoding_aes_key": ""}, server={"reply_deadline_seconds": 1.5})
    await shop.client.app[SERVICES].catalog.snapshot()  # loaded: the first search would wait for it
    inbox: Inbox = shop.client.app[INBOX]
    slow_turns(shop, 0.9)
    token = shop.config.wechat.token

    async def post(openid: str, msg_id: int, sent: int) -> str:
        user = shop.user(openid, aes=False)
        nonce = f"n{msg_id}"
        params = {"signature": sign(token, str(sent), nonce), "timestamp": str(sent), "nonce": nonce, "openid": openid}
        response = await shop.client.post("/wechat", params=params, data=user.xml("text", content="苹果", msg_id=msg_id))
        assert response.status == 200
        return await response.text()

    fresh = await post("o_fresh", 7101, int(time.time()))
    assert "烟台红富士苹果" in fresh  # 0.9 s of a 1.5 s deadline: answered directly
    queued = await post("o_queued", 7102, int(time.time()) - 2)  # it waited at least a second more
    assert queued == "success"  # the deadline had passed for WeChat: the reply goes as a message
    [later] = await shop.outbox.wait_for("o_queued", 1, timeout=5)
    assert "烟台红富士苹果" in later.text
    await inbox.drain()


def test_a_requests_wait_counts_beyond_its_timestamps_own_second_and_at_most_three_seconds() -> None:
    started, wall = 100.0, 1_700_000_010.5
    assert sent_at(started, wall, "1700000010") == started  # sent within this second: nothing known
    assert sent_at(started, wall, "1700000009") == pytest.approx(started - 0.5)  # sent by 1700000010 at the latest
    assert sent_at(started, wall, "1700000008") == pytest.approx(started - 1.5)
    assert sent_at(started, wall, "1700000000") == started - QUEUED_AT_MOST_SECONDS  # a clock running ahead
    assert sent_at(started, wall, "1700000020") == started  # from the future: nothing spent
    assert sent_at(started, wall, "soon") == started


async def test_healthz_and_metrics(sqlite_shop: Shop) -> None:
    await sqlite_shop.user().say("苹果")
    assert (await sqlite_shop.client.get("/healthz")).status == 200
    metrics = await (await sqlite_shop.client.get("/metrics")).text()
    assert 'storefront_messages_total{event="",kind="text"} 1.0' in metrics


async def test_unsubscribe_is_answered_with_success_only(sqlite_shop: Shop) -> None:
    """Nobody can read a reply after unfollowing: the webhook answers plain "success"."""
    reply = await sqlite_shop.user().event("unsubscribe")
    assert reply.kind == "none"


async def test_safe_mode_request_when_no_key_is_configured_is_403(make_shop, sqlite_url: str) -> None:
    shop = await make_shop(sqlite_url, wechat={"encoding_aes_key": ""})
    token = shop.config.wechat.token
    params = signed_params(token, encrypt_type="aes")
    params["msg_signature"] = sign(token, params["timestamp"], params["nonce"], "QUJD")
    status, _ = await _post(shop, b"<xml><Encrypt><![CDATA[QUJD]]></Encrypt></xml>", **params)
    assert status == 403

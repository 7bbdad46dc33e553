"""`/wechat`: the authenticated edge between WeChat's servers and the bot.

GET answers WeChat's URL verification. POST authenticates first, on the raw body, and
only then decrypts and parses:

1. the message mode (`Config.message_mode`) says which requests may come at all: a
   safe-mode shop refuses plaintext (no downgrade), a plain-mode shop refuses
   encrypted ones; compatible mode takes both but marks plaintext `downgraded`;
2. the signature: `msg_signature` over (token, timestamp, nonce, Encrypt) for an
   encrypted request (the plain `signature`, when sent too, must agree), `signature`
   over (token, timestamp, nonce) for plaintext;
3. the timestamp is within `wechat.max_clock_skew_seconds` of our clock;
4. the replay cache (`bot.wechat.replay`): a triple already seen with another body is a forgery.

Anything refused gets 403 (413 too large, 400 malformed) and touches nothing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from aiohttp import web

from bot import logs
from bot.chat.render import Rendered, to_xml
from bot.config import Config
from bot.keys import CONFIG, INBOX, METRICS, REPLAY
from bot.wechat import protocol
from bot.wechat.inbox import NotRecorded
from bot.wechat.protocol import ProtocolError, SignatureError, StaleTimestamp
from bot.wechat.replay import Seen, body_digest, triple_key, ttl_for

log = logging.getLogger(__name__)


class Refused(Exception):
    """A request refused before anything reads it; `reason` is a /metrics label."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def verify(request: web.Request) -> web.Response:
    wechat = request.app[CONFIG].wechat
    q = request.query
    timestamp, nonce = q.get("timestamp", ""), q.get("nonce", "")
    try:
        protocol.check_signature(q.get("signature"), wechat.token, timestamp, nonce)
        protocol.check_freshness(timestamp, max_skew=wechat.max_clock_skew_seconds)
    except SignatureError:
        return web.Response(status=403, text="forbidden")
    return web.Response(text=q.get("echostr", ""))


async def _read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    body = await request.content.read(limit + 1)
    if len(body) > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
    return body


async def _authenticate(request: web.Request, config: Config, body: bytes) -> tuple[bytes, bool]:
    """The message XML of a request proven to come from WeChat, and whether it was encrypted.

    Raises `Refused` (403) or `ProtocolError` (400).
    """
    wechat, q = config.wechat, request.query
    mode = config.message_mode
    timestamp, nonce = q.get("timestamp", ""), q.get("nonce", "")
    encrypted = q.get("encrypt_type", "raw").lower() == "aes"
    try:
        if encrypted:
            if mode == "plain":
                raise Refused("not_configured")  # no key: we could not read it anyway
            encrypt = protocol.extract_encrypt(body)
            signed = q.get("msg_signature", "")
            protocol.check_signature(signed, wechat.token, timestamp, nonce, encrypt)
            if "signature" in q:  # real WeChat sends both; one that disagrees is not WeChat's
                protocol.check_signature(q.get("signature"), wechat.token, timestamp, nonce)
        else:
            if mode == "safe":
                raise Refused("plaintext")  # a downgrade: safe mode means every body is signed
            signed = q.get("signature", "")
            protocol.check_signature(signed, wechat.token, timestamp, nonce)
        protocol.check_freshness(timestamp, max_skew=wechat.max_clock_skew_seconds)
    except StaleTimestamp:
        raise Refused("stale") from None
    except SignatureError:
        raise Refused("signature") from None
    seen = await request.app[REPLAY].check(
        triple_key(timestamp, nonce, signed), body_digest(body),
        ttl_seconds=ttl_for(wechat.max_clock_skew_seconds),
    )
    if seen is not Seen.NEW:
        request.app[METRICS].replays.labels(seen.value).inc()
        if seen is Seen.REFUSED:
            raise Refused("replay")
    if not encrypted:
        return body, False
    try:
        return protocol.decrypt(encrypt, key=protocol.aes_key(wechat.encoding_aes_key), appid=wechat.appid), True
    except SignatureError:
        raise Refused("signature") from None


# A request that waited in the listen queue (thousands of buyers at a flash sale's opening
# second) has spent part of WeChat's 5 seconds before its handler starts, unseen by the
# handler's clock. Its signed timestamp says when WeChat made it, to the second: the wait
# beyond that second counts as spent (at most this much, in case our clock runs ahead).
QUEUED_AT_MOST_SECONDS = 3.0


def sent_at(started: float, started_wall: float, timestamp: str) -> float:
    """When the request was sent, on the `time.perf_counter` clock of `started`: earlier than
    the handler's start by the wait its timestamp shows beyond its own second."""
    try:
        waited = started_wall - int(timestamp) - 1.0
    except ValueError:
        return started
    return started - min(max(0.0, waited), QUEUED_AT_MOST_SECONDS)


async def receive(request: web.Request) -> web.Response:
    started, started_wall = time.perf_counter(), time.time()
    logs.new_request_id()
    config = request.app[CONFIG]
    metrics = request.app[METRICS]
    wechat = config.wechat
    try:
        body = await _read_body(request, config.server.max_body_bytes)
    except web.HTTPRequestEntityTooLarge:
        metrics.rejected.labels("too_large").inc()
        return web.Response(status=413, text="request body too large")
    inbox = request.app[INBOX]
    async with inbox.admission:  # a few at once, in arrival order: a rush is served, not swamped
        try:
            xml, encrypted = await _authenticate(request, config, body)
            msg = protocol.parse(xml)
        except Refused as refused:
            metrics.rejected.labels(refused.reason).inc()
            log.info("webhook request refused", extra={"reason": refused.reason})
            return web.Response(status=403, text="forbidden")
        except ProtocolError as exc:
            metrics.rejected.labels("malformed").inc()
            return web.Response(status=400, text=f"bad request: {exc}")
        if not encrypted and config.message_mode == "compatible":
            msg = replace(msg, downgraded=True)

        logs.bind_user(msg.openid, key=config.signing_key)
        metrics.count_message(msg.kind, msg.event)
        screened = await inbox.screen(msg)
    # written down, and the reply waited for, outside the admission: a slow database holds no place
    if isinstance(screened, Rendered):
        rendered: Rendered | None = screened
    else:
        try:
            key = await inbox.enter(screened)
        except NotRecorded:  # nobody would process it: no "success", so that WeChat retries
            metrics.rejected.labels("not_recorded").inc()
            return web.Response(status=503, text="try again")
        # WeChat's 5 seconds started when it sent the request (verified above: the timestamp is signed)
        rendered = await inbox.answer(key, arrived=sent_at(started, started_wall, request.query.get("timestamp", "")))
    reply = to_xml(rendered, openid=msg.openid, account=msg.account) if rendered else None
    metrics.latency.observe(time.perf_counter() - started)
    if reply is None:
        if rendered is None:
            metrics.deferred.inc()
        return web.Response(text="success")
    if encrypted:
        reply = protocol.encrypt_reply(
            reply, token=wechat.token, key=protocol.aes_key(wechat.encoding_aes_key), appid=wechat.appid
        )
    return web.Response(text=reply, content_type="application/xml")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/wechat", verify)
    app.router.add_post("/wechat", receive)

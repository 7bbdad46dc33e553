"""`/wechat`: the authenticated edge between WeChat's servers and the bot.

GET answers WeChat's URL verification. POST authenticates first (signature, and in
safe mode `msg_signature` over the Encrypt text) on the raw body, and only then
decrypts and parses; a bad signature gets 403 and touches nothing.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from bot import logs, protocol
from bot.config import WeChatConfig
from bot.keys import CONFIG, INBOX, METRICS
from bot.protocol import ProtocolError, SignatureError
from bot.render import to_xml

log = logging.getLogger(__name__)


def _authenticate(request: web.Request, wechat: WeChatConfig) -> tuple[str, str]:
    q = request.query
    timestamp, nonce = q.get("timestamp", ""), q.get("nonce", "")
    protocol.check_signature(q.get("signature"), wechat.token, timestamp, nonce)
    protocol.check_freshness(timestamp, max_skew=wechat.max_clock_skew_seconds)
    return timestamp, nonce


async def verify(request: web.Request) -> web.Response:
    try:
        _authenticate(request, request.app[CONFIG].wechat)
    except SignatureError:
        return web.Response(status=403, text="forbidden")
    return web.Response(text=request.query.get("echostr", ""))


async def _read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    body = await request.content.read(limit + 1)
    if len(body) > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
    return body


async def receive(request: web.Request) -> web.Response:
    started = time.perf_counter()
    logs.new_request_id()
    config = request.app[CONFIG]
    metrics = request.app[METRICS]
    wechat = config.wechat
    try:
        timestamp, nonce = _authenticate(request, wechat)
    except SignatureError:
        metrics.rejected.labels("signature").inc()
        return web.Response(status=403, text="forbidden")
    try:
        body = await _read_body(request, config.server.max_body_bytes)
    except web.HTTPRequestEntityTooLarge:
        metrics.rejected.labels("too_large").inc()
        return web.Response(status=413, text="request body too large")

    encrypted = request.query.get("encrypt_type", "raw").lower() == "aes"
    key = b""
    try:
        if encrypted:
            if not wechat.encoding_aes_key:
                raise SignatureError("safe mode is not configured")
            key = protocol.aes_key(wechat.encoding_aes_key)
            encrypt = protocol.extract_encrypt(body)
            protocol.check_signature(request.query.get("msg_signature"), wechat.token, timestamp, nonce, encrypt)
            xml = protocol.decrypt(encrypt, key=key, appid=wechat.appid)
        else:
            xml = body
        msg = protocol.parse(xml)
    except SignatureError:
        metrics.rejected.labels("signature").inc()
        return web.Response(status=403, text="forbidden")
    except ProtocolError as exc:
        metrics.rejected.labels("malformed").inc()
        return web.Response(status=400, text=f"bad request: {exc}")

    logs.bind_user(msg.openid, key=config.signing_key)
    metrics.messages.labels(msg.kind, msg.event or "").inc()
    rendered = await request.app[INBOX].handle(msg)
    reply = to_xml(rendered, openid=msg.openid, account=msg.account) if rendered else None
    metrics.latency.observe(time.perf_counter() - started)
    if reply is None:
        if rendered is None:
            metrics.deferred.inc()
        return web.Response(text="success")
    if encrypted:
        reply = protocol.encrypt_reply(reply, token=wechat.token, key=key, appid=wechat.appid)
    return web.Response(text=reply, content_type="application/xml")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/wechat", verify)
    app.router.add_post("/wechat", receive)

"""`/dev/chat`: the local chat simulator page, for merchants trying the shop in a browser.

Development mode only: the routes answer when `pay.provider` is ``sandbox`` (no real
money can move, so this is not a live shop) and, unless `server.dev_tools` says "any",
only to requests from this machine; 404 otherwise. They stand in for
WeChat's servers, exactly like the terminal simulator (`storefront chat`):

- ``GET /dev/chat`` serves the page (`templates/pages/chat.html`, `static/chat.js`);
- ``POST /dev/chat/send`` takes JSON ``{openid, text}`` or ``{openid, event, key}``,
  builds the WeChat XML, posts it signed (and encrypted in safe mode) to the app's own
  ``/wechat`` over real HTTP, and answers the decoded reply as JSON;
- ``GET /dev/chat/outbox?openid=ID&after=N`` answers what the in-memory outbound
  sender has sent to that openid since its N-th message (late replies, notices).

The webhook is reached through the local socket the request came in on, never through
the Host header, so a forged Host cannot make the server sign requests for elsewhere.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp
from aiohttp import web

from bot.chat.render import Rendered, news_preview
from bot.devtools.simulator import Reply, SimulatorError, WebhookClient, build_message_xml
from bot.keys import CONFIG, OUTBOUND
from bot.outbound.sender import MemoryOutbox
from bot.web.product import PAGES

DEFAULT_OPENID = "o_simulator_user"
MAX_TEXT_CHARS = 10_000
_OPENID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_EVENT_KEY = re.compile(r"^[A-Za-z0-9_:.-]{1,64}$")
EVENTS = ("CLICK", "subscribe", "unsubscribe", "SCAN")
"""Events the page can send; CLICK and SCAN need a key, subscribe takes an optional scene."""


@dataclass
class DevChat:
    """The simulator's state: a client session to reach our own webhook, and MsgIds."""

    session: aiohttp.ClientSession
    msg_ids: itertools.count[int]


DEV_CHAT = web.AppKey("dev_chat", DevChat)


def is_development(app: web.Application) -> bool:
    """Development mode: the sandbox payment provider (no real money can move)."""
    return app[CONFIG].is_development


# Headers a reverse proxy adds: behind one, every request comes from loopback.
_PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")


def is_local(request: web.Request) -> bool:
    """A request from this machine itself, not passed on by a proxy on it."""
    if any(header in request.headers for header in _PROXY_HEADERS):
        return False
    try:
        return ipaddress.ip_address((request.remote or "").split("%")[0]).is_loopback
    except ValueError:
        return False


def loopback_origin(request: web.Request) -> str:
    """``http://host:port`` of the socket this request arrived on: the app's own address."""
    transport = request.transport
    if transport is None:  # pragma: no cover - the connection is already gone
        return str(request.url.origin())
    sockname = transport.get_extra_info("sockname")
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        host, port = sockname[0], sockname[1]
        if host in ("0.0.0.0", "::"):  # pragma: no cover - accepted sockets have a real address
            host = "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        scheme = "https" if transport.get_extra_info("sslcontext") else "http"
        return f"{scheme}://{host}:{port}"
    return str(request.url.origin())  # pragma: no cover - unix sockets and the like


def _require_development(request: web.Request) -> None:
    """404 unless development mode and `server.dev_tools` lets this request's origin in.

    The simulator acts as any openid (the owner's too) and shows anyone's notifications:
    by default it answers only requests from this machine.
    """
    if not is_development(request.app):
        raise web.HTTPNotFound()
    allowed = request.app[CONFIG].server.dev_tools
    if allowed == "off" or (allowed == "loopback" and not is_local(request)):
        raise web.HTTPNotFound()


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


# --------------------------------------------------------------------------- handlers


async def chat_page(request: web.Request) -> web.Response:
    _require_development(request)
    config = request.app[CONFIG]
    html = request.app[PAGES].get_template("chat.html").render(
        shop=config.shop.name, default_openid=DEFAULT_OPENID
    )
    return web.Response(
        text=html,
        content_type="text/html",
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


async def send(request: web.Request) -> web.Response:
    _require_development(request)
    # JSON only: a cross-site form cannot send it without a CORS preflight (we answer none).
    if request.content_type != "application/json":
        return _error(415, "send JSON (Content-Type: application/json)")
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "the body is not valid JSON")
    if not isinstance(body, dict):
        return _error(400, "the body must be a JSON object")
    try:
        openid, kind, fields = _parse_send(body)
    except ValueError as exc:
        return _error(400, str(exc))
    config = request.app[CONFIG]
    state = request.app[DEV_CHAT]
    xml = build_message_xml(
        to_user=config.wechat.appid,
        from_user=openid,
        kind=kind,
        create_time=int(time.time()),
        msg_id=None if kind == "event" else next(state.msg_ids),
        **fields,
    )
    client = WebhookClient(
        url=f"{loopback_origin(request)}/wechat",
        token=config.wechat.token,
        appid=config.wechat.appid,
        encoding_aes_key=config.wechat.encoding_aes_key,
        aes=bool(config.wechat.encoding_aes_key),
        session=state.session,
    )
    try:
        reply = await client.send(xml)
    except (SimulatorError, aiohttp.ClientError) as exc:
        return _error(502, f"the webhook did not answer as WeChat expects: {exc}")
    return web.json_response({"reply": reply_json(reply)})


def _parse_send(body: dict[str, Any]) -> tuple[str, str, dict[str, str | int | float]]:
    """(openid, MsgType, fields) from the page's JSON; ValueError says what is wrong."""
    openid = body.get("openid")
    if not isinstance(openid, str) or not _OPENID.match(openid):
        raise ValueError("openid: 1-64 characters of A-Z a-z 0-9 _ -")
    if "text" in body:
        text = body["text"]
        if not isinstance(text, str) or not text.strip():
            raise ValueError("text: a non-empty string")
        if len(text) > MAX_TEXT_CHARS:
            raise ValueError(f"text: at most {MAX_TEXT_CHARS} characters")
        return openid, "text", {"content": text}
    event, key = body.get("event"), body.get("key")
    if event not in EVENTS:
        raise ValueError(f"give text, or event: one of {', '.join(EVENTS)}")
    if key is not None and (not isinstance(key, str) or not _EVENT_KEY.match(key)):
        raise ValueError("key: 1-64 characters of A-Z a-z 0-9 _ : . -")
    fields: dict[str, str | int | float] = {"event": event}
    if event in ("CLICK", "SCAN"):
        if key is None:
            raise ValueError(f"key: required with {event}")
        fields["event_key"] = key
    elif event == "subscribe" and key:
        fields["event_key"] = f"qrscene_{key}"
    if event == "SCAN" or (event == "subscribe" and key):
        fields["ticket"] = "dev-chat-ticket-" + secrets.token_hex(8)
    return openid, "event", fields


def _articles_json(articles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each article with `shown`: what a phone shows of its description (one-article cards
    are cut to about two lines, `news_preview`; in a list WeChat shows titles only)."""
    alone = len(articles) == 1
    return [{**a, "shown": news_preview(a["description"]) if alone else ""} for a in articles]


def reply_json(reply: Reply) -> dict[str, Any]:
    """A decoded webhook reply as the page's JSON."""
    return {
        "kind": reply.kind,
        "text": reply.text,
        "articles": _articles_json([asdict(article) for article in reply.articles]),
    }


def rendered_json(message: Rendered) -> dict[str, Any]:
    """An outbound message as the page's JSON (the same shape as `reply_json`)."""
    kinds = {"transfer": "transfer_customer_service", "silence": "none"}
    return {
        "kind": kinds.get(message.kind, message.kind),
        "text": message.text,
        "articles": _articles_json([
            {"title": a.title, "description": a.description, "picurl": a.picurl, "url": a.url}
            for a in message.articles
        ]),
    }


async def outbox(request: web.Request) -> web.Response:
    _require_development(request)
    openid = request.query.get("openid", "")
    if not _OPENID.match(openid):
        return _error(400, "openid: 1-64 characters of A-Z a-z 0-9 _ -")
    try:
        after = int(request.query.get("after", "0"))
    except ValueError:
        return _error(400, "after: a whole number")
    sender = request.app[OUTBOUND]
    if not isinstance(sender, MemoryOutbox):
        # A real sender delivers to WeChat; there is nothing to show here.
        return web.json_response({"messages": [], "next": 0, "memory": False})
    # Indexes count this openid's messages; the outbox keeps the latest 1000 of all users.
    sent = sender.for_user(openid)
    after = max(0, min(after, len(sent)))
    return web.json_response(
        {"messages": [rendered_json(m) for m in sent[after:]], "next": len(sent), "memory": True}
    )


# --------------------------------------------------------------------------- wiring


async def _client_session(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession() as session:
        app[DEV_CHAT] = DevChat(
            session=session, msg_ids=itertools.count(time.time_ns() // 1000 + secrets.randbelow(1000))
        )
        yield


def add_routes(app: web.Application) -> None:
    """Register the simulator routes; they answer 404 unless the provider is sandbox."""
    app.cleanup_ctx.append(_client_session)
    app.router.add_get("/dev/chat", chat_page)
    app.router.add_post("/dev/chat/send", send)
    app.router.add_get("/dev/chat/outbox", outbox)

"""The live page (直播): `GET /live/{token}` shows the session's current product, its live
price and the units left; `GET /live/{token}/events` streams them (server-sent events) as
they change; `POST /live/{token}/click` counts a tap on the buy button.

The link is sealed (`bot.web.signed_links`): it names the session and when it stops
working (`LINK_LIFETIME` after it was made, longer than a session's pushes sell), and
an altered or expired link gets 403. It names no customer: the same card goes to every
subscriber. Buying needs the customer's chat (their openid, the pay card), so the button
copies the word to send there ("抢直播", as the product and group pages copy theirs).

The stream waits on the worker's `LiveHub` (`bot.live_hub`): an event at once when a
unit is taken in the chat, and the state read again every `live.poll_seconds` for what
no poke announces (payments, expiries). It ends when the session does, or after
`MAX_STREAM_SECONDS` (the browser's EventSource connects again by itself).
"""

from __future__ import annotations

import json
import logging
import struct
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from bot.config import Config
from bot.keys import CONFIG, RENDERER, SERVICES
from bot.web import signed_links
from bot.web.product import page_lang, render_page
from bot.web.signed_links import LinkError
from commerce.promotions import live
from commerce.rules import utcnow

log = logging.getLogger(__name__)

LINK_LIFETIME = timedelta(hours=live.LIVE_HOURS + 2)
MAX_STREAM_SECONDS = 30 * 60
KEEPALIVE_SECONDS = 15.0
BUY_WORD = {"zh": "抢直播", "en": "live grab"}
"""Sent in the chat, it takes a unit of the product on air (bot/handlers/text.py)."""
_DOMAIN = b"storefront/live/v1"
_PAYLOAD = struct.Struct(">II")  # session id, expires_at
HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"}


def make_live_token(*, key: bytes, session_id: int, expires_at: datetime) -> str:
    seconds = int(expires_at.timestamp())
    if not (0 < session_id < 2**32 and 0 <= seconds < 2**32):
        raise ValueError("session id or expiry out of range")
    return signed_links.seal(key=key, domain=_DOMAIN, payload=_PAYLOAD.pack(session_id, seconds))


def read_live_token(*, key: bytes, token: str, now: datetime | None = None) -> int:
    """The session a good token names; `LinkError` (malformed, bad_signature, expired)."""
    payload = signed_links.unseal(key=key, domain=_DOMAIN, token=token)
    if len(payload) != _PAYLOAD.size:
        raise LinkError("malformed")
    session_id, seconds = _PAYLOAD.unpack(payload)
    if (now or datetime.now(UTC)) >= datetime.fromtimestamp(seconds, UTC):
        raise LinkError("expired")
    return int(session_id)


def live_url(config: Config, session_id: int, *, now: datetime | None = None) -> str:
    """The live page's public link for a session, good for `LINK_LIFETIME`."""
    expires_at = (now or datetime.now(UTC)) + LINK_LIFETIME
    token = make_live_token(key=config.signing_key, session_id=session_id, expires_at=expires_at)
    return f"{config.public_base_url}/live/{token}"


def _session_id(request: web.Request) -> int | web.Response:
    try:
        return read_live_token(key=request.app[CONFIG].signing_key, token=request.match_info["token"])
    except LinkError as exc:
        log.info("live link refused", extra={"reason": exc.reason})
        return web.Response(
            status=403, text="这个直播链接无效或已过期。\nThis live link is not valid or has expired.",
            content_type="text/plain", charset="utf-8", headers=HEADERS,
        )


def stream_data(state: dict[str, Any] | None) -> dict[str, Any]:
    """What one event says: whether it is on air, and the product on air with its units."""
    if state is None:
        return {"on_air": False, "sale": None}
    sale = state["sale"]
    shown = None
    if sale is not None:
        shown = {
            "id": sale["id"], "product": sale["product"], "spec": sale["spec"], "price": sale["price"],
            "regular_price": sale["regular_price"], "units": sale["units"], "left": sale["left"],
            "phase": sale["phase"],
        }
    return {"on_air": bool(state["on_air"]), "sale": shown}


async def live_page(request: web.Request) -> web.Response:
    session_id = _session_id(request)
    if isinstance(session_id, web.Response):
        return session_id
    services = request.app[SERVICES]
    lang = page_lang(request)
    async with services.uow() as uow:
        await live.count_view(uow.session, session_id=session_id)
        state = await live.page_state(uow.session, session_id=session_id, now=utcnow())
    if state is None:
        return render_page(request, "live.html", {"state": None}, lang=lang, status=404, headers=HEADERS)
    image = ""
    sale = state["sale"]
    if sale is not None:
        product = await services.catalog.product(sale["product_id"])
        if product is not None and product.image_url:
            image = request.app[RENDERER].absolute(product.image_url)
    data = {
        "state": state, "stream": stream_data(state), "image": image, "buy_word": BUY_WORD[lang],
        "events_url": f"{request.path}/events", "click_url": f"{request.path}/click",
    }
    return render_page(request, "live.html", data, lang=lang, headers=HEADERS)


async def live_click(request: web.Request) -> web.Response:
    session_id = _session_id(request)
    if isinstance(session_id, web.Response):
        return session_id
    async with request.app[SERVICES].uow() as uow:
        await live.count_click(uow.session, session_id=session_id)
    return web.Response(status=204, headers=HEADERS)


async def live_events(request: web.Request) -> web.StreamResponse:
    session_id = _session_id(request)
    if isinstance(session_id, web.Response):
        return session_id
    hub = request.app[SERVICES].live_hub
    response = web.StreamResponse(
        headers={**HEADERS, "Content-Type": "text/event-stream; charset=utf-8", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    began = last_write = time.monotonic()
    last: dict[str, Any] | None = None
    try:
        while time.monotonic() - began < MAX_STREAM_SECONDS and not hub.stopping:
            data = stream_data(await hub.state(session_id))
            if data != last:
                body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
                await response.write(f"event: state\ndata: {body}\n\n".encode())
                last, last_write = data, time.monotonic()
            elif time.monotonic() - last_write >= KEEPALIVE_SECONDS:
                await response.write(b": keepalive\n\n")
                last_write = time.monotonic()
            if not data["on_air"]:
                break
            await hub.wait()
    except ConnectionResetError:
        return response  # the viewer left
    return response


async def _stop_streams(app: web.Application) -> None:
    if SERVICES in app:
        app[SERVICES].live_hub.stop_streams()


def add_routes(app: web.Application) -> None:
    app.on_shutdown.append(_stop_streams)  # before the runner waits for open requests
    app.router.add_get(r"/live/{token}", live_page)
    app.router.add_get(r"/live/{token}/events", live_events)
    app.router.add_post(r"/live/{token}/click", live_click)

"""The composition root: `create_app(config)` wires every part of the shop together.

Resources (database engine, Redis) are opened and closed in the app's cleanup
context; tests build their own app with their own config and outbound sender.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis

from bot import pages, webhook
from bot.config import Config
from bot.conversation import Conversation
from bot.dialogs.base import DialogRuntime
from bot.dialogs.search import SearchDialog
from bot.dialogs.store import DialogStore, MemoryDialogStore, RedisDialogStore
from bot.handlers import build_routes
from bot.inbox import Inbox
from bot.keys import CONFIG, ENGINE, INBOX, METRICS, OUTBOUND, RENDERER, SERVICES
from bot.metrics import Metrics
from bot.outbound import MemoryOutbox, OutboundSender
from bot.protocol import Inbound
from bot.render import Rendered, Renderer
from bot.replies import Text
from bot.services import Customers, Services
from commerce.catalog import Catalog
from commerce.db import create_engine, session_factory

STATIC_DIR = Path(__file__).parent / "static"


def create_app(config: Config, *, outbound: OutboundSender | None = None) -> web.Application:
    app = web.Application(client_max_size=config.server.max_body_bytes)
    app[CONFIG] = config
    app[METRICS] = Metrics()
    app[OUTBOUND] = outbound if outbound is not None else MemoryOutbox()
    app[RENDERER] = Renderer(
        default_locale=config.shop.locale, base_url=config.public_base_url, shop_name=config.shop.name
    )
    app.cleanup_ctx.append(_resources)
    webhook.add_routes(app)
    pages.add_routes(app)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_static("/static", STATIC_DIR)
    return app


async def _resources(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    engine = create_engine(config.database.url, echo=config.database.echo)
    redis = Redis.from_url(config.redis.url) if config.redis.url else None
    store: DialogStore = RedisDialogStore(redis) if redis is not None else MemoryDialogStore()
    sessions = session_factory(engine)
    services = Services(
        config=config,
        sessions=sessions,
        catalog=Catalog(sessions, max_age_seconds=config.search.cache_seconds),
        dialogs=DialogRuntime(store, [SearchDialog()], ttl_seconds=config.dialog.ttl_seconds),
        customers=Customers(sessions),
    )
    routes, fallback = build_routes()
    conversation = Conversation(services, routes=routes, fallback=fallback, staff=config.staff.owners)
    renderer = app[RENDERER]

    async def respond(msg: Inbound) -> Rendered:
        reply, locale = await conversation.respond(msg)
        return renderer.render(reply, locale)

    def fallback_reply(msg: Inbound) -> Rendered:
        return renderer.render(Text("error"), config.shop.locale)

    inbox = Inbox(
        respond=respond,
        fallback=fallback_reply,
        outbound=app[OUTBOUND],
        deadline=config.server.reply_deadline_seconds,
    )
    app[ENGINE] = engine
    app[SERVICES] = services
    app[INBOX] = inbox
    try:
        yield
    finally:
        await inbox.drain()
        if redis is not None:
            await redis.aclose()
        await engine.dispose()


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

"""The app factory: `create_app(config)` adds the routes and runs the shop in its cleanup context.

Everything the shop runs on is built by `bot.bootstrap.open_shop` when the app starts and
closed when it stops; the handlers find it under the typed keys of `bot.keys`. Tests build
their own app with their own config and outbound sender.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web

from bot.bootstrap import open_shop
from bot.config import Config
from bot.devtools import dev_chat
from bot.handlers import pay_notify
from bot.keys import (
    CONFIG,
    DELIVERY,
    ENGINE,
    INBOX,
    JOBS,
    METRICS,
    NOTIFIER,
    OUTBOUND,
    PAYMENTS,
    RENDERER,
    REPLAY,
    SERVICES,
)
from bot.metrics import Metrics
from bot.outbound.sender import OutboundSender
from bot.web import backup as backup_page
from bot.web import dashboard as dashboard_page
from bot.web import export as export_page
from bot.web import group as group_page
from bot.web import invites, live, ops
from bot.web import media as media_files
from bot.web import pay as pay_page
from bot.web import product as pages
from bot.web import referral as referral_page
from bot.web import shipping as ship_page
from bot.web import topup as topup_page
from bot.web.health import HEALTH, healthz
from bot.wechat import webhook

STATIC_DIR = Path(__file__).parent / "web" / "static"


def create_app(
    config: Config, *, outbound: OutboundSender | None = None, intake_owner: str | None = None
) -> web.Application:
    """The web app: routes, and the shop (`bot.bootstrap.open_shop`) in its cleanup context.

    `outbound`: a test's sender for what the bot sends later (it wins over the planner);
    `intake_owner`: the worker's lease owner, from the supervisor of `serve --workers N`."""
    app = web.Application(client_max_size=config.server.max_body_bytes)
    app[CONFIG] = config
    app[METRICS] = Metrics()  # the app's own registry: counted from the first request on
    app.cleanup_ctx.extend([_shop(outbound, intake_owner), ops.metrics_site])  # the site opens after the shop, closes before
    webhook.add_routes(app)
    pages.add_routes(app)
    media_files.add_routes(app)  # --- product pictures: GET /media/{name} (bot/web/media.py) ---
    invites.add_routes(app)  # --- share links: GET /s/{scene} (bot/invites.py) ---
    group_page.add_routes(app)  # --- group buys: GET /g/{code} (bot/group_page.py) ---
    referral_page.add_routes(app)  # --- referrals: GET /r/{code} (bot/referral_page.py) ---
    export_page.add_routes(app)  # --- staff exports: GET /export/{token} (bot/export_page.py) ---
    live.add_routes(app)  # --- live drops: GET /live/{token}, its /events (SSE) and POST /click (bot/web/live.py) ---
    topup_page.add_routes(app)  # --- stored-balance top-ups: GET /topup/{token} (bot/web/topup.py) ---
    ship_page.add_routes(app)  # --- bulk shipping: GET/POST /ship/{token} (bot/web/shipping.py) ---
    backup_page.add_routes(app)  # owners' backups: GET /backup/{token} and its /file (bot/web/backup.py)
    dashboard_page.add_routes(app)  # staff dashboard: GET /dashboard/{token} (bot/web/dashboard.py)
    # --- payment page and local chat simulator (bot/pay_page.py, bot/dev_chat.py) ---
    dev_chat.add_routes(app)  # /dev/chat*: answers only with pay.provider = "sandbox"
    pay_page.add_routes(app)  # /pay/{token}, its /jsapi, /simulate (sandbox) and /status
    # --- end payment page and chat simulator ---
    # --- payment notifications (bot/handlers/pay_notify.py) ---
    pay_notify.add_routes(app)  # POST /pay/notify/{provider}, POST /pay/refund-notify/{provider}
    # --- end payment notifications ---
    app.router.add_get("/healthz", healthz)
    ops.add_routes(app)  # GET /metrics
    app.router.add_static("/static", STATIC_DIR)
    return app


def _shop(
    outbound: OutboundSender | None, intake_owner: str | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The shop's resources and services (`bot.bootstrap`), open while the app runs."""

    async def serve(app: web.Application) -> AsyncIterator[None]:
        async with open_shop(app[CONFIG], metrics=app[METRICS], outbound=outbound, intake_owner=intake_owner) as shop:
            app[CONFIG] = shop.config
            app[ENGINE] = shop.engine
            app[RENDERER] = shop.renderer
            app[OUTBOUND] = shop.outbound
            app[REPLAY] = shop.replay
            app[SERVICES] = shop.services
            app[PAYMENTS] = shop.payments
            app[NOTIFIER] = shop.notifier
            app[DELIVERY] = shop.delivery
            app[INBOX] = shop.inbox
            app[JOBS] = shop.jobs
            app[HEALTH] = shop.health
            yield

    return serve

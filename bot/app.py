"""The composition root: `create_app(config)` wires every part of the shop together.

Resources (database engine, Redis) are opened and closed in the app's cleanup
context; tests build their own app with their own config and outbound sender.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.admin.broadcast import Broadcaster
from bot.chat import middleware
from bot.chat.conversation import Conversation
from bot.chat.render import Rendered, Renderer
from bot.chat.replies import Text
from bot.config import Config
from bot.devtools import dev_chat
from bot.dialogs.confirm import ConfirmDialog
from bot.dialogs.shop import ShopDialogs
from bot.dialogs.store import DialogStore, MemoryDialogStore, RedisDialogStore
from bot.handlers import build_routes, pay_notify
from bot.handlers.admin import run_confirmed
from bot.install import resolve_install_secrets
from bot.keys import (
    CONFIG,
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
from bot.outbound.alerts import MANAGERS, StaffAlerts, openid_tail
from bot.outbound.notifier import OutboundNotifier
from bot.outbound.planner import NotificationPlanner, PlannedNotifier, parse_template_ids
from bot.outbound.sender import MemoryOutbox, OutboundSender
from bot.payments import build_payment_service
from bot.services import Customers, Services, StaffDirectory, shop_rules
from bot.web import export as export_page
from bot.web import group as group_page
from bot.web import invites, paylink
from bot.web import pay as pay_page
from bot.web import product as pages
from bot.web import referral as referral_page
from bot.web.health import HEALTH, HealthChecks, healthz
from bot.wechat import webhook
from bot.wechat.api import (
    AccessTokenManager,
    MemoryTokenStore,
    RedisTokenStore,
    StableTokenFetcher,
    WeChatClient,
)
from bot.wechat.inbox import Inbox, MemoryReplyStore, Refused, ReplyStore, UserLock, UserLocks
from bot.wechat.inbox_redis import RedisReplyStore, RedisUserLocks
from bot.wechat.protocol import Inbound
from bot.wechat.ratelimit import (
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    SendRateGate,
    Verdict,
)
from bot.wechat.replay import MemoryReplayCache, RedisReplayCache
from commerce.catalog.read import Catalog
from commerce.db import create_engine
from commerce.messaging.outbox import OutboxItem
from commerce.wiring import shop_bus, shop_sessions, tell_catalog
from scheduler.jobs import JobContext
from scheduler.runner import RedisTickLock, TickLock, start_scheduler

STATIC_DIR = Path(__file__).parent / "web" / "static"
_OUTBOUND_GIVEN = web.AppKey("outbound_given", bool)


def create_app(config: Config, *, outbound: OutboundSender | None = None) -> web.Application:
    app = web.Application(client_max_size=config.server.max_body_bytes)
    app[CONFIG] = config
    app[METRICS] = Metrics()
    app[OUTBOUND] = outbound if outbound is not None else MemoryOutbox()
    app[_OUTBOUND_GIVEN] = outbound is not None  # outbound planner: a test's sender wins
    app[RENDERER] = Renderer(
        default_locale=config.shop.locale,
        base_url=config.public_base_url,
        shop_name=config.shop.name,
        timezone=config.shop.timezone,
    )
    app.cleanup_ctx.append(_resources)
    webhook.add_routes(app)
    pages.add_routes(app)
    invites.add_routes(app)  # --- share links: GET /s/{scene} (bot/invites.py) ---
    group_page.add_routes(app)  # --- group buys: GET /g/{code} (bot/group_page.py) ---
    referral_page.add_routes(app)  # --- referrals: GET /r/{code} (bot/referral_page.py) ---
    export_page.add_routes(app)  # --- staff exports: GET /export/{token} (bot/export_page.py) ---
    # --- payment page and local chat simulator (bot/pay_page.py, bot/dev_chat.py) ---
    dev_chat.add_routes(app)  # /dev/chat*: answers only with pay.provider = "sandbox"
    pay_page.add_routes(app)  # /pay/{token}, its /jsapi, /simulate (sandbox) and /status
    # --- end payment page and chat simulator ---
    # --- payment notifications (bot/handlers/pay_notify.py) ---
    pay_notify.add_routes(app)  # POST /pay/notify/{provider}, POST /pay/refund-notify/{provider}
    # --- end payment notifications ---
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_static("/static", STATIC_DIR)
    return app


async def _resources(app: web.Application) -> AsyncIterator[None]:
    engine = create_engine(app[CONFIG].database.url, echo=app[CONFIG].database.echo)
    sessions = shop_sessions(engine)
    try:  # secrets the configuration leaves empty: the install's own, the same for every worker
        config = await resolve_install_secrets(app[CONFIG], sessions)
    except Exception:
        await engine.dispose()
        raise
    app[CONFIG] = config
    redis = Redis.from_url(config.redis.url) if config.redis.url else None
    app[REPLAY] = RedisReplayCache(redis) if redis is not None else MemoryReplayCache()
    store: DialogStore = RedisDialogStore(redis) if redis is not None else MemoryDialogStore()
    # the sessions every entry point uses: they carry the shop rules and the order events' bus
    bus = shop_bus()
    sessions = shop_sessions(engine, rules=shop_rules(config), bus=bus)
    catalog = Catalog(
        sessions, max_age_seconds=config.search.cache_seconds, query_cache_size=config.search.query_cache_size
    )
    tell_catalog(bus, catalog)  # stock that comes back (a cancel, an expiry) is searchable at once
    services = Services(
        config=config,
        sessions=sessions,
        catalog=catalog,
        dialogs=ShopDialogs(
            store,
            # the confirmation dialog acts through the staff commands' own entry (no import back)
            confirm=ConfirmDialog(on_answer=run_confirmed),
            ttl_seconds=config.dialog.ttl_seconds,
            on_transition=app[METRICS].count_transition,  # metrics: counts dialog transitions
        ),
        customers=Customers(sessions),
        staff=StaffDirectory(sessions, owners=frozenset(config.staff.owners)),
        rules=shop_rules(config),
        pay_url=lambda order: paylink.pay_url(config, order.order_no, order.openid, order.expires_at),
    )
    # --- outbound planner (bot/planner.py): with an appsecret, notifications go through the
    # database outbox to WeChat (customer-service message, else template, else wait) ---
    wechat_http: aiohttp.ClientSession | None = None
    planner: NotificationPlanner | None = None
    given = app[OUTBOUND]
    if isinstance(given, NotificationPlanner):  # a test built its own (and owns its client)
        planner = given
    elif config.wechat.appsecret and not app[_OUTBOUND_GIVEN]:
        wechat_http = aiohttp.ClientSession()
        planner = _build_planner(config, sessions, services, redis, wechat_http)
        app[OUTBOUND] = planner
    notifier: OutboundNotifier
    if planner is not None:
        notifier = PlannedNotifier(renderer=app[RENDERER], planner=planner, sessions=sessions)
    else:
        notifier = OutboundNotifier(renderer=app[RENDERER], outbound=app[OUTBOUND], sessions=sessions)
    # --- end outbound planner ---
    services.invites = invites.InviteService(
        planner.client if planner is not None else None,
        invites.RedisQrCache(redis) if redis is not None else invites.MemoryQrCache(),
        base_url=config.public_base_url,
    )
    # --- payments (bot/payments.py): provider + PaymentService, one HTTP session for the provider ---
    pay_http = aiohttp.ClientSession()
    try:
        payments = build_payment_service(config, sessions, notifier, pay_http)
    except Exception:
        await pay_http.close()
        raise
    services.payments = payments
    app[PAYMENTS] = payments
    # --- end payments ---
    # --- staff alerts and broadcasts (bot/alerts.py, bot/admin/broadcast.py) ---
    alerts = StaffAlerts(sessions=sessions, renderer=app[RENDERER], outbound=app[OUTBOUND], owners=config.staff.owners)
    broadcasts = Broadcaster(renderer=app[RENDERER], outbound=app[OUTBOUND])
    services.notifier, services.alerts, services.broadcasts = notifier, alerts, broadcasts
    payments.on_paid = alerts.order_paid
    payments.on_notification = app[METRICS].count_payment_notification  # metrics
    # --- end staff alerts and broadcasts ---
    routes, fallback = build_routes()
    # --- the message chain (bot/chat/middleware.py): one step a line, in order ---
    turn = middleware.chain([
        _rate_limit(app, services, redis),
        middleware.customer(services.customers),
        middleware.staff_role(services.staff),
        middleware.unit_of_work,
        Conversation(services, routes=routes, fallback=fallback),  # the route: answers
    ])
    renderer = app[RENDERER]

    async def respond(msg: Inbound) -> Rendered | Refused:
        answer = await turn(middleware.Turn(msg, locale=config.shop.locale))
        rendered = renderer.render(answer.reply, answer.locale)
        return Refused(rendered) if answer.refused else rendered

    def fallback_reply(msg: Inbound) -> Rendered:
        return renderer.render(Text("error"), config.shop.locale)

    # --- several workers (bot/inbox_redis.py, scheduler/runner.py): with Redis, message
    # de-duplication, per-user order and scheduler ticks are shared; else in process ---
    replies: ReplyStore = RedisReplyStore(redis) if redis is not None else MemoryReplyStore()
    user_locks: UserLock = RedisUserLocks(redis) if redis is not None else UserLocks()
    tick_lock: TickLock | None = RedisTickLock(redis) if redis is not None else None
    # --- end several workers ---
    inbox = Inbox(
        respond=respond,
        fallback=fallback_reply,
        outbound=app[OUTBOUND],
        deadline=config.server.reply_deadline_seconds,
        replies=replies,  # several workers
        locks=user_locks,  # several workers
        on_outcome=app[METRICS].count_request,  # metrics
        on_deadline_miss=app[METRICS].count_deadline_miss,  # metrics
    )
    app[ENGINE] = engine
    app[SERVICES] = services
    app[INBOX] = inbox
    app[NOTIFIER] = notifier
    jobs = JobContext(
        sessions=sessions, notifier=notifier, rules=services.rules,
        payments=services.payments, pay_url=services.pay_url,
        deliver_outbox=planner.retry_due if planner is not None else None,  # outbound planner
    )
    app[JOBS] = jobs
    scheduler = start_scheduler(jobs, lock=tick_lock) if config.scheduler.enabled else None  # several workers
    metrics_site: web.AppRunner | None = None
    # --- health (bot/health.py): /healthz checks these ---
    app[HEALTH] = HealthChecks(
        engine=engine, redis=redis, scheduler=scheduler, scheduler_enabled=config.scheduler.enabled,
        timeout=config.server.health_timeout_seconds,
    )
    # --- end health ---
    try:
        if config.server.metrics_listen:
            metrics_site = await _start_metrics_site(app)
        yield
    finally:
        if metrics_site is not None:
            await metrics_site.cleanup()
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        await inbox.drain()
        await broadcasts.drain()  # staff alerts and broadcasts: finish sending
        await payments.aclose()  # payments: finish side effects, then close its HTTP session
        await alerts.drain()  # (after payments: a paid order's alert is one of its side effects)
        if planner is not None:  # outbound planner: finish the immediate attempts
            await planner.drain()
        if wechat_http is not None:
            await wechat_http.close()
        await pay_http.close()
        if redis is not None:
            await redis.aclose()
        await engine.dispose()


# --- rate limiting (bot/ratelimit.py): per customer, in Redis when configured ---
def _rate_limit(app: web.Application, services: Services, redis: Redis | None) -> middleware.Middleware:
    config, metrics = app[CONFIG], app[METRICS]
    limit = config.server.messages_per_minute
    if limit == 0:
        return middleware.passing
    limiter: RateLimiter = (
        RedisRateLimiter(redis, limit=limit) if redis is not None else MemoryRateLimiter(limit=limit)
    )

    async def locale_of(openid: str) -> str:
        return (await services.customers.touch(openid)).locale or config.shop.locale

    def count(verdict: Verdict) -> None:
        metrics.rate_limited.labels(verdict.value).inc()

    return middleware.rate_limit(limiter, locale_of=locale_of, on_limited=count)
# --- end rate limiting ---


# --- outbound planner ---
def _build_planner(
    config: Config,
    sessions: async_sessionmaker[AsyncSession],
    services: Services,
    redis: Redis | None,
    http: aiohttp.ClientSession,
) -> NotificationPlanner:
    wechat = config.wechat
    fetch = StableTokenFetcher(http, base_url=wechat.api_base_url, appid=wechat.appid, appsecret=wechat.appsecret)
    store = RedisTokenStore(redis) if redis is not None else MemoryTokenStore()
    client = WeChatClient(http, base_url=wechat.api_base_url, tokens=AccessTokenManager(fetch, store))

    async def tell_staff(item: OutboxItem, error: str) -> None:
        if services.alerts is None:
            return
        data = {"customer": openid_tail(item.openid), "event": item.event, "error": error[:100]}
        await services.alerts.alert("alert_outbox_failed", data, MANAGERS)

    return NotificationPlanner(
        sessions=sessions,
        client=client,
        window_messages=wechat.window_messages,
        paid_window_messages=wechat.window_messages_after_payment,
        template_ids=parse_template_ids(wechat.template_ids),
        max_attempts=wechat.outbox_max_attempts,
        alert=tell_staff,
        send_gate=SendRateGate(wechat.max_sends_per_second, redis=redis),
    )
# --- end outbound planner ---


# --- metrics (bot/metrics.py): database gauges are read just before rendering ---
_SHOP = web.AppKey("shop", web.Application)  # the metrics site's way back to the shop's state


async def metrics(request: web.Request) -> web.Response:
    """`/metrics` on the public port: only behind the bearer token, or in development.

    With `server.metrics_listen` it is served on that address alone (404 here); without
    a token a live shop does not serve it at all: order counts are the merchant's business.
    """
    server = request.app[CONFIG].server
    if server.metrics_listen:
        raise web.HTTPNotFound()
    if server.metrics_token:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {server.metrics_token}".encode()):
            return web.Response(status=401, text="unauthorized", headers={"WWW-Authenticate": "Bearer"})
    elif not request.app[CONFIG].is_development:
        raise web.HTTPNotFound()
    return await _render_metrics(request.app)


async def _render_metrics(app: web.Application) -> web.Response:
    if SERVICES in app:  # not before start-up has finished
        await app[METRICS].refresh(app[SERVICES].sessions, timeout=app[CONFIG].server.health_timeout_seconds)
    body = generate_latest(app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _start_metrics_site(shop: web.Application) -> web.AppRunner:
    """`/metrics` alone on `server.metrics_listen` (a private address for the scraper)."""
    host, _, port = shop[CONFIG].server.metrics_listen.rpartition(":")

    async def serve(request: web.Request) -> web.Response:
        return await _render_metrics(request.app[_SHOP])

    site_app = web.Application()
    site_app[_SHOP] = shop
    site_app.router.add_get("/metrics", serve)
    runner = web.AppRunner(site_app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host.strip("[]"), int(port)).start()
    except OSError:
        await runner.cleanup()
        raise
    return runner

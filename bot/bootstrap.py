"""The composition root: everything the shop runs on, built once, in dependency order.

`open_shop(config, ...)` opens the resources (database engine, Redis, HTTP sessions),
builds the typed services on them and yields a frozen `Shop`; leaving it drains the
background work and closes the resources in the reverse order of their making (an
`AsyncExitStack`: what is built later may use what was built earlier, never the other
way). Nothing is patched in afterwards: a part that may be missing is a null object
(`NoQrCodes` without a WeChat client), not a `None` for every caller to test.

The app factory (`bot.app.create_app`) only adds routes and runs `open_shop` in its
cleanup context; a test can open a shop without a web app.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.admin.broadcast import Broadcaster
from bot.analytics import EventBuffer, EventRecorder, NoEvents
from bot.chat import middleware
from bot.chat.conversation import Conversation
from bot.chat.render import Rendered, Renderer
from bot.chat.replies import Text
from bot.chat.transcript import (
    MemoryTranscriptStore,
    RedisTranscriptStore,
    Transcripts,
    TranscriptStore,
)
from bot.config import Config
from bot.dialogs.confirm import ConfirmDialog
from bot.dialogs.shop import ShopDialogs
from bot.dialogs.store import DialogStore, DurableDialogStore, MemoryDialogStore, RedisDialogStore
from bot.flash_edge import FlashEdge, RushGate
from bot.flash_gate import FallbackFlashGate, MemoryFlashGate, RedisFlashGate
from bot.handlers import build_routes
from bot.handlers.admin import run_beside_confirmation, run_confirmed
from bot.install import resolve_install_secrets
from bot.live_hub import LiveHub
from bot.metrics import Metrics
from bot.outbound.alerts import MANAGERS, StaffAlerts, openid_tail
from bot.outbound.delivery import Delivery, DirectDelivery, NoticeRenderer
from bot.outbound.notifier import OutboundNotifier
from bot.outbound.planner import NotificationPlanner, parse_template_ids
from bot.outbound.sender import MemoryOutbox, OutboundSender
from bot.payments import build_payment_service
from bot.redis_link import RedisLink, open_redis
from bot.services import Customers, Services, StaffDirectory, shop_rules, sms_sender
from bot.web import paylink
from bot.web.health import HealthChecks
from bot.web.invites import InviteService, MemoryQrCache, NoQrCodes, QrCache, QrCodes, RedisQrCache
from bot.wechat.api import (
    AccessTokenManager,
    MemoryTokenStore,
    RedisTokenStore,
    StableTokenFetcher,
    WeChatClient,
)
from bot.wechat.api.client import MediaSource, NoMediaSource
from bot.wechat.api.token import TokenStore
from bot.wechat.degraded import (
    FallbackQrCache,
    FallbackRateLimiter,
    FallbackReplayCache,
    FallbackTickLock,
    FallbackTokenStore,
    FallbackTranscriptStore,
    FallbackUserLocks,
)
from bot.wechat.inbox import Inbox, Refused, UserLock, UserLocks
from bot.wechat.inbox_redis import RedisUserLocks
from bot.wechat.intake import DurableReplyStore, Sweeper, fence
from bot.wechat.protocol import Inbound
from bot.wechat.ratelimit import (
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    SendRateGate,
    Verdict,
)
from bot.wechat.replay import MemoryReplayCache, RedisReplayCache, ReplayCache
from commerce.analytics.events import Event, write_events
from commerce.catalog.read import Catalog
from commerce.customers import regions
from commerce.db import create_engine
from commerce.media.store import LocalMediaStore
from commerce.messaging.outbox import OutboxItem
from commerce.payments.service import PaymentService
from commerce.promotions.flash_sales import FlashGate
from commerce.uow import UnitOfWorkFactory
from commerce.wiring import shop_bus, shop_sessions, shop_uows, tell_catalog
from scheduler.jobs import JobContext
from scheduler.runner import RedisTickLock, TickLock, Ticks, start_scheduler, stop_scheduler


@dataclass(frozen=True, slots=True)
class Shop:
    """What a running worker serves with; every part built, none optional."""

    config: Config  # with the install's own secrets filled in
    engine: AsyncEngine
    renderer: Renderer
    services: Services
    outbound: OutboundSender  # the planner (database outbox) with an appsecret, else the given sender
    notifier: OutboundNotifier
    delivery: Delivery  # sends what units of work committed to the outbox
    inbox: Inbox
    replay: ReplayCache
    jobs: JobContext
    health: HealthChecks

    @property
    def payments(self) -> PaymentService:
        return self.services.payments


@asynccontextmanager
async def open_shop(
    config: Config, *, metrics: Metrics, outbound: OutboundSender | None = None, intake_owner: str | None = None
) -> AsyncIterator[Shop]:
    """Build the shop on `config`; `outbound`: a test's own sender (it wins over the planner);
    `intake_owner`: this worker's lease owner, given by the supervisor that hands its
    messages back when it dies (`bot.wechat.intake`); a fresh one when None."""
    async with AsyncExitStack() as stack:
        engine = create_engine(
            config.database.url, echo=config.database.echo,
            busy_timeout_ms=round(config.database.busy_timeout_seconds * 1000),
        )
        stack.push_async_callback(engine.dispose)
        # analytics: events written in batches off the reply path, the last ones before the engine closes
        events = _event_recorder(config, engine, metrics)
        if isinstance(events, EventBuffer):
            events.start()
            stack.push_async_callback(events.close)
        # secrets the configuration leaves empty: the install's own, the same for every worker
        config = await resolve_install_secrets(config, shop_uows(engine))
        rules = shop_rules(config)
        # the sessions every entry point uses: they carry the shop rules and the order events' bus
        bus = shop_bus()
        counted = events.add if isinstance(events, EventBuffer) else None  # off: no queries for events
        sessions = shop_sessions(engine, rules=rules, bus=bus, counted=counted)
        uows = UnitOfWorkFactory(sessions, rules)  # the outbound side's own bookkeeping (no dispatcher)
        # the catalog in memory: staff edits applied after their commit, other workers' edits
        # polled every cache_seconds, a full rebuild in the background every rebuild_seconds
        catalog = Catalog(
            sessions, refresh_seconds=config.search.cache_seconds, rebuild_seconds=config.search.rebuild_seconds,
            query_cache_size=config.search.query_cache_size,
        )
        tell_catalog(bus, catalog)
        catalog.start()
        stack.push_async_callback(catalog.close)
        # the country's divisions that addresses are read against: built once per process
        # (about 40 ms), here rather than in the first customer's checkout
        await asyncio.to_thread(regions.warm_up)
        redis = open_redis(config.redis) if config.redis.url else None
        link: RedisLink | None = None
        if redis is not None:
            stack.push_async_callback(_close_redis, redis)
            link = RedisLink(redis, on_change=metrics.set_redis_up)
        renderer = Renderer(
            default_locale=config.shop.locale,
            base_url=config.public_base_url,
            shop_name=config.shop.name,
            timezone=config.shop.timezone,
            few_left_below=config.shop.few_left_below,
        )

        # --- outbound: with an appsecret, notifications go through the database outbox to
        # WeChat (customer-service message, else template, else wait); a test's sender wins ---
        alerts_box: list[StaffAlerts] = []  # the planner tells staff of a failed send; alerts send through it
        planner: NotificationPlanner | None = None
        if isinstance(outbound, NotificationPlanner):  # a test built its own (and owns its client)
            planner = outbound
        elif outbound is None and config.wechat.appsecret:
            wechat_http = aiohttp.ClientSession()
            stack.push_async_callback(wechat_http.close)
            planner = _build_planner(config, uows, link, wechat_http, alerts_box, renderer)
        sender: OutboundSender = (
            planner if planner is not None else outbound if outbound is not None else MemoryOutbox()
        )
        # what a unit of work told customers is in the outbox when it commits; then it is sent
        # by WeChat's rules (the planner), or straight to the sender without WeChat credentials
        delivery: Delivery = planner if planner is not None else DirectDelivery(
            uows=uows, outbound=sender, notices=NoticeRenderer(renderer=renderer, uows=uows)
        )
        stack.push_async_callback(delivery.drain)  # finish the immediate attempts
        uow = uows.with_dispatcher(delivery)  # every entry point's units of work
        notifier = OutboundNotifier(uows=uow)
        qr_codes: QrCodes = planner.client if planner is not None else NoQrCodes()
        wechat_media: MediaSource = planner.client if planner is not None else NoMediaSource()

        # --- staff alerts (drained after payments: a paid order's alert is one of its side effects) ---
        alerts = StaffAlerts(uows=uow, owners=config.staff.owners)
        alerts_box.append(alerts)
        stack.push_async_callback(alerts.drain)

        # --- payments: provider + PaymentService, one HTTP session for the provider ---
        pay_http = aiohttp.ClientSession()
        stack.push_async_callback(pay_http.close)
        payments = build_payment_service(
            config, uow, pay_http,
            on_paid=alerts.order_paid, on_notification=metrics.count_payment_notification,
        )
        stack.push_async_callback(payments.aclose)  # finish side effects, then close

        broadcasts = Broadcaster(uows=uow, delivery=delivery, max_age=timedelta(hours=config.broadcast.max_age_hours))
        stack.push_async_callback(broadcasts.drain)

        # every message written down before it is answered; what a dead worker left is swept up
        replies = DurableReplyStore(
            engine, opens_window=middleware.opens_window, lease_seconds=config.server.intake_lease_seconds,
            busy_deadline_seconds=config.database.busy_deadline_seconds, owner=intake_owner,
            history_seconds=config.service.keep_days * 86400,
        )
        stack.push_async_callback(replies.close)  # after the drain: hands back what is unfinished

        # with Redis: in Redis and in the database, so a conversation survives Redis down or emptied
        # (its database writes share the journal's group commit)
        store: DialogStore = (
            DurableDialogStore(RedisDialogStore(link.redis), link, uows, replies.write)
            if link is not None else MemoryDialogStore()
        )
        qr_cache: QrCache = FallbackQrCache(RedisQrCache(link.redis), link) if link is not None else MemoryQrCache()
        lines: TranscriptStore = (
            FallbackTranscriptStore(RedisTranscriptStore(link.redis), link) if link is not None else MemoryTranscriptStore()
        )
        # flash sales: with Redis, one Lua script decides a grab and only winners write; without,
        # the same decision in process (the database's UPDATE deciding among its winners)
        rush_gate: FallbackFlashGate | MemoryFlashGate = (
            FallbackFlashGate(RedisFlashGate(link.redis), link) if link is not None else MemoryFlashGate()
        )
        flash_gate: FlashGate = rush_gate
        # live pages: one hub per worker, poked by a grab here (and, with Redis, in every worker)
        live_hub = LiveHub(uows=uow, poll_seconds=config.live.poll_seconds, link=link)
        live_hub.start()
        stack.push_async_callback(live_hub.close)
        services = Services(
            config=config,
            catalog=catalog,
            dialogs=ShopDialogs(
                store,
                # the confirmation dialog acts through the staff commands' own entry (no import back)
                confirm=ConfirmDialog(on_answer=run_confirmed, on_command=run_beside_confirmation),
                ttl_seconds=config.dialog.ttl_seconds,
                on_transition=metrics.count_transition,
            ),
            customers=Customers(uow, replies.write),  # its writes share the journal's group commit
            staff=StaffDirectory(uow, owners=frozenset(config.staff.owners)),
            rules=rules,
            pay_url=lambda order: paylink.pay_url(config, order.order_no, order.openid, order.expires_at),
            payments=payments,
            invites=InviteService(qr_codes, qr_cache, base_url=config.public_base_url),
            notifier=notifier,
            alerts=alerts,
            broadcasts=broadcasts,
            uow=uow,
            transcripts=Transcripts(lines),
            flash_gate=flash_gate,
            live_hub=live_hub,
            media=LocalMediaStore(config.media.dir),
            sms=sms_sender(config),
            wechat_media=wechat_media,
            events=events,
        )

        inbox = _build_inbox(config, services, renderer, sender, link, metrics, replies, rush_gate)
        stack.push_async_callback(inbox.drain)
        sweeper = Sweeper(inbox, replies)
        sweeper.start()
        stack.push_async_callback(sweeper.stop)  # stopped first: nothing new is taken over

        jobs = JobContext(
            uow=uow, payments=payments, pay_url=services.pay_url,
            deliver_outbox=delivery.retry_due, drain=delivery.drain, flash_gate=flash_gate,
            alert=alerts.alert,
        )
        # several workers: with Redis, one worker runs each scheduler tick
        tick_lock: TickLock | None = FallbackTickLock(RedisTickLock(link.redis), link) if link is not None else None
        ticks = Ticks()
        scheduler = start_scheduler(jobs, lock=tick_lock, ticks=ticks) if config.scheduler.enabled else None
        if scheduler is not None:  # stopped first: running ticks finish while everything is open
            stack.push_async_callback(stop_scheduler, scheduler, ticks)

        yield Shop(
            config=config,
            engine=engine,
            renderer=renderer,
            services=services,
            outbound=sender,
            notifier=notifier,
            delivery=delivery,
            inbox=inbox,
            replay=_replay_cache(link),
            jobs=jobs,
            health=HealthChecks(
                engine=engine, redis=link, scheduler=scheduler, scheduler_enabled=config.scheduler.enabled,
                timeout=config.server.health_timeout_seconds,
            ),
        )


def _build_inbox(
    config: Config,
    services: Services,
    renderer: Renderer,
    outbound: OutboundSender,
    link: RedisLink | None,
    metrics: Metrics,
    replies: DurableReplyStore,
    rush_gate: RushGate,
) -> Inbox:
    routes, fallback = build_routes()
    # the message chain (bot/chat/middleware.py): one step a line, in order
    turn = middleware.chain([
        _rate_limit(config, services, link, metrics),
        middleware.retry_when_busy(middleware.BusyRetry(deadline=config.database.busy_deadline_seconds)),
        middleware.customer(services.customers),
        middleware.staff_role(services.staff),
        middleware.unit_of_work(services.uow),
        fence(replies),  # the route's commits are fenced on the message's lease
        Conversation(services, routes=routes, fallback=fallback),  # the route: answers
    ])

    async def respond(msg: Inbound) -> Rendered | Refused:
        answer = await turn(middleware.Turn(msg, locale=config.shop.locale))
        rendered = renderer.render(answer.reply, answer.locale)
        if answer.refused:  # a flood is not the conversation staff need to read
            return Refused(rendered)
        await services.transcripts.record_turn(msg, rendered)  # under the customer's lock: in order
        return rendered

    def fallback_reply(msg: Inbound) -> Rendered:
        return renderer.render(Text("error"), config.shop.locale)

    def busy_reply(msg: Inbound) -> Rendered:
        return renderer.render(Text("busy_kept"), config.shop.locale)

    # several workers: with Redis, per-user order is shared (de-duplication is the database's)
    # (while Redis fails, this worker's own locks: bot/wechat/degraded.py)
    user_locks: UserLock = FallbackUserLocks(RedisUserLocks(link.redis), link) if link is not None else UserLocks()
    return Inbox(
        respond=respond,
        fallback=fallback_reply,
        outbound=outbound,
        deadline=config.server.reply_deadline_seconds,
        replies=replies,
        locks=user_locks,
        postpone=replies.postpone,
        busy=busy_reply,
        on_outcome=metrics.count_request,
        on_deadline_miss=metrics.count_deadline_miss,
        # a bare "抢" is decided before the intake: a flash sale's losers never reach the database
        edge=FlashEdge(uows=services.uow, gate=rush_gate, render=renderer.render),
    )


def _event_recorder(config: Config, engine: AsyncEngine, metrics: Metrics) -> EventRecorder:
    """The analytics' batching recorder, or nothing recorded when `analytics.enabled` is off."""
    if not config.analytics.enabled:
        return NoEvents()

    async def write(batch: Sequence[Event]) -> None:
        await write_events(engine, batch)

    return EventBuffer(
        write, every=config.analytics.flush_seconds,
        on_written=metrics.count_events_written, on_dropped=metrics.count_events_dropped,
    )


def _replay_cache(link: RedisLink | None) -> ReplayCache:
    """Shared in Redis, in memory while Redis fails; in memory alone without Redis."""
    if link is None:
        return MemoryReplayCache()
    return FallbackReplayCache(RedisReplayCache(link.redis), MemoryReplayCache(), link)


async def _close_redis(redis: Redis) -> None:
    """Close the client and its pool (the pool is ours: `open_redis` made it)."""
    await redis.aclose()
    await redis.connection_pool.disconnect()


def _rate_limit(
    config: Config, services: Services, link: RedisLink | None, metrics: Metrics
) -> middleware.Middleware:
    """Per customer, in Redis when configured (open while it fails); `server.messages_per_minute = 0`: off.
    Staff have their own limit (`server.staff_messages_per_minute`; 0: none)."""
    limit = config.server.messages_per_minute
    if limit == 0:
        return middleware.passing

    def limiter_of(limit: int) -> RateLimiter:
        if link is not None:
            return FallbackRateLimiter(RedisRateLimiter(link.redis, limit=limit), link)
        return MemoryRateLimiter(limit=limit)

    staff_limit = config.server.staff_messages_per_minute
    staff = middleware.StaffLimit(services.staff, limiter_of(staff_limit) if staff_limit else None)

    async def locale_of(openid: str) -> str:
        return (await services.customers.touch(openid, before_turn=True)).locale or config.shop.locale

    def count(verdict: Verdict) -> None:
        metrics.rate_limited.labels(verdict.value).inc()

    return middleware.rate_limit(limiter_of(limit), locale_of=locale_of, on_limited=count, staff=staff)


def _build_planner(
    config: Config,
    uows: UnitOfWorkFactory,
    link: RedisLink | None,
    http: aiohttp.ClientSession,
    alerts: list[StaffAlerts],
    renderer: Renderer,
) -> NotificationPlanner:
    """`alerts`: filled in once the staff alerts exist (they send through this planner)."""
    wechat = config.wechat
    fetch = StableTokenFetcher(http, base_url=wechat.api_base_url, appid=wechat.appid, appsecret=wechat.appsecret)
    # (while Redis fails, this worker's own token: bot/wechat/degraded.py)
    store: TokenStore = (
        FallbackTokenStore(RedisTokenStore(link.redis), link) if link is not None else MemoryTokenStore()
    )
    client = WeChatClient(
        http, base_url=wechat.api_base_url, tokens=AccessTokenManager(fetch, store), timeout=wechat.api_timeout_seconds
    )

    async def tell_staff(item: OutboxItem, error: str, *, uncertain: bool = False) -> None:
        data = {"customer": openid_tail(item.openid), "event": item.event, "error": error[:100], "uncertain": uncertain}
        for staff_alerts in alerts:
            await staff_alerts.alert("alert_outbox_failed", data, MANAGERS)

    return NotificationPlanner(
        uows=uows,
        client=client,
        notices=NoticeRenderer(renderer=renderer, uows=uows),
        window_messages=wechat.window_messages,
        paid_window_messages=wechat.window_messages_after_payment,
        template_ids=parse_template_ids(wechat.template_ids),
        staff_alert_template_id=wechat.staff_alert_template_id.strip(),
        broadcast_max_age=timedelta(hours=config.broadcast.max_age_hours),
        max_attempts=wechat.outbox_max_attempts,
        backoff_base=timedelta(seconds=wechat.outbox_retry_seconds),
        alert=tell_staff,
        send_gate=SendRateGate(wechat.max_sends_per_second, redis=link.redis if link is not None else None),
    )

"""The services handlers may call, built once by `bot.bootstrap` (no globals), complete and frozen."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from bot.config import Config
from bot.dialogs.shop import ShopDialogs
from bot.dialogs.store import Writes
from commerce.catalog.read import Catalog
from commerce.customers.customers import CustomerInfo, touch_customer, touch_customer_now
from commerce.media.store import MediaStore
from commerce.membership.sms import SandboxSms, SmsSender, TencentSms, TencentSmsSettings
from commerce.orders.views import OrderView
from commerce.rules import ShopRules
from commerce.staff.models import StaffRole
from commerce.staff.staff import staff_roles
from commerce.uow import UnitOfWorkFactory

if TYPE_CHECKING:  # built by bot.bootstrap; only their types are needed here
    from bot.admin.broadcast import Broadcaster
    from bot.analytics import EventRecorder
    from bot.chat.transcript import Transcripts
    from bot.live_hub import LiveHub
    from bot.outbound.alerts import StaffAlerts
    from bot.outbound.notifier import OutboundNotifier
    from bot.web.invites import InviteService
    from bot.wechat.api.client import MediaSource
    from commerce.payments.service import PaymentService
    from commerce.promotions.flash_sales import FlashGate

TOUCH_INTERVAL_SECONDS = 60.0
GRAB_WRITERS = 2  # flash-sale grabs a worker writes at once (`Services.grab_writers`)


@dataclass(slots=True)
class Customers:
    """Records customers, writing at most once a minute per customer unless something changed.

    `before_turn`: the touch is made before the turn's route runs (the middleware's customer
    step, the rate limit's language), so no fence covers it. With `writes` (the inbound
    journal's group commit, `bot.wechat.intake.DurableReplyStore.write`) such a touch is
    one more short write there: on SQLite at once on the event loop, or in the transaction
    of the claims and replies queued meanwhile; on PostgreSQL batched with them. Any other
    touch (a subscribe event's, inside the route) goes through its own unit of work, which
    the turn's fence sees (`commerce.messaging.inbound.fenced`)."""

    uow: UnitOfWorkFactory
    writes: Writes | None = None
    _recent: dict[str, tuple[CustomerInfo, float]] = field(default_factory=dict)

    async def touch(
        self,
        openid: str,
        *,
        locale: str | None = None,
        subscribed: bool | None = None,
        messaged: bool = True,
        before_turn: bool = False,
    ) -> CustomerInfo:
        """`messaged`: the customer wrote (opens WeChat's 48-hour window and starts its count
        over; within the once-a-minute cache the reset waits for the next write). Notices
        waiting for the window are woken by every message, not here: in the transaction
        that writes the message down (`commerce.messaging.inbound.claim`)."""
        cached = self._recent.get(openid)
        now = time.monotonic()
        if (
            cached is not None
            and now - cached[1] < TOUCH_INTERVAL_SECONDS
            and (locale is None or locale == cached[0].locale)
            and subscribed is None
        ):
            return cached[0]
        if before_turn and self.writes is not None:
            done: list[CustomerInfo] = []
            await self.writes(
                lambda conn: done.append(
                    touch_customer_now(conn, openid, locale=locale, subscribed=subscribed, messaged=messaged)
                )
            )
            info = done[-1]
        else:
            async with self.uow() as uow:
                info = await touch_customer(
                    uow.session, openid, locale=locale, subscribed=subscribed, messaged=messaged
                )
        if len(self._recent) > 50_000:
            self._recent.clear()
        self._recent[openid] = (info, now)
        return info


def shop_rules(config: Config) -> ShopRules:
    """The commerce core's rules, from the [shop], [referral] and [points] sections of the config."""
    shop = config.shop
    return ShopRules(
        order_timeout=timedelta(minutes=shop.order_timeout_minutes),
        remind_before=timedelta(minutes=shop.remind_before_minutes),
        delivery_fee_fen=shop.delivery_fee_fen,
        free_delivery_threshold_fen=shop.free_delivery_threshold_fen,
        max_line_quantity=shop.max_line_quantity,
        auto_complete_after=timedelta(days=shop.auto_complete_days),
        return_window=timedelta(days=shop.return_window_days),
        group_time_limit=timedelta(hours=shop.group_buy_hours),
        new_customer_coupon=shop.new_customer_coupon.strip(),
        referral_binding=timedelta(days=config.referral.binding_days),
        commission_rate_bp=config.referral.commission_rate_bp,
        commission_on_group_orders=config.referral.commission_on_group_orders,
        withdrawal_min_fen=config.referral.withdrawal_min_fen,
        points_per_yuan=config.points.per_yuan,
        points_first_share=config.points.first_share,
        points_referral=config.points.referral,
        redeem_points_per_yuan=config.points.redeem_points_per_yuan,
        redeem_max_percent=config.points.redeem_max_percent,
        review_points=config.points.review,
        service_idle=timedelta(minutes=config.service.idle_minutes),
        conversation_keep=timedelta(days=config.service.keep_days),
        events_keep=timedelta(days=config.analytics.keep_days),
    )


def sms_sender(config: Config) -> SmsSender:
    """The [sms] provider: the sandbox (the chat shows the code) or Tencent Cloud SMS."""
    sms = config.sms
    if sms.provider != "tencent":
        return SandboxSms()
    return TencentSms(
        TencentSmsSettings(
            secret_id=sms.secret_id, secret_key=sms.secret_key, sdk_app_id=sms.sdk_app_id, sign_name=sms.sign_name,
            template_id=sms.template_id, region=sms.region, endpoint=sms.endpoint, timeout_seconds=sms.timeout_seconds,
        )
    )


@dataclass(slots=True)
class StaffDirectory:
    """Who is staff, in which role: config owners plus the staff table, re-read every 30 s.

    The whole (small) staff is held at once, not one openid at a time: a message from
    any customer asks who is staff (the rate limit and the staff-role step do), and a
    cache per openid missed for nearly every customer of a busy shop, one query each.
    One read every `ttl_seconds` (or after `forget`) now answers for everyone; turns
    arriving while it runs wait for that same read."""

    uow: UnitOfWorkFactory
    owners: frozenset[str]
    ttl_seconds: float = 30.0
    _roster: dict[str, StaffRole] | None = None
    _read_at: float = 0.0
    _reading: asyncio.Future[dict[str, StaffRole]] | None = None
    _generation: int = 0  # bumped by `forget`: a read begun before it is not kept

    async def role(self, openid: str) -> StaffRole | None:
        if openid in self.owners:
            return StaffRole.OWNER
        roster = self._roster
        if roster is None or time.monotonic() - self._read_at >= self.ttl_seconds:
            roster = await self._reread()
        return roster.get(openid)

    async def _reread(self) -> dict[str, StaffRole]:
        if self._reading is None or self._reading.done():
            self._reading = asyncio.ensure_future(self._read(self._generation))
        reading = self._reading
        try:
            return await asyncio.shield(reading)
        finally:
            if self._reading is reading and reading.done():
                self._reading = None

    async def _read(self, generation: int) -> dict[str, StaffRole]:
        started = time.monotonic()
        async with self.uow() as uow:
            roster = await staff_roles(uow.session, owners=self.owners)
        if generation == self._generation:  # no staff change since it began: current
            self._roster, self._read_at = roster, started
        return roster

    def forget(self, openid: str | None = None) -> None:
        """Call after a staff change so it takes effect at once in this process (the next
        message reads the staff again; a read under way is not kept)."""
        self._generation += 1
        self._roster = None
        self._reading = None


@dataclass(frozen=True, slots=True)
class Services:
    config: Config
    catalog: Catalog
    dialogs: ShopDialogs
    customers: Customers
    staff: StaffDirectory
    rules: ShopRules
    pay_url: Callable[[OrderView], str]
    payments: PaymentService
    invites: InviteService  # parametric QR codes and share links
    notifier: OutboundNotifier  # customer notices from staff commands and dialogs
    alerts: StaffAlerts
    broadcasts: Broadcaster
    uow: UnitOfWorkFactory  # every transaction of the bot: one unit of work each
    transcripts: Transcripts  # the recent conversation, for a hand-off to staff
    flash_gate: FlashGate  # decides flash-sale grabs before the database (Redis), or lets the database decide
    live_hub: LiveHub  # live pages wait here for the units left to change (bot/web/live.py)
    media: MediaStore  # product pictures (media.dir), served at /media/<name>
    wechat_media: MediaSource  # what users sent (a staff member's photo), fetched from WeChat
    events: EventRecorder  # analytics: what is worth counting, written in batches (bot/analytics.py)
    sms: SmsSender = field(default_factory=SandboxSms)  # members' one-time codes ([sms]: sandbox or Tencent Cloud)
    # flash-sale grabs this worker writes at once (bot.dialogs.flash): every winner writes the
    # same two rows, so more in flight only wait on their locks, each holding a pooled
    # connection the rest of the shop needs (300 winners at once: 30 a second, and WeChat's
    # retries; two at a time per worker: 72 a second, none retried)
    grab_writers: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(GRAB_WRITERS))

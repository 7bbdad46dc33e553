"""Prometheus metrics of the shop, in a registry of the app's own (no globals).

Counters move where things happen (webhook, inbox, dialog runtime, payment
notifications); gauges that describe the database (outbox depth, orders by status) are
read from it by `/metrics` just before rendering, with a timeout so a slow database
never hangs a scrape (the last values stay, and the failure is counted).

Every label is bounded: message kinds and events come from WeChat's fixed set (anything
else is "other"), dialog
names and states from the registered dialogs, outcomes and statuses from fixed lists.
"""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from commerce.orders.models import OrderStatus
from commerce.reports import gauges
from commerce.uow import UnitOfWorkFactory

log = logging.getLogger(__name__)

# Inbox outcomes, once per message ("duplicate": once per retried delivery)
REPLIED, FAILED, RATE_LIMITED, DUPLICATE = "replied", "failed", "rate_limited", "duplicate"

# WeChat's published message types and events (lower-cased, as `bot.wechat.protocol.parse` gives
# them). A signed request may still carry any MsgType or Event it likes: anything else is
# counted as "other", so no sender can mint new label values (unbounded series).
KINDS = frozenset({
    "text", "image", "voice", "video", "shortvideo", "location", "link", "file", "event",
})
EVENTS = frozenset({
    "subscribe", "unsubscribe", "scan", "location", "click", "view", "view_miniprogram",
    "templatesendjobfinish", "masssendjobfinish", "scancode_push", "scancode_waitmsg",
    "pic_sysphoto", "pic_photo_or_album", "pic_weixin", "location_select",
    "kf_create_session", "kf_close_session", "kf_switch_session",
})
OTHER = "other"


def kind_label(kind: str) -> str:
    return kind if kind in KINDS else OTHER


def event_label(event: str | None) -> str:
    if not event:
        return ""
    return event if event in EVENTS else OTHER


class Metrics:
    """The shop's counters, histograms and gauges, each a declared attribute, in one registry."""

    registry: CollectorRegistry
    messages: Counter
    rejected: Counter
    replays: Counter
    deferred: Counter
    rate_limited: Counter
    latency: Histogram
    requests: Counter
    deadline_misses: Counter
    dialog_transitions: Counter
    payment_notifications: Counter
    outbox: Gauge
    orders: Gauge
    refresh_failures: Counter
    redis_up: Gauge
    events_written: Counter
    events_dropped: Counter

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry if registry is not None else CollectorRegistry()
        self.messages = Counter(
            "storefront_messages",
            "Authenticated WeChat messages by type",
            ["kind", "event"],
            registry=r,
        )
        self.rejected = Counter(
            "storefront_rejected_requests", "Webhook requests refused", ["reason"], registry=r
        )
        self.replays = Counter(
            "storefront_webhook_replays",
            "Webhook requests whose (timestamp, nonce, signature) was seen before: refused (another "
            "body: a forgery) or retry (the same body again: answered from the first delivery)",
            ["outcome"],
            registry=r,
        )
        self.deferred = Counter(
            "storefront_deferred_replies",
            "Webhook deliveries answered 'success' without a reply (a first delivery past the deadline, "
            "or a retry of such a message); see storefront_deadline_misses for messages",
            registry=r,
        )
        self.rate_limited = Counter(
            "storefront_rate_limited_messages",
            "Messages refused by the per-user rate limit (warn: answered politely, silence: not)",
            ["verdict"],
            registry=r,
        )
        self.latency = Histogram(
            "storefront_webhook_seconds",
            "Webhook POST handling time",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 4.5),
        )
        # --- requests by type and outcome, deadline misses, dialogs, payments, database gauges ---
        self.requests = Counter(
            "storefront_requests",
            "Messages by type and outcome: replied, failed (the error reply was given) or rate_limited "
            "once per message; duplicate once per retried delivery",
            ["kind", "outcome"],
            registry=r,
        )
        self.deadline_misses = Counter(
            "storefront_deadline_misses",
            "Messages whose reply missed the passive-reply deadline and went out through the outbound sender",
            ["kind"],
            registry=r,
        )
        self.dialog_transitions = Counter(
            "storefront_dialog_transitions",
            "Dialog state changes (from 'start' when a dialog begins, to 'end' when it finishes)",
            ["dialog", "from_state", "to_state"],
            registry=r,
        )
        self.payment_notifications = Counter(
            "storefront_payment_notifications",
            "Verified payment and refund notifications by result (applied, duplicate, late, ...)",
            ["kind", "result"],
            registry=r,
        )
        self.outbox = Gauge(
            "storefront_outbox_messages",
            "Outbox rows waiting (pending), being sent (sending), given up (failed), or uncertain: "
            "sent once with no answer from WeChat, never sent again; staff should check with the customer",
            ["status"],
            registry=r,
        )
        self.orders = Gauge("storefront_orders", "Orders by status", ["status"], registry=r)
        self.refresh_failures = Counter(
            "storefront_metrics_refresh_failures",
            "Scrapes whose database gauges could not be read in time (the last values were kept)",
            registry=r,
        )
        self.redis_up = Gauge(
            "storefront_redis_up",
            "1 while Redis answers, 0 while this worker serves without it (in-process locks, "
            "open rate limit, dialogs from the database); 0 too without redis.url",
            registry=r,
        )
        # --- analytics (bot/analytics.py): events written in batches, or lost ---
        self.events_written = Counter(
            "storefront_events_written", "Analytics events written to shop_events (in batches)", registry=r
        )
        self.events_dropped = Counter(
            "storefront_events_dropped",
            "Analytics events lost: full (the buffer was full: the database away for long) or failed "
            "(their batch could not be written)",
            ["reason"],
            registry=r,
        )

    # ---- hooks handed to the inbox, the dialog runtime and the payment service ----------------

    def count_message(self, kind: str, event: str | None) -> None:
        self.messages.labels(kind_label(kind), event_label(event)).inc()

    def count_request(self, kind: str, outcome: str) -> None:
        self.requests.labels(kind_label(kind), outcome).inc()

    def count_deadline_miss(self, kind: str) -> None:
        self.deadline_misses.labels(kind_label(kind)).inc()

    def count_transition(self, dialog: str, from_state: str, to_state: str) -> None:
        self.dialog_transitions.labels(dialog, from_state, to_state).inc()

    def count_payment_notification(self, kind: str, result: str) -> None:
        self.payment_notifications.labels(kind, result).inc()

    def count_events_written(self, count: int) -> None:
        self.events_written.inc(count)

    def count_events_dropped(self, reason: str, count: int) -> None:
        self.events_dropped.labels(reason).inc(count)

    def set_redis_up(self, up: bool) -> None:
        self.redis_up.set(1 if up else 0)

    # ---- gauges read from the database ---------------------------------------------------------

    async def refresh(self, uows: UnitOfWorkFactory, *, timeout: float) -> bool:
        """Read outbox depth and orders by status; False (values kept) when that failed or took too long."""
        try:
            outbox, orders = await asyncio.wait_for(_read_counts(uows), timeout)
        except Exception as exc:  # TimeoutError included: a scrape must answer anyway
            log.warning("metrics: database gauges not refreshed: %s", type(exc).__name__)
            self.refresh_failures.inc()
            return False
        for status in gauges.OUTBOX_GAUGED:
            self.outbox.labels(status.value).set(outbox.get(status.value, 0))
        for order_status in OrderStatus:
            self.orders.labels(order_status.value).set(orders.get(order_status.value, 0))
        return True


async def _read_counts(uows: UnitOfWorkFactory) -> tuple[dict[str, int], dict[str, int]]:
    async with uows() as uow:
        return await gauges.outbox_and_orders(uow.session)

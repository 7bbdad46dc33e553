"""The notification planner: every outbound message through the outbox, by WeChat's rules.

`NotificationPlanner.send(openid, rendered)` is an `OutboundSender` (late chat replies,
staff alerts, broadcasts): it writes an outbox row in its own unit of work (nothing is lost if WeChat or the process fails)
and then tries delivery at once in a tracked background task. Later attempts come
from the scheduler's `deliver_outbox` job (`retry_due`).

One attempt, in order:

1. Inside the customer-service window (the customer wrote within 48 hours, or paid:
   WeChat allows more after a payment) and under its count (`wechat.window_messages`
   per customer message, `wechat.window_messages_after_payment` after a payment): a
   customer-service message. The count is reserved in the database before the call and given back if
   WeChat did not take the message.
2. Window closed or used up (by our count, or WeChat's 45015 / 45047): the event's
   template message when `wechat.template_ids` names one (a staff alert: else
   `wechat.staff_alert_template_id`).
3. Else the row waits for the customer to write again (`commerce.messaging.outbox.wake_waiting`,
   run as the message is written down, makes it due), for at most `max_wait`.

WeChat certainly did not take it (no connection, errcode -1 busy, 45009 quota, a
refusing 5xx): another attempt later, with growing pauses. After
`wechat.outbox_max_attempts` attempts (or `max_wait`) the row is failed and staff are
told (notifications only, not late chat replies, broadcasts (their report says it) nor
staff alerts themselves: no alert loops). A broadcast's row waits at most
`broadcast.max_age_hours`, then fails rather than going out stale. 43004 (the customer unfollowed) fails the row at once, silently.

At most once per row. WeChat's customer-service send has no idempotency key and no way
to ask whether a message arrived, and a send whose answer never came (a timeout after
the request went out, a connection reset while waiting, a gateway's 502/504:
`WeChatUncertain`, or an answer we cannot read) may well have reached the customer. Such
a row is never sent again: it becomes `uncertain`, staff are told (the outbox-failed
alert, worded for it) and `/metrics` counts it. A doubled "支付成功" is worse than a late
one that staff can see and follow up. A template message's row is reconciled by WeChat's
TEMPLATESENDJOBFINISH report (`outbox.template_finished`): it is then marked sent.

    pending --begin--> sending --CS ok / template ok--> sent
    sending --certainly not sent--> pending (next_attempt_at = now + backoff) --N attempts--> failed
    sending --no answer (uncertain)--> uncertain --TEMPLATESENDJOBFINISH (template)--> sent
    sending --no window, no template--> pending (waiting) --customer writes--> due
    sending --43004--> failed

Notices (rows a unit of work wrote in its own transaction, `commerce.messaging.notices`)
hold a template name and data: they are rendered in the customer's language at each
attempt, and the event's template message (e.g. order_paid) is chosen as the fallback.
`dispatch` is the units of work's `Dispatcher`: their rows are attempted at once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from bot.chat.render import Rendered, clip, yuan
from bot.outbound.delivery import (
    NoticeRenderer,
    OutboxDelivery,
    Unrenderable,
    from_payload,
    to_payload,
)
from bot.wechat.api import (
    CustomerServiceSender,
    ErrCode,
    WeChatClient,
    WeChatError,
    WeChatUnavailable,
    WeChatUncertain,
)
from bot.wechat.ratelimit import SendRateGate
from commerce.messaging import broadcast, outbox
from commerce.messaging.broadcast import BROADCAST_EVENT
from commerce.messaging.outbox import OutboxItem
from commerce.uow import UnitOfWorkFactory

log = logging.getLogger(__name__)

ALERT_PREFIX = "alert_"  # the events of staff alerts (bot.outbound.alerts)
PLAIN_EVENT = "message"  # late chat replies, staff alerts, broadcasts: no template, no alert
CS = "customer_service"
TEMPLATE = outbox.TEMPLATE_CHANNEL
TEMPLATE_VALUE_LIMIT = 200


class StaffAlert(Protocol):
    """Tells staff that a customer's message failed, or may not have arrived (`uncertain`)."""

    def __call__(self, item: OutboxItem, error: str, *, uncertain: bool = False) -> Awaitable[None]: ...


def is_uncertain(exc: WeChatError) -> bool:
    """WeChat may have taken the message: no answer came, or none we could read."""
    return isinstance(exc, WeChatUncertain) or exc.errcode == ErrCode.UNREADABLE


def _utcnow() -> datetime:
    return datetime.now(UTC)


def parse_template_ids(raw: str) -> dict[str, str]:
    """ "order_paid=ID1, order_shipped=ID2" -> {"order_paid": "ID1", ...}; ValueError if malformed."""
    pairs: dict[str, str] = {}
    for part in raw.split(","):
        if not part.strip():
            continue
        event, sep, template_id = part.partition("=")
        if not sep or not event.strip() or not template_id.strip():
            raise ValueError(f"wechat.template_ids: expected EVENT=TEMPLATE_ID, got {part.strip()!r}")
        pairs[event.strip()] = template_id.strip()
    return pairs


def template_data(message: Rendered, data: Mapping[str, Any] | None) -> dict[str, str]:
    """Template-message fields: `first` is the message itself; the notification's plain
    values follow under their own names (`*_fen` also as yuan without the suffix)."""
    text = message.text or (message.articles[0].title if message.articles else "")
    fields = {"first": clip(text, TEMPLATE_VALUE_LIMIT)}
    for key, value in (data or {}).items():
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int) and key.endswith("_fen"):
            fields[key.removesuffix("_fen")] = yuan(value)
        if isinstance(value, datetime | date):
            fields[key] = value.isoformat(timespec="minutes") if isinstance(value, datetime) else value.isoformat()
        elif isinstance(value, str | int | float):
            fields[key] = clip(str(value), TEMPLATE_VALUE_LIMIT)
    fields.setdefault("remark", "")
    return fields


class NotificationPlanner(OutboxDelivery):
    def __init__(
        self,
        *,
        uows: UnitOfWorkFactory,
        client: WeChatClient,
        notices: NoticeRenderer | None = None,
        window_messages: int = 5,
        paid_window_messages: int = 20,
        template_ids: Mapping[str, str] | None = None,
        staff_alert_template_id: str = "",
        max_attempts: int = 8,
        alert: StaffAlert | None = None,
        send_gate: SendRateGate | None = None,
        clock: Callable[[], datetime] = _utcnow,
        backoff_base: timedelta = timedelta(seconds=30),
        backoff_max: timedelta = timedelta(hours=1),
        lease: timedelta = timedelta(minutes=2),
        max_wait: timedelta = timedelta(days=7),
        broadcast_max_age: timedelta = timedelta(hours=24),
    ) -> None:
        super().__init__(uows=uows, lease=lease, clock=clock)
        self._notices = notices
        self._client = client
        self._cs = CustomerServiceSender(client)
        self.window_messages = max(0, window_messages)
        self.paid_window_messages = max(0, paid_window_messages)
        self.template_ids = dict(template_ids or {})
        self.staff_alert_template_id = staff_alert_template_id
        self.max_attempts = max(1, max_attempts)
        self.alert = alert
        self.send_gate: SendRateGate | None = send_gate
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._max_wait = max_wait
        self._broadcast_max_age = broadcast_max_age

    # ---- OutboundSender ---------------------------------------------------------------------

    async def send(
        self, openid: str, message: Rendered, *, event: str = PLAIN_EVENT, data: Mapping[str, Any] | None = None
    ) -> None:
        """Keep the message in the outbox, then try to deliver it in the background."""
        if message.kind not in ("text", "news") or not (message.text or message.articles):
            return  # transfer and silence: nothing to send
        template = None
        template_id = self.template_id(event)
        if template_id:
            url = (data or {}).get("pay_url") or ""
            template = {"template_id": template_id, "data": template_data(message, data), "url": str(url)}
        async with self._uows() as uow:
            item = await outbox.enqueue(
                uow.session,
                openid=openid,
                event=event,
                payload=to_payload(message),
                template=template,
                now=self.clock(),
                lease=self._lease,
            )
        self._background.spawn(self._deliver(item))

    def template_id(self, event: str) -> str:
        """The template message an event falls back to: its own (`wechat.template_ids`), else for
        a staff alert (`alert_*`) the staff alerts' one (`wechat.staff_alert_template_id`), so
        that staff whose window is closed are told at once, not when they next write."""
        own = self.template_ids.get(event)
        if own:
            return own
        return self.staff_alert_template_id if event.startswith(ALERT_PREFIX) else ""

    async def _gate(self) -> None:
        if self.send_gate is not None:
            await self.send_gate.wait()

    @property
    def client(self) -> WeChatClient:
        """The WeChat API client it sends with (also used for QR codes)."""
        return self._client

    # ---- one attempt --------------------------------------------------------------------------

    async def _deliver(self, item: OutboxItem) -> None:
        try:
            await self._attempt(await self._rendered(item))
        except Unrenderable as exc:  # it would fail again: failed at once, staff told
            await self._fail(item, f"render: {exc}", attempts=item.attempts + 1)
        except Exception:  # the row keeps its lease and comes back when it runs out
            log.exception("outbox %s: delivery attempt failed unexpectedly", item.id)

    async def _rendered(self, item: OutboxItem) -> OutboxItem:
        """A notice row as it is sent: rendered in the customer's language, with the template
        message its event names (`wechat.template_ids`) as the fallback."""
        if self._notices is None:
            return item
        message, data = await self._notices.rendered(item)
        if data is None:  # rendered when it was written
            return item
        template = None
        template_id = self.template_id(item.event)
        if template_id:
            url = data.get("pay_url") or ""
            template = {"template_id": template_id, "data": template_data(message, data), "url": str(url)}
        return replace(item, payload=to_payload(message), template=template)

    def max_wait(self, event: str) -> timedelta:
        """How long a row may wait for the customer's window: a broadcast is not sent stale
        (`broadcast.max_age_hours`); anything else up to `max_wait`."""
        return self._broadcast_max_age if event == BROADCAST_EVENT else self._max_wait

    async def _attempt(self, item: OutboxItem) -> None:
        now = self.clock()
        max_wait = self.max_wait(item.event)
        if now - item.created_at > max_wait:
            expired = broadcast.EXPIRED if item.event == BROADCAST_EVENT else "no way to reach the customer in time"
            await self._fail(item, expired, attempts=item.attempts)
            return
        async with self._uows() as uow:  # the row and a window message taken together
            if not await outbox.begin_send(uow.session, item.id, now=now, lease=self._lease):
                log.info("outbox %s: not pending any more, left alone", item.id)
                return
            reserved = await outbox.use_window(
                uow.session, item.openid, now=now, limit=self.window_messages, paid_limit=self.paid_window_messages
            )
            if reserved:
                await outbox.mark_channel(uow.session, item.id, CS)
        if reserved and await self._send_customer_service(item):
            return
        if item.template:
            await self._send_template(item)
            return
        async with self._uows() as uow:
            await outbox.mark_waiting(uow.session, item.id, until=item.created_at + max_wait)
        log.info("outbox %s: window closed and no template for %s; waiting", item.id, item.event)

    async def _send_customer_service(self, item: OutboxItem) -> bool:
        """One customer-service send; False when WeChat says the window is closed (45015/45047):
        certainly not sent, the template may be tried."""
        try:
            await self._gate()
            await self._cs.send(item.openid, from_payload(item.payload))
        except WeChatError as exc:
            if is_uncertain(exc):
                await self._uncertain(item, CS, exc)  # the window message stays used: it may have been
                return True
            if exc.errcode not in (ErrCode.WINDOW_CLOSED, ErrCode.OVER_QUOTA):
                async with self._uows() as uow:
                    await outbox.release_window(uow.session, item.openid)
                await self._failed_attempt(item, exc)
                return True
            async with self._uows() as uow:
                await outbox.close_window(
                    uow.session, item.openid, limit=max(self.window_messages, self.paid_window_messages)
                )
            log.info("outbox %s: window closed (%s), falling back", item.id, exc.errcode)
            return False
        await self._sent(item, CS)
        return True

    async def _send_template(self, item: OutboxItem) -> None:
        assert item.template is not None
        async with self._uows() as uow:
            await outbox.mark_channel(uow.session, item.id, TEMPLATE)
        try:
            await self._gate()
            msgid = await self._client.send_template(
                item.openid,
                str(item.template["template_id"]),
                dict(item.template.get("data") or {}),
                url=item.template.get("url") or None,
            )
        except WeChatError as exc:
            if is_uncertain(exc):
                await self._uncertain(item, TEMPLATE, exc)
            else:
                await self._failed_attempt(item, exc)
            return
        await self._sent(item, TEMPLATE, msgid=msgid)

    async def _uncertain(self, item: OutboxItem, channel: str, exc: WeChatError) -> None:
        """WeChat may have it: never sent again; staff are told to check (notifications only)."""
        error = f"{channel}: {exc.errmsg}"
        async with self._uows() as uow:
            await outbox.mark_uncertain(uow.session, item.id, channel=channel, error=error, attempts=item.attempts + 1)
        log.error("outbox %s (%s): outcome unknown (%s), not sent again", item.id, item.event, error)
        await self._tell_staff(item, error, uncertain=True)

    async def _left_uncertain(self, message_ids: Sequence[int]) -> None:
        """A worker died (or hung) during these attempts: staff check with the customers."""
        for message_id in message_ids:
            async with self._uows() as uow:
                item = await outbox.get(uow.session, message_id)
            if item is not None:
                await self._tell_staff(item, outbox.UNFINISHED, uncertain=True)

    async def _sent(self, item: OutboxItem, channel: str, *, msgid: int | None = None) -> None:
        async with self._uows() as uow:
            await outbox.mark_sent(uow.session, item.id, channel=channel, now=self.clock(), template_msgid=msgid)
        log.info("outbox %s: sent (%s)", item.id, channel)

    async def _failed_attempt(self, item: OutboxItem, exc: WeChatError) -> None:
        attempts = item.attempts + 1
        error = f"{exc.errcode}: {exc.errmsg}"
        if exc.errcode == ErrCode.UNSUBSCRIBED:
            async with self._uows() as uow:
                await outbox.mark_failed(uow.session, item.id, error=error, attempts=attempts)
            log.info("outbox %s: the customer does not follow the account", item.id)
            return
        if attempts >= self.max_attempts:
            await self._fail(item, error, attempts=attempts)
            return
        pause = min(self._backoff_max, self._backoff_base * (2 ** (attempts - 1)))
        async with self._uows() as uow:
            await outbox.mark_retry(
                uow.session, item.id, error=error, attempts=attempts, next_attempt_at=self.clock() + pause
            )
        kind = "unavailable" if isinstance(exc, WeChatUnavailable) else "refused"
        log.warning("outbox %s: WeChat %s (%s), attempt %s, again in %s", item.id, kind, exc.errcode, attempts, pause)

    async def _fail(self, item: OutboxItem, error: str, *, attempts: int) -> None:
        async with self._uows() as uow:
            await outbox.mark_failed(uow.session, item.id, error=error, attempts=attempts)
        log.error("outbox %s (%s): given up after %s attempts: %s", item.id, item.event, attempts, error)
        await self._tell_staff(item, error)

    async def _tell_staff(self, item: OutboxItem, error: str, *, uncertain: bool = False) -> None:
        """Staff hear of a customer's notification in trouble (not of late chat replies nor of
        their own alerts: no alert loops); a failure to tell them is only logged."""
        if self.alert is None or item.event in (PLAIN_EVENT, BROADCAST_EVENT) or item.event.startswith(ALERT_PREFIX):
            return
        try:
            await self.alert(item, error, uncertain=uncertain)
        except Exception:
            log.exception("outbox %s: staff could not be told", item.id)

"""Staff alerts: tell the staff who have not muted them that something needs a human.

Each alert is a template `alert_<what>.j2` rendered in the staff member's language: a
new paid order (owners, operators), a new after-sales request (everyone), a customer
asking for a human (everyone: a service ticket), what the customer says on their open
ticket (the staff member holding it, else everyone), a customer asking to hurry a paid order (owners,
operators; once per order in `URGE_QUIET_SECONDS` per worker), a variant that fell to or
below its low-stock threshold after an order (owners, operators), a commission
withdrawal request (owners, operators), a customer's notification that failed or may not
have arrived (owners, operators; `bot/bootstrap.py`). Who gets them is the commerce
core's answer (`commerce.staff.staff.alert_recipients`: staff in those roles who have
not sent /mute). A broadcast's report (`alert_broadcast_report`) is written by the core
(`commerce.messaging.broadcast`) for the owner who sent it. Staff whose 48-hour window is
closed get them as the template message `wechat.staff_alert_template_id`
(`bot.outbound.planner`).

An alert is an outbox notice per recipient (`commerce.messaging.notices`), sent like
any notice: after the commit, by the delivery's rules, at most once per row, rendered
in the recipient's language when it is sent. Where the alert has a cause with a
transaction, its rows are written in that transaction (`queue`): a paid order's alert
in the payment's unit of work (`order_paid`, the payment service's `on_paid`), an
after-sales request's in the request's (`after_sales`), a withdrawal's in its own, the
low-stock check in the order's (`low_stock`), a service ticket's in the ticket's (`handoff`,
`ticket_message`), so the alert and its cause are committed
together or not at all. Alerts without such a transaction here (an urge) are
written in a unit of work of their own, in a tracked background task (`*_soon`) that
`drain()` waits for. An alert never fails the action that raised it. Logs carry no
openids.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from commerce.background import BackgroundTasks
from commerce.catalog import admin as catalog_admin
from commerce.customers.handoffs import Ticket
from commerce.groupbuys import groups as group_buys
from commerce.messaging import notices
from commerce.orders.views import OrderView, order_data
from commerce.staff import staff
from commerce.staff.models import StaffRole
from commerce.uow import UnitOfWork, UnitOfWorkFactory

log = logging.getLogger(__name__)

EVERYONE: frozenset[StaffRole] = frozenset(StaffRole)
MANAGERS: frozenset[StaffRole] = frozenset({StaffRole.OWNER, StaffRole.OPERATOR})
OPENID_TAIL = 6
URGE_QUIET_SECONDS = 6 * 3600  # a customer who asks again and again alerts staff once
URGE_REMEMBERED = 10_000
ALERT_LINES = 8  # of the conversation before a hand-off: enough to see what it is about


def openid_tail(openid: str) -> str:
    """Enough of an openid for staff to tell customers apart, not the whole identifier."""
    return openid[-OPENID_TAIL:]


def _said_line(line: Mapping[str, str]) -> dict[str, Any]:
    """A hand-off's conversation line as the alert template reads it (`from` is a Jinja keyword)."""
    return {"at": datetime.fromisoformat(line["at"]), "speaker": line["from"], "text": line["text"]}


class StaffAlerts:
    def __init__(self, *, uows: UnitOfWorkFactory, owners: Collection[str]) -> None:
        self._uows = uows
        self._owners = frozenset(owners)
        self._background = BackgroundTasks(what="staff alert")
        self._urged: dict[str, float] = {}  # order_no -> when staff were last told

    # ---- writing alerts ------------------------------------------------------------------

    async def queue(
        self, session: AsyncSession, template: str, data: Mapping[str, Any], roles: Iterable[StaffRole] = EVERYONE
    ) -> int:
        """In the transaction of `session`: `template` for every staff member in `roles` with
        alerts on, sent once it commits; how many. Never raises (logged): an alert does not
        fail its cause."""
        try:
            recipients = await staff.alert_recipients(session, owners=self._owners, roles=frozenset(roles))
            for openid in recipients:
                notices.queue(session, openid=openid, template=template, data=data)
        except Exception:
            log.exception("staff alert %s could not be written", template)
            return 0
        log.info("staff alert %s written for %d", template, len(recipients))
        return len(recipients)

    async def alert(
        self, template: str, data: Mapping[str, Any], roles: Iterable[StaffRole] = EVERYONE
    ) -> int:
        """`queue` in a unit of work of its own (an alert whose cause has no transaction here)."""
        async with self._uows() as uow:
            return await self.queue(uow.session, template, data, roles)

    def soon(self, template: str, data: Mapping[str, Any], roles: Iterable[StaffRole] = EVERYONE) -> None:
        """`alert` in a tracked background task."""
        self._background.spawn(self.alert(template, data, roles))


    async def drain(self) -> None:
        """Wait for the work started so far (on shutdown, and in tests), the first attempts
        of the alerts written included."""
        await self._background.drain()
        await self._uows.dispatcher.drain()

    # ---- the alerts ------------------------------------------------------------------

    async def order_paid(self, uow: UnitOfWork, order: OrderView) -> None:
        """A new paid order, in the payment's unit of work (the payment service's `on_paid`).
        A seat of a group not filled yet says so instead of inviting `/ship`: it cannot ship;
        the seat that fills its group names every seat that may ship now."""
        waiting = await group_buys.waiting_for_group(uow.session, order_ids=[order.id])
        joined, size = waiting.get(order.id, (0, 0))
        ready = await group_buys.seats_ready_to_ship(uow.session, order_id=order.id)
        data = {
            "group_code": ready[0] if ready else "",
            "group_ready": ready[1] if ready else [],
            "group_wait": order.id in waiting,
            "group_joined": joined,
            "group_size": size,
            "order_no": order.order_no,
            "amount_fen": order.paid_fen,
            "items": order_data(order)["items"],
            "customer": openid_tail(order.openid),
            "address_text": order.address_text,
        }
        await self.queue(uow.session, "alert_order_paid", data, MANAGERS)

    async def after_sales(
        self, session: AsyncSession, order: OrderView, *, request_id: int, kind: str, reason: str
    ) -> None:
        """A customer asked for a refund or a return: in the request's own transaction; the
        alert names the request as /approve and /reject take it."""
        data = {
            "request_id": request_id,
            "order_no": order.order_no,
            "kind": kind,
            "reason": reason,
            "status": str(order.status),
            "amount_fen": order.paid_fen - order.refunded_fen,
            "customer": openid_tail(order.openid),
        }
        await self.queue(session, "alert_after_sales", data, EVERYONE)

    async def address_changed(self, session: AsyncSession, order: OrderView, *, before: str) -> None:
        """A customer changed the address of a paid order (staff may be packing it), in the
        change's own transaction; the alert says what to ship to now."""
        data = {
            "order_no": order.order_no,
            "customer": openid_tail(order.openid),
            "before": before,
            "after": " ".join((order.address_name, order.address_phone, order.address_text)),
        }
        await self.queue(session, "alert_address_changed", data, MANAGERS)

    async def handoff(self, session: AsyncSession, ticket: Ticket) -> int:
        """A customer asked for a human, in the ticket's own transaction: its number, what
        they wrote, their cart, their last order and the last few lines said before (the
        ticket keeps more), to every staff member on duty."""
        context = ticket.context
        data = {
            "ticket": ticket.id,
            "customer": openid_tail(ticket.openid),
            "message": str(context.get("message", "")),
            "cart": list(context.get("cart") or []),
            "cart_total_fen": int(context.get("cart_total_fen") or 0),
            "last_order": context.get("last_order"),
            "recent": [_said_line(line) for line in list(context.get("recent") or [])[-ALERT_LINES:]],
        }
        return await self.queue(session, "alert_handoff", data, EVERYONE)

    async def ticket_message(self, session: AsyncSession, ticket: Ticket, *, text: str, closed: bool = False) -> int:
        """The customer wrote on their open ticket (or `closed` it): to the staff member holding
        it, or to everyone on duty while nobody has answered yet; in the message's transaction."""
        data = {"ticket": ticket.id, "customer": openid_tail(ticket.openid), "text": text, "closed": closed}
        if ticket.assignee:
            notices.queue(session, openid=ticket.assignee, template="alert_ticket_message", data=data)
            return 1
        return await self.queue(session, "alert_ticket_message", data, EVERYONE)

    def urged_soon(self, order: OrderView, *, now: float | None = None) -> bool:
        """A customer asked to hurry their paid order; False when staff were told of this
        order within `URGE_QUIET_SECONDS` (by this worker: a second worker may tell once
        more, which is harmless)."""
        now = time.monotonic() if now is None else now
        last = self._urged.get(order.order_no)
        if last is not None and now - last < URGE_QUIET_SECONDS:
            return False
        if len(self._urged) >= URGE_REMEMBERED:
            self._urged = {no: at for no, at in self._urged.items() if now - at < URGE_QUIET_SECONDS}
        self._urged[order.order_no] = now
        data = {
            "order_no": order.order_no,
            "paid_at": order.paid_at or order.created_at,
            "items": order_data(order)["items"],
            "customer": openid_tail(order.openid),
        }
        self.soon("alert_urged", data, MANAGERS)
        return True

    async def low_stock(self, session: AsyncSession, order: OrderView) -> int:
        """In the order's own transaction, once it is placed: its variants that this order
        took to or below their threshold (the ones already below were told before)."""
        ordered: dict[int, int] = {}
        for line in order.lines:
            ordered[line.variant_id] = ordered.get(line.variant_id, 0) + line.quantity
        try:
            low = await catalog_admin.variants_below_threshold(session, variant_ids=list(ordered))
        except Exception:  # the order stands without its alert
            log.exception("low-stock check failed after order %s", order.order_no)
            return 0
        fell = [v for v in low if v["stock"] + ordered.get(v["variant_id"], 0) > v["threshold"]]
        if not fell:
            return 0
        variants = [{k: v[k] for k in ("product", "label", "stock", "threshold", "sku_code")} for v in fell]
        return await self.queue(session, "alert_low_stock", {"order_no": order.order_no, "variants": variants}, MANAGERS)

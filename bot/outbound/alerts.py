"""Staff alerts: tell the staff who have not muted them that something needs a human.

Five alerts, each a template `alert_<what>.j2` rendered in the staff member's language:
a new paid order (owners, operators), a new after-sales request (everyone), a customer
asking for a human (everyone), a customer asking to hurry a paid order (owners,
operators; once per order in `URGE_QUIET_SECONDS` per worker), a variant that fell to or below its low-stock threshold
after an order (owners, operators). Who gets them is the commerce core's answer
(`commerce.staff.staff.alert_recipients`: staff in those roles who have not sent /mute).

Handlers call the `*_soon` methods: the sending runs in a tracked background task (it
is slow I/O and must not hold up the 5-second passive reply) that `drain()` waits for
on shutdown. A failed send is logged and skipped; an alert never fails the action that
raised it. Logs carry no openids.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.chat.render import Rendered, Renderer
from bot.chat.replies import Text
from bot.outbound.sender import OutboundSender
from commerce.background import BackgroundTasks
from commerce.catalog import admin as catalog_admin
from commerce.customers.models import Customer
from commerce.orders.views import OrderView, order_data
from commerce.staff import staff
from commerce.staff.models import StaffRole
from commerce.uow import UnitOfWorkFactory

log = logging.getLogger(__name__)

EVERYONE: frozenset[StaffRole] = frozenset(StaffRole)
MANAGERS: frozenset[StaffRole] = frozenset({StaffRole.OWNER, StaffRole.OPERATOR})
OPENID_TAIL = 6
URGE_QUIET_SECONDS = 6 * 3600  # a customer who asks again and again alerts staff once
URGE_REMEMBERED = 10_000


def openid_tail(openid: str) -> str:
    """Enough of an openid for staff to tell customers apart, not the whole identifier."""
    return openid[-OPENID_TAIL:]


class StaffAlerts:
    def __init__(
        self,
        *,
        uows: UnitOfWorkFactory,
        renderer: Renderer,
        outbound: OutboundSender,
        owners: Collection[str],
    ) -> None:
        self._uows = uows
        self._renderer = renderer
        self._outbound = outbound
        self._owners = frozenset(owners)
        self._background = BackgroundTasks(what="staff alert")
        self._urged: dict[str, float] = {}  # order_no -> when staff were last told

    # ---- sending ------------------------------------------------------------------------

    async def alert(
        self, template: str, data: Mapping[str, Any], roles: Iterable[StaffRole] = EVERYONE
    ) -> int:
        """Send `template` to every staff member in `roles` with alerts on; how many got it."""
        async with self._uows() as uow:
            session = uow.session
            recipients = await staff.alert_recipients(session, owners=self._owners, roles=frozenset(roles))
            locales = await self._locales(session, recipients)
        rendered: dict[str, Rendered] = {}
        sent = 0
        for openid in recipients:
            locale = locales.get(openid) or self._renderer.default_locale
            if locale not in rendered:
                rendered[locale] = self._renderer.render(Text(template, dict(data)), locale)
            try:
                await self._outbound.send(openid, rendered[locale])
            except Exception:
                log.exception("staff alert %s could not be sent", template)
                continue
            sent += 1
        log.info("staff alert %s sent to %d of %d", template, sent, len(recipients))
        return sent

    async def _locales(self, session: AsyncSession, openids: list[str]) -> dict[str, str | None]:
        if not openids:
            return {}
        rows = await session.execute(select(Customer.openid, Customer.locale).where(Customer.openid.in_(openids)))
        return {openid: locale for openid, locale in rows.all()}

    def soon(self, template: str, data: Mapping[str, Any], roles: Iterable[StaffRole] = EVERYONE) -> None:
        """`alert` in a tracked background task."""
        self._background.spawn(self.alert(template, data, roles))


    async def drain(self) -> None:
        """Wait for the work started so far (on shutdown, and in tests)."""
        await self._background.drain()

    # ---- the alerts ------------------------------------------------------------------

    async def order_paid(self, order: OrderView) -> None:
        """A new paid order (the payment service's `on_paid` callback)."""
        await self.alert(
            "alert_order_paid",
            {
                "order_no": order.order_no,
                "amount_fen": order.paid_fen,
                "items": order_data(order)["items"],
                "customer": openid_tail(order.openid),
                "address_text": order.address_text,
            },
            MANAGERS,
        )

    def after_sales_soon(self, order: OrderView, *, kind: str, reason: str) -> None:
        """A customer asked for a refund or a return."""
        data = {
            "order_no": order.order_no,
            "kind": kind,
            "reason": reason,
            "status": str(order.status),
            "amount_fen": order.paid_fen - order.refunded_fen,
            "customer": openid_tail(order.openid),
        }
        self.soon("alert_after_sales", data, EVERYONE)

    def handoff_soon(self, *, openid: str, context: Mapping[str, Any]) -> None:
        """A customer asked for a human: what they wrote, their cart and their last order."""
        data = {
            "customer": openid_tail(openid),
            "message": str(context.get("message", "")),
            "cart": list(context.get("cart") or []),
            "cart_total_fen": int(context.get("cart_total_fen") or 0),
            "last_order": context.get("last_order"),
        }
        self.soon("alert_handoff", data, EVERYONE)

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

    def low_stock_soon(self, order: OrderView) -> None:
        """After an order: its variants that this order took to or below their threshold."""
        self._background.spawn(self.low_stock(order))

    async def low_stock(self, order: OrderView) -> int:
        ordered: dict[int, int] = {}
        for line in order.lines:
            ordered[line.variant_id] = ordered.get(line.variant_id, 0) + line.quantity
        async with self._uows() as uow:
            session = uow.session
            low = await catalog_admin.variants_below_threshold(session, variant_ids=list(ordered))
        # only those this order took across the line: the ones already below were told before
        fell = [v for v in low if v["stock"] + ordered.get(v["variant_id"], 0) > v["threshold"]]
        if not fell:
            return 0
        variants = [{k: v[k] for k in ("product", "label", "stock", "threshold", "sku_code")} for v in fell]
        return await self.alert("alert_low_stock", {"order_no": order.order_no, "variants": variants}, MANAGERS)

"""The scheduled jobs: each a thin, idempotent call into the commerce core.

A job finds the work that is due *now* (not "since the last run"), so running it twice
does nothing the second time and a run after downtime catches up on everything
overdue. Each job's transactions are units of work (`commerce.uow`): what a job tells a
customer is written to the outbox with the change it is about and sent after the
commit; calls that leave the process (closing the provider's order) come after it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from commerce.messaging.notifications import Notification
from commerce.orders import actions as order_actions
from commerce.orders import status as order_status
from commerce.orders.views import OrderView, order_data
from commerce.promotions import flash_sales
from commerce.promotions.flash_sales import NO_GATE, FlashGate
from commerce.rules import ShopRules
from commerce.uow import UnitOfWorkFactory

log = logging.getLogger(__name__)
T = TypeVar("T")


class PaymentCloser(Protocol):
    async def close(self, *, order_no: str) -> None: ...

    async def settle_owed_refunds(self, *, now: datetime | None = None) -> int: ...

    # group buys: the paid seats of a failed or closed group are refunded (PaymentService.refund)
    async def refund(
        self, *, order_id: int, amount_fen: int, reason: str, actor: str, notice: Notification | None = None
    ) -> Any: ...


def _now() -> datetime:
    return datetime.now(UTC)


async def _nothing() -> None:
    return None


async def _no_alert(template: str, data: Mapping[str, Any]) -> int:
    log.error("staff alert %s not sent: no alerts wired", template)
    return 0


@dataclass(frozen=True, slots=True)
class JobContext:
    uow: UnitOfWorkFactory  # every job's transactions; what they tell customers goes with them
    payments: PaymentCloser
    # delivers the outbox rows that are due (the bot's planner, or its direct delivery)
    deliver_outbox: Callable[[], Awaitable[int]]
    pay_url: Callable[[OrderView], str] = lambda order: ""
    clock: Callable[[], datetime] = field(default=_now)
    # waits for the first attempts of the messages a run caused (sent after its commits)
    drain: Callable[[], Awaitable[None]] = field(default=_nothing)
    flash_gate: FlashGate = NO_GATE  # Redis in front of flash sales (bot.flash_gate), kept in line here
    # tells the staff (bot.outbound.alerts.StaffAlerts.alert: template, data) -> recipients
    alert: Callable[[str, Mapping[str, Any]], Awaitable[int]] = _no_alert

    @property
    def rules(self) -> ShopRules:
        return self.uow.rules


async def in_unit(ctx: JobContext, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in one committed unit of work; what it told customers goes out after the commit."""
    async with ctx.uow() as uow:
        return await work(uow.session)


async def _moved_and_told(
    ctx: JobContext,
    move: Callable[[AsyncSession], Awaitable[list[OrderView]]],
    template: str,
    extra: Callable[[OrderView], dict[str, Any]] = lambda order: {},
) -> list[OrderView]:
    """Orders moved by `move`, each customer told `template` in the same transaction."""
    async with ctx.uow() as uow:
        moved = await move(uow.session)
        for order in moved:
            uow.notify(order.openid, template, {**order_data(order), **extra(order)})
    return moved


async def expire_unpaid_orders(ctx: JobContext) -> int:
    """Cancel unpaid orders past their deadline (`commerce.orders.actions`: stock back, the
    catalog told, the customer told, audited), then close the provider's orders."""
    expired = await in_unit(ctx, lambda session: order_actions.expire_due_orders(session, now=ctx.clock()))
    for order in expired:
        await ctx.payments.close(order_no=order.order_no)
    if expired:  # a flash unit among them is on sale again: the gates learn it at once
        await _reload_flash_gates(ctx)
    return len(expired)


async def remind_unpaid_orders(ctx: JobContext) -> int:
    """Remind once, shortly before an unpaid order expires, with its payment link."""
    due = await _moved_and_told(
        ctx,
        lambda session: order_status.orders_to_remind(session, now=ctx.clock(), rules=ctx.rules),
        "order_expiring",
        lambda order: {"pay_url": ctx.pay_url(order)},
    )
    return len(due)


async def complete_shipped_orders(ctx: JobContext) -> int:
    """Shipped orders not confirmed by the customer complete by themselves after N days."""
    done = await in_unit(
        ctx, lambda session: order_actions.complete_due_orders(session, now=ctx.clock(), rules=ctx.rules)
    )
    return len(done)


async def settle_owed_refunds(ctx: JobContext) -> int:
    """Refunds a stopped process or an unknown provider answer left open are finished."""
    return await ctx.payments.settle_owed_refunds(now=ctx.clock())


async def deliver_outbox(ctx: JobContext) -> int:
    """Messages that WeChat could not take yet (unreachable, window closed): try again when due."""
    return await ctx.deliver_outbox()


async def unfreeze_commission(ctx: JobContext) -> int:
    """Commission whose order completed a return window ago becomes available; the referrer is told.

    Each commission moves once (a conditional UPDATE), so a second run frees nothing."""
    from commerce.referrals import commission

    return await in_unit(
        ctx, lambda session: commission.unfreeze_due(session, now=ctx.clock(), rules=ctx.rules)
    )


async def expire_group_buys(ctx: JobContext) -> int:
    """Open groups past their deadline fail (once); their unpaid seats are cancelled and told,
    then every paid seat of a failed or closed group is refunded through the provider and told.

    The refunds are found by state (member orders still paid), not by "failed in this run",
    so a second run, or a run after a crash between the two steps, finishes the work
    without refunding anything twice. Returns the refunds started."""
    from commerce.groupbuys import deadlines as group_deadlines

    await in_unit(ctx, lambda session: group_deadlines.fail_due_groups(session, now=ctx.clock()))
    return await group_deadlines.refund_ended_groups(ctx.uow, refund=ctx.payments.refund, now=ctx.clock())


async def remind_group_buys(ctx: JobContext) -> int:
    """Members of an open group hear its progress once, within the hour before its deadline."""
    from commerce.groupbuys import deadlines as group_deadlines

    return await in_unit(ctx, lambda session: group_deadlines.remind_due_groups(session, now=ctx.clock()))


async def settle_broadcasts(ctx: JobContext) -> int:
    """Broadcasts whose waiting messages are all done are reported a last time to the staff
    member who sent them; messages older than `broadcast.max_age_hours` are failed, not sent."""
    from commerce.messaging import broadcast

    return await in_unit(ctx, lambda session: broadcast.settle(session, now=ctx.clock()))


async def close_idle_tickets(ctx: JobContext) -> int:
    """Service tickets nobody spoke on for `service.idle_minutes` close and their customers are
    told; closed tickets older than `service.keep_days` are deleted with their conversation."""
    from commerce.customers import handoffs

    async def tend(session: AsyncSession) -> int:
        closed = await handoffs.close_idle(session, now=ctx.clock(), idle=ctx.rules.service_idle)
        await handoffs.prune_closed(session, now=ctx.clock(), keep=ctx.rules.conversation_keep)
        return len(closed)

    return await in_unit(ctx, tend)


async def prune_outbox(ctx: JobContext) -> int:
    """Messages the shop sent (or gave up on) more than `service.keep_days` ago are deleted,
    a bounded batch a run; messages still to be sent never are."""
    from commerce.messaging import outbox

    return await in_unit(
        ctx, lambda session: outbox.prune_settled(session, now=ctx.clock(), keep=ctx.rules.conversation_keep)
    )


async def prune_dialogs(ctx: JobContext) -> int:
    """Customers' dialogs past keeping (a checkout left for days) are deleted from the
    database copy, a bounded batch a run; they were never read again anyway."""
    from commerce.messaging import dialog_states

    return await in_unit(ctx, lambda session: dialog_states.prune_expired(session, now=ctx.clock()))


async def open_close_flash_sales(ctx: JobContext) -> int:
    """Flash sales open at their start (everyone who asked "提醒我" is told, once: the
    outbox's customer-service message, or the template message when the window is closed)
    and end at their end. Both are conditional UPDATEs on the sale's status and the
    reminder's `sent_at`, so two workers never tell anyone twice. Then the gate (Redis) of
    each running sale is reloaded from the database, which undoes a count whose transaction
    rolled back. Returns the reminders queued."""

    async def work(session: AsyncSession) -> int:
        told = await flash_sales.open_due_sales(session, now=ctx.clock())
        await flash_sales.close_due_sales(session, now=ctx.clock())
        return told

    told = await in_unit(ctx, work)
    await _reload_flash_gates(ctx)
    return told


async def _reload_flash_gates(ctx: JobContext) -> None:
    """The gate of each running sale loaded from the database (with the version a unit coming
    back raised: the webhook's edge then lets the next grab through at once), over what it
    holds: what it counted of grabs that rolled back is undone."""
    if ctx.flash_gate is not NO_GATE:
        async with ctx.uow() as uow:
            for sale_id in await flash_sales.running_sale_ids(uow.session, now=ctx.clock()):
                await ctx.flash_gate.load(await flash_sales.gate_state(uow.session, sale_id=sale_id), replace=True)


async def return_flash_units(ctx: JobContext) -> int:
    """Units held for a customer who never gave a delivery address within the sale's payment
    window go back on sale (a unit with an order goes back when `expire_unpaid_orders`
    cancels the order, in that transaction); the gates learn it at once."""
    returned = await in_unit(ctx, lambda session: flash_sales.release_expired_holds(session, now=ctx.clock()))
    if returned:
        await _reload_flash_gates(ctx)
    return returned


async def prune_events(ctx: JobContext) -> int:
    """The analytics' events older than `analytics.keep_days` are deleted (a few thousand rows
    a statement); a second worker running it at once finds nothing left to delete."""
    from commerce.analytics import events

    before = ctx.clock() - ctx.rules.events_keep
    return await in_unit(ctx, lambda session: events.prune_events(session, before=before))


async def reconcile_balances(ctx: JobContext) -> int:
    """Nightly: the stored-balance ledger's sums against the accounts' balances
    (`commerce.balance.reconcile`); any difference alerts staff. Reads only, so a second run
    (another worker, a run by hand) finds the same and changes nothing. Returns the differences."""
    from commerce.balance import reconcile

    differences = await in_unit(ctx, reconcile.find_differences)
    if differences:
        log.error("STORED BALANCE LEDGER DIFFERS from its balances: %d differences", len(differences))
        rows = [
            {"what": d.what, "ref": d.ref, "customer_id": d.customer_id, "kind": d.kind,
             "expected_fen": d.expected_fen, "found_fen": d.found_fen}
            for d in differences
        ]
        await ctx.alert("alert_balance_mismatch", {"differences": rows, "count": len(rows)})
    return len(differences)


Job = Callable[[JobContext], Awaitable[int]]

JOBS: dict[str, tuple[Job, int]] = {
    # name: (job, interval in seconds)
    "expire_unpaid_orders": (expire_unpaid_orders, 30),
    "remind_unpaid_orders": (remind_unpaid_orders, 60),
    "complete_shipped_orders": (complete_shipped_orders, 3600),
    "deliver_outbox": (deliver_outbox, 5),  # a dead writer's notices go out within ~10 s
    "settle_owed_refunds": (settle_owed_refunds, 600),
    "expire_group_buys": (expire_group_buys, 60),
    "remind_group_buys": (remind_group_buys, 300),
    "unfreeze_commission": (unfreeze_commission, 3600),
    "close_idle_tickets": (close_idle_tickets, 60),
    "settle_broadcasts": (settle_broadcasts, 60),
    "prune_outbox": (prune_outbox, 600),
    "prune_dialogs": (prune_dialogs, 600),
    "open_close_flash_sales": (open_close_flash_sales, 10),
    "return_flash_units": (return_flash_units, 10),
    "prune_events": (prune_events, 3600),
    "reconcile_balances": (reconcile_balances, 86400),  # nightly (one worker per day: the tick lock)
}

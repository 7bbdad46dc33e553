"""Payments as use cases: pay for an order, take a provider notification, refund, close.

The bookkeeping (payment events recorded once, order transitions, refunds) lives in
`commerce.orders.placement`; this module decides the units of work around it and keeps every
provider call and every customer message outside the database transaction.

Acknowledgement policy (what `handle_notification` returns, i.e. what WeChat Pay is told):
- True (SUCCESS) once the notification is durably recorded, whatever its outcome:
  applied, duplicate, late, already paid, amount mismatch, unknown order. A retry
  would change nothing (the tenth copy is a "duplicate"), so asking WeChat to retry
  for 24 hours only produces noise and, worse, different answers for the same event.
- Money that cannot pay its order goes back automatically (`start_late_refund` +
  `provider.refund`) and the customer is told: "late" (the order was cancelled first),
  "already_paid" (another transaction paid it) and "amount_mismatch" (not the order's
  amount: the order stays unpaid, logged at ERROR level because it means a bug or a
  changed order). An unknown order is recorded and logged at ERROR level for a human.
- False (FAIL) when nothing was recorded: another merchant's or app's notification, or a
  refund notification naming another order or amount than its refund's (v2 refund data is
  not signed: AES-ECB blocks moved without the key can still decrypt to well-formed XML).
- Database errors propagate: the endpoint answers 500 and WeChat retries later.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.background import BackgroundTasks
from commerce.errors import ErrorCode, ShopError
from commerce.messaging import notices
from commerce.messaging.notifications import Notification as Notice
from commerce.orders import placement as orders
from commerce.orders import views as order_views
from commerce.orders.models import Order, OrderStatus
from commerce.payments import records as payment_records
from commerce.payments import refunds
from commerce.payments.base import Notification, PaymentError, PaymentProvider, PaymentRequest
from commerce.payments.models import Refund
from commerce.uow import UnitOfWork, UnitOfWorkFactory

log = logging.getLogger(__name__)

T = TypeVar("T")
UNIT_OF_WORK_ATTEMPTS = 4
MAX_CONCURRENT_SIDE_EFFECTS = 16
DESCRIPTION_LIMIT = 40
OWED_GRACE = timedelta(minutes=10)  # a refund left open this long is finished by the scheduler
LATE_REASONS = {"late": "订单已关闭", "already_paid": "订单已支付", "amount_mismatch": "金额不符"}


@dataclass(frozen=True)
class ProviderAccount:
    """A further provider the shop takes money with (Alipay), beside the primary one:
    the merchant and app its notifications must name, and where they arrive."""

    provider: PaymentProvider
    appid: str
    mchid: str
    notify_url: str
    refund_notify_url: str


@dataclass(frozen=True)
class Due:
    """What a payable other than an order asks the provider for."""

    amount_fen: int
    description: str
    expires_at: datetime


class OtherPayable(Protocol):
    """Money paid through this service for something other than an order, under numbers of
    its own (stored-balance top-ups, `commerce.balance.topups`): the bootstrap passes it in,
    so payments know nothing of what is paid for. `record` applies a verified notification
    once (it records the PaymentEvent itself) and answers as `record_payment` does."""

    def owns(self, number: str) -> bool: ...

    async def due(self, session: AsyncSession, *, number: str) -> Due: ...

    async def record(
        self,
        session: AsyncSession,
        *,
        provider: str,
        number: str,
        transaction_id: str,
        amount_fen: int,
        paid_at: datetime,
        payload: dict,
    ) -> str: ...


BALANCE_PROVIDER = "balance"  # an order whose stored-balance part covers it all


class PaymentService:
    def __init__(
        self,
        *,
        provider: PaymentProvider,
        uows: UnitOfWorkFactory,
        appid: str,
        mchid: str,
        notify_url: str,
        refund_notify_url: str,
        on_paid: Callable[[UnitOfWork, order_views.OrderView], Awaitable[None]] | None = None,
        on_notification: Callable[[str, str], None] | None = None,
        more: Sequence[ProviderAccount] = (),
        payables: Sequence[OtherPayable] = (),
    ) -> None:
        self.provider = provider  # the primary one (WeChat Pay, or the sandbox)
        self._uows = uows
        self.appid = appid
        self.mchid = mchid
        self.notify_url = notify_url
        self.refund_notify_url = refund_notify_url
        # every provider by name, the primary first: notifications, refunds and closes
        # go to the provider that took (or may take) the order's money
        self._accounts: dict[str, ProviderAccount] = {
            provider.name: ProviderAccount(provider, appid, mchid, notify_url, refund_notify_url)
        }
        for account in more:
            if account.provider.name in self._accounts:
                raise ValueError(f"payment provider {account.provider.name!r} named twice")
            self._accounts[account.provider.name] = account
        self._payables = tuple(payables)
        self._background = BackgroundTasks(what="payment side effect", limit=MAX_CONCURRENT_SIDE_EFFECTS)
        # --- staff alerts: called in the unit of work that applies a payment (its messages are
        # committed with the payment); it must not raise ---
        self.on_paid = on_paid
        # --- metrics: (kind, result) of every verified notification ("refused" when not ours) ---
        self.on_notification = on_notification

    # ---- paying ---------------------------------------------------------------------------

    def provider_named(self, name: str) -> PaymentProvider | None:
        account = self._accounts.get(name)
        return account.provider if account is not None else None

    def _account(self, name: str) -> ProviderAccount:
        """The named provider's account; the primary's for a name it does not know
        (an order paid before a provider was added, or with none recorded)."""
        return self._accounts.get(name) or self._accounts[self.provider.name]

    async def pay(
        self, *, order_no: str, openid: str | None, provider: str = "", return_url: str = ""
    ) -> PaymentRequest:
        """A payment request for a pending, unexpired order: the primary provider's (JSAPI with
        `openid`, else Native), or the named one's (`provider="alipay"`: its cashier link, which
        brings the browser back to `return_url`)."""
        account = self._accounts.get(provider) if provider else self._accounts[self.provider.name]
        if account is None:
            raise ShopError(ErrorCode.ILLEGAL_TRANSITION, order_no=order_no, provider=provider)
        other = self._payable(order_no)
        if other is not None:
            async with self._uows() as uow:
                due = await other.due(uow.session, number=order_no)
            return await account.provider.create_payment(
                order_no=order_no,
                amount_fen=due.amount_fen,
                description=due.description,
                openid=openid,
                expires_at=_aware(due.expires_at),
                notify_url=account.notify_url,
                return_url=return_url,
            )
        async with self._uows() as uow:
            order = await orders.get_order(uow.session, order_no=order_no)
        if order.status == OrderStatus.PENDING_PAYMENT and order.balance_fen > 0 and order.due_fen == 0:
            # stored balance covers it and its settlement never ran (a stop between the two
            # commits): settled now, and the page is told it is paid
            await self.settle_from_balance(order_no=order_no)
            raise ShopError(ErrorCode.ILLEGAL_TRANSITION, order_no=order.order_no, status=str(OrderStatus.PAID))
        if order.status != OrderStatus.PENDING_PAYMENT or order.due_fen <= 0:
            raise ShopError(ErrorCode.ILLEGAL_TRANSITION, order_no=order.order_no, status=str(order.status))
        expires_at = _aware(order.expires_at)
        if expires_at <= datetime.now(UTC):
            raise ShopError(ErrorCode.ORDER_EXPIRED, order_no=order.order_no)
        return await account.provider.create_payment(
            order_no=order.order_no,
            amount_fen=order.due_fen,  # stored balance pays the rest
            description=describe(order),
            openid=openid,
            expires_at=expires_at,
            notify_url=account.notify_url,
            return_url=return_url,
        )

    def _payable(self, number: str) -> OtherPayable | None:
        return next((p for p in self._payables if p.owns(number)), None)

    async def close(self, *, order_no: str) -> None:
        """Close every provider's side of an expired or cancelled order (the customer may
        have opened either); failures are only logged."""
        for account in self._accounts.values():
            try:
                await account.provider.close_payment(order_no=order_no)
            except PaymentError as exc:
                log.warning(
                    "payment close failed: provider=%s order=%s code=%s",
                    account.provider.name, order_no, exc.code,
                )
            except Exception:
                log.exception("payment close failed: provider=%s order=%s", account.provider.name, order_no)

    async def check_payment(self, *, order_no: str, provider: str) -> str | None:
        """Ask a provider that can be asked (Alipay: `alipay.trade.query`) about an order's
        trade and record what it says exactly as its notification would be (once: a later
        notification of the same trade is a duplicate). None when it has nothing to say."""
        account = self._accounts.get(provider)
        query = getattr(account.provider, "query_payment", None) if account is not None else None
        if query is None:
            return None
        found: Notification | None = await query(order_no=order_no)
        if found is None or not found.succeeded:
            return None
        return "recorded" if await self.handle_notification(found) else None

    # ---- notifications --------------------------------------------------------------------

    async def handle_notification(self, notification: Notification) -> bool:
        """Record a verified notification once; True when the provider should be told SUCCESS."""
        n = notification
        ok = await self._handle_notification(n)
        if not ok:
            self._observe(n.kind, "refused")
        return ok

    async def _handle_notification(self, n: Notification) -> bool:
        account = self._accounts.get(n.provider)
        if account is None:
            log.error("notification of a provider the shop does not use refused: %s", n.provider)
            return False
        if n.mchid != account.mchid:
            log.error("payment notification for another merchant refused: kind=%s order=%s", n.kind, n.order_no)
            return False
        # v3 refund notifications carry no appid; when one is present it must be ours
        if (n.kind == "payment" or n.appid) and n.appid != account.appid:
            log.error("payment notification for another app refused: kind=%s order=%s", n.kind, n.order_no)
            return False
        if n.kind == "payment":
            return await self._payment(n)
        if n.kind == "refund":
            return await self._refund_result(n)
        log.error("payment notification of unknown kind %r refused", n.kind)
        return False

    async def _payment(self, n: Notification) -> bool:
        if not n.succeeded:  # only successful payments are notified; anything else changes nothing
            log.info("unsuccessful payment notification ignored: order=%s", n.order_no)
            self._observe("payment", "not_succeeded")
            return True
        paid_at = _aware(n.occurred_at) if n.occurred_at else datetime.now(UTC)
        other = self._payable(n.order_no)
        if other is not None:
            return await self._other_payment(other, n, paid_at)
        outcome = await self._apply_payment(
            provider=n.provider,
            order_no=n.order_no,
            transaction_id=n.transaction_id,
            amount_fen=n.amount_fen,
            paid_at=paid_at,
            payload=n.payload,
        )
        result = outcome.result
        log.info("payment notification: order=%s result=%s", n.order_no, result)
        self._observe("payment", result)
        if result in ("late", "already_paid", "amount_mismatch"):
            if result == "amount_mismatch":
                log.error(
                    "PAYMENT AMOUNT MISMATCH: order=%s paid=%s fen transaction=%s; order left unpaid, refunding",
                    n.order_no,
                    n.amount_fen,
                    n.transaction_id,
                )
            self._background.spawn(self._refund_late(n, result))
        elif result == "unknown_order":
            log.error("PAYMENT FOR UNKNOWN ORDER: order=%s transaction=%s; recorded", n.order_no, n.transaction_id)
        return True

    async def _apply_payment(
        self, *, provider: str, order_no: str, transaction_id: str, amount_fen: int, paid_at: datetime, payload: dict
    ) -> payment_records.PaymentOutcome:
        async def record(uow: UnitOfWork) -> payment_records.PaymentOutcome:
            outcome = await payment_records.record_payment(
                uow.session,
                provider=provider,
                order_no=order_no,
                transaction_id=transaction_id,
                amount_fen=amount_fen,
                paid_at=paid_at,
                payload=payload,
            )
            if outcome.result == "applied" and outcome.order is not None:
                # "payment received" goes to the outbox in the payment's own transaction:
                # WeChat Pay is told SUCCESS only after both are committed
                queued = notices.take_queued(uow.session)
                for told in _told_of_payment(outcome.order, outcome.order.payable_fen, queued):
                    uow.notify(told.openid, told.template, told.data)
                if self.on_paid is not None:  # staff alerts (the bot sets it; commerce never imports bot)
                    await self.on_paid(uow, outcome.order)
            return outcome

        return await self._unit_of_work(record)

    async def _other_payment(self, other: OtherPayable, n: Notification, paid_at: datetime) -> bool:
        result = await self._unit_of_work(
            lambda uow: other.record(
                uow.session,
                provider=n.provider,
                number=n.order_no,
                transaction_id=n.transaction_id,
                amount_fen=n.amount_fen,
                paid_at=paid_at,
                payload=n.payload,
            )
        )
        log.info("payment notification: number=%s result=%s", n.order_no, result)
        self._observe("payment", result)
        if result not in ("applied", "duplicate"):  # money that paid nothing: a human returns it
            log.error(
                "PAYMENT NOT APPLIED, left for staff: number=%s result=%s transaction=%s",
                n.order_no, result, n.transaction_id,
            )
        return True

    async def settle_from_balance(self, *, order_no: str) -> str:
        """An order whose stored-balance part covers all of it is paid now, through the status
        machine, exactly as a provider's notification pays one ("order paid" told, staff
        alerted); once: a second call is a "duplicate"."""
        async with self._uows() as uow:
            order = await orders.get_order(uow.session, order_no=order_no)
        if order.balance_fen <= 0 or order.due_fen != 0:
            raise ShopError(ErrorCode.ILLEGAL_TRANSITION, order_no=order_no, status=str(order.status))
        outcome = await self._apply_payment(
            provider=BALANCE_PROVIDER,
            order_no=order_no,
            transaction_id=f"balance:{order_no}",
            amount_fen=0,
            paid_at=datetime.now(UTC),
            payload={},
        )
        log.info("paid from balance: order=%s result=%s", order_no, outcome.result)
        return outcome.result

    async def _refund_result(self, n: Notification) -> bool:
        async with self._uows() as uow:
            named = (
                await uow.session.execute(
                    select(Order.order_no, (Refund.amount_fen - Refund.balance_fen).label("amount_fen"))
                    .join(Order, Order.id == Refund.order_id)
                    .where(Refund.refund_no == n.refund_no)
                )
            ).first()
        if named is not None and (named.order_no, named.amount_fen) != (n.order_no, n.amount_fen):
            log.error(
                "REFUND NOTIFICATION DOES NOT MATCH ITS REFUND, refused: refund=%s order=%s (%s) fen=%s (%s)",
                n.refund_no,
                n.order_no,
                named.order_no,
                n.amount_fen,
                named.amount_fen,
            )
            return False
        async def record(uow: UnitOfWork) -> str:
            result = await refunds.record_refund_result(
                uow.session,
                provider=n.provider,
                refund_no=n.refund_no,
                succeeded=n.succeeded,
                provider_refund_id=n.provider_refund_id,
                payload=n.payload,
            )
            if result == "applied" and n.succeeded:  # told in the refund's own transaction
                order = await orders.get_order(uow.session, order_no=n.order_no)
                told = await refunds.refund_amount(uow.session, refund_no=n.refund_no) or n.amount_fen
                uow.notify(order.openid, "refund_succeeded", {"order_no": order.order_no, "amount_fen": told})
            return result

        result = await self._unit_of_work(record)
        log.info("refund notification: refund=%s succeeded=%s result=%s", n.refund_no, n.succeeded, result)
        self._observe("refund", result)
        if result == "unknown_refund":
            log.error("REFUND NOTIFICATION FOR UNKNOWN REFUND: refund=%s order=%s", n.refund_no, n.order_no)
        elif result == "applied" and not n.succeeded:
            log.error("REFUND FAILED at the provider: refund=%s order=%s", n.refund_no, n.order_no)
        return True

    def _observe(self, kind: str, result: str) -> None:
        if self.on_notification is None:
            return
        try:
            self.on_notification(kind, result)
        except Exception:  # a metric never fails a notification
            log.exception("payment notification hook failed")

    async def _refund_late(self, n: Notification, why: str) -> None:
        await self._refund_late_payment(
            provider=n.provider,
            order_no=n.order_no,
            transaction_id=n.transaction_id,
            amount_fen=n.amount_fen,
            why=why,
        )

    async def _refund_late_payment(
        self, *, provider: str, order_no: str, transaction_id: str, amount_fen: int, why: str
    ) -> None:
        """Money that arrived for an order that could not take it goes back, by its provider."""
        refund = await self._unit_of_work(
            lambda uow: refunds.start_late_refund(
                uow.session,
                provider=provider,
                order_no=order_no,
                transaction_id=transaction_id,
                amount_fen=amount_fen,
            )
        )
        ok = await self._ask_provider_to_refund(
            refund,
            provider=provider,
            order_no=order_no,
            total_fen=amount_fen,
            reason=LATE_REASONS.get(why, "金额不符"),
            transaction_id=transaction_id,
        )
        if ok:
            await self._tell_order_owner(
                order_no, "late_payment_refunded", {"amount_fen": amount_fen, "reason": why}
            )

    async def settle_owed_refunds(self, *, now: datetime | None = None, grace: timedelta = OWED_GRACE) -> int:
        """Finish refunds that a stopped process or an unknown provider answer left open.

        Late money recorded more than `grace` ago whose refund never started gets one; a
        refund pending for longer than `grace` is asked of the provider again with its own
        refund number (the provider takes that as the same refund, so money goes back once).
        A provider's refusal is recorded as before (a human takes over). Returns how many
        were asked. The scheduler runs it; a second run finds what is still open.
        """
        cutoff = (now or datetime.now(UTC)) - grace
        async with self._uows() as uow:
            late = await refunds.owed_late_payments(uow.session, received_before=cutoff)
            stale = await refunds.stale_pending_refunds(uow.session, created_before=cutoff)
        asked = 0
        for payment in late:
            if payment.provider not in self._accounts:  # the merchant stopped using it: a human's job
                log.error("late payment of another provider left for staff: order=%s", payment.order_no)
                continue
            try:
                await self._refund_late_payment(
                    provider=payment.provider,
                    order_no=payment.order_no,
                    transaction_id=payment.transaction_id,
                    amount_fen=payment.amount_fen,
                    why=payment.outcome,
                )
                asked += 1
            except ShopError as exc:  # settled meanwhile by another worker
                log.info("owed late refund already handled: order=%s code=%s", payment.order_no, exc.code)
        for item in stale:
            log.warning("refund still pending, asking the provider again: refund=%s", item.refund.refund_no)
            await self._ask_provider_to_refund(
                item.refund,
                provider=item.provider,
                order_no=item.order_no,
                total_fen=item.total_fen,
                reason=_payer_reason(item.refund),
                transaction_id=item.transaction_id,
            )
            asked += 1
        return asked

    # ---- refunds ----------------------------------------------------------------------------

    async def refund(
        self, *, order_id: int, amount_fen: int, reason: str, actor: str, notice: Notice | None = None
    ) -> Refund:
        """Start a (partial) refund; the provider's notification completes it later.

        `notice`: what to tell the customer about it, written in the refund's own transaction."""

        async def start(uow: UnitOfWork) -> tuple[Any, Refund]:
            order = await orders.get_order(uow.session, order_id=order_id)
            refund = await refunds.start_refund(
                uow.session, order_id=order_id, amount_fen=amount_fen, reason=reason, actor=actor
            )
            if notice is not None:
                uow.notify(notice.openid, notice.template, notice.data)
            return order, refund

        order, refund = await self._unit_of_work(start)
        await self._ask_provider_to_refund(
            refund,
            provider=order.pay_provider,  # the money goes back the way it came
            order_no=order.order_no,
            total_fen=order.paid_fen - order.balance_fen,  # what the provider took
            reason=reason,
            transaction_id="",
        )
        # hand back the refund as it now stands (failed, or settled by the provider's answer)
        async with self._uows() as uow:
            return await uow.session.get(Refund, refund.id) or refund

    async def _ask_provider_to_refund(
        self,
        refund: Refund,
        *,
        provider: str,
        order_no: str,
        total_fen: int,
        reason: str,
        transaction_id: str,
    ) -> bool:
        """The provider call, outside any transaction; a refusal is recorded as a failed refund,
        an unknown outcome (timeout, 5xx) leaves the refund pending; a result in the provider's
        answer is recorded as its notification would be. A refund wholly of stored balance
        asks no provider: it succeeds at once (the balance is credited by its event)."""
        if refund.amount_fen == refund.balance_fen:
            await self._settle_balance_refund(refund, order_no=order_no)
            return True
        account = self._account(provider)
        try:
            settled = await account.provider.refund(
                order_no=order_no,
                refund_no=refund.refund_no,
                amount_fen=refund.amount_fen - refund.balance_fen,  # the balance part goes back there
                total_fen=total_fen,
                reason=reason,
                notify_url=account.refund_notify_url,
                transaction_id=transaction_id,
            )
        except PaymentError as exc:
            if exc.outcome_unknown:
                # Maybe WeChat Pay took it: recording a failure could contradict a refund that
                # happens. Left pending: its notification settles it, or it is asked again with
                # the same refund_no (idempotent at the provider).
                log.error(
                    "REFUND OUTCOME UNKNOWN, left pending: refund=%s order=%s code=%s",
                    refund.refund_no,
                    order_no,
                    exc.code,
                )
                return False
            log.error("REFUND REQUEST REFUSED: refund=%s order=%s code=%s", refund.refund_no, order_no, exc.code)
            error = {"error": exc.code, "message": exc.message}
            await self._unit_of_work(
                lambda uow: refunds.record_refund_result(
                    uow.session,
                    provider=account.provider.name,
                    refund_no=refund.refund_no,
                    succeeded=False,
                    provider_refund_id="",
                    payload=error,
                )
            )
            return False
        if settled is not None:
            await self.handle_notification(settled)
        return True

    async def _settle_balance_refund(self, refund: Refund, *, order_no: str) -> None:
        async def settle(uow: UnitOfWork) -> str:
            result = await refunds.record_refund_result(
                uow.session,
                provider=BALANCE_PROVIDER,
                refund_no=refund.refund_no,
                succeeded=True,
                provider_refund_id=refund.refund_no,
                payload={},
            )
            if result == "applied":
                order = await orders.get_order(uow.session, order_no=order_no)
                uow.notify(order.openid, "refund_succeeded", {"order_no": order_no, "amount_fen": refund.amount_fen})
            return result

        result = await self._unit_of_work(settle)
        log.info("refund to balance: refund=%s result=%s", refund.refund_no, result)

    # ---- plumbing -----------------------------------------------------------------------------

    async def _unit_of_work(self, work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
        """One unit of work, committed; retried when a concurrent copy won a race.

        What the work told customers is written to the outbox in its transaction and sent
        after the commit (`commerce.uow`).

        Two copies of one notification racing: the loser's PaymentEvent insert fails on the
        unique constraint (IntegrityError) or SQLite refuses the second writer (OperationalError,
        "database is locked"); the retry reads the winner's row and returns "duplicate".
        """
        for attempt in range(1, UNIT_OF_WORK_ATTEMPTS + 1):
            try:
                async with self._uows() as uow:
                    return await work(uow)
            except (IntegrityError, OperationalError) as exc:
                if attempt == UNIT_OF_WORK_ATTEMPTS:
                    raise
                log.info("payment unit of work retried after %s", exc.__class__.__name__)
                await asyncio.sleep(0.05 * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _tell_order_owner(self, order_no: str, template: str, data: dict[str, Any]) -> None:
        try:
            async with self._uows() as uow:
                order = await orders.get_order(uow.session, order_no=order_no)
                uow.notify(order.openid, template, {"order_no": order.order_no, **data})
        except ShopError:
            log.error("cannot tell the customer about order %s: not found", order_no)

    async def drain(self) -> None:
        """Wait for the work started so far (on shutdown, and in tests), the first attempts
        of the messages it wrote to the outbox included."""
        await self._background.drain()
        await self._uows.dispatcher.drain()

    async def aclose(self) -> None:
        await self.drain()
        for account in self._accounts.values():
            await account.provider.aclose()


RIDE_ALONG = ("badge_awarded", "points_earned", "member_level_up")  # the buyer's, said in "payment received"


def _told_of_payment(order: Any, amount_fen: int, queued: list[Notice]) -> list[Notice]:
    """"Payment received", carrying the badges, points and member level the payment earned the
    buyer (one message, not four: WeChat counts them), then whatever else the payment decided."""
    mine: list[notices.Notification] = []
    rest: list[notices.Notification] = []
    for q in queued:
        (mine if q.openid == order.openid and q.template in RIDE_ALONG else rest).append(q)
    data = {
        "order_no": order.order_no,
        "amount_fen": amount_fen,
        "items": _items(order),
        "badges": [q.data["badge"] for q in mine if q.template == "badge_awarded"],
        "points_earned": next((q.data for q in mine if q.template == "points_earned"), None),
        "level_up": next((q.data for q in mine if q.template == "member_level_up"), None),
    }
    return [Notice(order.openid, "order_paid", data), *rest]


def describe(order: Any) -> str:
    """What the customer sees on the WeChat Pay sheet: "苹果 ×2 等3件"."""
    lines = list(getattr(order, "lines", ()) or ())
    if not lines:
        return f"订单 {order.order_no}"
    first = lines[0]
    text = f"{first.name} ×{first.quantity}"
    if len(lines) > 1:
        text += f" 等{sum(line.quantity for line in lines)}件"
    return text if len(text) <= DESCRIPTION_LIMIT else text[: DESCRIPTION_LIMIT - 1] + "…"


def _items(order: Any) -> list[dict[str, Any]]:
    return [
        {"name": line.name, "spec": getattr(line, "spec_label", ""), "quantity": line.quantity}
        for line in getattr(order, "lines", ()) or ()
    ]


def _payer_reason(refund: Refund) -> str:
    """The reason the payer sees for a refund (late refunds keep a machine-readable one)."""
    source = refunds.late_refund_source(refund)
    if source is None:
        return refund.reason
    return LATE_REASONS.get(source.outcome, "金额不符")


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)

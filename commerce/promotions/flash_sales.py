"""Flash sales (秒杀): a few units of one variant at a low price, from a start to an end.

```mermaid
stateDiagram-v2
    [*] --> scheduled: create_sale (staff, confirmed)
    scheduled --> running: open_due_sales at starts_at (reminders sent)
    scheduled --> closed: close_sale (staff; who asked to be reminded is told it is called off)
    running --> ended: close_due_sales at ends_at
    running --> closed: close_sale (staff)
```
A unit goes: grab -> held (a pending order at the sale price, or, while the customer
types a first delivery address, no order yet) -> paid, or -> released when its order
expires or is cancelled (or its address wait runs out: `release_expired_holds`); a
released unit is on sale again at once. `sold + held + left == units`, and every change
of `held` / `sold` is a conditional UPDATE, so no rush oversells (a CHECK constraint is
the last net).

The rush: `grab` first asks a `FlashGate` (Redis, `bot.flash_gate`: one Lua script decides
"a unit left? under the limit? not holding one already?" atomically); only its winners
touch the database, where the conditional UPDATE stays the source of truth. Without a
gate (`NO_GATE`, SQLite alone) the database decides by that same UPDATE. Losers never
write. The gate is told the sale's `version` with each question: the version grows
whenever a unit is paid, returned or the sale changes, and a gate that holds another
version (or lost its keys) is reloaded from the database (`gate_state`) first.

The decision itself is a pure function (`decide`), property-tested without a database.
Nothing here commits; messages to customers are queued (`commerce.messaging.notices`).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Select, Update, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.cart.cart import spec_label
from commerce.catalog import inventory
from commerce.catalog.models import Product, ProductStatus, Variant
from commerce.customers.addresses import AddressView
from commerce.customers.models import Customer
from commerce.db import rowcount
from commerce.db import upsert_insert as _insert
from commerce.errors import ErrorCode, ShopError
from commerce.messaging import notices
from commerce.orders.models import Order, OrderStatus
from commerce.orders.placement import get_order, place_offer_order
from commerce.orders.views import OrderView
from commerce.promotions.models import (
    FlashClaim,
    FlashClaimStatus,
    FlashReminder,
    FlashSale,
    FlashSaleStatus,
    LivePush,
)
from commerce.rules import ShopRules, as_utc

F = FlashSaleStatus
C = FlashClaimStatus
OPEN_STATUSES = (F.SCHEDULED.value, F.RUNNING.value)
TAKEN = (C.HELD.value, C.PAID.value)
MAX_UNITS = 100_000
MAX_PER_USER = 99
MAX_PAY_MINUTES = 24 * 60
MAX_DURATION = timedelta(days=30)
LIST_LIMIT = 10


# ---- the decision: pure ------------------------------------------------------------------------


class Verdict(enum.StrEnum):
    WON = "won"
    SOLD_OUT = "sold_out"
    LIMIT = "limit"
    HOLDING = "holding"  # an unpaid unit of this sale already: pay it first


def decide(*, left: int, taken: int, holding: bool, limit: int) -> Verdict:
    """Whether one more unit goes to a customer who has `taken` units (held or paid) of
    the sale, `holding` one unpaid, when `left` units are free. The Redis script
    (`bot.flash_gate`) is this function in Lua."""
    if holding:
        return Verdict.HOLDING
    if taken >= limit:
        return Verdict.LIMIT
    if left <= 0:
        return Verdict.SOLD_OUT
    return Verdict.WON


def countdown(seconds: int) -> dict[str, int]:
    """{"days", "hours", "minutes"} of a wait, for "还有2小时15分开始" (a started minute counts)."""
    minutes = max(0, -(-seconds // 60))
    return {"days": minutes // 1440, "hours": minutes % 1440 // 60, "minutes": minutes % 60}


# ---- the gate in front of the database --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GateState:
    """What a gate must know of a sale, read from the database (`gate_state`)."""

    sale_id: int
    version: int
    left: int
    taken: dict[str, int]  # customer (openid): units held or paid
    holding: tuple[str, ...]  # customers (openids) with an unpaid unit


class FlashGate(Protocol):
    """Decides a grab before the database is touched (`bot.flash_gate.RedisFlashGate`).

    Customers are named by their openid, which the webhook's edge knows before any
    database read (`bot.flash_edge`), so a loser is turned away there."""

    async def decide(self, *, sale_id: int, version: int, customer: str, limit: int) -> Verdict | None:
        """The verdict, counted when WON; None when the gate holds no state of this version
        of the sale (lost, never loaded, stale): `load` it and ask again."""
        ...

    async def load(self, state: GateState, *, replace: bool = False) -> None:
        """The sale's state as the database has it, when the gate holds none of this version
        (or an older one). `replace`: over a state of the same version too, to undo what the
        gate counted that the database never took (a grab rolled back after the gate's
        count). Not by default: two workers loading a sale at its start each counted its
        units afresh after the other's first winners, and let a third more through."""
        ...

    async def give_back(self, *, sale_id: int, customer: str) -> None:
        """A WON the database refused for a reason of its own: not counted after all."""
        ...

    async def sold_out(self, *, sale_id: int) -> None:
        """The database has no unit left: the gate stops letting customers through."""
        ...


class NoGate:
    """No gate (SQLite alone): every grab goes to the database, whose UPDATE decides."""

    async def decide(self, *, sale_id: int, version: int, customer: str, limit: int) -> Verdict | None:
        return Verdict.WON

    async def load(self, state: GateState, *, replace: bool = False) -> None:
        return None

    async def give_back(self, *, sale_id: int, customer: str) -> None:
        return None

    async def sold_out(self, *, sale_id: int) -> None:
        return None


NO_GATE = NoGate()


# ---- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SaleView:
    id: int
    product_id: int
    variant_id: int
    product_name: str
    spec_label: str
    sku_code: str
    category_id: int
    regular_price_fen: int
    price_fen: int
    units: int
    held: int
    sold: int
    per_user_limit: int
    pay_minutes: int
    starts_at: datetime
    ends_at: datetime
    status: FlashSaleStatus
    version: int
    stock: int

    @property
    def left(self) -> int:
        return self.units - self.sold - self.held

    def phase(self, now: datetime) -> str:
        """"coming", "running" or "over" at `now` (the clock decides, not the scheduler)."""
        now = as_utc(now)
        if self.status not in (F.SCHEDULED, F.RUNNING) or now >= self.ends_at:
            return "over"
        return "coming" if now < self.starts_at else "running"

    def data(self, now: datetime) -> dict[str, Any]:
        """What a message template may show of the sale (plain values)."""
        now = as_utc(now)
        return {
            "id": self.id,
            "product": self.product_name,
            "spec": self.spec_label,
            "sku": self.sku_code,
            "price": self.price_fen,
            "regular_price": self.regular_price_fen,
            "units": self.units,
            "left": self.left,
            "sold": self.sold,
            "held": self.held,
            "limit": self.per_user_limit,
            "pay_minutes": self.pay_minutes,
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "status": str(self.status),
            "phase": self.phase(now),
            "to_start": countdown(int((self.starts_at - now).total_seconds())),
            "to_end": countdown(int((self.ends_at - now).total_seconds())),
        }


def _view(sale: FlashSale, product: Product, variant: Variant) -> SaleView:
    return SaleView(
        id=sale.id,
        product_id=product.id,
        variant_id=variant.id,
        product_name=product.name,
        spec_label=spec_label(variant.spec),
        sku_code=variant.sku_code,
        category_id=product.category_id,
        regular_price_fen=variant.price_fen,
        price_fen=sale.price_fen,
        units=sale.units,
        held=sale.held,
        sold=sale.sold,
        per_user_limit=sale.per_user_limit,
        pay_minutes=sale.pay_minutes,
        starts_at=as_utc(sale.starts_at),
        ends_at=as_utc(sale.ends_at),
        status=F(sale.status),
        version=sale.version,
        stock=variant.stock,
    )


def _query() -> Select[FlashSale, Product, Variant]:
    return (
        select(FlashSale, Product, Variant)
        .join(Variant, Variant.id == FlashSale.variant_id)
        .join(Product, Product.id == FlashSale.product_id)
        .execution_options(populate_existing=True)
    )


async def get_sale(session: AsyncSession, *, sale_id: int) -> SaleView:
    """FLASH_NOT_FOUND unless `sale_id` names a sale."""
    row = (await session.execute(_query().where(FlashSale.id == sale_id))).first()
    if row is None:
        raise ShopError(ErrorCode.FLASH_NOT_FOUND, sale_id=sale_id)
    return _view(*row)


async def list_sales(session: AsyncSession, *, now: datetime, for_customers: bool = False) -> list[SaleView]:
    """For customers: the sales running and coming, on products on sale, soonest first
    (not a live drop's products: "直播" shows those). For staff: the latest sales, newest first."""
    now = as_utc(now)
    query = _query()
    if for_customers:
        query = query.where(
            FlashSale.status.in_(OPEN_STATUSES),
            FlashSale.ends_at > now,
            Product.status == ProductStatus.ON_SALE.value,
            FlashSale.id.not_in(select(LivePush.sale_id)),
        ).order_by(FlashSale.starts_at, FlashSale.id)
    else:
        query = query.order_by(FlashSale.id.desc())
    rows = await session.execute(query.limit(LIST_LIMIT))
    return [_view(*row) for row in rows.all()]


async def held_order(session: AsyncSession, *, customer_id: int) -> int | None:
    """The order of the customer's newest unit held and not yet paid, in any sale ("抢到了吗"),
    or None (nothing held, or a unit still waiting for its address)."""
    return await session.scalar(
        select(FlashClaim.order_id)
        .where(FlashClaim.customer_id == customer_id, FlashClaim.status == C.HELD.value,
               FlashClaim.order_id.is_not(None))
        .order_by(FlashClaim.id.desc())
        .limit(1)
    )


async def gate_state(session: AsyncSession, *, sale_id: int) -> GateState:
    """The sale as a gate must know it: its version, the units left, who took how many."""
    sale = await get_sale(session, sale_id=sale_id)
    rows = await session.execute(
        select(Customer.openid, FlashClaim.status, func.count(FlashClaim.id))
        .join(Customer, Customer.id == FlashClaim.customer_id)
        .where(FlashClaim.sale_id == sale_id, FlashClaim.status.in_(TAKEN))
        .group_by(Customer.openid, FlashClaim.status)
    )
    taken: dict[str, int] = {}
    holding: list[str] = []
    for openid, status, count in rows.all():
        taken[openid] = taken.get(openid, 0) + count
        if status == C.HELD.value:
            holding.append(openid)
    return GateState(sale_id, sale.version, sale.left, taken, tuple(sorted(holding)))


# ---- staff: create, close ---------------------------------------------------------------------


def check_terms(
    *, price_fen: int, regular_price_fen: int, units: int, per_user_limit: int, pay_minutes: int,
    starts_at: datetime, ends_at: datetime, now: datetime, at_regular_price: bool = False,
) -> None:
    """FLASH_INVALID (details: field) when a term of a new sale makes no sense. A sale sells
    below the regular price; a live push (`at_regular_price`) may sell at it."""
    checks = {
        "price": 0 < price_fen < regular_price_fen or (at_regular_price and price_fen == regular_price_fen),
        "units": 1 <= units <= MAX_UNITS,
        "limit": 1 <= per_user_limit <= MAX_PER_USER,
        "pay_minutes": 1 <= pay_minutes <= MAX_PAY_MINUTES,
        "window": starts_at < ends_at and ends_at > as_utc(now) and ends_at - starts_at <= MAX_DURATION,
    }
    for field, ok in checks.items():
        if not ok:
            raise ShopError(
                ErrorCode.FLASH_INVALID, field=field, price_fen=regular_price_fen, max_units=MAX_UNITS,
                max_limit=MAX_PER_USER, max_pay_minutes=MAX_PAY_MINUTES, max_days=MAX_DURATION.days,
            )


async def preview_sale(
    session: AsyncSession, *, variant_id: int, price_fen: int, units: int, starts_at: datetime,
    ends_at: datetime, per_user_limit: int, pay_minutes: int, now: datetime, at_regular_price: bool = False,
) -> SaleView:
    """The sale as it would be (id 0), checked, nothing written: what staff confirm."""
    row = (
        await session.execute(
            select(Variant, Product).join(Product, Product.id == Variant.product_id).where(Variant.id == variant_id)
        )
    ).first()
    if row is None:
        raise ShopError(ErrorCode.VARIANT_NOT_FOUND, ref=str(variant_id), skus=[])
    variant, product = row
    starts_at, ends_at = as_utc(starts_at), as_utc(ends_at)
    check_terms(
        price_fen=price_fen, regular_price_fen=variant.price_fen, units=units, per_user_limit=per_user_limit,
        pay_minutes=pay_minutes, starts_at=starts_at, ends_at=ends_at, now=now, at_regular_price=at_regular_price,
    )
    sale = FlashSale(
        id=0, product_id=product.id, variant_id=variant.id, price_fen=price_fen, units=units, held=0, sold=0,
        per_user_limit=per_user_limit, pay_minutes=pay_minutes, starts_at=starts_at, ends_at=ends_at,
        status=F.SCHEDULED.value, version=0,
    )
    return _view(sale, product, variant)


async def create_sale(
    session: AsyncSession, *, variant_id: int, price_fen: int, units: int, starts_at: datetime,
    ends_at: datetime, per_user_limit: int, pay_minutes: int, now: datetime, created_by: str = "",
    at_regular_price: bool = False,
) -> SaleView:
    """A new scheduled sale (FLASH_INVALID, VARIANT_NOT_FOUND as `preview_sale`); the
    scheduler opens it at its start. The variant's own stock is reserved unit by unit as
    customers take them, like any order's."""
    terms = await preview_sale(
        session, variant_id=variant_id, price_fen=price_fen, units=units, starts_at=starts_at, ends_at=ends_at,
        per_user_limit=per_user_limit, pay_minutes=pay_minutes, now=now, at_regular_price=at_regular_price,
    )
    sale = FlashSale(
        product_id=terms.product_id, variant_id=variant_id, price_fen=price_fen, units=units, held=0, sold=0,
        per_user_limit=per_user_limit, pay_minutes=pay_minutes, starts_at=terms.starts_at, ends_at=terms.ends_at,
        status=F.SCHEDULED.value, version=0, created_by=created_by[:64], created_at=as_utc(now),
    )
    session.add(sale)
    await session.flush()
    return await get_sale(session, sale_id=sale.id)


async def close_sale(session: AsyncSession, *, sale_id: int, now: datetime) -> SaleView:
    """Staff end a scheduled or running sale now: nobody grabs any more; units already
    held may still be paid for until their order expires. Customers who asked to be
    reminded and were not yet (the sale had not started) are told it is called off, once.
    FLASH_ENDED when it is over."""
    now = as_utc(now)
    closed = await session.execute(
        update(FlashSale)
        .where(FlashSale.id == sale_id, FlashSale.status.in_(OPEN_STATUSES))
        .values(status=F.CLOSED.value, version=FlashSale.version + 1)
        .execution_options(synchronize_session=False)
    )
    if rowcount(closed) != 1:
        sale = await get_sale(session, sale_id=sale_id)  # FLASH_NOT_FOUND
        raise ShopError(ErrorCode.FLASH_ENDED, sale_id=sale_id, status=str(sale.status))
    view = await get_sale(session, sale_id=sale_id)
    waiting = await session.execute(
        update(FlashReminder)
        .where(FlashReminder.sale_id == sale_id, FlashReminder.sent_at.is_(None))
        .values(sent_at=now)
        .returning(FlashReminder.customer_id)
        .execution_options(synchronize_session=False)
    )
    customer_ids = list(waiting.scalars().all())
    if customer_ids:
        openids = (await session.scalars(select(Customer.openid).where(Customer.id.in_(customer_ids)))).all()
        for openid in openids:
            notices.queue(session, openid=openid, template="flash_called_off", data=view.data(now))
    return view


async def reminders_waiting(session: AsyncSession, *, sale_id: int) -> int:
    """How many customers wait for this sale's start reminder (told if it is called off)."""
    count = await session.scalar(
        select(func.count()).select_from(FlashReminder).where(
            FlashReminder.sale_id == sale_id, FlashReminder.sent_at.is_(None)
        )
    )
    return int(count or 0)


# ---- customers: reminders ---------------------------------------------------------------------


async def remind_me(session: AsyncSession, *, sale_id: int, customer_id: int, now: datetime) -> tuple[SaleView, bool]:
    """Tell the customer when the sale starts: (sale, new) where `new` is False when they had
    asked already. FLASH_STARTED when it is running (grab it instead), FLASH_ENDED when over."""
    sale = await get_sale(session, sale_id=sale_id)
    phase = sale.phase(now)
    if phase == "running":
        raise ShopError(ErrorCode.FLASH_STARTED, sale_id=sale_id)
    if phase == "over":
        raise ShopError(ErrorCode.FLASH_ENDED, sale_id=sale_id, status=str(sale.status))
    added = await session.execute(
        _insert(session, FlashReminder)
        .values(sale_id=sale_id, customer_id=customer_id, created_at=as_utc(now))
        .on_conflict_do_nothing()
    )
    return sale, rowcount(added) == 1


# ---- customers: grabbing a unit -------------------------------------------------------------


@dataclass(frozen=True)
class Grabbed:
    sale: SaleView  # as the grab read it, with this unit held
    claim_id: int
    order: OrderView | None  # None: no delivery address yet, the unit is held until `expires_at`
    expires_at: datetime

    @property
    def order_id(self) -> int | None:
        return self.order.id if self.order is not None else None


async def _taken_by(session: AsyncSession, *, sale_id: int, customer_id: int) -> list[tuple[int, str, int | None]]:
    rows = await session.execute(
        select(FlashClaim.id, FlashClaim.status, FlashClaim.order_id).where(
            FlashClaim.sale_id == sale_id, FlashClaim.customer_id == customer_id, FlashClaim.status.in_(TAKEN)
        )
    )
    return [(r.id, r.status, r.order_id) for r in rows.all()]


async def _refusal(session: AsyncSession, sale: SaleView, verdict: Verdict, *, customer_id: int, now: datetime) -> ShopError:
    if verdict == Verdict.HOLDING:
        held = [c for c in await _taken_by(session, sale_id=sale.id, customer_id=customer_id) if c[1] == C.HELD.value]
        return ShopError(
            ErrorCode.FLASH_HOLDING, sale_id=sale.id, product=sale.product_name,
            order_id=held[0][2] if held else None, claim_id=held[0][0] if held else None,
        )
    if verdict == Verdict.LIMIT:
        return ShopError(ErrorCode.FLASH_LIMIT_REACHED, sale_id=sale.id, per_user_limit=sale.per_user_limit)
    return ShopError(ErrorCode.FLASH_SOLD_OUT, sale_id=sale.id, product=sale.product_name,
                     **await _instead(session, sale, now=now))


async def _instead(session: AsyncSession, sale: SaleView, *, now: datetime) -> dict[str, Any]:
    """What a customer who missed a sold-out sale may like: the next sale, else a product of
    the same category with stock (reads only)."""
    for other in await list_sales(session, now=now, for_customers=True):
        if other.id != sale.id and other.left > 0:
            return {"next_sale": other.data(now)}
    similar = await session.scalar(
        select(Product.name)
        .join(Variant, Variant.product_id == Product.id)
        .where(
            Product.category_id == sale.category_id,
            Product.id != sale.product_id,
            Product.status == ProductStatus.ON_SALE.value,
            Variant.stock > 0,
        )
        .order_by(Product.sales_count.desc(), Product.id)
        .limit(1)
    )
    return {"similar": similar} if similar else {}


async def _ask_gate(
    session: AsyncSession, gate: FlashGate, sale: SaleView, *, customer_id: int, customer: str
) -> Verdict:
    """The gate's verdict; a gate without this version of the sale is loaded first, and a
    refusal that is the customer's own (holding, limit) is checked against the database
    (a gate counts winners whose transaction may have rolled back after)."""
    verdict = await gate.decide(sale_id=sale.id, version=sale.version, customer=customer, limit=sale.per_user_limit)
    if verdict is None:
        state = await gate_state(session, sale_id=sale.id)
        await gate.load(state)
        verdict = await gate.decide(
            sale_id=sale.id, version=state.version, customer=customer, limit=sale.per_user_limit
        )
    if verdict in (Verdict.HOLDING, Verdict.LIMIT):
        mine = await _taken_by(session, sale_id=sale.id, customer_id=customer_id)
        truth = decide(left=1, taken=len(mine), holding=any(c[1] == C.HELD.value for c in mine),
                       limit=sale.per_user_limit)
        if truth == Verdict.WON:  # the gate counted a grab that never committed: reload, ask again
            state = await gate_state(session, sale_id=sale.id)
            await gate.load(state, replace=True)
            verdict = await gate.decide(
                sale_id=sale.id, version=state.version, customer=customer, limit=sale.per_user_limit
            )
    return verdict or Verdict.WON  # a gate that still knows nothing leaves it to the database


@dataclass(frozen=True)
class RushView:
    """What the webhook's edge needs to turn a loser of a bare "抢" away without a turn:
    the sale "抢" takes (`grab` with no number: the first running one) and the refusals a
    loser gets, prepared (`sold_out` names the next sale or a similar product)."""

    sale: SaleView
    sold_out: ShopError
    limit_reached: ShopError


async def rush_view(session: AsyncSession, *, now: datetime) -> RushView | None:
    """The sale a bare "抢" grabs now, with its prepared refusals (reads only); None when
    none is running (the turn answers then: not started, nothing on sale)."""
    now = as_utc(now)
    running = [s for s in await list_sales(session, now=now, for_customers=True) if s.phase(now) == "running"]
    if not running:
        return None
    sale = running[0]
    sold_out = ShopError(ErrorCode.FLASH_SOLD_OUT, sale_id=sale.id, product=sale.product_name,
                         **await _instead(session, sale, now=now))
    limit = ShopError(ErrorCode.FLASH_LIMIT_REACHED, sale_id=sale.id, per_user_limit=sale.per_user_limit)
    return RushView(sale, sold_out, limit)


def _rules_for(rules: ShopRules, minutes: float) -> ShopRules:
    """The shop's rules with the sale's payment window as the order's time limit."""
    return dataclasses.replace(rules, order_timeout=timedelta(minutes=minutes))


async def grab(
    session: AsyncSession,
    *,
    sale_id: int,
    customer_id: int,
    address_id: int | None,
    idempotency_key: str,
    rules: ShopRules,
    now: datetime,
    gate: FlashGate = NO_GATE,
    openid: str | None = None,
    address: AddressView | None = None,
) -> Grabbed:
    """One unit of the sale for the customer: held for the sale's payment window, with a
    pending order at the sale price to the address `address_id` (None: no address yet, the
    unit waits for `order_for_claim`). `openid`: the customer's, when the caller knows it
    (the gate names customers by it; read otherwise). `address`: the row of `address_id`
    when the caller has read it (not read again).

    Refused, with nothing written, with FLASH_NOT_FOUND, FLASH_NOT_STARTED (details:
    starts_at, to_start), FLASH_ENDED, FLASH_HOLDING (details: order_id, None while the unit waits
    for its address, and claim_id), FLASH_LIMIT_REACHED,
    FLASH_SOLD_OUT (details: next_sale or similar), or the order's own OUT_OF_STOCK /
    NOT_ON_SALE. A turn run again starts from a rolled-back transaction (and one whose
    grab committed is answered as processed), so a message takes at most one unit.

    The grab is the transaction's work: a refusal after its writes (the last unit taken
    meanwhile, the order refused) rolls the whole transaction back. Not a SAVEPOINT: its
    RELEASE was one more round trip made while holding the two rows every winner writes,
    and under a rush every round trip waits its turn on a loop busy with losers.
    """
    now = as_utc(now)
    sale = await get_sale(session, sale_id=sale_id)
    phase = sale.phase(now)
    if phase == "coming":
        raise ShopError(ErrorCode.FLASH_NOT_STARTED, sale_id=sale_id, product=sale.product_name,
                        starts_at=sale.starts_at, to_start=countdown(int((sale.starts_at - now).total_seconds())))
    if phase == "over":
        raise ShopError(ErrorCode.FLASH_ENDED, sale_id=sale_id, status=str(sale.status), product=sale.product_name)
    order_key = f"flash:{sale_id}:{idempotency_key}"
    if openid is None:  # the gate knows customers by openid
        openid = await session.scalar(select(Customer.openid).where(Customer.id == customer_id)) or f"#{customer_id}"
    verdict = await _ask_gate(session, gate, sale, customer_id=customer_id, customer=openid)
    if verdict != Verdict.WON:
        raise await _refusal(session, sale, verdict, customer_id=customer_id, now=now)
    # A winner at the gate: the database decides for good. Every winner writes two rows that
    # everyone else writes too, the variant's stock and the sale's counts, and their locks
    # last until the turn commits; so they are written last, after the claim, the order and
    # the card's read of it. Taken first, each winner waited for the whole turn of the one
    # before (100 winners of a rush answered seconds apart on a loop busy with losers).
    mine = await _taken_by(session, sale_id=sale_id, customer_id=customer_id)
    verdict = decide(
        left=sale.left, taken=len(mine), holding=any(c[1] == C.HELD.value for c in mine), limit=sale.per_user_limit
    )
    if verdict == Verdict.WON:
        expires_at = now + timedelta(minutes=sale.pay_minutes)
        try:
            claimed = await _claim(session, sale, customer_id=customer_id, openid=openid, address_id=address_id,
                                   address=address, order_key=order_key, rules=rules, now=now, expires_at=expires_at)
            if address_id is None:  # the unit held without an order: the sale's count alone
                await _count_one_more(session, sale_id, now)
        except _Gone:  # the transaction takes the claim and the order back with it
            await session.rollback()
            verdict = Verdict.SOLD_OUT
        except ShopError:  # the order was refused (out of stock, off sale): nothing is kept
            await session.rollback()
            await gate.give_back(sale_id=sale_id, customer=openid)
            raise
    if verdict != Verdict.WON:
        if verdict == Verdict.SOLD_OUT:
            await gate.sold_out(sale_id=sale_id)
        else:
            await gate.load(await gate_state(session, sale_id=sale_id), replace=True)
        raise await _refusal(session, sale, verdict, customer_id=customer_id, now=now)
    claim_id, order = claimed
    return Grabbed(dataclasses.replace(sale, held=sale.held + 1), claim_id, order, expires_at)


async def _claim(
    session: AsyncSession, sale: SaleView, *, customer_id: int, openid: str, address_id: int | None,
    address: AddressView | None, order_key: str, rules: ShopRules, now: datetime, expires_at: datetime,
) -> tuple[int, OrderView | None]:
    """The unit's claim, and with an address its pending order at the sale price, as written
    for the pay card (the claim id, the order); the sale's own count is the caller's, or
    taken with the order's stock (`stock_and_count`). With an order, the claim is written
    with it, its order id in the INSERT. On SQLite the first write (the claim, or the
    order) takes the lock and the transaction waits its turn there. Runs in the caller's
    transaction, which a refusal rolls back (the order's writes share it)."""

    async def claimed(order_id: int | None) -> int:
        claim = FlashClaim(sale_id=sale.id, customer_id=customer_id, order_id=order_id, status=C.HELD.value,
                           created_at=now, expires_at=expires_at)
        session.add(claim)
        await session.flush()
        return claim.id

    if address_id is None:  # held while the address is typed: `order_for_claim` places it
        return await claimed(None), None
    claim_ids: list[int] = []

    async def with_the_order(order_id: int) -> None:
        claim_ids.append(await claimed(order_id))

    async def stock_and_count(variant_id: int, quantity: int) -> bool:
        """The unit's stock and the sale's count, the two rows every winner writes, last and
        together (one statement on PostgreSQL): their locks last only to the commit."""
        taken, counted = await inventory.reserve_then(
            session, variant_id=variant_id, quantity=quantity, then=_one_more_held(sale.id, now)
        )
        if taken and not counted:
            raise _Gone
        return taken

    order_id, placed = await place_offer_order(
        session, customer_id=customer_id, address_id=address_id, address=address, openid=openid,
        idempotency_key=order_key, rules=_rules_for(rules, sale.pay_minutes), variant_id=sale.variant_id,
        unit_price_fen=sale.price_fen, now=now, event_note="flash", before_stock=with_the_order,
        own_savepoint=False, reserve=stock_and_count,
    )
    if placed is None:  # the key's order existed already (a turn run again): the claim joins it
        await _count_one_more(session, sale.id, now)
        await with_the_order(order_id)
        placed = await get_order(session, order_id=order_id)
    return claim_ids[0], placed


class _Gone(Exception):
    """The sale's last unit went to another winner while this one's order was written."""


def _one_more_held(sale_id: int, now: datetime) -> Update:
    """The sale's count of held units, one more, while it runs and has a unit left: the
    database's decision, whatever the gate said."""
    return (
        update(FlashSale)
        .where(
            FlashSale.id == sale_id,
            FlashSale.status.in_(OPEN_STATUSES),
            FlashSale.starts_at <= now,
            FlashSale.ends_at > now,
            FlashSale.sold + FlashSale.held < FlashSale.units,
        )
        .values(held=FlashSale.held + 1)
    )


async def _count_one_more(session: AsyncSession, sale_id: int, now: datetime) -> None:
    """`_one_more_held` on its own (no stock taken with it); _Gone when the sale has no unit left."""
    if rowcount(await session.execute(_one_more_held(sale_id, now).execution_options(synchronize_session=False))) != 1:
        raise _Gone


async def _place(
    session: AsyncSession, sale: SaleView, *, claim_id: int, customer_id: int, address_id: int, order_key: str,
    rules: ShopRules, now: datetime, minutes: float,
) -> int:
    order_id, _placed = await place_offer_order(
        session, customer_id=customer_id, address_id=address_id, idempotency_key=order_key,
        rules=_rules_for(rules, minutes), variant_id=sale.variant_id, unit_price_fen=sale.price_fen, now=now,
        event_note="flash",
    )
    await _attach(session, claim_id=claim_id, order_id=order_id, sale_id=sale.id)
    return order_id


async def _attach(session: AsyncSession, *, claim_id: int, order_id: int, sale_id: int) -> None:
    """The held unit's order (FLASH_HOLD_EXPIRED once the unit went back on sale)."""
    attached = await session.execute(
        update(FlashClaim)
        .where(FlashClaim.id == claim_id, FlashClaim.order_id.is_(None), FlashClaim.status == C.HELD.value)
        .values(order_id=order_id)
        .execution_options(synchronize_session=False)
    )
    if rowcount(attached) != 1:
        raise ShopError(ErrorCode.FLASH_HOLD_EXPIRED, sale_id=sale_id)


async def order_for_claim(
    session: AsyncSession, *, claim_id: int, customer_id: int, address_id: int, idempotency_key: str,
    rules: ShopRules, now: datetime,
) -> int:
    """The pending order of a unit held while the customer typed an address, for the rest of
    its payment window; FLASH_HOLD_EXPIRED once the unit went back on sale."""
    now = as_utc(now)
    claim = await session.scalar(
        select(FlashClaim)
        .where(FlashClaim.id == claim_id, FlashClaim.customer_id == customer_id)
        .execution_options(populate_existing=True)
    )
    if claim is None or claim.status != C.HELD.value or as_utc(claim.expires_at) <= now:
        raise ShopError(ErrorCode.FLASH_HOLD_EXPIRED, claim_id=claim_id)
    if claim.order_id is not None:
        return claim.order_id
    sale = await get_sale(session, sale_id=claim.sale_id)
    minutes = (as_utc(claim.expires_at) - now).total_seconds() / 60
    async with session.begin_nested():
        return await _place(
            session, sale, claim_id=claim.id, customer_id=customer_id, address_id=address_id,
            order_key=f"flash:{sale.id}:{idempotency_key}", rules=rules, now=now, minutes=minutes,
        )


# ---- what order moves do to units (commerce.events, subscribed in commerce.wiring) ------------


async def on_order_moved(
    session: AsyncSession, *, order_id: int, frm: OrderStatus, to: OrderStatus, now: datetime
) -> None:
    """A flash unit follows its order: paid -> sold; cancelled or expired unpaid -> back on
    sale; refunded before it shipped while the sale still runs -> back on sale too."""
    if to == OrderStatus.REFUNDED:
        await _refunded_unit_back(session, order_id=order_id, now=now)
        return
    if frm != OrderStatus.PENDING_PAYMENT or to not in (OrderStatus.PAID, OrderStatus.CANCELLED):
        return
    claim = (
        await session.execute(
            select(FlashClaim.id, FlashClaim.sale_id).where(FlashClaim.order_id == order_id)
        )
    ).first()
    if claim is None:
        return
    paid = to == OrderStatus.PAID
    moved = await session.execute(
        update(FlashClaim)
        .where(FlashClaim.id == claim.id, FlashClaim.status == C.HELD.value)
        .values(status=C.PAID.value if paid else C.RELEASED.value)
        .execution_options(synchronize_session=False)
    )
    if rowcount(moved) != 1:
        return
    values: dict[str, Any] = {"held": FlashSale.held - 1, "version": FlashSale.version + 1}
    if paid:
        values["sold"] = FlashSale.sold + 1
    await session.execute(
        update(FlashSale)
        .where(FlashSale.id == claim.sale_id, FlashSale.held > 0)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


async def _refunded_unit_back(session: AsyncSession, *, order_id: int, now: datetime) -> None:
    """A paid unit refunded in full before it shipped (the refund gave its stock back) goes
    back on sale while its sale runs: the sale counts it unsold and raises its version, so
    the gates reload and another customer can grab it. After the sale, the unit stays with
    the product's stock at its own price, and the sale keeps counting it sold."""
    claim = (await session.execute(
        select(FlashClaim.id, FlashClaim.sale_id, Order.shipped_at)
        .join(Order, Order.id == FlashClaim.order_id)
        .where(FlashClaim.order_id == order_id, FlashClaim.status == C.PAID.value)
    )).first()
    if claim is None or claim.shipped_at is not None:
        return
    back = await session.execute(
        update(FlashSale)
        .where(
            FlashSale.id == claim.sale_id, FlashSale.status.in_(OPEN_STATUSES),  # open, not yet marked running
            FlashSale.ends_at > as_utc(now), FlashSale.sold > 0,
        )
        .values(sold=FlashSale.sold - 1, version=FlashSale.version + 1)
        .execution_options(synchronize_session=False)
    )
    if rowcount(back) == 1:
        await session.execute(
            update(FlashClaim).where(FlashClaim.id == claim.id).values(status=C.RELEASED.value)
            .execution_options(synchronize_session=False)
        )


# ---- the clock (scheduler jobs: each finds what is due now, so twice does nothing) -------------


async def release_expired_holds(session: AsyncSession, *, now: datetime) -> int:
    """Units held for a customer who never gave an address within the payment window go
    back on sale. (A unit with an order goes back when the order expires.)"""
    released = await session.execute(
        update(FlashClaim)
        .where(
            FlashClaim.status == C.HELD.value,
            FlashClaim.order_id.is_(None),
            FlashClaim.expires_at <= as_utc(now),
        )
        .values(status=C.RELEASED.value)
        .returning(FlashClaim.sale_id)
        .execution_options(synchronize_session=False)
    )
    sale_ids = list(released.scalars().all())
    for sale_id in sale_ids:
        await session.execute(
            update(FlashSale)
            .where(FlashSale.id == sale_id, FlashSale.held > 0)
            .values(held=FlashSale.held - 1, version=FlashSale.version + 1)
            .execution_options(synchronize_session=False)
        )
    return len(sale_ids)


async def open_due_sales(session: AsyncSession, *, now: datetime) -> int:
    """Sales whose start has come are running; everyone who asked is reminded once (also
    those who asked at the last moment, after their sale opened). Returns reminders queued."""
    now = as_utc(now)
    await session.execute(
        update(FlashSale)
        .where(FlashSale.status == F.SCHEDULED.value, FlashSale.starts_at <= now, FlashSale.ends_at > now)
        .values(status=F.RUNNING.value)
        .execution_options(synchronize_session=False)
    )
    due = await session.execute(
        update(FlashReminder)
        .where(
            FlashReminder.sent_at.is_(None),
            FlashReminder.sale_id.in_(
                select(FlashSale.id).where(FlashSale.status == F.RUNNING.value, FlashSale.ends_at > now)
            ),
        )
        .values(sent_at=now)
        .returning(FlashReminder.sale_id, FlashReminder.customer_id)
        .execution_options(synchronize_session=False)
    )
    reminders = due.all()
    sales: dict[int, SaleView] = {}
    for sale_id, customer_id in reminders:
        if sale_id not in sales:
            sales[sale_id] = await get_sale(session, sale_id=sale_id)
        openid = await session.scalar(select(Customer.openid).where(Customer.id == customer_id))
        if openid:
            notices.queue(session, openid=openid, template="flash_started", data=sales[sale_id].data(now))
    return len(reminders)


async def close_due_sales(session: AsyncSession, *, now: datetime) -> int:
    """Sales past their end are over (their held units may still be paid until their orders expire)."""
    ended = await session.execute(
        update(FlashSale)
        .where(FlashSale.status.in_(OPEN_STATUSES), FlashSale.ends_at <= as_utc(now))
        .values(status=F.ENDED.value, version=FlashSale.version + 1)
        .execution_options(synchronize_session=False)
    )
    return rowcount(ended)


async def running_sale_ids(session: AsyncSession, *, now: datetime) -> Sequence[int]:
    """The sales customers may grab now (whose gates the scheduler keeps in line)."""
    now = as_utc(now)
    return (
        await session.scalars(
            select(FlashSale.id).where(
                FlashSale.status.in_(OPEN_STATUSES), FlashSale.starts_at <= now, FlashSale.ends_at > now
            )
        )
    ).all()

"""Coupons as staff manage them (define one, issue it to a customer, list them), and the
ones a customer holds and may use now.

A coupon's `issued_count` grows by one conditional UPDATE per copy issued (never past
`total_quantity`, however many issue at once). That UPDATE also locks the coupon row
until the transaction ends, so the per-customer limit is counted under the lock.
How coupons price a cart lives in `commerce.cart.pricing`. Nothing here commits.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.customers.models import Customer
from commerce.db import upsert_insert as _insert
from commerce.errors import ErrorCode, ShopError
from commerce.promotions.models import Coupon, CouponKind, CustomerCoupon, CustomerCouponStatus
from commerce.rules import as_utc, maybe_utc, utcnow
from commerce.staff.audit import Change, jsonable

# letters of any script (满50减10, 周末, SAVE20), digits, _ and -: staff type a code in
# `/coupon issue` and name it in the config; customers never type one (checkout offers
# the coupons they hold, by number), so a Chinese code is as good as a Latin one
CODE_PATTERN = re.compile(r"^[^\W_][\w-]{1,31}$")
TITLE_MAX = 64
MONEY_MAX = 10**9  # fen
PER_USER_MAX = 100
QUANTITY_MAX = 10**7


@dataclass(frozen=True)
class CouponView:
    id: int
    code: str
    title: str
    kind: CouponKind
    amount_off_fen: int
    percent_off: int
    cap_fen: int
    threshold_fen: int
    valid_from: datetime | None
    valid_until: datetime | None
    per_user_limit: int
    total_quantity: int | None
    issued_count: int
    active: bool

    @property
    def remaining(self) -> int | None:
        """Copies left to issue; None for unlimited."""
        if self.total_quantity is None:
            return None
        return max(0, self.total_quantity - self.issued_count)


def _view(coupon: Coupon) -> CouponView:
    return CouponView(
        id=coupon.id,
        code=coupon.code,
        title=coupon.title,
        kind=CouponKind(coupon.kind),
        amount_off_fen=coupon.amount_off_fen,
        percent_off=coupon.percent_off,
        cap_fen=coupon.cap_fen,
        threshold_fen=coupon.threshold_fen,
        valid_from=maybe_utc(coupon.valid_from),
        valid_until=maybe_utc(coupon.valid_until),
        per_user_limit=coupon.per_user_limit,
        total_quantity=coupon.total_quantity,
        issued_count=coupon.issued_count,
        active=coupon.active,
    )


def _snapshot(view: CouponView) -> dict[str, Any]:
    return jsonable(view)


def normalize_code(code: str) -> str:
    """A code as kept: full-width letters and digits folded ("ＳＡＶＥ２０"), Latin letters upper-cased."""
    return unicodedata.normalize("NFKC", code or "").strip().upper()


def _money(value: int, field: str, *, low: int = 0) -> int:
    if type(value) is not int or not low <= value <= MONEY_MAX:
        raise ShopError(ErrorCode.PRICE_INVALID, field=field, min=low, max=MONEY_MAX)
    return value




async def _load(session: AsyncSession, code: str) -> Coupon:
    coupon = await session.scalar(
        select(Coupon)
        .where(Coupon.code == normalize_code(code))
        .execution_options(populate_existing=True)
    )
    if coupon is None:
        raise ShopError(ErrorCode.COUPON_NOT_FOUND, coupon_code=normalize_code(code))
    return coupon


async def create_coupon(
    session: AsyncSession,
    *,
    code: str,
    title: str,
    kind: CouponKind,
    amount_off_fen: int = 0,
    percent_off: int = 0,
    cap_fen: int = 0,
    threshold_fen: int = 0,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    per_user_limit: int = 1,
    total_quantity: int | None = None,
) -> tuple[CouponView, Change]:
    """Define a coupon (active at once).

    `code` is upper-cased: 2-32 letters (Chinese too), digits, _ or -, beginning with a
    letter or digit (NAME_INVALID, field code); title 1-64
    characters (NAME_INVALID, field title). Amount off: 0.01 yuan or more, no percent;
    percent off: 1-99 with an optional cap (PRICE_INVALID, details: field). Thresholds and
    caps 0 or more. valid_until after valid_from (DATE_RANGE_INVALID). per_user_limit
    1-100, total_quantity None (unlimited) or 1 or more (QUANTITY_INVALID).
    COUPON_EXISTS when the code is taken.
    """
    code = normalize_code(code)
    if not CODE_PATTERN.match(code):
        raise ShopError(ErrorCode.NAME_INVALID, field="code", min_length=2, max_length=32)
    title = (title or "").strip()
    if not 1 <= len(title) <= TITLE_MAX:
        raise ShopError(ErrorCode.NAME_INVALID, field="title", min_length=1, max_length=TITLE_MAX)
    kind = CouponKind(kind)
    if kind == CouponKind.AMOUNT_OFF:
        _money(amount_off_fen, "amount_off_fen", low=1)
        if percent_off != 0:
            raise ShopError(ErrorCode.PRICE_INVALID, field="percent_off", min=0, max=0)
    else:
        if type(percent_off) is not int or not 1 <= percent_off <= 99:
            raise ShopError(ErrorCode.PRICE_INVALID, field="percent_off", min=1, max=99)
        if amount_off_fen != 0:
            raise ShopError(ErrorCode.PRICE_INVALID, field="amount_off_fen", min=0, max=0)
    _money(cap_fen, "cap_fen")
    _money(threshold_fen, "threshold_fen")
    valid_from, valid_until = maybe_utc(valid_from), maybe_utc(valid_until)
    if valid_from is not None and valid_until is not None and valid_until <= valid_from:
        raise ShopError(
            ErrorCode.DATE_RANGE_INVALID,
            start=valid_from.isoformat(),
            end=valid_until.isoformat(),
        )
    if type(per_user_limit) is not int or not 1 <= per_user_limit <= PER_USER_MAX:
        raise ShopError(ErrorCode.QUANTITY_INVALID, field="per_user_limit", min=1, max=PER_USER_MAX)
    if total_quantity is not None and (
        type(total_quantity) is not int or not 1 <= total_quantity <= QUANTITY_MAX
    ):
        raise ShopError(ErrorCode.QUANTITY_INVALID, field="total_quantity", min=1, max=QUANTITY_MAX)
    coupon_id = await session.scalar(
        _insert(session, Coupon)
        .values(
            code=code,
            title=title,
            kind=kind.value,
            amount_off_fen=amount_off_fen,
            percent_off=percent_off,
            cap_fen=cap_fen,
            threshold_fen=threshold_fen,
            valid_from=valid_from,
            valid_until=valid_until,
            per_user_limit=per_user_limit,
            total_quantity=total_quantity,
            issued_count=0,
            active=True,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing()
        .returning(Coupon.id)
    )
    if coupon_id is None:
        raise ShopError(ErrorCode.COUPON_EXISTS, coupon_code=code)
    view = _view(await _load(session, code))
    return view, (None, _snapshot(view))


async def issue_coupon(
    session: AsyncSession, *, code: str, openid: str, now: datetime | None = None
) -> tuple[CouponView, Change]:
    """Give one copy of the coupon to a customer.

    CUSTOMER_NOT_FOUND; COUPON_NOT_FOUND; COUPON_INVALID (details: reason inactive |
    expired) for a coupon that can no longer be used; COUPON_EXHAUSTED when all
    `total_quantity` copies are out; COUPON_LIMIT_REACHED when the customer holds
    `per_user_limit` copies (used ones count). A refusal leaves nothing changed.
    """
    now = as_utc(now or utcnow())
    customer_id = await session.scalar(select(Customer.id).where(Customer.openid == openid))
    if customer_id is None:
        raise ShopError(ErrorCode.CUSTOMER_NOT_FOUND, openid=openid)
    coupon = await _load(session, code)
    valid_until = maybe_utc(coupon.valid_until)
    if not coupon.active:
        raise ShopError(ErrorCode.COUPON_INVALID, reason="inactive", coupon_code=coupon.code)
    if valid_until is not None and now >= valid_until:
        raise ShopError(ErrorCode.COUPON_INVALID, reason="expired", coupon_code=coupon.code)
    taken = await session.execute(
        update(Coupon)
        .where(
            Coupon.id == coupon.id,
            Coupon.active.is_(True),
            (Coupon.total_quantity.is_(None)) | (Coupon.issued_count < Coupon.total_quantity),
        )
        .values(issued_count=Coupon.issued_count + 1)
        .returning(Coupon.issued_count)
        .execution_options(synchronize_session=False)
    )
    issued = taken.scalar_one_or_none()
    if issued is None:
        raise ShopError(
            ErrorCode.COUPON_EXHAUSTED,
            coupon_code=coupon.code,
            total_quantity=coupon.total_quantity,
        )
    held = await _held(session, coupon.id, customer_id)  # counted under the coupon's row lock
    if held >= coupon.per_user_limit:
        await session.execute(
            update(Coupon)
            .where(Coupon.id == coupon.id)
            .values(issued_count=Coupon.issued_count - 1)
            .execution_options(synchronize_session=False)
        )
        raise ShopError(
            ErrorCode.COUPON_LIMIT_REACHED,
            coupon_code=coupon.code,
            per_user_limit=coupon.per_user_limit,
        )
    holding = CustomerCoupon(coupon_id=coupon.id, customer_id=customer_id, issued_at=now)
    session.add(holding)
    await session.flush()
    view = _view(await _load(session, coupon.code))
    before = {"code": coupon.code, "openid": openid, "issued_count": issued - 1, "held": held}
    after = before | {"issued_count": issued, "held": held + 1, "customer_coupon_id": holding.id}
    return view, (before, after)


async def _held(session: AsyncSession, coupon_id: int, customer_id: int) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(CustomerCoupon)
        .where(CustomerCoupon.coupon_id == coupon_id, CustomerCoupon.customer_id == customer_id)
    )
    return int(count or 0)


def _usable_now(customer_id: int, now: datetime) -> tuple[ColumnElement[bool], ...]:
    """A held coupon the customer may use now: not used, active, started, not expired."""
    return (
        CustomerCoupon.customer_id == customer_id,
        CustomerCoupon.status == CustomerCouponStatus.AVAILABLE.value,
        Coupon.active.is_(True),
        (Coupon.valid_from.is_(None)) | (Coupon.valid_from <= now),
        (Coupon.valid_until.is_(None)) | (Coupon.valid_until > now),
    )


async def usable_count(session: AsyncSession, *, customer_id: int, now: datetime) -> int:
    """How many coupons the customer holds that may be used now (active, started, not expired)."""
    count = await session.scalar(
        select(func.count())
        .select_from(CustomerCoupon)
        .join(Coupon, Coupon.id == CustomerCoupon.coupon_id)
        .where(*_usable_now(customer_id, now))
    )
    return int(count or 0)


@dataclass(frozen=True, slots=True)
class HeldCoupon:
    """A coupon a customer holds and may use now: their copy of it (`customer_coupon_id`)."""

    customer_coupon_id: int
    coupon: CouponView

    @property
    def most_off_fen(self) -> int | None:
        """The most it can take off an order; None for a percentage with no cap."""
        if self.coupon.kind == CouponKind.AMOUNT_OFF:
            return self.coupon.amount_off_fen
        return self.coupon.cap_fen or None


def best_first(held: Sequence[HeldCoupon]) -> list[HeldCoupon]:
    """Without a cart to price, the best coupon is the one that can take the most off (an
    uncapped percentage can take any amount: first, by its percentage), then the one that
    needs the smaller order, then the one expiring first. At checkout the cart decides
    (`commerce.cart.pricing.quote` picks the one worth most on it)."""
    never = datetime.max.replace(tzinfo=UTC)

    def rank(held: HeldCoupon) -> tuple[int, int, int, int, datetime, int]:
        most, c = held.most_off_fen, held.coupon
        return (most is not None, -(most or 0), -c.percent_off, c.threshold_fen, c.valid_until or never,
                held.customer_coupon_id)

    return sorted(held, key=rank)


async def usable_coupons(session: AsyncSession, *, customer_id: int, now: datetime) -> list[HeldCoupon]:
    """The coupons the customer may use now (as `usable_count` counts them), best first."""
    rows = await session.execute(
        select(CustomerCoupon.id, Coupon)
        .join(Coupon, Coupon.id == CustomerCoupon.coupon_id)
        .where(*_usable_now(customer_id, now))
        .execution_options(populate_existing=True)
    )
    return best_first([HeldCoupon(held_id, _view(coupon)) for held_id, coupon in rows.all()])


async def set_active(session: AsyncSession, *, code: str, active: bool) -> Change:
    """Stop (or resume) a coupon: an inactive one is not issued nor applied at checkout."""
    coupon = await _load(session, code)
    before = {"code": coupon.code, "active": coupon.active}
    coupon.active = bool(active)
    await session.flush()
    return before, {"code": coupon.code, "active": coupon.active}


async def get_coupon(session: AsyncSession, *, code: str) -> CouponView:
    """One coupon by code; COUPON_NOT_FOUND."""
    return _view(await _load(session, code))


async def list_coupons(
    session: AsyncSession, *, active_only: bool = False, now: datetime | None = None
) -> list[CouponView]:
    """Coupons, newest first; `active_only`: the active ones that have not expired."""
    now = as_utc(now or utcnow())
    query = select(Coupon)
    if active_only:
        query = query.where(
            Coupon.active.is_(True), Coupon.valid_until.is_(None) | (Coupon.valid_until > now)
        )
    await session.flush()
    rows = await session.scalars(
        query.order_by(Coupon.created_at.desc(), Coupon.id.desc()).execution_options(
            populate_existing=True
        )
    )
    return [_view(c) for c in rows]

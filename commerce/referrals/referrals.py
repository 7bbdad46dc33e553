"""Referrals: codes, first-touch binding, the new-follower welcome, and who referred most.

Every customer gets a referral code the first time they need one (`referral_code_for`).
A customer who arrives through someone's code is *bound* to that referrer (`bind`) for
`rules.referral_binding`; the referrer then earns commission on their paid orders
(`commerce.referrals.commission`).

Who can be bound (first touch, new customers only):
- "new" means: never bound before (referred_at is NULL) and never paid an order (no
  order with paid_at). Someone who has bought already came without the referrer, so
  a friend's code cannot claim them afterwards; a re-follower who never bought is
  still new. The chat binds only on a *subscribe* event (a follow), never on a scan
  by someone who follows already: the bot layer decides that, this module the rest.
- never self, never a cycle: walking up the referrer's own chain must not reach the
  customer (A->B->A, or longer).
- first touch: the binding is one conditional UPDATE ... WHERE referred_at IS NULL,
  so two racing binds (two codes scanned at once) leave exactly one.
Both rows (customer and referrer) are locked first, in id order, so two customers
binding to each other at the same moment serialise and the second sees the cycle.
A longer ring can be closed by two binds that share no row (A->B and C->D exist; B->C
and D->A at once), each walking the other's chain before it commits: so on PostgreSQL
every bind also takes one transaction-scoped advisory lock (binds are follow events,
rare enough to run one at a time); on SQLite the write lock serialises them already.

The welcome coupon (`rules.new_customer_coupon`) goes once per person: to a
subscriber who never paid an order and never held a copy of that coupon, whatever
the coupon's own per-user limit. Nothing here commits.
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.analytics import events as analytics
from commerce.customers.models import Customer
from commerce.db import rowcount
from commerce.errors import ShopError
from commerce.groupbuys.models import GroupBuy
from commerce.loyalty import badges
from commerce.orders.models import Order
from commerce.promotions import coupons
from commerce.promotions.models import Coupon, CustomerCoupon
from commerce.referrals.models import Commission
from commerce.rules import ShopRules, as_utc

# No 0/O, 1/I: codes are typed by people. Still within bot.wechat.scenes' [A-Z0-9]{4,16}.
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 6
CODE_ATTEMPTS = 8  # a clash is one in a billion per try; the last tries are longer
CHAIN_MAX = 10_000  # a referral chain longer than this is treated as a cycle
BIND_LOCK_KEY = 0x5EF_B1D  # pg_advisory_xact_lock key: one bind at a time (PostgreSQL)
FIVE_REFERRALS = 5


class BindOutcome(enum.StrEnum):
    BOUND = "bound"
    UNKNOWN_CODE = "unknown_code"
    SELF = "self"
    CYCLE = "cycle"
    NOT_NEW = "not_new"  # bound before, or has paid an order


@dataclass(frozen=True)
class Welcome:
    """What a new follower's welcome says beyond hello."""

    referred: bool = False  # bound to the friend who invited them
    coupon_title: str = ""  # the welcome coupon they were given ("" none)


@dataclass(frozen=True)
class TopReferrer:
    customer_id: int
    openid: str
    referral_code: str
    referrals: int
    earned_fen: int  # commission earned and not reversed (frozen or available or paid out)


def normalize_code(code: str) -> str:
    return (code or "").strip().upper()


def _new_code(length: int) -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))


async def referral_code_for(session: AsyncSession, *, customer_id: int) -> str:
    """The customer's referral code, given now if they have none."""
    code, _given_now = await invite_code(session, customer_id=customer_id)
    return code


async def invite_code(session: AsyncSession, *, customer_id: int) -> tuple[str, bool]:
    """The customer's referral code, and whether it was given just now (their first ask).

    The UPDATE only fills an empty code, so two requests at once (two workers) agree on
    whichever wrote first (and only that one says "just now"); a clash with another
    customer's code is avoided by the NOT EXISTS and, in the rare race, by the unique
    constraint.
    """
    for attempt in range(CODE_ATTEMPTS):
        code = await session.scalar(
            select(Customer.referral_code).where(Customer.id == customer_id)
        )
        if code:
            return code, False
        candidate = _new_code(CODE_LENGTH if attempt < CODE_ATTEMPTS // 2 else CODE_LENGTH + 2)
        taken = select(Customer.id).where(Customer.referral_code == candidate).exists()
        given = await session.execute(
            update(Customer)
            .where(Customer.id == customer_id, Customer.referral_code.is_(None), ~taken)
            .values(referral_code=candidate)
            .execution_options(synchronize_session=False)
        )
        if rowcount(given) == 1:
            return candidate, True
    raise RuntimeError("could not give a referral code")


async def referrer_by_code(session: AsyncSession, code: str) -> int | None:
    return await session.scalar(
        select(Customer.id).where(Customer.referral_code == normalize_code(code))
    )


async def group_leader(session: AsyncSession, *, group_code: str) -> int | None:
    """Who started the group buy with this code: a follow through its invite binds to them."""
    return await session.scalar(
        select(GroupBuy.leader_id).where(GroupBuy.code == normalize_code(group_code))
    )


async def is_new_customer(session: AsyncSession, *, customer_id: int) -> bool:
    """Never bound and never paid an order (see the module docstring)."""
    referred_at = await session.scalar(
        select(Customer.referred_at).where(Customer.id == customer_id)
    )
    if referred_at is not None:
        return False
    return not await _has_paid(session, customer_id)


async def _has_paid(session: AsyncSession, customer_id: int) -> bool:
    paid = await session.scalar(
        select(Order.id)
        .where(Order.customer_id == customer_id, Order.paid_at.is_not(None))
        .limit(1)
    )
    return paid is not None


async def lock_customers(session: AsyncSession, ids: list[int]) -> None:
    """Row locks until the transaction ends (a no-op write: works on SQLite as on PostgreSQL)."""
    for customer_id in sorted(set(ids)):
        await session.execute(
            update(Customer)
            .where(Customer.id == customer_id)
            .values(referrer_id=Customer.referrer_id)
            .execution_options(synchronize_session=False)
        )


async def _reaches(session: AsyncSession, *, start: int, target: int) -> bool:
    """Does the chain start -> its referrer -> ... reach `target`?"""
    seen: set[int] = set()
    current: int | None = start
    while current is not None:
        if current == target or current in seen or len(seen) > CHAIN_MAX:
            return True
        seen.add(current)
        current = await session.scalar(select(Customer.referrer_id).where(Customer.id == current))
    return False


async def bind(
    session: AsyncSession,
    *,
    customer_id: int,
    now: datetime,
    rules: ShopRules,
    code: str = "",
    referrer_id: int | None = None,
) -> BindOutcome:
    """Bind the customer to the referrer named by `code` (or `referrer_id`), if the rules allow.

    A referrer who reaches five bound referrals gets the badge.
    """
    now = as_utc(now)
    if referrer_id is None:
        referrer_id = await referrer_by_code(session, code) if code else None
    elif await session.scalar(select(Customer.id).where(Customer.id == referrer_id)) is None:
        referrer_id = None
    if referrer_id is None:
        return BindOutcome.UNKNOWN_CODE
    if referrer_id == customer_id:
        return BindOutcome.SELF
    if session.get_bind().dialect.name == "postgresql":  # see the module docstring
        await session.execute(select(func.pg_advisory_xact_lock(BIND_LOCK_KEY)))
    await lock_customers(session, [customer_id, referrer_id])
    if not await is_new_customer(session, customer_id=customer_id):
        return BindOutcome.NOT_NEW
    if await _reaches(session, start=referrer_id, target=customer_id):
        return BindOutcome.CYCLE
    bound = await session.execute(
        update(Customer)
        .where(
            Customer.id == customer_id,
            Customer.referred_at.is_(None),
            Customer.referrer_id.is_(None),
        )
        .values(
            referrer_id=referrer_id, referred_at=now, referral_until=now + rules.referral_binding
        )
        .execution_options(synchronize_session=False)
    )
    if rowcount(bound) != 1:
        return BindOutcome.NOT_NEW
    if await referral_count(session, customer_id=referrer_id) >= FIVE_REFERRALS:
        await badges.award(
            session, customer_id=referrer_id, badge=badges.Badge.FIVE_REFERRALS, now=now
        )
    return BindOutcome.BOUND


async def referral_count(session: AsyncSession, *, customer_id: int) -> int:
    """Customers bound to this referrer (ever: an expired binding still counts as a referral)."""
    count = await session.scalar(
        select(func.count()).select_from(Customer).where(Customer.referrer_id == customer_id)
    )
    return int(count or 0)


async def give_welcome_coupon(
    session: AsyncSession, *, customer_id: int, now: datetime, rules: ShopRules
) -> str:
    """Issue `rules.new_customer_coupon` to a new customer; its title, or "" when not given.

    Not given: no coupon configured, the customer has paid an order or holds (or held) a
    copy already, or the coupon refuses (inactive, expired, all given out: its limits hold).
    """
    code = coupons.normalize_code(rules.new_customer_coupon)
    if not code or await _has_paid(session, customer_id):
        return ""
    coupon_id = await session.scalar(select(Coupon.id).where(Coupon.code == code))
    if coupon_id is None:
        return ""
    held = await session.scalar(
        select(CustomerCoupon.id)
        .where(CustomerCoupon.coupon_id == coupon_id, CustomerCoupon.customer_id == customer_id)
        .limit(1)
    )
    if held is not None:
        return ""
    openid = await session.scalar(select(Customer.openid).where(Customer.id == customer_id))
    try:
        view, _change = await coupons.issue_coupon(session, code=code, openid=openid or "", now=now)
    except ShopError:
        return ""
    return view.title


async def welcome_new_follower(
    session: AsyncSession,
    *,
    customer_id: int,
    now: datetime,
    rules: ShopRules,
    code: str = "",
    referrer_id: int | None = None,
) -> Welcome:
    """A follow: bind to the inviting friend (a referral code or, e.g., a group leader) and
    give the welcome coupon, in the caller's unit of work. Both follow the rules above."""
    referred = False
    if code or referrer_id is not None:
        outcome = await bind(
            session,
            customer_id=customer_id,
            now=now,
            rules=rules,
            code=code,
            referrer_id=referrer_id,
        )
        referred = outcome == BindOutcome.BOUND
        await _count_follow(session, customer_id=customer_id, code=code, referrer_id=referrer_id)
    title = await give_welcome_coupon(session, customer_id=customer_id, now=now, rules=rules)
    return Welcome(referred=referred, coupon_title=title)


async def _count_follow(session: AsyncSession, *, customer_id: int, code: str, referrer_id: int | None) -> None:
    """A follow through a friend's share (their referral code, their group's invite) is
    counted for that friend, bound or not (analytics: shares -> follows -> orders)."""
    if not analytics.counting(session):
        return
    sharer = referrer_id if referrer_id is not None else await referrer_by_code(session, code)
    if sharer is not None and sharer != customer_id:
        analytics.note(session, analytics.follow(customer_id, sharer))


async def top_referrers(session: AsyncSession, *, limit: int = 10) -> list[TopReferrer]:
    """The referrers with the most commission earned (net of reversals), then most referrals."""
    counts = (
        select(Customer.referrer_id.label("rid"), func.count().label("n"))
        .where(Customer.referrer_id.is_not(None))
        .group_by(Customer.referrer_id)
        .subquery()
    )
    earned = (
        select(
            Commission.referrer_id.label("rid"),
            func.sum(Commission.amount_fen - Commission.reversed_fen).label("fen"),
        )
        .group_by(Commission.referrer_id)
        .subquery()
    )
    rows = await session.execute(
        select(
            Customer.id,
            Customer.openid,
            Customer.referral_code,
            counts.c.n,
            func.coalesce(earned.c.fen, 0),
        )
        .join(counts, counts.c.rid == Customer.id)
        .outerjoin(earned, earned.c.rid == Customer.id)
        .order_by(func.coalesce(earned.c.fen, 0).desc(), counts.c.n.desc(), Customer.id)
        .limit(limit)
    )
    return [
        TopReferrer(
            customer_id=r[0],
            openid=r[1],
            referral_code=r[2] or "",
            referrals=int(r[3]),
            earned_fen=int(r[4]),
        )
        for r in rows
    ]

"""The shop's rules of time and money (built from the `[shop]` config), and UTC helpers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any


@dataclass(frozen=True, slots=True)
class MemberLevel:
    """A member level: reached at `threshold_fen` spent (paid minus refunded), it takes
    `discount_bp` basis points (200 = 2%) off the goods after the coupon at checkout."""

    name: str
    threshold_fen: int
    discount_bp: int


DEFAULT_MEMBER_LEVELS = (
    MemberLevel("普通会员", 0, 0),
    MemberLevel("银卡", 50_000, 200),
    MemberLevel("金卡", 200_000, 500),
    MemberLevel("钻石", 500_000, 800),
)


@dataclass(frozen=True)
class ShopRules:
    order_timeout: timedelta = timedelta(minutes=30)  # an unpaid order is cancelled after this
    remind_before: timedelta = timedelta(minutes=10)  # remind this long before it expires
    delivery_fee_fen: int = 800
    free_delivery_threshold_fen: int = 9900  # goods (before discount) at or above: no fee
    max_line_quantity: int = 99
    auto_complete_after: timedelta = timedelta(days=10)  # shipped orders complete themselves
    return_window: timedelta = timedelta(days=7)  # after-sales after completion
    group_time_limit: timedelta = timedelta(hours=24)  # a campaign's default time limit per group
    new_customer_coupon: str = ""  # code of the coupon every new follower gets ("" none)
    # referrals and commission
    referral_binding: timedelta = timedelta(days=365)  # first touch earns commission this long
    commission_rate_bp: int = 500  # basis points of the paid amount: 500 = 5%
    commission_on_group_orders: bool = False
    withdrawal_min_fen: int = 1000
    # points
    points_per_yuan: int = 1  # earned per whole yuan paid
    points_first_share: int = 20
    points_referral: int = 100  # for each referred customer's first paid order
    redeem_points_per_yuan: int = 100  # points that take ¥1 off
    redeem_max_percent: int = 50  # of the goods after the coupon
    review_points: int = 10  # for the review of a received order, once per order (0: none)
    # members (commerce.membership): the levels by total spent until staff edit them (/level set)
    member_levels: tuple[MemberLevel, ...] = DEFAULT_MEMBER_LEVELS
    # service tickets and the conversations kept
    service_idle: timedelta = timedelta(minutes=60)  # an open ticket nobody spoke on is closed
    conversation_keep: timedelta = timedelta(days=30)  # messages and closed tickets, then pruned
    events_keep: timedelta = timedelta(days=400)  # the analytics' events (shop_events), then pruned


def as_utc(moment: datetime) -> datetime:
    """An aware UTC datetime. Naive values are UTC already: SQLite returns them naive.

    Everything stored or compared goes through here, because SQLite keeps the wall-clock
    fields and drops the offset: a non-UTC aware value would be stored wrongly.
    """
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def maybe_utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else as_utc(moment)


def utcnow() -> datetime:
    return datetime.now(UTC)


# ---- the rules a unit of work carries (referrals, issue 6) ----
# Hooks deep inside the status machine (commerce.events) get no rules argument;
# the app factory puts its rules on every session (`sessions.configure(info={SESSION_RULES:
# rules})`), and a session made without them uses the defaults.
SESSION_RULES = "storefront.rules"


def session_rules(session: Any) -> ShopRules:
    """The rules `session` was made with, else `ShopRules()`."""
    rules = session.info.get(SESSION_RULES)
    return rules if isinstance(rules, ShopRules) else ShopRules()

"""Group buys (拼团): start a group, join it by code, and what payments and the clock do to it.

```mermaid
stateDiagram-v2
    [*] --> forming: start_group (leader's order pending)
    forming --> open: the leader's order paid (deadline = paid time + campaign limit)
    forming --> closed: the leader's order cancelled or expired
    open --> filled: paid_count == size (every member told, badge)
    open --> failed: fail_due_groups, deadline passed (paid members refunded)
    open --> closed: leader_cancel_group (alone) / close_group (staff)
    forming --> closed: close_group (staff)
```

Seats are counted by conditional UPDATEs on the group row (`seats_taken < size AND
status = 'open' AND deadline > now`), so the last seat goes to exactly one joiner, and
the campaign quota the same way (`commerce.groupbuys.campaigns.take_quota`). A join is one
savepoint: order, member row, quota, seat and stock, or nothing.

Money goes back through `refund_targets`: every member order of a failed or closed
group that is still paid. A refund moves the order out of `paid`, so the job that asks
the provider (scheduler `expire_group_buys`) finds each order once, and a second run or
a run after a crash finds only what is left. Orders are told through `commerce.messaging.notices`
(sent after the commit). Nothing here commits.
"""

from __future__ import annotations

import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.analytics import events as analytics
from commerce.cart.cart import spec_label
from commerce.catalog.models import Product, ProductImage, Variant
from commerce.customers.models import Customer
from commerce.db import rowcount
from commerce.errors import ErrorCode, ShopError
from commerce.groupbuys import campaigns as group_campaigns
from commerce.groupbuys.models import (
    GroupBuy,
    GroupCampaign,
    GroupMember,
    GroupMemberStatus,
    GroupStatus,
)
from commerce.loyalty import badges
from commerce.loyalty.badges import Badge
from commerce.messaging import notices
from commerce.orders.models import Order, OrderStatus
from commerce.rules import ShopRules, as_utc, maybe_utc

S = OrderStatus
G = GroupStatus
M = GroupMemberStatus
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: codes are typed
CODE_LENGTH = 6
SEAT_LOCK_KEY = 0x6B05EA7  # pg_advisory_xact_lock(key, customer id): one new seat per customer at a time
SEATED = (M.RESERVED.value, M.PAID.value)
ENDED = (G.FAILED.value, G.CLOSED.value)


@dataclass(frozen=True)
class MemberView:
    customer_id: int
    openid: str
    is_leader: bool
    status: GroupMemberStatus
    order_id: int | None


@dataclass(frozen=True)
class GroupView:
    id: int
    code: str
    campaign_id: int
    product_id: int
    variant_id: int
    product_name: str
    image_url: str  # the product's first image ("" without one)
    spec_label: str
    regular_price_fen: int
    price_fen: int
    size: int
    status: GroupStatus
    seats_taken: int
    paid_count: int
    deadline: datetime | None
    close_reason: str
    leader_id: int
    members: tuple[MemberView, ...]

    def seconds_left(self, now: datetime) -> int:
        if self.deadline is None:
            return 0
        return max(0, int((self.deadline - as_utc(now)).total_seconds()))

    def member(self, customer_id: int) -> MemberView | None:
        return next((m for m in self.members if m.customer_id == customer_id), None)

    def data(self, now: datetime) -> dict:
        """What a message template may show of the group (plain values)."""
        left = self.seconds_left(now)
        return {
            "code": self.code,
            "product": self.product_name,
            "image": self.image_url,
            "spec": self.spec_label,
            "price": self.price_fen,
            "regular_price": self.regular_price_fen,
            "size": self.size,
            "joined": self.paid_count,
            "seats": self.seats_taken,
            "status": str(self.status),
            "hours_left": left // 3600,
            "minutes_left": left % 3600 // 60,
            "deadline": self.deadline,
        }


def normalise_code(text: str) -> str:
    """Upper case, letters and digits only; full-width "ＡＢ１２" reads as "AB12" (NFKC)."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", text or "").upper() if ch.isalnum())


def may_be_code(text: str) -> bool:
    """Whether `text` (as `normalise_code` reads it) could be a group code at all: six
    characters of `CODE_ALPHABET`, the only ones a code is drawn from (`_new_code`). A typed
    word with an O, an I, a 0 or a 1 is no code, and needs no query to say so."""
    code = normalise_code(text)
    return len(code) == CODE_LENGTH and all(ch in CODE_ALPHABET for ch in code)


# ---- reading ---------------------------------------------------------------------------


async def _load(session: AsyncSession, where: ColumnElement[bool]) -> GroupView | None:
    row = (
        await session.execute(
            select(GroupBuy, GroupCampaign, Product, Variant)
            .join(GroupCampaign, GroupCampaign.id == GroupBuy.campaign_id)
            .join(Variant, Variant.id == GroupCampaign.variant_id)
            .join(Product, Product.id == GroupCampaign.product_id)
            .where(where)
            .execution_options(populate_existing=True)
        )
    ).first()
    if row is None:
        return None
    group, campaign, product, variant = row
    image_url = await session.scalar(
        select(ProductImage.url)
        .where(ProductImage.product_id == product.id)
        .order_by(ProductImage.position, ProductImage.id)
        .limit(1)
    )
    members = await session.execute(
        select(GroupMember, Customer.openid)
        .join(Customer, Customer.id == GroupMember.customer_id)
        .where(GroupMember.group_id == group.id)
        .order_by(GroupMember.is_leader.desc(), GroupMember.id)
        .execution_options(populate_existing=True)
    )
    return GroupView(
        id=group.id,
        code=group.code,
        campaign_id=campaign.id,
        product_id=product.id,
        variant_id=variant.id,
        product_name=product.name,
        image_url=image_url or "",
        spec_label=spec_label(variant.spec),
        regular_price_fen=variant.price_fen,
        price_fen=group.price_fen,
        size=group.size,
        status=G(group.status),
        seats_taken=group.seats_taken,
        paid_count=group.paid_count,
        deadline=maybe_utc(group.deadline),
        close_reason=group.close_reason,
        leader_id=group.leader_id,
        members=tuple(
            MemberView(m.customer_id, openid, m.is_leader, M(m.status), m.order_id)
            for m, openid in members.all()
        ),
    )


async def get_group(
    session: AsyncSession, *, code: str | None = None, group_id: int | None = None
) -> GroupView:
    """GROUP_NOT_FOUND unless the code (any case, spaces ignored) or id names a group."""
    where = (
        GroupBuy.id == group_id
        if group_id is not None
        else GroupBuy.code == normalise_code(code or "")
    )
    view = await _load(session, where)
    if view is None:
        raise ShopError(ErrorCode.GROUP_NOT_FOUND, group_code=normalise_code(code or ""))
    return view


async def group_exists(session: AsyncSession, *, code: str) -> bool:
    """Whether a typed word is a group code (for "is this bare word a code?")."""
    found = await session.scalar(select(GroupBuy.id).where(GroupBuy.code == normalise_code(code)))
    return found is not None


async def groups_of(session: AsyncSession, *, customer_id: int, limit: int = 5) -> list[GroupView]:
    """The customer's seats (newest first), released ones left out."""
    ids = (
        await session.scalars(
            select(GroupMember.group_id)
            .where(GroupMember.customer_id == customer_id, GroupMember.status != M.RELEASED.value)
            .order_by(GroupMember.id.desc())
            .limit(limit)
        )
    ).all()
    return [v for gid in ids if (v := await _load(session, GroupBuy.id == gid)) is not None]


async def list_groups(
    session: AsyncSession, *, statuses: list[GroupStatus] | None = None, limit: int = 20
) -> list[GroupView]:
    """Groups for staff, newest first."""
    query = select(GroupBuy.id)
    if statuses:
        query = query.where(GroupBuy.status.in_([G(s).value for s in statuses]))
    ids = (await session.scalars(query.order_by(GroupBuy.id.desc()).limit(limit))).all()
    return [v for gid in ids if (v := await _load(session, GroupBuy.id == gid)) is not None]


async def waiting_for_group(
    session: AsyncSession, *, order_ids: list[int]
) -> dict[int, tuple[int, int]]:
    """{order id: (paid members, group size)} for those of the orders that are paid seats of
    a group not filled yet: such an order waits for its group and cannot ship. One query."""
    if not order_ids:
        return {}
    rows = await session.execute(
        select(Order.id, GroupBuy.paid_count, GroupBuy.size)
        .join(GroupBuy, GroupBuy.id == Order.group_id)
        .where(
            Order.id.in_(order_ids),
            Order.status == S.PAID.value,
            GroupBuy.status.in_((G.FORMING.value, G.OPEN.value)),
        )
    )
    return {row.id: (row.paid_count, row.size) for row in rows.all()}


async def seats_ready_to_ship(session: AsyncSession, *, order_id: int) -> tuple[str, list[str]] | None:
    """(group code, the order numbers of its paid seats) when `order_id` is a seat of a
    group that has filled: what staff may ship now, once the last seat paid. None otherwise."""
    row = (
        await session.execute(
            select(GroupBuy.id, GroupBuy.code)
            .join(Order, Order.group_id == GroupBuy.id)
            .where(Order.id == order_id, GroupBuy.status == G.FILLED.value)
        )
    ).first()
    if row is None:
        return None
    numbers = (
        await session.scalars(
            select(Order.order_no)
            .where(Order.group_id == row.id, Order.status == S.PAID.value)
            .order_by(Order.paid_at, Order.id)
        )
    ).all()
    return row.code, list(numbers)


# ---- starting and joining ----------------------------------------------------------------


async def _check_per_user_limit(
    session: AsyncSession,
    *,
    campaign_id: int,
    customer_id: int,
    per_user_limit: int,
    seated: bool = False,
) -> None:
    """GROUP_LIMIT_REACHED when the customer holds the campaign's limit of seats already.

    Checked twice: early (nothing written, a clear refusal) and again once the new seat
    is written (`seated`), where it must hold against a second join of the same customer
    to another group at the same moment. There, on SQLite the transaction holds the write
    lock since its first write, so the other join waits and then counts this seat; on
    PostgreSQL the two joins lock different group rows, so a lock per customer
    (transaction-scoped, advisory) makes the second count after the first committed.
    """
    if seated and session.get_bind().dialect.name == "postgresql":
        await session.execute(select(func.pg_advisory_xact_lock(SEAT_LOCK_KEY, customer_id)))
    seats = await session.scalar(
        select(func.count(GroupMember.id))
        .join(GroupBuy, GroupBuy.id == GroupMember.group_id)
        .where(
            GroupBuy.campaign_id == campaign_id,
            GroupMember.customer_id == customer_id,
            GroupMember.status.in_(SEATED),
        )
    )
    if (seats or 0) >= per_user_limit + (1 if seated else 0):
        raise ShopError(ErrorCode.GROUP_LIMIT_REACHED, per_user_limit=per_user_limit)


async def _new_code(session: AsyncSession) -> str:
    for _attempt in range(10):
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        if not await group_exists(session, code=code):
            return code
    raise RuntimeError("could not draw a free group code")


async def _seat_order(
    session: AsyncSession,
    *,
    group_id: int,
    campaign: group_campaigns.CampaignView,
    variant_id: int,
    price_fen: int,
    customer_id: int,
    address_id: int,
    idempotency_key: str,
    rules: ShopRules,
    is_leader: bool,
    rejoining: bool,
    now: datetime,
) -> int:
    """The seat's pending order (one unit at the group's price) and member row, checked
    against the per-user limit and the campaign's quota; the order id. The caller has
    taken the seat itself and runs this inside a SAVEPOINT, undoing the seat on refusal."""
    from commerce.orders.placement import place_group_order

    order_id, _created = await place_group_order(
        session,
        customer_id=customer_id,
        address_id=address_id,
        idempotency_key=idempotency_key,
        rules=rules,
        variant_id=variant_id,
        unit_price_fen=price_fen,
        group_id=group_id,
        now=now,
    )
    if rejoining:
        await session.execute(
            update(GroupMember)
            .where(GroupMember.group_id == group_id, GroupMember.customer_id == customer_id)
            .values(status=M.RESERVED.value, order_id=order_id, joined_at=now, paid_at=None)
            .execution_options(synchronize_session=False)
        )
    else:
        session.add(
            GroupMember(
                group_id=group_id,
                customer_id=customer_id,
                order_id=order_id,
                is_leader=is_leader,
                status=M.RESERVED.value,
                joined_at=now,
            )
        )
        await session.flush()
    await _check_per_user_limit(
        session,
        campaign_id=campaign.id,
        customer_id=customer_id,
        per_user_limit=campaign.per_user_limit,
        seated=True,
    )
    if not await group_campaigns.take_quota(session, campaign_id=campaign.id):
        raise ShopError(ErrorCode.GROUP_SOLD_OUT, campaign_id=campaign.id)
    return order_id


async def start_group(
    session: AsyncSession,
    *,
    campaign_id: int,
    customer_id: int,
    address_id: int,
    idempotency_key: str,
    rules: ShopRules,
    now: datetime,
) -> tuple[GroupView, int]:
    """The customer leads a new group: (group, the leader's pending order id).

    The group is FORMING until the leader pays; nobody else can join before. Refused with
    CAMPAIGN_NOT_FOUND / CAMPAIGN_NOT_ACTIVE, GROUP_LIMIT_REACHED, GROUP_SOLD_OUT,
    OUT_OF_STOCK; a refusal leaves nothing behind.
    """

    now = as_utc(now)
    campaign = await group_campaigns.get_campaign(session, campaign_id=campaign_id)
    if not campaign.is_active(now):
        raise ShopError(ErrorCode.CAMPAIGN_NOT_ACTIVE, campaign_id=campaign_id)
    await _check_per_user_limit(
        session,
        campaign_id=campaign_id,
        customer_id=customer_id,
        per_user_limit=campaign.per_user_limit,
    )
    code = await _new_code(session)
    # The group row is the first write (it opens the transaction on SQLite, so the
    # SAVEPOINT nests inside it); a refusal below deletes it again.
    group = GroupBuy(
        code=code,
        campaign_id=campaign.id,
        leader_id=customer_id,
        size=campaign.group_size,
        price_fen=campaign.group_price_fen,
        status=G.FORMING.value,
        seats_taken=1,
        paid_count=0,
        created_at=now,
    )
    session.add(group)
    await session.flush()
    try:
        async with session.begin_nested():
            order_id = await _seat_order(
                session,
                group_id=group.id,
                campaign=campaign,
                variant_id=campaign.variant_id,
                price_fen=campaign.group_price_fen,
                customer_id=customer_id,
                address_id=address_id,
                idempotency_key=f"group:{idempotency_key}",
                rules=rules,
                is_leader=True,
                rejoining=False,
                now=now,
            )
    except ShopError:
        await session.execute(
            delete(GroupBuy)
            .where(GroupBuy.id == group.id)
            .execution_options(synchronize_session=False)
        )
        raise
    return await get_group(session, group_id=group.id), order_id


async def _why_not_open(group: GroupView, now: datetime) -> ShopError:
    if group.status == G.FORMING:
        return ShopError(ErrorCode.GROUP_NOT_OPEN, group_code=group.code)
    if group.status == G.FILLED or (group.status == G.OPEN and group.seats_taken >= group.size):
        return ShopError(ErrorCode.GROUP_FULL, group_code=group.code, size=group.size)
    if group.status == G.FAILED or (group.deadline is not None and group.deadline <= now):
        return ShopError(ErrorCode.GROUP_EXPIRED, group_code=group.code)
    return ShopError(ErrorCode.GROUP_CLOSED, group_code=group.code)


async def join_group(
    session: AsyncSession,
    *,
    code: str,
    customer_id: int,
    address_id: int,
    idempotency_key: str,
    rules: ShopRules,
    now: datetime,
) -> tuple[GroupView, int]:
    """Take a seat in an open group: (group, the member's pending order id).

    The seat is held until the order's payment link expires (then released by the order
    expiry). Refused with GROUP_NOT_FOUND, GROUP_OWN, GROUP_ALREADY_MEMBER,
    GROUP_NOT_OPEN, GROUP_FULL, GROUP_EXPIRED, GROUP_CLOSED, GROUP_LIMIT_REACHED,
    GROUP_SOLD_OUT, OUT_OF_STOCK; a refusal leaves nothing behind. A campaign closed
    since the group opened does not stop it: the group runs to its own deadline.
    """

    now = as_utc(now)
    group = await get_group(session, code=code)
    if group.leader_id == customer_id:
        raise ShopError(ErrorCode.GROUP_OWN, group_code=group.code)
    seat = group.member(customer_id)
    if seat is not None and seat.status != M.RELEASED:
        raise ShopError(ErrorCode.GROUP_ALREADY_MEMBER, group_code=group.code)
    if group.status != G.OPEN or group.seats_taken >= group.size or (group.deadline or now) <= now:
        raise await _why_not_open(group, now)
    campaign = await group_campaigns.get_campaign(session, campaign_id=group.campaign_id)
    await _check_per_user_limit(
        session,
        campaign_id=campaign.id,
        customer_id=customer_id,
        per_user_limit=campaign.per_user_limit,
    )
    # The seat first: on PostgreSQL the group row is locked from here to the commit, so
    # racing joiners queue on it; on SQLite this write opens the transaction, so the
    # SAVEPOINT below nests inside it (a SAVEPOINT that opened it would commit on RELEASE).
    taken = await session.execute(
        update(GroupBuy)
        .where(
            GroupBuy.id == group.id,
            GroupBuy.status == G.OPEN.value,
            GroupBuy.seats_taken < GroupBuy.size,
            GroupBuy.deadline > now,
        )
        .values(seats_taken=GroupBuy.seats_taken + 1)
        .execution_options(synchronize_session=False)
    )
    if rowcount(taken) != 1:  # another joiner got the last seat
        raise await _why_not_open(await get_group(session, group_id=group.id), now)
    try:
        async with session.begin_nested():
            order_id = await _seat_order(
                session,
                group_id=group.id,
                campaign=campaign,
                variant_id=group.variant_id,
                price_fen=group.price_fen,  # the price when the group started
                customer_id=customer_id,
                address_id=address_id,
                idempotency_key=f"group:{group.code}:{idempotency_key}",
                rules=rules,
                is_leader=False,
                rejoining=seat is not None,  # back after an unpaid join expired: the same row
                now=now,
            )
    except ShopError:
        await session.execute(  # give the seat back: the join left nothing else behind
            update(GroupBuy)
            .where(GroupBuy.id == group.id, GroupBuy.seats_taken > 0)
            .values(seats_taken=GroupBuy.seats_taken - 1)
            .execution_options(synchronize_session=False)
        )
        raise
    return await get_group(session, group_id=group.id), order_id


# ---- what order moves do to groups (commerce.events) ---------------------------------


async def on_order_moved(
    session: AsyncSession, *, order_id: int, frm: OrderStatus, to: OrderStatus, now: datetime
) -> None:
    """Seats follow their orders: paid -> member paid (maybe the group opens or fills),
    cancelled -> seat released (a leader's: the group closes), refunded -> member refunded."""
    group_id = await session.scalar(select(Order.group_id).where(Order.id == order_id))
    if group_id is None:
        return
    if frm == S.PENDING_PAYMENT and to == S.PAID:
        await _member_paid(session, group_id=group_id, order_id=order_id, now=now)
    elif to == S.CANCELLED:
        await _member_released(session, group_id=group_id, order_id=order_id, now=now)
    elif to == S.REFUNDED:
        refunded = await session.execute(
            update(GroupMember)
            .where(GroupMember.order_id == order_id, GroupMember.status == M.PAID.value)
            .values(status=M.REFUNDED.value)
            .execution_options(synchronize_session=False)
        )
        status, campaign_id = (
            await session.execute(
                select(GroupBuy.status, GroupBuy.campaign_id).where(GroupBuy.id == group_id)
            )
        ).one()
        if rowcount(refunded) == 1 and status in ENDED:  # the unit was never sold
            await group_campaigns.give_back_quota(session, campaign_id=campaign_id)


async def _member_paid(
    session: AsyncSession, *, group_id: int, order_id: int, now: datetime
) -> None:
    paid_at = (
        maybe_utc(await session.scalar(select(Order.paid_at).where(Order.id == order_id))) or now
    )
    member = await session.scalar(
        select(GroupMember)
        .where(GroupMember.order_id == order_id)
        .execution_options(populate_existing=True)
    )
    if member is None or member.status != M.RESERVED.value:
        return
    await session.execute(
        update(GroupMember)
        .where(GroupMember.id == member.id, GroupMember.status == M.RESERVED.value)
        .values(status=M.PAID.value, paid_at=paid_at)
        .execution_options(synchronize_session=False)
    )
    if member.is_leader:
        minutes = await session.scalar(
            select(GroupCampaign.time_limit_minutes)
            .join(GroupBuy, GroupBuy.campaign_id == GroupCampaign.id)
            .where(GroupBuy.id == group_id)
        )
        counted = await session.execute(
            update(GroupBuy)
            .where(GroupBuy.id == group_id, GroupBuy.status == G.FORMING.value)
            .values(
                status=G.OPEN.value,
                paid_count=GroupBuy.paid_count + 1,
                opened_at=paid_at,
                deadline=paid_at + timedelta(minutes=minutes or 0),
            )
            .execution_options(synchronize_session=False)
        )
    else:
        # a payment that arrives after the deadline does not count: the group fails and
        # this paid order is refunded with the others (`refund_targets`)
        counted = await session.execute(
            update(GroupBuy)
            .where(
                GroupBuy.id == group_id,
                GroupBuy.status == G.OPEN.value,
                GroupBuy.deadline > paid_at,
                GroupBuy.paid_count < GroupBuy.seats_taken,
            )
            .values(paid_count=GroupBuy.paid_count + 1)
            .execution_options(synchronize_session=False)
        )
    if rowcount(counted) != 1:
        return
    filled = await session.execute(
        update(GroupBuy)
        .where(
            GroupBuy.id == group_id,
            GroupBuy.status == G.OPEN.value,
            GroupBuy.paid_count >= GroupBuy.size,
        )
        .values(status=G.FILLED.value, filled_at=now)
        .execution_options(synchronize_session=False)
    )
    group = await get_group(session, group_id=group_id)
    paid = [m for m in group.members if m.status == M.PAID]
    if rowcount(filled) == 1:
        for m in paid:
            notices.queue(session, openid=m.openid, template="group_filled", data=group.data(now))
            await badges.award(session, customer_id=m.customer_id, badge=Badge.FIRST_GROUP, now=now)
    elif member.is_leader:  # the invite: the code and the group's page, to forward to friends
        leader = next(m for m in group.members if m.is_leader)
        notices.queue(session, openid=leader.openid, template="group_opened", data=group.data(now))
        analytics.note(session, analytics.share(leader.customer_id, group.product_id))  # the invite, sent
    else:
        for m in paid:
            notices.queue(session, openid=m.openid, template="group_progress", data=group.data(now))


async def _member_released(
    session: AsyncSession, *, group_id: int, order_id: int, now: datetime
) -> None:
    member = await session.scalar(
        select(GroupMember)
        .where(GroupMember.order_id == order_id)
        .execution_options(populate_existing=True)
    )
    if member is None:
        return
    released = await session.execute(
        update(GroupMember)
        .where(GroupMember.id == member.id, GroupMember.status == M.RESERVED.value)
        .values(status=M.RELEASED.value)
        .execution_options(synchronize_session=False)
    )
    if rowcount(released) != 1:
        return
    # the group row before the campaign's, the order a join takes them in (no deadlock)
    await session.execute(
        update(GroupBuy)
        .where(GroupBuy.id == group_id, GroupBuy.seats_taken > GroupBuy.paid_count)
        .values(seats_taken=GroupBuy.seats_taken - 1)
        .execution_options(synchronize_session=False)
    )
    campaign_id = (
        await session.execute(select(GroupBuy.campaign_id).where(GroupBuy.id == group_id))
    ).scalar_one()
    await group_campaigns.give_back_quota(session, campaign_id=campaign_id)
    if member.is_leader:  # the leader never paid: nobody could join, the group ends here
        await session.execute(
            update(GroupBuy)
            .where(GroupBuy.id == group_id, GroupBuy.status == G.FORMING.value)
            .values(status=G.CLOSED.value, close_reason="leader_unpaid", closed_at=now)
            .execution_options(synchronize_session=False)
        )

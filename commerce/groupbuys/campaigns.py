"""Group-buy campaigns (拼团活动): which variant sells at which group price, to groups of
how many, for how long, to whom and how many times.

Staff create and close campaigns; the groups themselves live in `commerce.groupbuys.groups`.
A campaign's `quota_used` counts the units held by unpaid and paid seats, changed only
by conditional UPDATEs (`take_quota` / `give_back_quota`), so a quota is never oversold
by racing joins. Closing a campaign stops new groups; groups already open run to their
own deadline (a friend who was sent an invite can still join it).

Nothing here commits: the caller owns the unit of work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Select, distinct, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.cart.cart import spec_label
from commerce.catalog.models import Product, ProductStatus, Variant
from commerce.db import rowcount
from commerce.errors import ErrorCode, ShopError
from commerce.groupbuys.models import GroupCampaign, GroupCampaignStatus
from commerce.rules import ShopRules, as_utc

MAX_GROUP_SIZE = 50
MAX_TIME_LIMIT = timedelta(days=7)
MAX_PER_USER_LIMIT = 99


@dataclass(frozen=True)
class CampaignView:
    id: int
    product_id: int
    variant_id: int
    product_name: str
    spec_label: str
    sku_code: str
    regular_price_fen: int
    group_price_fen: int
    group_size: int
    time_limit_minutes: int
    per_user_limit: int
    starts_at: datetime
    ends_at: datetime
    stock_quota: int | None
    quota_used: int
    status: GroupCampaignStatus
    stock: int

    def is_active(self, now: datetime) -> bool:
        """Whether new groups may start now."""
        return (
            self.status == GroupCampaignStatus.ACTIVE
            and self.starts_at <= as_utc(now) < self.ends_at
        )


def _view(campaign: GroupCampaign, product: Product, variant: Variant) -> CampaignView:
    return CampaignView(
        id=campaign.id,
        product_id=product.id,
        variant_id=variant.id,
        product_name=product.name,
        spec_label=spec_label(variant.spec),
        sku_code=variant.sku_code,
        regular_price_fen=variant.price_fen,
        group_price_fen=campaign.group_price_fen,
        group_size=campaign.group_size,
        time_limit_minutes=campaign.time_limit_minutes,
        per_user_limit=campaign.per_user_limit,
        starts_at=as_utc(campaign.starts_at),
        ends_at=as_utc(campaign.ends_at),
        stock_quota=campaign.stock_quota,
        quota_used=campaign.quota_used,
        status=GroupCampaignStatus(campaign.status),
        stock=variant.stock,
    )


def _query() -> Select[GroupCampaign, Product, Variant]:
    return (
        select(GroupCampaign, Product, Variant)
        .join(Variant, Variant.id == GroupCampaign.variant_id)
        .join(Product, Product.id == GroupCampaign.product_id)
        .execution_options(populate_existing=True)
    )


def _active(now: datetime) -> tuple[ColumnElement[bool], ...]:
    """A campaign that starts groups now, on a product on sale (joined as `Product`)."""
    return (
        GroupCampaign.status == GroupCampaignStatus.ACTIVE.value,
        GroupCampaign.starts_at <= now,
        GroupCampaign.ends_at > now,
        Product.status == ProductStatus.ON_SALE.value,
    )


async def get_campaign(session: AsyncSession, *, campaign_id: int) -> CampaignView:
    row = (await session.execute(_query().where(GroupCampaign.id == campaign_id))).first()
    if row is None:
        raise ShopError(ErrorCode.CAMPAIGN_NOT_FOUND, campaign_id=campaign_id)
    return _view(*row)


async def create_campaign(
    session: AsyncSession,
    *,
    variant_id: int,
    group_price_fen: int,
    group_size: int,
    starts_at: datetime,
    ends_at: datetime,
    rules: ShopRules,
    time_limit: timedelta | None = None,
    per_user_limit: int = 1,
    stock_quota: int | None = None,
    created_by: str = "",
) -> CampaignView:
    """A new active campaign; CAMPAIGN_INVALID (details: field) when a value makes no sense.

    The group price must be below the variant's own price (otherwise nobody gains by
    forming a group), and the time limit defaults to the shop's (`rules.group_time_limit`).
    """
    variant = await session.get(Variant, variant_id)
    if variant is None:
        raise ShopError(ErrorCode.VARIANT_NOT_FOUND, ref=str(variant_id), skus=[])
    limit = time_limit if time_limit is not None else rules.group_time_limit
    starts_at, ends_at = as_utc(starts_at), as_utc(ends_at)
    checks = {
        "group_price": 0 < group_price_fen < variant.price_fen,
        "group_size": 2 <= group_size <= MAX_GROUP_SIZE,
        "time_limit": timedelta(minutes=1) <= limit <= MAX_TIME_LIMIT,
        "per_user_limit": 1 <= per_user_limit <= MAX_PER_USER_LIMIT,
        "window": starts_at < ends_at,
        "stock_quota": stock_quota is None or stock_quota > 0,
    }
    for field, ok in checks.items():
        if not ok:
            raise ShopError(
                ErrorCode.CAMPAIGN_INVALID,
                field=field,
                price_fen=variant.price_fen,
                max_size=MAX_GROUP_SIZE,
                max_hours=int(MAX_TIME_LIMIT.total_seconds() // 3600),
                max_limit=MAX_PER_USER_LIMIT,
            )
    campaign = GroupCampaign(
        product_id=variant.product_id,
        variant_id=variant.id,
        group_price_fen=group_price_fen,
        group_size=group_size,
        time_limit_minutes=int(limit.total_seconds() // 60),
        per_user_limit=per_user_limit,
        starts_at=starts_at,
        ends_at=ends_at,
        stock_quota=stock_quota,
        quota_used=0,
        status=GroupCampaignStatus.ACTIVE.value,
        created_by=created_by[:64],
    )
    session.add(campaign)
    await session.flush()
    return await get_campaign(session, campaign_id=campaign.id)


async def close_campaign(session: AsyncSession, *, campaign_id: int) -> CampaignView:
    """No new groups from now on; open groups keep their own deadline."""
    await get_campaign(session, campaign_id=campaign_id)
    await session.execute(
        update(GroupCampaign)
        .where(GroupCampaign.id == campaign_id)
        .values(status=GroupCampaignStatus.CLOSED.value)
        .execution_options(synchronize_session=False)
    )
    return await get_campaign(session, campaign_id=campaign_id)


async def list_campaigns(
    session: AsyncSession,
    *,
    now: datetime,
    active_only: bool = False,
    product_id: int | None = None,
    limit: int = 20,
) -> list[CampaignView]:
    """Campaigns, newest first; `active_only`: those that start groups now, on products on sale."""
    now = as_utc(now)
    query = _query()
    if active_only:
        query = query.where(*_active(now))
    if product_id is not None:
        query = query.where(GroupCampaign.product_id == product_id)
    rows = await session.execute(query.order_by(GroupCampaign.id.desc()).limit(limit))
    return [_view(*row) for row in rows.all()]


async def offer_for(session: AsyncSession, *, product_id: int, now: datetime) -> CampaignView | None:
    """The product's group offer a customer sees on its card (its newest campaign that
    starts groups now), or None."""
    found = await list_campaigns(session, now=now, active_only=True, product_id=product_id, limit=1)
    return found[0] if found else None


async def products_on_offer(session: AsyncSession, *, now: datetime) -> int:
    """How many products have a campaign that starts groups now (as `list_campaigns`
    lists them with `active_only`)."""
    now = as_utc(now)
    count = await session.scalar(
        select(func.count(distinct(GroupCampaign.product_id)))
        .join(Product, Product.id == GroupCampaign.product_id)
        .where(*_active(now))
    )
    return int(count or 0)


async def take_quota(session: AsyncSession, *, campaign_id: int) -> bool:
    """One unit of the campaign's quota; False (nothing changed) when it is used up."""
    result = await session.execute(
        update(GroupCampaign)
        .where(
            GroupCampaign.id == campaign_id,
            (GroupCampaign.stock_quota.is_(None))
            | (GroupCampaign.quota_used < GroupCampaign.stock_quota),
        )
        .values(quota_used=GroupCampaign.quota_used + 1)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) == 1


async def give_back_quota(session: AsyncSession, *, campaign_id: int) -> None:
    await session.execute(
        update(GroupCampaign)
        .where(GroupCampaign.id == campaign_id, GroupCampaign.quota_used > 0)
        .values(quota_used=GroupCampaign.quota_used - 1)
        .execution_options(synchronize_session=False)
    )

"""Every model of the shop, gathered: Alembic and the schema test read `Base.metadata` here.

Each model lives with its domain (`commerce/<domain>/models.py`); this module only imports
them, so that importing it registers every table. Money is integer fen everywhere. Stock
has a CHECK constraint so that no code path, however buggy, can store a negative number.
"""

from __future__ import annotations

from commerce.analytics.models import EventKind, ShopEvent
from commerce.balance.models import (
    AccountKind,
    BalanceAccount,
    BalanceEntry,
    BalanceHold,
    BalanceMovement,
    BalanceWithdrawal,
    BalanceWithdrawalStatus,
    HoldStatus,
    TopUp,
    TopUpPlan,
    TopUpStatus,
)
from commerce.cart.models import CartLine
from commerce.catalog.models import (
    Category,
    FaqAnswer,
    Product,
    ProductImage,
    ProductStatus,
    SearchSynonym,
    Tag,
    Variant,
    product_tags,
)
from commerce.customers.models import Address, Customer, Handoff, HandoffMessage
from commerce.groupbuys.models import (
    GroupBuy,
    GroupCampaign,
    GroupCampaignStatus,
    GroupMember,
    GroupMemberStatus,
    GroupStatus,
)
from commerce.loyalty.models import CustomerBadge, PointsEntry
from commerce.membership.models import Member, MemberLevelRow, SmsCode
from commerce.messaging.models import (
    Broadcast,
    DialogState,
    InboundMessage,
    InboundStatus,
    OutboxMessage,
    OutboxStatus,
)
from commerce.orders.models import (
    AfterSalesKind,
    AfterSalesRequest,
    AfterSalesStatus,
    Order,
    OrderEvent,
    OrderLine,
    OrderStatus,
)
from commerce.orm import NAMING, Base, utcnow
from commerce.payments.models import PaymentEvent, Refund, RefundStatus
from commerce.promotions.models import (
    Coupon,
    CouponKind,
    CustomerCoupon,
    CustomerCouponStatus,
    FlashClaim,
    FlashClaimStatus,
    FlashReminder,
    FlashSale,
    FlashSaleStatus,
    LivePush,
    LiveSession,
    LiveSessionStatus,
    LiveSubscriber,
)
from commerce.referrals.models import (
    Commission,
    CommissionEntry,
    CommissionStatus,
    Withdrawal,
    WithdrawalStatus,
)
from commerce.reviews.models import ProductRating, Review, ReviewPhoto
from commerce.staff.models import AuditEntry, StaffInvite, StaffMember, StaffRole
from commerce.system_models import InstallSecret, LinkUse

__all__ = [
    "NAMING",
    "Base",
    "utcnow",
    "ProductStatus",
    "Category",
    "product_tags",
    "Tag",
    "Product",
    "Variant",
    "ProductImage",
    "SearchSynonym",
    "FaqAnswer",
    "Customer",
    "Address",
    "Handoff",
    "HandoffMessage",
    "CartLine",
    "CouponKind",
    "Coupon",
    "CustomerCouponStatus",
    "FlashClaim",
    "FlashClaimStatus",
    "FlashReminder",
    "FlashSale",
    "FlashSaleStatus",
    "LivePush",
    "LiveSession",
    "LiveSessionStatus",
    "LiveSubscriber",
    "CustomerCoupon",
    "OrderStatus",
    "Order",
    "OrderLine",
    "OrderEvent",
    "AfterSalesKind",
    "AfterSalesStatus",
    "AfterSalesRequest",
    "PaymentEvent",
    "RefundStatus",
    "Refund",
    "StaffRole",
    "StaffMember",
    "StaffInvite",
    "AuditEntry",
    "OutboxStatus",
    "OutboxMessage",
    "Broadcast",
    "InboundStatus",
    "DialogState",
    "InboundMessage",
    "GroupCampaignStatus",
    "GroupCampaign",
    "GroupStatus",
    "GroupBuy",
    "GroupMemberStatus",
    "GroupMember",
    "CommissionStatus",
    "Commission",
    "WithdrawalStatus",
    "Withdrawal",
    "CommissionEntry",
    "PointsEntry",
    "Review",
    "ReviewPhoto",
    "ProductRating",
    "CustomerBadge",
    "InstallSecret",
    "LinkUse",
    "EventKind",
    "AccountKind",
    "BalanceAccount",
    "BalanceEntry",
    "BalanceHold",
    "BalanceMovement",
    "BalanceWithdrawal",
    "BalanceWithdrawalStatus",
    "HoldStatus",
    "TopUp",
    "TopUpPlan",
    "TopUpStatus",
    "ShopEvent",
    "Member",
    "MemberLevelRow",
    "SmsCode",
]

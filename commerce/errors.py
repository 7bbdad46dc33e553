"""Error codes the commerce core raises and the bot maps to message templates.

A `ShopError` carries a machine-readable `code` and `details`: plain values (ints,
strings, lists of dicts) that a template can show, never ORM objects.
"""

from __future__ import annotations

import enum
from typing import Any


class ErrorCode(enum.StrEnum):
    OUT_OF_STOCK = "out_of_stock"
    NOT_ON_SALE = "not_on_sale"
    VARIANT_NOT_FOUND = "variant_not_found"
    QUANTITY_INVALID = "quantity_invalid"
    CART_EMPTY = "cart_empty"
    CART_LINE_NOT_FOUND = "cart_line_not_found"
    ADDRESS_INVALID = "address_invalid"
    PHONE_INVALID = "phone_invalid"
    ADDRESS_NOT_FOUND = "address_not_found"
    COUPON_INVALID = "coupon_invalid"
    ORDER_NOT_FOUND = "order_not_found"
    ORDER_AMBIGUOUS = "order_ambiguous"  # the end of an order number staff typed fits several; details: ref, orders, more
    ILLEGAL_TRANSITION = "illegal_transition"
    ORDER_EXPIRED = "order_expired"
    REFUND_TOO_LARGE = "refund_too_large"
    NOTHING_TO_REFUND = "nothing_to_refund"
    AFTER_SALES_NOT_ALLOWED = "after_sales_not_allowed"
    ADDRESS_FIXED = "address_fixed"  # the order shipped or ended: its address stays; details: order_id, status
    # beyond the first contract
    PRICE_CHANGED = "price_changed"  # place_order(expected_payable_fen=...) no longer matches
    POINTS_CHANGED = "points_changed"  # the points a quote used were spent meanwhile
    AMOUNT_INVALID = "amount_invalid"  # a refund of zero or less
    REASON_INVALID = "reason_invalid"  # an after-sales reason too short or too long
    # staff administration
    STAFF_NOT_FOUND = "staff_not_found"
    STAFF_EXISTS = "staff_exists"
    STAFF_IN_CONFIG = "staff_in_config"  # an owner from the config's allow-list: change the config
    LAST_OWNER = "last_owner"  # removing or demoting the only owner would lock the shop out
    OPENID_INVALID = "openid_invalid"
    INVITE_INVALID = "invite_invalid"
    PRODUCT_NOT_FOUND = "product_not_found"
    PRODUCT_AMBIGUOUS = "product_ambiguous"  # a name staff typed fits several; details: ref, products, more
    CATEGORY_NOT_FOUND = "category_not_found"  # details: category, known (names), closest (or "")
    SKU_EXISTS = "sku_exists"
    SKU_INVALID = "sku_invalid"
    PRICE_INVALID = "price_invalid"  # details: field, min, max
    STOCK_INVALID = "stock_invalid"  # details: current (for a delta), min, max
    NAME_INVALID = "name_invalid"  # details: field, min_length, max_length
    COUPON_EXISTS = "coupon_exists"
    COUPON_NOT_FOUND = "coupon_not_found"
    COUPON_EXHAUSTED = "coupon_exhausted"
    COUPON_LIMIT_REACHED = "coupon_limit_reached"
    CUSTOMER_NOT_FOUND = "customer_not_found"
    CUSTOMER_AMBIGUOUS = "customer_ambiguous"  # the end of an openid staff typed fits several
    REQUEST_NOT_FOUND = "request_not_found"
    REQUEST_NOT_OPEN = "request_not_open"  # an after-sales request already approved or rejected
    # service tickets (commerce.customers.handoffs)
    TICKET_NOT_FOUND = "ticket_not_found"  # details: ticket_id
    TICKET_CLOSED = "ticket_closed"  # details: ticket_id
    WINDOW_CLOSED = "window_closed"  # the customer has not written within WeChat's 48 hours; details: ticket_id
    CSV_INVALID = "csv_invalid"
    IMAGE_INVALID = "image_invalid"  # details: reason (empty, not_image, too_large, too_many_pixels), max_bytes
    IMAGE_LIMIT = "image_limit"  # details: max (pictures a product may have)
    DATE_RANGE_INVALID = "date_range_invalid"
    # ---- referrals and commission (commerce.referrals.commission) ----
    WITHDRAWAL_NOT_FOUND = "withdrawal_not_found"
    WITHDRAWAL_NOT_PENDING = "withdrawal_not_pending"  # approved or rejected already
    WITHDRAWAL_PENDING = "withdrawal_pending"  # the customer has one waiting for staff
    WITHDRAWAL_BELOW_MINIMUM = "withdrawal_below_minimum"  # details: min_fen, available_fen
    WITHDRAWAL_TOO_LARGE = "withdrawal_too_large"  # details: available_fen
    NOTHING_TO_WITHDRAW = "nothing_to_withdraw"  # details: available_fen (may be negative)
    TRANSFER_REF_INVALID = "transfer_ref_invalid"  # details: max_length
    # group buys (commerce.groupbuys.groups, commerce.groupbuys.campaigns)
    CAMPAIGN_NOT_FOUND = "campaign_not_found"
    CAMPAIGN_NOT_ACTIVE = "campaign_not_active"  # closed, not started or over: no new groups
    CAMPAIGN_INVALID = "campaign_invalid"  # details: field, price_fen, max_size, max_hours
    FLASH_NOT_FOUND = "flash_not_found"
    FLASH_INVALID = "flash_invalid"  # details: field, price_fen, max_units, max_limit, max_pay_minutes, max_days
    FLASH_NOT_STARTED = "flash_not_started"  # details: starts_at, to_start {days, hours, minutes}
    FLASH_STARTED = "flash_started"  # a reminder asked for a sale already running
    FLASH_ENDED = "flash_ended"
    FLASH_SOLD_OUT = "flash_sold_out"  # details: next_sale or similar
    FLASH_LIMIT_REACHED = "flash_limit_reached"  # details: per_user_limit
    FLASH_HOLDING = "flash_holding"  # an unpaid unit already; details: order_id
    FLASH_HOLD_EXPIRED = "flash_hold_expired"  # the unit held during the address step went back on sale
    # live drops (commerce.promotions.live)
    LIVE_NOT_OPEN = "live_not_open"  # no live session now
    LIVE_ALREADY_OPEN = "live_already_open"  # details: title, session_id
    LIVE_NOTHING_PUSHED = "live_nothing_pushed"  # a session open, no product pushed yet; details: title
    LIVE_INVALID = "live_invalid"  # details: field (title, video_url, units), max
    GROUP_NOT_FOUND = "group_not_found"
    GROUP_NOT_OPEN = "group_not_open"  # the leader has not paid yet
    GROUP_FULL = "group_full"
    # stored balance
    BALANCE_NOT_ENOUGH = "balance_not_enough"  # details: balance_fen (what can be spent)
    BALANCE_ALREADY_USED = "balance_already_used"  # the order already takes balance; details: balance_fen
    TOPUP_PLAN_NOT_FOUND = "topup_plan_not_found"  # details: plans (the amounts offered, fen)
    GROUP_EXPIRED = "group_expired"
    GROUP_CLOSED = "group_closed"
    GROUP_OWN = "group_own"  # the leader joining their own group
    GROUP_ALREADY_MEMBER = "group_already_member"
    GROUP_LIMIT_REACHED = "group_limit_reached"  # details: per_user_limit
    GROUP_SOLD_OUT = "group_sold_out"  # the campaign's stock quota is used up
    GROUP_NOT_FILLED = "group_not_filled"  # its orders ship only once the group filled
    TRACKING_INVALID = "tracking_invalid"  # details: tracking_no (4-64 of A-Z a-z 0-9 -)
    CARRIER_INVALID = "carrier_invalid"  # details: max_length
    # reviews (commerce.reviews.actions)
    REVIEW_NOT_ALLOWED = "review_not_allowed"  # the order is not received (completed) yet; details: order_no, status
    REVIEW_EXISTS = "review_exists"  # the order has its review already; details: order_no
    REVIEW_INVALID = "review_invalid"  # details: field (rating, body, photos), max
    REVIEW_NOT_FOUND = "review_not_found"  # details: review_id
    # members (commerce.membership)
    ALREADY_MEMBER = "already_member"  # details: phone_tail (the last 4 digits of the phone confirmed)
    PHONE_TAKEN = "phone_taken"  # the phone is another customer's membership already
    CODE_TOO_SOON = "code_too_soon"  # a code was sent to this phone or customer moments ago; details: wait_seconds
    CODE_LIMIT = "code_limit"  # too many codes today for this phone or customer; details: max
    SMS_FAILED = "sms_failed"  # the SMS provider did not send the code
    LEVEL_INVALID = "level_invalid"  # details: field (name, threshold, discount), max_length / max_fen / max_bp
    LEVEL_NOT_FOUND = "level_not_found"  # details: name, known (the levels' names)
    LEVEL_LAST = "level_last"  # the shop's only level cannot be removed; details: name


class ShopError(Exception):
    """A business rule said no. `details` are plain values for the reply template.

    Its text (what a traceback and a log line show) is the code and the names of the
    details, never their values: details carry openids, phone tails, names, coupon, invite
    and group codes, and a ShopError no handler expected is logged with its traceback.
    """

    def __init__(self, code: ErrorCode, **details: Any) -> None:
        self.code = code
        self.details: dict[str, Any] = details
        super().__init__(f"{code.value} ({', '.join(details)})" if details else code.value)

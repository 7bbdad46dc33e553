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
    ILLEGAL_TRANSITION = "illegal_transition"
    ORDER_EXPIRED = "order_expired"
    REFUND_TOO_LARGE = "refund_too_large"
    NOTHING_TO_REFUND = "nothing_to_refund"
    AFTER_SALES_NOT_ALLOWED = "after_sales_not_allowed"
    # beyond the first contract
    PRICE_CHANGED = "price_changed"  # place_order(expected_payable_fen=...) no longer matches
    AMOUNT_INVALID = "amount_invalid"  # a refund of zero or less
    REASON_INVALID = "reason_invalid"  # an after-sales reason too short or too long


class ShopError(Exception):
    """A business rule said no. `details` are plain values for the reply template."""

    def __init__(self, code: ErrorCode, **details: Any) -> None:
        self.code = code
        self.details: dict[str, Any] = details
        super().__init__(f"{code.value}: {details}" if details else code.value)

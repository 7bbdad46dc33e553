"""Whether a quantity of a variant can be bought now, as a pure function (django-oscar's
`is_purchase_permitted(qty) -> (ok, reason)`), over what was fetched first.

The cart marks its lines with the reason (`commerce.cart.cart.line_problem`); the
invariants are property-tested in tests/commerce/catalog/test_availability.py.
"""

from __future__ import annotations

from dataclasses import dataclass

OFF_SALE = "off_sale"
OUT_OF_STOCK = "out_of_stock"
NOT_ENOUGH_STOCK = "not_enough_stock"


@dataclass(frozen=True, slots=True)
class Stocked:
    """A variant as availability sees it: on sale or not, and its stock."""

    on_sale: bool
    stock: int


def is_purchase_permitted(variant: Stocked, quantity: int) -> tuple[bool, str | None]:
    """(True, None) when `quantity` can be bought; else (False, the reason): off sale,
    out of stock, or not enough stock for that many."""
    if not variant.on_sale:
        return False, OFF_SALE
    if variant.stock <= 0:
        return False, OUT_OF_STOCK
    if variant.stock < quantity:
        return False, NOT_ENOUGH_STOCK
    return True, None

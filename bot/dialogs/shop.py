"""The shop's dialogs as typed fields of the runtime: `dialogs.search`, `dialogs.confirm`, ...

Handlers reach a dialog by attribute, so a typo or a missing method is a type error, not a
`KeyError` at run time; the runtime still finds a stored dialog by the name it was saved under.
Built once by the composition root, which gives the confirm dialog its `on_answer` (dialogs
never import handlers).
"""

from __future__ import annotations

from collections.abc import Callable

from bot.dialogs.base import DialogRuntime
from bot.dialogs.cart import CartDialog
from bot.dialogs.checkout import CheckoutDialog
from bot.dialogs.confirm import ConfirmDialog
from bot.dialogs.flash import FlashDialog
from bot.dialogs.group import GroupDialog
from bot.dialogs.member import MemberDialog
from bot.dialogs.orders import OrdersDialog
from bot.dialogs.photo import PhotoDialog
from bot.dialogs.review import ReviewDialog
from bot.dialogs.search import SearchDialog
from bot.dialogs.service import ServiceDialog
from bot.dialogs.store import DialogStore


class ShopDialogs(DialogRuntime):
    """The dialog runtime over one instance of each of the shop's dialogs, each a typed field."""

    search: SearchDialog
    cart: CartDialog
    checkout: CheckoutDialog
    orders: OrdersDialog
    confirm: ConfirmDialog
    group: GroupDialog
    service: ServiceDialog
    flash: FlashDialog
    photo: PhotoDialog  # staff: a product's pictures
    review: ReviewDialog
    member: MemberDialog  # a phone and its one-time code: membership

    def __init__(
        self,
        store: DialogStore,
        *,
        confirm: ConfirmDialog,
        ttl_seconds: int,
        on_transition: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self.search, self.cart, self.checkout = SearchDialog(), CartDialog(), CheckoutDialog()
        self.orders, self.confirm, self.group = OrdersDialog(), confirm, GroupDialog()
        self.service, self.flash = ServiceDialog(), FlashDialog()
        self.photo, self.review, self.member = PhotoDialog(), ReviewDialog(), MemberDialog()
        dialogs = (
            self.search, self.cart, self.checkout, self.orders, self.confirm, self.group, self.service, self.flash,
            self.photo, self.review, self.member,
        )
        super().__init__(store, dialogs, ttl_seconds=ttl_seconds, on_transition=on_transition)

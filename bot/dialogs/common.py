"""Small pieces the shopping dialogs share: units of work, error replies, the pay card."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.chat.context import Context
from bot.chat.replies import Card, News, Text
from commerce.cart.cart import CartView
from commerce.customers import addresses
from commerce.customers.addresses import AddressView, ParsedAddress
from commerce.errors import ShopError
from commerce.messaging import notices
from commerce.orders.views import OrderView, order_data


@asynccontextmanager
async def unit_of_work(ctx: Context) -> AsyncIterator[AsyncSession]:
    """One transaction: committed when the block ends normally, rolled back otherwise.

    What the work decided to tell customers (`commerce.messaging.notices`: a group closed under its
    members, a badge) is sent after the commit, through the notifier.
    """
    async with ctx.services.sessions() as session:
        async with session.begin():
            yield session
        queued = notices.take(session)
    if queued and ctx.services.notifier is not None:
        await notices.send(ctx.services.notifier, queued)


def address_data(address: AddressView | ParsedAddress) -> dict[str, Any]:
    """An address as a message shows it: the phone number masked."""
    phone = address.phone
    return {"name": address.name, "phone": f"{phone[:3]}****{phone[-4:]}", "address": address.address}


def read_typed_address(text: str) -> tuple[Text, dict[str, str] | None]:
    """A typed "name phone address": (the confirmation to show, what to save once the
    customer confirms), or (the reason it cannot be read, None)."""
    try:
        parsed = addresses.parse_address(text)
    except ShopError as exc:
        return error_reply(exc), None
    pending = {"name": parsed.name, "phone": parsed.phone, "address": parsed.address}
    return Text("address_parsed", address_data(parsed)), pending


async def save_typed_address(ctx: Context, pending: dict[str, str]) -> AddressView:
    """Save a confirmed typed address as the customer's default."""
    async with unit_of_work(ctx) as session:
        return await addresses.save_address(
            session, customer_id=ctx.customer_id, parsed=ParsedAddress(**pending), make_default=True
        )


def error_reply(exc: ShopError) -> Text:
    """A domain error code as a sentence (templates/messages/*/shop_error.j2)."""
    return Text("shop_error", {"code": str(exc.code), "d": dict(exc.details)})


def cart_data(cart: CartView) -> dict[str, Any]:
    return {
        "lines": [
            {
                "number": number,
                "name": line.name,
                "spec": line.spec_label,
                "price": line.unit_price_fen,
                "quantity": line.quantity,
                "subtotal": line.subtotal_fen,
                "stock": line.stock,
                "problem": line.problem,
            }
            for number, line in enumerate(cart.lines, 1)
        ],
        "total": cart.total_fen,
        "count": cart.count,
    }


def pay_card(ctx: Context, order: OrderView) -> News:
    """The order's payment link as a news card: amount, deadline, one tap to pay."""
    return News((Card("pay_card", order_data(order), url=ctx.services.pay_url(order)),))

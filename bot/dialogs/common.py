"""Small pieces the shopping dialogs share: units of work, error replies, the pay card.
(The address step is `bot.dialogs.address_step`.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.chat.context import Context
from bot.chat.replies import Card, News, Text
from commerce.cart.cart import CartView
from commerce.errors import ShopError
from commerce.orders.views import OrderView, order_data


@asynccontextmanager
async def unit_of_work(ctx: Context) -> AsyncIterator[AsyncSession]:
    """One unit of work's session (`commerce.uow`): committed when the block ends normally,
    rolled back otherwise. What the work decided to tell customers (a group closed under
    its members, a badge) is written to the outbox in its transaction, sent after the commit.
    """
    async with ctx.uow() as uow:
        yield uow.session


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

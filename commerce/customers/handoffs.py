"""A customer asked for a human: record it with what staff need to help at once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from commerce.cart import cart
from commerce.customers.models import Handoff
from commerce.orders import placement as orders

MAX_RECENT = 20
MAX_RECENT_CHARS = 300


async def record_handoff(
    session: AsyncSession, *, customer_id: int, message: str = "", recent: Sequence[Mapping[str, str]] = ()
) -> dict[str, Any]:
    """Store the hand-off with the customer's cart, last order and the recent conversation
    (`recent`: lines {at, from: "customer" | "shop", text}, oldest first, as the caller kept
    them: the core keeps no chat); returns that context."""
    view = await cart.get_cart(session, customer_id=customer_id)
    last = await orders.list_orders(session, customer_id=customer_id, limit=1)
    context: dict[str, Any] = {
        "message": message[:500],
        "cart": [
            {"name": line.name, "spec": line.spec_label, "quantity": line.quantity, "price_fen": line.unit_price_fen}
            for line in view.lines
        ],
        "cart_total_fen": view.total_fen,
        "last_order": (
            {"order_no": last[0].order_no, "status": str(last[0].status), "payable_fen": last[0].payable_fen}
            if last
            else None
        ),
        "recent": [
            {"at": line["at"], "from": line["from"], "text": line["text"][:MAX_RECENT_CHARS]}
            for line in recent[-MAX_RECENT:]
        ],
    }
    session.add(Handoff(customer_id=customer_id, context=context))
    await session.flush()
    return context

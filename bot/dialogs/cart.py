"""The cart: numbered lines with subtotals and total; change a quantity, remove, clear.

```mermaid
stateDiagram-v2
    [*] --> LIST: "购物车" / "cart" (an empty cart ends at once)
    LIST --> LIST: "改 1 3" / "删 2" (re-listed)
    LIST --> [*]: "清空", the last line removed, "结算" (checkout takes over), cancel, other text
```
Line numbers are the ones last shown; the dialog keeps the line ids behind them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from bot.chat.context import Context
from bot.chat.keywords import CHANGE_QUANTITY, REMOVE_LINE, match_command, match_keyword
from bot.chat.replies import Reply, Text
from bot.dialogs.base import Dialog, Step, on
from bot.dialogs.common import cart_data, error_reply, unit_of_work
from commerce.cart import cart
from commerce.cart.cart import CartView
from commerce.errors import ShopError


class CartState(enum.StrEnum):
    LIST = "list"


@dataclass(slots=True)
class CartData:
    line_ids: list[int] = field(default_factory=list)


def _listing(view: CartView) -> Step[CartState, CartData]:
    if not view.lines:
        return Step(Text("cart_empty"))
    return Step(Text("cart", cart_data(view)), CartState.LIST, CartData([line.line_id for line in view.lines]))


class CartDialog(Dialog[CartState, CartData]):
    name = "cart"
    State = CartState
    Data = CartData
    version = 1
    initial = frozenset({CartState.LIST})
    transitions = {CartState.LIST: frozenset({CartState.LIST})}

    async def show(self, ctx: Context) -> Reply:
        async with unit_of_work(ctx) as session:
            view = await cart.get_cart(session, customer_id=ctx.customer_id)
        step = _listing(view)
        if step.state is None:
            await ctx.services.dialogs.end(ctx.openid)
            return step.reply
        return await ctx.services.dialogs.start(ctx, self, step)

    @on(CartState.LIST)
    async def on_list(self, ctx: Context, data: CartData) -> Step[CartState, CartData] | None:
        text = ctx.msg.text
        change = match_command(CHANGE_QUANTITY, text)
        remove = match_command(REMOVE_LINE, text)
        keyword = match_keyword(text)
        clear = keyword is not None and keyword[0] == "clear"
        if change is None and remove is None and not clear:
            return None
        picked = change or remove
        number = int(picked.group(1)) if picked is not None else 0
        if picked is not None and not 1 <= number <= len(data.line_ids):
            return Step(Text("pick_out_of_range", {"number": number, "count": len(data.line_ids)}),
                        CartState.LIST, data)
        try:
            async with unit_of_work(ctx) as session:
                if clear:
                    await cart.clear_cart(session, customer_id=ctx.customer_id)
                    return Step(Text("cart_cleared"))
                line_id = data.line_ids[number - 1]
                if change is not None:
                    view = await cart.set_quantity(
                        session, customer_id=ctx.customer_id, line_id=line_id,
                        quantity=int(change.group(2)), rules=ctx.services.rules,
                    )
                else:
                    view = await cart.remove_line(session, customer_id=ctx.customer_id, line_id=line_id)
        except ShopError as exc:
            return Step(error_reply(exc), CartState.LIST, data)
        return _listing(view)

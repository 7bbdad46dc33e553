"""The cart: numbered lines with subtotals and total; change a quantity, remove, clear.

```mermaid
stateDiagram-v2
    [*] --> LIST: "购物车" / "cart" (an empty cart ends at once)
    LIST --> LIST: "改 1 3" / "删 2" (re-listed)
    LIST --> [*]: "清空", the last line removed, "结算" (checkout takes over), cancel, other text
    [*] --> LIST: an edit in words anywhere ("再加一袋", "把T恤删了", "毛巾要4条"), re-listed
```
Line numbers are the ones last shown; the dialog keeps the line ids behind them.

Edits in words (`edit_in_words`, `bot.dialogs.words`) work on any screen: "再加一袋" adds
to what the open card shows (the card stays), else to the cart's newest line; a line is
named by its product. In a checkout's review the order is re-quoted in place; elsewhere
the cart is listed (a checkout left in its address step is parked, "结算" goes on).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from bot.chat.context import Context
from bot.chat.keywords import CHANGE_QUANTITY, REMOVE_LINE, match_command, match_keyword, numbers
from bot.chat.replies import Notice, Reply, Text, with_notice
from bot.dialogs.base import Active, Dialog, Step, on
from bot.dialogs.common import cart_data, error_reply, unit_of_work
from bot.dialogs.words import AddMore, CartEdit, SetNamed, lines_named
from commerce.cart import cart
from commerce.cart.cart import CartView
from commerce.catalog.read import CatalogSnapshot
from commerce.errors import ErrorCode, ShopError


def _line_names(snapshot: CatalogSnapshot, product_id: int, name: str, spec: str) -> tuple[str, ...]:
    """A cart line as it may be named: product name, spec, and its English subtitle and tags."""
    product = snapshot.products.get(product_id)
    if product is None:
        return (name, spec)
    return (name, spec, product.subtitle, *(t for t in product.tags if t.isascii()))


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

    async def edit_in_words(self, ctx: Context, edit: CartEdit) -> Reply | None:
        """Apply an edit said in words; None when it names nothing in the cart (the words
        are then left to search)."""
        dialogs = ctx.services.dialogs
        loaded = await dialogs.load(ctx.openid)
        card = loaded if isinstance(loaded, Active) and loaded.dialog is dialogs.search else None
        variant_id, shown = None, None
        if isinstance(edit, AddMore) and card is not None and card.data.product_id is not None:
            product = await ctx.services.catalog.product(card.data.product_id)
            if product is not None and str(card.state) == "card":
                variant = dialogs.search.chosen_variant(product, card.data)
                if variant is None:
                    variants = [{"number": n, "label": v.label, "price": v.price_fen, "stock": v.stock}
                                for n, v in enumerate(product.variants, 1)]
                    return Text("choose_variant", {"name": product.name, "variants": variants})
                variant_id, shown = variant.id, (product.name, variant.label)
        try:
            async with unit_of_work(ctx) as session:
                view = await cart.get_cart(session, customer_id=ctx.customer_id)
                if isinstance(edit, AddMore):
                    if variant_id is None:
                        if not view.lines:
                            return Text("cart_empty")
                        newest = max(view.lines, key=lambda line: line.line_id)
                        variant_id, shown = newest.variant_id, (newest.name, newest.spec_label)
                    view = await cart.add_to_cart(
                        session, customer_id=ctx.customer_id, variant_id=variant_id,
                        quantity=edit.quantity, rules=ctx.services.rules,
                    )
                else:
                    snapshot = await ctx.services.catalog.snapshot()
                    said_lines = [_line_names(snapshot, line.product_id, line.name, line.spec_label) for line in view.lines]
                    named = [view.lines[i] for i in lines_named(edit.name, said_lines)]
                    if not named:
                        return None
                    if isinstance(edit, SetNamed) and len(named) > 1:
                        return await self._list_asking(ctx, view, edit.name)
                    for line in named:
                        if isinstance(edit, SetNamed):
                            view = await cart.set_quantity(
                                session, customer_id=ctx.customer_id, line_id=line.line_id,
                                quantity=edit.quantity, rules=ctx.services.rules,
                            )
                        else:
                            view = await cart.remove_line(session, customer_id=ctx.customer_id, line_id=line.line_id)
        except ShopError as exc:
            return error_reply(exc)
        if isinstance(loaded, Active) and loaded.dialog is dialogs.checkout and str(loaded.state) == "review":
            return await dialogs.checkout.requote(ctx, loaded)
        if isinstance(edit, AddMore) and card is not None and shown is not None and str(card.state) == "card":
            name, spec = shown
            return Text("added_to_cart", {"name": name, "spec": spec, "quantity": edit.quantity, "cart": cart_data(view)})
        step = _listing(view)
        if step.state is None:
            await dialogs.end(ctx.openid)
            return step.reply
        return await dialogs.start(ctx, self, step)

    async def _list_asking(self, ctx: Context, view: CartView, name: str) -> Reply:
        """Several lines fit the words: the cart, asking which one by number."""
        step = _listing(view)
        reply = with_notice(step.reply, Notice("cart_which_line", {"name": name}))
        return await ctx.services.dialogs.start(ctx, self, Step(reply, step.state, step.data))

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
        number = numbers(picked)[0] if picked is not None else 0
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
                        quantity=numbers(change)[1], rules=ctx.services.rules,
                    )
                else:
                    view = await cart.remove_line(session, customer_id=ctx.customer_id, line_id=line_id)
        except ShopError as exc:
            reply = error_reply(exc)
            available = exc.details.get("available")
            if exc.code == ErrorCode.OUT_OF_STOCK and change is not None and available:
                offer = {"command": "change", "line": number, "offer_quantity": available}  # "改 1 3"
                reply = Text(reply.template, {**reply.data, "d": {**reply.data["d"], **offer}})
            return Step(reply, CartState.LIST, data)
        return _listing(view)

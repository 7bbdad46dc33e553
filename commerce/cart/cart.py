"""The cart: what a customer means to buy, always shown at today's prices and stock.

A cart line stores only the variant and the quantity. Every view re-reads price,
stock and sale status, and flags the lines that cannot be bought as they are
(`problem`), so checkout can explain what changed. Nothing here commits.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.analytics import events as analytics
from commerce.cart.models import CartLine
from commerce.catalog.availability import NOT_ENOUGH_STOCK as NOT_ENOUGH_STOCK
from commerce.catalog.availability import OFF_SALE as OFF_SALE
from commerce.catalog.availability import OUT_OF_STOCK as OUT_OF_STOCK
from commerce.catalog.availability import Stocked, is_purchase_permitted
from commerce.catalog.models import Product, ProductStatus, Variant
from commerce.errors import ErrorCode, ShopError
from commerce.rules import ShopRules


@dataclass(frozen=True)
class CartLineView:
    line_id: int
    variant_id: int
    product_id: int
    name: str
    spec_label: str
    unit_price_fen: int
    quantity: int
    subtotal_fen: int
    stock: int
    on_sale: bool
    problem: str | None  # "out_of_stock" | "not_enough_stock" | "off_sale" | None
    sku_code: str = ""

    @property
    def buyable(self) -> bool:
        return self.problem is None


@dataclass(frozen=True)
class CartView:
    lines: tuple[CartLineView, ...]
    total_fen: int  # subtotals of the buyable lines
    count: int  # items (sum of quantities) over all lines

    @property
    def buyable_lines(self) -> tuple[CartLineView, ...]:
        return tuple(line for line in self.lines if line.problem is None)

    @property
    def problems(self) -> tuple[CartLineView, ...]:
        return tuple(line for line in self.lines if line.problem is not None)

    @property
    def is_empty(self) -> bool:
        return not self.lines


def spec_label(spec: dict[str, str] | None) -> str:
    """The spec values joined, e.g. "红色 / 256GB" (as the catalog's VariantView.label)."""
    return " / ".join(str(v) for v in (spec or {}).values())


def line_problem(*, on_sale: bool, stock: int, quantity: int) -> str | None:
    """Why a line of `quantity` cannot be bought as it is (None: it can)."""
    return is_purchase_permitted(Stocked(on_sale=on_sale, stock=stock), quantity)[1]


async def get_cart(session: AsyncSession, *, customer_id: int) -> CartView:
    # plain columns, not entities: this runs on every cart view and every checkout
    rows = (
        await session.execute(
            select(
                CartLine.id,
                CartLine.quantity,
                Variant.id,
                Variant.sku_code,
                Variant.spec,
                Variant.price_fen,
                Variant.stock,
                Product.id,
                Product.name,
                Product.status,
            )
            .join(Variant, Variant.id == CartLine.variant_id)
            .join(Product, Product.id == Variant.product_id)
            .where(CartLine.customer_id == customer_id)
            .order_by(CartLine.id)
        )
    ).all()
    lines = []
    for (
        line_id,
        quantity,
        variant_id,
        sku_code,
        spec,
        price_fen,
        stock,
        product_id,
        name,
        status,
    ) in rows:
        on_sale = status == ProductStatus.ON_SALE.value
        lines.append(
            CartLineView(
                line_id=line_id,
                variant_id=variant_id,
                product_id=product_id,
                name=name,
                spec_label=spec_label(spec),
                unit_price_fen=price_fen,
                quantity=quantity,
                subtotal_fen=price_fen * quantity,
                stock=stock,
                on_sale=on_sale,
                problem=line_problem(on_sale=on_sale, stock=stock, quantity=quantity),
                sku_code=sku_code,
            )
        )
    return CartView(
        lines=tuple(lines),
        total_fen=sum(line.subtotal_fen for line in lines if line.problem is None),
        count=sum(line.quantity for line in lines),
    )


async def add_to_cart(
    session: AsyncSession, *, customer_id: int, variant_id: int, quantity: int, rules: ShopRules
) -> CartView:
    """Add `quantity` of a variant (to its existing line, if any)."""
    row = (
        await session.execute(
            select(Variant, Product)
            .join(Product, Product.id == Variant.product_id)
            .where(Variant.id == variant_id)
            .execution_options(populate_existing=True)
        )
    ).first()
    if row is None:
        raise ShopError(ErrorCode.VARIANT_NOT_FOUND, variant_id=variant_id)
    variant, product = row
    line = await session.scalar(
        select(CartLine).where(
            CartLine.customer_id == customer_id, CartLine.variant_id == variant_id
        )
    )
    in_cart = line.quantity if line is not None else 0
    total = in_cart + quantity
    if quantity < 1 or total > rules.max_line_quantity:
        raise ShopError(
            ErrorCode.QUANTITY_INVALID,
            min=1,
            max=rules.max_line_quantity,
            in_cart=in_cart,
            quantity=quantity,
        )
    _check_buyable(variant, product, total, in_cart=in_cart)
    if line is None:
        session.add(CartLine(customer_id=customer_id, variant_id=variant_id, quantity=total))
    else:
        line.quantity = total
    await session.flush()
    analytics.note(session, analytics.cart_add(customer_id, product.id))  # counted on commit
    return await get_cart(session, customer_id=customer_id)


async def set_quantity(
    session: AsyncSession, *, customer_id: int, line_id: int, quantity: int, rules: ShopRules
) -> CartView:
    """Set a line's quantity; 0 removes it. Lowering a quantity is always allowed."""
    line = await _line(session, customer_id=customer_id, line_id=line_id)
    if quantity == 0:
        await session.delete(line)
        await session.flush()
        return await get_cart(session, customer_id=customer_id)
    if quantity < 0 or quantity > rules.max_line_quantity:
        raise ShopError(
            ErrorCode.QUANTITY_INVALID,
            min=1,
            max=rules.max_line_quantity,
            in_cart=line.quantity,
            quantity=quantity,
        )
    if quantity > line.quantity:
        variant, product = (
            await session.execute(
                select(Variant, Product)
                .join(Product, Product.id == Variant.product_id)
                .where(Variant.id == line.variant_id)
                .execution_options(populate_existing=True)
            )
        ).one()
        _check_buyable(variant, product, quantity, in_cart=0)
    line.quantity = quantity
    await session.flush()
    return await get_cart(session, customer_id=customer_id)


async def remove_line(session: AsyncSession, *, customer_id: int, line_id: int) -> CartView:
    line = await _line(session, customer_id=customer_id, line_id=line_id)
    await session.delete(line)
    await session.flush()
    return await get_cart(session, customer_id=customer_id)


async def clear_cart(session: AsyncSession, *, customer_id: int) -> None:
    await session.execute(
        delete(CartLine)
        .where(CartLine.customer_id == customer_id)
        .execution_options(synchronize_session=False)
    )


async def remove_variants(
    session: AsyncSession, *, customer_id: int, variant_ids: list[int]
) -> None:
    """Drop the lines of these variants (what an order just bought)."""
    if variant_ids:
        await session.execute(
            delete(CartLine)
            .where(CartLine.customer_id == customer_id, CartLine.variant_id.in_(variant_ids))
            .execution_options(synchronize_session=False)
        )


async def _line(session: AsyncSession, *, customer_id: int, line_id: int) -> CartLine:
    line = await session.scalar(
        select(CartLine)
        .where(CartLine.id == line_id, CartLine.customer_id == customer_id)
        .execution_options(populate_existing=True)
    )
    if line is None:
        raise ShopError(ErrorCode.CART_LINE_NOT_FOUND, line_id=line_id)
    return line


def _check_buyable(variant: Variant, product: Product, wanted: int, *, in_cart: int) -> None:
    label = spec_label(variant.spec)
    stocked = Stocked(on_sale=product.status == ProductStatus.ON_SALE.value, stock=variant.stock)
    ok, why = is_purchase_permitted(stocked, wanted)
    if why == OFF_SALE:
        raise ShopError(ErrorCode.NOT_ON_SALE, name=product.name, spec_label=label)
    if not ok:
        raise ShopError(
            ErrorCode.OUT_OF_STOCK,
            name=product.name,
            spec_label=label,
            available=variant.stock,
            in_cart=in_cart,
        )

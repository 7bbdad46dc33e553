"""The catalog as staff change it: products, prices, stock, sale status, low-stock lists.

Staff name a variant by product id ("12", when the product has one variant) or by SKU
code ("FRU-APPLE-5J"): `resolve_variant`. Stock changes by a delta are one conditional
UPDATE (never below zero, whatever runs at the same time); the CHECK constraint on
`variants.stock` is the last net. Every write returns a `Change` for the audit log.

Every write publishes `CatalogChanged(product_ids=...)`: the product is stamped
(`updated_at`, which other workers poll) and the catalog in memory of this worker reads it
in the same transaction and applies it once it commits (`commerce.catalog.read`). Nothing
here commits.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from rapidfuzz import fuzz
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from commerce.cart.cart import spec_label
from commerce.catalog.models import Category, Product, ProductStatus, Tag, Variant
from commerce.db import upsert_insert as _insert
from commerce.errors import ErrorCode, ShopError
from commerce.events import CatalogChanged, publish
from commerce.rules import utcnow
from commerce.staff.audit import Change

NAME_LENGTH = (1, 100)
SUBTITLE_MAX = 200
DESCRIPTION_MAX = 1000
TAG_MAX = 32  # tags.name
TAGS_MAX = 20  # tags on one product
SKU_MAX = 64
PRICE_RANGE = (1, 10**9)  # fen: 0.01 .. 10 million yuan
STOCK_RANGE = (0, 10**7)


class AdminVariantView(NamedTuple):
    id: int
    sku_code: str
    label: str
    price_fen: int
    stock: int
    low_stock_threshold: int


@dataclass(frozen=True)
class AdminProductView:
    id: int
    name: str
    subtitle: str
    category: str
    status: ProductStatus
    variants: tuple[AdminVariantView, ...]
    sales_count: int
    description: str = ""
    images: int = 0  # how many pictures it has (0 where they were not read)

    @property
    def on_sale(self) -> bool:
        return self.status == ProductStatus.ON_SALE

    @property
    def total_stock(self) -> int:
        return sum(v.stock for v in self.variants)


# ---- validation (shared with the CSV import) ------------------------------------------


def check_name(name: str, *, field: str = "name") -> str:
    name = (name or "").strip()
    low, high = NAME_LENGTH
    if not low <= len(name) <= high:
        raise ShopError(ErrorCode.NAME_INVALID, field=field, min_length=low, max_length=high)
    return name


def check_subtitle(subtitle: str) -> str:
    subtitle = (subtitle or "").strip()
    if len(subtitle) > SUBTITLE_MAX:
        raise ShopError(
            ErrorCode.NAME_INVALID, field="subtitle", min_length=0, max_length=SUBTITLE_MAX
        )
    return subtitle


def check_description(description: str) -> str:
    description = (description or "").strip()
    if len(description) > DESCRIPTION_MAX:
        raise ShopError(
            ErrorCode.NAME_INVALID, field="description", min_length=0, max_length=DESCRIPTION_MAX
        )
    return description


def check_tags(names: Sequence[str]) -> list[str]:
    """Tags as given, trimmed, each once (case aside); NAME_INVALID (field tags) when one is
    too long or there are too many."""
    tags: dict[str, str] = {}
    for name in names:
        name = name.strip()
        if not name:
            continue
        if len(name) > TAG_MAX:
            raise ShopError(ErrorCode.NAME_INVALID, field="tags", min_length=1, max_length=TAG_MAX)
        tags.setdefault(name.lower(), name)
    if len(tags) > TAGS_MAX:
        raise ShopError(ErrorCode.NAME_INVALID, field="tags", min_length=1, max_length=TAG_MAX, max_count=TAGS_MAX)
    return list(tags.values())


def check_price(price_fen: int, *, field: str = "price_fen") -> int:
    low, high = PRICE_RANGE
    if type(price_fen) is not int or not low <= price_fen <= high:
        raise ShopError(ErrorCode.PRICE_INVALID, field=field, min=low, max=high)
    return price_fen


def check_stock(stock: int) -> int:
    low, high = STOCK_RANGE
    if type(stock) is not int or not low <= stock <= high:
        raise ShopError(ErrorCode.STOCK_INVALID, min=low, max=high, stock=stock)
    return stock


def check_sku(sku_code: str) -> str:
    sku = (sku_code or "").strip()
    if not 1 <= len(sku) <= SKU_MAX or any(c.isspace() or not c.isprintable() for c in sku):
        raise ShopError(ErrorCode.SKU_INVALID, sku_code=sku_code, max_length=SKU_MAX)
    return sku


async def find_category(session: AsyncSession, name: str) -> Category:
    """A category by its Chinese or English name, case-insensitive; CATEGORY_NOT_FOUND
    (details: category, known, closest: the one a near miss likely meant, `closest_category`,
    or "") otherwise."""
    categories = (
        await session.scalars(select(Category).order_by(Category.sort_order, Category.id))
    ).all()
    for category in categories:
        if matches_category(category, name):
            return category
    known = [c.name for c in categories]
    closest = closest_category(name, [(c.name, c.name_en or "") for c in categories])
    raise ShopError(ErrorCode.CATEGORY_NOT_FOUND, category=name, known=known, closest=closest or "")


CLOSEST_SCORE = 50  # rapidfuzz's WRatio out of 100: "茶叶" is 50 from "茶饮", "fruits" 91 from "Fruit"


def closest_category(name: str, names: Sequence[tuple[str, str]]) -> str | None:
    """The category (of (Chinese name, English name) pairs) a near-miss name most likely
    meant ("茶叶" when the shop has "茶饮"); None when none comes close, or two come
    equally close ("粮食": "零食" or "粮油"?)."""
    wanted = (name or "").strip().casefold()
    if not wanted:
        return None
    scored = sorted(
        ((max(fuzz.WRatio(wanted, zh.casefold()), fuzz.WRatio(wanted, en.casefold()) if en else 0.0), zh)
         for zh, en in names),
        key=lambda pair: pair[0],
        reverse=True,
    )
    if not scored or scored[0][0] < CLOSEST_SCORE or (len(scored) > 1 and scored[1][0] == scored[0][0]):
        return None
    return scored[0][1]


def matches_category(category: Category, name: str) -> bool:
    wanted = (name or "").strip().lower()
    return bool(wanted) and wanted in (category.name.lower(), (category.name_en or "").lower())


# ---- read models -----------------------------------------------------------------------


def _variant_view(variant: Variant) -> AdminVariantView:
    return AdminVariantView(
        id=variant.id,
        sku_code=variant.sku_code,
        label=spec_label(variant.spec),
        price_fen=variant.price_fen,
        stock=variant.stock,
        low_stock_threshold=variant.low_stock_threshold,
    )


def _product_view(
    product: Product, variants: Sequence[Variant] | None = None, *, images: int = 0
) -> AdminProductView:
    return AdminProductView(
        id=product.id,
        name=product.name,
        subtitle=product.subtitle,
        category=product.category.name,
        status=ProductStatus(product.status),
        variants=tuple(
            _variant_view(v) for v in (product.variants if variants is None else variants)
        ),
        sales_count=product.sales_count,
        description=product.description,
        images=images,
    )


def _product_snapshot(product: Product) -> dict[str, Any]:
    return {
        "id": product.id,
        "name": product.name,
        "subtitle": product.subtitle,
        "category": product.category.name,
        "status": product.status,
        "variants": [
            {
                "id": v.id,
                "sku_code": v.sku_code,
                "spec": dict(v.spec or {}),
                "price_fen": v.price_fen,
                "stock": v.stock,
            }
            for v in product.variants
        ],
    }


def _variant_snapshot(product: Product, variant: Variant, **values: Any) -> dict[str, Any]:
    return {
        "product_id": product.id,
        "name": product.name,
        "sku_code": variant.sku_code,
        "label": spec_label(variant.spec),
    } | values


async def _load_product(session: AsyncSession, product_id: int) -> Product:
    product = await session.scalar(
        select(Product)
        .where(Product.id == product_id)
        .options(
            selectinload(Product.variants), selectinload(Product.category), selectinload(Product.images)
        )
        .execution_options(populate_existing=True)
    )
    if product is None:
        raise ShopError(ErrorCode.PRODUCT_NOT_FOUND, product_id=product_id)
    return product


async def show_product(session: AsyncSession, *, product_id: int) -> AdminProductView:
    """One product with all its variants, also when off sale; PRODUCT_NOT_FOUND."""
    await session.flush()
    product = await _load_product(session, product_id)
    return _product_view(product, images=len(product.images))


async def find_named(session: AsyncSession, name: str) -> AdminProductView | None:
    """The product already called `name` (case and spaces around it aside), the oldest if
    several: what `/add` of that name would duplicate."""
    wanted = (name or "").strip().lower()
    found = await session.scalar(
        select(Product.id).where(func.lower(Product.name) == wanted).order_by(Product.id).limit(1)
    )
    return None if found is None else await show_product(session, product_id=found)


async def low_stock(session: AsyncSession, *, limit: int = 20) -> list[AdminProductView]:
    """On-sale products with variants at or below their low-stock threshold, the emptiest
    first. Each view holds only those low variants."""
    await session.flush()
    rows = (
        await session.execute(
            select(Variant, Product)
            .join(Product, Product.id == Variant.product_id)
            .where(
                Product.status == ProductStatus.ON_SALE.value,
                Variant.stock <= Variant.low_stock_threshold,
            )
            .options(selectinload(Product.category))
            .order_by(Variant.stock, Product.id, Variant.id)
            .execution_options(populate_existing=True)
        )
    ).all()
    grouped: dict[int, tuple[Product, list[Variant]]] = {}
    for variant, product in rows:
        if product.id not in grouped:
            if len(grouped) >= limit:
                continue
            grouped[product.id] = (product, [])
        grouped[product.id][1].append(variant)
    return [_product_view(product, variants) for product, variants in grouped.values()]


async def variants_below_threshold(
    session: AsyncSession, *, variant_ids: Collection[int]
) -> list[dict[str, Any]]:
    """Of these variants (just sold), the on-sale ones at or below their threshold:
    {product, label, stock, threshold, sku_code, product_id, variant_id}, by variant id."""
    if not variant_ids:
        return []
    rows = await session.execute(
        select(
            Variant.id,
            Variant.sku_code,
            Variant.spec,
            Variant.stock,
            Variant.low_stock_threshold,
            Product.id.label("product_id"),
            Product.name,
        )
        .join(Product, Product.id == Variant.product_id)
        .where(
            Variant.id.in_(sorted(set(variant_ids))),
            Product.status == ProductStatus.ON_SALE.value,
            Variant.stock <= Variant.low_stock_threshold,
        )
        .order_by(Variant.id)
    )
    return [
        {
            "product": row.name,
            "label": spec_label(row.spec),
            "stock": row.stock,
            "threshold": row.low_stock_threshold,
            "sku_code": row.sku_code,
            "product_id": row.product_id,
            "variant_id": row.id,
        }
        for row in rows
    ]


async def resolve_variant(session: AsyncSession, *, ref: str) -> tuple[Product, Variant]:
    """The variant staff mean by `ref`: a product id (its only variant), a SKU code, or a
    product's name (`product_named`: PRODUCT_AMBIGUOUS when it fits several).

    Digits name a product first and a SKU only when no product has that id. A product
    with several variants: VARIANT_NOT_FOUND with details `skus` (and `variants`) to
    choose from. An unknown product id: PRODUCT_NOT_FOUND; an unknown SKU:
    VARIANT_NOT_FOUND. SKU codes match exactly, else case-insensitively when unique.
    """
    ref = (ref or "").strip().lstrip("#")
    if not ref:
        raise ShopError(ErrorCode.VARIANT_NOT_FOUND, ref=ref, skus=[])
    if ref.isascii() and ref.isdigit() and int(ref) < 2**31:
        product = await session.scalar(
            select(Product)
            .where(Product.id == int(ref))
            .options(selectinload(Product.variants), selectinload(Product.category))
            .execution_options(populate_existing=True)
        )
        if product is not None:
            return product, _only_variant(product, ref)
    variant = await _variant_by_sku(session, ref)
    if variant is None:
        if ref.isascii() and ref.isdigit():
            raise ShopError(ErrorCode.PRODUCT_NOT_FOUND, product_id=int(ref), ref=ref)
        named = await product_named(session, ref)
        if named is None:
            raise ShopError(ErrorCode.VARIANT_NOT_FOUND, ref=ref, skus=[])
        product = await _load_product(session, named)
        return product, _only_variant(product, ref)
    product = await _load_product(session, variant.product_id)
    return product, next(v for v in product.variants if v.id == variant.id)


def _only_variant(product: Product, ref: str) -> Variant:
    """The product's one variant; with several, VARIANT_NOT_FOUND with the SKUs to choose from."""
    if len(product.variants) != 1:
        raise ShopError(
            ErrorCode.VARIANT_NOT_FOUND,
            ref=ref,
            product_id=product.id,
            name=product.name,
            skus=[v.sku_code for v in product.variants],
            variants=[{"sku_code": v.sku_code, "label": spec_label(v.spec), "stock": v.stock} for v in product.variants],
        )
    return product.variants[0]


NAMED_SHOWN = 8  # the products listed when a name staff typed fits several
# The shortest part of a name that may name a product: a stray letter must not pick one
# for /price, /stock or /edit (a whole name of any length still does)
PART_MIN_LATIN = 3
PART_MIN_CJK = 2


async def product_named(session: AsyncSession, words: str) -> int | None:
    """The id of the product staff mean by a name, on sale or not: the one named exactly
    that (case-insensitive), else the one whose name contains the words; None when none
    does. PRODUCT_AMBIGUOUS (details: ref, products [{id, name, on_sale}], the best
    sellers first, up to `NAMED_SHOWN`, and `more`) when several fit."""
    wanted = words.strip()
    if not wanted:
        return None
    exact = (await session.scalars(
        select(Product.id).where(func.lower(Product.name) == wanted.lower()).order_by(Product.id).limit(2)
    )).all()
    if len(exact) == 1:
        return exact[0]
    if not exact and len(wanted) < (PART_MIN_LATIN if wanted.isascii() else PART_MIN_CJK):
        return None  # "x", "苹": too short to stand for a product by a part of its name
    pattern = "%" + wanted.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    fits = select(Product.id, Product.name, Product.status)
    fits = fits.where(Product.id.in_(exact)) if exact else fits.where(func.lower(Product.name).like(pattern.lower(), escape="\\"))
    rows = (await session.execute(
        fits.order_by(Product.sales_count.desc(), Product.id).limit(NAMED_SHOWN + 1)
    )).all()
    if not rows:
        return None
    if len(rows) == 1:
        return int(rows[0].id)
    products = [
        {"id": row.id, "name": row.name, "on_sale": row.status == ProductStatus.ON_SALE.value} for row in rows[:NAMED_SHOWN]
    ]
    raise ShopError(ErrorCode.PRODUCT_AMBIGUOUS, ref=wanted, products=products, more=len(rows) > NAMED_SHOWN)


async def _variant_by_sku(session: AsyncSession, sku: str) -> Variant | None:
    exact = await session.scalar(select(Variant).where(Variant.sku_code == sku))
    if exact is not None:
        return exact
    matches = (
        await session.scalars(
            select(Variant).where(func.upper(Variant.sku_code) == sku.upper()).limit(2)
        )
    ).all()
    return matches[0] if len(matches) == 1 else None


# ---- writes ---------------------------------------------------------------------------------




async def create_product(
    session: AsyncSession,
    *,
    name: str,
    price_fen: int,
    stock: int,
    category: str,
    subtitle: str = "",
    sku_code: str | None = None,
) -> tuple[AdminProductView, Change]:
    """A new product on sale with one variant, last in its sort order.

    NAME_INVALID, PRICE_INVALID, STOCK_INVALID, CATEGORY_NOT_FOUND (details: known),
    SKU_INVALID / SKU_EXISTS; without `sku_code` the SKU is "P{id}-1".
    """
    name = check_name(name)
    subtitle = check_subtitle(subtitle)
    check_price(price_fen)
    check_stock(stock)
    sku = check_sku(sku_code) if sku_code is not None else None
    found = await find_category(session, category)
    if sku is not None and await session.scalar(select(Variant.id).where(Variant.sku_code == sku)):
        raise ShopError(ErrorCode.SKU_EXISTS, sku_code=sku)
    last = await session.scalar(select(func.max(Product.sort_order)))
    product = Product(
        category_id=found.id,
        name=name,
        subtitle=subtitle,
        status=ProductStatus.ON_SALE.value,
        sort_order=(last or 0) + 1,
    )
    session.add(product)
    await session.flush()
    variant_id = await _insert_variant(
        session, product_id=product.id, sku=sku, price_fen=price_fen, stock=stock
    )
    if variant_id is None:  # the SKU was taken at the same moment
        await session.delete(product)
        await session.flush()
        raise ShopError(ErrorCode.SKU_EXISTS, sku_code=sku)
    product = await _load_product(session, product.id)
    await _changed(session, product.id)
    return _product_view(product), (None, _product_snapshot(product))


async def _insert_variant(
    session: AsyncSession, *, product_id: int, sku: str | None, price_fen: int, stock: int
) -> int | None:
    candidates = [sku] if sku is not None else [f"P{product_id}-{n}" for n in range(1, 10)]
    for candidate in candidates:
        variant_id = await session.scalar(
            _insert(session, Variant)
            .values(
                product_id=product_id,
                sku_code=candidate,
                spec={},
                price_fen=price_fen,
                stock=stock,
                low_stock_threshold=5,
            )
            .on_conflict_do_nothing()
            .returning(Variant.id)
        )
        if variant_id is not None:
            return variant_id
    return None


async def edit_product(
    session: AsyncSession,
    *,
    product_id: int,
    name: str | None = None,
    subtitle: str | None = None,
    description: str | None = None,
    category: str | None = None,
    tags: Sequence[str] | None = None,
) -> Change:
    """Change the fields given: rename, subtitle, description, move to another category
    (CATEGORY_NOT_FOUND), replace the tags. The audit snapshots hold the id, name and
    subtitle, and each other field edited."""
    new_name = check_name(name) if name is not None else None
    new_subtitle = check_subtitle(subtitle) if subtitle is not None else None
    new_description = check_description(description) if description is not None else None
    new_tags = check_tags(tags) if tags is not None else None
    new_category = await find_category(session, category) if category is not None else None
    product = await _load_product(session, product_id)
    if new_tags is not None:
        await session.refresh(product, ["tags"])
    edited = [f for f, v in (("description", description), ("category", category), ("tags", tags)) if v is not None]
    before = _edit_snapshot(product, edited)
    if new_name is not None:
        product.name = new_name
    if new_subtitle is not None:
        product.subtitle = new_subtitle
    if new_description is not None:
        product.description = new_description
    if new_category is not None:
        product.category_id = new_category.id
    if new_tags is not None:
        product.tags = await _tags_named(session, new_tags)
    await session.flush()
    product = await _load_product(session, product_id)  # the category moved to, freshly
    if new_tags is not None:
        await session.refresh(product, ["tags"])
    await _changed(session, product.id)
    return before, _edit_snapshot(product, edited)


def _edit_snapshot(product: Product, edited: Sequence[str]) -> dict[str, Any]:
    snapshot: dict[str, Any] = {"id": product.id, "name": product.name, "subtitle": product.subtitle}
    if "description" in edited:
        snapshot["description"] = product.description
    if "category" in edited:
        snapshot["category"] = product.category.name
    if "tags" in edited:
        snapshot["tags"] = [t.name for t in product.tags]
    return snapshot


async def _tags_named(session: AsyncSession, names: Sequence[str]) -> list[Tag]:
    """The tags of these names (case aside), made where missing."""
    if not names:
        return []
    existing = await session.scalars(select(Tag).where(func.lower(Tag.name).in_([n.lower() for n in names])))
    by_key = {t.name.lower(): t for t in existing}
    tags = []
    for name in names:
        tag = by_key.get(name.lower())
        if tag is None:
            tag = by_key[name.lower()] = Tag(name=name)
            session.add(tag)
        tags.append(tag)
    return tags


async def set_price(session: AsyncSession, *, ref: str, price_fen: int) -> Change:
    """Set a variant's price. Carts show it at once; placed orders keep theirs."""
    check_price(price_fen)
    product, variant = await resolve_variant(session, ref=ref)
    before = _variant_snapshot(product, variant, price_fen=variant.price_fen)
    await session.execute(
        update(Variant)
        .where(Variant.id == variant.id)
        .values(price_fen=price_fen)
        .execution_options(synchronize_session=False)
    )
    await touch_product(session, product.id)
    return before, _variant_snapshot(product, variant, price_fen=price_fen)


async def change_stock(
    session: AsyncSession, *, ref: str, absolute: int | None = None, delta: int | None = None
) -> Change:
    """Set a variant's stock (`absolute`) or move it by `delta`.

    A delta is one conditional UPDATE (stock + delta between 0 and the maximum), so
    concurrent sales and changes can never take it below zero: STOCK_INVALID with
    details `current` (the stock now) when it would. Give exactly one of the two.
    """
    if (absolute is None) == (delta is None):
        raise ValueError("give exactly one of absolute and delta")
    low, high = STOCK_RANGE
    if absolute is not None:
        check_stock(absolute)
    elif type(delta) is not int or abs(delta) > high:
        raise ShopError(ErrorCode.STOCK_INVALID, min=low, max=high, delta=delta)
    product, variant = await resolve_variant(session, ref=ref)
    if delta is not None:
        result = await session.execute(
            update(Variant)
            .where(
                Variant.id == variant.id,
                Variant.stock + delta >= low,
                Variant.stock + delta <= high,
            )
            .values(stock=Variant.stock + delta)
            .returning(Variant.stock)
            .execution_options(synchronize_session=False)
        )
        after = result.scalar_one_or_none()
        if after is None:
            current = await session.scalar(select(Variant.stock).where(Variant.id == variant.id))
            raise ShopError(
                ErrorCode.STOCK_INVALID, current=current, delta=delta, min=low, max=high
            )
        before_stock = after - delta
    else:
        assert absolute is not None
        before_stock = (
            await session.execute(select(Variant.stock).where(Variant.id == variant.id).with_for_update())
        ).scalar_one()
        await session.execute(
            update(Variant)
            .where(Variant.id == variant.id)
            .values(stock=absolute)
            .execution_options(synchronize_session=False)
        )
        after = absolute
    await touch_product(session, product.id)
    return (
        _variant_snapshot(product, variant, stock=before_stock),
        _variant_snapshot(product, variant, stock=after),
    )


async def set_on_sale(session: AsyncSession, *, product_id: int, on_sale: bool) -> Change:
    """Put a product on sale or take it off (off-sale products stay in placed orders)."""
    product = await _load_product(session, product_id)
    before = {"id": product.id, "name": product.name, "status": product.status}
    product.status = (ProductStatus.ON_SALE if on_sale else ProductStatus.OFF_SALE).value
    await session.flush()
    await _changed(session, product.id)
    return before, {"id": product.id, "name": product.name, "status": product.status}


async def set_low_stock_threshold(session: AsyncSession, *, ref: str, threshold: int) -> Change:
    """When a variant counts as low on stock (at or below `threshold`)."""
    low, high = STOCK_RANGE
    if type(threshold) is not int or not low <= threshold <= high:
        raise ShopError(ErrorCode.STOCK_INVALID, field="threshold", min=low, max=high)
    product, variant = await resolve_variant(session, ref=ref)
    before = _variant_snapshot(product, variant, threshold=variant.low_stock_threshold)
    variant.low_stock_threshold = threshold
    await session.flush()
    return before, _variant_snapshot(product, variant, threshold=threshold)


async def touch_product(session: AsyncSession, product_id: int) -> None:
    """Bump the product's updated_at (a variant changed), and say the catalog changed."""
    await session.execute(
        update(Product)
        .where(Product.id == product_id)
        .values(updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    await _changed(session, product_id)


async def _changed(session: AsyncSession, product_id: int) -> None:
    await publish(session, CatalogChanged(product_ids=(product_id,)))

"""Load the demo catalog (`demo/catalog.json`) into a shop that has no products yet.

The whole file is validated before anything is added to the session, so bad data
raises a `ValueError` naming the bad product and leaves the caller's session clean.
Seeding flushes but never commits: the caller owns the unit of work.

Every demo product gets a picture of its own, drawn at seed time into the shop's media
store (`commerce.media.pictures.demo_picture`: its colour from the file, its first
character, its name): nothing binary is kept in the repository, and the same catalog
draws the same files. They are placeholders (`ImageSource.GENERATED`): the first photo
staff send for a product replaces its drawing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.catalog.models import (
    Category,
    ImageSource,
    Product,
    ProductImage,
    ProductStatus,
    Tag,
    Variant,
)
from commerce.groupbuys import campaigns as group_campaigns
from commerce.media.pictures import cjk_font_path, demo_picture
from commerce.media.store import MediaStore, content_key
from commerce.rules import ShopRules

DEMO_CATALOG: Path = Path(__file__).parent / "demo" / "catalog.json"

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class DemoCategory:
    name: str
    name_en: str
    sort_order: int


@dataclass(frozen=True)
class DemoVariant:
    sku_code: str
    spec: dict[str, str]
    price_fen: int
    stock: int


@dataclass(frozen=True)
class DemoProduct:
    category: str
    name: str
    subtitle: str
    description: str
    tags: tuple[str, ...]
    sales_count: int
    status: ProductStatus
    variants: tuple[DemoVariant, ...]
    colour: str = "#888888"  # of its drawn picture


@dataclass(frozen=True)
class DemoCatalog:
    categories: tuple[DemoCategory, ...]
    products: tuple[DemoProduct, ...]


async def catalog_is_empty(session: AsyncSession) -> bool:
    return (await session.scalar(select(Product.id).limit(1))) is None


async def seed_demo_catalog(
    session: AsyncSession, *, path: Path = DEMO_CATALOG, media: MediaStore | None = None
) -> int:
    """Add the demo catalog if the shop has no products; return how many were created.

    Categories and tags that already exist (by name) are reused, not duplicated. With
    `media`, each product gets its drawn picture there; without (tests that do not look
    at pictures), none.
    """
    if not await catalog_is_empty(session):
        return 0
    catalog = load_catalog(path)
    categories = await _ensure_categories(session, catalog.categories)
    tags = await _ensure_tags(session, catalog.products)
    pictures = await draw_demo_pictures(catalog.products, media) if media is not None else {}
    for position, item in enumerate(catalog.products, start=1):
        session.add(
            Product(
                category=categories[item.category],
                name=item.name,
                subtitle=item.subtitle,
                description=item.description,
                status=item.status.value,
                sort_order=position,
                sales_count=item.sales_count,
                tags=[tags[tag_key(t)] for t in item.tags],
                variants=[
                    Variant(
                        sku_code=v.sku_code, spec=dict(v.spec), price_fen=v.price_fen, stock=v.stock
                    )
                    for v in item.variants
                ],
                images=[
                    ProductImage(url=pictures[item.name], position=0, source=ImageSource.GENERATED.value)
                ] if item.name in pictures else [],
            )
        )
    await session.flush()
    return len(catalog.products)


async def draw_demo_pictures(products: tuple[DemoProduct, ...], media: MediaStore) -> dict[str, str]:
    """Each product's picture drawn (in a thread) and kept in `media`: name -> its URL."""
    font = cjk_font_path()

    def draw() -> list[tuple[str, bytes]]:
        return [(p.name, demo_picture(name=p.name, colour=p.colour, font=font)) for p in products]

    urls = {}
    for name, data in await asyncio.to_thread(draw):
        key = content_key(data, "png")
        await media.put(key, data)
        urls[name] = media.url(key)
    return urls


# Group buys the demo shop runs, so "拼团" shows something on a fresh shop: (SKU, percent
# of the regular price, group size). Only `storefront serve` / `seed-demo` add them, with
# the catalog; tests seed the catalog alone and make their own campaigns.
DEMO_GROUP_BUYS = (("FRU-MANGO-3J", 70, 3), ("SNK-NUTS-15", 80, 2))
DEMO_CAMPAIGN_DAYS = 365


async def seed_demo_group_buys(session: AsyncSession, *, rules: ShopRules, now: datetime) -> int:
    """Start the demo's group-buy campaigns (for the SKUs that exist); how many were made."""
    made = 0
    for sku, percent, size in DEMO_GROUP_BUYS:
        variant = await session.scalar(select(Variant).where(Variant.sku_code == sku))
        if variant is None:
            continue
        await group_campaigns.create_campaign(
            session,
            variant_id=variant.id,
            group_price_fen=_shop_price(variant.price_fen * percent // 100),
            group_size=size,
            starts_at=now,
            ends_at=now + timedelta(days=DEMO_CAMPAIGN_DAYS),
            rules=rules,
            created_by="demo",
        )
        made += 1
    return made


def _shop_price(fen: int) -> int:
    """A price as shops write it: down to the yuan, less ten fen (¥39.92 -> ¥38.90)."""
    return max(10, fen // 100 * 100 - 10)


def tag_key(name: str) -> str:
    """Tags are the same tag when they differ only in case ("Fruit" and "fruit")."""
    return name.strip().lower()


def load_catalog(path: Path) -> DemoCatalog:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"demo catalog {path}: not valid JSON: {exc}") from exc
    return parse_catalog(data)


def parse_catalog(data: Any) -> DemoCatalog:
    """Validate the decoded JSON; a `ValueError` names the bad category or product."""
    if not isinstance(data, Mapping):
        raise ValueError("demo catalog: expected an object with 'categories' and 'products'")
    categories = tuple(
        _parse_category(raw, index)
        for index, raw in enumerate(_list(data, "categories", "demo catalog"))
    )
    category_names = [c.name for c in categories]
    duplicate = _first_duplicate(category_names)
    if duplicate is not None:
        raise ValueError(f"demo catalog: category {duplicate!r} is listed twice")
    products = tuple(
        _parse_product(raw, index, set(category_names))
        for index, raw in enumerate(_list(data, "products", "demo catalog"))
    )
    seen: dict[str, str] = {}
    for product in products:
        for variant in product.variants:
            if variant.sku_code in seen:
                raise ValueError(
                    f"demo catalog: product {product.name!r}: sku_code {variant.sku_code!r} "
                    f"is already used by product {seen[variant.sku_code]!r}"
                )
            seen[variant.sku_code] = product.name
    return DemoCatalog(categories=categories, products=products)


async def _ensure_categories(
    session: AsyncSession, wanted: tuple[DemoCategory, ...]
) -> dict[str, Category]:
    names = [c.name for c in wanted]
    existing = await session.scalars(select(Category).where(Category.name.in_(names)))
    by_name = {c.name: c for c in existing}
    for item in wanted:
        if item.name not in by_name:
            category = Category(name=item.name, name_en=item.name_en, sort_order=item.sort_order)
            session.add(category)
            by_name[item.name] = category
    return by_name


async def _ensure_tags(session: AsyncSession, products: tuple[DemoProduct, ...]) -> dict[str, Tag]:
    wanted: dict[str, str] = {}
    for product in products:
        for name in product.tags:
            wanted.setdefault(tag_key(name), name)
    existing = await session.scalars(select(Tag).where(func.lower(Tag.name).in_(list(wanted))))
    by_key = {tag_key(t.name): t for t in existing}
    for key, name in wanted.items():
        if key not in by_key:
            tag = Tag(name=name)
            session.add(tag)
            by_key[key] = tag
    return by_key


def _parse_category(raw: Any, index: int) -> DemoCategory:
    where = f"demo catalog: category #{index + 1}"
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: expected an object")
    name = _text(raw, "name", where, column=Category.__table__.c.name)
    where = f"demo catalog: category {name!r}"
    return DemoCategory(
        name=name,
        name_en=_text(raw, "name_en", where, column=Category.__table__.c.name_en, default=""),
        sort_order=_count(raw, "sort_order", where, default=0),
    )


def _parse_product(raw: Any, index: int, categories: set[str]) -> DemoProduct:
    where = f"demo catalog: product #{index + 1}"
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: expected an object")
    name = _text(raw, "name", where, column=Product.__table__.c.name)
    where = f"demo catalog: product {name!r}"
    category = _text(raw, "category", where)
    if category not in categories:
        raise ValueError(f"{where}: unknown category {category!r}")
    status = raw.get("status", ProductStatus.ON_SALE.value)
    if status not in {s.value for s in ProductStatus}:
        raise ValueError(f"{where}: status must be one of {[s.value for s in ProductStatus]}")
    variants = tuple(_parse_variant(v, where) for v in _list(raw, "variants", where))
    if not variants:
        raise ValueError(f"{where}: needs at least one variant")
    return DemoProduct(
        category=category,
        name=name,
        subtitle=_text(raw, "subtitle", where, column=Product.__table__.c.subtitle, default=""),
        description=_text(raw, "description", where, default=""),
        tags=_tags(raw, where),
        sales_count=_count(raw, "sales_count", where, default=0),
        status=ProductStatus(status),
        variants=variants,
        colour=_colour(raw, name, where),
    )


_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")


def _colour(raw: Mapping[str, Any], name: str, where: str) -> str:
    """The "#rrggbb" of its picture; without one, a colour of its own from its name."""
    value = raw.get("colour")
    if value is None:
        return "#" + hashlib.sha256(name.encode()).hexdigest()[:6]
    if not isinstance(value, str) or not _COLOUR.fullmatch(value):
        raise ValueError(f"{where}: 'colour' must be like \"#d94a38\"")
    return value


def _parse_variant(raw: Any, where: str) -> DemoVariant:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: every variant must be an object")
    sku = _text(raw, "sku_code", where, column=Variant.__table__.c.sku_code)
    where = f"{where}: variant {sku!r}"
    spec = raw.get("spec", {})
    if not isinstance(spec, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in spec.items()
    ):
        raise ValueError(f"{where}: spec must be an object of text values")
    return DemoVariant(
        sku_code=sku,
        spec=dict(spec),
        price_fen=_count(raw, "price_fen", where, maximum=INT64_MAX),
        stock=_count(raw, "stock", where),
    )


def _tags(raw: Mapping[str, Any], where: str) -> tuple[str, ...]:
    value = raw.get("tags", [])
    limit = _length(Tag.__table__.c.name)
    if not isinstance(value, list) or not all(isinstance(t, str) and t.strip() for t in value):
        raise ValueError(f"{where}: tags must be a list of non-empty texts")
    tags: dict[str, str] = {}
    for tag in value:
        if limit is not None and len(tag.strip()) > limit:
            raise ValueError(f"{where}: tag {tag!r} is longer than {limit} characters")
        tags.setdefault(tag_key(tag), tag.strip())
    return tuple(tags.values())


def _list(raw: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = raw.get(key)
    if not isinstance(value, list):
        raise ValueError(f"{where}: {key!r} must be a list")
    return value


def _text(
    raw: Mapping[str, Any],
    key: str,
    where: str,
    *,
    column: ColumnElement[Any] | None = None,
    default: str | None = None,
) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str) or (default is None and not value.strip()):
        required = "a non-empty text" if default is None else "a text"
        raise ValueError(f"{where}: {key!r} must be {required}")
    limit = _length(column) if column is not None else None
    if limit is not None and len(value) > limit:
        raise ValueError(f"{where}: {key!r} is longer than {limit} characters")
    return value


def _count(
    raw: Mapping[str, Any],
    key: str,
    where: str,
    *,
    default: int | None = None,
    maximum: int = INT32_MAX,
) -> int:
    value = raw.get(key, default)
    # bool is an int in Python, and 12.5 or "1290" are not fen: refuse them all.
    if type(value) is not int or not 0 <= value <= maximum:
        raise ValueError(f"{where}: {key!r} must be a non-negative integer, got {value!r}")
    return value


def _length(column: ColumnElement[Any]) -> int | None:
    return getattr(column.type, "length", None)


def _first_duplicate(names: list[str]) -> str | None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return None

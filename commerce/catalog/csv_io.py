"""The catalog as a CSV file: one row per variant (SKU), imported by upsert on sku_code.

Columns (`CSV_HEADER`, any order, header row required, names case-insensitive):

- sku_code: the variant's code; an existing code updates that variant and its product,
  a new one creates a variant;
- name, subtitle, category (Chinese or English name), status (on_sale / off_sale, also
  上架 / 下架; empty keeps an existing product's status, new ones go on sale): fields
  of the product. Rows of one product must agree on them;
- price_yuan: yuan with at most two decimals ("12.5", "¥12.50"), read exactly (`commerce.money`);
- stock: a whole number, set as it is (not added);
- spec: the variant's attributes, "颜色=红;尺码=M" (empty: none);
- description: the product's description (what its card and page say about it);
- images: the product's pictures in order (the first is its card's), links separated by
  "|": http(s) links are recorded as they are (never fetched), and the shop's own pictures
  are exported as `<base_url>/media/<name>` and recognised as its own when read back.

Optional columns (subtitle, status, spec, description, images) that are absent keep what
is stored; present and empty, they empty the field. A new
SKU joins the product of the same name and category (created earlier in the file or
already in the shop, if there is exactly one), else starts a new product. A row with an
error is skipped and reported with its line number; the other rows are applied. Rows
that change nothing are counted as unchanged, so exporting and importing back changes
nothing. Cells that a spreadsheet would run as a formula are written with a leading
apostrophe by the export and read back without it.

Nothing here commits. The import publishes one `CatalogChanged` for every product it touched;
more than a few are applied to the catalog in memory by a background rebuild after the commit.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from commerce import money
from commerce.catalog.admin import (
    DESCRIPTION_MAX,
    NAME_LENGTH,
    PRICE_RANGE,
    SKU_MAX,
    STOCK_RANGE,
    SUBTITLE_MAX,
    matches_category,
)
from commerce.catalog.images import MAX_IMAGES
from commerce.catalog.models import (
    Category,
    ImageSource,
    Product,
    ProductImage,
    ProductStatus,
    Variant,
)
from commerce.errors import ErrorCode, ShopError
from commerce.events import CatalogChanged, publish
from commerce.rules import utcnow

CSV_HEADER = (
    "sku_code", "name", "subtitle", "category", "price_yuan", "stock", "status", "spec", "description", "images",
)
REQUIRED_COLUMNS = ("sku_code", "name", "category", "price_yuan", "stock")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CATEGORY_MAX = 64
_STOCK = re.compile(r"^\d{1,8}$")
_STATUSES = {
    "on_sale": ProductStatus.ON_SALE,
    "on": ProductStatus.ON_SALE,
    "上架": ProductStatus.ON_SALE,
    "off_sale": ProductStatus.OFF_SALE,
    "off": ProductStatus.OFF_SALE,
    "下架": ProductStatus.OFF_SALE,
}
_CHUNK = 200  # SKUs per IN (...) query
IMAGE_URL_MAX = 500  # product_images.url
_IMAGE_URL = re.compile(r"https?://[^\s|]+|/media/[0-9a-f]{64}\.(?:jpg|png|webp|gif)", re.IGNORECASE)
_IMAGE_SPLIT = re.compile(r"[|\s]+")
_FLUSH_EVERY = 100  # rows applied between two flushes (one flush of 5000 would hold the event loop)


@dataclass(frozen=True)
class ImportReport:
    created: int
    updated: int
    errors: tuple[tuple[int, str], ...]  # (line number, message)
    unchanged: int = 0


# ---- cells --------------------------------------------------------------------------------


CSV_MAX_FEN = 99_999_999_99  # eight digits of yuan, as the column has always allowed


def format_yuan(fen: int) -> str:
    """12.50 for 1250 fen: exact, always two decimals (`commerce.money`)."""
    return money.format_yuan(fen)


def parse_yuan(text: str) -> int | None:
    """Fen for "12.5" / "¥12.50"; None when it is not yuan with at most two decimals."""
    try:
        return money.parse_yuan(text, max_fen=CSV_MAX_FEN)
    except money.MoneyError:
        return None


def format_spec(spec: dict[str, str] | None) -> str:
    return ";".join(f"{k}={v}" for k, v in (spec or {}).items())


def parse_spec(text: str) -> dict[str, str] | None:
    """{"颜色": "红", "尺码": "M"} for "颜色=红;尺码=M"; None when malformed."""
    spec: dict[str, str] = {}
    for part in re.split(r"[;；]", text):
        if not part.strip():
            continue
        key, sep, value = part.replace("＝", "=").partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value or key in spec or "=" in value:
            return None
        spec[key] = value
    return spec


def format_images(urls: Iterable[str], *, base_url: str = "") -> str:
    """"https://a/1.jpg|https://shop/media/ab….jpg": the shop's own (relative) made absolute."""
    return "|".join(f"{base_url}{url}" if url.startswith("/") else url for url in urls)


def parse_images(text: str, *, base_url: str = "") -> list[str] | str:
    """The links of an images cell (the shop's own made relative again), or what is wrong."""
    urls: list[str] = []
    for url in _IMAGE_SPLIT.split(text.strip()):
        if not url:
            continue
        if base_url and url.startswith(f"{base_url}/media/"):
            url = url[len(base_url):]
        if len(url) > IMAGE_URL_MAX or not _IMAGE_URL.fullmatch(url):
            return f"images: {url[:60]!r} is not an http(s) link"
        if url not in urls:
            urls.append(url)
    if len(urls) > MAX_IMAGES:
        return f"images: at most {MAX_IMAGES} pictures a product"
    return urls


def safe_cell(value: Any) -> str:
    """A cell a spreadsheet shows as text: formulas get a leading apostrophe."""
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def _unsafe_cell(text: str) -> str:
    """The value `safe_cell` wrote."""
    return text[1:] if text.startswith("'") and text[1:].startswith(FORMULA_STARTS) else text


# ---- export ------------------------------------------------------------------------------


async def export_products_csv_rows(session: AsyncSession, *, base_url: str = "") -> list[tuple[str, ...]]:
    """CSV_HEADER and one row per variant of every product (also off sale), in catalog
    order: the file `import_catalog_csv` reads back to the same catalog. The shop's own
    pictures are links under `base_url` (its public address)."""
    products = (
        await session.scalars(
            select(Product)
            .options(selectinload(Product.variants), selectinload(Product.category), selectinload(Product.images))
            .order_by(Product.sort_order, Product.id)
            .execution_options(populate_existing=True)
        )
    ).all()
    rows: list[tuple[str, ...]] = [CSV_HEADER]
    for product in products:
        for variant in product.variants:
            rows.append(
                tuple(
                    safe_cell(v)
                    for v in (
                        variant.sku_code,
                        product.name,
                        product.subtitle,
                        product.category.name,
                        format_yuan(variant.price_fen),
                        variant.stock,
                        product.status,
                        format_spec(variant.spec),
                        product.description,
                        format_images((i.url for i in product.images), base_url=base_url),
                    )
                )
            )
    return rows


def write_csv(rows: Iterable[Iterable[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerows(rows)
    return out.getvalue()


# ---- reading the file ---------------------------------------------------------------------


@dataclass
class _Row:
    line: int
    sku: str
    name: str
    category: str  # as typed; resolved when applied
    price_fen: int
    stock: int
    subtitle: str | None  # None: column absent, keep
    status: ProductStatus | None  # None: keep (new products: on sale)
    spec: dict[str, str] | None  # None: column absent, keep
    description: str | None = None  # None: column absent, keep
    images: tuple[str, ...] | None = None  # None: column absent, keep


@dataclass
class _Parsed:
    rows: list[_Row] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)


def _delimiter(first_line: str) -> str:
    for candidate in ("\t", ";"):
        if candidate in first_line and "," not in first_line:
            return candidate
    return ","


def _read(text: str, max_rows: int) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header (lower-case names) and the non-blank data rows with their line numbers."""
    text = text.lstrip("\ufeff")
    first_line = next((ln for ln in text.splitlines() if ln.strip()), "")
    reader = csv.reader(io.StringIO(text), delimiter=_delimiter(first_line))
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    try:
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            if header is None:
                header = [c.strip().lower() for c in cells]
                continue
            rows.append((reader.line_num, [_unsafe_cell(c) for c in cells]))
            if len(rows) > max_rows:
                raise ShopError(ErrorCode.CSV_INVALID, reason="too_many_rows", max_rows=max_rows)
    except csv.Error as exc:
        raise ShopError(ErrorCode.CSV_INVALID, reason="unreadable", line=reader.line_num) from exc
    if header is None:
        raise ShopError(ErrorCode.CSV_INVALID, reason="empty", expected=list(CSV_HEADER))
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ShopError(
            ErrorCode.CSV_INVALID,
            reason="missing_columns",
            missing=missing,
            expected=list(CSV_HEADER),
        )
    known = [c for c in header if c in CSV_HEADER]
    if len(known) != len(set(known)):
        duplicate = next(c for c in known if known.count(c) > 1)
        raise ShopError(ErrorCode.CSV_INVALID, reason="duplicate_column", column=duplicate)
    return header, rows


def _parse_row(line: int, cells: dict[str, str], columns: set[str], *, base_url: str = "") -> _Row | str:
    """A valid row, or the message saying what is wrong with it."""
    sku = cells["sku_code"].strip()
    if not sku:
        return "sku_code is missing"
    if len(sku) > SKU_MAX or any(c.isspace() or not c.isprintable() for c in sku):
        return f"sku_code {sku!r}: at most {SKU_MAX} characters, no spaces"
    name = cells["name"].strip()
    low, high = NAME_LENGTH
    if not low <= len(name) <= high:
        return f"name: {low}-{high} characters"
    category = cells["category"].strip()
    if not category:
        return "category is missing"
    price_fen = parse_yuan(cells["price_yuan"])
    if price_fen is None or not PRICE_RANGE[0] <= price_fen <= PRICE_RANGE[1]:
        return (
            f"price_yuan {cells['price_yuan'].strip()!r}: yuan with at most 2 decimals, "
            f"from {format_yuan(PRICE_RANGE[0])} to {format_yuan(PRICE_RANGE[1])}"
        )
    stock_text = cells["stock"].strip()
    if not _STOCK.match(stock_text) or not STOCK_RANGE[0] <= int(stock_text) <= STOCK_RANGE[1]:
        return f"stock {stock_text!r}: a whole number from {STOCK_RANGE[0]} to {STOCK_RANGE[1]}"
    subtitle = cells["subtitle"].strip() if "subtitle" in columns else None
    if subtitle is not None and len(subtitle) > SUBTITLE_MAX:
        return f"subtitle: at most {SUBTITLE_MAX} characters"
    status: ProductStatus | None = None
    if "status" in columns and cells["status"].strip():
        status = _STATUSES.get(cells["status"].strip().lower())
        if status is None:
            return f"status {cells['status'].strip()!r}: on_sale or off_sale"
    spec: dict[str, str] | None = None
    if "spec" in columns:
        spec = parse_spec(cells["spec"])
        if spec is None:
            return f"spec {cells['spec'].strip()!r}: like 颜色=红;尺码=M"
    description = cells["description"].strip() if "description" in columns else None
    if description is not None and len(description) > DESCRIPTION_MAX:
        return f"description: at most {DESCRIPTION_MAX} characters"
    images: list[str] | None = None
    if "images" in columns:
        found = parse_images(cells["images"], base_url=base_url)
        if isinstance(found, str):
            return found
        images = found
    return _Row(
        line=line,
        sku=sku,
        name=name,
        category=category,
        price_fen=price_fen,
        stock=int(stock_text),
        subtitle=subtitle,
        status=status,
        spec=spec,
        description=description,
        images=None if images is None else tuple(images),
    )


def _parse(text: str, max_rows: int, *, base_url: str = "") -> _Parsed:
    header, raw_rows = _read(text, max_rows)
    columns = {c for c in header if c in CSV_HEADER}
    parsed = _Parsed()
    first_line_of: dict[str, int] = {}
    for line, raw in raw_rows:
        if len(raw) > len(header) and any(c.strip() for c in raw[len(header) :]):
            parsed.errors.append((line, f"{len(raw)} cells, the header has {len(header)}"))
            continue
        cells = {name: "" for name in CSV_HEADER}
        for name, value in zip(header, raw, strict=False):
            if name in CSV_HEADER:
                cells[name] = value
        sku = cells["sku_code"].strip()
        if sku and sku in first_line_of:
            parsed.errors.append(
                (line, f"sku_code {sku!r} is also on line {first_line_of[sku]}: skipped")
            )
            continue
        if sku:
            first_line_of[sku] = line
        row = _parse_row(line, cells, columns, base_url=base_url)
        if isinstance(row, str):
            parsed.errors.append((line, row))
        else:
            parsed.rows.append(row)
    return parsed


# ---- applying it --------------------------------------------------------------------------


class _Importer:
    def __init__(self, session: AsyncSession, *, create_categories: bool, with_images: bool = False) -> None:
        self.session = session
        self.create_categories = create_categories
        self.with_images = with_images  # the file has an images column
        self.images: dict[int, list[ProductImage]] = {}  # product id -> its pictures, in order
        self.images_done: set[int] = set()
        self.categories: list[Category] = []
        self.variants: dict[str, Variant] = {}
        self.claims: dict[int, tuple[int, dict[str, Any]]] = {}  # product id -> (line, fields)
        self.new_products: dict[tuple[str, int], Product] = {}
        self.next_sort = 0
        self.created = self.updated = self.unchanged = 0
        self.errors: list[tuple[int, str]] = []

    async def load(self, rows: list[_Row]) -> None:
        self.categories = list(
            (
                await self.session.scalars(
                    select(Category).order_by(Category.sort_order, Category.id)
                )
            ).all()
        )
        skus = sorted({row.sku for row in rows})
        for start in range(0, len(skus), _CHUNK):
            found = await self.session.scalars(
                select(Variant)
                .where(Variant.sku_code.in_(skus[start : start + _CHUNK]))
                .options(selectinload(Variant.product))
                .execution_options(populate_existing=True)
            )
            self.variants.update({v.sku_code: v for v in found})
        self.next_sort = (await self.session.scalar(select(func.max(Product.sort_order)))) or 0
        if self.with_images:
            await self.load_images(sorted({v.product_id for v in self.variants.values()}))

    async def load_images(self, product_ids: list[int]) -> None:
        for start in range(0, len(product_ids), _CHUNK):
            chunk = product_ids[start : start + _CHUNK]
            found = await self.session.scalars(
                select(ProductImage)
                .where(ProductImage.product_id.in_(chunk))
                .order_by(ProductImage.product_id, ProductImage.position, ProductImage.id)
            )
            for product_id in chunk:
                self.images.setdefault(product_id, [])
            for image in found:
                self.images[image.product_id].append(image)

    async def set_images(self, product: Product, urls: tuple[str, ...]) -> bool:
        """The product's pictures become `urls`, in that order; whether anything changed.
        Pictures it keeps keep their thumbnail; new links are recorded, never fetched."""
        if product.id in self.images_done:
            return False
        self.images_done.add(product.id)
        if product.id not in self.images:
            await self.load_images([product.id])
        current = self.images[product.id]
        if [i.url for i in current] == list(urls):
            return False
        by_url = {i.url: i for i in current}
        kept = []
        for position, url in enumerate(urls):
            image = by_url.pop(url, None)
            if image is None:
                own = url.startswith("/media/")
                image = ProductImage(
                    product_id=product.id, url=url,
                    source=(ImageSource.UPLOAD if own else ImageSource.EXTERNAL).value,
                )
                self.session.add(image)
            image.position = position
            kept.append(image)
        for gone in by_url.values():
            await self.session.delete(gone)
        self.images[product.id] = kept
        product.updated_at = utcnow()  # no column of its own changed: other workers look for this
        return True

    def category(self, name: str) -> Category | str:
        for category in self.categories:
            if matches_category(category, name):
                return category
        if self.create_categories:
            if len(name) > CATEGORY_MAX:
                return f"category: at most {CATEGORY_MAX} characters"
            category = Category(name=name, name_en="", sort_order=len(self.categories) + 1)
            self.session.add(category)
            self.categories.append(category)
            return category
        known = ", ".join(c.name for c in self.categories)
        return f"unknown category {name!r} (known: {known})"

    def claim(self, product: Product, row: _Row, fields: dict[str, Any]) -> str | None:
        """Rows of one product must agree on its fields: the first row's win."""
        claimed = self.claims.get(product.id)
        if claimed is None:
            self.claims[product.id] = (row.line, fields)
            return None
        line, first = claimed
        differing = [k for k, v in fields.items() if k in first and first[k] != v]
        for k, v in fields.items():
            first.setdefault(k, v)
        if differing:
            return f"{', '.join(differing)} differ from line {line} (same product)"
        return None

    async def apply(self, row: _Row) -> None:
        category = self.category(row.category)
        if isinstance(category, str):
            self.errors.append((row.line, category))
            return
        if category.id is None:
            await self.session.flush()
        fields: dict[str, Any] = {"name": row.name, "category_id": category.id}
        if row.subtitle is not None:
            fields["subtitle"] = row.subtitle
        if row.status is not None:
            fields["status"] = row.status.value
        if row.description is not None:
            fields["description"] = row.description
        variant = self.variants.get(row.sku)
        if variant is not None:
            await self.update(variant, row, fields)
        else:
            await self.create(row, fields)

    async def update(self, variant: Variant, row: _Row, fields: dict[str, Any]) -> None:
        product = variant.product
        problem = self.claim(product, row, _with_images(fields, row))
        if problem is not None:
            self.errors.append((row.line, problem))
            return
        changed = _assign(product, fields)
        if row.images is not None:
            changed = await self.set_images(product, row.images) or changed
        values: dict[str, Any] = {"price_fen": row.price_fen, "stock": row.stock}
        if row.spec is not None:
            values["spec"] = row.spec
        changed = _assign(variant, values) or changed
        if changed:
            self.updated += 1
        else:
            self.unchanged += 1

    async def create(self, row: _Row, fields: dict[str, Any]) -> None:
        product = await self.product_for(row, fields)
        problem = self.claim(product, row, _with_images(fields, row))
        if problem is not None:
            self.errors.append((row.line, problem))
            return
        _assign(product, fields)
        if row.images is not None:
            await self.set_images(product, row.images)
        variant = Variant(
            product_id=product.id,
            sku_code=row.sku,
            spec=row.spec or {},
            price_fen=row.price_fen,
            stock=row.stock,
            low_stock_threshold=5,
        )
        self.session.add(variant)
        self.variants[row.sku] = variant
        self.created += 1

    async def product_for(self, row: _Row, fields: dict[str, Any]) -> Product:
        """The product a new SKU belongs to: same name and category, else a new one."""
        key = (row.name, fields["category_id"])
        if key in self.new_products:
            return self.new_products[key]
        await self.session.flush()
        same = (
            await self.session.scalars(
                select(Product)
                .where(Product.name == row.name, Product.category_id == fields["category_id"])
                .limit(2)
            )
        ).all()
        if len(same) == 1:
            return same[0]
        self.next_sort += 1
        product = Product(
            category_id=fields["category_id"],
            name=row.name,
            subtitle=row.subtitle or "",
            description=row.description or "",
            status=(row.status or ProductStatus.ON_SALE).value,
            sort_order=self.next_sort,
        )
        self.session.add(product)
        await self.session.flush()
        self.new_products[key] = product
        self.images[product.id] = []
        return product


def _with_images(fields: dict[str, Any], row: _Row) -> dict[str, Any]:
    """What rows of one product must agree on: its fields and, when given, its pictures."""
    return fields if row.images is None else {**fields, "images": row.images}


def _assign(target: Any, values: dict[str, Any]) -> bool:
    changed = False
    for name, value in values.items():
        if getattr(target, name) != value:
            setattr(target, name, value)
            changed = True
    return changed


async def import_catalog_csv(
    session: AsyncSession,
    *,
    text: str,
    max_rows: int = 5000,
    create_categories: bool = False,
    base_url: str = "",
) -> ImportReport:
    """Upsert the catalog from CSV text (see the module docstring); `base_url`: the shop's
    public address, under which its own pictures were exported.

    CSV_INVALID (details: reason = empty | missing_columns | duplicate_column |
    too_many_rows | unreadable) refuses the whole file before anything is written.
    Unknown categories are row errors unless `create_categories` (the CLI's import of
    a first catalog).
    """
    parsed = _parse(text, max_rows, base_url=base_url.rstrip("/"))
    importer = _Importer(
        session, create_categories=create_categories, with_images=any(r.images is not None for r in parsed.rows)
    )
    importer.errors.extend(parsed.errors)
    await importer.load(parsed.rows)
    for number, row in enumerate(parsed.rows, 1):
        await importer.apply(row)
        if number % _FLUSH_EVERY == 0:  # a few milliseconds of ORM work at a time, the event loop free between
            await session.flush()
    await session.flush()
    if importer.created or importer.updated:
        products = {v.product_id for v in importer.variants.values()} | {p.id for p in importer.new_products.values()}
        await publish(session, CatalogChanged(product_ids=tuple(sorted(products))))
    return ImportReport(
        created=importer.created,
        updated=importer.updated,
        errors=tuple(sorted(importer.errors)),
        unchanged=importer.unchanged,
    )

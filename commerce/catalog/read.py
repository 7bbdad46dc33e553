"""The catalog as customers see it: read models, a cached snapshot and its search index.

The catalog is read-mostly and a database round trip costs ~0.5 ms, so searches run
against an in-memory snapshot (products on sale, their variants and a search index)
that is rebuilt when a write in this process invalidates it or when it is older than
`max_age_seconds` (which bounds staleness across workers). A product card re-reads
its product from the database so the stock it shows is current.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Select, event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from commerce.catalog import lexicon as shop_lexicon
from commerce.catalog.lexicon import NO_LEXICON, Lexicon
from commerce.catalog.models import Category, Product, ProductStatus
from commerce.catalog.search import SearchDoc, SearchHit, SearchIndex

MAX_CACHED_QUERY = 256  # the index ignores raw input past this anyway


@dataclass(frozen=True, slots=True)
class VariantView:
    id: int
    sku_code: str
    spec: dict[str, str]
    price_fen: int
    stock: int

    @property
    def label(self) -> str:
        """"红色 / 256GB" from the spec values; empty for a single-variant product."""
        return " / ".join(str(v) for v in self.spec.values())


@dataclass(frozen=True, slots=True)
class ProductView:
    id: int
    name: str
    subtitle: str
    description: str
    category_id: int
    category: str
    category_en: str
    tags: tuple[str, ...]
    image_url: str
    variants: tuple[VariantView, ...]
    sales_count: int
    sort_order: int

    @property
    def min_price_fen(self) -> int:
        return min((v.price_fen for v in self.variants), default=0)

    @property
    def max_price_fen(self) -> int:
        return max((v.price_fen for v in self.variants), default=0)

    @property
    def total_stock(self) -> int:
        return sum(v.stock for v in self.variants)

    @property
    def in_stock(self) -> bool:
        return self.total_stock > 0


@dataclass(frozen=True, slots=True)
class CategoryView:
    id: int
    name: str
    name_en: str
    product_ids: tuple[int, ...]


def _product_view(product: Product) -> ProductView:
    return ProductView(
        id=product.id,
        name=product.name,
        subtitle=product.subtitle,
        description=product.description,
        category_id=product.category_id,
        category=product.category.name,
        category_en=product.category.name_en,
        tags=tuple(t.name for t in product.tags),
        image_url=product.images[0].url if product.images else "",
        variants=tuple(
            VariantView(id=v.id, sku_code=v.sku_code, spec=dict(v.spec or {}), price_fen=v.price_fen, stock=v.stock)
            for v in product.variants
        ),
        sales_count=product.sales_count,
        sort_order=product.sort_order,
    )


def _product_query() -> Select[Product]:
    return select(Product).options(
        selectinload(Product.variants),
        selectinload(Product.images),
        selectinload(Product.tags),
        selectinload(Product.category),
    )


def _catalog_words(products: Sequence[ProductView], categories: Sequence[Category]) -> str:
    """The words the catalog itself uses (names, subtitles, tags, categories), one text."""
    parts = [f"{p.name} {p.subtitle} {' '.join(p.tags)}" for p in products]
    parts += [f"{c.name} {c.name_en}" for c in categories]
    return "\n".join(parts)


Lookup = Callable[[str, int], tuple[SearchHit, ...]]  # (query, limit) -> hits, maybe cached


class CatalogSnapshot:
    """Everything on sale at one moment, with its search index."""

    def __init__(
        self,
        products: Sequence[ProductView],
        categories: Sequence[Category],
        *,
        query_cache_size: int = 4096,
        lexicon: Lexicon = NO_LEXICON,
    ) -> None:
        self.products = {p.id: p for p in products}
        # the shop's synonyms and the built-in everyday names (applied to every search), staff answers
        self.lexicon = lexicon.with_everyday_names(_catalog_words(products, categories))
        ordered = sorted(products, key=lambda p: (p.sort_order, p.id))
        by_category: dict[int, list[int]] = {}
        for p in ordered:
            by_category.setdefault(p.category_id, []).append(p.id)
        self.categories = tuple(
            CategoryView(id=c.id, name=c.name, name_en=c.name_en, product_ids=tuple(by_category.get(c.id, ())))
            for c in sorted(categories, key=lambda c: (c.sort_order, c.id))
            if by_category.get(c.id)
        )
        self.hot = tuple(p.id for p in sorted(products, key=lambda p: (-p.sales_count, p.sort_order, p.id)))
        self._search: Lookup = self._search_index
        self._suggest: Lookup = self._suggest_index
        if query_cache_size > 0:
            cache = functools.lru_cache(maxsize=query_cache_size)
            self._search, self._suggest = cache(self._search_index), cache(self._suggest_index)
        self.index = SearchIndex(
            SearchDoc(
                product_id=p.id,
                name=p.name,
                subtitle=p.subtitle,
                tags=p.tags,
                category=f"{p.category} {p.category_en}".strip(),
                popularity=p.sales_count,
            )
            for p in products
        )

    def category(self, category_id: int) -> CategoryView | None:
        return next((c for c in self.categories if c.id == category_id), None)

    def search(self, query: str, *, limit: int = 50) -> list[SearchHit]:
        return list(self._search(self.lexicon.rewrite(query)[:MAX_CACHED_QUERY], limit))

    def suggest(self, query: str, *, limit: int = 3) -> list[SearchHit]:
        return list(self._suggest(self.lexicon.rewrite(query)[:MAX_CACHED_QUERY], limit))

    # Shoppers ask for the same few things over and over ("苹果", "茶"): answers are
    # cached per snapshot, so a catalog change (a new snapshot) starts a fresh cache.
    def _search_index(self, query: str, limit: int) -> tuple[SearchHit, ...]:
        return tuple(h for h in self.index.search(query, limit=limit) if h.product_id in self.products)

    def _suggest_index(self, query: str, limit: int) -> tuple[SearchHit, ...]:
        return tuple(h for h in self.index.suggest(query, limit=limit) if h.product_id in self.products)


class Catalog:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        max_age_seconds: float = 30.0,
        query_cache_size: int = 4096,
    ) -> None:
        self._sessions = sessions
        self._max_age = max_age_seconds
        self._query_cache_size = query_cache_size
        self._snapshot: CatalogSnapshot | None = None
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        """Call after any catalog write so the next read rebuilds the snapshot."""
        self._snapshot = None

    def invalidate_after_commit(self, session: AsyncSession) -> None:
        """Rebuild the snapshot once `session`'s transaction commits (not before: a read
        between the change and its commit would cache the old stock again). Nothing
        happens when it rolls back. Several calls in one transaction invalidate once."""
        changed, listening = f"storefront.catalog.{id(self)}.changed", f"storefront.catalog.{id(self)}.listening"
        session.info[changed] = True
        if session.info.get(listening):
            return
        session.info[listening] = True

        def committed(_session: object) -> None:
            if session.info.pop(changed, False):
                self.invalidate()

        def rolled_back(_session: object) -> None:
            session.info.pop(changed, None)

        event.listen(session.sync_session, "after_commit", committed)
        event.listen(session.sync_session, "after_rollback", rolled_back)

    async def snapshot(self) -> CatalogSnapshot:
        snap = self._snapshot
        if snap is not None and time.monotonic() - self._loaded_at < self._max_age:
            return snap
        async with self._lock:
            if self._snapshot is not None and time.monotonic() - self._loaded_at < self._max_age:
                return self._snapshot
            loaded_at = time.monotonic()
            snapshot = await self._load()
            self._snapshot, self._loaded_at = snapshot, loaded_at
            return snapshot

    async def _load(self) -> CatalogSnapshot:
        async with self._sessions() as session:
            products = (
                await session.scalars(_product_query().where(Product.status == ProductStatus.ON_SALE.value))
            ).all()
            categories = (await session.scalars(select(Category))).all()
            views = [_product_view(p) for p in products]
            lexicon = await shop_lexicon.load(session)
        # the index build is CPU work; for big catalogs keep it off the event loop
        build = functools.partial(
            CatalogSnapshot, views, categories, query_cache_size=self._query_cache_size, lexicon=lexicon
        )
        if len(views) > 5000:
            return await asyncio.to_thread(build)
        return build()

    async def product(self, product_id: int) -> ProductView | None:
        """One product on sale, read fresh (current stock); None if missing or off sale."""
        async with self._sessions() as session:
            product = await session.scalar(
                _product_query().where(Product.id == product_id, Product.status == ProductStatus.ON_SALE.value)
            )
            return _product_view(product) if product is not None else None

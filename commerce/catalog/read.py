"""The catalog as customers see it: what is on sale in memory, with its search index;
stock read from the database when a page is shown.

What changes only when staff edit the catalog (names, tags, categories, prices, images,
variants' specs, popularity) is held in memory by each worker: a `CatalogSnapshot`
of the products (a `ProductTable`: columns in numpy arrays and packed text, making a
`ProductInfo` when asked) and its `SearchIndex` (compact arrays too). What moves with every order (stock) is not: a
page of results reads the stock and prices of its few products in one indexed query
(`Catalog.stock`), a product card reads its product (`Catalog.product`). So an order
never touches the catalog in memory, and a search never waits for a reload.

How the catalog in memory follows the database:
- **A staff edit in this worker** (`CatalogChanged(product_ids=...)`, from the staff
  commands, the CSV import, on/off sale) is read inside the edit's own transaction and
  applied to the index after the commit, one product out and one in: searchable at
  once (`commerce.wiring.tell_catalog`). More than `BULK_PRODUCTS` products in one
  transaction (an import) rebuild the catalog in the background instead. A change of
  the shop's words (synonyms, staff answers: `CatalogChanged()`) is read the same way.
- **Edits made by other workers** (or scripts): every product write stamps
  `products.updated_at`, and each worker asks for the products stamped since its
  watermark every `refresh_seconds` (`Catalog.refresh`: one indexed query, nothing
  found almost always), reads those few and applies them the same way. The watermark
  overlaps by `REFRESH_OVERLAP`, so a transaction that commits a little after another
  with a later stamp is not missed; what was already applied is recognised by its stamp.
- **A full rebuild** (start-up, a bulk import, and every `rebuild_seconds`, which
  brings popularity up to date) of a large catalog runs in another process: it reads Core
  rows from the database itself, builds the table and the index, and writes their arrays
  into a file that the worker maps read-only (never copied into its heap: a swap does not
  need room for two catalogs); the event loop only takes in the rest, `BUILD_SLICE_SECONDS`
  at a time, searches running in between with the previous catalog. (A small catalog, or a database another
  process cannot open, is read in partitions and built here, in the same slices.) The new
  catalog is swapped in whole and the old one freed a piece at a time, then the C heap
  trimmed. Only searches before the very first load is done wait for it.
- **Orders** (`CatalogChanged(variant_ids=...)`) change nothing here.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import gc
import logging
import mmap
import multiprocessing
import os
import pickle
import sys
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import (
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Iterator,
    MutableMapping,
    Sequence,
)
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from heapq import merge
from itertools import islice, pairwise
from multiprocessing.connection import Connection
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Select, event, func, select, update
from sqlalchemy.engine import Engine, Row
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from commerce.catalog import lexicon as shop_lexicon
from commerce.catalog.lexicon import NO_LEXICON, Lexicon
from commerce.catalog.models import (
    Category,
    Product,
    ProductImage,
    ProductStatus,
    Tag,
    Variant,
    product_tags,
)
from commerce.catalog.search import (
    SearchDoc,
    SearchHit,
    SearchIndex,
    Steps,
    finish,
    narrowed,
    sorting,
)
from commerce.db import (
    SqliteBusy,
    blocking_sqlite_engine_for,
    create_engine,
    run_nonblocking_sqlite,
)
from commerce.orm import utcnow

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_CACHED_QUERY = 256  # the index ignores raw input past this anyway
BULK_PRODUCTS = 16
"""More products than this changed in one transaction are applied by a background rebuild."""
REFRESH_OVERLAP = timedelta(seconds=10)
"""How far before its watermark a worker looks again for products stamped by other workers."""
PARTITION_ROWS = 500
"""Rows read between two turns of the event loop during a full load."""
CLOSE_WAIT_SECONDS = 5.0

REFRESH_TASK = "catalog-refresh"  # the background refresh and rebuild tasks' name (tests tell their statements apart)
"""How long closing waits for a first load (or a refresh) under way before cancelling it."""
LARGE_CATALOG = 2000
"""Products above which a full build runs in slices, with the garbage collector paused."""
BUILD_SLICE_SECONDS = 0.004
"""A full build runs on the event loop this long at a time, searches running in between."""
BUILD_PAUSE_SECONDS = 0.001
"""Between two slices of a build on the event loop: everything else that is due runs first."""
FREE_CHUNK = 500
"""Objects freed between two turns of the event loop when a retired catalog is let go."""
BUILD_NICENESS = 10
"""How much lower the subprocess of a build runs than the worker, when the cores are busy."""
ARRAY_ALIGNMENT = 64
"""Where each array starts in the file a build in another process writes them to."""


@dataclass(frozen=True, slots=True)
class VariantInfo:
    """A variant as the catalog in memory holds it: its label and price, no stock (that moves
    with orders) and no spec (a card reads its product whole)."""

    id: int
    label: str  # "红色 / 256GB" from the spec values; empty for a single-variant product
    price_fen: int


@dataclass(frozen=True, slots=True)
class ProductInfo:
    """A product on sale as the catalog in memory holds it (what staff edits change)."""

    id: int
    name: str
    subtitle: str
    category_id: int
    category: str
    category_en: str
    tags: tuple[str, ...]
    image_url: str  # the first picture ("" without one)
    thumb_url: str  # what its card shows: the picture's thumbnail, or the picture itself
    variants: tuple[VariantInfo, ...]
    sales_count: int
    sort_order: int

    @property
    def min_price_fen(self) -> int:
        return min((v.price_fen for v in self.variants), default=0)

    @property
    def max_price_fen(self) -> int:
        return max((v.price_fen for v in self.variants), default=0)

    def search_doc(self) -> SearchDoc:
        return SearchDoc(
            product_id=self.id,
            name=self.name,
            subtitle=self.subtitle,
            tags=self.tags,
            category=_category_text(self.category, self.category_en),
            popularity=self.sales_count,
        )


@functools.lru_cache(maxsize=1024)
def _category_text(name: str, name_en: str) -> str:
    """What the index reads of a category, one string for all its products."""
    return f"{name} {name_en}".strip()


@dataclass(frozen=True, slots=True)
class VariantView:
    """A variant as the database has it now, stock included."""

    id: int
    sku_code: str
    spec: dict[str, str]
    price_fen: int
    stock: int

    @property
    def label(self) -> str:
        """"红色 / 256GB" from the spec values; empty for a single-variant product."""
        return " / ".join(str(v) for v in self.spec.values())


def total_stock(variants: Iterable[VariantView]) -> int:
    return sum(v.stock for v in variants)


@dataclass(frozen=True, slots=True)
class ProductView:
    """One product read fresh from the database (a product card): stock is current."""

    id: int
    name: str
    subtitle: str
    description: str
    category_id: int
    category: str
    category_en: str
    tags: tuple[str, ...]
    image_url: str  # the first picture ("" without one): the product page shows it
    thumb_url: str  # its thumbnail, or the picture itself: the product card shows it
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
        return total_stock(self.variants)

    @property
    def in_stock(self) -> bool:
        return self.total_stock > 0


@dataclass(frozen=True, slots=True)
class CategoryInfo:
    id: int
    name: str
    name_en: str
    sort_order: int


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
        thumb_url=(product.images[0].thumb_url or product.images[0].url) if product.images else "",
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


class ProductTable(MutableMapping[int, ProductInfo]):
    """The products on sale by id, held in columns rather than as objects: 100k `ProductInfo`
    with their variants took about 110 MiB as Python objects, and about a quarter of that
    here (numpy arrays of ids, numbers and offsets; the texts packed as UTF-8 in one byte
    string; tag sets and variant labels once each). A `ProductInfo` is made when asked for
    (a few microseconds; the last few thousand are kept, as the same page asks again).

    Changes (`apply`: a staff edit) go to an overlay read first; a rebuild folds them in.
    It crosses from another process as a few raw buffers (`packed`, `unpacking`)."""

    _TEXTS = 4  # name, subtitle, image_url, thumb_url

    def __init__(self, products: Iterable[ProductInfo] = ()) -> None:
        finish(self._filling(products))

    @classmethod
    def building(cls, products: Iterable[ProductInfo]) -> Steps[ProductTable]:
        table = cls.__new__(cls)
        yield from table._filling(products)
        return table

    def _filling(self, products: Iterable[ProductInfo]) -> Steps[None]:
        ordered = yield from sorting(products, key=lambda product: product.id)
        blob = bytearray()
        starts, ids, categories, sales, sort_orders = array("q", [0]), array("q"), array("q"), array("q"), array("q")
        tag_of, variant_starts = array("i"), array("q", [0])
        variant_ids, prices, label_of = array("q"), array("q"), array("i")
        tag_sets: dict[tuple[str, ...], int] = {}
        labels: dict[str, int] = {}
        self._category_names: dict[int, tuple[str, str]] = {}
        for count, product in enumerate(ordered):
            for text in (product.name, product.subtitle, product.image_url, product.thumb_url):
                blob += text.encode(errors="surrogatepass")
                starts.append(len(blob))
            ids.append(product.id)
            categories.append(product.category_id)
            self._category_names[product.category_id] = (product.category, product.category_en)
            sales.append(product.sales_count)
            sort_orders.append(product.sort_order)
            tag_of.append(tag_sets.setdefault(product.tags, len(tag_sets)))
            for variant in product.variants:
                variant_ids.append(variant.id)
                prices.append(variant.price_fen)
                label_of.append(labels.setdefault(variant.label, len(labels)))
            variant_starts.append(len(variant_ids))
            if count % 512 == 0:
                yield
        self._blob = bytes(blob)
        self._starts = narrowed(starts)
        self._ids = narrowed(ids)
        self._categories = narrowed(categories)
        self._sales = narrowed(sales)
        self._sort_orders = narrowed(sort_orders)
        self._tag_of = np.array(tag_of, dtype=np.int32)
        self._variant_starts = narrowed(variant_starts)
        self._variant_ids = narrowed(variant_ids)
        self._prices = narrowed(prices)
        self._label_of = np.array(label_of, dtype=np.int32)
        self._tag_sets = list(tag_sets)
        self._labels = list(labels)
        yield
        # the orders the snapshot lists products in, sorted here (where a build elsewhere runs)
        self._hot_order = narrowed(np.lexsort((self._ids, self._sort_orders, -self._sales.astype(np.int64))))
        yield
        self._category_order = narrowed(np.lexsort((self._ids, self._sort_orders, self._categories)))
        self._start_overlay()

    def _start_overlay(self) -> None:
        self._changed: dict[int, ProductInfo | None] = {}  # by id; None: no longer on sale
        self._made: dict[int, ProductInfo] = {}  # recently made from the columns
        self._size = len(self._ids)

    def packed(self) -> dict[str, Any]:
        """The columns, to cross to another process (a fresh table: no overlay)."""
        state = {name: value for name, value in vars(self).items() if name not in ("_changed", "_made", "_size")}
        state["_blob"] = pickle.PickleBuffer(self._blob)  # taken back as the buffer it crossed in
        return state

    @classmethod
    def unpacking(cls, packed: dict[str, Any]) -> ProductTable:
        table = cls.__new__(cls)
        vars(table).update(packed)  # the texts stay in the buffer they crossed in (a view): sliced alike
        table._start_overlay()
        return table

    # ---- the mapping ---------------------------------------------------------------------

    def _position(self, product_id: int) -> int | None:
        at = int(np.searchsorted(self._ids, product_id))
        return at if at < len(self._ids) and self._ids[at] == product_id else None

    def __contains__(self, product_id: object) -> bool:
        if not isinstance(product_id, int):
            return False
        changed = self._changed.get(product_id, _NOT_CHANGED)
        if changed is not _NOT_CHANGED:
            return changed is not None
        return self._position(product_id) is not None

    def __getitem__(self, product_id: int) -> ProductInfo:
        changed = self._changed.get(product_id, _NOT_CHANGED)
        if changed is not _NOT_CHANGED:
            if changed is None:
                raise KeyError(product_id)
            return changed  # type: ignore[return-value]
        made = self._made.get(product_id)
        if made is not None:
            return made
        position = self._position(product_id) if isinstance(product_id, int) else None
        if position is None:
            raise KeyError(product_id)
        if len(self._made) >= MADE_KEPT:
            self._made.clear()
        made = self._made[product_id] = self._make(position)
        return made

    def _make(self, at: int) -> ProductInfo:
        starts, blob = self._starts, self._blob
        first = self._TEXTS * at
        name, subtitle, image_url, thumb_url = (
            str(blob[starts[first + n] : starts[first + n + 1]], "utf-8", "surrogatepass") for n in range(self._TEXTS)
        )
        category_id = int(self._categories[at])
        category, category_en = self._category_names[category_id]
        variants = tuple(
            VariantInfo(id=int(self._variant_ids[v]), label=self._labels[self._label_of[v]], price_fen=int(self._prices[v]))
            for v in range(int(self._variant_starts[at]), int(self._variant_starts[at + 1]))
        )
        return ProductInfo(
            id=int(self._ids[at]), name=name, subtitle=subtitle, category_id=category_id, category=category,
            category_en=category_en, tags=self._tag_sets[self._tag_of[at]], image_url=image_url, thumb_url=thumb_url,
            variants=variants, sales_count=int(self._sales[at]), sort_order=int(self._sort_orders[at]),
        )

    def __iter__(self) -> Iterator[int]:
        changed = self._changed
        for product_id in self._ids.tolist():
            if changed.get(product_id, _NOT_CHANGED) is not None:
                yield product_id
        for product_id, product in changed.items():
            if product is not None and self._position(product_id) is None:
                yield product_id

    def __len__(self) -> int:
        return self._size

    def __setitem__(self, product_id: int, product: ProductInfo) -> None:
        if product_id not in self:
            self._size += 1
        self._changed[product_id] = product
        self._made.pop(product_id, None)

    def __delitem__(self, product_id: int) -> None:
        if product_id not in self:
            raise KeyError(product_id)
        self._size -= 1
        self._changed[product_id] = None
        self._made.pop(product_id, None)

    def large_parts(self) -> tuple[dict[Any, Any], ...]:
        return (self._changed, self._made)

    # ---- what the snapshot derives from all products, from the columns ---------------------

    def best_sellers(self, limit: int) -> list[int]:
        """Product ids by `_hot_key` (best sellers first): the build's order, with the
        products changed since merged in."""
        changed = self._changed
        edited = sorted(_hot_key(product) for product in changed.values() if product is not None)

        def built() -> Iterator[tuple[int, int, int]]:
            for at in range(0, len(self._hot_order), 256):
                part = self._hot_order[at : at + 256]
                for sales, sort_order, product_id in zip(
                    self._sales[part].tolist(), self._sort_orders[part].tolist(), self._ids[part].tolist(), strict=True
                ):
                    if product_id not in changed:
                        yield -sales, sort_order, product_id

        return [product_id for _, _, product_id in islice(merge(built(), edited), limit)]

    def by_category(self) -> dict[int, tuple[int, ...]]:
        """The ids of the products of each category that has any, by (sort_order, id)."""
        order = self._category_order
        categories = self._categories[order]
        ids = self._ids[order]
        cuts = [0, *(np.flatnonzero(np.diff(categories)) + 1).tolist(), len(order)]
        changed = self._changed
        edited: dict[int, list[tuple[int, int]]] = {}
        for product in changed.values():
            if product is not None:
                edited.setdefault(product.category_id, []).append((product.sort_order, product.id))
        listed: dict[int, tuple[int, ...]] = {}
        for start, stop in pairwise(cuts):
            if start == stop:
                continue
            category_id = int(categories[start])
            keys: Iterable[tuple[int, int]] = zip(
                self._sort_orders[order[start:stop]].tolist(), ids[start:stop].tolist(), strict=True
            )
            if changed:
                keys = [key for key in keys if key[1] not in changed]
            more = edited.pop(category_id, None)
            found = tuple(product_id for _, product_id in (merge(keys, sorted(more)) if more else keys))
            if found:
                listed[category_id] = found
        for category_id, more in edited.items():  # categories only edited products are in
            listed[category_id] = tuple(product_id for _, product_id in sorted(more))
        return listed


_NOT_CHANGED = object()
MADE_KEPT = 4096
"""`ProductInfo` made from a `ProductTable`'s columns kept for the next ask."""


class _Hits:
    """An answer as the snapshot's cache keeps it: product ids and scores in two arrays, 16
    bytes a hit. As `SearchHit` objects in tuples, a full cache (4096 answers of up to 50
    hits) held about 10 MiB at 100k products; the hits are made again when an answer is
    asked for (a few microseconds)."""

    __slots__ = ("_ids", "_scores")

    def __init__(self, hits: Iterable[SearchHit]) -> None:
        self._ids, self._scores = array("q"), array("d")
        for hit in hits:
            self._ids.append(hit.product_id)
            self._scores.append(hit.score)

    def hits(self) -> list[SearchHit]:
        return [SearchHit(product_id, score) for product_id, score in zip(self._ids, self._scores, strict=True)]


Lookup = Callable[[str, int], _Hits]  # (query, limit) -> hits, maybe cached


class CatalogSnapshot:
    """Everything on sale in one worker's memory, with its search index.

    Built whole (`building`: a slice at a time between searches, see `Catalog`), then
    changed one product at a time by `apply` on the event loop: the index, the categories'
    product lists and the best sellers are kept sorted in place, so a change costs about a
    millisecond whatever the catalog's size. Search answers are cached until the next change.
    """

    def __init__(
        self,
        products: Iterable[ProductInfo],
        categories: Iterable[CategoryInfo],
        *,
        query_cache_size: int = 4096,
        lexicon: Lexicon = NO_LEXICON,
    ) -> None:
        finish(self._filling(products, categories, query_cache_size=query_cache_size, lexicon=lexicon))

    @classmethod
    def building(
        cls, products: Iterable[ProductInfo], categories: Iterable[CategoryInfo], *, query_cache_size: int,
        lexicon: Lexicon, prepared: _Prepared | None = None,
    ) -> Steps[CatalogSnapshot]:
        """The constructor as resumable work (`commerce.catalog.search.Steps`); with the index
        and the word counts `prepared` by a build in another process, only the rest is made."""
        snapshot = cls.__new__(cls)
        yield from snapshot._filling(
            products, categories, query_cache_size=query_cache_size, lexicon=lexicon, prepared=prepared
        )
        return snapshot

    def _filling(
        self, products: Iterable[ProductInfo], categories: Iterable[CategoryInfo], *, query_cache_size: int,
        lexicon: Lexicon, prepared: _Prepared | None = None,
    ) -> Steps[None]:
        listed = list(products)
        # the file its arrays are mapped from, when built in another process (None: built here, in this process's heap)
        self.mapping: mmap.mmap | None = None
        if prepared is None:
            self.products = yield from ProductTable.building(listed)
        else:
            self.products = prepared.products
        self._categories = {c.id: c for c in categories}
        self._base_lexicon = lexicon
        # how often the catalog says each word of the built-in everyday names: an
        # everyday name applies where the catalog uses what it means
        if prepared is None:
            self._words = yield from _counting_words(listed, self._categories.values())
        else:
            self._words = prepared.words
        self._derived: dict[str, Any] = {}
        if prepared is None:
            docs = yield from _listing(listed, ProductInfo.search_doc)
            del listed
            self.index = yield from SearchIndex.building(docs)
        else:
            self.index = prepared.index
        # no reference back to the snapshot: a retired one is freed by reference counting
        self._search, self._suggest = _lookups(self.index, self.products)
        self._caches: tuple[Any, ...] = ()
        if query_cache_size > 0:
            cache = functools.lru_cache(maxsize=query_cache_size)
            self._search, self._suggest = cache(self._search), cache(self._suggest)
            self._caches = (self._search, self._suggest)

    # ---- derived views (after a change, made again on first use) ---------------------

    @property
    def lexicon(self) -> Lexicon:
        """The shop's synonyms and the built-in everyday names (applied to every search), staff answers."""
        found = self._derived.get("lexicon")
        if found is None:
            words = self._words
            found = self._derived["lexicon"] = self._base_lexicon.with_everyday_names_used(lambda w: words[w] > 0)
        return found

    @property
    def categories(self) -> tuple[CategoryView, ...]:
        """Categories that have products on sale, in their order, each with its products in theirs."""
        found = self._derived.get("categories")
        if found is None:
            listed = self.products.by_category()
            found = self._derived["categories"] = tuple(
                CategoryView(
                    id=c.id, name=c.name, name_en=c.name_en,
                    product_ids=listed[c.id],
                )
                for c in sorted(self._categories.values(), key=lambda c: (c.sort_order, c.id))
                if c.id in listed
            )
        return found

    def category(self, category_id: int) -> CategoryView | None:
        return next((c for c in self.categories if c.id == category_id), None)

    def knows_category(self, category_id: int) -> bool:
        return category_id in self._categories

    def best_sellers(self, limit: int) -> tuple[int, ...]:
        """Product ids, best sellers first (sales as of the last full build)."""
        return tuple(self.products.best_sellers(limit))

    # ---- search ------------------------------------------------------------------------

    def search(self, query: str, *, limit: int = 50) -> list[SearchHit]:
        return self._search(self.lexicon.rewrite(query)[:MAX_CACHED_QUERY], limit).hits()

    def suggest(self, query: str, *, limit: int = 3) -> list[SearchHit]:
        return self._suggest(self.lexicon.rewrite(query)[:MAX_CACHED_QUERY], limit).hits()

    # ---- changes -----------------------------------------------------------------------

    def apply(self, *, current: Iterable[ProductInfo] = (), gone: Iterable[int] = ()) -> None:
        """Products as they are now (on sale: in, replacing their old version) and products
        no longer on sale (out). About a millisecond a product, whatever the catalog's size."""
        for product in current:
            self._drop(product.id)
            self.products[product.id] = product
            self._words.update(_used_words(_product_text(product)))
            self.index.add(product.search_doc())
        for product_id in gone:
            self._drop(product_id)
            self.index.remove(product_id)
        self._changed()

    def set_lexicon(self, lexicon: Lexicon) -> None:
        """The shop's own words changed (synonyms, staff answers)."""
        self._base_lexicon = lexicon
        self._changed()

    def _drop(self, product_id: int) -> None:
        old = self.products.pop(product_id, None)
        if old is None:
            return
        self._words.subtract(_used_words(_product_text(old)))

    def _changed(self) -> None:
        self._derived.clear()
        for cache in self._caches:
            cache.cache_clear()


def _lookups(index: SearchIndex, products: ProductTable) -> tuple[Lookup, Lookup]:
    """search and suggest over the index, products on sale only. Shoppers ask for the same
    few things over and over ("苹果", "茶"): the snapshot caches these until the next change."""

    def search(query: str, limit: int) -> _Hits:
        return _Hits(h for h in index.search(query, limit=limit) if h.product_id in products)

    def suggest(query: str, limit: int) -> _Hits:
        return _Hits(h for h in index.suggest(query, limit=limit) if h.product_id in products)

    return search, suggest


async def dismantle(snapshot: CatalogSnapshot) -> None:
    """Free a retired snapshot a few thousand objects at a time, the event loop running in
    between: freeing 100k products and their index at once would hold it for a long while."""
    for container in (
        *snapshot.products.large_parts(), *snapshot.index.large_parts()
    ):
        while container:
            if isinstance(container, list):
                del container[-FREE_CHUNK:]
            elif isinstance(container, dict):
                for _ in range(min(FREE_CHUNK, len(container))):
                    container.popitem()
            else:
                for _ in range(min(FREE_CHUNK, len(container))):
                    container.pop()
            await asyncio.sleep(0)
    snapshot._changed()


def _hot_key(product: ProductInfo) -> tuple[int, int, int]:
    return (-product.sales_count, product.sort_order, product.id)


def _product_text(product: ProductInfo) -> str:
    return shop_lexicon.key(f"{product.name} {product.subtitle} {' '.join(product.tags)}")


def _listing(items: Iterable[Any], make: Callable[[Any], T]) -> Steps[list[T]]:
    """`[make(item) for item in items]`, resumable."""
    made: list[T] = []
    for count, item in enumerate(items):
        made.append(make(item))
        if count % 256 == 0:
            yield
    return made


def _counting_words(products: Iterable[ProductInfo], categories: Iterable[CategoryInfo]) -> Steps[Counter[str]]:
    """How often the products' and categories' texts say each word of the built-in everyday names."""
    texts = yield from _listing(products, _product_text)
    texts += [shop_lexicon.key(f"{c.name} {c.name_en}") for c in categories]
    return (yield from _word_counts(texts))


def _word_counts(texts: list[str]) -> Steps[Counter[str]]:
    """How often the texts say each everyday word, counted over a hundred texts joined at a
    time (no word holds a newline, so occurrences are the texts' own): resumable between
    chunks."""
    counts: Counter[str] = Counter()
    words = shop_lexicon.everyday_words()
    for start in range(0, len(texts), 100):
        joined = "\n".join(texts[start : start + 100])
        for word in words:
            found = joined.count(word)
            if found:
                counts[word] += found
        yield
    return counts


def _used_words(text: str) -> Counter[str]:
    """How often one product's text says each everyday word."""
    return Counter({word: text.count(word) for word in shop_lexicon.everyday_words() if word in text})


class _Stamps:
    """Products' `updated_at` as last applied, by product id (`Catalog._recent`): what a
    `dict[int, datetime]` holds, in arrays. A full build keeps the stamp of every product
    written within `REFRESH_OVERLAP` of the newest, which after an import is the whole
    catalog: 100k entries took 12 MiB as a dict (twice at a rebuild's swap). Here the ids are
    a sorted array beside their stamps in microseconds since the epoch (16 bytes a product);
    what is applied since (`update`) goes to a small dict read first. A stamp is given back
    as the same moment, with the time zone the build's stamps had (or none, as SQLite's)."""

    __slots__ = ("_ids", "_micros", "_zone", "_changed")

    def __init__(self, pairs: Iterable[tuple[int, datetime]] = ()) -> None:
        finish(self._filling(pairs))

    @classmethod
    def building(cls, pairs: Iterable[tuple[int, datetime]]) -> Steps[_Stamps]:
        stamps = cls.__new__(cls)
        yield from stamps._filling(pairs)
        return stamps

    def _filling(self, pairs: Iterable[tuple[int, datetime]]) -> Steps[None]:
        latest: dict[int, datetime] = {}
        for count, (product_id, stamp) in enumerate(pairs):
            latest[product_id] = stamp
            if count % 2048 == 0:
                yield
        self._zone = next((stamp.tzinfo for stamp in latest.values()), None)
        self._changed: dict[int, datetime] = {}
        ids, micros = array("q"), array("q")
        for count, product_id in enumerate(sorted(latest)):
            stamp = latest[product_id]
            if (stamp.tzinfo is None) != (self._zone is None):  # another kind: kept as it is
                self._changed[product_id] = stamp
            else:
                ids.append(product_id)
                micros.append(self._micros_of(stamp))
            if count % 2048 == 0:
                yield
        self._ids = np.array(ids, dtype=np.int64)
        self._micros = np.array(micros, dtype=np.int64)

    def _epoch(self) -> datetime:
        return datetime(1970, 1, 1, tzinfo=self._zone)

    def _micros_of(self, stamp: datetime) -> int:
        return (stamp - self._epoch()) // _MICROSECOND  # naive and aware do not mix: TypeError, as comparing them

    def _stamp(self, micros: int) -> datetime:
        return self._epoch() + timedelta(microseconds=micros)

    def packed(self) -> tuple[NDArray[np.int64], NDArray[np.int64], Any, dict[int, datetime]]:
        """To cross from another process."""
        return self._ids, self._micros, self._zone, self._changed

    @classmethod
    def unpacking(cls, packed: tuple[NDArray[np.int64], NDArray[np.int64], Any, dict[int, datetime]]) -> _Stamps:
        stamps = cls.__new__(cls)
        stamps._ids, stamps._micros, stamps._zone, stamps._changed = packed
        return stamps

    def _position(self, product_id: int) -> int | None:
        at = int(np.searchsorted(self._ids, product_id))
        return at if at < len(self._ids) and self._ids[at] == product_id else None

    def get(self, product_id: int) -> datetime | None:
        found = self._changed.get(product_id)
        if found is not None:
            return found
        at = self._position(product_id)
        return None if at is None else self._stamp(int(self._micros[at]))

    def update(self, stamps: dict[int, datetime]) -> None:
        self._changed.update(stamps)

    def items(self) -> Iterator[tuple[int, datetime]]:
        changed = self._changed
        for product_id, micros in zip(self._ids.tolist(), self._micros.tolist(), strict=True):
            if product_id not in changed:
                yield product_id, self._stamp(micros)
        yield from changed.items()

    def __len__(self) -> int:
        return len(self._ids) + sum(1 for product_id in self._changed if self._position(product_id) is None)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Stamps):
            return NotImplemented
        return dict(self.items()) == dict(other.items())

    __hash__ = None  # type: ignore[assignment]

    def newer_than(self, floor: datetime) -> _Stamps:
        """Only the stamps after `floor` (`Catalog._forget_old_stamps`)."""
        stamps = _Stamps.__new__(_Stamps)
        stamps._zone = self._zone
        stamps._ids, stamps._micros = self._ids, self._micros
        if len(self._ids):
            keep = self._micros > self._micros_of(floor)
            if self._changed:  # what was applied since replaces the build's stamp, whichever is forgotten
                keep &= ~np.isin(self._ids, np.fromiter(self._changed, dtype=np.int64))
            if not keep.all():
                stamps._ids, stamps._micros = self._ids[keep], self._micros[keep]
        stamps._changed = {pid: stamp for pid, stamp in self._changed.items() if stamp > floor}
        return stamps


_MICROSECOND = timedelta(microseconds=1)


# ---- reading rows (SQLAlchemy Core) ---------------------------------------------------


AnySelect = Select[*tuple[Any, ...]]
Fetch = Callable[[AnySelect], Awaitable[list[Row[Any]]]]


@dataclass(slots=True)
class _Read:
    """What one read of product rows found."""

    current: list[ProductInfo] = field(default_factory=list)  # on sale, as they are now
    gone: list[int] = field(default_factory=list)  # asked for, and not on sale (or deleted)
    stamps: dict[int, datetime] = field(default_factory=dict)  # product id -> updated_at


@dataclass(frozen=True, slots=True)
class _Rows:
    """The rows of one read of products, before they are assembled (`_assemble`)."""

    products: list[Row[Any]]
    variants: list[Row[Any]]
    images: list[Row[Any]]
    tags: list[Row[Any]]
    ids: Collection[int] | None

    def freeing(self) -> Steps[None]:
        for rows in (self.products, self.variants, self.images, self.tags):
            yield from _freeing(rows)


def _freeing(items: list[Any]) -> Steps[None]:
    """Empty a long list a piece at a time (see `FREE_CHUNK`)."""
    while items:
        del items[-FREE_CHUNK:]
        yield


async def _fetch_products(fetch: Fetch, *, ids: Collection[int] | None = None) -> _Rows:
    """The rows of products on sale (all), or of `ids` (whatever their status)."""
    on_sale = Product.status == ProductStatus.ON_SALE.value
    products = select(
        Product.id, Product.category_id, Product.name, Product.subtitle, Product.sort_order,
        Product.sales_count, Product.updated_at, Product.status,
    )
    variants = select(Variant.product_id, Variant.id, Variant.spec, Variant.price_fen)
    images = select(ProductImage.product_id, ProductImage.url, ProductImage.thumb_url)
    tags = select(product_tags.c.product_id, Tag.name).join(Tag, Tag.id == product_tags.c.tag_id)
    if ids is None:
        products = products.where(on_sale)
        variants = variants.join(Product, Product.id == Variant.product_id).where(on_sale)
    else:
        wanted = sorted(ids)
        products = products.where(Product.id.in_(wanted))
        variants = variants.where(Variant.product_id.in_(wanted))
        images = images.where(ProductImage.product_id.in_(wanted))
        tags = tags.where(product_tags.c.product_id.in_(wanted))
    return _Rows(
        products=await fetch(products),
        variants=await fetch(variants.order_by(Variant.id)),
        images=await fetch(images.order_by(ProductImage.product_id, ProductImage.position.desc(), ProductImage.id.desc())),
        tags=await fetch(tags.order_by(product_tags.c.product_id, Tag.name)),
        ids=ids,
    )


NO_PICTURE = ("", "")


def _shared(shared: dict[Any, Any], value: Any) -> Any:
    return shared.setdefault(value, value)


def _assembling(rows: _Rows, categories: dict[int, CategoryInfo]) -> Steps[_Read]:
    """`ProductInfo` of the products on sale; the ids asked for that are not on sale are `gone`.
    Pure CPU work, resumable (a full load runs it between searches); frees the rows as it goes."""
    # labels, tag names and tag sets repeat across the catalog: each is kept once
    shared: dict[Any, Any] = {}
    by_product: dict[int, list[VariantInfo]] = {}
    for count, row in enumerate(rows.variants):
        if count % 256 == 0:
            yield
        label = " / ".join(str(v) for v in (row.spec or {}).values())
        by_product.setdefault(row.product_id, []).append(
            VariantInfo(id=row.id, label=shared.setdefault(label, label), price_fen=row.price_fen)
        )
    yield from _freeing(rows.variants)  # each kind of row once read: a full build holds 800k rows at 100k products
    first_image: dict[int, tuple[str, str]] = {}  # product id -> (picture, card's picture)
    for count, row in enumerate(rows.images):
        if count % 512 == 0:
            yield
        first_image[row.product_id] = (row.url, row.thumb_url or row.url)  # the last one written is the first in position
    yield from _freeing(rows.images)
    tag_names: dict[int, list[str]] = {}
    for count, row in enumerate(rows.tags):
        if count % 512 == 0:
            yield
        tag_names.setdefault(row.product_id, []).append(shared.setdefault(row.name, row.name))
    yield from _freeing(rows.tags)
    read = _Read()
    for count, row in enumerate(rows.products):
        if count % 256 == 0:
            yield
        read.stamps[row.id] = row.updated_at
        category = categories.get(row.category_id)
        if row.status != ProductStatus.ON_SALE.value or category is None:
            read.gone.append(row.id)
            continue
        picture = first_image.get(row.id, NO_PICTURE)
        read.current.append(
            ProductInfo(
                id=row.id, name=row.name, subtitle=row.subtitle, category_id=row.category_id,
                category=category.name, category_en=category.name_en, tags=_shared(shared, tuple(tag_names.get(row.id, ()))),
                image_url=picture[0], thumb_url=picture[1], variants=tuple(by_product.get(row.id, ())),
                sales_count=row.sales_count, sort_order=row.sort_order,
            )
        )
    if rows.ids is not None:
        read.gone.extend(set(rows.ids) - read.stamps.keys())  # deleted
    for looked_up in (by_product, first_image, tag_names):  # a piece at a time (see `FREE_CHUNK`)
        while looked_up:
            for _ in range(min(FREE_CHUNK, len(looked_up))):
                looked_up.popitem()
            yield
    yield from rows.freeing()
    return read


async def _read_products(fetch: Fetch, categories: dict[int, CategoryInfo], *, ids: Collection[int]) -> _Read:
    """A few products, as they are now (`_fetch_products`, then `_assemble`)."""
    return finish(_assembling(await _fetch_products(fetch, ids=ids), categories))


async def _read_categories(fetch: Fetch) -> dict[int, CategoryInfo]:
    rows = await fetch(select(Category.id, Category.name, Category.name_en, Category.sort_order))
    return {r.id: CategoryInfo(id=r.id, name=r.name, name_en=r.name_en or "", sort_order=r.sort_order) for r in rows}


def _fetch_in(session: AsyncSession) -> Fetch:
    """Small reads: all rows at once."""

    async def fetch(statement: AnySelect) -> list[Row[Any]]:
        return list((await session.execute(statement)).all())

    return fetch


def _stream_in(session: AsyncSession) -> Fetch:
    """Large reads: rows in partitions, the event loop free between them."""

    async def fetch(statement: AnySelect) -> list[Row[Any]]:
        rows: list[Row[Any]] = []
        result = await session.stream(statement.execution_options(yield_per=PARTITION_ROWS))
        async for partition in result.partitions(PARTITION_ROWS):
            rows.extend(partition)
            await asyncio.sleep(0)
        return rows

    return fetch


async def stamp_products(session: AsyncSession, product_ids: Collection[int]) -> None:
    """Mark products changed now (`updated_at`), for the workers that poll for edits."""
    ids = sorted(set(product_ids))
    now = utcnow()
    for start in range(0, len(ids), 500):
        await session.execute(
            update(Product)
            .where(Product.id.in_(ids[start : start + 500]))
            .values(updated_at=now)
            .execution_options(synchronize_session=False)
        )


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No garbage collection while a large catalog is read and built; then everything alive,
    the new catalog included, frozen out of future collections (see `Catalog._build`)."""
    collecting = gc.isenabled()
    # Garbage made since the last freeze goes first (quick: all that was alive then is frozen):
    # garbage in reference cycles made during the build is frozen with the catalog and never
    # freed, so the fewer seconds it has to pile up, the better; a build is a few seconds
    # every `rebuild_seconds`.
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()  # before collections resume: a collection of all that was just made is the stall avoided
        if collecting:
            gc.enable()


def _libc_malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


_malloc_trim = _libc_malloc_trim() if sys.platform == "linux" else None


def _trim_heap() -> None:
    """Give the C heap's free pages back to the system once a retired catalog is freed (glibc).

    After the large arrays of one catalog are freed, glibc raises its threshold for
    mapping large blocks on their own, and the next catalog's arrays come from the heap,
    where freed memory stays with the process: RSS grew by a catalog at every rebuild.
    Run in a thread: the call releases the interpreter."""
    if _malloc_trim is not None:
        _malloc_trim(0)


async def _between_searches(steps: Steps[T]) -> T:
    """Run resumable work on the event loop, `BUILD_SLICE_SECONDS` at a time, other work (the
    searches) running in between: no thread holds the interpreter while the loop waits for it."""
    deadline = time.perf_counter() + BUILD_SLICE_SECONDS
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value
        if time.perf_counter() >= deadline:
            # A short sleep, not sleep(0): after sleep(0) the next slice was queued ahead of
            # the timers and the replies that came due during this one, so they waited two or
            # three slices (up to 24 ms of the loop's CPU between two 5 ms ticks of the probe).
            await asyncio.sleep(BUILD_PAUSE_SECONDS)
            deadline = time.perf_counter() + BUILD_SLICE_SECONDS


# ---- a full build in another process -------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Prepared:
    """What a build in another process made that the snapshot would otherwise make itself."""

    index: SearchIndex
    products: ProductTable
    words: Counter[str]


@dataclass(slots=True)
class _Whole:
    """Everything one full read found: what a snapshot is built from."""

    watermark: datetime | None
    categories: dict[int, CategoryInfo]
    rows: _Rows
    lexicon: Lexicon
    stamped: list[Row[Any]]


async def _read_whole(sessions: async_sessionmaker[AsyncSession], fetching: Callable[[AsyncSession], Fetch]) -> _Whole:
    """Every product on sale (Core rows), the categories, the shop's words and the stamps."""
    async with sessions() as session:
        watermark = await session.scalar(select(func.max(Product.updated_at)))
        fetch = fetching(session)
        categories = await _read_categories(fetch)
        rows = await _fetch_products(fetch)
        words = await shop_lexicon.load(session)
        stamped: list[Row[Any]] = []
        if watermark is not None:  # every product stamped within the overlap, off sale ones too
            stamped = await fetch(
                select(Product.id, Product.updated_at).where(Product.updated_at > watermark - REFRESH_OVERLAP)
            )
    return _Whole(watermark, categories, rows, words, stamped)


def _build_in_child(url: str, path: str, sending: Connection) -> None:
    """The far end of `_building_elsewhere`, in a process of its own (spawned: nothing of the
    worker's state comes along): read the catalog from the database, build it whole, write its
    arrays into the file at `path` and send the rest back in pieces, each small enough to be
    taken in without holding the worker's loop."""
    with contextlib.suppress(OSError, AttributeError):  # background work: the worker's turns come first
        os.nice(BUILD_NICENESS)
    try:
        asyncio.run(_child_build(url, path, sending))
    except BaseException as exc:  # told, rather than a silent end of the pipe
        with contextlib.suppress(OSError):
            sending.send_bytes(pickle.dumps(("failed", f"{type(exc).__name__}: {exc}")))
        raise
    finally:
        sending.close()


async def _child_build(url: str, path: str, sending: Connection) -> None:
    engine = create_engine(url)
    try:
        whole = await _read_whole(async_sessionmaker(engine, expire_on_commit=False), _fetch_in)
    finally:
        await engine.dispose()
    read = finish(_assembling(whole.rows, whole.categories))
    words = finish(_counting_words(read.current, whole.categories.values()))
    index = SearchIndex(product.search_doc() for product in read.current)
    products = ProductTable(read.current)
    del read

    def send(*message: Any) -> None:
        sending.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))

    send("meta", whole.watermark, whole.categories, whole.lexicon, words)
    send("stamps", _Stamps((row.id, row.updated_at) for row in whole.stamped).packed())
    buffers: list[pickle.PickleBuffer] = []
    packed = pickle.dumps((index.packed(), products.packed()), protocol=5, buffer_callback=buffers.append)
    send("arrays", packed, _writing_arrays(path, [buffer.raw() for buffer in buffers]))
    import resource  # Unix only, as the subprocess build is

    send("done", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # its peak, MiB (Linux: KiB)


def _writing_arrays(path: str, raws: Sequence[memoryview]) -> list[tuple[int, int]]:
    """The arrays' bytes, as they are, one after another in the file the worker made (each at
    a multiple of `ARRAY_ALIGNMENT`): each one's (offset, size)."""
    spans: list[tuple[int, int]] = []
    with open(path, "wb") as file:
        at = 0
        for raw in raws:
            padding = -at % ARRAY_ALIGNMENT
            file.write(bytes(padding))
            at += padding
            spans.append((at, raw.nbytes))
            file.write(raw)
            at += raw.nbytes
        if not at:
            file.write(b"\0")  # an empty file cannot be mapped
    return spans


def _mapping_arrays(path: str, spans: Sequence[tuple[int, int]]) -> tuple[mmap.mmap, list[memoryview]]:
    """The file of `_writing_arrays` mapped read-only, and a view of each array in it. The
    file is unlinked at once: its pages live as long as the mapping, which lives as long as
    a view of it (an array of the catalog), and nothing is left behind."""
    try:
        with open(path, "rb") as file:
            mapping = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    whole = memoryview(mapping)
    return mapping, [whole[offset : offset + size] for offset, size in spans]


async def _building_elsewhere(
    url: str, *, query_cache_size: int
) -> tuple[CatalogSnapshot, datetime | None, _Stamps, float]:
    """A full build in another process (`_build_in_child`), taken in here a piece at a time:
    the event loop only unpickles parcels of a few hundred products, maps the file the arrays
    were written to, then makes the snapshot's small parts between searches.

    The arrays are not copied into this process: they stay in the pages of that file, mapped
    read-only (`_mapping_arrays`), which are read in from the page cache as searches touch
    them. So taking a new catalog in while the old one still serves does not need room for
    both (the worker's peak was the old catalog plus the new one); the file's pages are
    shared, clean once written back, and can be given back by the kernel under pressure."""
    context = multiprocessing.get_context("spawn")
    receiving, sending = context.Pipe(duplex=False)
    descriptor, path = tempfile.mkstemp(prefix="storefront-catalog-", suffix=".arrays")
    os.close(descriptor)
    process = context.Process(target=_build_in_child, args=(url, path, sending), daemon=True, name="catalog-build")

    async def receive() -> Any:
        message = pickle.loads(await asyncio.to_thread(receiving.recv_bytes))
        if message[0] == "failed":
            raise RuntimeError(f"the catalog build in a subprocess failed: {message[1]}")
        return message

    try:
        await asyncio.to_thread(process.start)
    except BaseException:
        os.unlink(path)
        raise
    sending.close()
    received = False
    try:
        _, watermark, categories, lexicon, words = await receive()
        _, stamps = await receive()
        recent = _Stamps.unpacking(stamps)
        _, packed, spans = await receive()
        mapping, buffers = _mapping_arrays(path, spans)
        done = await receive()
        if done[0] != "done":
            raise RuntimeError("the catalog build in a subprocess sent something unexpected")
        peak_mib: float = done[1]
        received = True
    finally:
        # Cancelled (the catalog closing) or failed: the subprocess is stopped at once. Its
        # end of the pipe closes with it, which ends a read still waiting in a thread; only
        # then is this end closed (closed under a waiting read, its number could be reused).
        if not received:
            process.kill()
        await asyncio.shield(asyncio.to_thread(process.join, CLOSE_WAIT_SECONDS))
        if process.is_alive():
            process.kill()
            await asyncio.shield(asyncio.to_thread(process.join, CLOSE_WAIT_SECONDS))
        receiving.close()
        with contextlib.suppress(OSError):  # unlinked once mapped; not left behind otherwise
            os.unlink(path)

    def taking_in() -> Steps[CatalogSnapshot]:
        packed_index, packed_products = pickle.loads(packed, buffers=buffers)
        index = yield from SearchIndex.unpacking(packed_index)
        products = ProductTable.unpacking(packed_products)
        return (yield from CatalogSnapshot.building(
            (), categories.values(), query_cache_size=query_cache_size, lexicon=lexicon,
            prepared=_Prepared(index=index, products=products, words=words),
        ))

    snapshot = await _between_searches(taking_in())
    snapshot.mapping = mapping
    return snapshot, watermark, recent, peak_mib


def database_url_for_child(engine: AsyncEngine) -> str | None:
    """The URL another process opens the same database by; None for an in-memory SQLite one."""
    url = engine.url
    if url.get_backend_name() == "sqlite" and (
        url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"
    ):
        return None
    return url.render_as_string(hide_password=False)


# ---- the catalog of one worker --------------------------------------------------------


@dataclass(slots=True)
class _Pending:
    """What one transaction changed, read inside it, applied after its commit."""

    read: _Read | None = None
    ids: set[int] = field(default_factory=set)
    bulk: bool = False
    lexicon: Lexicon | None = None


class Catalog:
    """One worker's catalog: the snapshot in memory, kept up to date (see the module docstring)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        refresh_seconds: float = 2.0,
        rebuild_seconds: float = 900.0,
        query_cache_size: int = 4096,
        clock: Callable[[], float] = time.monotonic,
        build_elsewhere: bool = True,
    ) -> None:
        self._sessions = sessions
        # the cheap ways to run a short read (`_read`), from the engine the sessions use
        bind = sessions.kw.get("bind")
        engine = bind if isinstance(bind, AsyncEngine) else None
        self._blocking: Engine | None = blocking_sqlite_engine_for(engine) if engine is not None else None
        self._autocommit: AsyncEngine | None = (
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if engine is not None and engine.dialect.name == "postgresql" else None
        )
        # a large catalog is built in another process, which opens the database by its URL
        self._url = database_url_for_child(engine) if engine is not None and build_elsewhere else None
        self._refresh_seconds = refresh_seconds
        self._rebuild_seconds = rebuild_seconds
        self._query_cache_size = query_cache_size
        self._clock = clock
        self._snapshot: CatalogSnapshot | None = None
        self._first_load = asyncio.Lock()
        self._watermark: datetime | None = None
        self._recent = _Stamps()  # stamps applied within the overlap
        self._rebuilding: asyncio.Task[None] | None = None
        self._dirty: set[int] = set()  # changed while a rebuild was reading
        self._built_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._retired: list[CatalogSnapshot] = []
        self.builds = 0  # full builds so far (the first load included)
        self.build_peak_mib: float | None = None  # the peak RSS of the last build's subprocess

    # ---- reading ---------------------------------------------------------------------

    async def snapshot(self) -> CatalogSnapshot:
        """The catalog in memory; only the very first call waits (for the first load)."""
        snap = self._snapshot
        if snap is not None:
            return snap
        async with self._first_load:
            if self._snapshot is None:
                built = await self._build()
                await self._read_dirty(built)  # before anyone is handed it
                self._install(built)
                del built
                await asyncio.to_thread(_trim_heap)  # what the build left behind
            assert self._snapshot is not None
            return self._snapshot

    async def stock(self, product_ids: Collection[int]) -> dict[int, tuple[VariantView, ...]]:
        """The variants of these products as they are now (stock, price, spec): one indexed
        query, for the few products of the page shown. A product with no variants is absent."""
        if not product_ids:
            return {}
        found: dict[int, list[VariantView]] = {}
        statement = (
            select(Variant.product_id, Variant.id, Variant.sku_code, Variant.spec, Variant.price_fen, Variant.stock)
            .where(Variant.product_id.in_(sorted(set(product_ids))))
            .order_by(Variant.id)
        )
        for row in await self._read(statement):
            found.setdefault(row.product_id, []).append(
                VariantView(id=row.id, sku_code=row.sku_code, spec=dict(row.spec or {}),
                            price_fen=row.price_fen, stock=row.stock)
            )
        return {pid: tuple(variants) for pid, variants in found.items()}

    async def _read(self, statement: AnySelect) -> Sequence[Any]:
        """One short SELECT of what a page or a card shows, read the cheapest way:
        - on a SQLite file, at once on the event loop over a connection that never waits
          (WAL: readers do not wait for writers): aiosqlite hands every statement, fetch and
          transaction end to a thread, which measured more than the read itself; when SQLite
          says busy, the usual way;
        - on PostgreSQL, outside a transaction (autocommit): no BEGIN and no COMMIT, two
          round trips of three, for one statement that sees committed rows either way."""
        if self._blocking is not None:
            try:
                return run_nonblocking_sqlite(self._blocking, lambda conn: conn.execute(statement).all())
            except SqliteBusy:
                pass
        if self._autocommit is not None:
            async with self._autocommit.connect() as conn:
                return (await conn.execute(statement)).all()
        async with self._sessions() as session:
            return (await session.execute(statement)).all()

    async def product(self, product_id: int) -> ProductView | None:
        """One product on sale, read fresh (current stock); None if missing or off sale.

        One query (the product's row and its variants) when this worker's catalog knows
        the product: its picture, tags and category come from memory (at most one refresh
        behind another worker's edit); a card or an add to cart is a turn of its own, and
        five round trips each (a product and four relations) were a large share of it."""
        snap = self._snapshot
        known = snap.products.get(product_id) if snap is not None else None
        if known is None:  # not in this worker's memory (yet): read it whole
            return await self._read_whole(product_id)
        rows = await self._read(
            select(Product.name, Product.subtitle, Product.description, Product.sales_count, Product.sort_order,
                   Variant.id, Variant.sku_code, Variant.spec, Variant.price_fen, Variant.stock)
            .outerjoin(Variant, Variant.product_id == Product.id)
            .where(Product.id == product_id, Product.status == ProductStatus.ON_SALE.value)
            .order_by(Variant.id)
        )
        if not rows:  # off sale or gone since memory saw it
            return None
        first = rows[0]
        return ProductView(
            id=product_id, name=first.name, subtitle=first.subtitle, description=first.description,
            category_id=known.category_id, category=known.category, category_en=known.category_en,
            tags=known.tags, image_url=known.image_url, thumb_url=known.thumb_url,
            variants=tuple(
                VariantView(id=row.id, sku_code=row.sku_code, spec=dict(row.spec or {}), price_fen=row.price_fen,
                            stock=row.stock)
                for row in rows if row.id is not None
            ),
            sales_count=first.sales_count, sort_order=first.sort_order,
        )

    async def _read_whole(self, product_id: int) -> ProductView | None:
        async with self._sessions() as session:
            product = await session.scalar(
                _product_query().where(Product.id == product_id, Product.status == ProductStatus.ON_SALE.value)
            )
            return _product_view(product) if product is not None else None

    # ---- staff edits in this worker ------------------------------------------------------

    async def read_in_transaction(
        self, session: AsyncSession, *, product_ids: Sequence[int] = (), words: bool = False
    ) -> None:
        """Called inside the transaction of a catalog edit (`CatalogChanged`): reads what it
        changed (it sees its own writes) and applies it once the transaction commits; nothing
        when it rolls back. Many products at once are left to a background rebuild."""
        key = f"storefront.catalog.{id(self)}"
        pending: _Pending | None = session.info.get(key)
        if pending is None:
            pending = session.info[key] = _Pending()
            if not session.info.get(f"{key}.listening"):  # once per session, whatever its transactions
                session.info[f"{key}.listening"] = True
                self._apply_after_commit(session, key)
        if words:
            pending.lexicon = await shop_lexicon.load(session)
        if not product_ids:
            return
        pending.ids.update(product_ids)
        if pending.bulk or len(pending.ids) > BULK_PRODUCTS:
            pending.bulk, pending.read = True, None
            return
        # the categories as this transaction sees them: one it made (an import's), or all of them
        # while the first load is under way, so a product is never taken for one with no category
        fetch = _fetch_in(session)
        pending.read = await _read_products(fetch, await _read_categories(fetch), ids=pending.ids)

    def _apply_after_commit(self, session: AsyncSession, key: str) -> None:
        def committed(_session: object) -> None:
            pending: _Pending | None = session.info.pop(key, None)
            if pending is not None:
                self._apply_pending(pending)

        def rolled_back(_session: object) -> None:
            session.info.pop(key, None)

        event.listen(session.sync_session, "after_commit", committed)
        event.listen(session.sync_session, "after_rollback", rolled_back)

    def _apply_pending(self, pending: _Pending) -> None:
        snap = self._snapshot
        if snap is None:  # not loaded yet: the first load may have read its rows before this
            self._dirty.update(pending.ids)  # commit, so they are read again once it is done
            return
        if pending.lexicon is not None:
            snap.set_lexicon(pending.lexicon)
        if pending.bulk or (pending.read is not None and self._unknown_category(pending.read)):
            self.rebuild_soon()
            return
        if pending.read is not None:
            self._apply(snap, pending.read)
        if self._rebuilding is not None:
            self._dirty.update(pending.ids)

    async def _read_dirty(self, built: tuple[CatalogSnapshot, datetime | None, _Stamps]) -> None:
        """What changed while a build was reading its rows: read again and applied to the
        built catalog *before* it is installed, until nothing more changed meanwhile; so no
        search is ever handed a new catalog that lacks an edit the old one had (an import
        committed during the first load, a staff edit during a rebuild)."""
        snap, _watermark, stamps = built
        while self._dirty:
            dirty, self._dirty = self._dirty, set()
            async with self._sessions() as session:
                read = await _read_products(_fetch_in(session), snap._categories, ids=dirty)
            snap.apply(current=read.current, gone=read.gone)
            stamps.update(read.stamps)

    def _unknown_category(self, read: _Read) -> bool:
        snap = self._snapshot
        return snap is not None and any(not snap.knows_category(p.category_id) for p in read.current)

    def _apply(self, snap: CatalogSnapshot, read: _Read) -> None:
        snap.apply(current=read.current, gone=read.gone)
        self._recent.update(read.stamps)

    # ---- edits made elsewhere ------------------------------------------------------------

    async def refresh(self) -> int:
        """Apply what other workers (or scripts) changed since the watermark: one indexed
        query, then a read of the few products it names; how many products changed. Many
        at once (an import elsewhere): a background rebuild. Also re-reads the shop's words."""
        snap = self._snapshot
        if snap is None:
            return 0
        stamps = select(Product.id, Product.updated_at)
        if self._watermark is not None:  # None: no product had been written at the last build
            stamps = stamps.where(Product.updated_at > self._watermark - REFRESH_OVERLAP)
        async with self._sessions() as session:
            stamped = (await session.execute(stamps)).all()
            changed = [row.id for row in stamped if self._recent.get(row.id) != row.updated_at]
            words = await shop_lexicon.load(session)
            if words != snap._base_lexicon:
                snap.set_lexicon(words)
            if stamped:
                newest = max(row.updated_at for row in stamped)
                self._watermark = newest if self._watermark is None else max(self._watermark, newest)
            if not changed:
                self._forget_old_stamps()
                return 0
            if len(changed) > BULK_PRODUCTS:
                self.rebuild_soon()
                return len(changed)
            read = await _read_products(_fetch_in(session), snap._categories, ids=changed)
        if self._unknown_category(read):
            self.rebuild_soon()
        elif self._snapshot is snap:
            self._apply(snap, read)
            if self._rebuilding is not None:
                self._dirty.update(changed)
        self._forget_old_stamps()
        return len(changed)

    def _forget_old_stamps(self) -> None:
        if self._watermark is None:
            return
        floor = self._watermark - REFRESH_OVERLAP
        self._recent = self._recent.newer_than(floor)

    # ---- full builds ---------------------------------------------------------------------

    def rebuild_soon(self) -> None:
        """Start a full rebuild in the background (unless one is running)."""
        if self._rebuilding is None or self._rebuilding.done():
            self._rebuilding = asyncio.get_running_loop().create_task(self._rebuild(), name=REFRESH_TASK)

    async def settled(self) -> None:
        """Wait for a background rebuild under way, if any (benchmarks, tests)."""
        if self._rebuilding is not None:
            await asyncio.shield(self._rebuilding)

    async def rebuild(self) -> None:
        """A full rebuild now, in the background of searches (they keep the old catalog)."""
        self.rebuild_soon()
        assert self._rebuilding is not None
        await asyncio.shield(self._rebuilding)

    async def _rebuild(self) -> None:
        try:
            self._dirty.clear()
            built = await self._build()
            await self._read_dirty(built)  # edits made meanwhile, before searches see it
            old = self._snapshot
            self._install(built)
            del built
            if old is not None:
                self._retired.append(old)
                del old
            await self._free_retired()
        except Exception:
            log.exception("catalog rebuild failed (searches go on with the previous catalog)")
        finally:
            self._dirty.clear()
            self._rebuilding = None

    async def _free_retired(self) -> None:
        """Let go of replaced snapshots that no turn holds any more, piece by piece."""
        while self._retired:
            old = self._retired[0]
            if sys.getrefcount(old) > 3:  # the list, `old` and the call's argument: a turn still has it
                return
            del self._retired[0]
            mapping = old.mapping
            await dismantle(old)
            del old  # its arrays go with it
            if mapping is not None:
                # Unmapped in a thread: the pages of a catalog that served for long are all
                # resident, and giving 65 MiB of them back held the loop 15 ms (100k products).
                with contextlib.suppress(BufferError):  # a view of it still held: unmapped when that goes
                    await asyncio.to_thread(mapping.close)
                del mapping
            await asyncio.to_thread(_trim_heap)

    async def _build(self) -> tuple[CatalogSnapshot, datetime | None, _Stamps]:
        """Read every product on sale (Core rows) and build the catalog; searches go on meanwhile.

        A large catalog is built in another process (`_building_elsewhere`), which reads the
        database itself and sends the result back in pieces: the event loop only takes them
        in. Without a database another process can open (in-memory SQLite), or when that
        fails, it is read here in partitions and built in slices between searches.

        A large catalog is many objects (its products), and a full garbage collection scans
        them all (hundreds of milliseconds at 100k products, with the event loop held). So
        while it is read and built the collector is paused, and once built the whole heap is
        frozen (`gc.freeze`): collections never scan it again; the catalog holds no reference
        cycles, so reference counting frees it when it is replaced (`dismantle`)."""
        async with self._sessions() as session:
            large = ((await session.scalar(select(func.count()).select_from(Product))) or 0) > LARGE_CATALOG
        with _collector_paused() if large else contextlib.nullcontext():
            if large and self._url is not None:
                try:
                    snapshot, watermark, recent, self.build_peak_mib = await _building_elsewhere(
                        self._url, query_cache_size=self._query_cache_size
                    )
                except Exception:
                    log.warning("catalog build in a subprocess failed; building here instead", exc_info=True)
                else:
                    self.builds += 1
                    return snapshot, watermark, recent
            return await self._read_and_build()

    async def _read_and_build(self) -> tuple[CatalogSnapshot, datetime | None, _Stamps]:
        whole = await _read_whole(self._sessions, _stream_in)
        rows, categories, stamped = whole.rows, whole.categories, whole.stamped

        def building() -> Steps[tuple[CatalogSnapshot, _Stamps]]:
            read = yield from _assembling(rows, categories)
            recent = yield from _Stamps.building((row.id, row.updated_at) for row in stamped)
            yield from _freeing(stamped)
            snapshot = yield from CatalogSnapshot.building(
                read.current, categories.values(), query_cache_size=self._query_cache_size, lexicon=whole.lexicon
            )
            return snapshot, recent

        if len(rows.products) > LARGE_CATALOG:
            snapshot, recent = await _between_searches(building())
        else:
            snapshot, recent = finish(building())
        self.builds += 1
        return snapshot, whole.watermark, recent

    def _install(self, built: tuple[CatalogSnapshot, datetime | None, _Stamps]) -> None:
        self._snapshot, self._watermark, self._recent = built
        self._built_at = self._clock()

    # ---- the background loop -----------------------------------------------------------

    def start(self) -> None:
        """Load the catalog now, in the background (the first searches wait for it only if
        they come before it is done), then refresh every `refresh_seconds` and rebuild every
        `rebuild_seconds`."""
        if self._task is None:
            self._stop = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(self._stop), name=REFRESH_TASK)

    async def _run(self, stop: asyncio.Event) -> None:
        try:
            await self.snapshot()
        except Exception:  # the database is away: the first search tries again
            log.warning("catalog: the first load failed", exc_info=True)
        intervals = [s for s in (self._refresh_seconds, self._rebuild_seconds) if s > 0]
        while intervals and not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(intervals))
                return
            try:
                await self.tick()
            except Exception:  # the database is away: the next tick tries again
                log.warning("catalog refresh failed", exc_info=True)

    async def tick(self) -> None:
        """One turn of the background loop: refresh, a rebuild when due, retired catalogs freed."""
        await self._free_retired()
        if self._snapshot is None:
            return
        if self._rebuild_seconds > 0 and self._clock() - self._built_at >= self._rebuild_seconds:
            self.rebuild_soon()
        if self._refresh_seconds > 0:
            await self.refresh()

    async def close(self) -> None:
        """Stop the background loop (a refresh under way finishes first) and any rebuild."""
        if self._task is not None:
            self._stop.set()
            # a first load under way finishes (a cancelled read can outlive the event loop in
            # the driver's thread), unless it is long: a large catalog's, at shutdown
            await asyncio.wait({self._task}, timeout=CLOSE_WAIT_SECONDS)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._rebuilding is not None:
            self._rebuilding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._rebuilding
        self._task = self._rebuilding = None
        if self._blocking is not None:
            self._blocking.dispose()

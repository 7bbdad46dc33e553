"""The products on sale in columns (`ProductTable`) against a plain dict of `ProductInfo`, on
random catalogs and staff edits: the same products, best sellers and categories' lists; and
the products' stamps in arrays against the dict they were."""

from __future__ import annotations

import pickle
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from commerce.catalog.read import (
    ProductInfo,
    ProductTable,
    VariantInfo,
    _mapping_arrays,
    _Stamps,
    _writing_arrays,
)

names = st.text(alphabet="苹果香蕉茶 abcXYZ\u00e9\U0001f34e,", max_size=8)


@st.composite
def products(draw: st.DrawFn, product_id: int) -> ProductInfo:
    category_id = draw(st.integers(min_value=1, max_value=3))
    return ProductInfo(
        id=product_id, name=draw(names), subtitle=draw(names), category_id=category_id,
        category=f"类{category_id}", category_en=f"Cat {category_id}",
        tags=tuple(draw(st.lists(st.sampled_from(("新鲜", "fresh", "礼盒")), max_size=2, unique=True))),
        image_url=draw(st.sampled_from(("", "/media/a.jpg"))), thumb_url=draw(st.sampled_from(("", "/media/t.jpg"))),
        variants=tuple(
            VariantInfo(id=product_id * 10 + n, label=draw(st.sampled_from(("", "大份", "红色 / XL"))),
                        price_fen=draw(st.integers(min_value=0, max_value=10**7)))
            for n in range(draw(st.integers(min_value=0, max_value=3)))
        ),
        sales_count=draw(st.integers(min_value=0, max_value=5)), sort_order=draw(st.integers(min_value=0, max_value=3)),
    )


@st.composite
def catalogs_and_edits(draw: st.DrawFn) -> tuple[list[ProductInfo], list[tuple[int, ProductInfo | None]]]:
    ids = draw(st.lists(st.integers(min_value=1, max_value=40), min_size=0, max_size=15, unique=True))
    catalog = [draw(products(product_id)) for product_id in ids]
    edits = [
        (product_id, draw(products(product_id)) if draw(st.booleans()) else None)
        for product_id in draw(st.lists(st.integers(min_value=1, max_value=45), max_size=8))
    ]
    return catalog, edits


def hot(products: dict[int, ProductInfo], limit: int) -> list[int]:
    return [p.id for p in sorted(products.values(), key=lambda p: (-p.sales_count, p.sort_order, p.id))][:limit]


def categories(products: dict[int, ProductInfo]) -> dict[int, tuple[int, ...]]:
    listed: dict[int, list[ProductInfo]] = {}
    for product in products.values():
        listed.setdefault(product.category_id, []).append(product)
    return {c: tuple(p.id for p in sorted(ps, key=lambda p: (p.sort_order, p.id))) for c, ps in listed.items()}


@settings(max_examples=60, deadline=None)
@given(catalogs_and_edits())
def test_the_table_holds_what_a_dict_would(case: tuple[list[ProductInfo], list[tuple[int, ProductInfo | None]]]) -> None:
    catalog, edits = case
    table = ProductTable(catalog)
    buffers: list[pickle.PickleBuffer] = []
    crossed = pickle.dumps(table.packed(), protocol=5, buffer_callback=buffers.append)
    with tempfile.TemporaryDirectory() as folder:  # as a build in another process hands it over: a read-only mapping
        path = str(Path(folder) / "table.arrays")
        _, mapped = _mapping_arrays(path, _writing_arrays(path, [b.raw() for b in buffers]))
    table = ProductTable.unpacking(pickle.loads(crossed, buffers=mapped))
    expected = {product.id: product for product in catalog}
    for product_id, product in edits:  # as `CatalogSnapshot.apply` does: out, then in
        assert table.pop(product_id, None) == expected.pop(product_id, None)
        if product is not None:
            table[product_id] = expected[product_id] = product
    assert dict(table) == expected and len(table) == len(expected)
    assert all(product_id in table for product_id in expected) and 99 not in table
    for limit in (1, 3, 50):
        assert table.best_sellers(limit) == hot(expected, limit)
    assert table.by_category() == categories(expected)


moments = st.integers(min_value=0, max_value=5 * 60 * 10**6).map(
    lambda micros: datetime(2026, 12, 5, 6) + timedelta(microseconds=micros)
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(min_value=1, max_value=30), moments), max_size=20),
    st.lists(st.dictionaries(st.integers(min_value=1, max_value=35), moments, max_size=4), max_size=4),
    moments,
    st.booleans(),
)
def test_the_stamps_hold_what_a_dict_would(
    built: list[tuple[int, datetime]], applied: list[dict[int, datetime]], floor: datetime, aware: bool
) -> None:
    """`Catalog._recent` in arrays (`_Stamps`), against the dict it was: built, then edits
    applied, then the stamps older than the overlap forgotten; as a build elsewhere sends it;
    naive stamps (SQLite) and aware ones (PostgreSQL)."""
    if aware:
        built = [(pid, stamp.replace(tzinfo=UTC)) for pid, stamp in built]
        applied = [{pid: stamp.replace(tzinfo=UTC) for pid, stamp in edits.items()} for edits in applied]
        floor = floor.replace(tzinfo=UTC)
    stamps = _Stamps.unpacking(pickle.loads(pickle.dumps(_Stamps(built).packed())))
    expected = dict(built)
    for edits in applied:
        stamps.update(edits)
        expected.update(edits)
    for product_id in range(40):
        assert stamps.get(product_id) == expected.get(product_id)
    assert dict(stamps.items()) == expected and len(stamps) == len(expected)
    kept = stamps.newer_than(floor)
    assert dict(kept.items()) == {pid: stamp for pid, stamp in expected.items() if stamp > floor}

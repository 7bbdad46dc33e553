"""The compact search index (postings in int32 arrays, entries packed as UTF-8, an overlay
for edits) against straightforward references, on random small catalogs and queries:
- its shortlist is what counting plain lists of document numbers with a `Counter` gives;
- each document unpacks to the entry it was built from;
- after staff edits (products added, changed, removed) it answers as an index built whole
  from the catalog as it is now;
- packed for another process and taken in again (from a read-only file mapping, as a
  build in another process hands it over), it answers as the original does;
- its table of keys finds what a dict finds, hashes colliding or not.
"""

from __future__ import annotations

import math
import pickle
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from commerce.catalog import search
from commerce.catalog.read import _mapping_arrays, _writing_arrays
from commerce.catalog.search import SearchDoc, SearchIndex, finish

WORDS = (
    "苹果", "香蕉", "草莓", "红富士", "烟台", "新鲜", "绿茶", "红茶", "牛奶", "平果", "果汁", "茶",
    "apple", "apples", "banana", "fresh", "milk", "tea", "green", "pingguo", "xiangjiao", "choc",
    "chocolate", "rice", "rcie", "pg", "500g", "2",
)
words = st.sampled_from(WORDS)
texts = st.lists(words, min_size=0, max_size=4).map(" ".join)


@st.composite
def catalogs(draw: st.DrawFn) -> list[SearchDoc]:
    count = draw(st.integers(min_value=1, max_value=12))
    return [
        SearchDoc(
            product_id=product_id,
            name=draw(st.lists(words, min_size=1, max_size=3).map("".join)),
            subtitle=draw(texts),
            tags=tuple(draw(st.lists(words, max_size=2))),
            category=draw(st.sampled_from(("水果 Fruit", "茶叶 Tea", "乳品 Dairy"))),
            popularity=draw(st.integers(min_value=0, max_value=3)),
        )
        for product_id in range(1, count + 1)
    ]


queries = st.lists(words, min_size=1, max_size=3).map(" ".join) | words


def hits(index: SearchIndex, query: str) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    return (
        [(hit.product_id, hit.score) for hit in index.search(query, limit=20)],
        [(hit.product_id, hit.score) for hit in index.suggest(query, limit=5)],
    )


def reference_shortlist(docs: list[SearchDoc], query: str, index: SearchIndex) -> list[int] | None:
    """The shortlist as the rule says, over plain lists of numbers counted with a Counter."""
    ordered = sorted(docs, key=lambda doc: (-doc.popularity, doc.product_id))
    postings: defaultdict[str, list[int]] = defaultdict(list)
    for number, doc in enumerate(ordered):
        for key in search._build_entry(doc)[1]:
            postings[key].append(number)
    parsed = search._parse_query(query, index._vocabulary)
    if parsed is None:
        return None
    counts: Counter[int] = Counter()
    budget = search.POSTING_BUDGET
    for numbers in sorted((postings[t] for t in parsed.terms if t in postings), key=len):
        cut = min(len(numbers), budget // search.TERM_WEIGHT)
        for number in numbers[:cut]:
            counts[number] += search.TERM_WEIGHT
        budget -= search.TERM_WEIGHT * cut
    grams = sorted((postings[g] for g in parsed.grams if g in postings), key=len)
    if grams and not counts:
        counts.update(grams[0][:budget])
        budget -= min(len(grams[0]), budget)
        grams = grams[1:]
    for numbers in grams:
        if len(numbers) > budget:
            break
        counts.update(numbers)
        budget -= len(numbers)
    if not counts:
        return []
    floor = min(max(counts.values()) * search.PRUNE_RATIO, search.TERM_WEIGHT)
    kept = [n for n, c in counts.items() if floor <= 1 or c >= math.ceil(floor)]
    return sorted(kept, key=lambda n: (-counts[n], n))[: search.SHORTLIST_SIZE]


@settings(max_examples=40, deadline=None)
@given(catalogs(), queries)
def test_the_shortlist_is_what_counting_plain_lists_gives(docs: list[SearchDoc], query: str) -> None:
    index = SearchIndex(docs)
    expected = reference_shortlist(docs, query, index)
    parsed = search._parse_query(query, index._vocabulary)
    if expected is None:
        assert parsed is None
        return
    assert parsed is not None
    assert index._shortlist(parsed.terms, parsed.grams, size=search.SHORTLIST_SIZE) == expected


@settings(max_examples=40, deadline=None)
@given(catalogs())
def test_every_document_unpacks_to_the_entry_it_was_built_from(docs: list[SearchDoc]) -> None:
    index = SearchIndex(docs)
    ordered = sorted(docs, key=lambda doc: (-doc.popularity, doc.product_id))
    for number, doc in enumerate(ordered):
        entry, keys = search._build_entry(doc)
        assert index._entry(number) == entry
        assert search._entry_keys(entry) == keys  # what `remove` takes out is what went in


edits = st.lists(
    st.tuples(st.sampled_from(("add", "change", "remove")), st.integers(min_value=0, max_value=20), texts),
    min_size=1, max_size=8,
)


@settings(max_examples=40, deadline=None)
@given(catalogs(), edits, st.lists(queries, min_size=1, max_size=4))
def test_after_edits_it_answers_as_an_index_built_whole(
    docs: list[SearchDoc], changes: list[tuple[str, int, str]], asked: list[str]
) -> None:
    # popularity 0 throughout: a rebuild numbers documents by product id, as edits do
    current = {doc.product_id: SearchDoc(doc.product_id, doc.name, doc.subtitle, doc.tags, doc.category) for doc in docs}
    index = SearchIndex(current.values())
    next_id = max(current) + 1
    for kind, pick, text in changes:
        ids = sorted(current)
        if kind == "add":
            doc = SearchDoc(next_id, text or "新品", "", (), "水果 Fruit")
            next_id += 1
        elif kind == "change" and ids:
            old = current[ids[pick % len(ids)]]
            doc = SearchDoc(old.product_id, text or old.name, old.name, old.tags, old.category)
        elif kind == "remove" and ids:
            index.remove(current.pop(ids[pick % len(ids)]).product_id)
            continue
        else:
            continue
        current[doc.product_id] = doc
        index.add(doc)
    rebuilt = SearchIndex(current.values())
    assert len(index) == len(rebuilt) == len(current)
    assert index.term_count == rebuilt.term_count
    for query in asked:
        assert hits(index, query) == hits(rebuilt, query), query


@settings(max_examples=15, deadline=None)
@given(catalogs(), st.lists(queries, min_size=1, max_size=4))
def test_packed_for_another_process_it_answers_as_the_original(docs: list[SearchDoc], asked: list[str]) -> None:
    index = SearchIndex(docs)
    buffers: list[pickle.PickleBuffer] = []
    packed = pickle.dumps(index.packed(), protocol=5, buffer_callback=buffers.append)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "catalog.arrays"
        _, mapped = _mapping_arrays(str(path), _writing_arrays(str(path), [buffer.raw() for buffer in buffers]))
        assert not path.exists()  # unlinked once mapped
    taken = finish(SearchIndex.unpacking(pickle.loads(packed, buffers=mapped)))
    assert len(taken) == len(index) and taken.term_count == index.term_count
    for query in asked:
        assert hits(taken, query) == hits(index, query), query


keys = st.text(alphabet="苹果茶@#abcz\u00e9\U0001f34e", min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(keys, st.integers(min_value=0, max_value=2**31 - 1), max_size=40), st.lists(keys, max_size=10))
def test_the_key_table_finds_what_a_dict_finds(table: dict[str, int], absent: list[str]) -> None:
    for hashing in (search._key_hash, lambda raw: len(raw) % 3):  # the real hash, then one that collides all the time
        original = search._key_hash
        search._key_hash = hashing
        try:
            built = finish(search._KeyTable.building(list(table), list(table.values())))
            buffers: list[pickle.PickleBuffer] = []
            crossed = pickle.dumps(built.packed(), protocol=5, buffer_callback=buffers.append)
            taken = search._KeyTable.unpacking(pickle.loads(crossed, buffers=[bytes(b.raw()) for b in buffers]))
            for made in (built, taken):
                assert len(made) == len(table)
                assert sorted(finish(made.keys())) == sorted(table)
                for key, row in table.items():
                    assert made.get(key) == row
                for key in absent:
                    assert made.get(key) == table.get(key)
        finally:
            search._key_hash = original


@settings(max_examples=30, deadline=None)
@given(catalogs(), st.lists(words, max_size=6))
def test_the_vocabulary_holds_the_whole_terms_the_postings_list(docs: list[SearchDoc], asked: list[str]) -> None:
    index = SearchIndex(docs)
    terms = {key[1:] for key in finish(index._keys.keys()) if key.startswith("@")}
    assert sorted(terms) == index._vocabulary.sorted_terms and index.term_count == len(terms)
    for word in [*asked, *terms]:
        assert (word in index._vocabulary) == (word in terms)

"""Product search: an in-memory fuzzy and pinyin index over the catalog.

Customers type whatever comes to mind into a chat box: Chinese ("苹果"), English
("Apples"), pinyin ("pingguo", "ping guo", "pg"), typos ("aple", "iphnoe") and
homophones ("平果"). The catalog (up to ~100k SKUs) fits in memory, and a search
must answer in a few milliseconds so that it never threatens WeChat's 5-second
reply budget, so there is no database round trip here.

How a query is answered:

1. The query is normalised (NFKC, lower case, punctuation and emoji dropped, capped).
2. It becomes index keys (see "Grams and terms" below): whole terms ("@apple",
   "@pingguo"), CJK unigrams and bigrams, pinyin trigrams, initials. A latin word the
   catalog does not contain stands in for the terms it probably meant: its typo
   corrections ("rcie" -> "rice", by edit distance over the catalog's vocabulary)
   and completions ("choc" -> "chocolate").
3. The inverted index gives, within a fixed posting budget, the documents sharing the
   most keys with the query: the shortlist (at most ~100).
4. Only the shortlist is scored precisely with rapidfuzz, field by field (the name
   weighs most), and the hits above a threshold are returned best first.

Document numbers inside the index follow popularity (most popular first), so every
tie, and every posting list cut short by the budget, favours best sellers.
"""

from __future__ import annotations

import math
import pickle
import re
import unicodedata
import zlib
from array import array
from bisect import bisect_left, insort
from collections import Counter, defaultdict
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from heapq import merge
from itertools import chain, takewhile
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray
from pypinyin import Style, lazy_pinyin
from pypinyin.seg.mmseg import seg as _pinyin_segmenter
from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA, LCSseq

__all__ = ["SearchDoc", "SearchHit", "SearchIndex", "Steps", "finish", "narrowed", "sorting"]

MAX_RAW_CHARS = 256
"""Raw input beyond this is ignored before any work, so 10 KB of text costs nothing."""
MAX_QUERY_CHARS = 64
"""Normalised queries are capped: nobody searches a shop with a paragraph."""
MAX_QUERY_PARTS = 8
"""Nor with more than a few words; each one is scored against every candidate."""
SHORTLIST_SIZE = 100
"""How many candidates are scored precisely with rapidfuzz (the expensive step)."""
MAX_SHORTLIST_SIZE = 1_000
"""The shortlist grows with a large `limit`, but never past this."""
POSTING_BUDGET = 15_000
"""How many posting entries one query may count; bounds the cost of common grams."""
PRUNE_RATIO = 0.34
"""Only candidates sharing at least this share of the best gram count are scored."""
TERM_WEIGHT = 3
"""A whole query term found in a document counts as much as this many grams."""
SEARCH_MIN_SCORE = 70.0
"""Below this a hit is noise for search() (a shared letter, a loose typo)."""
SEARCH_RELATIVE_WINDOW = 15.0
"""search() drops hits this far below the best one ("apple" should not bring "maple")."""
SUGGEST_MIN_SCORE = 40.0
"""suggest() answers "did you mean…", so it accepts much looser matches."""
CORRECTION_MIN_SIMILARITY = 0.75
"""How close (1 - edits / length) a catalog term must be to stand in for a query word."""
CORRECTIONS_PER_WORD = 3
CORRECTION_SPREAD = 0.05
"""Corrections clearly worse than the best one are noise ("xianngjiao": "xiangjiao" only)."""
COMPLETIONS_PER_WORD = 3
"""Prefixes stand in for their shortest completions ("choc": "chocolate")."""
MAX_COMPLETION_SCAN = 200

# Field weights: a match on the name beats the same match anywhere else.
W_NAME = 1.0
W_AUX = 0.95  # subtitle, tags, category
W_PINYIN = 0.95  # latin query word against the pinyin of the name
W_AUX_PINYIN = 0.9  # latin query word against the pinyin of tags and category
W_HOMOPHONE = 0.9  # Chinese query matching the name only by its sound
W_INITIALS = 0.85  # "pg" for 苹果
W_SCATTERED_SYLLABLES = 0.8  # "cao mei" matching 草 here and 莓 there, not 草莓
PREFIX_SCORE = 90.0  # "choc" for "chocolate"
MAX_INITIALS = 10  # longer vowel-less "words" are keyboard mash, not pinyin initials

_CJK_RANGES = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_PARTS_RE = re.compile(f"[{_CJK_RANGES}]+|[a-z]+|[0-9]+")
_ACCENTED_RE = re.compile("[\u00c0-\u024f\u0300-\u036f]")
_VOWELS = frozenset("aeiou")
_INITIALS_MARK = "#"
_TERM_MARK = "@"

_ENGLISH_STOPWORDS = frozenset(
    "a an the and or of for with in on to at by from i me my we you do does have has is "
    "are want need buy some any please".split()
)
_CHINESE_FILLERS: tuple[str, ...] = (
    "我想要买",
    "我想要",
    "我想买",
    "我要买",
    "想要买",
    "有没有",
    "多少钱",
    "请问",
    "帮我找",
    "帮我",
    "给我来",
    "给我",
    "来一份",
    "来一个",
    "我想",
    "我要",
    "想买",
    "要买",
    "搜索",
    "有吗",
    "吗",
    "呢",
    "吧",
    "啊",
)
"""Chat filler around the product word ("我想买苹果"), removed before matching."""


T = TypeVar("T")
SORT_PIECE = 2_000
"""Items sorted in one piece by `sorting`."""


Steps = Generator[None, None, T]
"""Work done a little at a time: each `yield` is a point where the caller may let other work
run (the catalog builds on the event loop this way, a few milliseconds a slice); the
generator's return value is the result. `finish` runs one to the end at once."""


def narrowed(values: Any) -> NDArray[np.int32] | NDArray[np.int64]:
    """Integers as int32 when every one fits (ids, counts, prices in fen and offsets of a
    catalog do: half the memory of int64), else as int64."""
    wide = np.asarray(values, dtype=np.int64)
    if len(wide) and (int(wide.min()) < np.iinfo(np.int32).min or int(wide.max()) > np.iinfo(np.int32).max):
        return wide
    return wide.astype(np.int32)


def finish(steps: Steps[T]) -> T:
    """Run resumable work to its end, without pausing."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def sorting(items: Iterable[T], *, key: Callable[[T], Any] | None = None) -> Steps[list[T]]:
    """`sorted(items, key=key)` as resumable work: a few thousand items sorted at a time,
    then merged. The same result (both are stable); no step takes more than a millisecond
    or two, where one sort of 100k items takes tens of them."""
    listed = list(items)
    pieces = []
    for start in range(0, len(listed), SORT_PIECE):
        pieces.append(sorted(listed[start : start + SORT_PIECE], key=key))  # type: ignore[type-var, arg-type]
        yield
    if len(pieces) <= 1:
        return pieces[0] if pieces else []
    merged: list[T] = []
    for number, item in enumerate(merge(*pieces, key=key)):  # type: ignore[arg-type]
        merged.append(item)
        if number % SORT_PIECE == 0:
            yield
    return merged


@dataclass(frozen=True, slots=True)
class SearchDoc:
    """One product as the search index sees it (built by the catalog from its rows)."""

    product_id: int
    name: str
    subtitle: str
    tags: tuple[str, ...]
    category: str
    popularity: int = 0


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A product that matched, with a score from 0 to 100 (100: exact)."""

    product_id: int
    score: float


@dataclass(frozen=True, slots=True)
class _Entry:
    """The precomputed, normalised fields of one document, ready for scoring.

    Word and pinyin strings are space-separated with a leading and trailing space,
    so that whole-word and word-prefix checks are single substring searches.
    """

    product_id: int
    name: str  # normalised name
    name_words: str  # " iphone 15 pro " stemmed latin words and numbers of the name
    aux_words: str  # the same for subtitle, tags and category
    aux_cjk: str  # Chinese text of subtitle, tags and category
    name_syllables: str  # " yan tai hong fu shi ping guo "
    name_initials: str  # "ythfspg", one chunk per Chinese run
    aux_syllables: str  # the same as name_syllables for subtitle, tags and category


@dataclass(frozen=True, slots=True)
class _RunFeatures:
    """What a run of Chinese characters contributes to a document."""

    syllables: tuple[str, ...]  # 烟台红富士苹果 -> yan tai hong fu shi ping guo
    initials: str  # ythfspg
    keys: frozenset[str]  # CJK grams and syllable terms: indexed for every field
    name_keys: frozenset[str]  # plus pinyin trigrams and initials: for names only


def _key_hash(raw: bytes) -> int:
    """What a `_KeyTable` orders its keys by: the same in every process (`hash` is not)."""
    return zlib.crc32(raw)


class _KeyTable:
    """The index's keys and the row of postings each names: a `dict[str, int]` in arrays.

    A dict of 110k keys held 13 MiB of Python objects (the dict, a string per key) that had
    to be made again, a few thousand at a time, in the worker that takes a build in. Here
    the keys are packed as UTF-8 in one byte string (each followed by a newline, which no
    key holds), ordered by a CRC-32 of their bytes (stable across processes, unlike
    `hash`), with the hashes and rows as arrays beside them: about 2.5 MiB, and nothing to
    make when it crosses from another process (it can stay in the pages it crossed in).
    A lookup is a binary search of the hashes, then a comparison of the bytes (keys whose
    hashes collide lie side by side)."""

    __slots__ = ("_hashes", "_starts", "_blob", "_rows")

    def __init__(
        self, hashes: NDArray[np.uint32], starts: NDArray[Any], blob: bytes | memoryview, rows: NDArray[np.int32]
    ) -> None:
        self._hashes, self._starts, self._blob, self._rows = hashes, starts, blob, rows

    @classmethod
    def building(cls, keys: Sequence[str], rows: Sequence[int]) -> Steps[_KeyTable]:
        """From the keys and their rows, as resumable work."""
        raw: list[bytes] = []
        for at in range(0, len(keys), 4096):
            raw += [key.encode() for key in keys[at : at + 4096]]
            yield
        hashes = np.fromiter(map(_key_hash, raw), dtype=np.uint32, count=len(raw))
        order = np.argsort(hashes, kind="stable")
        ordered = [raw[at] for at in order.tolist()]
        sizes = np.fromiter((len(key) + 1 for key in ordered), dtype=np.int64, count=len(ordered))
        starts = np.zeros(len(ordered) + 1, dtype=np.int64)
        np.cumsum(sizes, out=starts[1:])
        blob = b"".join(key + b"\n" for key in ordered)
        return cls(hashes[order], narrowed(starts), blob, np.asarray(rows, dtype=np.int32)[order])

    def get(self, key: str) -> int | None:
        return self.rows_of([key])[0]

    def rows_of(self, keys: Sequence[str]) -> list[int | None]:
        """The row of each key (None: not a key), all of a query's keys at once: one binary
        search in numpy for all of them, where one call per key cost a third of a millisecond
        a search at 100k products."""
        found: list[int | None] = [None] * len(keys)
        hashes = self._hashes
        if not keys or not len(hashes):
            return found
        raws = [key.encode() for key in keys]
        wanted = np.fromiter(map(_key_hash, raws), dtype=np.uint32, count=len(raws))
        at = np.searchsorted(hashes, wanted)
        inside = np.minimum(at, len(hashes) - 1)
        hit = np.flatnonzero((hashes[inside] == wanted) & (at < len(hashes)))
        if not len(hit):
            return found
        first = at[hit]
        blob = self._blob
        for number, start, stop, row in zip(
            hit.tolist(), self._starts[first].tolist(), self._starts[first + 1].tolist(), self._rows[first].tolist(),
            strict=True,
        ):
            raw = raws[number]
            if blob[start : stop - 1] == raw:
                found[number] = row
            else:  # hashes collide: the keys that share it lie side by side
                found[number] = self._colliding(raw, int(wanted[number]), int(at[number]) + 1)
        return found

    def _colliding(self, raw: bytes, wanted: int, at: int) -> int | None:
        hashes, starts, blob = self._hashes, self._starts, self._blob
        while at < len(hashes) and hashes[at] == wanted:
            if blob[starts[at] : starts[at + 1] - 1] == raw:
                return int(self._rows[at])
            at += 1
        return None

    def __len__(self) -> int:
        return len(self._hashes)

    def keys(self) -> Steps[list[str]]:
        """Every key (in hash order), decoded a few thousand at a time."""
        found: list[str] = []
        starts = self._starts
        for at in range(0, len(self), 4096):
            stop = min(at + 4096, len(self))
            found += str(self._blob[starts[at] : starts[stop] - 1], "utf-8").split("\n")
            yield
        return found

    def packed(self) -> dict[str, Any]:
        return {
            "hashes": self._hashes, "starts": self._starts, "blob": pickle.PickleBuffer(self._blob), "rows": self._rows,
        }

    @classmethod
    def unpacking(cls, packed: dict[str, Any]) -> _KeyTable:
        return cls(packed["hashes"], packed["starts"], packed["blob"], packed["rows"])


class _Vocabulary:
    """The catalog's terms (latin words, syllables, syllable pairs), to map query words.

    Kept in step with the postings when one document comes or goes (`add`, `discard`):
    sorted for prefixes ("choc" -> "chocolate") and for membership (a binary search: a set
    beside the list cost 4 MiB at 100k products), bucketed by (first letter, length) for
    typos, each bucket sorted as a full build sorts it, so answers do not depend on
    the order documents arrived in.
    """

    __slots__ = ("sorted_terms", "buckets", "syllables")

    def __init__(
        self, sorted_terms: list[str], buckets: dict[tuple[str, int], list[str]], syllables: Counter[str],
    ) -> None:
        self.sorted_terms = sorted_terms
        self.buckets = buckets
        self.syllables = syllables  # to recognise spaced pinyin ("ping guo"): counted per document

    def __contains__(self, term: str) -> bool:
        terms = self.sorted_terms
        at = bisect_left(terms, term)
        return at < len(terms) and terms[at] == term

    def __len__(self) -> int:
        return len(self.sorted_terms)

    def add(self, term: str) -> None:
        if term in self:
            return
        insort(self.sorted_terms, term)
        if len(term) >= 3 and term.isalpha():
            insort(self.buckets.setdefault((term[0], len(term)), []), term)

    def discard(self, term: str) -> None:
        if term not in self:
            return
        del self.sorted_terms[bisect_left(self.sorted_terms, term)]
        bucket = self.buckets.get((term[0], len(term)))
        if bucket is not None and term in bucket:
            bucket.remove(term)


@dataclass(frozen=True, slots=True)
class _CjkPart:
    """A run of Chinese characters from the query, with its pinyin for homophones."""

    text: str
    syllables: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Query:
    """A parsed query: what to score (parts, words) and what to look up (terms, grams)."""

    cjk_parts: tuple[_CjkPart, ...]
    words: tuple[str, ...]  # stemmed latin words and numbers
    joined_syllables: str | None  # "pingguo" when the query was "ping guo"
    terms: tuple[str, ...]  # whole-word keys: "@apple", "@pingguo", "@rice" for "rcie"
    grams: tuple[str, ...]


class SearchIndex:
    """An in-memory index, built whole (`SearchIndex(docs)`) or changed one document at a
    time (`add`, `remove`) when staff edit a product.

    Held in compact form, not as Python objects per document (100k products took 155 MiB
    as tuples and strings; see the README's benchmark section):
    - postings: one int32 array of document numbers (CSR: `_data` sliced by `_offsets`),
      a key's row found in a `_KeyTable` (arrays too); keys listing the same documents share a row;
    - what scoring reads of each document: its normalised fields as UTF-8, packed in one
      byte string (`_blob`, cut by `_starts`), unpacked for the shortlist only;
    - product ids by number, and numbers by product id, as sorted int64 arrays.
    So an index built in another process crosses over as a few raw buffers
    (`packed`/`unpacking`), and a retired one is freed at once.

    `add` and `remove` change an overlay, not the arrays: a key's posting list copied
    once into an array of its own (`_owned`), a document's entry kept as an object
    (`_extra`); searches read the overlay first. A rebuild folds it in. They take about a
    millisecond and run on the event loop between searches, so searching needs no lock.

    Document numbers follow popularity as it was at the build. A document edited keeps
    its number (its popularity has not moved), so it ranks exactly as after a rebuild;
    a new one gets the next number, last, which is where a rebuild puts a product
    nobody bought yet; one that comes back after `remove` gets its old number again.
    The catalog rebuilds in the background now and then, which brings popularity up
    to date.
    """

    def __init__(self, docs: Iterable[SearchDoc]) -> None:
        finish(self._filling(docs))

    @classmethod
    def building(cls, docs: Iterable[SearchDoc]) -> Steps[SearchIndex]:
        """`SearchIndex(docs)` as resumable work (see `Steps`), for a build between searches."""
        index = cls.__new__(cls)
        yield from index._filling(docs)
        return index

    def _filling(self, docs: Iterable[SearchDoc]) -> Steps[None]:
        ordered = yield from sorting(docs, key=lambda doc: (-doc.popularity, doc.product_id))
        postings: defaultdict[str, array[int]] = defaultdict(_new_posting_list)
        blob = bytearray()
        starts = array("q", [0])
        ids = array("q")
        syllables: Counter[str] = Counter()
        name_words: Counter[str] = Counter()
        for number, doc in enumerate(ordered):
            entry, keys = _build_entry(doc)
            for key in keys:
                postings[key].append(number)
            blob += _pack(entry)
            starts.append(len(blob))
            ids.append(doc.product_id)
            syllables.update(_entry_syllables(entry))
            name_words.update(entry.name_words.split())
            yield
        del ordered
        self._blob = bytes(blob)
        del blob
        self._starts = narrowed(starts)
        self._ids = narrowed(ids)
        # numbers by product id (`_number`), sorted here: where a build elsewhere runs
        order = np.argsort(self._ids, kind="stable")
        self._sorted_ids = self._ids[order]
        self._sorted_numbers = order.astype(np.int32)
        del starts, ids
        yield
        # Keys listing the same documents share one row (芒, 芒果 and "@mangguo" list the
        # mangoes): found by the bytes of their lists.
        rows: dict[bytes, int] = {}
        pieces: list[array[int]] = []
        every_key = list(postings)
        key_rows = array("i")
        for count, key in enumerate(every_key):
            numbers = postings.pop(key)
            raw = numbers.tobytes()
            row = rows.get(raw)
            if row is None:
                row = rows[raw] = len(pieces)
                pieces.append(numbers)
            key_rows.append(row)
            if count % 256 == 0:
                yield
        while rows:  # a piece at a time, as everything large here
            for _ in range(min(2048, len(rows))):
                rows.popitem()
            yield
        self._keys = yield from _KeyTable.building(every_key, key_rows)
        sizes = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
        offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        self._offsets = narrowed(offsets)
        self._data = np.empty(int(self._offsets[-1]), dtype=np.int32)
        for row, numbers in enumerate(pieces):
            self._data[self._offsets[row] : self._offsets[row + 1]] = np.frombuffer(numbers, dtype=np.int32)
            if row % 1024 == 0:
                yield
        del pieces
        found: list[str] = []
        for at in range(0, len(every_key), 4096):
            found += _terms_of(every_key[at : at + 4096])
            yield
        del every_key
        terms = yield from sorting(found)
        yield from self._finishing(terms, syllables, name_words)

    def _finishing(self, terms: list[str], syllables: Counter[str], name_words: Counter[str]) -> Steps[None]:
        """What follows the arrays: the overlay, the vocabulary."""
        self._base_count = len(self._ids)
        self._count = self._base_count  # numbers given so far (new documents come last)
        self._live = self._base_count
        self._owned: dict[str, NDArray[np.int32]] = {}  # changed posting lists (empty: none left)
        self._extra: dict[int, _Entry | None] = {}  # changed entries by number (None: removed)
        self._new_numbers: dict[int, int] = {}  # product id -> number, for products new since the build
        yield
        self._vocabulary = yield from _building_vocabulary(terms, syllables)
        self._name_words = yield from _NameWords.counting(name_words)
        # search() then suggest() for the same text ("nothing found, did you mean…")
        # score the same shortlist: the last complete scoring is kept for the second.
        self._last_scored: tuple[str, int, list[tuple[float, int, int]]] | None = None

    # ---- crossing from the process that built it -----------------------------------------

    def packed(self) -> dict[str, Any]:
        """The index as a few raw buffers and strings, to cross to another process (numpy
        arrays pickle as their buffers) and be taken in there by `unpacking`. Only for a
        fresh build: edits since (the overlay) are not carried."""
        return {
            "blob": pickle.PickleBuffer(self._blob),  # taken back as the buffer it crossed in
            "starts": self._starts,
            "ids": self._ids,
            "sorted_ids": self._sorted_ids,
            "sorted_numbers": self._sorted_numbers,
            "offsets": self._offsets,
            "data": self._data,
            "keys": self._keys.packed(),
            # the vocabulary's terms sorted, a few thousand to a string: taken in a piece at a time
            "terms": [
                "\n".join(self._vocabulary.sorted_terms[at : at + 4096])
                for at in range(0, len(self._vocabulary), 4096)
            ],
            "syllables": self._vocabulary.syllables,  # Counters: taken in as they are, not copied
            "name_words": self._name_words.words,
        }

    @classmethod
    def unpacking(cls, packed: dict[str, Any]) -> Steps[SearchIndex]:
        """An index from `packed`, as resumable work: the buffers are taken as they are (views
        of what they crossed in), the vocabulary made a few thousand terms at a time."""
        index = cls.__new__(cls)
        index._blob = packed["blob"]  # a view of the buffer it crossed in: sliced and decoded alike
        index._starts, index._ids = packed["starts"], packed["ids"]
        index._sorted_ids, index._sorted_numbers = packed["sorted_ids"], packed["sorted_numbers"]
        index._offsets, index._data = packed["offsets"], packed["data"]
        index._keys = _KeyTable.unpacking(packed["keys"])
        terms: list[str] = []
        for chunk in packed["terms"]:
            terms += chunk.split("\n")
            yield
        yield from index._finishing(terms, packed["syllables"], packed["name_words"])
        return index

    # ---- reading -------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._live

    def large_parts(self) -> tuple[set[Any] | list[Any] | dict[Any, Any], ...]:
        """Its large containers of Python objects, for the catalog to free a retired index
        piece by piece (`commerce.catalog.read.dismantle`): emptied, the index answers
        nothing. Its arrays are freed at once with it."""
        vocabulary, name_words = self._vocabulary, self._name_words
        # Containers sharing strings come first and the one holding their last references
        # last: emptied in this order, each piece frees a few hundred strings, where emptying
        # the buckets last freed the whole vocabulary in one piece (15-18 ms at 100k).
        return (
            self._owned, self._extra, self._new_numbers,
            vocabulary.buckets, vocabulary.sorted_terms,
            name_words.by_length, name_words.words,
        )

    @property
    def term_count(self) -> int:
        """Distinct whole terms (latin words, syllables, syllable pairs): the vocabulary's size."""
        return len(self._vocabulary)

    def _number(self, product_id: int) -> int | None:
        number = self._new_numbers.get(product_id)
        if number is not None:
            return number
        at = int(np.searchsorted(self._sorted_ids, product_id))
        if at < len(self._sorted_ids) and self._sorted_ids[at] == product_id:
            return int(self._sorted_numbers[at])
        return None

    def _entry(self, number: int) -> _Entry | None:
        """What scoring reads of one document; None once removed."""
        entry = self._extra.get(number, _UNCHANGED)
        if entry is not _UNCHANGED:
            return entry  # type: ignore[return-value]
        if number >= self._base_count:
            return None
        starts = self._starts
        return _unpack(self._blob[starts[number] : starts[number + 1]], int(self._ids[number]))

    def _posting(self, key: str) -> tuple[int, NDArray[np.int32]] | None:
        """(an identity shared by keys listing the same documents, the document numbers)."""
        owned = self._owned.get(key)
        if owned is not None:
            return (-1 - id(owned), owned) if len(owned) else None
        row = self._keys.get(key)
        if row is None:
            return None
        offsets = self._offsets
        return row, self._data[offsets[row] : offsets[row + 1]]

    def __contains__(self, product_id: object) -> bool:
        if not isinstance(product_id, int):
            return False
        number = self._number(product_id)
        return number is not None and self._entry(number) is not None

    # ---- changes -------------------------------------------------------------------------

    def add(self, doc: SearchDoc) -> None:
        """Index one document (a new product, or a new version of one: it replaces it).

        A new version is indexed by difference: only the keys it gained or lost change
        their posting lists (an edit usually keeps most of them, and a common key's list
        is copied whole when it changes)."""
        entry, keys = _build_entry(doc)
        number = self._number(doc.product_id)
        old = self._entry(number) if number is not None else None
        kept: set[str] = set()
        if number is None:
            number = self._new_numbers[doc.product_id] = self._count
            self._count += 1
        elif old is not None:
            old_keys = _entry_keys(old)
            kept = old_keys & keys
            self._unindex(number, old, old_keys - kept)
        for key in keys - kept:
            posting = self._own_posting(key)
            if posting is None:
                self._owned[key] = np.array([number], dtype=np.int32)
                if key.startswith(_TERM_MARK):
                    self._vocabulary.add(key[1:])
            else:
                self._owned[key] = np.insert(posting, np.searchsorted(posting, number), number)
        self._extra[number] = entry
        self._live += 1
        self._vocabulary.syllables.update(_entry_syllables(entry))
        self._name_words.add(entry)
        self._last_scored = None

    def _own_posting(self, key: str) -> NDArray[np.int32] | None:
        """The key's posting list, to be replaced in the overlay; None when no document has it."""
        found = self._posting(key)
        return None if found is None else found[1]

    def remove(self, product_id: int) -> bool:
        """Take one document out; False when it was not indexed. Its number is kept for it."""
        number = self._number(product_id)
        if number is None:
            return False
        entry = self._entry(number)
        if entry is None:
            return False
        self._unindex(number, entry, _entry_keys(entry))
        self._extra[number] = None
        return True

    def _unindex(self, number: int, entry: _Entry, keys: Iterable[str]) -> None:
        """Take a document's number out of these keys' lists, and its words out of the counts."""
        for key in keys:
            posting = self._own_posting(key)
            if posting is None:
                continue
            at = int(np.searchsorted(posting, number))
            if at < len(posting) and posting[at] == number:
                posting = self._owned[key] = np.delete(posting, at)
                if not len(posting) and key.startswith(_TERM_MARK):
                    self._vocabulary.discard(key[1:])
        self._live -= 1
        self._vocabulary.syllables.subtract(_entry_syllables(entry))
        self._vocabulary.syllables += Counter()  # drop the syllables no document has any more
        self._name_words.discard(entry)
        self._last_scored = None

    # ---- searching -----------------------------------------------------------------------

    def search(self, query: str, *, limit: int = 50) -> list[SearchHit]:
        """Products matching the query, best first (score, then popularity)."""
        return self._rank(
            query, limit=limit, min_score=SEARCH_MIN_SCORE, window=SEARCH_RELATIVE_WINDOW
        )

    def suggest(self, query: str, *, limit: int = 3) -> list[SearchHit]:
        """Close matches for "nothing found, did you mean…", with a much lower bar."""
        return self._rank(query, limit=limit, min_score=SUGGEST_MIN_SCORE, window=None)

    def _rank(
        self, query: str, *, limit: int, min_score: float, window: float | None
    ) -> list[SearchHit]:
        if limit <= 0:
            return []
        size = min(MAX_SHORTLIST_SIZE, max(SHORTLIST_SIZE, limit + limit // 2))
        last = self._last_scored
        if last is not None and last[0] == query and last[1] == size:
            scored = last[2]
        else:
            parsed = _parse_query(query, self._vocabulary)
            if parsed is None:
                return []
            scored, complete = self._score_shortlist(parsed, size=size, enough=limit)
            if complete:
                self._last_scored = (query, size, scored)
        best_by_product: dict[int, tuple[float, int]] = {}
        for score, number, product_id in scored:  # in number order: ties keep the first
            if score < min_score:
                continue
            known = best_by_product.get(product_id)
            if known is None or score > known[0]:
                best_by_product[product_id] = (score, number)
        if not best_by_product:
            return []
        # Best first, then by number (popularity); numbers are unique, so plain tuples
        # sort in C without a key function.
        ranked = sorted(
            [
                (-score, number, product_id)
                for product_id, (score, number) in best_by_product.items()
            ]
        )
        top = ranked[:limit]
        if window is not None:  # the hits within the window are a prefix of the ranking
            floor = -ranked[0][0] - window
            top = [hit for hit in top if -hit[0] >= floor]
        return [SearchHit(product_id, round(-negated, 2)) for negated, _, product_id in top]

    def _score_shortlist(
        self, parsed: _Query, *, size: int, enough: int
    ) -> tuple[list[tuple[float, int, int]], bool]:
        """(score, number, product id) of the shortlist in number order, and whether complete.

        Scoring is the expensive step, so it stops once `enough` products reach the
        most this query can score against any document ("grape" scores 95 at best
        where no name has the word): documents are scored in number (popularity)
        order, so none left can rank above them, not even on a tie. The caller ranks
        what was scored.
        """
        candidates = self._shortlist(parsed.terms, parsed.grams, size=size)
        candidates.sort()
        scorer = _Scorer(parsed)
        ceiling = scorer.ceiling(self._name_words)
        scored: list[tuple[float, int, int]] = []
        perfect: set[int] = set()
        for number in candidates:
            entry = self._entry(number)
            if entry is None:  # postings never list a removed document; kept for safety
                continue
            score = scorer.score(entry)
            scored.append((score, number, entry.product_id))
            if score >= ceiling:
                perfect.add(entry.product_id)
                if len(perfect) >= enough:
                    return scored, False
        return scored, True

    def _shortlist(self, terms: Sequence[str], grams: Sequence[str], *, size: int) -> list[int]:
        """The documents sharing the most with the query: its terms first, then grams.

        Every posting counted costs time, so one query counts at most POSTING_BUDGET
        of them. Whole terms (a word, a syllable pair, a correction) are precise: they
        count TERM_WEIGHT times and come first, a common one cut to what the budget
        allows. Posting lists are in popularity order, so any cut keeps best sellers.
        Grams follow, rarest first, each counted whole or not at all, so that a
        specific gram is never outweighed by a common one counted for best sellers
        only; the common grams left out say little anyway. Documents sharing far
        less than the best one are not worth scoring.
        """
        chosen = _Chosen()
        budget = POSTING_BUDGET
        for ident, numbers in sorted(self._present(terms), key=_length):
            if budget < TERM_WEIGHT:
                break
            cut = min(len(numbers), budget // TERM_WEIGHT)
            chosen.add(ident, numbers, cut, TERM_WEIGHT)
            budget -= TERM_WEIGHT * cut
        gram_lists = sorted(self._present(grams), key=_length)
        if gram_lists and not chosen:
            ident, numbers = gram_lists[0]
            cut = min(len(numbers), budget)
            chosen.add(ident, numbers, cut, 1)
            budget -= cut
            gram_lists = gram_lists[1:]
        for ident, numbers in gram_lists:
            if len(numbers) > budget:
                break
            chosen.add(ident, numbers, len(numbers), 1)
            budget -= len(numbers)
        if not chosen:
            return []
        counts = chosen.count(self._count)
        numbers = np.flatnonzero(counts).astype(np.int32)
        if not len(numbers):
            return []
        found = counts[numbers]
        # A document holding one whole query term is always worth scoring.
        floor = min(int(found.max()) * PRUNE_RATIO, TERM_WEIGHT)
        if floor > 1:
            kept = found >= math.ceil(floor)
            numbers, found = numbers[kept], found[kept]
        # Most shared first, then by number (popularity).
        order = np.lexsort((numbers, -found))[:size]
        return numbers[order].tolist()

    def _present(self, keys: Iterable[str]) -> Iterator[tuple[int, NDArray[np.int32]]]:
        """`_posting` of each key that has one, in the keys' order; the table looked up once."""
        keys = list(keys)
        owned = self._owned
        rows = iter(self._keys.rows_of([key for key in keys if key not in owned]))
        offsets, data = self._offsets, self._data
        for key in keys:
            numbers = owned.get(key)
            if numbers is not None:
                if len(numbers):
                    yield -1 - id(numbers), numbers
                continue
            row = next(rows)
            if row is not None:
                yield row, data[offsets[row] : offsets[row + 1]]


def _length(posting: tuple[int, NDArray[np.int32]]) -> int:
    return len(posting[1])


class _Chosen:
    """The posting lists one query counts, each with its weight.

    Keys of one word often share a posting list (芒, 芒果 and "@mangguo" all list
    the mangoes; the index stores such lists once), and a term counts
    TERM_WEIGHT times: counting a shared list once with its total weight saves
    counting it again for every key.
    """

    __slots__ = ("_lists",)

    def __init__(self) -> None:
        self._lists: dict[tuple[int, int], tuple[NDArray[np.int32], int]] = {}

    def __bool__(self) -> bool:
        return bool(self._lists)

    def add(self, ident: int, numbers: NDArray[np.int32], cut: int, weight: int) -> None:
        """Count the first `cut` numbers `weight` more times."""
        key = (ident, cut)
        known = self._lists.get(key)
        if known is not None:
            self._lists[key] = (known[0], known[1] + weight)
        else:
            self._lists[key] = (numbers[:cut], weight)

    def count(self, size: int) -> NDArray[np.int32]:
        """Each document's weighted count, by number (posting lists hold each number once,
        so one indexed addition per list counts it)."""
        counts = np.zeros(size, dtype=np.int32)
        for numbers, weight in self._lists.values():
            counts[numbers] += weight
        return counts


def _new_posting_list() -> array[int]:
    return array("i")


_UNCHANGED = object()
_FIELD_SEPARATOR = "\x1f"
"""Between the fields of a packed entry: normalised text never holds it."""


def _pack(entry: _Entry) -> bytes:
    return _FIELD_SEPARATOR.join(
        (
            entry.name, entry.name_words, entry.aux_words, entry.aux_cjk,
            entry.name_syllables, entry.name_initials, entry.aux_syllables,
        )
    ).encode()


def _unpack(packed: bytes | memoryview, product_id: int) -> _Entry:
    return _Entry(product_id, *str(packed, "utf-8").split(_FIELD_SEPARATOR))



# ---------------------------------------------------------------------------
# Normalisation and pinyin


def _clean(text: str) -> list[str]:
    """Chinese runs, latin words and numbers of a text, normalised (NFKC, lower case).

    Full-width letters become ASCII, accents are dropped ("píngguǒ" -> "pingguo"), and
    everything else (punctuation, emoji, symbols) separates parts.
    """
    text = unicodedata.normalize("NFKC", text).lower()
    if _ACCENTED_RE.search(text):
        text = "".join(
            char for char in unicodedata.normalize("NFD", text) if not unicodedata.combining(char)
        )
    return _PARTS_RE.findall(text)


def _is_cjk(part: str) -> bool:
    """For a part from _clean: Chinese runs are the only parts beyond ASCII."""
    return part[0] > "z"


def _stem(word: str) -> str:
    """A tiny plural stripper so that "apples" meets "apple" and "berries" meets "berry"."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "sses", "xes", "zes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


@lru_cache(maxsize=1 << 16)
def _index_word(part: str) -> str:
    """Cached stem of a latin part, or "" for a stop word."""
    return "" if part in _ENGLISH_STOPWORDS else _stem(part)


def _spaced(words: Iterable[str]) -> str:
    joined = " ".join(words)
    return f" {joined} " if joined else ""


@lru_cache(maxsize=1 << 16)
def _word_syllables(word: str) -> tuple[str, ...]:
    """Toneless pinyin of one segmented word (lazy_pinyin with its phrase readings)."""
    return tuple(lazy_pinyin(word, style=Style.NORMAL, errors="ignore"))


def _syllables(run: str) -> tuple[str, ...]:
    """Toneless pinyin of a Chinese run, with word-aware readings (重庆: chong qing).

    Segmenting first and caching per word is ten times faster than calling
    lazy_pinyin on every whole name, which matters at 100k documents.
    """
    return tuple(
        syllable for word in _pinyin_segmenter.cut(run) for syllable in _word_syllables(word)
    )


# ---------------------------------------------------------------------------
# Grams and terms
#
# The index holds three kinds of keys:
# - CJK unigrams and bigrams of every Chinese run ("苹", "苹果");
# - trigrams of the joined pinyin of the name ("pin", "ing", "ngg", ...), for pinyin
#   typed in one piece and its typos, and "#"-marked bigrams of its initials ("#pg");
# - "@"-marked whole terms: every latin word ("@apple"), syllable ("@guo") and pair
#   of adjacent syllables ("@pingguo"). A query word the catalog lacks is mapped to
#   terms it has (typo corrections, completions of a prefix, or the two words it
#   runs together), so latin words need no grams of their own.


def _cjk_grams(run: str) -> Iterator[str]:
    yield from run
    for start in range(len(run) - 1):
        yield run[start : start + 2]


def _trigrams(text: str) -> Iterator[str]:
    for start in range(len(text) - 2):
        yield text[start : start + 3]


def _syllable_terms(syllables: Sequence[str]) -> Iterator[str]:
    """Terms for each syllable and each adjacent pair: most Chinese words are two."""
    for syllable in syllables:
        yield _TERM_MARK + syllable
    for first, second in zip(syllables, syllables[1:], strict=False):
        yield _TERM_MARK + first + second


def _initials_grams(initials: str) -> Iterator[str]:
    for start in range(len(initials) - 1):
        yield _INITIALS_MARK + initials[start : start + 2]


def _looks_like_initials(word: str) -> bool:
    """Whether a word reads as pinyin initials ("pg", "hfs"): words and syllables have vowels."""
    return 2 <= len(word) <= MAX_INITIALS and word.isalpha() and _VOWELS.isdisjoint(word)


# ---------------------------------------------------------------------------
# Building


@lru_cache(maxsize=1 << 10)
def _run_features(run: str) -> _RunFeatures:
    """Cached: tags, categories and the words of names repeat across the catalog. Kept small:
    names are mostly runs of their own, and 32k cached runs held 80 MB after a build of 20k."""
    syllables = _syllables(run)
    initials = "".join(syllable[0] for syllable in syllables)
    keys = frozenset(chain(_cjk_grams(run), _syllable_terms(syllables)))
    return _RunFeatures(
        syllables=syllables,
        initials=initials,
        keys=keys,
        name_keys=keys.union(_trigrams("".join(syllables)), _initials_grams(initials)),
    )


def _partition(parts: Iterable[str]) -> tuple[list[str], list[str]]:
    """(Chinese runs, indexable latin words) of a field's parts, in one pass."""
    runs: list[str] = []
    words: list[str] = []
    for part in parts:
        if _is_cjk(part):
            runs.append(part)
        elif word := _index_word(part):
            words.append(word)
    return runs, words


@lru_cache(maxsize=1 << 10)
def _partition_repeated(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """_partition of a field shared by many documents (tags, category), cached."""
    runs, words = _partition(_clean(text))
    return tuple(runs), tuple(words)


def _build_entry(doc: SearchDoc) -> tuple[_Entry, set[str]]:
    """Normalise one document once, at build time, and collect its index keys."""
    name_parts = _clean(doc.name)
    name_cjk, name_words = _partition(name_parts)
    fields: tuple[tuple[Sequence[str], Sequence[str]], ...] = (
        _partition(_clean(doc.subtitle)),
        _partition_repeated(" ".join(doc.tags)),
        _partition_repeated(doc.category),
    )
    aux_cjk = list(dict.fromkeys(chain.from_iterable(runs for runs, _ in fields)))
    aux_words = list(dict.fromkeys(chain.from_iterable(words for _, words in fields)))
    name_words = list(dict.fromkeys(name_words))
    name_runs = [_run_features(run) for run in name_cjk]
    aux_runs = [_run_features(run) for run in aux_cjk]

    keys: set[str] = set()
    for run in name_runs:
        keys.update(run.name_keys)
    for run in aux_runs:
        keys.update(run.keys)
    keys.update(_TERM_MARK + word for word in chain(name_words, aux_words))

    entry = _Entry(
        product_id=doc.product_id,
        name=" ".join(name_parts),
        name_words=_spaced(name_words),
        aux_words=_spaced(aux_words),
        aux_cjk=" ".join(aux_cjk),
        name_syllables=_spaced(chain.from_iterable(run.syllables for run in name_runs)),
        name_initials=" ".join(run.initials for run in name_runs),
        aux_syllables=_spaced(chain.from_iterable(run.syllables for run in aux_runs)),
    )
    return entry, keys


def _entry_keys(entry: _Entry) -> set[str]:
    """The keys `_build_entry` gave a document, from its entry (`SearchIndex.remove`)."""
    keys: set[str] = set()
    for part in entry.name.split():
        if _is_cjk(part):
            keys.update(_run_features(part).name_keys)
    for run in entry.aux_cjk.split():
        keys.update(_run_features(run).keys)
    keys.update(_TERM_MARK + word for word in chain(entry.name_words.split(), entry.aux_words.split()))
    return keys


def _entry_syllables(entry: _Entry) -> set[str]:
    """The syllables of one document (name, then the other fields), each once."""
    return {*entry.name_syllables.split(), *entry.aux_syllables.split()}


def _terms_of(keys: Iterable[str]) -> Iterator[str]:
    """The whole terms among the index's keys, without their mark."""
    return (key[1:] for key in keys if key.startswith(_TERM_MARK))


def _building_vocabulary(terms: list[str], syllables: Counter[str]) -> Steps[_Vocabulary]:
    """Every indexed term (`terms`, sorted), bucketed for corrections."""
    buckets: defaultdict[tuple[str, int], list[str]] = defaultdict(list)
    for count, term in enumerate(terms):
        if len(term) >= 3 and term.isalpha():
            buckets[term[0], len(term)].append(term)
        if count % 1024 == 0:
            yield
    return _Vocabulary(terms, dict(buckets), syllables)


# ---------------------------------------------------------------------------
# Queries


def _strip_fillers(parts: list[str]) -> list[str]:
    """Drop chat filler ("我想买", "吗") around the product word, unless nothing is left."""
    stripped: list[str] = []
    for part in parts:
        if _is_cjk(part):
            for filler in _CHINESE_FILLERS:
                part = part.replace(filler, " ")
            stripped.extend(part.split())
        else:
            stripped.append(part)
    return stripped or parts


def _capped_parts(query: str) -> list[str]:
    """The parts of a raw query: at most MAX_QUERY_PARTS, MAX_QUERY_CHARS in total."""
    capped: list[str] = []
    room = MAX_QUERY_CHARS
    for part in _clean(query[:MAX_RAW_CHARS]):
        if room <= 0 or len(capped) == MAX_QUERY_PARTS:
            break
        capped.append(part[:room])
        room -= len(part) + 1
    return capped


def _related_terms(word: str, vocabulary: _Vocabulary) -> list[str]:
    """Catalog terms standing in for a query word the catalog does not contain.

    They only bring the right documents into the shortlist; scoring still compares
    the word as typed. Two kinds: typos ("rcie" -> "rice") and prefixes typed in a
    hurry ("choc" -> "chocolate").
    """
    if len(word) < 3 or not word.isalpha() or word in vocabulary:
        return []
    return [*_corrections(word, vocabulary), *_completions(word, vocabulary)]


def _corrections(word: str, vocabulary: _Vocabulary) -> list[str]:
    """The closest terms by edit distance (transpositions count once), if close enough.

    Optimal string alignment rather than rapidfuzz's indel ratio: "rcie" is one step
    from "rice", while "xyiye" is two from the unrelated syllable "xie". Only terms with
    the same first letter and a length that can reach the bar are compared, which
    keeps this to a fraction of a millisecond on a large vocabulary.
    """
    if len(word) < 4:
        return []
    # similarity = 1 - distance / longest, and distance >= the difference in length.
    shortest = math.ceil(len(word) * CORRECTION_MIN_SIMILARITY)
    longest = math.floor(len(word) / CORRECTION_MIN_SIMILARITY)
    choices = list(
        chain.from_iterable(
            vocabulary.buckets.get((word[0], length), ()) for length in range(shortest, longest + 1)
        )
    )
    matches = process.extract(
        word,
        choices,
        scorer=OSA.normalized_similarity,
        score_cutoff=CORRECTION_MIN_SIMILARITY,
        limit=CORRECTIONS_PER_WORD,
    )
    return [match[0] for match in matches if match[1] >= matches[0][1] - CORRECTION_SPREAD]


def _completions(word: str, vocabulary: _Vocabulary) -> list[str]:
    """The shortest terms starting with the word."""
    start = bisect_left(vocabulary.sorted_terms, word)
    following = vocabulary.sorted_terms[start : start + MAX_COMPLETION_SCAN]
    found = list(takewhile(lambda term: term.startswith(word), following))
    return sorted(found, key=len)[:COMPLETIONS_PER_WORD]


def _unglue(words: Iterable[str], vocabulary: _Vocabulary) -> list[str]:
    """Split words run together into two catalog terms ("powerbank", "yantaipingguo").

    Only words the catalog does not know and that are not a typo of a term either,
    so "pinguo" stays a typo of "pingguo" rather than becoming "pin guo".
    """
    unglued: list[str] = []
    for word in words:
        parts = None
        if len(word) >= 5 and word.isalpha() and word not in vocabulary:
            parts = _split_in_two(word, vocabulary)
        if parts and not _corrections(word, vocabulary):
            unglued.extend(parts)
        else:
            unglued.append(word)
    return unglued


def _split_in_two(word: str, terms: _Vocabulary) -> tuple[str, str] | None:
    for cut in range(2, len(word) - 1):
        head, tail = word[:cut], word[cut:]
        if head in terms and tail in terms:
            return head, tail
    return None


def _parse_query(query: str, vocabulary: _Vocabulary) -> _Query | None:
    """Normalise a raw query; None when nothing searchable is left (empty, emoji…)."""
    capped = _capped_parts(query)
    if not capped:
        return None
    capped = _strip_fillers(capped)
    words = [_stem(part) for part in capped if not _is_cjk(part)]
    meaningful = [word for word in words if word not in _ENGLISH_STOPWORDS]
    words = list(dict.fromkeys(_unglue(meaningful or words, vocabulary)))
    cjk_parts = [
        _CjkPart(text=run, syllables=_syllables(run))
        for run in dict.fromkeys(part for part in capped if _is_cjk(part))
    ]
    joined = None
    if not cjk_parts and len(words) >= 2 and all(w in vocabulary.syllables for w in words):
        joined = "".join(words)

    terms: dict[str, None] = {}
    grams: dict[str, None] = {}
    for part in cjk_parts:
        grams.update(dict.fromkeys(_cjk_grams(part.text)))
        # Its sound, for homophones (平果 -> ping guo -> 苹果).
        grams.update(dict.fromkeys(_trigrams("".join(part.syllables))))
        pairs = zip(part.syllables, part.syllables[1:], strict=False)
        terms.update(dict.fromkeys(_TERM_MARK + first + second for first, second in pairs))
    for word in chain(words, [joined] if joined else []):
        terms[_TERM_MARK + word] = None
        terms.update(dict.fromkeys(_TERM_MARK + term for term in _related_terms(word, vocabulary)))
        grams.update(dict.fromkeys(_trigrams(word)))
        if _looks_like_initials(word):
            grams.update(dict.fromkeys(_initials_grams(word)))
    return _Query(
        cjk_parts=tuple(cjk_parts),
        words=tuple(words),
        joined_syllables=joined,
        terms=tuple(terms),
        grams=tuple(grams),
    )


# ---------------------------------------------------------------------------
# Scoring (only ever run on the shortlist)


class _Scorer:
    """Scores one parsed query against documents of its shortlist.

    Built once per query, with what each query part needs precomputed. What a part
    scores against a field depends on that field's text only, and documents share
    field texts (tags, categories, sizes), so each part remembers its scores by field
    text for the rest of the query.
    """

    __slots__ = ("_parts", "_joined", "score")

    def __init__(self, query: _Query) -> None:
        parts: list[_CjkPartScorer | _WordScorer] = [
            _CjkPartScorer(part) for part in query.cjk_parts
        ]
        parts.extend(_WordScorer(word) for word in query.words)
        self._parts = tuple(parts)
        joined = query.joined_syllables
        self._joined = _WordScorer(joined) if joined is not None else None
        self.score: Callable[[_Entry], float] = self._blended
        if len(parts) == 1 and self._joined is None:
            # The blend of a single score is that score: skip a call and a list.
            self.score = parts[0].score

    def _blended(self, entry: _Entry) -> float:
        """0..100: how well the whole query matches one document.

        Each query part (Chinese run or latin word) scores its best field; the result
        blends the best part and the average part, so that every part counts but one
        unknown word ("red apple" when nothing says red) does not sink a good match.
        Spaced pinyin ("cao mei") must match as a whole to score fully.
        """
        whole = None
        if self._joined is not None:
            whole = self._joined.pinyin_score(entry)
            if whole >= _SCATTERED_FULL:
                return whole  # the blend of scores up to 100 cannot beat it
        blended = _blend([part.score(entry) for part in self._parts])
        if whole is None:
            return blended
        return max(whole, blended * W_SCATTERED_SYLLABLES)

    def ceiling(self, name_words: _NameWords) -> float:
        """The most score() can return for any document of the index.

        The same blend over each part's ceiling: the blend never decreases when a
        part's score grows, not even in floating point (rounding is monotonic).
        """
        blended = _blend([part.ceiling(name_words) for part in self._parts])
        if self._joined is None:
            return blended
        return max(_PINYIN_CEILING, blended * W_SCATTERED_SYLLABLES)


def _blend(scores: list[float]) -> float:
    if not scores:
        return 0.0
    return 0.5 * max(scores) + 0.5 * sum(scores) / len(scores)


class _NameWords:
    """The latin words of all names, to bound what a query word can score.

    Counted per document, so that one document coming or going keeps them exact.
    """

    __slots__ = ("words", "by_length", "_candidates")

    def __init__(self) -> None:
        self.words: Counter[str] = Counter()
        self.by_length: dict[int, list[str]] = {}
        self._candidates: dict[tuple[int, float], list[str]] = {}  # typo_candidates by (length, above)

    @classmethod
    def counting(cls, words: Counter[str]) -> Steps[_NameWords]:
        """From the name words counted per document at the build."""
        made = cls()
        made.words = words
        by_length: defaultdict[int, list[str]] = defaultdict(list)
        for word in (yield from sorting(words)):
            by_length[len(word)].append(word)
        made.by_length = dict(by_length)
        return made

    def add(self, entry: _Entry) -> None:
        for word in entry.name_words.split():
            if not self.words[word]:
                insort(self.by_length.setdefault(len(word), []), word)
                self._candidates.clear()
            self.words[word] += 1

    def discard(self, entry: _Entry) -> None:
        for word in entry.name_words.split():
            self.words[word] -= 1
            if self.words[word] <= 0:
                del self.words[word]
                self.by_length[len(word)].remove(word)
                self._candidates.clear()

    def typo_candidates(self, word: str, *, above: float) -> list[str]:
        """Name words whose fuzz.ratio with `word` may exceed `above`.

        The ratio is 100 * (1 - distance / (a + b)) for lengths a and b, and the
        distance is at least |a - b|; lengths that cannot come near are skipped. The
        list depends on the word's length only: kept until a name word comes or goes
        (at 100k names, gathering it took a third of a millisecond a query word).
        """
        size = len(word)
        found = self._candidates.get((size, above))
        if found is None:
            found = self._candidates[size, above] = [
                name_word
                for length, group in self.by_length.items()
                if (length + size - abs(length - size)) * 100.0 >= (above - 1.0) * (length + size)
                for name_word in group
            ]
        return found


class _CjkPartScorer:
    """A Chinese run of the query: by its characters, else by its sound (homophones)."""

    __slots__ = ("_text", "_syllables", "_coverage", "_sound")

    def __init__(self, part: _CjkPart) -> None:
        self._text = part.text
        self._syllables = part.syllables
        self._coverage: dict[tuple[str, str], float] = {}
        self._sound: dict[str, float] = {}

    def ceiling(self, name_words: _NameWords) -> float:
        return 100.0 * W_NAME

    def score(self, entry: _Entry) -> float:
        text = self._text
        if text in entry.name:
            return 100.0 * W_NAME
        fields = (entry.name, entry.aux_cjk)
        best = self._coverage.get(fields)
        if best is None:
            best = self._coverage[fields] = _cjk_coverage(text, entry.name, entry.aux_cjk)
        if best >= _AUX_FULL or len(text) < 2:
            return best
        sound = self._sound.get(entry.name_syllables)
        if sound is None:
            sound = _syllable_coverage(self._syllables, entry.name_syllables) * W_HOMOPHONE
            self._sound[entry.name_syllables] = sound
        return max(best, sound)


class _WordScorer:
    """A latin query word: a word of the name, of the other fields, then pinyin."""

    __slots__ = (
        "_word",
        "_exact",
        "_prefix",
        "_prefix_counts",
        "_typos_count",
        "_pinyin_counts",
        "_whole_syllables",
        "_shortest",
        "_longest",
        "_initials",
        "_tokens",
        "_pinyin",
    )

    def __init__(self, word: str) -> None:
        self._word = word
        self._exact = f" {word} "
        self._prefix = f" {word}"
        self._prefix_counts = len(word) >= 3 and not word.isdigit()
        self._typos_count = self._prefix_counts and len(word) >= 4
        self._pinyin_counts = word.isalpha()
        # `word` as consecutive whole syllables ("mangguo" in " ao zhou mang guo hao "):
        # a joined window equal to the word, found without building the windows.
        self._whole_syllables = (
            re.compile(" " + " ?".join(map(re.escape, word)) + " ")
            if len(word) > 3 and self._pinyin_counts
            else None
        )
        slack = max(2, len(word) // 3)
        self._shortest = len(word) - slack
        self._longest = len(word) + slack
        self._initials = _looks_like_initials(word)
        self._tokens: dict[str, float] = {}
        self._pinyin: dict[str, float] = {}

    def score(self, entry: _Entry) -> float:
        tokens = self._tokens
        best = tokens.get(entry.name_words)
        if best is None:
            best = tokens[entry.name_words] = self._token_score(entry.name_words)
        best *= W_NAME
        if best >= 100.0:
            return best
        aux = tokens.get(entry.aux_words)
        if aux is None:
            aux = tokens[entry.aux_words] = self._token_score(entry.aux_words)
        aux *= W_AUX
        if aux > best:
            best = aux
        if best >= _AUX_FULL:
            return best
        pinyin = self.pinyin_score(entry)
        if pinyin > best:
            best = pinyin
        if self._initials and best < _INITIALS_FULL and self._word in entry.name_initials:
            best = _INITIALS_FULL
        return best

    def ceiling(self, name_words: _NameWords) -> float:
        """The most score() can return: only a word of a name scores over 95."""
        if self._word in name_words.words:
            return 100.0 * W_NAME
        if not self._typos_count:
            return _OUTSIDE_NAME_CEILING
        choices = name_words.typo_candidates(self._word, above=_OUTSIDE_NAME_CEILING)
        match = process.extractOne(
            self._word, choices, scorer=fuzz.ratio, score_cutoff=_OUTSIDE_NAME_CEILING
        )
        return max(_OUTSIDE_NAME_CEILING, match[1] * W_NAME) if match else _OUTSIDE_NAME_CEILING

    def pinyin_score(self, entry: _Entry) -> float:
        """The word read as pinyin of the name, else of tags and category."""
        pinyin = self._pinyin
        best = pinyin.get(entry.name_syllables)
        if best is None:
            best = pinyin[entry.name_syllables] = self._syllables_score(entry.name_syllables)
        best *= W_PINYIN
        if best < 100.0 * W_AUX_PINYIN:
            aux = pinyin.get(entry.aux_syllables)
            if aux is None:
                aux = pinyin[entry.aux_syllables] = self._syllables_score(entry.aux_syllables)
            aux *= W_AUX_PINYIN
            if aux > best:
                best = aux
        return best

    def _token_score(self, spaced_words: str) -> float:
        """The word against whole words: exact, prefix, then typo."""
        if not spaced_words:
            return 0.0
        if self._exact in spaced_words:
            return 100.0
        if not self._prefix_counts:
            return 0.0
        if self._prefix in spaced_words:
            return PREFIX_SCORE
        if not self._typos_count:
            return 0.0
        words = spaced_words.split()
        match = process.extractOne(self._word, words, scorer=fuzz.ratio, score_cutoff=60.0)
        return match[1] if match else 0.0

    def _syllables_score(self, spaced_syllables: str) -> float:
        """The word against pinyin: a syllable, whole consecutive syllables, or a typo.

        Matching whole syllables (not any substring of the joined pinyin) keeps "ping"
        from matching "jian" and makes "pinguo" prefer 苹果 (ping guo) to 坚果 (jian guo).
        """
        if not spaced_syllables or not self._pinyin_counts:
            return 0.0
        if self._exact in spaced_syllables:
            return 100.0
        if self._whole_syllables is None:  # three letters or fewer
            return PREFIX_SCORE if self._prefix in spaced_syllables else 0.0
        if self._whole_syllables.search(spaced_syllables):
            return 100.0  # the window equal to the word, which the typo search would find
        # Cheap C-level screen before building windows in Python.
        joined = spaced_syllables.replace(" ", "")
        if not fuzz.partial_ratio(self._word, joined, score_cutoff=70.0):
            return 0.0
        windows = _joined_windows(
            spaced_syllables.split(), shortest=self._shortest, longest=self._longest
        )
        match = process.extractOne(self._word, windows, scorer=fuzz.ratio, score_cutoff=80.0)
        return match[1] if match else 0.0


_AUX_FULL = 100.0 * W_AUX
"""A whole match outside the name: nothing but the name can do better."""
_INITIALS_FULL = 100.0 * W_INITIALS
_SCATTERED_FULL = 100.0 * W_SCATTERED_SYLLABLES
_PINYIN_CEILING = max(100.0 * W_PINYIN, 100.0 * W_AUX_PINYIN)
_OUTSIDE_NAME_CEILING = max(
    PREFIX_SCORE * W_NAME, 100.0 * W_AUX, _PINYIN_CEILING, 100.0 * W_INITIALS
)
"""What a query word scores at most without being, or nearly being, a word of the name."""


def _cjk_coverage(text: str, name: str, aux_cjk: str) -> float:
    """How much of a Chinese query run the document contains, name weighing most.

    Whole in the name: 100. Otherwise every character and bigram is looked up in
    the name, then in the other fields: 60% character coverage plus 40% bigram
    coverage. Chinese queries come without spaces, so this is what lets "新鲜苹果"
    find 苹果 (name) tagged 新鲜, and "烟台苹果" find 烟台红富士苹果, while a
    character found nowhere ("苹果汁" where no juice is sold) keeps the score low.
    """
    if text in name:
        return 100.0 * W_NAME
    if text in aux_cjk:
        return 100.0 * W_AUX
    if len(text) < 2:
        return 0.0

    def weight(piece: str) -> float:
        if piece in name:
            return W_NAME
        return W_AUX if piece in aux_cjk else 0.0

    chars = sum(map(weight, text)) / len(text)
    bigrams = [text[start : start + 2] for start in range(len(text) - 1)]
    return 100.0 * (0.6 * chars + 0.4 * sum(map(weight, bigrams)) / len(bigrams))


def _syllable_coverage(syllables: tuple[str, ...], spaced_syllables: str) -> float:
    """Syllables of a Chinese query in the name's: 平果 (ping guo) finds 苹果 (ping guo).

    100 for a contiguous match; otherwise 60% in-order syllable coverage (LCS) plus
    40% coverage of adjacent syllable pairs.
    """
    if not syllables or not spaced_syllables:
        return 0.0
    if _spaced(syllables) in spaced_syllables:
        return 100.0
    if len(syllables) < 2:
        return 0.0
    common = LCSseq.similarity(syllables, spaced_syllables.split())
    if not common:
        return 0.0
    pairs = [f" {first} {second} " for first, second in zip(syllables, syllables[1:], strict=False)]
    found = sum(1 for pair in pairs if pair in spaced_syllables)
    return 100.0 * (0.6 * common / len(syllables) + 0.4 * found / len(pairs))


def _joined_windows(items: Sequence[str], *, shortest: int, longest: int) -> list[str]:
    """Every run of consecutive items, joined, whose length is within the bounds."""
    windows: list[str] = []
    count = len(items)
    for start in range(count):
        joined = items[start]
        stop = start + 1
        while len(joined) <= longest:
            if len(joined) >= shortest:
                windows.append(joined)
            if stop == count:
                break
            joined += items[stop]
            stop += 1
    return windows

"""The shop's own words: search synonyms and the answers staff give to shop questions.

Staff edit them from chat (`/synonym`, `/faq`); the catalog in memory carries them
(`commerce.catalog.read`), so a search or a question reads them from memory. Every
write publishes `CatalogChanged()`: the words are read again in the same transaction and
applied once it commits; other workers read them again at their next refresh.

Built in, for every shop: everyday names (`everyday_names.toml`: 提子 → 葡萄, 保温壶 →
保温杯, headphones → 耳机). One applies only where the catalog does not use the word
itself and does use what it means, and never over a staff synonym for the same word.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.catalog.models import FaqAnswer, SearchSynonym
from commerce.events import CatalogChanged, publish

MAX_WORD = 32
MAX_MEANS = 64
MAX_ANSWER = 500


@dataclass(frozen=True, slots=True)
class FaqView:
    keyword: str
    answer: str


@dataclass(frozen=True, slots=True)
class Lexicon:
    """Synonyms (word → what it means) and staff answers, as the snapshot holds them."""

    synonyms: tuple[tuple[str, str], ...] = ()  # longest words first
    faqs: tuple[FaqView, ...] = ()
    _words: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.synonyms:  # one pass, longest word first: what a word means is never rewritten again
            alternatives = "|".join(_as_pattern(word) for word, _ in self.synonyms)
            object.__setattr__(self, "_words", re.compile(alternatives))

    def rewrite(self, query: str) -> str:
        """The query in the shop's own words ("提子" → "巨峰葡萄"); unchanged when none apply."""
        if self._words is None:
            return query
        means = dict(self.synonyms)
        lowered = key(query)
        rewritten = self._words.sub(lambda found: f" {means[found.group()]} ", lowered)
        return " ".join(rewritten.split()) if rewritten != lowered else query

    def with_everyday_names(self, catalog_text: str) -> Lexicon:
        """This lexicon plus the built-in everyday names that fit a catalog whose names, tags
        and categories are `catalog_text`: a name the catalog uses itself, or one staff
        gave a meaning, is left alone; it means the first of its words the catalog uses."""
        text = key(catalog_text)
        return self.with_everyday_names_used(lambda word: word in text)

    def with_everyday_names_used(self, uses: Callable[[str], bool]) -> Lexicon:
        """`with_everyday_names` for a catalog that `uses(word)` (one of `everyday_words()`),
        as the catalog in memory answers it from its counts, without joining its text."""
        staff = {word for word, _ in self.synonyms}
        added = [
            (word, means)
            for word, candidates in everyday_names()
            if word not in staff and not uses(word)
            for means in [next((c for c in candidates if uses(c)), None)]
            if means is not None
        ]
        if not added:
            return self
        synonyms = sorted([*self.synonyms, *added], key=lambda s: (-len(s[0]), s[0]))
        return Lexicon(synonyms=tuple(synonyms), faqs=self.faqs)

    def answer(self, text: str) -> FaqView | None:
        """The staff answer whose keyword the text contains (the longest keyword wins)."""
        lowered = key(text)
        return next((faq for faq in self.faqs if faq.keyword in lowered), None)


NO_LEXICON = Lexicon()


def key(word: str) -> str:
    return unicodedata.normalize("NFKC", word).strip().lower()


def _as_pattern(word: str) -> str:
    """A latin word matches whole words only ("tee" is not in "coffee"); Chinese anywhere."""
    escaped = re.escape(word)
    return rf"(?<![a-z0-9]){escaped}(?![a-z0-9])" if word.isascii() else escaped


@lru_cache(maxsize=1)
def everyday_names() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The built-in table (`everyday_names.toml`), read once: (name, the words it may mean)."""
    raw = resources.files("commerce.catalog").joinpath("everyday_names.toml").read_text(encoding="utf-8")
    names: dict[str, list[str]] = tomllib.loads(raw)["names"]
    return tuple((key(name), tuple(key(m) for m in means)) for name, means in names.items())


@lru_cache(maxsize=1)
def everyday_words() -> tuple[str, ...]:
    """Every word of the built-in table, names and what they mean: what a catalog is asked
    whether it uses."""
    return tuple(dict.fromkeys(word for name, means in everyday_names() for word in (name, *means)))


def fits(word: str, *, longest: int = MAX_WORD) -> bool:
    """Whether staff typed a word the lexicon can keep (the bot checks before calling)."""
    return 0 < len(key(word)) <= longest


def _checked(word: str, *, longest: int) -> str:
    word = key(word)
    if not word or len(word) > longest:
        raise ValueError(f"a lexicon word is 1 to {longest} characters")
    return word


async def load(session: AsyncSession) -> Lexicon:
    synonyms = (await session.scalars(select(SearchSynonym))).all()
    faqs = (await session.scalars(select(FaqAnswer))).all()
    by_length = sorted(synonyms, key=lambda s: (-len(s.word), s.word))
    return Lexicon(
        synonyms=tuple((s.word, s.means) for s in by_length),
        faqs=tuple(FaqView(f.keyword, f.answer) for f in sorted(faqs, key=lambda f: (-len(f.keyword), f.keyword))),
    )


async def set_synonym(session: AsyncSession, *, word: str, means: str) -> tuple[Any, Any]:
    """`word` now searches `means`; (before, after) for the audit log."""
    word, means = _checked(word, longest=MAX_WORD), _checked(means, longest=MAX_MEANS)
    row = await session.get(SearchSynonym, word)
    before = None if row is None else {"word": row.word, "means": row.means}
    if row is None:
        session.add(SearchSynonym(word=word, means=means))
    else:
        row.means = means
    await session.flush()
    await publish(session, CatalogChanged())
    return before, {"word": word, "means": means}


async def delete_synonym(session: AsyncSession, *, word: str) -> Any:
    """Forget a synonym; what it was (None: there was none)."""
    row = await session.get(SearchSynonym, key(word))
    if row is None:
        return None
    before = {"word": row.word, "means": row.means}
    await session.delete(row)
    await session.flush()
    await publish(session, CatalogChanged())
    return before


async def list_synonyms(session: AsyncSession) -> list[tuple[str, str]]:
    rows = (await session.scalars(select(SearchSynonym).order_by(SearchSynonym.word))).all()
    return [(r.word, r.means) for r in rows]


async def set_faq(session: AsyncSession, *, keyword: str, answer: str) -> tuple[Any, Any]:
    """A message containing `keyword` is answered with `answer`; (before, after)."""
    keyword = _checked(keyword, longest=MAX_WORD)
    answer = answer.strip()
    if not answer or len(answer) > MAX_ANSWER:
        raise ValueError(f"an answer is 1 to {MAX_ANSWER} characters")
    row = await session.scalar(select(FaqAnswer).where(FaqAnswer.keyword == keyword))
    before = None if row is None else {"keyword": row.keyword, "answer": row.answer}
    if row is None:
        session.add(FaqAnswer(keyword=keyword, answer=answer))
    else:
        row.answer = answer
    await session.flush()
    await publish(session, CatalogChanged())
    return before, {"keyword": keyword, "answer": answer}


async def list_faqs(session: AsyncSession) -> list[FaqView]:
    rows = (await session.scalars(select(FaqAnswer).order_by(FaqAnswer.keyword))).all()
    return [FaqView(r.keyword, r.answer) for r in rows]


async def delete_faq(session: AsyncSession, *, keyword: str) -> Any:
    """Forget a staff answer; what it was (None: there was none)."""
    keyword = key(keyword)
    row = await session.scalar(select(FaqAnswer).where(FaqAnswer.keyword == keyword))
    if row is None:
        return None
    before = {"keyword": row.keyword, "answer": row.answer}
    await session.execute(delete(FaqAnswer).where(FaqAnswer.id == row.id))
    await publish(session, CatalogChanged())
    return before

"""The shop's own words: search synonyms and the answers staff give to shop questions.

Staff edit them from chat (`/synonym`, `/faq`); the catalog snapshot carries them
(`commerce.catalog.read`), so a search or a question reads them from memory. Every
write publishes `CatalogChanged`: the snapshot is read again once it commits.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
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

    synonyms: tuple[tuple[str, str], ...] = ()
    faqs: tuple[FaqView, ...] = ()

    def rewrite(self, query: str) -> str:
        """The query in the shop's own words ("提子" → "巨峰葡萄"); unchanged when none apply."""
        if not self.synonyms:
            return query
        lowered = key(query)
        for word, means in self.synonyms:  # longest words first
            if word in lowered:
                lowered = lowered.replace(word, f" {means} ")
        return " ".join(lowered.split()) if lowered != key(query) else query

    def answer(self, text: str) -> FaqView | None:
        """The staff answer whose keyword the text contains (the longest keyword wins)."""
        lowered = key(text)
        return next((faq for faq in self.faqs if faq.keyword in lowered), None)


NO_LEXICON = Lexicon()


def key(word: str) -> str:
    return unicodedata.normalize("NFKC", word).strip().lower()


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

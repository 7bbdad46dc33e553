"""The events worth counting: a checked value per event, their batch insert, and their pruning.

`Event` is the pure value of one row of `shop_events` (`commerce.analytics.models` says
which columns each kind fills); it is made by the function of its kind (`search(...)`,
`paid(...)`, ...), which checks it: ids are the shop's own positive integers (there is
no place for an openid), a query is normalised (NFKC, lower case, spaces collapsed) and
cut to `QUERY_MAX` characters.

Events are never written in a shop transaction. Who records them collects them in
memory (the bot's `bot.analytics.EventBuffer`) and writes them with `write_events`: one
executemany INSERT, in a short transaction of its own, every few seconds.

What the commerce core itself counts (an order placed, a payment, a cart line, a review,
a follow through a share) happens in a transaction that may still roll back, so it is
only `note`d on the session there; once that transaction commits, the noted events go
to the session's sink (`SESSION_ANALYTICS`, set by `commerce.wiring.shop_sessions`).
A rolled-back transaction counts nothing, and a session without a sink (a script, the
analytics turned off) notes nothing.
"""

from __future__ import annotations

import unicodedata
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from commerce.analytics.models import QUERY_MAX, EventKind, ShopEvent

SESSION_ANALYTICS = "storefront.analytics"  # session.info: the sink of committed events
_NOTED = "storefront.analytics.noted"  # session.info: what this transaction noted so far
_MARKS = "storefront.analytics.savepoints"  # savepoint -> how many events were noted before it
ID_MAX = 2**31 - 1  # the id columns are INTEGER
PRUNE_BATCH = 5_000  # rows deleted per statement: short transactions on a big table

Sink = Callable[[Sequence["Event"]], None]


def normalise_query(text: str) -> str:
    """What a customer searched for, as the dashboard groups it: NFKC (full-width letters
    and digits become ASCII), lower case, runs of spaces one space, at most `QUERY_MAX`."""
    folded = " ".join(unicodedata.normalize("NFKC", text).lower().split())
    return folded[:QUERY_MAX].rstrip()


def _id(value: int | None, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= ID_MAX:
        raise ValueError(f"{what} must be a positive integer id or None, got {value!r}")
    return value


def _count(value: int | None, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= ID_MAX:
        raise ValueError(f"{what} must be a whole number from 0, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Event:
    """One countable thing, as its row will hold it. Build it with its kind's function."""

    kind: EventKind
    customer_id: int | None = None
    product_id: int | None = None
    order_id: int | None = None
    referrer_id: int | None = None
    query: str | None = None
    results: int | None = None
    amount_fen: int | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", EventKind(self.kind))
        for name in ("customer_id", "product_id", "order_id", "referrer_id"):
            _id(getattr(self, name), name)
        for name in ("results", "amount_fen"):
            _count(getattr(self, name), name)
        if self.query is not None:
            if not isinstance(self.query, str):
                raise ValueError("query must be text")
            object.__setattr__(self, "query", normalise_query(self.query))
        if self.at.tzinfo is None:
            raise ValueError("at must be an aware datetime")

    def row(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "at": self.at,
            "customer_id": self.customer_id,
            "product_id": self.product_id,
            "order_id": self.order_id,
            "referrer_id": self.referrer_id,
            "query": self.query,
            "results": self.results,
            "amount_fen": self.amount_fen,
        }


def _who(customer_id: int) -> int | None:
    """A turn's customer id; 0 (not known) is no customer."""
    return customer_id or None


# ---- one function per kind: the columns models.py names for it -------------------------------


def message(customer_id: int) -> Event:
    return Event(EventKind.MESSAGE, customer_id=_who(customer_id))


def search(customer_id: int, query: str, results: int) -> Event:
    return Event(EventKind.SEARCH, customer_id=_who(customer_id), query=query, results=results)


def card(customer_id: int, product_id: int) -> Event:
    return Event(EventKind.CARD, customer_id=_who(customer_id), product_id=product_id)


def cart_add(customer_id: int, product_id: int) -> Event:
    return Event(EventKind.CART_ADD, customer_id=_who(customer_id), product_id=product_id)


def checkout(customer_id: int) -> Event:
    return Event(EventKind.CHECKOUT, customer_id=_who(customer_id))


def _amount(fen: int) -> int:
    """An order's money as the INTEGER column holds it: past ¥21 million, that maximum (a
    count must never stop an order that the BIGINT money columns take)."""
    return min(max(fen, 0), ID_MAX)


def order(customer_id: int, order_id: int, amount_fen: int) -> Event:
    return Event(EventKind.ORDER, customer_id=_who(customer_id), order_id=order_id, amount_fen=_amount(amount_fen))


def paid(customer_id: int, order_id: int, amount_fen: int) -> Event:
    return Event(EventKind.PAID, customer_id=_who(customer_id), order_id=order_id, amount_fen=_amount(amount_fen))


def share(customer_id: int, product_id: int | None = None) -> Event:
    return Event(EventKind.SHARE, customer_id=_who(customer_id), product_id=product_id)


def follow(customer_id: int, referrer_id: int) -> Event:
    return Event(EventKind.FOLLOW, customer_id=_who(customer_id), referrer_id=referrer_id)


def review(customer_id: int, order_id: int, product_id: int | None) -> Event:
    return Event(EventKind.REVIEW, customer_id=_who(customer_id), order_id=order_id, product_id=product_id)


# ---- writing and pruning ----------------------------------------------------------------------


async def write_events(engine: AsyncEngine, events: Sequence[Event]) -> None:
    """One executemany INSERT of `events`, in a transaction of its own (never a shop one)."""
    if not events:
        return
    async with engine.begin() as connection:
        await connection.execute(insert(ShopEvent), [e.row() for e in events])


async def prune_events(session: AsyncSession, *, before: datetime, batch: int = PRUNE_BATCH) -> int:
    """Delete the events older than `before`, `batch` rows a statement (the oldest first);
    how many. Deleting what is gone already deletes nothing: any worker may run it."""
    deleted = 0
    while True:
        oldest = select(ShopEvent.id).where(ShopEvent.at < before).order_by(ShopEvent.id).limit(batch)
        ids = list((await session.scalars(oldest)).all())
        if not ids:
            return deleted
        await session.execute(
            delete(ShopEvent).where(ShopEvent.id.in_(ids)).execution_options(synchronize_session=False)
        )
        deleted += len(ids)
        if len(ids) < batch:
            return deleted


# ---- events of a transaction: counted once it commits -----------------------------------------


def counting(session: AsyncSession | Session) -> bool:
    """Whether what this session notes is counted (it has a sink): a caller may skip the
    queries an event needs when it is not."""
    return callable(session.info.get(SESSION_ANALYTICS))


def note(session: AsyncSession | Session, events: Event | Iterable[Event]) -> None:
    """Count `events` once the session's transaction commits (nothing when it rolls back)."""
    if not counting(session):
        return
    noted = session.info.setdefault(_NOTED, [])
    noted.extend((events,) if isinstance(events, Event) else events)


def install(session_class: type[Session]) -> None:
    """Hand what sessions of `session_class` noted to their sink after each commit."""
    if not sa_event.contains(session_class, "after_commit", _committed):
        sa_event.listen(session_class, "after_commit", _committed)
        sa_event.listen(session_class, "after_transaction_end", _ended)
        sa_event.listen(session_class, "after_transaction_create", _began)
        sa_event.listen(session_class, "after_soft_rollback", _rolled_back)


def _committed(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint's release: its transaction may still roll back
        return
    noted: list[Event] | None = session.info.pop(_NOTED, None)
    sink = session.info.get(SESSION_ANALYTICS)
    if noted and callable(sink):
        sink(noted)


def _began(session: Session, transaction: SessionTransaction) -> None:
    """A savepoint remembers how much was noted before it, for its rollback."""
    if transaction.nested and counting(session):
        marks = session.info.setdefault(_MARKS, weakref.WeakKeyDictionary())
        marks[transaction] = len(session.info.get(_NOTED, ()))


def _rolled_back(session: Session, transaction: SessionTransaction) -> None:
    """A savepoint rolled back: what was noted inside it never happened (a flash winner
    whose order was written before the sale's last unit went to another)."""
    if not transaction.nested:
        return
    mark = session.info.get(_MARKS, {}).get(transaction)
    noted = session.info.get(_NOTED)
    if mark is not None and noted is not None:
        del noted[mark:]


def _ended(session: Session, transaction: SessionTransaction) -> None:
    """The outermost transaction ended: what it noted and did not commit is dropped (a
    savepoint's end drops nothing: its transaction may still commit)."""
    if transaction.parent is None:
        session.info.pop(_NOTED, None)

"""The inbound journal: every customer message written down, claimed with a lease, answered once.

A worker that takes a message from WeChat writes it down (`claim`) before answering
anything but its real reply; the row's unique key (WeChat's de-duplication key) is the
claim across workers: an INSERT that does nothing on a conflict, so of two workers
exactly one gets the row (PostgreSQL makes the second wait for the first, SQLite
serialises writers). The claimer holds a lease (`lease_owner`, `lease_until`) and
renews it while it works (`renew`); when it dies the message is taken over (`claim` by
WeChat's retry, or `take_expired` by another worker's sweeper) at once when the
supervisor that saw it die hands its messages back (`release_owner`), else when the
lease runs out (a worker without that supervisor, or one that died with it).

The finishing write (`finish`) is fenced: it stores the reply only while its writer
still holds the lease, so of a slow worker and the one that took over exactly one
answers. The turn's own transactions are fenced too (`fenced`, `install_fence`): a
transaction that writes, committed while processing a message, also marks the message's
row (`effects`) and is refused (`TakenOver`) when another worker holds the message now.
So a message whose turn committed its changes before its worker died is never
processed again (`Claimed.effects`: the new holder answers without processing it), and a
worker presumed dead cannot commit changes for a message another worker took over. An answered row keeps its reply for WeChat's retries until `lease_until` (the
end of the de-duplication window) and the shop's retention (`service.keep_days`: the
journal is the record of the conversations), then `prune` deletes it.

`claim` also wakes what waited for the customer to write (as `outbox.wake_waiting`:
notices held by 45015 are due, and the window's count starts over) in the same
transaction, for every message that opens the window: one indexed UPDATE. Each function commits nothing;
the caller's transaction does. They block: run them off the event loop (bot.wechat.intake).

    (none) --claim--> processing --finish--> answered --prune--> (none)
    processing --lease runs out--> (taken over: claim / take_expired) --> processing
    processing --release (a stopping worker)--> received --take_expired--> processing
    processing --release_owner (its worker died)--> received --claim / take_expired--> processing
    processing --postpone (the database stayed busy)--> received --take_expired--> processing
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    BindParameter,
    Boolean,
    Table,
    Update,
    bindparam,
    delete,
    event,
    literal,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from commerce.db import rowcount
from commerce.messaging import outbox
from commerce.messaging.models import InboundMessage, InboundStatus
from commerce.rules import as_utc

OPEN = (InboundStatus.RECEIVED.value, InboundStatus.PROCESSING.value)
PRUNE_BATCH = 500
OWNER_LIMIT = 32  # the lease_owner column
# Core statements on a (blocking) connection, not ORM ones on a session: every message pays
# for these. The caller runs a batch of them in one go: on SQLite in a thread of its own
# (one hand-over to it for the whole batch, instead of one per statement and commit, which
# measured several times their cost), on PostgreSQL through `AsyncConnection.run_sync`.
T = cast(Table, InboundMessage.__table__)


@dataclass(frozen=True, slots=True)
class Claimed:
    """A message this worker now holds: `attempts` > 1 when it was taken over; `effects`:
    its turn had committed changes before (answer it, do not process it again)."""

    key: str
    openid: str
    message: dict[str, Any]
    attempts: int
    deferred: bool
    effects: bool = False


class TakenOver(Exception):
    """A turn's transaction was refused: another worker holds its message now."""


@dataclass(slots=True)
class Fence:
    """The turn of message `key`, held by `owner`; `marked`: a transaction of the turn wrote
    and marked the message (so running the turn again would repeat that write)."""

    key: str
    owner: str
    marked: bool = False


_FENCE: ContextVar[Fence | None] = ContextVar("inbound_fence", default=None)
_WROTE = "inbound_fence_wrote"
_MARKED = "inbound_fence_marked"  # the transaction that marked its message early (`mark_early`)


@contextmanager
def fenced(*, key: str, owner: str) -> Iterator[Fence]:
    """The transactions committed inside are the turn of message `key`, held by `owner`."""
    fence = Fence(key, owner)
    token = _FENCE.set(fence)
    try:
        yield fence
    finally:
        _FENCE.reset(token)


def install_fence(session_class: type[Session]) -> None:
    """Fence the commits of `session_class` made inside `fenced` (see the module)."""
    for name, listener in (
        ("do_orm_execute", _note_statement), ("after_flush", _note_flush), ("before_commit", _check_fence),
        ("after_rollback", _forget_writes),
    ):
        if not event.contains(session_class, name, listener):
            event.listen(session_class, name, listener)


def _note_statement(state: ORMExecuteState) -> None:
    if _FENCE.get() is not None and (state.is_insert or state.is_update or state.is_delete):
        state.session.info[_WROTE] = True


def _note_flush(session: Session, _flush: UOWTransaction) -> None:
    if _FENCE.get() is not None:
        session.info[_WROTE] = True


def _forget_writes(session: Session) -> None:
    """`after_rollback`: what the rolled-back transaction wrote (or marked) is gone; the next
    commit of the turn marks the message only if it writes itself."""
    session.info.pop(_WROTE, None)
    session.info.pop(_MARKED, None)


def _check_fence(session: Session) -> None:
    """`before_commit`: a writing transaction of a fenced turn marks its message, or is refused."""
    fence = _FENCE.get()
    if fence is None or session.in_nested_transaction():
        return  # a savepoint's release: the outer commit marks the message, once
    wrote = session.info.pop(_WROTE, False) or session.new or session.dirty or session.deleted
    if session.info.pop(_MARKED, None) is session.get_transaction():
        return  # marked already, early in this very transaction (`mark_early`)
    if not wrote:
        return
    result = session.execute(_mark(fence))
    if rowcount(result) != 1:
        raise TakenOver(fence.key)
    fence.marked = True  # this transaction holds the write lock now: its commit goes through


def _mark(fence: Fence) -> Update:
    return update(T).where(T.c.key == fence.key, T.c.lease_owner == fence.owner).values(effects=True)


async def mark_early(session: AsyncSession) -> None:
    """Mark the fenced turn's message now, in the session's transaction, instead of at its
    commit (TakenOver when another worker holds it): for a transaction that writes contended
    rows last, so that its commit comes right after them (a flash grab: the one statement
    fewer while it holds the rows every winner writes). Rolled back with the transaction.
    Outside a fence, nothing. On SQLite nothing either: there the first write takes the
    database's one write lock, and marking first would hold it over the reads before the
    transaction's own first write; the mark stays at the commit."""
    fence = _FENCE.get()
    if fence is None or session.get_bind().dialect.name == "sqlite":
        return
    if rowcount(await session.execute(_mark(fence))) != 1:
        raise TakenOver(fence.key)
    fence.marked = True
    session.info[_MARKED] = session.sync_session.get_transaction()


@dataclass(frozen=True, slots=True)
class Entry:
    """What a delivery that does not hold the message sees of it."""

    status: str
    deferred: bool
    reply: dict[str, Any] | None
    lease_until: datetime

    @property
    def answered(self) -> bool:
        return self.status == InboundStatus.ANSWERED.value


def _prepared_claims() -> dict[str, Any]:
    """The claim's INSERT ... ON CONFLICT, built once per dialect (see `_PREPARED`)."""
    held_until: BindParameter[datetime] = bindparam("p_until", type_=T.c.lease_until.type)
    now: BindParameter[datetime] = bindparam("p_now", type_=T.c.received_at.type)
    values = {
        "key": bindparam("p_key"), "openid": bindparam("p_openid"), "message": bindparam("p_message"),
        "status": InboundStatus.PROCESSING.value, "lease_owner": bindparam("p_owner"), "lease_until": held_until,
        "attempts": 1, "deferred": False, "effects": False, "received_at": now,
    }
    take_over = {
        "status": InboundStatus.PROCESSING.value, "lease_owner": bindparam("p_owner"), "lease_until": held_until,
        "attempts": T.c.attempts + 1,
    }
    expired = T.c.status.in_(OPEN) & (T.c.lease_until < now)
    prepared: dict[str, Any] = {
        name: insert(T).values(values)
        .on_conflict_do_update(index_elements=[T.c.key], set_=take_over, where=expired)
        .returning(T.c.attempts, T.c.deferred, T.c.effects)
        for name, insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
    }
    prepared[_WAKING] = _claim_and_wake(prepared["postgresql"])
    return prepared


def _claim_and_wake(claim: Any) -> Any:
    """On PostgreSQL, the claim and `_wake_waiting` in one statement: the wake and the
    count's reset as data-modifying CTEs, run only when the claim wrote a new message
    (attempts = 1), the reset only when the wake found rows. One round trip instead of two
    for every message: under a rush a batch of claims is the first thing a winner waits for,
    and each round trip waits its turn on a busy event loop."""
    claimed = claim.cte("claimed")
    fresh = select(claimed.c.attempts).where(claimed.c.attempts == 1).exists()
    woke = outbox.WAKE.where(fresh).returning(literal_column("1").label("one")).cte("woke")
    reset = outbox.RESET_COUNT.where(select(woke.c.one).exists()).returning(literal_column("1").label("one")).cte("reset")
    return select(claimed.c.attempts, claimed.c.deferred, claimed.c.effects).add_cte(woke, reset)


# Every message pays for these: built once, with bound parameters (building a statement
# measured more than running it), executed with a parameter dict.
_WAKING = "postgresql+wake"
_PREPARED = _prepared_claims()
_ENTRY = select(T.c.status, T.c.deferred, T.c.reply, T.c.lease_until).where(T.c.key == bindparam("p_key"))
_GIVE_UP = update(T).where(T.c.key == bindparam("p_key"), T.c.status.in_(OPEN)).values(deferred=True)
_FINISH = (
    update(T)
    .where(
        T.c.key == bindparam("p_key"),
        T.c.lease_owner == bindparam("p_owner"),
        T.c.status == InboundStatus.PROCESSING.value,
    )
    .values(
        status=InboundStatus.ANSWERED.value, reply=bindparam("p_reply"), answered_at=bindparam("p_now"),
        lease_until=bindparam("p_keep_until"), deferred=or_(T.c.deferred, bindparam("p_given_up", type_=Boolean)),
    )
    .returning(T.c.deferred)
)


def claim(
    conn: Connection,
    *,
    key: str,
    openid: str,
    message: dict[str, Any],
    owner: str,
    now: datetime,
    lease: timedelta,
    opens_window: bool,
) -> Claimed | None:
    """Write the message down and hold it, or take it over when its lease ran out.

    None: another worker holds it (a live lease) or it was answered already.
    """
    waking = opens_window and conn.dialect.name == "postgresql"  # the wake within the claim
    statement = _PREPARED.get(_WAKING if waking else conn.dialect.name)
    if statement is None:
        raise RuntimeError(f"unsupported database dialect {conn.dialect.name!r}")
    params = {
        "p_key": key, "p_openid": openid, "p_message": message, "p_owner": owner,
        "p_until": as_utc(now + lease), "p_now": as_utc(now),
    }
    row = conn.execute(statement, params).first()
    if row is None:
        return None
    if row.attempts == 1 and opens_window and not waking:
        _wake_waiting(conn, openid, now=now)
    return Claimed(key, openid, message, int(row.attempts), bool(row.deferred), bool(row.effects))


def _wake_waiting(conn: Connection, openid: str, *, now: datetime) -> None:
    """`outbox.wake_waiting`, on this connection: one indexed UPDATE; the window's count starts
    over only when something was waiting."""
    if rowcount(conn.execute(outbox.WAKE, {"p_openid": openid, "p_now": as_utc(now)})):
        conn.execute(outbox.RESET_COUNT, {"p_openid": openid})


def entry(conn: Connection, key: str) -> Entry | None:
    row = conn.execute(_ENTRY, {"p_key": key}).first()
    if row is None:
        return None
    return Entry(row.status, bool(row.deferred), dict(row.reply) if row.reply else None, as_utc(row.lease_until))


def give_up(conn: Connection, key: str) -> Entry | None:
    """A delivery stops waiting: an unanswered message is deferred (its reply will go out as a
    customer-service message); an answered one is returned as it is (the reply came in time)."""
    conn.execute(_GIVE_UP, {"p_key": key})
    return entry(conn, key)


def finish(
    conn: Connection, *, key: str, owner: str, reply: dict[str, Any], now: datetime, keep: timedelta,
    given_up: bool = False,
) -> bool | None:
    """Store the reply if `owner` still holds the message (the fence): whether it was deferred
    (no delivery waits for it), or None when the lease was lost to another worker.
    `given_up`: a delivery stopped waiting and could not write so (`give_up`): deferred now."""
    params = {
        "p_key": key, "p_owner": owner, "p_reply": reply, "p_now": as_utc(now), "p_keep_until": as_utc(now + keep),
        "p_given_up": given_up,
    }
    row = conn.execute(_FINISH, params).first()
    return None if row is None else bool(row.deferred)


def renew(conn: Connection, *, owner: str, keys: list[str], now: datetime, lease: timedelta) -> int:
    """Push the leases of the messages `owner` works on forward; how many it still holds."""
    result = conn.execute(
        update(T)
        .where(
            T.c.key.in_(keys),
            T.c.lease_owner == owner,
            T.c.status == InboundStatus.PROCESSING.value,
        )
        .values(lease_until=as_utc(now + lease))
    )
    return rowcount(result)


def expired_keys(conn: Connection, *, now: datetime, limit: int = 100) -> list[str]:
    """Unanswered messages nobody holds (a dead worker's, a released one), oldest first."""
    rows = conn.scalars(
        select(T.c.key)
        .where(T.c.status.in_(OPEN), T.c.lease_until < as_utc(now))
        .order_by(T.c.received_at, T.c.key)
        .limit(limit)
    )
    return list(rows.all())


def take_expired(
    conn: Connection, key: str, *, owner: str, now: datetime, lease: timedelta
) -> Claimed | None:
    """Take over a message whose lease ran out; None when another worker was first.

    Nobody waits for its reply any more (the delivery that did died with its worker), so
    it is deferred: the reply goes out as a customer-service message.
    """
    row = (
        conn.execute(
            update(T)
            .where(
                T.c.key == key,
                T.c.status.in_(OPEN),
                T.c.lease_until < as_utc(now),
            )
            .values(
                status=InboundStatus.PROCESSING.value, lease_owner=owner, lease_until=as_utc(now + lease),
                attempts=T.c.attempts + 1, deferred=True,
            )
            .returning(T.c.openid, T.c.message, T.c.attempts, T.c.effects)
        )
    ).first()
    if row is None:
        return None
    return Claimed(key, row.openid, dict(row.message), int(row.attempts), True, bool(row.effects))


def release(conn: Connection, *, owner: str, keys: list[str], now: datetime) -> int:
    """A stopping worker hands back what it did not finish: due for the sweepers at once."""
    result = conn.execute(
        update(T)
        .where(
            T.c.key.in_(keys),
            T.c.lease_owner == owner,
            T.c.status == InboundStatus.PROCESSING.value,
        )
        .values(status=InboundStatus.RECEIVED.value, lease_owner="", lease_until=as_utc(now))
    )
    return rowcount(result)


def new_owner() -> str:
    """A fresh lease owner: one per worker process, for its life (a restarted worker is a new one)."""
    return secrets.token_hex(8)


def release_owner(conn: Connection, *, owner: str, now: datetime) -> int:
    """A dead worker's unanswered messages, due at once: what the supervisor of
    `serve --workers N` runs the moment it sees the worker `owner` die (one UPDATE), so
    that WeChat's next retry or any worker's sweeper takes them over now instead of when
    their leases would have run out. How many it handed back.

    Only for an owner known to be dead: a live one would lose its messages, and the fence
    would then refuse its turn's commits (another worker may hold them by then)."""
    if not owner:
        raise ValueError("release_owner needs the dead worker's owner")
    result = conn.execute(
        update(T)
        .where(T.c.lease_owner == owner, T.c.status == InboundStatus.PROCESSING.value)
        .values(status=InboundStatus.RECEIVED.value, lease_owner="", lease_until=as_utc(now))
    )
    return rowcount(result)


def postpone(
    conn: Connection, *, key: str, owner: str, until: datetime, given_up: bool = False
) -> bool | None:
    """`owner` could not process the message now (the database stayed busy): hand it back,
    unanswered, for a sweeper to take at `until`. Whether it was deferred (no delivery waits
    for a reply), or None when `owner` no longer held it. `given_up`: as for `finish`."""
    row = conn.execute(
        update(T)
        .where(T.c.key == key, T.c.lease_owner == owner, T.c.status == InboundStatus.PROCESSING.value)
        .values(
            status=InboundStatus.RECEIVED.value, lease_owner="", lease_until=as_utc(until),
            deferred=or_(T.c.deferred, literal(given_up, Boolean)),
        )
        .returning(T.c.deferred)
    ).first()
    return None if row is None else bool(row.deferred)


def prune(conn: Connection, *, now: datetime, keep: timedelta = timedelta(0), limit: int = PRUNE_BATCH) -> int:
    """Delete up to `limit` answered rows whose de-duplication window is over and that were
    received more than `keep` ago: the journal is also the record of what customers said
    and what the shop answered, kept for the shop's retention (`service.keep_days`)."""
    old = (
        select(T.c.key)
        .where(
            T.c.status == InboundStatus.ANSWERED.value, T.c.lease_until < as_utc(now),
            T.c.received_at < as_utc(now - keep),
        )
        .limit(limit)
    )
    result = conn.execute(
        delete(T).where(T.c.key.in_(old))
    )
    return rowcount(result)

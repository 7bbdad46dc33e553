"""Where dialog state lives between messages: in process (default), or in Redis and the database.

A stored dialog outlives its TTL by a grace period, so that the next message can be
told "your search expired" instead of being silently misread.

With Redis (several workers) the store is `DurableDialogStore`: Redis in front, the
database (`dialog_states`) behind it, written through on every change. A Redis that is
down, or restarted empty, costs a database read, never the customer's place in a card
or a checkout (issue 13). Why not Redis persistence (AOF) instead: it does not help
while Redis is down, it depends on how Redis is run (a managed Redis, a restart from an
empty volume), and the shop already writes to its database on most turns that change
a dialog (a cart add, an order), so one small upsert more is cheap and always there.

The database writes go through the intake journal's group commit (a `Writes`, given by
the app: `bot.wechat.intake.DurableReplyStore.write`): under a burst, the dialog changes
of concurrent turns share a transaction with their messages' claims and replies instead
of costing one each (a transaction measured ~0.4 ms of CPU on PostgreSQL). A customer
with no dialog is remembered in Redis too (`ABSENT`), so that their next message does
not read the database to learn it again.

Within one turn (`one_turn`, entered by the conversation) a key is read from the store
once (`TurnReads`): a turn asked for its dialog up to four times (the runtime loading it,
a handler checking it, parking, ending), each a Redis round trip waiting its turn on a
busy loop.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import asdict, dataclass, is_dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from redis.asyncio import Redis
from sqlalchemy import Connection

from bot.redis_link import RedisLink
from commerce.messaging.dialog_states import forget_dialog, load_dialog, save_dialog
from commerce.uow import UnitOfWorkFactory

GRACE_SECONDS = 7 * 24 * 3600
ABSENT = "-"  # the Redis value of "this customer has no dialog" (a dialog is a JSON object)
ABSENT_SECONDS = 24 * 3600
Writes = Callable[[Callable[[Connection], None]], Awaitable[None]]  # runs a short write, committed


@dataclass(frozen=True, slots=True)
class StoredDialog:
    dialog: str
    state: str
    version: int
    data: dict[str, Any]
    expires_at: float

    def expired(self, now: float | None = None) -> bool:
        return (now if now is not None else time.time()) >= self.expires_at

    def dumps(self) -> str:
        # The fields by hand: asdict(self) would deep-copy `data` (plain JSON values
        # already, see DialogRuntime) only to serialise the copy. A dataclass nested in
        # `data` still becomes an object, as asdict would make it.
        fields = {
            "dialog": self.dialog,
            "state": self.state,
            "version": self.version,
            "data": self.data,
            "expires_at": self.expires_at,
        }
        return json.dumps(fields, ensure_ascii=False, separators=(",", ":"), default=_plain)

    @classmethod
    def loads(cls, raw: str | bytes) -> StoredDialog | None:
        try:
            return cls(**json.loads(raw))
        except (TypeError, ValueError):
            return None  # unreadable state is dropped, never a crash


def _plain(value: Any) -> Any:
    """json.dumps' fallback: dataclass instances as dicts, anything else refused."""
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class DialogStore(Protocol):
    async def get(self, openid: str) -> StoredDialog | None: ...
    async def put(self, openid: str, stored: StoredDialog) -> None: ...
    async def delete(self, openid: str) -> None: ...


class _Reads:
    """What one turn read or wrote, serialised (a read hands out a fresh copy)."""

    __slots__ = ("closed", "seen")

    def __init__(self) -> None:
        self.seen: dict[str, str | None] = {}
        self.closed = False


_TURN_READS: ContextVar[_Reads | None] = ContextVar("storefront_dialog_turn_reads", default=None)


@contextlib.contextmanager
def one_turn() -> Iterator[None]:
    """The store's reads inside are remembered until it ends (one conversation turn: the
    customer's turns never overlap, `bot.wechat.inbox` holds them one at a time). A task
    started meanwhile that outlives the turn reads the store again."""
    reads = _Reads()
    token = _TURN_READS.set(reads)
    try:
        yield
    finally:
        reads.closed = True
        _TURN_READS.reset(token)


class TurnReads:
    """A dialog store whose reads inside `one_turn` are made once per key (what the turn
    writes is what it reads next); outside a turn it is the store itself."""

    def __init__(self, store: DialogStore) -> None:
        self.inner = store

    async def get(self, openid: str) -> StoredDialog | None:
        reads = _TURN_READS.get()
        if reads is None or reads.closed:
            return await self.inner.get(openid)
        if openid not in reads.seen:
            stored = await self.inner.get(openid)
            reads.seen[openid] = stored.dumps() if stored is not None else None
        raw = reads.seen[openid]
        return StoredDialog.loads(raw) if raw is not None else None

    async def put(self, openid: str, stored: StoredDialog) -> None:
        await self.inner.put(openid, stored)
        self._remember(openid, stored.dumps())

    async def delete(self, openid: str) -> None:
        reads = _TURN_READS.get()
        if reads is not None and not reads.closed and openid in reads.seen and reads.seen[openid] is None:
            return  # none this turn: nothing to delete (a write and a Redis command saved)
        await self.inner.delete(openid)
        self._remember(openid, None)

    @staticmethod
    def _remember(openid: str, raw: str | None) -> None:
        reads = _TURN_READS.get()
        if reads is not None and not reads.closed:
            reads.seen[openid] = raw


class MemoryDialogStore:
    """In-process store for the embedded single-process default."""

    def __init__(self, *, max_entries: int = 100_000) -> None:
        self._items: dict[str, tuple[str, float]] = {}
        self._max_entries = max_entries

    async def get(self, openid: str) -> StoredDialog | None:
        item = self._items.get(openid)
        if item is None:
            return None
        raw, keep_until = item
        if time.time() >= keep_until:
            self._items.pop(openid, None)
            return None
        return StoredDialog.loads(raw)

    async def put(self, openid: str, stored: StoredDialog) -> None:
        if len(self._items) >= self._max_entries and openid not in self._items:
            self._evict()
        # serialised like the Redis store, so both behave the same (no shared mutable data)
        self._items[openid] = (stored.dumps(), stored.expires_at + GRACE_SECONDS)

    async def delete(self, openid: str) -> None:
        self._items.pop(openid, None)

    def _evict(self) -> None:
        now = time.time()
        stale = [k for k, (_, until) in self._items.items() if until <= now]
        for key in stale or list(self._items)[: max(1, len(self._items) // 10)]:
            self._items.pop(key, None)


class RedisDialogStore:
    """Shared store for many workers: one JSON value per user, expiring in Redis."""

    def __init__(self, redis: Redis, *, prefix: str = "storefront:dialog:") -> None:
        self._redis = redis
        self._prefix = prefix

    async def get(self, openid: str) -> StoredDialog | None:
        raw = await self._redis.get(self._prefix + openid)
        return StoredDialog.loads(raw) if raw is not None and raw != ABSENT.encode() else None

    async def lookup(self, openid: str) -> StoredDialog | str | None:
        """The dialog; `ABSENT` when Redis knows there is none; None when it does not know."""
        raw = await self._redis.get(self._prefix + openid)
        if raw is None:
            return None
        if raw == ABSENT.encode():
            return ABSENT
        return StoredDialog.loads(raw) or ABSENT  # unreadable: dropped, as `get` does

    async def put(self, openid: str, stored: StoredDialog) -> None:
        ttl = max(1, int(stored.expires_at - time.time()) + GRACE_SECONDS)
        await self._redis.set(self._prefix + openid, stored.dumps(), ex=ttl)

    async def delete(self, openid: str) -> None:
        await self._redis.delete(self._prefix + openid)

    async def mark_absent(self, openid: str) -> None:
        await self._redis.set(self._prefix + openid, ABSENT, ex=ABSENT_SECONDS)


async def _missing() -> None:
    return None


class DurableDialogStore:
    """Redis first, the database always: a dialog survives Redis down or restarted empty.

    Every change is written to the database (through `writes`), then to Redis (best
    effort). A read asks Redis, then the database when Redis does not know (a miss, a
    failure), or may hold an older dialog (one this worker changed while Redis failed:
    `_behind`), and puts what it found back into Redis for the next message: the dialog,
    or `ABSENT` when there is none.
    """

    def __init__(self, cache: RedisDialogStore, link: RedisLink, uows: UnitOfWorkFactory, writes: Writes) -> None:
        self._cache = cache
        self._link = link
        self._uows = uows
        self._writes = writes
        self._behind: set[str] = set()  # keys whose Redis copy may be older than the database's

    async def get(self, openid: str) -> StoredDialog | None:
        if openid not in self._behind:
            cached = await self._link.attempt("dialogs", lambda: self._cache.lookup(openid), _missing)
            if cached is not None:
                return None if cached == ABSENT else cast(StoredDialog, cached)
        async with self._uows() as uow:
            raw = await load_dialog(uow.session, openid, now=datetime.now(UTC))
        stored = StoredDialog.loads(raw) if raw is not None else None
        if stored is not None:
            await self._to_cache(openid, lambda: self._cache.put(openid, stored))
        else:
            await self._to_cache(openid, lambda: self._cache.mark_absent(openid))
        return stored

    async def put(self, openid: str, stored: StoredDialog) -> None:
        keep_until = datetime.fromtimestamp(stored.expires_at + GRACE_SECONDS, UTC)
        payload = stored.dumps()
        await self._writes(lambda conn: save_dialog(conn, openid, payload, keep_until=keep_until))
        await self._to_cache(openid, lambda: self._cache.put(openid, stored))

    async def delete(self, openid: str) -> None:
        await self._writes(lambda conn: forget_dialog(conn, openid))
        await self._to_cache(openid, lambda: self._cache.mark_absent(openid))

    async def _to_cache(self, openid: str, write: Callable[[], Awaitable[None]]) -> None:
        """Bring Redis up to date, or remember that it is behind (read the database meanwhile)."""

        async def behind() -> bool:
            return False

        async def written() -> bool:
            await write()
            return True

        if await self._link.attempt("dialogs", written, behind):
            self._behind.discard(openid)
        else:
            self._behind.add(openid)

"""Where dialog state lives between messages: in process (default) or in Redis.

A stored dialog outlives its TTL by a grace period, so that the next message can be
told "your search expired" instead of being silently misread.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, is_dataclass
from typing import Any, Protocol

from redis.asyncio import Redis

GRACE_SECONDS = 7 * 24 * 3600


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
        return StoredDialog.loads(raw) if raw is not None else None

    async def put(self, openid: str, stored: StoredDialog) -> None:
        ttl = max(1, int(stored.expires_at - time.time()) + GRACE_SECONDS)
        await self._redis.set(self._prefix + openid, stored.dumps(), ex=ttl)

    async def delete(self, openid: str) -> None:
        await self._redis.delete(self._prefix + openid)

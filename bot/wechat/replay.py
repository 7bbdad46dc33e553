"""The webhook's replay cache: each signed (timestamp, nonce, signature) carries one body.

In plain and compatible mode WeChat's `signature` is sha1(token, timestamp, nonce): it
covers no body, so whoever reads one request's query string (a log, a proxy) could
post any body under it. The timestamp window bounds how long a triple is good; this
cache makes it good for one body only. The first request under a triple records the
SHA-256 of its body for the window:

- the same triple with the same body again is WeChat's own retry (or an exact copy,
  which the inbox answers from the first delivery and never processes twice): `RETRY`;
- the same triple with another body is a forgery: `REFUSED` (403, counted in /metrics).

In memory for one worker, in Redis (`SET NX EX`, one key per triple) across several.
"""

from __future__ import annotations

import enum
import hashlib
import time
from collections import OrderedDict
from typing import Protocol

from redis.asyncio import Redis

MAX_MEMORY_ENTRIES = 200_000  # about 40 MiB at most; WeChat does not send that many in a window
WINDOW_OFF_SECONDS = 86_400  # with the timestamp window off, remember triples a day


class Seen(enum.Enum):
    NEW = "new"
    RETRY = "retry"
    REFUSED = "refused"


class ReplayCache(Protocol):
    async def check(self, triple: str, body_digest: str, *, ttl_seconds: int) -> Seen: ...


def triple_key(timestamp: str, nonce: str, signature: str) -> str:
    """One short key for a signed triple (its parts are attacker-chosen lengths)."""
    return hashlib.sha256(f"{timestamp}\0{nonce}\0{signature}".encode()).hexdigest()[:32]


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:32]


def ttl_for(window_seconds: int) -> int:
    """A triple is good from `timestamp - window` to `timestamp + window`: remember it that long."""
    return 2 * window_seconds if window_seconds > 0 else WINDOW_OFF_SECONDS


def _verdict(recorded: str, digest: str) -> Seen:
    return Seen.RETRY if recorded == digest else Seen.REFUSED


class MemoryReplayCache:
    """One worker: triples in insertion order, forgotten when they expire (or the oldest
    first past `max_entries`, which only a flood inside one window can reach)."""

    def __init__(self, *, max_entries: int = MAX_MEMORY_ENTRIES) -> None:
        self._entries: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._max = max_entries

    async def check(self, triple: str, body_digest: str, *, ttl_seconds: int) -> Seen:
        now = time.monotonic()
        self._forget(now)
        found = self._entries.get(triple)
        if found is not None:
            return _verdict(found[1], body_digest)
        self._entries[triple] = (now + ttl_seconds, body_digest)
        return Seen.NEW

    def _forget(self, now: float) -> None:
        entries = self._entries
        # Entries are kept in insertion order and share one ttl per app: the oldest expire first.
        while entries and (next(iter(entries.values()))[0] <= now or len(entries) >= self._max):
            entries.popitem(last=False)


class RedisReplayCache:
    """Several workers: the first `SET NX` of a triple wins; the others compare bodies."""

    PREFIX = "storefront:replay:"

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def check(self, triple: str, body_digest: str, *, ttl_seconds: int) -> Seen:
        key = self.PREFIX + triple
        if await self._redis.set(key, body_digest, nx=True, ex=ttl_seconds):
            return Seen.NEW
        recorded = await self._redis.get(key)
        if recorded is None:  # expired between the two calls: the window has passed anyway
            return Seen.REFUSED
        text = recorded.decode() if isinstance(recorded, bytes) else str(recorded)
        return _verdict(text, body_digest)

"""The message path's Redis parts, each with an in-process fallback for when Redis fails.

A customer's message must be answered whether Redis is there or not (issue 13): a
failure of Redis (refused, timed out, no free connection in the pool) is caught by
`RedisLink.attempt` (gauge, health, one log line a minute) and the message goes on:

- per-user order: the in-process lock is always held, the Redis ticket on top of it
  when Redis answers (so one worker's order survives a switch between the two);
- the rate limit fails open (a flood is let through rather than a customer refused);
- the replay cache remembers in process while Redis is away;
- the access token is kept in process too, and fetched by this worker alone while
  Redis is away (`stable_token` does not invalidate the other workers' tokens), so
  late replies and notices still go out;
- QR codes (invites, group shares) are cached in process while Redis is away;
- the transcript (what staff see at a hand-off) is kept in process;
- every worker runs the scheduler's ticks while Redis is away (the jobs re-check the
  state they act on, and outbox rows are leased): the outbox is still delivered and
  unpaid orders still expire.

While the link says Redis just failed, they do not try it (no timeout per message).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from bot.chat.transcript import Line, MemoryTranscriptStore, TranscriptStore
from bot.redis_link import REDIS_FAILURES, RedisLink
from bot.web.invites import MemoryQrCache, QrCode, RedisQrCache
from bot.wechat.api.token import MemoryTokenStore, RedisTokenStore, Token
from bot.wechat.inbox import UserLocks
from bot.wechat.inbox_redis import HeldTurn, RedisUserLocks
from bot.wechat.ratelimit import RateLimiter, Verdict
from bot.wechat.replay import ReplayCache, Seen
from scheduler.runner import TickLock


async def _nothing() -> None:
    return None


async def _allow() -> Verdict:
    return Verdict.ALLOW


async def _run_here() -> bool:
    return True


class FallbackUserLocks:
    """Per-user order across workers in Redis, within this worker whatever Redis does."""

    def __init__(self, shared: RedisUserLocks, link: RedisLink, *, local: UserLocks | None = None) -> None:
        self._shared = shared
        self._link = link
        self._local = local if local is not None else UserLocks()

    @asynccontextmanager
    async def hold(self, openid: str) -> AsyncIterator[None]:
        async with self._local.hold(openid):
            # the Redis turn, or None: this worker's lock alone (Redis failed, or just did)
            held: HeldTurn | None = await self._link.attempt(
                "user_lock", lambda: self._shared.take(openid), _nothing
            )
            try:
                yield
            finally:
                if held is not None:
                    await self._give_back(held)

    async def _give_back(self, held: HeldTurn) -> None:
        try:
            await self._shared.give_back(held)
        except REDIS_FAILURES as exc:  # the ticket is skipped by the others once its heartbeat stops
            self._link.failed("user_lock", exc)


class FallbackRateLimiter:
    """The shared limit while Redis answers; every message allowed while it does not."""

    def __init__(self, shared: RateLimiter, link: RedisLink) -> None:
        self._shared = shared
        self._link = link

    async def hit(self, key: str) -> Verdict:
        return await self._link.attempt("rate_limit", lambda: self._shared.hit(key), _allow)


class FallbackReplayCache:
    """Triples in Redis while it answers, in this worker's memory while it does not."""

    def __init__(self, shared: ReplayCache, local: ReplayCache, link: RedisLink) -> None:
        self._shared = shared
        self._local = local
        self._link = link

    async def check(self, triple: str, body_digest: str, *, ttl_seconds: int) -> Seen:
        return await self._link.attempt(
            "replay",
            lambda: self._shared.check(triple, body_digest, ttl_seconds=ttl_seconds),
            lambda: self._local.check(triple, body_digest, ttl_seconds=ttl_seconds),
        )


class FallbackTokenStore:
    """The shared access token while Redis answers; this worker's own copy always."""

    def __init__(self, shared: RedisTokenStore, link: RedisLink) -> None:
        self._shared = shared
        self._local = MemoryTokenStore()
        self._link = link

    async def get(self) -> Token | None:
        token = await self._link.attempt("token", self._shared.get, _nothing)
        return token if token is not None else await self._local.get()

    async def put(self, token: Token) -> None:
        await self._local.put(token)
        await self._link.attempt("token", lambda: self._shared.put(token), _nothing)

    @asynccontextmanager
    async def lock(self) -> AsyncIterator[bool]:
        """The workers' shared lock, or (Redis failing) this worker fetches: the manager's
        own asyncio lock keeps it to one fetch here."""
        shared = self._shared.lock()
        fetch_here: bool | None = await self._link.attempt("token_lock", shared.__aenter__, _nothing)
        if fetch_here is None:
            yield True
            return
        try:
            yield fetch_here
        finally:
            try:
                await shared.__aexit__(None, None, None)
            except REDIS_FAILURES as exc:  # the lock expires by itself
                self._link.failed("token_lock", exc)


class FallbackQrCache:
    """QR codes in Redis while it answers, in this worker's memory while it does not."""

    def __init__(self, shared: RedisQrCache, link: RedisLink) -> None:
        self._shared = shared
        self._local = MemoryQrCache()
        self._link = link

    async def get(self, key: str) -> QrCode | None:
        return await self._link.attempt("qr", lambda: self._shared.get(key), lambda: self._local.get(key))

    async def put(self, key: str, qr: QrCode, ttl_seconds: float | None) -> None:
        await self._link.attempt(
            "qr", lambda: self._shared.put(key, qr, ttl_seconds), lambda: self._local.put(key, qr, ttl_seconds)
        )


class FallbackTickLock:
    """One worker a tick while Redis answers; every worker while it does not."""

    def __init__(self, shared: TickLock, link: RedisLink) -> None:
        self._shared = shared
        self._link = link

    async def acquire(self, name: str, *, seconds: float) -> bool:
        return await self._link.attempt("tick_lock", lambda: self._shared.acquire(name, seconds=seconds), _run_here)


class FallbackTranscriptStore:
    """The recent lines in Redis while it answers, in this worker's memory while it does not
    (a hand-off then shows what this worker heard)."""

    def __init__(self, shared: TranscriptStore, link: RedisLink) -> None:
        self._shared = shared
        self._local = MemoryTranscriptStore()
        self._link = link

    async def append(self, openid: str, lines: Sequence[Line]) -> None:
        await self._link.attempt(
            "transcript", lambda: self._shared.append(openid, lines), lambda: self._local.append(openid, lines)
        )

    async def recent(self, openid: str) -> list[Line]:
        return await self._link.attempt(
            "transcript", lambda: self._shared.recent(openid), lambda: self._local.recent(openid)
        )

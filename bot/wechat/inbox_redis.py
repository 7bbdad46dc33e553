"""The inbox's de-duplication and per-user order in Redis, for several workers.

`RedisReplyStore` (an inbox without a database; the app's inbox writes every message down
in the database instead, `bot.wechat.intake`, so that it survives a dead worker and
Redis restarting empty): one key per message, claimed with `SET NX PX`; its value moves
pending -> (deferred ->) done. Moves that race (a worker finishing while another
delivery gives up waiting) are Lua scripts, so exactly one of them sees the other:

    pending  --finish-->   done:<json>      (the waiting deliveries answer with it)
    pending  --give up-->  deferred         (the waiting deliveries answer "success")
    deferred --finish-->   late:<json>      (the processor sends it through the sender)
    done     --give up-->  done             (the delivery answers with the reply after all)

A claim is a lease: pending (or deferred) lives `claim_seconds` (8 s, a bit more than
WeChat's 5-second retry cycle) and the processing worker renews it while it works. If
that worker dies, the claim expires and a later retry of WeChat's claims the message
again and processes it, instead of being answered "success" for a reply that never
comes. Once done, the reply is kept for `ttl_seconds` (de-duplication).

`RedisUserLocks`: a ticket counter per user. `hold` takes ticket t (INCR), waits until
"serving" reaches t - 1, and sets it to t when done. While it waits for and holds the
lock, a worker keeps a heartbeat key for its ticket alive (`alive_seconds`); a holder
whose heartbeat is gone (the worker died) is skipped after `alive_seconds`, a holder that
is alive but stuck after `stale_seconds`. Every key expires when idle. A message of a
user with nothing else in progress costs two round trips: the script that takes the
ticket (and says who is served) and the one that gives it back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass

from redis.asyncio import Redis

from bot.chat.render import Rendered, RenderedArticle
from bot.wechat.inbox import DEDUPE_SECONDS
from bot.wechat.protocol import Inbound

log = logging.getLogger(__name__)

PENDING, DEFERRED, DONE, LATE = "pending", "deferred", "done:", "late:"
CLAIM_SECONDS = 8.0  # a claim's lease: a bit longer than WeChat's 5-second retry cycle

# KEYS[1] = the message's key; ARGV = the reply as JSON, how long to keep it (ms). Returns 1 when deferred.
_FINISH = """
local current = redis.call('GET', KEYS[1])
local ttl = tonumber(ARGV[2])
if current == 'deferred' then
  redis.call('SET', KEYS[1], 'late:' .. ARGV[1], 'PX', ttl)
  return 1
end
redis.call('SET', KEYS[1], 'done:' .. ARGV[1], 'PX', ttl)
return 0
"""

# A delivery stops waiting: pending becomes deferred; returns the value it found.
_GIVE_UP = """
local current = redis.call('GET', KEYS[1])
if current == 'pending' then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 1000 then ttl = 1000 end
  redis.call('SET', KEYS[1], 'deferred', 'PX', ttl)
  return 'deferred'
end
return current
"""

# The processing worker renews its claim (pending or deferred) for ARGV[1] ms.
_RENEW = """
local current = redis.call('GET', KEYS[1])
if current == 'pending' or current == 'deferred' then
  return redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return 0
"""


def dumps_rendered(rendered: Rendered) -> str:
    return json.dumps(asdict(rendered), ensure_ascii=False, separators=(",", ":"))


def loads_rendered(raw: str) -> Rendered:
    data = json.loads(raw)
    articles = tuple(RenderedArticle(**article) for article in data.get("articles", ()))
    return Rendered(data["kind"], text=data.get("text", ""), articles=articles)


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _answer(value: str | None) -> Rendered | None:
    """The reply a delivery gives for a stored value, or None for "success"."""
    if value is not None and value.startswith(DONE):
        return loads_rendered(value[len(DONE) :])
    return None


class RedisReplyStore:
    """Shared de-duplication: the first worker to claim a message processes it."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "storefront:reply:",
        ttl_seconds: float = DEDUPE_SECONDS,
        poll_seconds: float = 0.05,
        claim_seconds: float = CLAIM_SECONDS,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl_ms = int(ttl_seconds * 1000)
        self._ttl = ttl_seconds
        self._claim = claim_seconds
        self._poll = poll_seconds
        self._finished: dict[str, asyncio.Event] = {}  # keys this worker claimed, until finished
        self._leases: dict[str, asyncio.Task[None]] = {}  # renewing those claims
        self._finish = redis.register_script(_FINISH)
        self._give_up = redis.register_script(_GIVE_UP)
        self._renew = redis.register_script(_RENEW)

    async def claim(self, key: str, *, msg: Inbound | None = None) -> bool:
        lease_ms = int(self._claim * 1000)
        if not await self._redis.set(self._prefix + key, PENDING, nx=True, px=lease_ms):
            return False
        self._finished[key] = asyncio.Event()
        self._leases[key] = asyncio.create_task(self._keep_claim(key))
        return True

    async def _keep_claim(self, key: str) -> None:
        """Renew the claim while this worker works on the message (at most `ttl_seconds`)."""
        until = time.monotonic() + self._ttl
        while time.monotonic() < until:
            await asyncio.sleep(self._claim / 3)
            try:
                if not await self._renew(keys=[self._prefix + key], args=[int(self._claim * 1000)]):
                    return  # done, or lost: nothing left to keep
            except Exception:
                log.warning("reply claim could not be renewed", exc_info=True)

    async def wait(self, key: str, timeout: float) -> Rendered | None:
        until = time.monotonic() + timeout
        finished = self._finished.get(key)
        if finished is not None:  # processed here: no need to poll
            try:
                await asyncio.wait_for(finished.wait(), timeout)
            except TimeoutError:
                return await self._stop_waiting(key)
        while True:
            value = _text(await self._redis.get(self._prefix + key))
            if value is None or value == DEFERRED or value.startswith((DONE, LATE)):
                return _answer(value)  # None (forgotten, or deferred): "success"
            left = until - time.monotonic()
            if left <= 0:
                return await self._stop_waiting(key)
            await asyncio.sleep(min(self._poll, left))

    async def _stop_waiting(self, key: str) -> Rendered | None:
        return _answer(_text(await self._give_up(keys=[self._prefix + key])))

    async def finish(self, key: str, rendered: Rendered) -> bool:
        try:
            late = await self._finish(keys=[self._prefix + key], args=[dumps_rendered(rendered), self._ttl_ms])
        finally:
            lease = self._leases.pop(key, None)
            if lease is not None:
                lease.cancel()
            finished = self._finished.pop(key, None)
            if finished is not None:
                finished.set()
        return bool(late)


@dataclass(frozen=True, slots=True)
class HeldTurn:
    """A ticket being served: its keys, its number and its heartbeat key."""

    keys: list[str]
    ticket: int
    alive: str


# KEYS = next, serving; ARGV = idle expiry (ms), heartbeat key prefix, heartbeat expiry (ms).
# Takes a ticket, starts its heartbeat, and returns {ticket, serving}: a user with no
# message in progress (the usual case) goes on at once, in this one round trip.
_TAKE = """
local ticket = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], 0, 'NX')
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
redis.call('SET', ARGV[2] .. ticket, 1, 'PX', ARGV[3])
return {ticket, tonumber(redis.call('GET', KEYS[2]))}
"""

# KEYS = next, serving; ARGV = expected serving, new serving, idle expiry (ms), and the
# heartbeat key of the ticket given back (deleted; empty when skipping a dead holder).
_ADVANCE = """
if ARGV[4] ~= '' then redis.call('DEL', ARGV[4]) end
local serving = tonumber(redis.call('GET', KEYS[2]) or '0')
if serving ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""


class RedisUserLocks:
    """One FIFO lock per user across workers: tickets in arrival order."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "storefront:userlock:",
        stale_seconds: float = 30.0,
        alive_seconds: float = 3.0,
        idle_seconds: float = 3600.0,
        poll_seconds: float = 0.02,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._stale = stale_seconds
        self._alive = alive_seconds
        self._heartbeats: dict[str, asyncio.Task[None]] = {}  # alive key -> its renewing task
        self._idle_ms = int(idle_seconds * 1000)
        self._poll = poll_seconds
        self._take = redis.register_script(_TAKE)
        self._advance = redis.register_script(_ADVANCE)

    def _keys(self, openid: str) -> list[str]:
        return [f"{self._prefix}{openid}:next", f"{self._prefix}{openid}:serving"]

    def _alive_prefix(self, keys: list[str]) -> str:
        return f"{keys[0].removesuffix(':next')}:alive:"

    def _alive_key(self, keys: list[str], ticket: int) -> str:
        return f"{self._alive_prefix(keys)}{ticket}"

    @asynccontextmanager
    async def hold(self, openid: str) -> AsyncIterator[None]:
        held = await self.take(openid)
        try:
            yield
        finally:
            await self.give_back(held)

    async def take(self, openid: str) -> HeldTurn:
        """Wait for `openid`'s turn and hold it (apart from `hold`, so a caller can fall back
        to another lock when taking fails, and tell a failed release from its own error).

        Two round trips a message when nobody else holds the user's lock: this one script
        (ticket, heartbeat, and who is served) and the one that gives it back."""
        keys = self._keys(openid)
        alive_ms = max(1, int(self._alive * 1000))
        taken = await self._take(keys=keys, args=[self._idle_ms, self._alive_prefix(keys), alive_ms])
        ticket, serving = int(taken[0]), int(taken[1])
        alive = self._alive_key(keys, ticket)
        self._heartbeats[alive] = asyncio.create_task(self._beat(alive))  # alive while waiting too
        try:
            if serving < ticket - 1:
                await self._wait_turn(keys, ticket)
            elif serving >= ticket:  # skipped as stale (or the keys expired): go on anyway
                log.warning("user lock turn was skipped", extra={"ticket": ticket})
        except BaseException:
            self._heartbeats.pop(alive).cancel()
            raise
        return HeldTurn(keys, ticket, alive)

    async def give_back(self, held: HeldTurn) -> None:
        beat = self._heartbeats.pop(held.alive, None)
        if beat is not None:
            beat.cancel()
        await self._advance(keys=held.keys, args=[held.ticket - 1, held.ticket, self._idle_ms, held.alive])

    async def _beat(self, alive: str) -> None:
        """Keep the holder's heartbeat key alive while it holds (or waits for) the lock; the
        take script set it first."""
        ttl_ms = max(1, int(self._alive * 1000))
        while True:
            await asyncio.sleep(self._alive / 3)
            try:
                await self._redis.set(alive, "1", px=ttl_ms)
            except Exception:  # Redis hiccup: the next beat tries again (outages: bot.redis_link logs)
                log.debug("user lock heartbeat failed", exc_info=True)

    async def _wait_turn(self, keys: list[str], ticket: int) -> None:
        seen, since = -1, time.monotonic()
        while True:
            serving = int(_text(await self._redis.get(keys[1])) or 0)
            if serving >= ticket - 1:
                if serving >= ticket:  # skipped as stale (or the keys expired): go on anyway
                    log.warning("user lock turn was skipped", extra={"ticket": ticket})
                return
            waited = time.monotonic() - since
            if serving != seen:
                seen, since = serving, time.monotonic()
            elif waited > self._stale or (
                waited > self._alive and not await self._redis.exists(self._alive_key(keys, serving + 1))
            ):
                # The holder of ticket serving + 1 is gone (its heartbeat stopped: the worker
                # died) or stuck far too long: skip it.
                if await self._advance(keys=keys, args=[serving, serving + 1, self._idle_ms, ""]):
                    log.warning("user lock holder skipped", extra={"ticket": serving + 1})
                since = time.monotonic()
            await asyncio.sleep(self._poll)

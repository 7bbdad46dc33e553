"""One access_token shared by every caller (and every worker, through Redis).

`AccessTokenManager.token()` answers from the store while the token is fresh, and
refreshes it `refresh_margin` seconds before it expires; `refresh(failed)` replaces a
token WeChat rejected (40001/42001/40014), unless someone already did. In a process an
`asyncio.Lock` makes one caller fetch while the others wait; across processes the
Redis store adds a `SET NX PX` lock: one worker fetches, the others wait briefly and
re-read. A lock left by a crashed worker expires by itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import aiohttp
from redis.asyncio import Redis

from bot.wechat.api.errors import ErrCode, WeChatError, WeChatUnavailable, checked

log = logging.getLogger(__name__)


class TokenProvider(Protocol):
    async def token(self) -> str: ...

    async def refresh(self, failed: str | None) -> str: ...


@dataclass(frozen=True, slots=True)
class Token:
    value: str
    expires_at: float  # wall-clock seconds (shared between processes)

    def __repr__(self) -> str:  # never print the secret value
        return f"Token(expires_at={self.expires_at})"


@dataclass(frozen=True, slots=True)
class FetchedToken:
    access_token: str
    expires_in: int

    def __repr__(self) -> str:
        return f"FetchedToken(expires_in={self.expires_in})"


class TokenFetch(Protocol):
    async def __call__(self, *, force: bool) -> FetchedToken: ...


class StableTokenFetcher:
    """`POST /cgi-bin/stable_token`: normal mode, or force_refresh after a rejected token.

    In normal mode WeChat hands out the current token, and a new one during its last
    five minutes, so a refresh margin up to 300 s gets a fresh token without spending
    the (20 a day) forced refreshes.
    """

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        base_url: str,
        appid: str,
        appsecret: str,
        timeout: float = 5.0,
    ) -> None:
        self._http = http
        self._url = base_url.rstrip("/") + "/cgi-bin/stable_token"
        self._appid = appid
        self._appsecret = appsecret
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    def __repr__(self) -> str:
        return f"StableTokenFetcher(appid={self._appid!r})"

    async def __call__(self, *, force: bool) -> FetchedToken:
        body = {
            "grant_type": "client_credential",
            "appid": self._appid,
            "secret": self._appsecret,
            "force_refresh": force,
        }
        try:
            async with self._http.post(self._url, json=body, timeout=self._timeout) as resp:
                if resp.status >= 500:
                    raise WeChatUnavailable(f"stable_token: HTTP {resp.status}")
                raw = await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise WeChatUnavailable(f"stable_token: {type(exc).__name__}") from None
        try:
            answer = checked(json.loads(raw))
            return FetchedToken(str(answer["access_token"]), int(answer["expires_in"]))
        except (ValueError, KeyError, TypeError):
            raise WeChatError(ErrCode.UNREADABLE, "stable_token: unreadable answer") from None


# ---- stores ---------------------------------------------------------------------------------


class TokenStore(Protocol):
    async def get(self) -> Token | None: ...

    async def put(self, token: Token) -> None: ...

    def lock(self) -> AbstractAsyncContextManager[bool]:
        """True: this caller fetches. False: another worker held the lock; re-read."""
        ...


class MemoryTokenStore:
    """One process: the manager's asyncio.Lock is all the locking needed."""

    def __init__(self) -> None:
        self._token: Token | None = None

    async def get(self) -> Token | None:
        return self._token

    async def put(self, token: Token) -> None:
        self._token = token

    @asynccontextmanager
    async def lock(self) -> AsyncIterator[bool]:
        yield True


_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class RedisTokenStore:
    """Token + expiry in one Redis key, refreshed under a `SET NX PX` lock.

    `lock()` yields True to the one worker that should fetch; the others wait (up to
    `lock_ttl`) until the lock is gone and get False: re-read, someone refreshed.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        key: str = "storefront:wechat:access_token",
        lock_ttl: float = 10.0,
        poll_interval: float = 0.05,
    ) -> None:
        self._redis = redis
        self._key = key
        self._lock_key = key + ":lock"
        self._lock_ttl_ms = int(lock_ttl * 1000)
        self._poll = poll_interval

    async def get(self) -> Token | None:
        raw = await self._redis.get(self._key)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            return Token(str(data["token"]), float(data["expires_at"]))
        except (ValueError, KeyError, TypeError):
            return None

    async def put(self, token: Token) -> None:
        ttl_ms = max(1, int((token.expires_at - time.time()) * 1000))
        await self._redis.set(
            self._key, json.dumps({"token": token.value, "expires_at": token.expires_at}), px=ttl_ms
        )

    @asynccontextmanager
    async def lock(self) -> AsyncIterator[bool]:
        owner = secrets.token_hex(16)
        if await self._redis.set(self._lock_key, owner, nx=True, px=self._lock_ttl_ms):
            try:
                yield True
            finally:
                await self._redis.eval(_RELEASE, 1, self._lock_key, owner)
            return
        deadline = time.monotonic() + self._lock_ttl_ms / 1000
        while time.monotonic() < deadline:  # polling: the holder may be another process
            if not await self._redis.exists(self._lock_key):
                break
            await asyncio.sleep(self._poll)
        yield False


# ---- the manager ----------------------------------------------------------------------------


class AccessTokenManager:
    """A `TokenProvider`: fetches once, shares, refreshes early; no refresh storms."""

    def __init__(
        self,
        fetch: TokenFetch,
        store: TokenStore,
        *,
        refresh_margin: float = 300,
        clock: Callable[[], float] = time.time,
        max_waits: int = 3,
    ) -> None:
        self._fetch = fetch
        self._store = store
        self._margin = refresh_margin
        self._clock = clock
        self._max_waits = max_waits
        self._lock = asyncio.Lock()

    def _usable(self, current: Token | None, rejected: str | None) -> bool:
        return (
            current is not None
            and current.value != rejected
            and current.expires_at - self._margin > self._clock()
        )

    async def token(self) -> str:
        current = await self._store.get()
        if self._usable(current, None):
            assert current is not None
            return current.value
        return await self._renew(rejected=None, force=False)

    async def refresh(self, failed: str | None) -> str:
        """A new token in place of `failed` (WeChat rejected it); one fetch however many ask."""
        return await self._renew(rejected=failed, force=True)

    async def _renew(self, *, rejected: str | None, force: bool) -> str:
        async with self._lock:
            for _ in range(self._max_waits):
                current = await self._store.get()
                if self._usable(current, rejected):
                    assert current is not None
                    return current.value
                async with self._store.lock() as held:
                    if held:
                        current = await self._store.get()
                        if self._usable(current, rejected):
                            assert current is not None
                            return current.value
                        return await self._fetch_and_store(force=force)
            log.warning("wechat token: refresh lock still held after waiting; fetching anyway")
            return await self._fetch_and_store(force=force)

    async def _fetch_and_store(self, *, force: bool) -> str:
        fetched = await self._fetch(force=force)
        token = Token(fetched.access_token, self._clock() + fetched.expires_in)
        await self._store.put(token)
        log.info("wechat token: fetched (force=%s, expires_in=%s)", force, fetched.expires_in)
        return token.value

"""Parametric QR codes and share links for scenes (product shares, referrals, group buys).

`InviteService.qr_for(scene)` asks WeChat for a QR code carrying `scene.pack()` as its
`scene_str` and caches the answer, so that the same scene does not cost a second call:
in process (`MemoryQrCache`) or in Redis when configured (`RedisQrCache`, shared by
all workers). A temporary code is kept until shortly before WeChat expires it; a
permanent one is kept for good (WeChat allows 100,000 permanent codes per account, so
they are for referral codes, not for every product share).

`share_link(scene)` is a plain web link, `{base_url}/s/{scene_str}`; `GET /s/{scene}`
redirects to the page for the scene (a product share to `/products/{id}`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Protocol

from aiohttp import web
from redis.asyncio import Redis

from bot.wechat import scenes
from bot.wechat.api.client import QR_EXPIRE_MAX, QrCode
from bot.wechat.scenes import GroupInvite, ProductShare, ReferralInvite, Scene

DEFAULT_EXPIRE_SECONDS = 7 * 24 * 3600  # a temporary code lives a week unless asked otherwise
MAX_SAFETY_SECONDS = 3600  # drop a cached code this long (at most) before WeChat expires it
QR_WAIT_SECONDS = 2.0  # how long a reply or page waits for WeChat to make a QR code

log = logging.getLogger(__name__)


class InvitesUnavailable(RuntimeError):
    """No WeChat client (the embedded demo, or no appsecret): QR codes cannot be made."""


class QrCodes(Protocol):
    """Who makes parametric QR codes: WeChat's API client, or `NoQrCodes`."""

    async def create_qr(self, scene_str: str, *, permanent: bool, expire_seconds: int = ...) -> QrCode: ...


class NoQrCodes:
    """The null maker of QR codes: without a WeChat client (the embedded demo, or no
    appsecret) asking for one says why there is none."""

    async def create_qr(self, scene_str: str, *, permanent: bool, expire_seconds: int = QR_EXPIRE_MAX) -> QrCode:
        raise InvitesUnavailable("QR codes need a WeChat client (wechat.appsecret); the demo has none")


class QrCache(Protocol):
    async def get(self, key: str) -> QrCode | None: ...

    async def put(self, key: str, qr: QrCode, ttl_seconds: float | None) -> None: ...


class MemoryQrCache:
    """An in-process cache with expiry (one worker)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._items: dict[str, tuple[QrCode, float | None]] = {}

    async def get(self, key: str) -> QrCode | None:
        item = self._items.get(key)
        if item is None:
            return None
        qr, expires_at = item
        if expires_at is not None and self._clock() >= expires_at:
            del self._items[key]
            return None
        return qr

    async def put(self, key: str, qr: QrCode, ttl_seconds: float | None) -> None:
        self._items[key] = (qr, None if ttl_seconds is None else self._clock() + ttl_seconds)


class RedisQrCache:
    """QR codes in Redis (shared by every worker), each key expiring with its code."""

    def __init__(self, redis: Redis, *, prefix: str = "storefront:qr:") -> None:
        self._redis = redis
        self._prefix = prefix

    async def get(self, key: str) -> QrCode | None:
        raw = await self._redis.get(self._prefix + key)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            expires = data["expire_seconds"]
            return QrCode(
                ticket=str(data["ticket"]),
                url=str(data["url"]),
                expire_seconds=None if expires is None else int(expires),
                image_url=str(data["image_url"]),
            )
        except (ValueError, KeyError, TypeError):
            return None  # unreadable: ask WeChat again

    async def put(self, key: str, qr: QrCode, ttl_seconds: float | None) -> None:
        raw = json.dumps(
            {"ticket": qr.ticket, "url": qr.url, "expire_seconds": qr.expire_seconds, "image_url": qr.image_url}
        )
        if ttl_seconds is None:
            await self._redis.set(self._prefix + key, raw)
        else:
            await self._redis.set(self._prefix + key, raw, px=max(1, int(ttl_seconds * 1000)))


def cache_ttl(expire_seconds: int) -> float:
    """How long a temporary code may be handed out: until shortly before WeChat's expiry."""
    return expire_seconds - min(MAX_SAFETY_SECONDS, expire_seconds / 10)


class InviteService:
    def __init__(
        self,
        client: QrCodes,
        cache: QrCache | None = None,
        *,
        base_url: str = "",
        expire_seconds: int = DEFAULT_EXPIRE_SECONDS,
    ) -> None:
        if not 60 <= expire_seconds <= QR_EXPIRE_MAX:
            raise ValueError(f"expire_seconds must be between 60 and {QR_EXPIRE_MAX}")
        self._client = client
        self._cache: QrCache = cache if cache is not None else MemoryQrCache()
        self._base_url = base_url.rstrip("/")
        self._expire_seconds = expire_seconds
        self._locks: dict[str, asyncio.Lock] = {}

    async def qr_for(self, scene: Scene, *, permanent: bool = False) -> QrCode:
        """The QR code for `scene`, from the cache or (once) from WeChat.

        Raises `InvitesUnavailable` without a WeChat client (`NoQrCodes`), and the client's
        `WeChatError` / `WeChatUnavailable` when WeChat refuses or cannot be reached.
        """
        scene_str = scene.pack()
        key = f"{'perm' if permanent else 'temp'}:{scene_str}"
        cached = await self._cache.get(key)
        if cached is not None:
            return cached
        lock = self._locks.setdefault(key, asyncio.Lock())  # two callers at once: one request
        try:
            async with lock:
                cached = await self._cache.get(key)
                if cached is not None:
                    return cached
                qr = await self._client.create_qr(
                    scene_str, permanent=permanent, expire_seconds=self._expire_seconds
                )
                if qr.expire_seconds is None:
                    await self._cache.put(key, qr, None)
                elif (ttl := cache_ttl(qr.expire_seconds)) > 0:
                    await self._cache.put(key, qr, ttl)
                return qr
        finally:
            if not lock.locked():
                self._locks.pop(key, None)

    async def image_url(self, scene: Scene, *, permanent: bool = False, timeout: float = QR_WAIT_SECONDS) -> str:
        """The QR code's picture for a page or a reply, or "" when there is none to show: the
        demo has no WeChat client, WeChat refused, or it did not answer within `timeout`
        (a reply must not wait long for a picture; the next ask finds it cached)."""
        try:
            async with asyncio.timeout(timeout):
                return (await self.qr_for(scene, permanent=permanent)).image_url
        except Exception:  # InvitesUnavailable, WeChatError, WeChatUnavailable, TimeoutError
            # the kind only: a scene carries a group or referral code, which opens a page
            log.info("no QR code for a %s scene", scene.kind, exc_info=True)
            return ""

    def share_link(self, scene: Scene) -> str:
        return f"{self._base_url}/s/{scene.pack()}"


# ---- GET /s/{scene} -------------------------------------------------------------------------


def scene_target(scene: Scene | None) -> str | None:
    """The page a share link leads to; None: nothing to show (yet)."""
    if isinstance(scene, ProductShare):
        return f"/products/{scene.product_id}"
    if isinstance(scene, GroupInvite):  # --- group buys: the group's page (bot/group_page.py) ---
        return f"/g/{scene.group_code}"
    if isinstance(scene, ReferralInvite):  # --- referrals: the landing page (bot/referral_page.py) ---
        return f"/r/{scene.code}"
    return None


async def share_redirect(request: web.Request) -> web.Response:
    target = scene_target(scenes.parse(request.match_info["scene"]))
    if target is None:
        raise web.HTTPNotFound(text="This link is not valid.")
    raise web.HTTPFound(target)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/s/{scene}", share_redirect)

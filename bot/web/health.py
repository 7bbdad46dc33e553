"""`/healthz`: is this worker able to serve? The database, Redis and the scheduler.

Each check is bounded by a short timeout; the answer is JSON
`{"status": "ok"|"degraded", "checks": {name: "ok"|"disabled"|"degraded"|"failed: <ErrorType>"}}`
with 200 when every check passes and 503 otherwise. Redis is the exception: the worker
serves without it (in-process fallbacks, `bot.wechat.degraded`), so a Redis that fails
is `"redis": "degraded"` (status "degraded") with 200: a load balancer must not take
away the workers that still answer. Error details stay in the log (exception type only
in the answer: a URL with a password must never leak).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.redis_link import RedisLink

log = logging.getLogger(__name__)

OK = "ok"
DISABLED = "disabled"
DEGRADED = "degraded"  # not working, but served without: still HTTP 200


@dataclass(frozen=True, slots=True)
class HealthChecks:
    """What `/healthz` looks at; built by `bot.bootstrap` with the resources it opened."""

    engine: AsyncEngine
    redis: RedisLink | None
    scheduler: BaseScheduler | None
    scheduler_enabled: bool
    timeout: float = 2.0

    async def run(self) -> dict[str, str]:
        checks = {"database": await self._bounded("database", self._database())}
        if self.redis is not None:
            checks["redis"] = await self._redis(self.redis)
        checks["scheduler"] = self._scheduler()
        return checks

    async def _bounded(self, name: str, check: Awaitable[Any]) -> str:
        try:
            await asyncio.wait_for(check, self.timeout)
        except Exception as exc:  # any failure is "not healthy", never a 500
            log.warning("health check failed", extra={"check": name, "error": type(exc).__name__})
            return f"failed: {type(exc).__name__}"
        return OK

    async def _database(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def _redis(self, link: RedisLink) -> str:
        """Ping (which also tells the link that Redis is back); a failure degrades, never fails."""
        try:
            await link.ping(self.timeout)
        except Exception:  # the link logged it (once a minute)
            return DEGRADED
        return OK

    def _scheduler(self) -> str:
        if not self.scheduler_enabled:
            return DISABLED
        if self.scheduler is None or not self.scheduler.running:
            return "failed: not running"
        return OK


HEALTH = web.AppKey("health", HealthChecks)


async def healthz(request: web.Request) -> web.Response:
    health = request.app.get(HEALTH)
    if health is None:  # resources not opened (starting up or shutting down)
        return web.json_response({"status": "degraded", "checks": {"app": "starting"}}, status=503)
    checks = await health.run()
    serving = all(value in (OK, DISABLED, DEGRADED) for value in checks.values())
    ok = serving and DEGRADED not in checks.values()
    return web.json_response({"status": "ok" if ok else "degraded", "checks": checks}, status=200 if serving else 503)

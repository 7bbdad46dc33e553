"""Operations: `/metrics` (Prometheus), on the public port behind a token or alone on a private address.

The database gauges are read just before rendering (`bot.metrics.Metrics.refresh`).
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot.keys import CONFIG, METRICS, SERVICES


def add_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)


async def metrics_site(app: web.Application) -> AsyncIterator[None]:
    """`/metrics` alone on `server.metrics_listen`, when set (opened after the shop, closed before)."""
    if not app[CONFIG].server.metrics_listen:
        yield
        return
    runner = await _start_metrics_site(app)
    try:
        yield
    finally:
        await runner.cleanup()


_SHOP = web.AppKey("shop", web.Application)  # the metrics site's way back to the shop's state


async def metrics(request: web.Request) -> web.Response:
    """`/metrics` on the public port: only behind the bearer token, or in development.

    With `server.metrics_listen` it is served on that address alone (404 here); without
    a token a live shop does not serve it at all: order counts are the merchant's business.
    """
    server = request.app[CONFIG].server
    if server.metrics_listen:
        raise web.HTTPNotFound()
    if server.metrics_token:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {server.metrics_token}".encode()):
            return web.Response(status=401, text="unauthorized", headers={"WWW-Authenticate": "Bearer"})
    elif not request.app[CONFIG].is_development:
        raise web.HTTPNotFound()
    return await _render_metrics(request.app)


async def _render_metrics(app: web.Application) -> web.Response:
    if SERVICES in app:  # not before start-up has finished
        await app[METRICS].refresh(app[SERVICES].uow, timeout=app[CONFIG].server.health_timeout_seconds)
    body = generate_latest(app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _start_metrics_site(shop: web.Application) -> web.AppRunner:
    """`/metrics` alone on `server.metrics_listen` (a private address for the scraper)."""
    host, _, port = shop[CONFIG].server.metrics_listen.rpartition(":")

    async def serve(request: web.Request) -> web.Response:
        return await _render_metrics(request.app[_SHOP])

    site_app = web.Application()
    site_app[_SHOP] = shop
    site_app.router.add_get("/metrics", serve)
    runner = web.AppRunner(site_app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host.strip("[]"), int(port)).start()
    except OSError:
        await runner.cleanup()
        raise
    return runner

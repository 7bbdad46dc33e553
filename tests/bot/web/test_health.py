"""`/healthz`: database, Redis and scheduler checks; 200 when all pass, 503 otherwise."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from bot.app import create_app
from bot.outbound.sender import MemoryOutbox
from tests.bot.conftest import ShopFactory, make_config
from tests.bot.driver import Shop

ClientFactory = Callable[..., Awaitable[TestClient]]


async def health(client: TestClient) -> tuple[int, dict[str, Any]]:
    resp = await client.get("/healthz")
    return resp.status, await resp.json()


async def test_ok_on_sqlite_with_the_scheduler_running(sqlite_shop: Shop) -> None:
    status, body = await health(sqlite_shop.client)
    assert status == 200
    assert body == {"status": "ok", "checks": {"database": "ok", "scheduler": "ok"}}


async def test_a_disabled_scheduler_is_not_a_failure(make_shop: ShopFactory, sqlite_url: str) -> None:
    shop = await make_shop(sqlite_url, scheduler={"enabled": False})
    status, body = await health(shop.client)
    assert status == 200
    assert body["checks"]["scheduler"] == "disabled"


async def test_redis_is_checked_when_configured(make_shop: ShopFactory, sqlite_url: str, redis_url: str) -> None:
    shop = await make_shop(sqlite_url, redis={"url": redis_url}, scheduler={"enabled": False})
    status, body = await health(shop.client)
    assert status == 200
    assert body["checks"] == {"database": "ok", "redis": "ok", "scheduler": "disabled"}


async def test_degraded_but_serving_when_redis_is_unreachable(make_shop: ShopFactory, sqlite_url: str) -> None:
    """The worker serves without Redis (in-process fallbacks): 200, so it stays in the pool."""
    shop = await make_shop(
        sqlite_url,
        redis={"url": "redis://:hunter2@127.0.0.1:1/0"},
        server={"health_timeout_seconds": 1.0},
        scheduler={"enabled": False},
    )
    resp = await shop.client.get("/healthz")
    assert resp.status == 200
    text = await resp.text()
    assert "hunter2" not in text  # no URL (or password) in the answer
    body = await resp.json()
    assert body["status"] == "degraded"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"] == "degraded"


async def test_degraded_when_the_database_cannot_be_opened(aiohttp_client: ClientFactory, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/no/such/dir/shop.db"
    config = make_config(url, scheduler={"enabled": False})
    client = await aiohttp_client(create_app(config, outbound=MemoryOutbox()))
    status, body = await health(client)
    assert status == 503
    assert body["status"] == "degraded"
    assert body["checks"]["database"].startswith("failed")
    assert body["checks"]["scheduler"] == "disabled"


async def test_metrics_still_served(sqlite_shop: Shop) -> None:
    resp = await sqlite_shop.client.get("/metrics")
    assert resp.status == 200
    text = await resp.text()
    assert "storefront_messages" in text
    assert "storefront_rate_limited_messages" in text

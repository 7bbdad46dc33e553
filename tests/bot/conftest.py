"""Fixtures that start the real app on a real database with the demo catalog."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.config import Config, build_config
from bot.outbound.sender import MemoryOutbox
from tests.bot.driver import AES_KEY, Shop
from tests.bot.world import World, WorldFactory
from tests.fakes.wechat import APPID, APPSECRET, FakeWeChat
from tests.servers import has_demo_catalog, media_dir, seed_demo


def make_config(db_url: str, **sections: dict[str, Any]) -> Config:
    base: dict[str, dict[str, Any]] = {
        "database": {"url": db_url},
        "wechat": {"token": "test-token", "appid": "wx_test_app", "encoding_aes_key": AES_KEY},
        # Secrets named here so tests can sign as the app does; an empty one is made per
        # install at start-up (tests/bot/wechat/test_edge_security.py covers that path).
        "server": {"base_url": "https://shop.example.com", "secret_key": "test-secret-key"},
        "pay": {"sandbox_secret": "test-sandbox-secret"},
        "shop": {"name": "测试小店"},
        "media": {"dir": str(media_dir())},  # never the working directory's media/
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return build_config(base)


async def seed(db_url: str) -> None:
    """Add the demo catalog to a fresh database (not the demo group buys: tests make
    their own). A database a `demo_catalog` test got (tests/conftest.py) has it already."""
    if not has_demo_catalog(db_url):
        await seed_demo(db_url)


ShopFactory = Callable[..., Awaitable[Shop]]


@pytest.fixture
async def make_shop(
    aiohttp_client: Callable[..., Awaitable[TestClient]], demo_catalog: None
) -> AsyncIterator[ShopFactory]:
    """Build the shop on a database its test got with the demo catalog (`demo_catalog`)."""

    async def build(db_url: str, **sections: dict[str, Any]) -> Shop:
        await seed(db_url)
        config = make_config(db_url, **sections)
        outbox = MemoryOutbox()
        client = await aiohttp_client(create_app(config, outbound=outbox))
        return Shop(client, config, outbox)

    yield build


@pytest.fixture
async def shop(make_shop: ShopFactory, db_url: str) -> Shop:
    """The shop with the demo catalog, on SQLite and on PostgreSQL."""
    return await make_shop(db_url)


@pytest.fixture
async def sqlite_shop(make_shop: ShopFactory, sqlite_url: str) -> Shop:
    """The shop on SQLite only, for edge tests that do not touch the database's behaviour."""
    return await make_shop(sqlite_url)


@pytest.fixture
async def make_world(
    aiohttp_client: Callable[..., Awaitable[TestClient]],
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    demo_catalog: None,
) -> WorldFactory:
    """The shop with the notification planner and a fake WeChat server (tests/bot/world.py).

    `join=world`: another worker of that world (same fake WeChat; pass the same database
    and, for several workers, the same `redis` section).
    """

    async def build(
        db_url: str, *, wechat: dict[str, Any] | None = None, join: World | None = None, **sections: dict[str, Any]
    ) -> World:
        if join is None:
            fake = FakeWeChat()
            wechat_url = str((await aiohttp_server(fake.app())).make_url("")).rstrip("/")
            await seed(db_url)
        else:
            fake, wechat_url = join.wechat, join.wechat_url
        config = make_config(
            db_url,
            wechat={"appid": APPID, "appsecret": APPSECRET, "api_base_url": wechat_url, **(wechat or {})},
            scheduler={"enabled": False},
            **sections,
        )
        client = await aiohttp_client(create_app(config))  # no outbound: the planner is used
        return World(Shop(client, config, MemoryOutbox()), fake, wechat_url)

    return build


# Staff used by the admin-command tests: an owner from the config, an operator and a
# customer-service member added by chat, and a stranger who is not staff.
OWNER = "o_owner_0001"
OPERATOR = "o_operator_02"
SERVICE = "o_service_003"
STRANGER = "o_customer_9"


async def add_staff_by_chat(shop: Shop) -> Shop:
    owner = shop.user(OWNER)
    assert "已添加员工" in (await owner.say(f"/staff add {OPERATOR} operator")).text
    assert "已添加员工" in (await owner.say(f"/staff add {SERVICE} service")).text
    return shop


@pytest.fixture
async def staffed(make_shop: ShopFactory, db_url: str) -> Shop:
    """The shop with an owner, an operator and a service member, on SQLite and PostgreSQL."""
    return await add_staff_by_chat(await make_shop(db_url, staff={"owners": [OWNER]}))


@pytest.fixture
async def sqlite_staffed(make_shop: ShopFactory, sqlite_url: str) -> Shop:
    """The shop with only its config owner, on SQLite."""
    return await make_shop(sqlite_url, staff={"owners": [OWNER]})

"""Going live: compose.yaml and the Dockerfile (no Docker daemon runs here, so they are read,
not built) say what the app reads, and a shop on those production settings starts with
no demo data and refuses /dev/*."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select

from bot.app import create_app
from bot.cli import prepare_database
from bot.config import Config, build_config
from commerce.catalog.models import Product
from commerce.db import create_engine

ROOT = Path(__file__).parents[1]
SAMPLE = {  # what an operator's .env gives compose (.env.example)
    "SHOP_BASE_URL": "https://shop.example.cn",
    "POSTGRES_PASSWORD": "pg-secret",
    "WECHAT_APPID": "wx1234567890abcdef",
    "WECHAT_APPSECRET": "appsecret-0123456789",
    "WECHAT_TOKEN": "a-token-of-our-own",
    "WECHAT_ENCODING_AES_KEY": "a" * 43,
    "WECHATPAY_MCHID": "1900000109",
    "WECHATPAY_API_V3_KEY": "k" * 32,
    "WECHATPAY_SERIAL_NO": "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
    "WECHATPAY_PUBLIC_KEY_ID": "PUB_KEY_ID_0114232134912410000000000000",
}


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}."""

    def one(match: re.Match[str]) -> str:
        name, op, rest = match.group(1), match.group(2) or "", match.group(3) or ""
        if name in env and env[name] != "":
            return env[name]
        assert op != ":?", f"compose needs {name}: {rest}"
        return rest if op == ":-" else ""

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, value)


def app_environment(env: dict[str, str]) -> dict[str, str]:
    return {key: interpolate(str(value), env) for key, value in compose()["services"]["app"]["environment"].items()}


def test_compose_runs_app_postgres_and_redis_each_with_a_healthcheck() -> None:
    services = compose()["services"]
    assert set(services) == {"app", "postgres", "redis"}
    for name, service in services.items():
        assert service["healthcheck"]["test"], name
        assert service["restart"] == "unless-stopped", name
    app = services["app"]
    assert app["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    assert app["command"][:2] == ["storefront", "serve"] and "--workers" in app["command"]
    assert "/healthz" in " ".join(app["healthcheck"]["test"])
    # the reverse proxy on the host reaches it; the world does not
    assert app["ports"] == ["127.0.0.1:8080:8080"]
    assert set(app["secrets"]) == set(compose()["secrets"])


def test_compose_settings_are_config_keys_of_a_live_shop() -> None:
    """Every STOREFRONT_* variable is a config key (a typo would stop the app, naming it),
    and together they make a live shop on PostgreSQL and Redis: real payments, safe mode,
    no demo catalog, no development tools."""
    env = app_environment(SAMPLE)
    config = build_config({}, env)  # raises ConfigError on an unknown key or a bad value
    assert not config.is_development and config.pay.provider == "wechatpay_v3"
    assert config.database.url == "postgresql+asyncpg://storefront:pg-secret@postgres:5432/storefront"
    assert config.redis.url == "redis://redis:6379/0"
    assert config.message_mode == "safe" and config.wechat.token == SAMPLE["WECHAT_TOKEN"]
    assert config.shop.seed_demo is False and config.server.dev_tools == "off"
    assert (config.server.host, config.server.port) == ("0.0.0.0", 8080)
    assert config.public_base_url == SAMPLE["SHOP_BASE_URL"]
    postgres = compose()["services"]["postgres"]["environment"]
    assert (postgres["POSTGRES_USER"], postgres["POSTGRES_DB"]) == ("storefront", "storefront")
    for path in (config.pay.private_key_path, config.pay.platform_public_key_path):
        assert path.removeprefix("/run/secrets/") in compose()["services"]["app"]["secrets"]
    example = dict(
        line.split("=", 1) for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    )
    needed = set(re.findall(r"\$\{(\w+)", (ROOT / "compose.yaml").read_text(encoding="utf-8")))
    assert needed <= set(example), needed - set(example)


def test_the_image_runs_the_shop_as_a_non_root_user_without_test_extras() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    instructions = [line for line in dockerfile.splitlines() if line and not line.startswith(("#", " "))]
    froms = [line for line in instructions if line.startswith("FROM ")]
    assert froms and all(re.fullmatch(r"FROM python:3\.1[1-9]-slim( AS \w+)?", line) for line in froms)
    final = instructions[instructions.index(froms[-1]):]
    user = next(line for line in final if line.startswith("USER "))
    assert user.split()[1] not in ("root", "0")
    assert final.index(user) > max(i for i, line in enumerate(final) if line.startswith("RUN "))
    assert "[test]" not in dockerfile and "playwright" not in dockerfile
    assert 'CMD ["storefront", "serve"]' in final
    assert "EXPOSE 8080" in final and "STOREFRONT_SERVER__HOST=0.0.0.0" in dockerfile
    for package in ("bot", "commerce", "scheduler", "templates", "migrations"):
        assert f"COPY {package} {package}" in dockerfile, package
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".env", "secrets", "config.toml", ".venv", "tests"} <= set(ignored)


def _key_files(tmp_path: Path) -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = tmp_path / "apiclient_key.pem"
    private.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    public = tmp_path / "pub_key.pem"
    public.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return str(private), str(public)


def production_config(tmp_path: Path, *, database_url: str, redis_url: str) -> Config:
    """compose.yaml's settings, asking for the demo catalog, with the PostgreSQL and Redis
    URLs pointed at this test session's own servers (compose's host names exist only there)."""
    private, public = _key_files(tmp_path)
    env = app_environment(SAMPLE) | {
        "STOREFRONT_DATABASE__URL": database_url,
        "STOREFRONT_REDIS__URL": redis_url,
        "STOREFRONT_PAY__PRIVATE_KEY_PATH": private,
        "STOREFRONT_PAY__PLATFORM_PUBLIC_KEY_PATH": public,
        "STOREFRONT_SHOP__SEED_DEMO": "true",  # even when asked: a live shop never gets demo products
        "STOREFRONT_SERVER__DEV_TOOLS": "any",  # even when allowed: a live shop serves no /dev/*
        "STOREFRONT_SCHEDULER__ENABLED": "false",
    }
    return build_config({}, env)


async def test_a_live_shop_seeds_no_demo_data_and_refuses_dev_routes(
    tmp_path: Path, postgres_url: str, redis_url: str, aiohttp_client: Callable[..., Awaitable[TestClient]]
) -> None:
    """The done-when of issue 15: started with compose's settings (PostgreSQL, Redis, the
    production pay provider), the shop serves no demo data, no /dev/*, and a green /healthz."""
    config = production_config(tmp_path, database_url=postgres_url, redis_url=redis_url)
    assert config.database.url.startswith("postgresql+asyncpg://") and config.redis.url
    assert await prepare_database(config, seed=config.shop.seed_demo) == 0
    engine = create_engine(config.database.url)
    try:
        async with engine.connect() as conn:
            assert await conn.scalar(select(func.count()).select_from(Product)) == 0
    finally:
        await engine.dispose()
    client = await aiohttp_client(create_app(config))
    health = await client.get("/healthz")
    assert health.status == 200 and (await health.json())["status"] == "ok", await health.text()
    assert (await client.get("/dev/chat")).status == 404
    assert (await client.post("/dev/chat/send", json={"openid": "o_1", "text": "hi"})).status == 404
    assert (await client.get("/dev/chat/outbox", params={"openid": "o_1"})).status == 404
    assert (await client.get("/metrics")).status in (403, 404)
    assert (await client.get("/products/1")).status == 404  # no catalog until the merchant imports one

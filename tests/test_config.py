"""`bot.config`: the file, the `STOREFRONT_<SECTION>__<KEY>` overrides and validation.

Every error must name the offending `section.key`, so an operator can fix a typo
without reading the code; `config.example.toml` documents every key at its default.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from bot.config import (
    Config,
    ConfigError,
    DatabaseConfig,
    ServerConfig,
    build_config,
    config_path,
    load_config,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.toml"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def schema() -> dict[str, set[str]]:
    """Every section of `Config` and the keys of each, from the dataclasses themselves."""
    return {
        section.name: {f.name for f in dataclasses.fields(section.default_factory())}  # type: ignore[misc]
        for section in dataclasses.fields(Config)
    }


# --------------------------------------------------------------------------- defaults


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no config.toml here
    config = load_config(env={})
    assert config == Config()
    assert config.server.host == "127.0.0.1"
    assert config.server.port == 8080
    assert config.server.reply_deadline_seconds == 4.5
    assert config.database.url == "sqlite+aiosqlite:///storefront.db"
    assert config.redis.url == ""
    assert config.pay.provider == "sandbox"
    assert config.staff.owners == ()
    assert config.shop.locale == "zh"
    assert config.shop.seed_demo is True
    assert config.search.page_size == 5


def test_config_toml_in_the_working_directory_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "config.toml", "[server]\nport = 9001\n")
    assert load_config(env={}).server.port == 9001


def test_load_config_reads_os_environ_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STOREFRONT_SHOP__NAME", "环境小店")
    assert load_config().shop.name == "环境小店"


# --------------------------------------------------------------------------- the file


def test_file_values_of_every_type(tmp_path: Path) -> None:
    path = write(
        tmp_path / "shop.toml",
        f"""
[server]
host = "0.0.0.0"
port = 9000
reply_deadline_seconds = 3     # an integer is fine for a float key
[wechat]
token = "file-token"
encoding_aes_key = "{AES_KEY}"
[database]
url = "postgresql+asyncpg://shop@db/shop"
echo = true
[redis]
url = "redis://localhost:6379/0"
[pay]
provider = "wechatpay_v3"
mchid = "1900000001"
api_v3_key = "0123456789abcdef0123456789abcdef"
merchant_serial_no = "SERIAL1"
private_key_path = "apiclient_key.pem"
[staff]
owners = ["o_owner_1", "o_owner_2"]
[shop]
name = "文件小店"
locale = "en"
seed_demo = false
[search]
cache_seconds = 2.5
""",
    )
    config = load_config(path, env={})
    assert config.server.host == "0.0.0.0"
    assert config.server.port == 9000
    assert config.server.reply_deadline_seconds == 3.0
    assert isinstance(config.server.reply_deadline_seconds, float)
    assert config.wechat.token == "file-token"
    assert config.wechat.encoding_aes_key == AES_KEY
    assert config.database.url == "postgresql+asyncpg://shop@db/shop"
    assert config.database.echo is True
    assert config.redis.url == "redis://localhost:6379/0"
    assert config.pay.provider == "wechatpay_v3"
    assert config.staff.owners == ("o_owner_1", "o_owner_2")
    assert config.shop == dataclasses.replace(
        Config().shop, name="文件小店", locale="en", seed_demo=False
    )
    assert config.search.cache_seconds == 2.5
    # keys the file leaves out keep their defaults
    assert config.wechat.appid == "wx_demo_appid"
    assert config.dialog == Config().dialog


# --------------------------------------------------------------------------- environment


FILE = """
[server]
host = "10.0.0.1"
port = 9000
reply_deadline_seconds = 3.0
[database]
echo = false
[staff]
owners = ["o_file_owner"]
"""


@pytest.mark.parametrize(
    ("var", "value", "section", "key", "expected"),
    [
        ("STOREFRONT_SERVER__HOST", "0.0.0.0", "server", "host", "0.0.0.0"),
        ("STOREFRONT_SERVER__PORT", "9100", "server", "port", 9100),
        (
            "STOREFRONT_SERVER__REPLY_DEADLINE_SECONDS",
            "1.5",
            "server",
            "reply_deadline_seconds",
            1.5,
        ),
        ("STOREFRONT_DATABASE__ECHO", "true", "database", "echo", True),
        ("STOREFRONT_DATABASE__ECHO", "1", "database", "echo", True),
        ("STOREFRONT_DATABASE__ECHO", "Yes", "database", "echo", True),
        ("STOREFRONT_SHOP__SEED_DEMO", "off", "shop", "seed_demo", False),
        ("STOREFRONT_SHOP__SEED_DEMO", "0", "shop", "seed_demo", False),
        ("STOREFRONT_STAFF__OWNERS", "a,b", "staff", "owners", ("a", "b")),
        ("STOREFRONT_STAFF__OWNERS", " a , ,b ", "staff", "owners", ("a", "b")),
        ("STOREFRONT_STAFF__OWNERS", "", "staff", "owners", ()),
        ("STOREFRONT_WECHAT__TOKEN", "env-token", "wechat", "token", "env-token"),
    ],
)
def test_environment_overrides_win_over_the_file(
    tmp_path: Path, var: str, value: str, section: str, key: str, expected: Any
) -> None:
    path = write(tmp_path / "config.toml", FILE)
    config = load_config(path, env={var: value})
    got = getattr(getattr(config, section), key)
    assert got == expected
    assert type(got) is type(expected)


def test_environment_overrides_leave_other_keys_alone(tmp_path: Path) -> None:
    path = write(tmp_path / "config.toml", FILE)
    config = load_config(
        path, env={"STOREFRONT_SERVER__PORT": "9100", "HOME": "/root", "STOREFRONT": "x"}
    )
    assert config.server == ServerConfig(host="10.0.0.1", port=9100, reply_deadline_seconds=3.0)
    assert config.staff.owners == ("o_file_owner",)


# --------------------------------------------------------------------------- unknown names


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[sever]\nport = 1\n", "[sever]"),
        ("[server]\nportt = 1\n", "server.portt"),
        ("[wechat]\nToken = 'x'\n", "wechat.Token"),
        ("[server.extra]\nx = 1\n", "server.extra"),
        ("server = 1\n", "[server]"),
    ],
)
def test_unknown_names_in_the_file_are_errors(tmp_path: Path, text: str, named: str) -> None:
    path = write(tmp_path / "config.toml", text)
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    assert named in str(err.value)


@pytest.mark.parametrize(
    ("var", "named"),
    [
        ("STOREFRONT_SERVER__PORTT", "server.portt"),
        ("STOREFRONT_SHOP__NAMES", "shop.names"),
        ("STOREFRONT_SEVER__PORT", "[sever]"),
    ],
)
def test_unknown_names_in_the_environment_are_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, var: str, named: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as err:
        load_config(env={var: "1"})
    assert named in str(err.value)


def test_replace_with_an_unknown_section_or_key_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"\[sever\]"):
        Config().replace(sever={"port": 1})
    with pytest.raises(ConfigError, match=r"server\.portt"):
        Config().replace(server={"portt": 1})


# --------------------------------------------------------------------------- wrong types


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('[server]\nport = "8080"\n', "server.port"),
        ("[server]\nport = 80.5\n", "server.port"),
        ("[server]\nport = true\n", "server.port"),
        ('[server]\nreply_deadline_seconds = "3"\n', "server.reply_deadline_seconds"),
        ("[server]\nreply_deadline_seconds = false\n", "server.reply_deadline_seconds"),
        ('[database]\necho = "yes"\n', "database.echo"),
        ("[database]\necho = 1\n", "database.echo"),
        ("[shop]\nname = 42\n", "shop.name"),
        ('[staff]\nowners = "o_owner"\n', "staff.owners"),
        ("[staff]\nowners = [1, 2]\n", "staff.owners"),
    ],
)
def test_wrong_types_in_the_file_name_the_key(tmp_path: Path, text: str, named: str) -> None:
    path = write(tmp_path / "config.toml", text)
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    assert str(err.value).startswith(named + ":")


@pytest.mark.parametrize(
    ("var", "value", "named"),
    [
        ("STOREFRONT_SERVER__PORT", "eighty", "server.port"),
        ("STOREFRONT_SERVER__PORT", "80.5", "server.port"),
        ("STOREFRONT_SEARCH__CACHE_SECONDS", "soon", "search.cache_seconds"),
        ("STOREFRONT_DATABASE__ECHO", "maybe", "database.echo"),
    ],
)
def test_wrong_types_in_the_environment_name_the_key(var: str, value: str, named: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_config({}, {var: value})
    assert str(err.value).startswith(named + ":")


def test_a_broken_file_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.toml", "[server\nport = 1\n")
    with pytest.raises(ConfigError, match="broken.toml"):
        load_config(path, env={})


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("section", "values", "named"),
    [
        ("server", {"port": 0}, "server.port"),
        ("server", {"port": 65536}, "server.port"),
        ("server", {"max_body_bytes": 1023}, "server.max_body_bytes"),
        ("server", {"backlog": 15}, "server.backlog"),
        ("server", {"event_loop": "tokio"}, "server.event_loop"),
        ("server", {"reply_deadline_seconds": 5.0}, "server.reply_deadline_seconds"),
        ("server", {"reply_deadline_seconds": 0.4}, "server.reply_deadline_seconds"),
        ("wechat", {"token": ""}, "wechat.token"),
        ("wechat", {"encoding_aes_key": AES_KEY[:-1]}, "wechat.encoding_aes_key"),
        ("wechat", {"encoding_aes_key": AES_KEY + "H"}, "wechat.encoding_aes_key"),
        ("wechat", {"encoding_aes_key": AES_KEY[:-1] + "!"}, "wechat.encoding_aes_key"),
        ("database", {"url": "sqlite:///storefront.db"}, "database.url"),
        ("database", {"url": "mysql+aiomysql://shop@db/shop"}, "database.url"),
        ("redis", {"url": "localhost:6379"}, "redis.url"),
        ("pay", {"provider": "alipay"}, "pay.provider"),
        ("shop", {"locale": "fr"}, "shop.locale"),
        ("dialog", {"ttl_seconds": 9}, "dialog.ttl_seconds"),
        ("search", {"page_size": 0}, "search.page_size"),
        ("search", {"page_size": 9}, "search.page_size"),
    ],
)
def test_invalid_values_name_the_key(section: str, values: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_config({section: values})
    assert str(err.value).startswith(named + ":")


@pytest.mark.parametrize(
    ("section", "values"),
    [
        ("server", {"port": 1}),
        ("server", {"port": 65535}),
        ("server", {"reply_deadline_seconds": 0.5}),
        ("server", {"reply_deadline_seconds": 4.8}),
        ("wechat", {"encoding_aes_key": AES_KEY}),
        ("database", {"url": "postgresql+asyncpg://shop:secret@db:5432/shop"}),
        ("redis", {"url": "rediss://cache:6380/1"}),
        ("redis", {"url": "unix:///tmp/redis.sock?db=2"}),
        ("pay", {"provider": "wechatpay_v2", "mchid": "1900000001", "api_v2_key": "k" * 32}),
        ("search", {"page_size": 8}),
    ],
)
def test_values_at_the_limits_are_valid(section: str, values: dict[str, Any]) -> None:
    config = build_config({section: values})
    for key, value in values.items():
        assert getattr(getattr(config, section), key) == value


def test_validation_applies_to_environment_overrides() -> None:
    with pytest.raises(ConfigError, match=r"^server\.port:"):
        build_config({}, {"STOREFRONT_SERVER__PORT": "0"})


# --------------------------------------------------------------------------- which file


def test_a_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="nope.toml"):
        load_config(missing, env={})


def test_a_missing_file_named_by_storefront_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.toml"):
        load_config(env={"STOREFRONT_CONFIG": str(tmp_path / "nope.toml")})


def test_storefront_config_picks_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "config.toml", "[server]\nport = 9001\n")
    other = write(tmp_path / "other.toml", "[server]\nport = 9002\n")
    assert load_config(env={"STOREFRONT_CONFIG": str(other)}).server.port == 9002
    assert config_path(env={"STOREFRONT_CONFIG": str(other)}) == other


def test_an_explicit_path_wins_over_storefront_config(tmp_path: Path) -> None:
    one = write(tmp_path / "one.toml", "[server]\nport = 9001\n")
    two = write(tmp_path / "two.toml", "[server]\nport = 9002\n")
    assert load_config(one, env={"STOREFRONT_CONFIG": str(two)}).server.port == 9001
    assert config_path(str(one), env={"STOREFRONT_CONFIG": str(two)}) == one


def test_config_path_defaults_to_config_toml() -> None:
    assert config_path(env={}) == Path("config.toml")


# --------------------------------------------------------------------------- Config methods


def test_replace_changes_some_keys_and_keeps_the_rest() -> None:
    base = build_config({"server": {"port": 9000}, "staff": {"owners": ["o_owner"]}})
    changed = base.replace(shop={"locale": "en"}, server={"host": "0.0.0.0"})
    assert changed.shop.locale == "en"
    assert changed.server == ServerConfig(host="0.0.0.0", port=9000)
    assert changed.staff.owners == ("o_owner",)
    assert base.shop.locale == "zh"  # the original is untouched (frozen)
    assert base.server.host == "127.0.0.1"


def test_replace_validates_like_a_file() -> None:
    with pytest.raises(ConfigError, match=r"^server\.port:"):
        Config().replace(server={"port": 0})
    with pytest.raises(ConfigError, match=r"^server\.port:"):
        Config().replace(server={"port": "9000"})


def test_config_sections_are_frozen() -> None:
    config = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.server.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ({}, "http://127.0.0.1:8080"),
        ({"host": "0.0.0.0", "port": 9000}, "http://127.0.0.1:9000"),
        ({"host": "::", "port": 9000}, "http://127.0.0.1:9000"),
        ({"host": "shop.local", "port": 9000}, "http://shop.local:9000"),
        ({"base_url": "https://shop.example.com"}, "https://shop.example.com"),
        ({"base_url": "https://shop.example.com/"}, "https://shop.example.com"),
        ({"base_url": "https://example.com/shop/", "port": 9000}, "https://example.com/shop"),
    ],
)
def test_public_base_url(server: dict[str, Any], expected: str) -> None:
    assert build_config({"server": server}).public_base_url == expected


# --------------------------------------------------------------------------- config.example.toml


def test_the_example_file_loads_to_exactly_the_defaults() -> None:
    assert load_config(EXAMPLE, env={}) == Config()


def test_the_example_file_lists_every_section_and_key() -> None:
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    assert {name: set(values) for name, values in data.items()} == schema()
    # and in the dataclasses' order, so the file reads like the schema
    assert list(data) == [f.name for f in dataclasses.fields(Config)]


def comment_above(lines: list[str], key: str) -> str:
    """The comment lines right above the first `key = ...` line of the example file."""
    number = next(i for i, line in enumerate(lines) if re.match(rf"^{key}\s*=", line))
    above: list[str] = []
    while number > 0 and lines[number - 1].startswith("#"):
        number -= 1
        above.insert(0, lines[number])
    return "\n".join(above)


def test_every_key_of_the_example_file_has_a_comment() -> None:
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    keys = [line.split("=")[0].strip() for line in lines if re.match(r"^[a-z0-9_]+\s*=", line)]
    assert len(keys) == sum(len(section) for section in schema().values())
    uncommented = []
    for number, line in enumerate(lines):
        if re.match(r"^[a-z0-9_]+\s*=", line) and not lines[number - 1].startswith("#"):
            uncommented.append(line)
    assert uncommented == []


def test_the_example_file_explains_overrides_secrets_and_menu_keys() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    for needle in ("STOREFRONT_<SECTION>__<KEY>", "STOREFRONT_CONFIG", "STOREFRONT_STAFF__OWNERS="):
        assert needle in text
    lines = text.splitlines()
    for secret in ("appsecret", "token", "encoding_aes_key"):
        assert "SECRET" in comment_above(lines, secret), secret
    assert "storefront menu push" in text and "menu.example.toml" in text


def test_the_example_menu_keys_are_the_ones_the_bot_understands() -> None:
    from bot.handlers import events

    for text in (EXAMPLE.read_text(encoding="utf-8"), (EXAMPLE.parent / "menu.example.toml").read_text(encoding="utf-8")):
        for key in events.MENU_KEYS:
            assert re.search(rf"\b{key}\b", text), key
        assert f"{events.MENU_CATEGORY_PREFIX}<id>" in text


def test_database_defaults_to_the_embedded_sqlite_file() -> None:
    assert DatabaseConfig().url == "sqlite+aiosqlite:///storefront.db"


def test_an_override_with_one_underscore_is_an_error_not_ignored() -> None:
    """Regression: STOREFRONT_SERVER_PORT (one underscore) used to be skipped silently."""
    with pytest.raises(ConfigError, match="STOREFRONT_SERVER_PORT"):
        build_config({}, {"STOREFRONT_SERVER_PORT": "9000"})


@pytest.mark.parametrize("key", ["order_timeout_minutes", "delivery_fee_fen"])
def test_negative_shop_numbers_are_refused(key: str) -> None:
    with pytest.raises(ConfigError, match=f"shop.{key}"):
        build_config({"shop": {key: -1}})

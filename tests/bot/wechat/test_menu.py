"""The custom menu: the file's checks (WeChat's published rules) and `storefront menu push`
against the fake WeChat API server, as an operator runs it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from bot import cli
from bot.handlers.events import MENU_KEYS
from bot.wechat.menu import MenuError, check_menu, load_menu
from tests.fakes.wechat import APPID, APPSECRET, FakeWeChat
from tests.ports import free_port

EXAMPLE = Path(__file__).parents[3] / "menu.example.toml"


def test_the_example_menu_is_valid_and_every_click_is_answered() -> None:
    menu = load_menu(EXAMPLE)
    assert 1 <= len(menu.body["button"]) <= 3
    assert menu.click_keys() and set(menu.click_keys()) <= set(MENU_KEYS)


@pytest.mark.parametrize(
    ("menu", "says"),
    [
        ({"button": []}, "1 to 3 buttons"),
        ({"button": [{"type": "click", "name": "热", "key": "HOT"}] * 4}, "1 to 3 buttons"),
        ({"button": [{"type": "click", "name": "热卖热卖热卖", "key": "HOT"}]}, "16 bytes"),
        ({"button": [{"type": "click", "name": "热卖"}]}, "needs key"),
        ({"button": [{"type": "location_select", "name": "位置", "key": "L"}]}, "type must be"),
        ({"button": [{"name": "我的", "sub_button": []}]}, "1 to 5 sub-buttons"),
        ({"button": [{"name": "我的", "sub_button": [{"type": "click", "name": "订", "key": "O"}] * 6}]}, "1 to 5"),
        ({"button": [{"name": "我的", "sub_button": [{"type": "view", "name": "官网", "url": "shop.cn"}]}]}, "https://"),
        ({"button": [{"name": "我的", "type": "click", "key": "X", "sub_button": [{"type": "click", "name": "a", "key": "b"}]}]}, "no type"),
        ({"button": [{"type": "miniprogram", "name": "小程序", "url": "https://a.cn", "appid": "wx1"}]}, "pagepath"),
    ],
)
def test_a_menu_against_the_rules_is_refused_naming_the_button(menu: dict[str, object], says: str) -> None:
    with pytest.raises(MenuError, match=says):
        check_menu(menu)


def test_base_url_is_put_into_view_links() -> None:
    menu = check_menu({"button": [{"type": "view", "name": "推荐", "url": "{base_url}/products/1"}]},
                      base_url="https://shop.example.cn/")
    assert menu.body["button"][0]["url"] == "https://shop.example.cn/products/1"


@pytest.fixture(autouse=True)
def keep_test_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """`cli.main` sets up the root logger for a terminal: not inside the test process."""
    monkeypatch.setattr(cli, "configure_logging", lambda **_: None)


@pytest.fixture
def fake_wechat_api() -> Iterator[tuple[FakeWeChat, str]]:
    """The fake WeChat API in a thread of its own: the CLI runs its own event loop."""
    fake, port, ready = FakeWeChat(), free_port(), threading.Event()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(fake.app())

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield fake, f"http://127.0.0.1:{port}"
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def test_menu_push_sends_the_file_to_wechat(
    fake_wechat_api: tuple[FakeWeChat, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake, api = fake_wechat_api
    monkeypatch.chdir(tmp_path)  # no config.toml of the checkout
    for name, value in {"API_BASE_URL": api, "APPID": APPID, "APPSECRET": APPSECRET}.items():
        monkeypatch.setenv(f"STOREFRONT_WECHAT__{name}", value)
    (tmp_path / "menu.toml").write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    assert cli.main(["menu", "push"]) == 0
    assert "menu pushed: 3 buttons" in capsys.readouterr().out
    assert fake.menu == load_menu(EXAMPLE).body
    [call] = fake.api_requests("/menu/create")
    assert call.query["access_token"]

    # a bad file is refused before anything is sent
    (tmp_path / "bad.json").write_text('{"button": [{"type": "click", "name": "热卖"}]}', encoding="utf-8")
    assert cli.main(["menu", "push", "bad.json"]) == 2
    assert "button 1 (热卖): a click button needs key" in capsys.readouterr().err
    assert len(fake.api_requests("/menu/create")) == 1


def test_menu_push_needs_the_appsecret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STOREFRONT_WECHAT__APPSECRET", raising=False)
    assert cli.main(["menu", "push", str(EXAMPLE)]) == 2
    assert "wechat.appsecret" in capsys.readouterr().err

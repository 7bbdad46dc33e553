"""The custom menu (自定义菜单): read from a file, checked against WeChat's published rules.

`storefront menu push [FILE]` reads a TOML or JSON file (`menu.example.toml` shows the
shape: `[[button]]` tables, each a button or a group with `[[button.sub_button]]`),
checks it here and sends it with `WeChatClient.create_menu` (`POST /cgi-bin/menu/create`).
The rules are WeChat's own (its "创建自定义菜单" page): 1 to 3 buttons, each a button or
a group of 1 to 5 sub-buttons; a name of at most 16 bytes (UTF-8) at the top, 60 in a
group (WeChat shows about 4 and 8 Chinese characters, then "..."); a `click` button needs
a `key` (at most 128 bytes), a `view` button an http(s) `url` (at most 1024 bytes), a
`miniprogram` button a `url` (for clients without mini programs), an `appid` and a
`pagepath`. Other types WeChat knows (scan, photo, location) are refused: the shop does
not answer them. A bad file is a `MenuError` naming the button, never half a menu pushed.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_BUTTONS = 3
MAX_SUB_BUTTONS = 5
MAX_NAME_BYTES = 16
MAX_SUB_NAME_BYTES = 60
MAX_KEY_BYTES = 128
MAX_URL_BYTES = 1024
TYPES = ("click", "view", "miniprogram")
_FIELDS = {"click": ("key",), "view": ("url",), "miniprogram": ("url", "appid", "pagepath")}


class MenuError(ValueError):
    """The menu file cannot be pushed; the message names the button and the rule."""


@dataclass(frozen=True, slots=True)
class Menu:
    """A checked menu: `body` is what `POST /cgi-bin/menu/create` takes."""

    body: dict[str, Any]

    def click_keys(self) -> list[str]:
        return [button["key"] for button in self._leaves() if button["type"] == "click"]

    def _leaves(self) -> list[dict[str, Any]]:
        leaves: list[dict[str, Any]] = []
        for button in self.body["button"]:
            leaves.extend(button.get("sub_button") or [button])
        return leaves


def load_menu(path: Path, *, base_url: str = "") -> Menu:
    """Read `path` (`.json`, else TOML) and check it; "{base_url}" in a url becomes `base_url`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MenuError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise MenuError(f"{path} is not valid {'JSON' if path.suffix.lower() == '.json' else 'TOML'}: {exc}") from None
    return check_menu(data, base_url=base_url)


def check_menu(data: Any, *, base_url: str = "") -> Menu:
    """The menu `data` describes, as WeChat takes it, or `MenuError`."""
    if not isinstance(data, dict) or set(data) - {"button"}:
        raise MenuError("a menu has one list, `button` ([[button]] tables in TOML)")
    buttons = data.get("button")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= MAX_BUTTONS:
        raise MenuError(f"a menu has 1 to {MAX_BUTTONS} buttons")
    body = [_check_top(button, number) for number, button in enumerate(buttons, start=1)]
    for leaf in Menu({"button": body})._leaves():
        if "url" in leaf and "{base_url}" in leaf["url"]:
            leaf["url"] = leaf["url"].replace("{base_url}", base_url.rstrip("/"))
            _check_url(leaf["url"], leaf["name"])
    return Menu({"button": body})


def _check_top(button: Any, number: int) -> dict[str, Any]:
    where = f"button {number}"
    if not isinstance(button, dict):
        raise MenuError(f"{where}: not a table")
    name = _name(button, where, MAX_NAME_BYTES)
    where = f"button {number} ({name})"
    subs = button.get("sub_button")
    if subs is None:
        return _check_leaf(button, where, name)
    if set(button) - {"name", "sub_button"}:
        raise MenuError(f"{where}: a group has a name and sub_button only, no type, key or url")
    if not isinstance(subs, list) or not 1 <= len(subs) <= MAX_SUB_BUTTONS:
        raise MenuError(f"{where}: a group has 1 to {MAX_SUB_BUTTONS} sub-buttons")
    checked = []
    for sub_number, sub in enumerate(subs, start=1):
        sub_where = f"{where}, sub-button {sub_number}"
        if not isinstance(sub, dict):
            raise MenuError(f"{sub_where}: not a table")
        sub_name = _name(sub, sub_where, MAX_SUB_NAME_BYTES)
        if "sub_button" in sub:
            raise MenuError(f"{sub_where} ({sub_name}): sub-buttons cannot hold more buttons")
        checked.append(_check_leaf(sub, f"{sub_where} ({sub_name})", sub_name))
    return {"name": name, "sub_button": checked}


def _name(button: dict[str, Any], where: str, limit: int) -> str:
    name = button.get("name")
    if not isinstance(name, str) or not name.strip():
        raise MenuError(f"{where}: needs a name")
    if len(name.encode()) > limit:
        raise MenuError(f"{where} ({name}): a name of at most {limit} bytes (UTF-8) here")
    return name


def _check_leaf(button: dict[str, Any], where: str, name: str) -> dict[str, Any]:
    kind = button.get("type")
    if kind not in TYPES:
        raise MenuError(f"{where}: type must be one of {', '.join(TYPES)} (or give sub_button)")
    fields = _FIELDS[kind]
    extra = set(button) - {"name", "type", *fields}
    if extra:
        raise MenuError(f"{where}: a {kind} button does not take {', '.join(sorted(extra))}")
    leaf: dict[str, Any] = {"type": kind, "name": name}
    for field in fields:
        value = button.get(field)
        if not isinstance(value, str) or not value.strip():
            raise MenuError(f"{where}: a {kind} button needs {field}")
        leaf[field] = value
    if kind == "click" and len(leaf["key"].encode()) > MAX_KEY_BYTES:
        raise MenuError(f"{where}: key of at most {MAX_KEY_BYTES} bytes")
    if "url" in leaf and "{base_url}" not in leaf["url"]:  # checked once replaced
        _check_url(leaf["url"], where)
    return leaf


def _check_url(url: str, where: str) -> None:
    if not url.startswith(("https://", "http://")):
        raise MenuError(f"{where}: url must start with https:// (or http://)")
    if len(url.encode()) > MAX_URL_BYTES:
        raise MenuError(f"{where}: url of at most {MAX_URL_BYTES} bytes")

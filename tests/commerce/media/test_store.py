"""The local media store: files named by their content, written whole, never outside the folder."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from commerce.media.store import LocalMediaStore, content_key, content_type, is_key


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


async def test_put_get_and_url(tmp_path: Path) -> None:
    store = LocalMediaStore(tmp_path / "media")
    key = content_key(b"picture bytes", "jpg")
    assert is_key(key) and content_type(key) == "image/jpeg"
    assert await store.get(key) is None
    await store.put(key, b"picture bytes")
    await store.put(key, b"picture bytes")  # twice: the same file
    assert await store.get(key) == b"picture bytes"
    assert store.url(key) == f"/media/{key}"
    assert store.path(key) == tmp_path / "media" / key[:2] / key
    assert _files(tmp_path) == [store.path(key)]  # no leftovers


async def test_a_key_must_name_its_bytes(tmp_path: Path) -> None:
    store = LocalMediaStore(tmp_path)
    with pytest.raises(ValueError):
        await store.put(content_key(b"one", "png"), b"another")
    with pytest.raises(ValueError):
        content_key(b"x", "exe")


@pytest.mark.parametrize("name", ["../secret.jpg", "a" * 64 + ".jpg/../x", "A" * 64 + ".jpg", "a" * 64 + ".svg", ""])
async def test_anything_but_a_key_never_reaches_a_path(tmp_path: Path, name: str) -> None:
    store = LocalMediaStore(tmp_path)
    assert await store.get(name) is None
    with pytest.raises(ValueError):
        store.path(name)
    with pytest.raises(ValueError):
        store.url(name)


async def test_writers_at_the_same_time_leave_one_whole_file(tmp_path: Path) -> None:
    store = LocalMediaStore(tmp_path)
    data = b"x" * 200_000
    key = content_key(data, "png")
    await asyncio.gather(*(store.put(key, data) for _ in range(8)))
    assert await store.get(key) == data
    assert _files(tmp_path) == [store.path(key)]  # one whole file, no parts left

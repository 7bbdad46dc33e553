"""Where product pictures are kept: a small interface, and the local folder behind it.

Every file is named by the SHA-256 of its own bytes and its type (`<64 hex>.jpg`), so a
name never points at two different contents: a file is written once and never changed,
the same picture sent twice is stored once, and whatever serves it may let browsers and
WeChat cache it for good (`bot/web/media.py`). Names are checked before they touch a
path, so a key can never reach outside the store.

`MediaStore` is what the shop needs of a store: `put` a file under its key, `get` it back,
and the `url` a customer's browser (or WeChat, for a card's picture) fetches it from.
`LocalMediaStore` keeps the files in a folder (`media.dir`) that the app serves at
`/media/<key>`; every worker of one machine shares it. An S3-compatible store (MinIO)
would implement the same three calls (README, "Product pictures").
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
from pathlib import Path
from typing import Protocol

CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif"}
_KEY = re.compile(r"([0-9a-f]{64})\.(jpg|png|webp|gif)")
URL_PREFIX = "/media"


class MediaStore(Protocol):
    async def put(self, key: str, data: bytes) -> None:
        """Keep `data` under `key` (a `content_key`); doing it twice changes nothing."""
        ...

    async def get(self, key: str) -> bytes | None:
        """The file kept under `key`, or None."""
        ...

    def url(self, key: str) -> str:
        """Where it is fetched from: a path on this app ("/media/<key>") or an absolute URL."""
        ...


def content_key(data: bytes, ext: str) -> str:
    """The name of a file: the SHA-256 of its bytes and its type, "<64 hex>.png"."""
    if ext not in CONTENT_TYPES:
        raise ValueError(f"unknown picture type {ext!r}")
    return f"{hashlib.sha256(data).hexdigest()}.{ext}"


def is_key(name: str) -> bool:
    return _KEY.fullmatch(name) is not None


def digest_of(key: str) -> str:
    """The hash part of a key (what an ETag carries); ValueError for anything else."""
    found = _KEY.fullmatch(key)
    if found is None:
        raise ValueError("not a media key")
    return found.group(1)


def content_type(key: str) -> str:
    return CONTENT_TYPES[key.rsplit(".", 1)[-1]]


class LocalMediaStore:
    """Files in `directory` (made when first written), two levels deep: ab/ab12….jpg."""

    def __init__(self, directory: str | Path, *, url_prefix: str = URL_PREFIX) -> None:
        self.directory = Path(directory)
        self.url_prefix = url_prefix.rstrip("/")

    def path(self, key: str) -> Path:
        digest = digest_of(key)  # refuses anything but a key: no "..", no "/"
        return self.directory / digest[:2] / key

    async def put(self, key: str, data: bytes) -> None:
        if content_key(data, key.rsplit(".", 1)[-1]) != key:
            raise ValueError("a media key names the SHA-256 of its bytes")
        await asyncio.to_thread(self._write, self.path(key), data)

    async def get(self, key: str) -> bytes | None:
        if not is_key(key):
            return None
        try:
            return await asyncio.to_thread(self.path(key).read_bytes)
        except FileNotFoundError:
            return None

    def url(self, key: str) -> str:
        digest_of(key)
        return f"{self.url_prefix}/{key}"

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        if path.is_file() and path.stat().st_size == len(data):
            return  # the same name is the same bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        try:
            part.write_bytes(data)
            os.replace(part, path)  # whole or not at all, also with several workers writing it
        finally:
            part.unlink(missing_ok=True)

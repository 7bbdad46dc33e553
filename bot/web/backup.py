"""`GET /backup/{token}`: the owner's backup page; `GET /backup/{token}/file`: the backup zip.

An owner sends `/backup` in the chat and gets a sealed link (`bot.web.signed_links`, its own
domain label) to a small page, made to open in WeChat's browser: what the backup holds, until
when the link works, and a download button. The token binds a random link id, the owner who
asked and the expiry (10 minutes); whoever reads the link learns none of them. Its payload:

    link id (16 random bytes) | expires_at as unix seconds (4 bytes) | openid (`signed_links.pack_id`)

Opening the page or the file checks the token (403 when altered or another kind of link), the
expiry (410) and that whoever asked is still an owner (403). The file is made when asked for
(`commerce.backup.archive.create_backup`, in a thread: the shop goes on answering) and works
once: its use is recorded (`commerce.link_uses`) with an audit row ("backup_download") before
the backup is made, so the backup holds its own audit row. One backup at a time per worker:
a second one asked for meanwhile gets 429 and is told to try again in a minute. The zip is
served as an attachment named `<shop>-备份-<time>.zip` (`filename*=UTF-8''…`, with an ASCII
fallback), never cached, and deleted once sent.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import shutil
import struct
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from bot.config import Config
from bot.keys import CONFIG, SERVICES
from bot.web import signed_links
from bot.web.export import content_disposition
from bot.web.product import PAGES
from bot.web.signed_links import LinkError
from commerce import link_uses
from commerce.backup import BackupError
from commerce.backup.archive import create_backup
from commerce.staff import audit
from commerce.staff.models import StaffRole

log = logging.getLogger(__name__)

LINK_LIFETIME = timedelta(minutes=10)
LINK_KIND = "backup"  # the kind of its row in link_uses
_DOMAIN = b"storefront/backup/v1"
LINK_ID_BYTES = 16
_HEAD = struct.Struct(f">{LINK_ID_BYTES}sI")  # link id, expires_at
CHUNK_BYTES = 256 * 1024
BACKUP_GATE = web.AppKey("backup_gate", asyncio.Lock)  # one backup at a time in this worker


@dataclass(frozen=True, slots=True)
class BackupClaim:
    """What a valid backup token says: a backup for `openid`, once, until `expires_at`."""

    link_id: str
    openid: str
    expires_at: datetime


def make_backup_token(*, key: bytes, openid: str, expires_at: datetime, link_id: bytes | None = None) -> str:
    if expires_at.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    seconds = int(expires_at.timestamp())
    if not 0 <= seconds < 2**32:
        raise ValueError("expires_at is out of range")
    link_id = secrets.token_bytes(LINK_ID_BYTES) if link_id is None else link_id
    if len(link_id) != LINK_ID_BYTES:
        raise ValueError(f"link_id must be {LINK_ID_BYTES} bytes")
    payload = _HEAD.pack(link_id, seconds) + signed_links.pack_id(openid)
    return signed_links.seal(key=key, domain=_DOMAIN, payload=payload)


def read_backup_token(*, key: bytes, token: str, now: datetime | None = None) -> BackupClaim:
    """The claim of a good token; `LinkError` (malformed, bad_signature, expired)."""
    payload = signed_links.unseal(key=key, domain=_DOMAIN, token=token)
    if len(payload) < _HEAD.size:
        raise LinkError("malformed")
    link_id, seconds = _HEAD.unpack_from(payload)
    openid, offset = signed_links.unpack_id(payload, _HEAD.size)
    if offset != len(payload):
        raise LinkError("malformed")
    claim = BackupClaim(signed_links.b64encode(link_id), openid, datetime.fromtimestamp(seconds, UTC))
    if (now or datetime.now(UTC)) >= claim.expires_at:
        raise LinkError("expired")
    return claim


def backup_url(config: Config, *, openid: str, now: datetime | None = None) -> tuple[str, datetime]:
    """The link to the backup page and when it stops working."""
    expires_at = (now or datetime.now(UTC)) + LINK_LIFETIME
    token = make_backup_token(key=config.signing_key, openid=openid, expires_at=expires_at)
    return f"{config.public_base_url}/backup/{token}", expires_at


def backup_filenames(shop: str, when: datetime) -> tuple[str, str]:
    """(ASCII fallback, the name shown): `storefront-backup-20261205-0930.zip`, `测试小店-备份-20261205-0930.zip`."""
    stamp = when.strftime("%Y%m%d-%H%M")
    safe_shop = re.sub(r"[^\w]+", "-", shop).strip("-_") or "storefront"
    return f"storefront-backup-{stamp}.zip", f"{safe_shop}-备份-{stamp}.zip"


# ---- the routes ----------------------------------------------------------------------------------

_MINUTES = int(LINK_LIFETIME.total_seconds() // 60)
REFUSALS: dict[str, tuple[int, str, str]] = {
    "malformed": (404, "找不到这个备份链接，请检查链接是否完整。", "This backup link was not found: check that the whole link was opened."),
    "bad_signature": (403, "这个备份链接无效（可能被修改过）。", "This backup link is not valid (it may have been altered)."),
    "expired": (410, f"备份链接已过期（{_MINUTES} 分钟内有效），请在对话中重新发送 /backup。",
                f"This backup link has expired (links last {_MINUTES} minutes): send /backup again in the chat."),
    "used": (410, "这个备份链接已经下载过（每个链接只能下载一次），请在对话中重新发送 /backup。",
             "This backup link has already been used (each link downloads once): send /backup again in the chat."),
    "not_owner": (403, "只有店主可以下载备份。", "Only an owner may download a backup."),
    "busy": (429, "正在生成另一份备份，请一分钟后再试。", "Another backup is being made: try again in a minute."),
    "failed": (500, "备份没有生成成功，请稍后在对话中重新发送 /backup。", "The backup could not be made: send /backup again in a while."),
}
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the token is in the address
    "X-Content-Type-Options": "nosniff",
}


def _page(request: web.Request, *, status: int = 200, **data: Any) -> web.Response:
    html = request.app[PAGES].get_template("backup.html").render(shop=request.app[CONFIG].shop.name, **data)
    return web.Response(status=status, text=html, content_type="text/html", headers=HEADERS)


def _refuse(request: web.Request, reason: str) -> web.Response:
    log.info("backup link refused", extra={"reason": reason})
    status, zh, en = REFUSALS[reason]
    return _page(request, status=status, refusal={"reason": reason, "zh": zh, "en": en})


async def _claim(request: web.Request, now: datetime) -> BackupClaim | web.Response:
    """The token's claim, when it is good and its owner still one; else the refusal."""
    try:
        claim = read_backup_token(key=request.app[CONFIG].signing_key, token=request.match_info["token"], now=now)
    except LinkError as exc:
        return _refuse(request, exc.reason)
    if await request.app[SERVICES].staff.role(claim.openid) != StaffRole.OWNER:
        return _refuse(request, "not_owner")
    return claim


async def backup_page(request: web.Request) -> web.Response:
    """The page with the download button; opening it uses nothing."""
    claim = await _claim(request, datetime.now(UTC))
    if isinstance(claim, web.Response):
        return claim
    local = claim.expires_at.astimezone(ZoneInfo(request.app[CONFIG].shop.timezone))
    return _page(
        request, refusal=None, file_url=f"{request.path}/file", expires_at=local.strftime("%H:%M"),
        in_wechat="MicroMessenger" in request.headers.get("User-Agent", ""),
    )


class _Used(Exception):
    """The link was used already: nothing of this request is kept."""


async def backup_file(request: web.Request) -> web.StreamResponse:
    now = datetime.now(UTC)
    claim = await _claim(request, now)
    if isinstance(claim, web.Response):
        return claim
    gate = request.app[BACKUP_GATE]
    if gate.locked():
        return _refuse(request, "busy")
    config, services = request.app[CONFIG], request.app[SERVICES]
    async with gate:
        try:
            async with services.uow() as uow:
                if await link_uses.is_used(uow.session, link_id=claim.link_id) or not await link_uses.use_once(
                    uow.session, link_id=claim.link_id, kind=LINK_KIND, expires_at=claim.expires_at, now=now
                ):
                    raise _Used
                await audit.record(uow.session, actor=claim.openid, role=str(StaffRole.OWNER),
                                   command="backup_download", args=[], outcome="ok")
        except _Used:
            return _refuse(request, "used")
        folder = Path(tempfile.mkdtemp(prefix="storefront-backup-"))
        try:
            path = folder / "backup.zip"
            manifest = await create_backup(config.database.url, path, now=now)
        except Exception as exc:  # logged, audited, and the owner is told
            log.exception("the backup could not be made")
            shutil.rmtree(folder, ignore_errors=True)
            async with services.uow() as uow:
                await audit.record(uow.session, actor=claim.openid, role=str(StaffRole.OWNER),
                                   command="backup_download", args=[], outcome="failed",
                                   after={"error": str(exc) if isinstance(exc, BackupError) else type(exc).__name__})
            return _refuse(request, "failed")
    try:
        log.info("backup made", extra={"rows": manifest.total_rows, "bytes": path.stat().st_size})
        ascii_name, name = backup_filenames(config.shop.name, now.astimezone(ZoneInfo(config.shop.timezone)))
        response = web.StreamResponse(headers={
            **HEADERS, "Content-Type": "application/zip", "Content-Disposition": content_disposition(ascii_name, name),
        })
        response.content_length = path.stat().st_size
        await response.prepare(request)
        with path.open("rb") as file:
            while chunk := await asyncio.to_thread(file.read, CHUNK_BYTES):
                await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def add_routes(app: web.Application) -> None:
    app[BACKUP_GATE] = asyncio.Lock()
    # no HEAD: a link preview must not make a backup
    app.router.add_get("/backup/{token}", backup_page, allow_head=False)
    app.router.add_get("/backup/{token}/file", backup_file, allow_head=False)

"""`/ship/{token}`: the bulk ship page, behind a sealed link that works for 30 minutes.

Staff send `/ship 批量` (`/ship upload`) in the chat and get the link. `GET` shows a form
to upload a CSV or XLSX file, or paste rows (order number, carrier, tracking number:
`commerce.orders.ship_file`);
`POST` ships every row through the one ship use case (`commerce.orders.actions.ship_orders`,
as `/ship` does) and answers with what shipped and what was refused and why, row by row.
Each customer whose order shipped is told (carrier and tracking link) once the unit of
work commits. Uploading the same file again ships nothing twice: its shipped orders are
refused as shipped already.

The token (`bot.web.signed_links`, its own domain label) binds the staff member who asked
and the expiry: `expires_at as unix seconds (4 bytes) | openid (pack_id)`. Every request
checks it (403 altered, 410 expired) and that its staff member may still ship (403); the
audit keeps each upload ("ship_upload", who, how many rows shipped and refused).
"""

from __future__ import annotations

import logging
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import BodyPartReader, web

from bot.admin.registry import ALL_ROLES
from bot.config import Config
from bot.keys import CONFIG, RENDERER, SERVICES
from bot.web import signed_links
from bot.web.product import PAGES
from bot.web.signed_links import LinkError
from commerce.errors import ShopError
from commerce.orders import actions as order_actions
from commerce.orders.carriers import all_carriers
from commerce.orders.ship_file import MAX_FILE_BYTES, read_ship_file
from commerce.staff import audit

log = logging.getLogger(__name__)

LINK_LIFETIME = timedelta(minutes=30)
SHIP_ROLES = ALL_ROLES  # the roles of /ship
_DOMAIN = b"storefront/ship/v1"
_HEAD = struct.Struct(">I")  # expires_at
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the token is in the address
    "X-Content-Type-Options": "nosniff",
}
_MINUTES = int(LINK_LIFETIME.total_seconds() // 60)
REFUSALS: dict[str, tuple[int, str, str]] = {
    "malformed": (404, "找不到这个发货链接，请检查链接是否完整。", "This ship link was not found."),
    "bad_signature": (403, "这个发货链接无效（可能被修改过）。", "This ship link is not valid (it may have been altered)."),
    "expired": (410, f"发货链接已过期（{_MINUTES} 分钟内有效），请在对话中重新发送 /ship 批量。",
                f"This ship link has expired (links last {_MINUTES} minutes): send /ship upload again."),
    "not_staff": (403, "您已没有发货权限。", "You may no longer ship orders."),
}
FILE_PROBLEMS: dict[str, tuple[str, str]] = {
    "too_large": (f"文件太大，最多 {MAX_FILE_BYTES // 1024} KB，请分几次上传。",
                  f"The file is too large (at most {MAX_FILE_BYTES // 1024} KB): upload it in parts."),
    "encoding": ("文件编码无法识别，请保存为 CSV（UTF-8 或 GBK）。", "The file's encoding is not recognised: save it as CSV."),
    "format": ("文件无法读取：请上传 CSV 或 Excel（.xlsx），CSV 的引号要成对。",
               "The file cannot be read: upload a CSV or an Excel (.xlsx) file, with paired quotes in a CSV."),
    "empty": ("文件里没有要发货的行。", "The file has no rows to ship."),
    "too_many_lines": (f"一次最多 {order_actions.MAX_SHIP_LINES} 行，请分几次上传。",
                       f"At most {order_actions.MAX_SHIP_LINES} rows at a time: upload it in parts."),
    "no_file": ("请选择要上传的文件，或粘贴要发货的行。", "Choose a file to upload, or paste the rows to ship."),
}


def make_ship_token(*, key: bytes, openid: str, expires_at: datetime) -> str:
    if expires_at.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    seconds = int(expires_at.timestamp())
    if not 0 <= seconds < 2**32:
        raise ValueError("expires_at is out of range")
    payload = _HEAD.pack(seconds) + signed_links.pack_id(openid)
    return signed_links.seal(key=key, domain=_DOMAIN, payload=payload)


def read_ship_token(*, key: bytes, token: str, now: datetime | None = None) -> str:
    """The openid of the staff member the link was made for; `LinkError` (malformed,
    bad_signature, expired)."""
    payload = signed_links.unseal(key=key, domain=_DOMAIN, token=token)
    if len(payload) < _HEAD.size:
        raise LinkError("malformed")
    (seconds,) = _HEAD.unpack_from(payload)
    openid, offset = signed_links.unpack_id(payload, _HEAD.size)
    if offset != len(payload):
        raise LinkError("malformed")
    if (now or datetime.now(UTC)) >= datetime.fromtimestamp(seconds, UTC):
        raise LinkError("expired")
    return openid


def ship_page_url(config: Config, *, openid: str, now: datetime | None = None) -> tuple[str, datetime]:
    """The link to the bulk ship page for `openid`, and when it stops working."""
    expires_at = (now or datetime.now(UTC)) + LINK_LIFETIME
    token = make_ship_token(key=config.signing_key, openid=openid, expires_at=expires_at)
    return f"{config.public_base_url}/ship/{token}", expires_at


# ---- the routes --------------------------------------------------------------------------------


def _refuse(reason: str) -> web.Response:
    status, zh, en = REFUSALS[reason]
    return web.Response(status=status, text=f"{zh}\n{en}", content_type="text/plain", charset="utf-8",
                        headers=HEADERS)


async def _staff(request: web.Request) -> tuple[str, str] | web.Response:
    """(openid, role) of the link's staff member, or the refusal to answer with."""
    config = request.app[CONFIG]
    try:
        openid = read_ship_token(key=config.signing_key, token=request.match_info["token"])
    except LinkError as exc:
        log.info("ship link refused", extra={"reason": exc.reason})
        return _refuse(exc.reason)
    role = await request.app[SERVICES].staff.role(openid)
    if role not in SHIP_ROLES:
        log.info("ship link refused", extra={"reason": "not_staff"})
        return _refuse("not_staff")
    return openid, str(role)


def _page(request: web.Request, *, status: int = 200, **data: Any) -> web.Response:
    config = request.app[CONFIG]
    context: dict[str, Any] = {"results": None, "problem": None, "shipped_count": 0, "refused_count": 0}
    html = request.app[PAGES].get_template("ship.html").render(
        shop=config.shop.name, carriers=all_carriers(), max_lines=order_actions.MAX_SHIP_LINES,
        **(context | data),
    )
    return web.Response(status=status, text=html, content_type="text/html", headers=HEADERS)


async def ship_page(request: web.Request) -> web.Response:
    staff = await _staff(request)
    if isinstance(staff, web.Response):
        return staff
    return _page(request)


async def _read_file(request: web.Request) -> bytes | None:
    """The uploaded file's bytes (field "file"), else the pasted rows (field "text"), at
    most MAX_FILE_BYTES + 1 of them (a plain form, pasted rows only, within the app's
    `server.max_body_bytes`)."""
    if request.content_type == "application/x-www-form-urlencoded":
        text = (await request.post()).get("text")
        return text.strip().encode("utf-8") or None if isinstance(text, str) else None
    if not request.content_type.startswith("multipart/"):
        return None
    reader = await request.multipart()
    found: dict[str, bytes] = {}
    async for part in reader:
        if isinstance(part, BodyPartReader) and part.name in ("file", "text") and part.name not in found:
            data = bytearray()
            while chunk := await part.read_chunk(64 * 1024):
                data += chunk
                if len(data) > MAX_FILE_BYTES:
                    break
            found[part.name] = bytes(data)
            if len(data) > MAX_FILE_BYTES:
                break
    return found.get("file") or found.get("text", b"").strip() or None


async def ship_upload(request: web.Request) -> web.Response:
    staff = await _staff(request)
    if isinstance(staff, web.Response):
        return staff
    openid, role = staff
    services = request.app[SERVICES]
    locale = request.app[CONFIG].shop.locale
    try:
        data = await _read_file(request)
    except ValueError:
        data = None
    if not data:
        return _page(request, status=400, problem=FILE_PROBLEMS["no_file"])
    try:
        lines = read_ship_file(data)
    except ShopError as exc:
        reason = str(exc.details.get("reason", "format"))
        return _page(request, status=400, problem=FILE_PROBLEMS.get(reason, FILE_PROBLEMS["format"]))
    async with services.uow() as uow:
        results = await order_actions.ship_orders(
            uow.session, lines=lines, actor=f"staff:{openid}", now=datetime.now(UTC)
        )
        shipped = [r for r in results if r.shipped]
        await audit.record(
            uow.session, actor=openid, role=role, command="ship_upload", args={"rows": len(lines)},
            outcome="ok" if shipped else "failed",
            after={"shipped": [r.order.order_no for r in shipped if r.order is not None],
                   "refused": [{"line": r.line.line_no, "code": str(r.error.code)}
                               for r in results if r.error is not None]},
        )
    renderer = request.app[RENDERER]
    rows = []
    for result in results:
        reason = ""
        if result.error is not None:
            error = {"code": str(result.error.code), "d": dict(result.error.details)}
            reason = renderer.text("shop_error", locale, error)
        order = result.order
        rows.append({
            "line_no": result.line.line_no, "ref": result.line.ref, "shipped": order is not None,
            "order_no": order.order_no if order else "", "carrier": order.carrier if order else result.line.carrier,
            "tracking_no": order.tracking_no if order else result.line.tracking_no, "reason": reason,
        })
    return _page(request, results=rows, shipped_count=len(shipped), refused_count=len(rows) - len(shipped))


def add_routes(app: web.Application) -> None:
    # no HEAD: a link preview needs nothing of it
    app.router.add_get("/ship/{token}", ship_page, allow_head=False)
    app.router.add_post("/ship/{token}", ship_upload)


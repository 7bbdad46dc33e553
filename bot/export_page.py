"""`GET /export/{token}`: a CSV export behind a signed link that expires.

Staff ask in the chat (`/export orders 2026-11-01 2026-11-25`, `/export products`) and
get a link; the CSV is generated when the link is opened, so it is as fresh as the
click. The token (`bot.signed_links`, its own domain label) binds the kind, the date
range, the staff member who asked and the expiry:

    payload: ``1|<kind>|<start>|<end>|<expires_at as unix seconds>|<openid>``
    (dates ISO, empty for a products export)

Opening the link checks the signature (403 when altered), the expiry (410), and that
whoever asked is still staff allowed to export (403 otherwise), then writes an audit
row ("export_download") and serves the file: UTF-8 with a BOM (Excel then shows
Chinese correctly), as an attachment, never cached. The link carries customers'
addresses and phone numbers to whoever holds it for 30 minutes: it is sent only to
the staff member who asked.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from aiohttp import web

from bot import signed_links
from bot.admin.registry import MANAGERS
from bot.config import Config
from bot.keys import CONFIG, SERVICES
from bot.signed_links import LinkError
from commerce import audit
from commerce.errors import ShopError
from commerce.export import CSV_ENCODING, export_orders_csv, export_products_csv

log = logging.getLogger(__name__)

VERSION = "1"
LINK_LIFETIME = timedelta(minutes=30)
EXPORT_ROLES = MANAGERS  # the roles of /export: someone who lost them can no longer download
_DOMAIN = b"storefront/export\x00"
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

Kind = Literal["orders", "products"]
KINDS: tuple[Kind, ...] = ("orders", "products")


@dataclass(frozen=True, slots=True)
class ExportClaim:
    """What a valid export token says: this export, asked for by `openid`, until then."""

    kind: Kind
    start: date | None
    end: date | None
    openid: str
    expires_at: datetime

    @property
    def filename(self) -> str:
        if self.kind == "orders" and self.start and self.end:
            return f"orders-{self.start.isoformat()}_{self.end.isoformat()}.csv"
        return f"products-{self.expires_at.strftime('%Y%m%d-%H%M')}.csv"


def make_export_token(
    *, key: bytes, kind: Kind, openid: str, expires_at: datetime,
    start: date | None = None, end: date | None = None,
) -> str:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    if (kind == "orders") != (start is not None and end is not None):
        raise ValueError("an orders export needs start and end; a products export neither")
    if not _ID.match(openid):
        raise ValueError("openid must be 1-64 characters of A-Z a-z 0-9 _ -")
    if expires_at.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    fields = (
        VERSION, kind, start.isoformat() if start else "", end.isoformat() if end else "",
        str(int(expires_at.timestamp())), openid,
    )
    return signed_links.seal(key=key, domain=_DOMAIN, payload="|".join(fields).encode("ascii"))


def read_export_token(*, key: bytes, token: str, now: datetime | None = None) -> ExportClaim:
    """The claim of a good token; `LinkError` (malformed, bad_signature, expired)."""
    payload = signed_links.unseal(key=key, domain=_DOMAIN, token=token)
    try:
        version, kind, start, end, expires, openid = payload.decode("ascii").split("|")
        claim = ExportClaim(
            kind=kind,  # type: ignore[arg-type]  # checked below
            start=date.fromisoformat(start) if start else None,
            end=date.fromisoformat(end) if end else None,
            openid=openid,
            expires_at=datetime.fromtimestamp(int(expires), UTC),
        )
    except (UnicodeDecodeError, ValueError, OverflowError, OSError):
        raise LinkError("malformed") from None
    if version != VERSION or kind not in KINDS or not _ID.match(openid):
        raise LinkError("malformed")
    if (kind == "orders") != (claim.start is not None and claim.end is not None):
        raise LinkError("malformed")
    if (now or datetime.now(UTC)) >= claim.expires_at:
        raise LinkError("expired")
    return claim


def export_url(
    config: Config, *, kind: Kind, openid: str, start: date | None = None, end: date | None = None,
    now: datetime | None = None,
) -> tuple[str, datetime]:
    """The link to an export and when it stops working."""
    expires_at = (now or datetime.now(UTC)) + LINK_LIFETIME
    token = make_export_token(
        key=config.signing_key, kind=kind, openid=openid, expires_at=expires_at, start=start, end=end
    )
    return f"{config.public_base_url}/export/{token}", expires_at


# ---- the route ---------------------------------------------------------------------------------

REFUSALS: dict[str, tuple[int, str]] = {
    "malformed": (404, "找不到这个导出链接，请检查链接是否完整。\nThis export link was not found: check that the whole link was opened."),
    "bad_signature": (403, "这个导出链接无效（可能被修改过）。\nThis export link is not valid (it may have been altered)."),
    "expired": (410, "导出链接已过期（30 分钟内有效），请在对话中重新发送 /export。\nThis export link has expired (links last 30 minutes): send /export again in the chat."),
    "not_staff": (403, "您已没有导出权限。\nYou may no longer export."),
    "invalid": (400, "导出的日期范围无效，请在对话中重新发送 /export。\nThe export's date range is not valid: send /export again in the chat."),
}
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the token is in the address
    "X-Content-Type-Options": "nosniff",
}


def _refuse(reason: str) -> web.Response:
    status, text = REFUSALS[reason]
    return web.Response(status=status, text=text, content_type="text/plain", charset="utf-8", headers=HEADERS)


async def export_csv(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    services = request.app[SERVICES]
    try:
        claim = read_export_token(key=config.signing_key, token=request.match_info["token"])
    except LinkError as exc:
        log.info("export link refused", extra={"reason": exc.reason})
        return _refuse(exc.reason)
    role = await services.staff.role(claim.openid)
    if role not in EXPORT_ROLES:
        log.info("export link refused", extra={"reason": "not_staff"})
        return _refuse("not_staff")
    args = [claim.kind, *(d.isoformat() for d in (claim.start, claim.end) if d)]
    try:
        async with services.sessions() as session, session.begin():
            if claim.start is not None and claim.end is not None:
                text = await export_orders_csv(
                    session, start=claim.start, end=claim.end, tz=ZoneInfo(config.shop.timezone)
                )
            else:
                text = await export_products_csv(session)
            await audit.record(
                session, actor=claim.openid, role=str(role), command="export_download", args=args,
                outcome="ok", after={"characters": len(text)},
            )
    except ShopError:
        return _refuse("invalid")
    body = text.encode(CSV_ENCODING)  # UTF-8 with a BOM
    return web.Response(
        body=body,
        headers={
            **HEADERS,
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{claim.filename}"',
        },
    )


def add_routes(app: web.Application) -> None:
    # no HEAD: a link preview must not build the file nor write an audit row
    app.router.add_get("/export/{token}", export_csv, allow_head=False)

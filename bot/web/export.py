"""`GET /export/{token}`: the export page behind a sealed link; `GET /export/{token}/file`:
its file, once, within 10 minutes.

Staff ask in the chat (`/export`, `/export orders 2026-11-01 2026-11-25`, `/export
products`) and get a link. The page (`templates/pages/export.html`) offers the choices
(dates, defaulting to the link's; one status or all; XLSX or CSV; Chinese or English
headers) and a download button: WeChat's browser opens it, and where it will not save a
file the page says to open it in the browser. The file is generated when downloaded, so
it is as fresh as the click. The token (`bot.web.signed_links`: encrypted and
authenticated, its own domain label) binds a random link id, the kind, the default date
range, the staff member who asked and the expiry; whoever reads the link learns none of
them. Its payload:

    link id (16 random bytes) | kind (1 byte: 0 products, 1 orders)
    | expires_at as unix seconds (4 bytes) | [start, end as date ordinals, 4 bytes each: orders]
    | openid (`signed_links.pack_id`)

Both routes check the token (403 when altered or another kind of link), the expiry (410),
and that whoever asked is still staff allowed to export (403 otherwise); the page builds
and uses nothing. The file, in one transaction: built, the link id recorded as used
(`commerce.link_uses`: an INSERT whose primary key decides, so of two simultaneous clicks
only one gets the file) and an audit row ("export_download": kind, dates, status,
format, language); a second use (file or page) is 410 and writes nothing. CSV is UTF-8
with a BOM (Excel then shows Chinese correctly); either way an attachment named with
`filename*=UTF-8''…` (and an ASCII fallback), never cached. The link carries customers'
addresses and phone numbers to whoever opens it first: it is sent only to the staff
member who asked.
"""

from __future__ import annotations

import logging
import secrets
import struct
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from urllib.parse import quote
from zoneinfo import ZoneInfo

from aiohttp import web

from bot.admin.registry import MANAGERS
from bot.config import Config
from bot.keys import CONFIG, SERVICES
from bot.web import signed_links
from bot.web.product import PAGES
from bot.web.signed_links import LinkError
from commerce import link_uses
from commerce.catalog.csv_io import write_csv
from commerce.errors import ShopError
from commerce.orders.models import OrderStatus
from commerce.reports.export import (
    CSV_ENCODING,
    LOCALES,
    MAX_DAYS,
    ORDER_NUMBER_COLUMNS,
    READY_TO_SHIP,
    STATUS_NAMES,
    export_orders_rows,
    export_products_csv,
    to_xlsx,
)
from commerce.staff import audit

log = logging.getLogger(__name__)

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
LINK_LIFETIME = timedelta(minutes=10)
LINK_KIND = "export"  # the kind of its row in link_uses
EXPORT_ROLES = MANAGERS  # the roles of /export: someone who lost them can no longer download
# The format's version is in the label: a new payload format takes a new label.
_DOMAIN = b"storefront/export/v2"
LINK_ID_BYTES = 16
_HEAD = struct.Struct(f">{LINK_ID_BYTES}sBI")  # link id, kind, expires_at
_DATES = struct.Struct(">II")  # start, end (date ordinals)

Kind = Literal["orders", "products"]
KINDS: tuple[Kind, ...] = ("products", "orders")  # the index is the kind's byte


@dataclass(frozen=True, slots=True)
class ExportClaim:
    """What a valid export token says: this export, asked for by `openid`, once, until then."""

    link_id: str
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
    start: date | None = None, end: date | None = None, link_id: bytes | None = None,
) -> str:
    """Seal a link to one export; a fresh random link id unless `link_id` is given."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    if (kind == "orders") != (start is not None and end is not None):
        raise ValueError("an orders export needs start and end; a products export neither")
    if expires_at.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    seconds = int(expires_at.timestamp())
    if not 0 <= seconds < 2**32:
        raise ValueError("expires_at is out of range")
    if link_id is None:
        link_id = secrets.token_bytes(LINK_ID_BYTES)
    if len(link_id) != LINK_ID_BYTES:
        raise ValueError(f"link_id must be {LINK_ID_BYTES} bytes")
    payload = _HEAD.pack(link_id, KINDS.index(kind), seconds)
    if start is not None and end is not None:
        payload += _DATES.pack(start.toordinal(), end.toordinal())
    payload += signed_links.pack_id(openid)  # ValueError unless 1-64 of A-Z a-z 0-9 _ -
    return signed_links.seal(key=key, domain=_DOMAIN, payload=payload)


def read_export_token(*, key: bytes, token: str, now: datetime | None = None) -> ExportClaim:
    """The claim of a good token; `LinkError` (malformed, bad_signature, expired).

    Whether the link was used already is the route's question (`commerce.link_uses`).
    """
    payload = signed_links.unseal(key=key, domain=_DOMAIN, token=token)
    if len(payload) < _HEAD.size:
        raise LinkError("malformed")
    link_id, kind_byte, seconds = _HEAD.unpack_from(payload)
    if kind_byte >= len(KINDS):
        raise LinkError("malformed")
    kind = KINDS[kind_byte]
    offset, start, end = _HEAD.size, None, None
    if kind == "orders":
        if len(payload) < offset + _DATES.size:
            raise LinkError("malformed")
        try:
            start, end = (date.fromordinal(n) for n in _DATES.unpack_from(payload, offset))
        except ValueError:
            raise LinkError("malformed") from None
        offset += _DATES.size
    openid, offset = signed_links.unpack_id(payload, offset)
    if offset != len(payload):
        raise LinkError("malformed")
    claim = ExportClaim(
        link_id=signed_links.b64encode(link_id), kind=kind, start=start, end=end, openid=openid,
        expires_at=datetime.fromtimestamp(seconds, UTC),
    )
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

_MINUTES = int(LINK_LIFETIME.total_seconds() // 60)
REFUSALS: dict[str, tuple[int, str]] = {
    "malformed": (404, "找不到这个导出链接，请检查链接是否完整。\nThis export link was not found: check that the whole link was opened."),
    "bad_signature": (403, "这个导出链接无效（可能被修改过）。\nThis export link is not valid (it may have been altered)."),
    "expired": (410, f"导出链接已过期（{_MINUTES} 分钟内有效），请在对话中重新发送 /export。\nThis export link has expired (links last {_MINUTES} minutes): send /export again in the chat."),
    "used": (410, "这个导出链接已经使用过（每个链接只能下载一次），请在对话中重新发送 /export。\nThis export link has already been used (each link downloads once): send /export again in the chat."),
    "not_staff": (403, "您已没有导出权限。\nYou may no longer export."),
    "invalid": (400, f"导出的选项无效（日期范围最长 {MAX_DAYS} 天，结束不能早于开始），请返回修改。\nThe export's choices are not valid (a date range of at most {MAX_DAYS} days, ending after it starts): go back and change them."),
}
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the token is in the address
    "X-Content-Type-Options": "nosniff",
}


def _refuse(reason: str) -> web.Response:
    status, text = REFUSALS[reason]
    return web.Response(status=status, text=text, content_type="text/plain", charset="utf-8", headers=HEADERS)


class _Used(Exception):
    """The link was used already: nothing of this request is kept."""


FORMATS = ("xlsx", "csv")
STATUS_CHOICES: tuple[str, ...] = ("", READY_TO_SHIP, *(str(s) for s in OrderStatus))  # "": every status


@dataclass(frozen=True, slots=True)
class Choices:
    """What the export page asks: the dates, one status or all, the file's format and language."""

    start: date | None
    end: date | None
    status: OrderStatus | str | None  # READY_TO_SHIP too
    format: str
    locale: str


def _choices(request: web.Request, claim: ExportClaim, shop_locale: str) -> Choices:
    """The page's choices from the query (the link's dates, every status, CSV and the shop's
    language when not given); ValueError when one is not valid."""
    query = request.query
    if claim.kind == "products":
        return Choices(None, None, None, "csv", shop_locale)
    start = date.fromisoformat(query["start"]) if query.get("start") else claim.start
    end = date.fromisoformat(query["end"]) if query.get("end") else claim.end
    status_word = query.get("status", "")
    fmt = query.get("format") or "csv"
    locale = query.get("lang") or shop_locale
    if status_word not in STATUS_CHOICES or fmt not in FORMATS or locale not in LOCALES:
        raise ValueError("not a choice")
    status: OrderStatus | str | None = None
    if status_word == READY_TO_SHIP:
        status = READY_TO_SHIP
    elif status_word:
        status = OrderStatus(status_word)
    return Choices(start, end, status, fmt, locale)


def content_disposition(ascii_name: str, name: str) -> str:
    """An attachment named `name` (RFC 6266: filename*=UTF-8''..., with an ASCII fallback)."""
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def _filenames(claim: ExportClaim, choices: Choices) -> tuple[str, str]:
    if claim.kind == "products" or choices.start is None or choices.end is None:
        return claim.filename, claim.filename
    span = f"{choices.start.isoformat()}_{choices.end.isoformat()}"
    status = f"-{choices.status}" if choices.status else ""
    ascii_name = f"orders-{span}{status}.{choices.format}"
    if choices.locale != "zh":
        return ascii_name, ascii_name
    label = STATUS_NAMES["zh"].get(str(choices.status), "") if choices.status else ""
    name = f"订单-{choices.start.isoformat()}至{choices.end.isoformat()}{'-' + label if label else ''}.{choices.format}"
    return ascii_name, name


async def _claim(request: web.Request, now: datetime) -> tuple[ExportClaim, str] | web.Response:
    """The link's claim and its staff member's role, or the refusal to answer with."""
    config = request.app[CONFIG]
    try:
        claim = read_export_token(key=config.signing_key, token=request.match_info["token"], now=now)
    except LinkError as exc:
        log.info("export link refused", extra={"reason": exc.reason})
        return _refuse(exc.reason)
    role = await request.app[SERVICES].staff.role(claim.openid)
    if role not in EXPORT_ROLES:
        log.info("export link refused", extra={"reason": "not_staff"})
        return _refuse("not_staff")
    return claim, str(role)


async def export_page(request: web.Request) -> web.Response:
    """The page behind the link: the choices and a download button that works in WeChat's
    browser (or, where it will not download, after 在浏览器打开). Builds nothing, uses nothing."""
    now = datetime.now(UTC)
    claimed = await _claim(request, now)
    if isinstance(claimed, web.Response):
        return claimed
    claim, _ = claimed
    async with request.app[SERVICES].uow() as uow:
        if await link_uses.is_used(uow.session, link_id=claim.link_id):
            return _refuse("used")
    config = request.app[CONFIG]
    html = request.app[PAGES].get_template("export.html").render(
        shop=config.shop.name, kind=claim.kind, start=claim.start, end=claim.end,
        expires_at=claim.expires_at.astimezone(ZoneInfo(config.shop.timezone)).strftime("%H:%M"),
        statuses=[(s, STATUS_NAMES["zh"].get(s, s), STATUS_NAMES["en"].get(s, s)) for s in STATUS_CHOICES if s],
        locale=config.shop.locale if config.shop.locale in LOCALES else "zh", max_days=MAX_DAYS,
        file_url=f"/export/{request.match_info['token']}/file",
    )
    return web.Response(text=html, content_type="text/html", headers=HEADERS)


async def export_file(request: web.Request) -> web.Response:
    """The file, once: built in the transaction that records the link's use."""
    config = request.app[CONFIG]
    services = request.app[SERVICES]
    now = datetime.now(UTC)
    claimed = await _claim(request, now)
    if isinstance(claimed, web.Response):
        return claimed
    claim, role = claimed
    try:
        choices = _choices(request, claim, config.shop.locale if config.shop.locale in LOCALES else "zh")
    except ValueError:
        return _refuse("invalid")
    args = [claim.kind, *(d.isoformat() for d in (choices.start, choices.end) if d)]
    if claim.kind == "orders":
        args += [str(choices.status or "all"), choices.format, choices.locale]
    try:
        async with services.uow() as uow:
            session = uow.session
            if await link_uses.is_used(session, link_id=claim.link_id):  # no file built for a replay
                raise _Used
            if choices.start is not None and choices.end is not None:
                rows = await export_orders_rows(
                    session, start=choices.start, end=choices.end, tz=ZoneInfo(config.shop.timezone),
                    status=choices.status, locale=choices.locale,
                )
                if choices.format == "xlsx":
                    body = to_xlsx(rows, title="订单" if choices.locale == "zh" else "orders",
                                   numbers=ORDER_NUMBER_COLUMNS)
                else:
                    body = write_csv(rows).encode(CSV_ENCODING)  # UTF-8 with a BOM
            else:
                body = (await export_products_csv(session, base_url=config.public_base_url)).encode(CSV_ENCODING)
            # The INSERT decides, after the file is built (on SQLite a write holds the
            # database's one write lock until the commit): of two simultaneous clicks
            # one records the use, the other finds its row and gets nothing.
            if not await link_uses.use_once(
                session, link_id=claim.link_id, kind=LINK_KIND, expires_at=claim.expires_at, now=now
            ):
                raise _Used
            await audit.record(
                session, actor=claim.openid, role=role, command="export_download", args=args,
                outcome="ok", after={"bytes": len(body)},
            )
    except _Used:
        log.info("export link refused", extra={"reason": "used"})
        return _refuse("used")
    except ShopError:
        return _refuse("invalid")
    ascii_name, name = _filenames(claim, choices)
    content_type = XLSX_TYPE if choices.format == "xlsx" else "text/csv; charset=utf-8"
    return web.Response(
        body=body,
        headers={**HEADERS, "Content-Type": content_type, "Content-Disposition": content_disposition(ascii_name, name)},
    )


def add_routes(app: web.Application) -> None:
    # no HEAD: a link preview must not build the file nor write an audit row
    app.router.add_get("/export/{token}", export_page, allow_head=False)
    app.router.add_get("/export/{token}/file", export_file, allow_head=False)
